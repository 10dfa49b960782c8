#![cfg(test)]
//! `SesMailer` against moto's SES v2 emulation, run when `TEST_SES_ENDPOINT` is set:
//!
//!     python3 -m pip install 'moto[server]'
//!     moto_server -H 127.0.0.1 -p 5055 &
//!     TEST_SES_ENDPOINT=http://127.0.0.1:5055 cargo test -p mailer
//!
//! Without it each test says so and passes; with it set but moto unreachable they fail. Fake
//! credentials and the region are set in each client's configuration, not in the process
//! environment (tests run in parallel); the one test of the environment chain runs itself again
//! as a child process with the variables set. Every test uses identities and recipients of its
//! own. What moto recorded is read back from `GET <endpoint>/moto-api/data.json`.

use std::process::Command;

use confirm_mailer::EmailAddress;
use confirm_mailer::test_util::Moto;
use confirm_mailer::{MailError, Mailer, Message, Sender};

/// Set in the child process of [`from_env_uses_the_standard_chain_and_endpoint_override`].
const CHILD_VAR: &str = "MAILER_SES_FROM_ENV_CHILD";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn message(to: &str, link: &str) -> Message {
    Message {
        to: EmailAddress::parse(to).unwrap(),
        subject: "Confirm Your Account".into(),
        text: format!("Please follow this link to activate your account:\n{link}\n"),
        html: Some(format!("<p><a href=\"{link}\">{link}</a></p>\n")),
        action_url: Some(link.to_owned()),
    }
}

/// Checks a raw message moto recorded for `sent_id`: recipient, source, MIME with our link.
fn assert_recorded(moto: &Moto, sent_id: &str, from: &str, to: &str, link: &str) {
    let record = moto.raw_message(sent_id);
    assert_eq!(record["source"], from, "{record}");
    assert!(
        record["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == to),
        "{record}"
    );
    let raw = record["raw_data"].as_str().unwrap();
    assert!(raw.contains(&format!("To: {to}\r\n")), "{raw}");
    assert!(raw.contains("Subject: Confirm Your Account\r\n"), "{raw}");
    assert!(raw.contains("multipart/alternative"), "{raw}");
    assert!(
        raw.contains("Content-Type: text/plain; charset=utf-8"),
        "{raw}"
    );
    assert!(
        raw.contains("Content-Type: text/html; charset=utf-8"),
        "{raw}"
    );
    assert!(
        raw.contains(&format!("\r\n{link}\r\n")),
        "link whole in the text: {raw}"
    );
    assert!(raw.contains(&format!("href=\"{link}\"")), "{raw}");
    // Our own Message-ID (`<32 hex digits@sender's domain>`), not one made up by SES.
    let domain = from.rsplit_once('@').unwrap().1;
    let ids: Vec<&str> = raw
        .split("\r\n")
        .filter_map(|line| line.strip_prefix("Message-ID: "))
        .collect();
    assert_eq!(ids.len(), 1, "{raw}");
    let id = ids[0];
    let local = id
        .strip_prefix('<')
        .and_then(|id| id.strip_suffix(&format!("@{domain}>")))
        .unwrap_or_else(|| panic!("Message-ID {id} is not ours"));
    assert!(
        local.len() == 32 && local.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
}

#[tokio::test]
async fn sends_raw_mime_and_returns_the_ses_message_id() {
    let Some(moto) = Moto::from_env("sends_raw_mime_and_returns_the_ses_message_id") else {
        return;
    };
    let from = format!("no-reply@{}.example.com", unique("verified"));
    moto.verify_identity(&from).await;
    let configuration_set = unique("confirmations");
    moto.create_configuration_set(&configuration_set).await;

    let mailer = moto.mailer(
        Sender::parse(&format!("Confirm Bot <{from}>")).unwrap(),
        Some(&configuration_set),
    );
    assert_eq!(mailer.configuration_set(), Some(configuration_set.as_str()));
    let to = format!("{}@example.org", unique("it"));
    let link = format!("http://127.0.0.1:5003/confirm/{}", "Ab0_-".repeat(30));
    let sent = mailer
        .send(&message(&to, &link))
        .await
        .unwrap_or_else(|e| panic!("moto is there but the send failed: {e}"));
    let ses_id = sent.provider_message_id.expect("SES returns a MessageId");
    assert_recorded(&moto, &ses_id, &from, &to, &link);
    let record = moto.raw_message(&ses_id);
    let raw = record["raw_data"].as_str().unwrap();
    assert!(
        raw.contains(&format!("From: \"Confirm Bot\" <{from}>\r\n")),
        "{raw}"
    );
}

#[tokio::test]
async fn unverified_sender_is_an_account_error() {
    let Some(moto) = Moto::from_env("unverified_sender_is_an_account_error") else {
        return;
    };
    let from = format!("nobody@{}.example.com", unique("unverified"));
    let mailer = moto.mailer(Sender::parse(&from).unwrap(), None);
    let to = format!("{}@example.org", unique("it"));
    let err = mailer
        .send(&message(&to, "http://x/confirm/secret-token"))
        .await
        .unwrap_err();
    // moto answers 400 MessageRejected "Did not have authority to send from email <from>";
    // SES says "Email address is not verified. The following identities failed the check...".
    assert!(matches!(err, MailError::Account(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("MessageRejected"), "{text}");
    assert!(
        text.contains(&format!("sender identity {from} is not verified")),
        "{text}"
    );
    assert!(!text.contains(&to), "no recipient in the error: {text}");
    assert!(!text.contains("secret-token"), "{text}");
}

/// Needs no server: a port nobody listens on.
#[tokio::test]
async fn unreachable_endpoint_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mailer = Moto::at(&format!("http://127.0.0.1:{port}"))
        .mailer(Sender::parse("no-reply@example.com").unwrap(), None);
    let err = mailer
        .send(&message("someone@example.org", "http://x/c"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
}

/// `confirm_mailer::SesMailer::from_env` in a child process (this test binary again) whose environment holds
/// fake credentials, a region and the endpoint overrides: proves the standard chain is used,
/// `AWS_ENDPOINT_URL_SESV2` wins over `AWS_ENDPOINT_URL`, the region argument wins over
/// `AWS_REGION`, and the explicit HTTP client is in place (no "No HTTP client was available").
#[tokio::test]
async fn from_env_uses_the_standard_chain_and_endpoint_override() {
    if std::env::var_os(CHILD_VAR).is_some() {
        return from_env_child().await;
    }
    let Some(moto) = Moto::from_env("from_env_uses_the_standard_chain_and_endpoint_override")
    else {
        return;
    };
    let endpoint = moto.endpoint();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    for (mode, generic, specific) in [
        ("service-specific", closed.as_str(), Some(endpoint)),
        ("generic", endpoint, None),
    ] {
        let mut child = Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "from_env_uses_the_standard_chain_and_endpoint_override",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_VAR, mode)
            .env(Moto::ENDPOINT_VAR, endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "eu-west-3")
            .env("AWS_ENDPOINT_URL", generic)
            .env("AWS_CONFIG_FILE", "/nonexistent/aws/config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws/credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL_SESV2");
        if let Some(specific) = specific {
            child.env("AWS_ENDPOINT_URL_SESV2", specific);
        }
        let output = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "child ({mode}) failed:\n{stdout}\n{stderr}"
        );
    }
}

async fn from_env_child() {
    let moto = Moto::at(&std::env::var(Moto::ENDPOINT_VAR).unwrap());

    // The chain's region (AWS_REGION) when no region is given...
    let from = format!("no-reply@{}.example.com", unique("env"));
    let mailer =
        confirm_mailer::SesMailer::from_env(None, Sender::parse(&from).unwrap(), None).await;
    let region = mailer.region();
    assert_eq!(region.as_deref(), Some("eu-west-3"));

    // ...the argument (SES_REGION) when given.
    let mailer = confirm_mailer::SesMailer::from_env(
        Some("us-west-2".into()),
        Sender::parse(&from).unwrap(),
        None,
    )
    .await;
    let region = mailer.region();
    assert_eq!(region.as_deref(), Some("us-west-2"));

    moto.in_region("us-west-2").verify_identity(&from).await;
    let to = format!("{}@example.org", unique("env"));
    let link = "http://127.0.0.1:5003/confirm/from-env";
    let sent = mailer
        .send(&message(&to, link))
        .await
        .unwrap_or_else(|e| panic!("from_env send failed: {e}"));
    assert_recorded(&moto, &sent.provider_message_id.unwrap(), &from, &to, link);
}

/// `SqsFeedbackQueue` against moto's SQS: it receives what was sent (with the receive count),
/// deletes what it is told to, and a notification received but not deleted comes back and
/// then moves to the dead-letter queue by the redrive policy.
#[tokio::test]
async fn feedback_queue_receives_deletes_and_leaves_to_the_redrive_policy() {
    use confirm_mailer::feedback::{FeedbackQueue, SesNotification, parse_notification};

    let Some(moto) =
        Moto::from_env("feedback_queue_receives_deletes_and_leaves_to_the_redrive_policy")
    else {
        return;
    };
    let dead = moto.create_queue(&unique("feedback-dlq"), 30, None).await;
    let url = moto
        .create_queue(&unique("feedback"), 0, Some((&dead, 1)))
        .await;
    let bounce = serde_json::json!({
        "notificationType": "Bounce",
        "bounce": {"feedbackId": "fb-1", "bounceType": "Permanent", "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": "gone@example.com"}],
                   "timestamp": "2026-12-07T10:00:00.000Z"},
        "mail": {"messageId": "ses-1"}
    });
    let wrapped = serde_json::json!({"Type": "Notification", "Message": bounce.to_string()});
    moto.send_to_queue(&url, &wrapped.to_string()).await;
    moto.send_to_queue(&url, "{malformed").await;
    let queue = moto.feedback_queue(&url);

    let mut received = Vec::new();
    for _ in 0..5 {
        received.extend(queue.receive().await.unwrap());
        if received.len() == 2 {
            break;
        }
    }
    assert_eq!(received.len(), 2, "{received:?}");
    let (good, bad): (Vec<_>, Vec<_>) = received
        .iter()
        .partition(|n| parse_notification(&n.body).is_ok());
    assert_eq!((good.len(), bad.len()), (1, 1));
    assert!(matches!(
        parse_notification(&good[0].body).unwrap(),
        SesNotification::Bounce(_)
    ));
    assert_eq!(good[0].receive_count, Some(1));
    queue.delete(&good[0].receipt).await.unwrap();
    // The malformed one, not deleted, is received once (maxReceiveCount 1), then moto moves it
    // to the dead-letter queue on the next receive.
    for _ in 0..5 {
        queue.receive().await.unwrap();
        if moto.queue_depth(&dead).await == 1 {
            break;
        }
    }
    assert_eq!(moto.queue_depth(&dead).await, 1);
    assert_eq!(moto.queue_depth(&url).await, 0);
    // A wrong receipt is the queue's error, not a panic.
    assert!(queue.delete("no-such-receipt").await.is_err());
}
