#![cfg(test)]
//! `server users show ADDR`: the library report, and the binary's output and exit codes.

use std::process::Command;

use chrono::{TimeZone, Utc};
use domain::EmailAddress;
use store::{MessageStore, Registration, SeaStore, UserStore};

#[tokio::test]
async fn shows_one_users_state_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let store = SeaStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
    let email = EmailAddress::parse("Show.Me@Example.com").unwrap();
    let Registration::Created { message, .. } = store
        .register(&email, domain::Locale::En, at)
        .await
        .unwrap()
    else {
        panic!("expected a new user");
    };
    store
        .claim(message, at, chrono::TimeDelta::seconds(60))
        .await
        .unwrap();
    store
        .mark_sent(message, Some("<id-1@example.com>".into()), at)
        .await
        .unwrap();

    let report = delivery::operator::user_report(
        &store,
        &store,
        &EmailAddress::parse("show.me@example.com").unwrap(),
    )
    .await
    .unwrap();
    assert!(report.found);
    for line in [
        "email: Show.Me@example.com",
        "confirmed: false",
        "email_sent: true",
        "registered_on: 2026-11-21T10:00:00Z",
        "messages: 1",
    ] {
        assert!(report.text.contains(line), "{line}: {}", report.text);
    }
    assert!(
        report
            .text
            .contains("- message 1 confirm sent attempts=1 created=2026-11-21T10:00:00Z sent=2026-11-21T10:00:00Z provider_id=<id-1@example.com>"),
        "{}",
        report.text
    );
    let missing = delivery::operator::user_report(
        &store,
        &store,
        &EmailAddress::parse("nobody@example.com").unwrap(),
    )
    .await
    .unwrap();
    assert!(!missing.found);
    store.close().await.unwrap();

    // The binary: exit 0 with the report, 1 for an unknown address, 2 without an address,
    // and a clear error for a bad one.
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_server"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run(&["users", "show", "SHOW.ME@example.com"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("email_sent: true"));
    let out = run(&["users", "show", "nobody@example.com"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = run(&["users", "show", "not an address"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an email address"),
        "{out:?}"
    );
    let out = run(&["users", "show"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
