#![cfg(test)]
//! The `worker` binary's commands: `send-test-email`, `stats`, `dead` and `suppressions`, run as a process with
//! only the environment given (exit statuses, what goes to stdout and stderr, no secret in
//! either). The logic behind them is tested in `delivery` (`tests/operator.rs`).
//!
//! Always run: the file mailer, an unreachable SMTP server, a bad address, stats and dead letters
//! over SQLite. Run when their variables are set (and skipped with a note otherwise),
//! `send-test-email` against real servers:
//!
//!     python3 .ci/smtp_server.py --host 127.0.0.1 --port 2526 --maildir /tmp/m-maildir &
//!     python3 -m moto.server -H 127.0.0.1 -p 5055 &
//!     TEST_SMTP_URL=smtp://127.0.0.1:2526 TEST_SMTP_MAILDIR=/tmp/m-maildir \
//!     TEST_SES_ENDPOINT=http://127.0.0.1:5055 cargo test -p worker --test cli

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use mailer::test_util::Moto;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
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
        "queued 0\nsending 0\nretrying 0\nsent 0\nsent_is_estimate false\ndead 0\ncancelled 0\nbounced 0\ncomplained 0\noldest_owed_age_seconds 0\n"
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

/// `worker dead list`, `requeue` and `purge` over a SQLite database with one dead message.
#[test]
fn the_cli_lists_requeues_and_purges_dead_messages() {
    use store::{MessageStore, Registration, UserStore};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display());
    let message = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = store::SeaStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let email = domain::EmailAddress::parse("Dead.Letter@example.com").unwrap();
        let now = chrono::Utc::now();
        let Registration::Created { message, .. } = store
            .register(&email, domain::Locale::En, now)
            .await
            .unwrap()
        else {
            panic!("a new address registers");
        };
        store
            .claim(message, now, chrono::TimeDelta::seconds(60))
            .await
            .unwrap();
        store
            .mark_dead(
                message,
                "550 no such user Dead.Letter@example.com".into(),
                now,
            )
            .await
            .unwrap();
        store.close().await.unwrap();
        message
    });
    let cli = |args: &[&str]| worker_cli(dir.path(), &[("DATABASE_URL", url.as_str())], args);

    let out = cli(&["dead", "list"]);
    let listed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(listed.starts_with("      ID  RECIPIENT"), "{listed}");
    assert!(
        listed.contains(&format!("{message:>8}  D***@example.com")),
        "{listed}"
    );
    assert!(
        !listed.contains("Dead.Letter"),
        "the address is masked: {listed}"
    );

    let out = cli(&["dead", "requeue", "999999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("message 999999 is not dead"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["dead", "requeue", "--all"]);
    assert_eq!(
        text(&out.stdout),
        "requeued 1 message(s); the server's delivery loop will send them\n"
    );
    let out = cli(&["dead", "list"]);
    assert_eq!(text(&out.stdout), "no dead messages\n");
    let out = cli(&["dead", "purge", "--older-than", "30d"]);
    assert!(
        text(&out.stdout).starts_with("purged 0 dead message(s) last changed before "),
        "{}",
        text(&out.stdout)
    );
    let out = cli(&["dead", "purge", "--older-than", "soon"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad duration is a usage error"
    );
}

/// `worker suppressions add`, `list` and `lift` over a SQLite database: the mailbox of every
/// alias is suppressed (what was owed to it is cancelled), listed masked, and lifted once.
#[test]
fn the_cli_adds_lists_and_lifts_suppressions() {
    use store::{Registration, UserStore};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = store::SeaStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let email = domain::EmailAddress::parse("Stop.Me+news@gmail.com").unwrap();
        let registration = store
            .register(&email, domain::Locale::En, chrono::Utc::now())
            .await
            .unwrap();
        assert!(matches!(registration, Registration::Created { .. }));
        store.close().await.unwrap();
    });
    let cli = |args: &[&str]| worker_cli(dir.path(), &[("DATABASE_URL", url.as_str())], args);

    let out = cli(&["suppressions", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "no suppressions\n");

    let out = cli(&["suppressions", "add", "stopme@googlemail.com"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "suppressed the mailbox s***@gmail.com: nothing more is sent to it\n"
    );
    let out = cli(&["suppressions", "add", "S.top.Me@gmail.com"]);
    assert_eq!(
        text(&out.stdout),
        "the mailbox s***@gmail.com was already suppressed\n"
    );

    let out = cli(&["suppressions", "list"]);
    let listed = text(&out.stdout);
    assert!(listed.starts_with("      ID  MAILBOX"), "{listed}");
    assert!(listed.contains("       1  s***@gmail.com"), "{listed}");
    assert!(listed.contains("operator"), "{listed}");
    assert!(
        !listed.contains("stopme"),
        "the mailbox is masked: {listed}"
    );

    // What was owed to the mailbox is cancelled.
    let out = cli(&["stats"]);
    assert!(
        text(&out.stdout).contains("\ncancelled 1\n"),
        "{}",
        text(&out.stdout)
    );

    let out = cli(&["suppressions", "lift", "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("there is no suppression 999"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["suppressions", "lift", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("lifted suppression 1"),
        "{}",
        text(&out.stdout)
    );
    let out = cli(&["suppressions", "lift", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let out = cli(&["suppressions", "add", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2), "a bad address is a usage error");
}

/// `dkim-record` prints the record for the configured key, and the test email is signed with
/// it; without DKIM settings the command says what to set and exits 1.
#[test]
fn the_cli_prints_the_dkim_record_and_signs_with_the_key() {
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/mailer/src/dkim/tests/rsa2048.pem"
    );
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    let env = [
        ("MAILER", "file"),
        ("MAIL_FILE_DIR", mail.to_str().unwrap()),
        ("MAIL_FROM", "Confirm <no-reply@mail.example.com>"),
        ("DKIM_DOMAIN", "example.com"),
        ("DKIM_SELECTOR", "confirm1"),
        ("DKIM_PRIVATE_KEY_FILE", key),
    ];
    let out = worker_cli(dir.path(), &env, &["dkim-record"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "name: confirm1._domainkey.example.com");
    assert!(
        lines[1].starts_with("value: v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("zone: confirm1._domainkey.example.com. IN TXT ( \"v=DKIM1;"),
        "{stdout}"
    );
    assert!(!stdout.contains("PRIVATE"), "{stdout}");

    let out = worker_cli(
        dir.path(),
        &env,
        &["send-test-email", "--to", "ops@example.net"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = std::fs::read_dir(&mail).unwrap().next().unwrap().unwrap();
    let raw = std::fs::read_to_string(file.path()).unwrap();
    assert!(
        raw.starts_with("DKIM-Signature: v=1; a=rsa-sha256;"),
        "{raw}"
    );
    assert!(raw.contains("s=confirm1;"), "{raw}");

    let out = worker_cli(dir.path(), &env[..2], &["dkim-record"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("DKIM_SELECTOR"),
        "{}",
        text(&out.stderr)
    );
    let out = worker_cli(dir.path(), &env[..5], &["dkim-record"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a half-set DKIM is a setting error"
    );
    assert!(
        text(&out.stderr).contains("DKIM_PRIVATE_KEY_FILE"),
        "{}",
        text(&out.stderr)
    );
}

/// A setting that cannot be used is a configuration error: exit status 2, one line naming it.
#[test]
fn a_bad_setting_exits_with_status_2_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = worker_cli(dir.path(), &[("SEND_LEASE", "soon")], &["stats"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("SEND_LEASE"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn the_cli_sends_through_ses_on_moto() {
    let Some(moto) = Moto::from_env("the_cli_sends_through_ses_on_moto") else {
        return;
    };
    let endpoint = moto.endpoint().to_owned();
    let from = format!("no-reply@{}.example.com", unique("ops"));
    moto.verify_identity(&from).await;
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
    let record = moto.raw_message(&id);
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
