#![cfg(test)]
//! `SmtpMailer` over TLS against real TLS servers (`.ci/smtp_server.py --tls-cert ...`, a
//! certificate for `localhost` only, signed by a CA made at run time by `.ci/make-test-ca`), run
//! when these are set (`.ci/run` sets them):
//!
//! - `TEST_SMTP_STARTTLS_ADDR`: `localhost:<port>` of a server that requires STARTTLS before
//!   anything else and offers AUTH only after it (a 587-style submission port);
//! - `TEST_SMTPS_ADDR`: `localhost:<port>` of a server speaking TLS from the first byte (465);
//! - `TEST_SMTP_TLS_MAILDIR`: their `--maildir` (both servers share it);
//! - `TEST_SMTP_CA_FILE`: the CA's PEM file.
//!
//! Without them each test says so and passes.

use std::path::{Path, PathBuf};

use confirm_mailer::EmailAddress;
use confirm_mailer::{MailError, Mailer, Message, Sender, SmtpConfigError, SmtpMailer};

struct Env {
    starttls: String,
    smtps: String,
    maildir: PathBuf,
    ca: PathBuf,
}

fn env(test: &str) -> Option<Env> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(starttls) = get("TEST_SMTP_STARTTLS_ADDR") else {
        eprintln!("{test}: skipped, set TEST_SMTP_STARTTLS_ADDR and the others to run it");
        return None;
    };
    let must = |name: &str| {
        get(name).unwrap_or_else(|| panic!("TEST_SMTP_STARTTLS_ADDR is set, {name} must be too"))
    };
    Some(Env {
        starttls,
        smtps: must("TEST_SMTPS_ADDR"),
        maildir: must("TEST_SMTP_TLS_MAILDIR").into(),
        ca: must("TEST_SMTP_CA_FILE").into(),
    })
}

fn sender() -> Sender {
    Sender::parse("Confirm Bot <no-reply@example.com>").unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn message(to: &str) -> Message {
    Message {
        to: EmailAddress::parse(to).unwrap(),
        subject: "Confirm Your Account".into(),
        text: format!("Hello {to}\n"),
        html: None,
        action_url: None,
    }
}

/// The stored message holding `needle`, if any (the server stores it before its 250).
fn stored(maildir: &Path, needle: &str) -> Option<String> {
    std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .find(|text| text.contains(needle))
}

fn auth_log(maildir: &Path) -> String {
    std::fs::read_to_string(maildir.join("auth.log")).unwrap_or_default()
}

/// STARTTLS, then AUTH, then several messages on one connection, pipelined (the server offers
/// PIPELINING in its second EHLO, after TLS). The server refuses every command but EHLO and
/// STARTTLS before TLS, and AUTH without it, so a delivery proves the order.
#[tokio::test]
async fn starttls_then_auth_then_pipelined_messages_arrive() {
    let Some(env) = env("starttls_then_auth_then_pipelined_messages_arrive") else {
        return;
    };
    let user = unique("starttls-user");
    let url = format!("smtp://{user}:secret@{}?tls=required", env.starttls);
    let mailer = SmtpMailer::from_url(&url, sender())
        .unwrap()
        .with_max_connections(1)
        .with_tls_ca_file(&env.ca)
        .unwrap();
    let mailer = std::sync::Arc::new(mailer);
    let recipients: Vec<String> = (0..4)
        .map(|i| format!("{}@example.com", unique(&format!("tls{i}"))))
        .collect();
    let mut sends = tokio::task::JoinSet::new();
    for to in recipients.clone() {
        let mailer = std::sync::Arc::clone(&mailer);
        sends.spawn(async move { mailer.send(&message(&to)).await });
    }
    while let Some(result) = sends.join_next().await {
        result
            .unwrap()
            .unwrap_or_else(|e| panic!("send failed: {e}"));
    }
    for to in &recipients {
        assert!(stored(&env.maildir, to).is_some(), "{to} not stored");
    }
    assert_eq!(
        auth_log(&env.maildir)
            .lines()
            .filter(|l| *l == user)
            .count(),
        1
    );
}

/// `smtps://`: TLS from the first byte, then AUTH.
#[tokio::test]
async fn implicit_tls_delivers() {
    let Some(env) = env("implicit_tls_delivers") else {
        return;
    };
    let user = unique("smtps-user");
    let url = format!("smtps://{user}:secret@{}", env.smtps);
    let mailer = SmtpMailer::from_url(&url, sender())
        .unwrap()
        .with_tls_ca_file(&env.ca)
        .unwrap();
    let to = format!("{}@example.com", unique("smtps"));
    mailer.send(&message(&to)).await.unwrap();
    assert!(stored(&env.maildir, &to).is_some());
    assert!(auth_log(&env.maildir).lines().any(|l| l == user));
}

/// Whether `error` is the account-level TLS failure: sending pauses, the message keeps its
/// attempts, and nothing (no credentials, no message) reached the server.
fn assert_tls_refusal(error: &MailError, env: &Env, user: &str, to: &str) {
    assert!(matches!(error, MailError::Account(_)), "{error}");
    assert!(error.to_string().contains("TLS"), "{error}");
    assert!(error.to_string().contains("certificate"), "{error}");
    assert!(!error.to_string().contains("secret"), "{error}");
    assert!(stored(&env.maildir, to).is_none());
    assert!(!auth_log(&env.maildir).contains(user));
}

#[tokio::test]
async fn a_certificate_of_an_unknown_ca_is_refused_as_an_account_error() {
    let Some(env) = env("a_certificate_of_an_unknown_ca_is_refused_as_an_account_error") else {
        return;
    };
    for base in [
        format!("smtp://{{}}:secret@{}?tls=required", env.starttls),
        format!("smtps://{{}}:secret@{}", env.smtps),
    ] {
        let user = unique("noca-user");
        let mailer = SmtpMailer::from_url(&base.replace("{}", &user), sender()).unwrap();
        let to = format!("{}@example.com", unique("noca"));
        let error = mailer.send(&message(&to)).await.unwrap_err();
        assert_tls_refusal(&error, &env, &user, &to);
    }
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused_as_an_account_error() {
    let Some(env) = env("a_certificate_for_another_host_name_is_refused_as_an_account_error")
    else {
        return;
    };
    // The certificate names `localhost` only.
    let port = env.starttls.rsplit_once(':').unwrap().1;
    let user = unique("name-user");
    let url = format!("smtp://{user}:secret@127.0.0.1:{port}?tls=required");
    let mailer = SmtpMailer::from_url(&url, sender())
        .unwrap()
        .with_tls_ca_file(&env.ca)
        .unwrap();
    let to = format!("{}@example.com", unique("name"));
    let error = mailer.send(&message(&to)).await.unwrap_err();
    assert_tls_refusal(&error, &env, &user, &to);
}

/// Needs no server.
#[test]
fn a_bad_ca_file_or_one_without_tls_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = || SmtpMailer::from_url("smtps://relay.internal", sender()).unwrap();
    let missing = dir.path().join("missing.pem");
    let error = mailer().with_tls_ca_file(&missing).unwrap_err();
    assert!(
        matches!(&error, SmtpConfigError::CaFile { path, .. } if path.contains("missing.pem")),
        "{error}"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let error = mailer().with_tls_ca_file(&empty).unwrap_err();
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
    let plain = SmtpMailer::from_url("smtp://127.0.0.1:2525?tls=none", sender()).unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nMAo=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(matches!(
        plain.with_tls_ca_file(&pem).unwrap_err(),
        SmtpConfigError::CaWithoutTls
    ));
}
