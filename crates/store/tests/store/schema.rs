//! Migrations, connection settings and persistence.

use domain::{MessageStatus, UserId};
use sea_orm::{ConnectionTrait, Statement};
use store::{MessageStore, SeaStore, UserStore};

use crate::common::{self, TestDb, backend_tests, email, register, t0};

const MIGRATIONS: [&str; 13] = [
    "m20261121_000001_create_users_and_email_messages",
    "m20261121_000002_create_email_attempts",
    "m20261201_000003_add_users_mailbox_key",
    "m20261201_000004_create_suppressions",
    "m20261207_000005_create_mailboxes",
    "m20261207_000006_create_confirm_redirects",
    "m20261207_000007_create_webhook_deliveries",
    "m20261207_000008_add_retention_indexes",
    "m20261207_000009_add_code_failures",
    "m20261207_000010_add_users_reminded_at",
    "m20261207_000011_create_email_feedback",
    "m20261207_000012_add_users_locale",
    "m20261208_000013_create_accounts",
];

/// Against an unmigrated database: everything pending, then nothing once migrated.
async fn pending_until_migrated(store: &SeaStore) {
    assert_eq!(
        store.pending_migrations().await.unwrap(),
        MIGRATIONS.map(str::to_owned).to_vec()
    );
    store.migrate().await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    // Idempotent.
    store.migrate().await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    assert_eq!(common::count(store, "users").await, 0);
    assert_eq!(common::count(store, "email_messages").await, 0);
    assert_eq!(common::count(store, "email_attempts").await, 0);
}

#[tokio::test]
async fn sqlite_pending_until_migrated() {
    let db = TestDb::sqlite(false).await;
    pending_until_migrated(&db.store).await;
    db.finish().await;
}

#[tokio::test]
async fn postgres_pending_until_migrated() {
    let Some(db) = TestDb::postgres("postgres_pending_until_migrated", false).await else {
        return;
    };
    pending_until_migrated(&db.store).await;
    db.finish().await;
}

/// Migration 3 fills in `users.mailbox_key` of the rows already there, in SQL, exactly as
/// `EmailAddress::mailbox_key` computes it.
async fn the_mailbox_key_backfill_agrees_with_the_domain(store: &SeaStore) {
    use migration::MigratorTrait as _;
    migration::Migrator::up(store.connection(), Some(2))
        .await
        .unwrap();
    let addresses = [
        "Victim+1@gmail.com",
        "v.ic.tim@GoogleMail.com",
        "First.Last+shop@Example.COM",
        "a.b.+c@example.org",
        "+tag@example.com",
        "+t.ag@gmail.com",
        "plain@example.net",
        "x+y+z@sub.gmail.com",
    ];
    for address in addresses {
        let e = email(address);
        common::exec(
            store,
            &format!(
                "INSERT INTO users (email, email_key, confirmed, email_sent, registered_on) \
                 VALUES ('{}', '{}', FALSE, FALSE, '2026-11-21T10:00:00+00:00')",
                e.as_str(),
                e.key()
            ),
        )
        .await;
    }
    store.migrate().await.unwrap();
    for address in addresses {
        let e = email(address);
        let db = store.connection();
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT mailbox_key FROM users WHERE email_key = '{}'",
                    e.key()
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        let key: String = row.try_get("", "mailbox_key").unwrap();
        assert_eq!(key, e.mailbox_key().as_str(), "{address}");
    }
    // The migrated table takes new registrations.
    assert!(matches!(
        store
            .register(
                &email("victim+2@gmail.com"),
                domain::Locale::En,
                chrono::Utc::now()
            )
            .await
            .unwrap(),
        store::Registration::Created { .. }
    ));
}

#[tokio::test]
async fn sqlite_the_mailbox_key_backfill_agrees_with_the_domain() {
    let db = TestDb::sqlite(false).await;
    the_mailbox_key_backfill_agrees_with_the_domain(&db.store).await;
    db.finish().await;
}

#[tokio::test]
async fn postgres_the_mailbox_key_backfill_agrees_with_the_domain() {
    let Some(db) = TestDb::postgres("postgres_the_mailbox_key_backfill", false).await else {
        return;
    };
    the_mailbox_key_backfill_agrees_with_the_domain(&db.store).await;
    db.finish().await;
}

/// Migration 5 fills in `mailboxes` from the confirmation messages already there, so the limits
/// hold across the upgrade: a mailbox emailed a moment ago is cooling down, one at the daily cap
/// stays there, one emailed two days ago is owed again. (The migration counts from the real
/// clock, so the registrations after it do too.)
async fn the_mailbox_allowance_backfill_keeps_the_limits(store: &SeaStore) {
    use migration::MigratorTrait as _;
    migration::Migrator::up(store.connection(), Some(4))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let at = |ago: chrono::TimeDelta| {
        (now - ago)
            .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
            .to_string()
    };
    // (address, ages of its confirmation messages)
    let history: [(&str, Vec<chrono::TimeDelta>); 3] = [
        ("recent@example.com", vec![chrono::TimeDelta::seconds(10)]),
        (
            "capped@example.com",
            (1..=5).map(|h| chrono::TimeDelta::hours(h)).collect(),
        ),
        ("old@example.com", vec![chrono::TimeDelta::days(2)]),
    ];
    for (address, ages) in &history {
        let e = email(address);
        common::exec(
            store,
            &format!(
                "INSERT INTO users (email, email_key, mailbox_key, confirmed, email_sent, \
                 registered_on) VALUES ('{a}', '{a}', '{a}', FALSE, TRUE, '{at}')",
                a = e.as_str(),
                at = at(chrono::TimeDelta::days(3)),
            ),
        )
        .await;
        for age in ages {
            common::exec(
                store,
                &format!(
                    "INSERT INTO email_messages (user_id, kind, recipient, status, attempts, \
                     next_attempt_at, created_at, updated_at) SELECT id, 'confirm', email, \
                     'sent', 1, '{at}', '{at}', '{at}' FROM users WHERE email_key = '{a}'",
                    a = e.as_str(),
                    at = at(*age),
                ),
            )
            .await;
        }
    }
    store.migrate().await.unwrap();
    let store = store
        .clone()
        .with_registration_policy(domain::ResendPolicy::default());
    let now = chrono::Utc::now();
    for (alias, owed) in [
        ("recent+2@example.com", false),
        ("capped+2@example.com", false),
        ("old+2@example.com", true),
    ] {
        let answer = store
            .register(&email(alias), domain::Locale::En, now)
            .await
            .unwrap();
        assert_eq!(
            matches!(answer, store::Registration::Created { .. }),
            owed,
            "{alias}: {answer:?}"
        );
        assert!(!matches!(answer, store::Registration::AlreadyRegistered));
    }
    // The capped one is capped, not cooling down: its resend says so.
    assert_eq!(
        store
            .resend(
                &email("capped@example.com"),
                domain::ResendPolicy::default(),
                now
            )
            .await
            .unwrap(),
        store::Resend::DailyCapReached
    );
}

#[tokio::test]
async fn sqlite_the_mailbox_allowance_backfill_keeps_the_limits() {
    let db = TestDb::sqlite(false).await;
    the_mailbox_allowance_backfill_keeps_the_limits(&db.store).await;
    db.finish().await;
}

#[tokio::test]
async fn postgres_the_mailbox_allowance_backfill_keeps_the_limits() {
    let Some(db) = TestDb::postgres("postgres_the_mailbox_allowance_backfill", false).await else {
        return;
    };
    the_mailbox_allowance_backfill_keeps_the_limits(&db.store).await;
    db.finish().await;
}

/// Each pooled connection that the server ended while it was idle in the pool (as a restart
/// does) fails at most the one statement that finds it broken, with `Unavailable`; the pool
/// replaces it, and the statements after them succeed.
#[tokio::test]
async fn postgres_a_connection_the_server_ended_fails_at_most_one_statement() {
    use sea_orm::TransactionTrait;
    let Some(db) = TestDb::postgres(
        "postgres_a_connection_the_server_ended_fails_at_most_one_statement",
        true,
    )
    .await
    else {
        return;
    };
    let store = &db.store;
    // At least two pooled connections: `held` (a transaction) and another one, idle in the pool
    // (the migrations may have left more).
    let held = store.connection().begin().await.unwrap();
    common::exec(store, "SELECT 1").await;
    let ended = held
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert!(ended >= 1, "no idle pooled connection was ended");
    held.commit().await.unwrap();
    let mut results = Vec::new();
    for _ in 0..ended + 2 {
        results.push(store.recent_users(10).await);
    }
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        i64::try_from(failed.len()).unwrap() <= ended,
        "{} statements failed, {ended} connections were ended: {failed:?}",
        failed.len()
    );
    assert!(
        failed.iter().all(|e| e.is_unavailable()),
        "not reported as unavailable: {failed:?}"
    );
    assert!(
        results.iter().rev().take(2).all(Result::is_ok),
        "the broken connections were not replaced: {results:?}"
    );
    db.finish().await;
}

async fn ping_and_backend(store: &SeaStore) {
    store.ping().await.unwrap();
    let debug = format!("{store:?}");
    assert!(debug.starts_with("SeaStore"), "{debug}");
    assert!(
        !debug.contains("://"),
        "Debug must not show the URL: {debug}"
    );
    let expect_sqlite = store.connection().get_database_backend() == sea_orm::DbBackend::Sqlite;
    assert_eq!(store.is_sqlite(), expect_sqlite);
}

async fn schema_rejects_duplicate_keys_and_cascades(store: &SeaStore) {
    let (user, message) = register(store, "someone@example.com", t0()).await;
    // The unique index holds even for a writer that bypasses the store.
    let duplicate = store
        .connection()
        .execute_unprepared(&format!(
            "INSERT INTO users (email, email_key, mailbox_key, confirmed, email_sent, registered_on) \
             SELECT 'SOMEONE@example.com', email_key, mailbox_key, confirmed, email_sent, \
             registered_on FROM users WHERE id = {}",
            user.id
        ))
        .await;
    assert!(duplicate.is_err(), "email_key must be unique");
    common::exec(store, &format!("DELETE FROM users WHERE id = {}", user.id)).await;
    assert_eq!(
        common::count(store, "email_messages").await,
        0,
        "message {message} cascades"
    );
}

backend_tests!(ping_and_backend, schema_rejects_duplicate_keys_and_cascades);

#[tokio::test]
async fn sqlite_file_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::sqlite_url(&dir, "reopen.db");
    let (user, message) = {
        let store = SeaStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let (user, message) = register(&store, "Keep.Me@Example.com", t0()).await;
        store.close().await.unwrap();
        (user, message)
    };
    let store = SeaStore::connect(&url).await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    let found = store
        .find_by_email(&email("keep.me@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, user);
    assert_eq!(found.email.as_str(), "Keep.Me@example.com");
    assert_eq!(store.due(t0(), 10).await.unwrap(), vec![message]);
    let claimed = common::claim_ok(&store, message, t0()).await;
    assert_eq!(
        (claimed.user_id, claimed.status),
        (UserId(user.id.0), MessageStatus::Sending)
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_connect_creates_the_directory_and_sets_pragmas() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("var").join("data");
    let url = format!("sqlite://{}?mode=rwc", nested.join("app.db").display());
    let store = SeaStore::connect(&url).await.unwrap();
    assert!(nested.is_dir());
    assert!(store.is_sqlite());
    let db = store.connection();
    let pragma = async |name: &str| {
        db.query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("PRAGMA {name}"),
        ))
        .await
        .unwrap()
        .unwrap()
    };
    let fk = pragma("foreign_keys")
        .await
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(fk, 1);
    let journal = pragma("journal_mode")
        .await
        .try_get_by_index::<String>(0)
        .unwrap();
    assert_eq!(journal.to_ascii_lowercase(), "wal");
    let busy = pragma("busy_timeout")
        .await
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(busy, 5000);
    store.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_in_memory_keeps_its_data() {
    let store = SeaStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let (user, _) = register(&store, "mem@example.com", t0()).await;
    // Several round trips, possibly from different tasks: still one database.
    let other = store.clone();
    let found = tokio::spawn(async move { other.find_by_email(&email("MEM@example.com")).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, Some(user));
    assert_eq!(common::count(&store, "users").await, 1);
}
