#![cfg(test)]
//! The worker's operations side: delivery metrics, `worker stats`, `worker send-test-email`
//! (library and binary) and the `WORKER_METRICS_ADDR` listener.
//!
//! Always run: the counters (mock store and mailer), the stats report, the listener over SQLite
//! and the embedded queue, and `send-test-email` with the file mailer and an unreachable SMTP
//! server. Run when their variables are set (and skipped with a note otherwise),
//! `send-test-email` against real servers:
//!
//!     python3 .ci/smtp_server.py --host 127.0.0.1 --port 2526 --maildir /tmp/m-maildir &
//!     python3 -m moto.server -H 127.0.0.1 -p 5055 &
//!     TEST_SMTP_URL=smtp://127.0.0.1:2526 TEST_SMTP_MAILDIR=/tmp/m-maildir \
//!     TEST_SES_ENDPOINT=http://127.0.0.1:5055 cargo test -p worker --test ops
//!
//! The metrics recorder is global to the process: counters are compared before and after, on a
//! provider label no other test uses.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use domain::{
    ConfirmationTokens, EmailAddress, ManualClock, MessageId, MessageKind, MessageStatus,
    OwedMessage, UserId,
};
use mailer::{FileMailer, MailError, MockMailer, Sender, Sent, Templates};
use queue::{EmbeddedQueue, Job, JobQueue};
use store::{Claim, DeliveryStats, MockMessageStore, SeaStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use worker::{Deliverer, DeliveryConfig, EMAIL_TEMPLATES, Outcome, RetryPolicy, Services};

const NOW: i64 = 1_700_000_000;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

// --- metrics ----------------------------------------------------------------------------------

/// The value of one series in a rendered scrape (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn owed(id: i64, attempts: u32) -> OwedMessage {
    OwedMessage {
        id: MessageId(id),
        user_id: UserId(1),
        kind: MessageKind::Confirm,
        recipient: EmailAddress::parse("someone@example.com").unwrap(),
        status: MessageStatus::Sending,
        attempts,
        created_at: at(NOW - 10),
    }
}

#[tokio::test]
async fn sends_and_failures_move_the_delivery_counters() {
    let metrics = settings::metrics::install();
    const PROVIDER: &str = "counters-test";
    let mut messages = MockMessageStore::new();
    // 1: sent; 2: transient failure (retried); 3: permanent (dead); 4: account-level.
    messages
        .expect_claim()
        .returning(|id, _, _| Ok(Claim::Claimed(owed(id.0, 1))));
    messages
        .expect_mark_sent()
        .times(1)
        .returning(|_, _, _| Ok(()));
    messages
        .expect_mark_retry()
        .times(2)
        .returning(|_, _, _, _| Ok(()));
    messages
        .expect_mark_dead()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer.expect_provider().return_const(PROVIDER);
    let mut n = 0;
    mailer.expect_send().times(4).returning(move |_| {
        n += 1;
        match n {
            1 => Ok(Sent {
                provider_message_id: Some("id-1".into()),
            }),
            2 => Err(MailError::Transient("451 later".into())),
            3 => Err(MailError::Permanent("550 no such user".into())),
            _ => Err(MailError::Account("535 auth refused".into())),
        }
    });
    let deliverer = Deliverer::new(
        Arc::new(messages),
        Arc::new(mailer),
        Templates::new(EMAIL_TEMPLATES, None),
        ConfirmationTokens::new(&["test-secret"]).unwrap(),
        Arc::new(ManualClock::at_unix(NOW)),
        DeliveryConfig {
            base_url: "http://127.0.0.1:5003".into(),
            token_max_age: 3600,
            lease: TimeDelta::seconds(120),
            retry: RetryPolicy::default(),
            max_rate: None,
            account_pause: TimeDelta::seconds(300),
        },
    );
    let series = [
        format!("emails_sent_total{{provider=\"{PROVIDER}\"}}"),
        format!("emails_failed_total{{provider=\"{PROVIDER}\",outcome=\"retry\"}}"),
        format!("emails_failed_total{{provider=\"{PROVIDER}\",outcome=\"dead\"}}"),
        format!("emails_failed_total{{provider=\"{PROVIDER}\",outcome=\"account\"}}"),
        format!("email_send_seconds_count{{provider=\"{PROVIDER}\"}}"),
        "retries_scheduled_total".to_owned(),
        "messages_dead_total".to_owned(),
    ];
    let before = metrics.render();
    let mut outcomes = Vec::new();
    for id in 1..=4 {
        outcomes.push(deliverer.handle(Job::new(MessageId(id))).await.unwrap());
    }
    assert!(matches!(outcomes[0], Outcome::Sent { .. }), "{outcomes:?}");
    assert!(
        matches!(outcomes[1], Outcome::Retrying { .. }),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[2], Outcome::Dead { .. }), "{outcomes:?}");
    assert!(
        matches!(outcomes[3], Outcome::Retrying { .. }),
        "{outcomes:?}"
    );
    let after = metrics.render();
    let moved: Vec<f64> = series
        .iter()
        .map(|s| sample(&after, s) - sample(&before, s))
        .collect();
    // This provider's series are this test's alone: exact. The unlabelled ones: at least.
    assert_eq!(
        &moved[..5],
        &[1.0, 1.0, 1.0, 1.0, 4.0],
        "{series:?}\n{after}"
    );
    assert!(moved[5] >= 2.0 && moved[6] >= 1.0, "{moved:?}\n{after}");
    assert!(
        after.contains("# TYPE email_send_seconds histogram"),
        "{after}"
    );
}

// --- worker stats -----------------------------------------------------------------------------

#[tokio::test]
async fn stats_prints_one_name_value_line_per_figure() {
    let mut messages = MockMessageStore::new();
    messages.expect_stats().returning(|| {
        Ok(DeliveryStats {
            queued: 3,
            sending: 1,
            retrying: 2,
            sent: 40,
            dead: 5,
            oldest_owed: Some(at(NOW - 125)),
        })
    });
    let queue = EmbeddedQueue::new();
    queue.publish(Job::new(MessageId(1))).await.unwrap();
    let report = worker::ops::stats_report(&messages, Some(&queue), at(NOW))
        .await
        .unwrap();
    assert_eq!(
        report,
        "queued 3\nsending 1\nretrying 2\nsent 40\ndead 5\noldest_owed_age_seconds 125\nqueue_depth 1\n"
    );
    let report = worker::ops::stats_report(&messages, None, at(NOW))
        .await
        .unwrap();
    assert!(!report.contains("queue_depth"), "{report}");
}

// --- the listener -----------------------------------------------------------------------------

/// `GET path` on `addr`: (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

async fn sqlite_services(dir: &Path) -> Services {
    let url = format!("sqlite://{}?mode=rwc", dir.join("ops.db").display());
    let store = SeaStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Services {
        store: Arc::new(store),
        queue: Arc::new(EmbeddedQueue::new()),
        tokens: ConfirmationTokens::new(&["test-secret"]).unwrap(),
        clock: Arc::new(domain::SystemClock),
    }
}

#[tokio::test]
async fn the_listener_serves_health_readiness_and_metrics_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let services = sqlite_services(dir.path()).await;
    services
        .queue
        .publish(Job::new(MessageId(9)))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (addr, task) = worker::ops::start_listener(
        "127.0.0.1:0".parse().unwrap(),
        &services,
        settings::metrics::install(),
        stopped,
    )
    .await
    .unwrap();

    assert_eq!(http_get(addr, "/healthz").await, (200, "ok".to_owned()));
    assert_eq!(http_get(addr, "/readyz").await, (200, "ok\n".to_owned()));
    worker::probe(addr, "/readyz", Duration::from_secs(3))
        .await
        .unwrap();
    let (status, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("# TYPE queue_depth gauge"), "{metrics}");
    for line in [
        "queue_depth 1",
        "messages{state=\"queued\"} 0",
        "messages{state=\"dead\"} 0",
        "oldest_owed_message_age_seconds 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let missing = worker::probe(addr, "/nowhere", Duration::from_secs(3))
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("404"), "{missing}");

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the listener stops on shutdown")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

// --- send-test-email: the library function -----------------------------------------------------

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
async fn send_test_email_writes_the_test_message_and_reports_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = FileMailer::new(dir.path(), Sender::parse("Ops <ops@example.com>").unwrap());
    let to = EmailAddress::parse("Operator@Example.com").unwrap();
    let line = worker::ops::send_test_email(&mailer, &to, at(NOW))
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
    let error = worker::ops::send_test_email(
        &mailer,
        &EmailAddress::parse("a@example.com").unwrap(),
        at(NOW),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, MailError::Transient(_)), "{error}");
    assert!(error.to_string().starts_with("transient: "), "{error}");
}

// --- send-test-email and stats: the binary -----------------------------------------------------

/// `worker ARGS` with only `env` set (and a working directory without `config/`).
fn worker_cli(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_cli_refuses_a_bad_address_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["send-test-email", "--to", "not-an-address"][..],
        &["send-test-email"][..],
    ] {
        let out = worker_cli(dir.path(), &[], args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    let out = worker_cli(
        dir.path(),
        &[],
        &["send-test-email", "--to", "not-an-address"],
    );
    assert!(text(&out.stderr).contains("--to"), "{}", text(&out.stderr));
}

#[test]
fn the_cli_sends_with_the_file_mailer_and_prints_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    let out = worker_cli(
        dir.path(),
        &[
            ("MAILER", "file"),
            ("MAIL_FILE_DIR", mail.to_str().unwrap()),
            ("SECRET_KEY", "an-unprintable-secret-key-0123456789"),
        ],
        &["send-test-email", "--to", "ops@example.com"],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let id = printed_id(&stdout, "file");
    let file = std::fs::read_dir(&mail).unwrap().next().unwrap().unwrap();
    let raw = std::fs::read_to_string(file.path()).unwrap();
    assert_eq!(message_id_header(&raw), Some(id));
    let all = format!("{stdout}{}", text(&out.stderr));
    assert!(!all.contains("an-unprintable-secret-key"), "{all}");
}

#[test]
fn the_cli_reports_a_transient_failure_on_stderr_with_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = worker_cli(
        dir.path(),
        &[
            ("MAILER", "smtp"),
            (
                "SMTP_URL",
                "smtp://ops-user:hunter2-password@127.0.0.1:1?tls=none",
            ),
        ],
        &["send-test-email", "--to", "ops@example.com"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        stderr.lines().any(|l| l.starts_with("transient: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn the_cli_prints_stats_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let out = worker_cli(dir.path(), &[("DATABASE_URL", &url)], &["stats"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "queued 0\nsending 0\nretrying 0\nsent 0\ndead 0\noldest_owed_age_seconds 0\n"
    );
}

// --- send-test-email against real servers -----------------------------------------------------

#[test]
fn the_cli_sends_through_the_smtp_test_server() {
    let (Some(url), Some(maildir)) = (
        std::env::var("TEST_SMTP_URL")
            .ok()
            .filter(|v| !v.is_empty()),
        std::env::var("TEST_SMTP_MAILDIR")
            .ok()
            .filter(|v| !v.is_empty()),
    ) else {
        eprintln!(
            "the_cli_sends_through_the_smtp_test_server: skipped, set TEST_SMTP_URL and TEST_SMTP_MAILDIR to run it"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MAILER", "smtp"),
        ("SMTP_URL", url.as_str()),
        ("MAIL_FROM", "Ops Test <ops@example.com>"),
    ];
    let to = format!("{}@example.org", unique("ops"));
    let out = worker_cli(dir.path(), &env, &["send-test-email", "--to", &to]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let id = printed_id(&stdout, "smtp");
    // The message the server stored for this recipient carries the printed Message-ID.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let raw = loop {
        let found = std::fs::read_dir(Path::new(&maildir).join("new"))
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .find(|raw| raw.contains(&format!("To: {to}\r\n")));
        if let Some(raw) = found {
            break raw;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no message to {to} in {maildir}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(message_id_header(&raw), Some(id));
    assert!(raw.contains("Subject: Test email from the confirmation service\r\n"));

    // A recipient the server refuses for good (550): `permanent: …` on stderr, status 1.
    let rejected = format!("{}@example.org", unique("reject"));
    let out = worker_cli(dir.path(), &env, &["send-test-email", "--to", &rejected]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("permanent: ") && l.contains("550")),
        "{stderr}"
    );
}

/// moto's data (`GET /moto-api/data.json`), over a plain socket.
fn moto_data(endpoint: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let authority = endpoint.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "GET /moto-api/data.json HTTP/1.0\r\nHost: {authority}\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn the_cli_sends_through_ses_on_moto() {
    let Some(endpoint) = std::env::var("TEST_SES_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!(
            "the_cli_sends_through_ses_on_moto: skipped, set TEST_SES_ENDPOINT (a moto server) to run it"
        );
        return;
    };
    let endpoint = endpoint.trim_end_matches('/').to_owned();
    use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
    let client = aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .endpoint_url(&endpoint)
            .http_client(mailer::SesMailer::http_client())
            .build(),
    );
    let from = format!("no-reply@{}.example.com", unique("ops"));
    client
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let to = format!("{}@example.org", unique("ops"));
    let env = [
        ("MAILER", "ses"),
        ("SES_REGION", "us-east-1"),
        ("SES_EMAIL_SOURCE", from.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing-secret-value"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ];
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let to = to.clone();
        move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            worker_cli(&dir, &env, &["send-test-email", "--to", &to])
        }
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("testing-secret-value") && !stderr.contains("testing-secret-value"));
    let id = printed_id(&stdout, "ses");
    let data = moto_data(&endpoint);
    let record = data["ses"]["RawMessage"]
        .as_array()
        .unwrap_or_else(|| panic!("no ses.RawMessage in moto's data"))
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap_or_else(|| panic!("moto has no message {id}"))
        .clone();
    assert!(
        record["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == to.as_str()),
        "{record}"
    );
    let raw = record["raw_data"].as_str().unwrap();
    assert!(
        raw.contains("Subject: Test email from the confirmation service\r\n"),
        "{raw}"
    );
}
