#![cfg(test)]
//! `SmtpMailer` against a real SMTP server (`.ci/smtp_server.py`, on aiosmtpd), run when
//! `TEST_SMTP_URL` and `TEST_SMTP_MAILDIR` are set:
//!
//!     python3 .ci/smtp_server.py --host 127.0.0.1 --port 2525 --maildir /tmp/maildir &
//!     TEST_SMTP_URL=smtp://127.0.0.1:2525 TEST_SMTP_MAILDIR=/tmp/maildir cargo test -p mailer
//!
//! Without them each test says so and passes; with them set but the server unreachable they
//! fail. Every test uses recipients of its own, so they run in parallel against one server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use confirm_mailer::EmailAddress;
use confirm_mailer::{MailError, Mailer, Message, Sender, SmtpMailer, SmtpSecurity};
use tokio::time::Instant;

const URL_VAR: &str = "TEST_SMTP_URL";
const MAILDIR_VAR: &str = "TEST_SMTP_MAILDIR";

struct Env {
    url: String,
    maildir: PathBuf,
}

/// The server's URL and Maildir, or `None` (after a note) when the variables are unset; fails
/// the test when they are set but the server does not answer.
fn env(test: &str) -> Option<Env> {
    let url = std::env::var(URL_VAR).ok().filter(|v| !v.is_empty());
    let maildir = std::env::var(MAILDIR_VAR).ok().filter(|v| !v.is_empty());
    match (url, maildir) {
        (Some(url), Some(maildir)) => {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
            let authority = rest.split(['/', '?']).next().unwrap();
            std::net::TcpStream::connect(authority).unwrap_or_else(|e| {
                panic!("{URL_VAR} is set but nothing answers at {authority}: {e}")
            });
            Some(Env {
                url,
                maildir: PathBuf::from(maildir),
            })
        }
        (None, None) => {
            eprintln!(
                "{test}: skipped, set {URL_VAR} (e.g. smtp://127.0.0.1:2525) and {MAILDIR_VAR} (the server's --maildir) to run it"
            );
            None
        }
        _ => panic!("set both {URL_VAR} and {MAILDIR_VAR}, or neither"),
    }
}

fn sender() -> Sender {
    Sender::parse("Confirm Bot <no-reply@example.com>").unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn message(to: &str, link: &str) -> Message {
    Message {
        to: EmailAddress::parse(to).unwrap(),
        subject: "Confirm Your Account".into(),
        text: format!(
            "Welcome! Thanks for signing up. Please follow this link to activate your account:\n{link}\n\nCheers!\n"
        ),
        html: Some(format!(
            "<p>Welcome! Thanks for signing up. Please follow this link to activate your account:</p>\n<p><a href=\"{link}\">{link}</a></p>\n<br>\n<p>Cheers!</p>\n"
        )),
        action_url: Some(link.to_owned()),
    }
}

/// `smtp://host:port...` with `user:password@` put in front of the host.
fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    format!("{scheme}://{user}:{password}@{rest}")
}

/// The raw message in `maildir/new` whose text contains `needle`, waiting up to 10 s for it.
async fn find_message(maildir: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = scan(maildir, needle) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no message containing {needle} appeared in {}",
            maildir.join("new").display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn scan(maildir: &Path, needle: &str) -> Option<String> {
    let entries = std::fs::read_dir(maildir.join("new"))
        .unwrap_or_else(|e| panic!("cannot read {}/new: {e}", maildir.display()));
    entries
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .map(|bytes| String::from_utf8(bytes).unwrap())
        .find(|text| text.contains(needle))
}

fn auth_log(maildir: &Path) -> String {
    std::fs::read_to_string(maildir.join("auth.log")).unwrap_or_default()
}

/// Splits a message (CRLF) into its header block and body; header lookups are by name.
fn split(raw: &str) -> (&str, &str) {
    raw.split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header/body separator in {raw:?}"))
}

/// The values of header `name` (case-insensitive), unfolded.
fn header(headers: &str, name: &str) -> Vec<String> {
    headers
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ")
        .split("\r\n")
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn delivers_a_multipart_message_with_our_message_id() {
    let Some(env) = env("delivers_a_multipart_message_with_our_message_id") else {
        return;
    };
    let mailer = SmtpMailer::from_url(&env.url, sender()).unwrap();
    let to = format!("{}@example.org", unique("it"));
    let link = format!("http://127.0.0.1:5003/confirm/{}", "Ab0_-".repeat(30));
    let sent = mailer
        .send(&message(&to, &link))
        .await
        .unwrap_or_else(|e| panic!("{URL_VAR} is set but the send failed: {e}"));
    let message_id = sent.provider_message_id.unwrap();
    assert!(
        message_id.starts_with('<') && message_id.ends_with("@example.com>"),
        "{message_id}"
    );

    let raw = find_message(&env.maildir, &message_id).await;
    let (headers, body) = split(&raw);
    assert_eq!(
        header(headers, "From"),
        ["\"Confirm Bot\" <no-reply@example.com>"],
        "{raw}"
    );
    // The envelope sender is the From address (no MAIL_RETURN_PATH).
    assert_eq!(
        header(headers, "Return-Path"),
        ["<no-reply@example.com>"],
        "{raw}"
    );
    assert_eq!(header(headers, "To"), [to.as_str()], "{raw}");
    assert_eq!(
        header(headers, "Subject"),
        ["Confirm Your Account"],
        "{raw}"
    );
    assert_eq!(
        header(headers, "Message-ID"),
        [message_id.as_str()],
        "{raw}"
    );
    let content_type = header(headers, "Content-Type").concat();
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .unwrap_or_else(|| panic!("no boundary in {content_type}"))
        .trim_matches('"');

    let parts: Vec<(&str, &str)> = body
        .split(&format!("--{boundary}"))
        .skip(1)
        .filter(|part| !part.starts_with("--"))
        .map(|part| split(part.trim_start_matches("\r\n")))
        .collect();
    assert_eq!(parts.len(), 2, "{raw}");
    let (text_headers, text_body) = parts[0];
    let (html_headers, html_body) = parts[1];
    assert!(text_headers.contains("Content-Type: text/plain; charset=utf-8"));
    assert!(html_headers.contains("Content-Type: text/html; charset=utf-8"));
    assert!(
        text_body.split("\r\n").any(|line| line == link),
        "the link is whole on a line of its own in the text part: {text_body}"
    );
    assert!(
        html_body.contains(&format!("href=\"{link}\"")),
        "{html_body}"
    );

    // The pool reuses the connection for the next message.
    let second = mailer.send(&message(&to, &link)).await.unwrap();
    let second_id = second.provider_message_id.unwrap();
    assert_ne!(second_id, message_id);
    find_message(&env.maildir, &second_id).await;
}

/// MAIL_RETURN_PATH: the server sees it as the envelope sender (it writes `Return-Path` from
/// it); the From header is unchanged.
#[tokio::test]
async fn a_return_path_is_the_envelope_sender() {
    let Some(env) = env("a_return_path_is_the_envelope_sender") else {
        return;
    };
    let sender = sender()
        .with_return_path("bounces@mail.example.com")
        .unwrap();
    let mailer = SmtpMailer::from_url(&env.url, sender).unwrap();
    let to = format!("{}@example.org", unique("rp"));
    let sent = mailer
        .send(&message(&to, "http://127.0.0.1:5003/confirm/x"))
        .await
        .unwrap();
    let raw = find_message(&env.maildir, &sent.provider_message_id.unwrap()).await;
    let (headers, _) = split(&raw);
    assert_eq!(
        header(headers, "Return-Path"),
        ["<bounces@mail.example.com>"],
        "{raw}"
    );
    assert_eq!(
        header(headers, "From"),
        ["\"Confirm Bot\" <no-reply@example.com>"],
        "{raw}"
    );
}

#[tokio::test]
async fn deferred_recipient_is_transient() {
    let Some(env) = env("deferred_recipient_is_transient") else {
        return;
    };
    let mailer = SmtpMailer::from_url(&env.url, sender()).unwrap();
    let to = format!("{}@example.org", unique("tempfail"));
    let err = mailer
        .send(&message(&to, "http://x/confirm/secret-token"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("451") && text.contains("4.3.0"), "{text}");
    assert!(!text.contains(&to), "no recipient in the error: {text}");
    assert!(!text.contains("secret-token"), "{text}");
    assert!(scan(&env.maildir, &to).is_none());
}

#[tokio::test]
async fn rejected_recipient_is_permanent() {
    let Some(env) = env("rejected_recipient_is_permanent") else {
        return;
    };
    let mailer = SmtpMailer::from_url(&env.url, sender()).unwrap();
    let to = format!("{}@example.org", unique("reject"));
    let err = mailer
        .send(&message(&to, "http://x/confirm/secret-token"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Permanent(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("550") && text.contains("5.1.1"), "{text}");
    assert!(!text.contains(&to), "no recipient in the error: {text}");
    assert!(scan(&env.maildir, &to).is_none());

    // A failed transaction does not poison the pool: the next message goes through.
    let ok = format!("{}@example.org", unique("after-reject"));
    let sent = mailer.send(&message(&ok, "http://x/c")).await.unwrap();
    find_message(&env.maildir, &sent.provider_message_id.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_through_a_bounded_pool_all_arrive() {
    let Some(env) = env("concurrent_sends_through_a_bounded_pool_all_arrive") else {
        return;
    };
    let mailer = std::sync::Arc::new(
        SmtpMailer::from_url(&env.url, sender())
            .unwrap()
            .with_max_connections(2),
    );
    assert_eq!(mailer.max_connections(), 2);
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let mailer = std::sync::Arc::clone(&mailer);
        let to = format!("{}@example.org", unique("pool"));
        sends.spawn(async move { mailer.send(&message(&to, "http://x/c")).await });
    }
    let mut ids = Vec::new();
    while let Some(result) = sends.join_next().await {
        let sent = result
            .unwrap()
            .unwrap_or_else(|e| panic!("send failed: {e}"));
        ids.push(sent.provider_message_id.unwrap());
    }
    for id in &ids {
        find_message(&env.maildir, id).await;
    }
}

/// Over one connection (with PIPELINING, a message's content shares a write with the next
/// message's commands), refused recipients fail only their own messages.
#[tokio::test]
async fn refused_recipients_among_pipelined_sends_fail_only_their_own() {
    let Some(env) = env("refused_recipients_among_pipelined_sends_fail_only_their_own") else {
        return;
    };
    let mailer = std::sync::Arc::new(
        SmtpMailer::from_url(&env.url, sender())
            .unwrap()
            .with_max_connections(1),
    );
    let sends: Vec<_> = (0..8)
        .map(|i| {
            let prefix = if i % 3 == 1 { "reject" } else { "piped" };
            let to = format!("{}@example.org", unique(prefix));
            let mailer = std::sync::Arc::clone(&mailer);
            let send = tokio::spawn(async move { mailer.send(&message(&to, "http://x/c")).await });
            (prefix, send)
        })
        .collect();
    for (prefix, send) in sends {
        match (prefix, send.await.unwrap()) {
            ("reject", Err(MailError::Permanent(detail))) => {
                assert!(detail.contains("550"), "{detail}");
            }
            ("piped", Ok(sent)) => {
                find_message(&env.maildir, &sent.provider_message_id.unwrap()).await;
            }
            (prefix, other) => panic!("{prefix}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_connection_the_server_closed_with_421_is_not_reused() {
    let Some(env) = env("a_connection_the_server_closed_with_421_is_not_reused") else {
        return;
    };
    let mailer = SmtpMailer::from_url(&env.url, sender()).unwrap();
    // A first message leaves a connection in the pool.
    let first = format!("{}@example.org", unique("before-421"));
    let sent = mailer.send(&message(&first, "http://x/c")).await.unwrap();
    find_message(&env.maildir, &sent.provider_message_id.unwrap()).await;
    // The server answers this recipient's RCPT with 421 and closes the connection.
    let to = format!("{}@example.org", unique("flaky421"));
    let err = mailer.send(&message(&to, "http://x/c")).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    assert!(err.to_string().contains("421"), "{err}");
    assert!(!err.to_string().contains(&to), "{err}");
    // The closed connection is not handed out again: the next message goes through.
    let after = format!("{}@example.org", unique("after-421"));
    let sent = mailer.send(&message(&after, "http://x/c")).await.unwrap();
    find_message(&env.maildir, &sent.provider_message_id.unwrap()).await;
}

/// Needs no server: a port nobody listens on.
#[tokio::test]
async fn unreachable_server_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), sender()).unwrap();
    let err = mailer
        .send(&message("someone@example.org", "http://x/c"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn credentials_are_not_sent_to_a_server_without_starttls() {
    let Some(env) = env("credentials_are_not_sent_to_a_server_without_starttls") else {
        return;
    };
    let user = unique("user");
    let url = with_credentials(&env.url, &user, "hunter2");
    let mailer = SmtpMailer::from_url(&url, sender()).unwrap();
    assert_eq!(mailer.security(), SmtpSecurity::StartTlsRequired);
    let to = format!("{}@example.org", unique("never"));
    let err = mailer.send(&message(&to, "http://x/c")).await.unwrap_err();
    assert!(matches!(err, MailError::Account(_)), "{err}");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    // The server offers AUTH in clear text and logs every attempt: ours never came.
    assert!(
        !auth_log(&env.maildir).contains(&user),
        "the password was sent"
    );
    assert!(scan(&env.maildir, &to).is_none(), "the message was sent");
}

#[tokio::test]
async fn credentials_over_plain_text_only_to_loopback_when_asked() {
    let Some(env) = env("credentials_over_plain_text_only_to_loopback_when_asked") else {
        return;
    };
    let user = unique("user");
    // `+` percent-encoded in the URL reaches the server decoded.
    let url = format!(
        "{}?tls=none",
        with_credentials(&env.url, &user.replace('-', "%2B"), "p%40ss")
    );
    let mailer = match SmtpMailer::from_url(&url, sender()) {
        Ok(mailer) => mailer,
        Err(e) => {
            eprintln!(
                "credentials_over_plain_text_only_to_loopback_when_asked: skipped, {URL_VAR} is not a loopback host ({e})"
            );
            return;
        }
    };
    assert_eq!(mailer.security(), SmtpSecurity::None);
    let to = format!("{}@example.org", unique("auth"));
    let sent = mailer.send(&message(&to, "http://x/c")).await.unwrap();
    find_message(&env.maildir, &sent.provider_message_id.unwrap()).await;
    assert!(
        auth_log(&env.maildir)
            .lines()
            .any(|line| line == user.replace('-', "+")),
        "the server saw the decoded user name"
    );
}
