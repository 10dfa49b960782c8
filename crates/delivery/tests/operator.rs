#![cfg(test)]
//! The operator's commands as library calls: `worker stats`, `worker dead`, `server users show`
//! and `worker send-test-email` (the binaries only print what these return).

use chrono::{DateTime, TimeDelta, Utc};
use delivery::operator;
use domain::{EmailAddress, MessageId};
use mailer::{FileMailer, MailError, Sender};
use queue::{EmbeddedQueue, Job, JobQueue};
use store::{DeliveryStats, MessageStore, MockMessageStore, Registration, SeaStore, UserStore};

const NOW: i64 = 1_700_000_000;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

/// The `Message-ID` header of a raw message (CRLF, unfolded enough for ours).
fn message_id_header(raw: &str) -> Option<String> {
    let (headers, _) = raw.split_once("\r\n\r\n")?;
    headers.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("message-id")
            .then(|| value.trim().to_owned())
    })
}

/// The id in a `sent: provider=P message_id=ID` line.
fn printed_id(line: &str, provider: &str) -> String {
    let rest = line
        .trim()
        .strip_prefix(&format!("sent: provider={provider} message_id="))
        .unwrap_or_else(|| panic!("unexpected output {line:?}"));
    rest.to_owned()
}

#[tokio::test]
async fn stats_prints_one_name_value_line_per_figure() {
    let mut messages = MockMessageStore::new();
    messages.expect_stats().returning(|| {
        Ok(DeliveryStats {
            queued: 3,
            sending: 1,
            retrying: 2,
            sent: 40,
            sent_is_estimate: true,
            dead: 5,
            cancelled: 6,
            bounced: 7,
            complained: 8,
            oldest_owed: Some(at(NOW - 125)),
        })
    });
    let queue = EmbeddedQueue::new();
    queue.publish(Job::new(MessageId(1))).await.unwrap();
    let report = operator::stats_report(&messages, Some(&queue), at(NOW))
        .await
        .unwrap();
    assert_eq!(
        report,
        "queued 3\nsending 1\nretrying 2\nsent 40\nsent_is_estimate true\ndead 5\ncancelled 6\nbounced 7\ncomplained 8\noldest_owed_age_seconds 125\nqueue_depth 1\n"
    );
    let report = operator::stats_report(&messages, None, at(NOW))
        .await
        .unwrap();
    assert!(!report.contains("queue_depth"), "{report}");
}

#[tokio::test]
async fn send_test_email_writes_the_test_message_and_reports_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = FileMailer::new(dir.path(), Sender::parse("Ops <ops@example.com>").unwrap());
    let to = EmailAddress::parse("Operator@Example.com").unwrap();
    let line = operator::send_test_email(&mailer, &to, at(NOW))
        .await
        .unwrap();
    let id = printed_id(&line, "file");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(message_id_header(&raw).as_deref(), Some(id.as_str()));
    assert!(
        raw.contains("Subject: Test email from the confirmation service\r\n"),
        "{raw}"
    );
    assert!(raw.contains("To: Operator@example.com\r\n"), "{raw}");
    assert!(
        raw.contains("text/plain") && raw.contains("text/html"),
        "{raw}"
    );
    assert!(!raw.contains("/confirm/"), "no link in a test email: {raw}");
}

#[tokio::test]
async fn send_test_email_returns_the_classified_error() {
    // Nothing listens on port 1: a connection failure, which is transient.
    let mailer = mailer::SmtpMailer::from_url(
        "smtp://127.0.0.1:1",
        Sender::parse("ops@example.com").unwrap(),
    )
    .unwrap();
    let error = operator::send_test_email(
        &mailer,
        &EmailAddress::parse("a@example.com").unwrap(),
        at(NOW),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, MailError::Transient(_)), "{error}");
    assert!(error.to_string().starts_with("transient: "), "{error}");
}

/// A SQLite store with one message of `address`, dead after one attempt with `error`.
async fn store_with_a_dead_message(
    dir: &tempfile::TempDir,
    address: &str,
    error: &str,
) -> (SeaStore, MessageId) {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("op.db").display());
    let store = SeaStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let email = EmailAddress::parse(address).unwrap();
    let Registration::Created { message, .. } = store
        .register(&email, domain::Locale::En, at(NOW))
        .await
        .unwrap()
    else {
        panic!("a new address registers");
    };
    store
        .claim(message, at(NOW), TimeDelta::seconds(60))
        .await
        .unwrap();
    store
        .mark_dead(message, error.to_owned(), at(NOW + 1))
        .await
        .unwrap();
    (store, message)
}

#[tokio::test]
async fn dead_letters_are_listed_masked_requeued_and_published() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id) = store_with_a_dead_message(
        &dir,
        "Jane.Doe@example.com",
        "550 5.1.1 <jane.doe@example.com>: no such user\nsecond line",
    )
    .await;
    let table = operator::dead_list(&store, operator::DEAD_LIST_LIMIT)
        .await
        .unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("      ID  RECIPIENT"), "{table}");
    assert!(lines[1].contains("J***@example.com"), "{table}");
    assert!(
        lines[1].contains("550 5.1.1 <J***@example.com>: no such user second line"),
        "{table}"
    );
    assert!(!table.to_ascii_lowercase().contains("jane.doe"), "{table}");

    assert!(matches!(
        operator::requeue_dead(&store, None, Some(MessageId(id.0 + 100)), at(NOW + 2)).await,
        Err(operator::OperatorError::NotDead(_))
    ));
    let queue = EmbeddedQueue::new();
    let line = operator::requeue_dead(&store, Some(&queue), Some(id), at(NOW + 2))
        .await
        .unwrap();
    assert_eq!(
        line,
        "requeued 1 message(s), 1 published to the queue (the sweeper picks up the rest)\n"
    );
    assert_eq!(queue.depth().await.unwrap(), 1);
    assert_eq!(
        operator::dead_list(&store, 10).await.unwrap(),
        "no dead messages\n"
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.message.attempts, 0, "attempts count from zero again");
}

#[tokio::test]
async fn purge_deletes_only_dead_messages_older_than_the_age() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id) = store_with_a_dead_message(&dir, "old@example.com", "550").await;
    let kept = operator::purge_dead(&store, std::time::Duration::from_secs(60), at(NOW + 30))
        .await
        .unwrap();
    assert!(kept.starts_with("purged 0 dead message(s)"), "{kept}");
    assert!(store.get(id).await.unwrap().is_some());
    let purged = operator::purge_dead(&store, std::time::Duration::from_secs(60), at(NOW + 120))
        .await
        .unwrap();
    assert_eq!(
        purged,
        "purged 1 dead message(s) last changed before 2023-11-14 22:14:20 UTC\n"
    );
    assert!(store.get(id).await.unwrap().is_none());
    assert!(matches!(
        operator::purge_dead(&store, std::time::Duration::MAX, at(NOW)).await,
        Err(operator::OperatorError::TooLong(_))
    ));
}

#[tokio::test]
async fn the_user_report_shows_the_account_and_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id) = store_with_a_dead_message(&dir, "Shown@Example.com", "550 refused").await;
    let email = EmailAddress::parse("shown@example.com").unwrap();
    let report = operator::user_report(&store, &store, &email).await.unwrap();
    assert!(report.found);
    assert!(
        report.text.contains("email: Shown@example.com\n"),
        "{}",
        report.text
    );
    assert!(
        report.text.contains("confirmed: false\n"),
        "{}",
        report.text
    );
    assert!(report.text.contains("messages: 1\n"), "{}", report.text);
    assert!(
        report.text.contains(&format!(
            "- message {id} confirm dead attempts=1 created=2023-11-14T22:13:20Z last_error=\"550 refused\"\n"
        )),
        "{}",
        report.text
    );
    let nobody = EmailAddress::parse("nobody@example.com").unwrap();
    let report = operator::user_report(&store, &store, &nobody)
        .await
        .unwrap();
    assert!(!report.found);
    assert_eq!(report.text, "no user with the address nobody@example.com\n");
}

/// The record's value goes into 255-character strings on the zone-file line.
#[test]
fn dkim_record_prints_the_name_the_value_and_a_zone_line() {
    assert_eq!(operator::dkim_record(None), None);
    let key = include_bytes!("../../mailer/src/dkim/tests/rsa2048.pem");
    let signer = mailer::DkimSigner::from_pem("example.com", "s1", key).unwrap();
    let (name, value) = signer.dns_record();
    let text = operator::dkim_record(Some(&signer)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("name: {name}"));
    assert_eq!(lines[1], format!("value: {value}"));
    assert!(value.len() > 255, "an RSA-2048 record needs two strings");
    let zone = format!(
        "zone: {name}. IN TXT ( \"{}\" \"{}\" )",
        &value[..255],
        &value[255..]
    );
    assert_eq!(lines[2], zone);
}
