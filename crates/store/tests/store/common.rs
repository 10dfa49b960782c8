//! Fresh, migrated databases for each test: always SQLite (a temporary file), plus PostgreSQL
//! when `TEST_DATABASE_URL` points at a server where we may create databases.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::{EmailAddress, MessageId, User};
use sea_orm::{ConnectionTrait, Database, Statement};
use store::{MessageStore, Registration, SeaStore, UserStore};
use tempfile::TempDir;

pub const POSTGRES_URL_VAR: &str = "TEST_DATABASE_URL";

/// A store on a database of its own, removed when this is dropped (even if the test panics).
pub struct TestDb {
    pub store: SeaStore,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<TempDir>,
    postgres: Option<PostgresDb>,
}

struct PostgresDb {
    admin_url: String,
    name: String,
}

impl TestDb {
    /// A SQLite database in a fresh temporary directory.
    pub async fn sqlite(migrate: bool) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir, "store.db");
        let store = SeaStore::connect(&url).await.unwrap();
        if migrate {
            store.migrate().await.unwrap();
        }
        TestDb {
            store,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A new PostgreSQL database `store_test_<uuid>`, or `None` without `TEST_DATABASE_URL`
    /// (after a note that `test` is skipped).
    pub async fn postgres(test: &str, migrate: bool) -> Option<TestDb> {
        let Some(admin_url) = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|url| !url.is_empty())
        else {
            eprintln!("skipping {test}: set {POSTGRES_URL_VAR} to run it on PostgreSQL");
            return None;
        };
        let name = format!("store_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url.as_str()).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let mut db = TestDb {
            // Replaced below; if connecting panics, Drop still removes the database.
            store: SeaStore::disconnected(),
            _dir: None,
            postgres: Some(PostgresDb {
                admin_url: admin_url.clone(),
                name: name.clone(),
            }),
        };
        db.store = SeaStore::connect(&with_database(&admin_url, &name))
            .await
            .unwrap();
        if migrate {
            db.store.migrate().await.unwrap();
        }
        Some(db)
    }

    /// Closes the pool, then (on drop) removes the database.
    pub async fn finish(self) {
        self.store.close().await.unwrap();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(PostgresDb { admin_url, name }) = self.postgres.take() else {
            return;
        };
        // Best effort, on a thread of its own: Drop cannot await, and may run inside a runtime.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = Database::connect(admin_url.as_str()).await?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await?;
                admin.close().await
            })
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop a test database: {e}"),
            Err(_) => eprintln!("could not drop a test database: the dropping thread panicked"),
        }
    }
}

/// `sqlite://<dir>/<file>?mode=rwc`.
pub fn sqlite_url(dir: &TempDir, file: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join(file).display())
}

/// The same server URL with another database name (keeps user, host and query).
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap();
    format!("{scheme}://{authority}/{name}{query}")
}

/// Runs one test function against each backend; the PostgreSQL variants are skipped (with a
/// note) when `TEST_DATABASE_URL` is unset.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite(true).await;
                    super::$name(&db.store).await;
                    db.finish().await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) =
                        $crate::common::TestDb::postgres(stringify!($name), true).await
                    else {
                        return;
                    };
                    super::$name(&db.store).await;
                    db.finish().await;
                }
            )+
        }
    };
}
pub(crate) use backend_tests;

/// A fixed instant with a fractional second, so that time comparisons are exercised below the
/// second on SQLite's text timestamps.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap() + TimeDelta::microseconds(250_000)
}

pub fn secs(s: f64) -> TimeDelta {
    TimeDelta::microseconds((s * 1_000_000.0).round() as i64)
}

pub fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

/// Registers a new address, which must be new.
pub async fn register(store: &SeaStore, address: &str, now: DateTime<Utc>) -> (User, MessageId) {
    match store
        .register(&email(address), domain::Locale::En, now)
        .await
        .unwrap()
    {
        Registration::Created { user, message } => (user, message),
        other => panic!("expected Created for {address}, got {other:?}"),
    }
}

/// `SELECT COUNT(*)` of a table.
pub async fn count(store: &SeaStore, table: &str) -> i64 {
    let db = store.connection();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// Runs one statement of raw SQL.
pub async fn exec(store: &SeaStore, sql: &str) {
    store.connection().execute_unprepared(sql).await.unwrap();
}

/// One column of one `email_messages` row, read with raw SQL.
pub async fn message_column<T: sea_orm::TryGetable>(
    store: &SeaStore,
    id: MessageId,
    column: &str,
) -> T {
    let db = store.connection();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT {column} FROM email_messages WHERE id = {}", id.0),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<T>("", column).unwrap()
}

/// A unique address per call, for tests that need many users.
pub fn fresh_address(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}@example.com",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Claims a message that must be claimable.
pub async fn claim_ok(store: &SeaStore, id: MessageId, now: DateTime<Utc>) -> domain::OwedMessage {
    match store.claim(id, now, lease()).await.unwrap() {
        store::Claim::Claimed(m) => m,
        other => panic!("expected Claimed for {id}, got {other:?}"),
    }
}

/// The lease used throughout the tests.
pub fn lease() -> TimeDelta {
    TimeDelta::seconds(60)
}
