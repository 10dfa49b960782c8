//! The SeaORM adapter: [`UserStore`](crate::UserStore) and [`MessageStore`](crate::MessageStore)
//! on PostgreSQL or SQLite.
//!
//! One concern a file: the connection and its transactions here, the row mapping in `rows`, the
//! traits in `users`, `messages` and `suppressions`, the limits of one mailbox in `mailbox`, and
//! the hand-written PostgreSQL statements (one round trip for a whole batch) in `postgres`.

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use domain::ResendPolicy;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseConnectionType, DatabaseTransaction,
    DbBackend, DbErr, RuntimeErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::StoreError;

mod accounts;
mod feedback;
mod mailbox;
mod messages;
mod postgres;
mod rows;
mod suppressions;
pub(crate) mod users;
mod webhooks;

/// How long SQLite waits for another connection's write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pool size for a SQLite file (one writer at a time anyway; WAL lets readers run alongside).
const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// Pool size for PostgreSQL.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
/// How long to wait for a connection (new or from the pool) before failing. Short on purpose:
/// while the database is down, sqlx keeps retrying refused connections until this runs out, and
/// a visitor should get a prompt 503 rather than a ten-second hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// A pooled connection idle for at least this long is checked with a round trip to the database
/// before it is handed out; one used more recently is handed out as it is. (sqlx checks every
/// one by default, which doubles the round trips of every statement.) A connection the server
/// ended (a restart) within a second of its last use is not checked, so it fails its next
/// statement instead, with the same error as an unavailable database, and is replaced.
const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// [`UserStore`](crate::UserStore) and [`MessageStore`](crate::MessageStore) over a SeaORM
/// connection pool (PostgreSQL or SQLite).
///
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct SeaStore {
    db: DatabaseConnection,
    /// The limits a registration's email is owed within (see [`Self::with_registration_policy`]).
    registration_policy: ResendPolicy,
    /// Where events go (see [`Self::with_webhooks`]); nowhere by default.
    webhooks: webhooks::Webhooks,
}

/// Never prints the connection (its options may hold the URL, and the URL a password).
impl fmt::Debug for SeaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeaStore")
            .field("backend", &self.backend())
            .field("webhook_endpoints", &self.webhooks.endpoints.len())
            .finish_non_exhaustive()
    }
}

impl StoreError {
    /// A SeaORM error, classified: the database being unreachable (refused, timed out,
    /// connection lost, shutting down) is [`StoreError::Unavailable`], anything else
    /// [`StoreError::Database`]. Only its text is kept.
    fn from_db(err: DbErr) -> Self {
        use sea_orm::sqlx::Error as Sqlx;
        let unavailable = match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                matches!(
                    e.as_ref(),
                    Sqlx::Io(_)
                        | Sqlx::PoolTimedOut
                        | Sqlx::PoolClosed
                        | Sqlx::WorkerCrashed
                        | Sqlx::Tls(_)
                ) || is_shutdown(e.as_ref())
            }
            _ => false,
        };
        if unavailable {
            Self::Unavailable(err.to_string())
        } else {
            Self::Database(with_pooler_hint(err.to_string()))
        }
    }
}

/// The hint for a prepared statement lost or doubled between server connections: what a
/// connection pooler in transaction mode does to prepared statements it does not track.
const POOLER_HINT: &str = " (a connection pooler in transaction mode between this service and \
     PostgreSQL? PgBouncer needs max_prepared_statements > 0, from version 1.21, and \
     ignore_startup_parameters = extra_float_digits; see docs/scaling.md)";

fn with_pooler_hint(message: String) -> String {
    let lost = message.contains("prepared statement \"sqlx_s_")
        && (message.contains("already exists") || message.contains("does not exist"));
    if lost { message + POOLER_HINT } else { message }
}

/// PostgreSQL's "the server is shutting down / restarting" errors (class 57P: operator
/// intervention) and "cannot connect now".
fn is_shutdown(err: &sea_orm::sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code.starts_with("57P") || code == "08006" || code == "08001")
}

/// `.db()?` turns a SeaORM result into this crate's (see [`StoreError::from_db`]).
trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for Result<T, DbErr> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(StoreError::from_db)
    }
}

/// SeaORM quotes the whole connection string in some errors (a URL it cannot parse, or one
/// without a driver); the URL may hold a password, so such an error is rewritten without it.
fn redact_url(err: DbErr, url: &str) -> DbErr {
    let message = err.to_string();
    if url.is_empty() || !message.contains(url) {
        return err;
    }
    DbErr::Conn(RuntimeErr::Internal(message.replace(url, "<database URL>")))
}

/// Where a SQLite URL points.
#[derive(Debug, PartialEq, Eq)]
enum SqliteTarget {
    Memory,
    File(PathBuf),
}

/// Reads the target of a `sqlite:` URL, or `None` for any other scheme.
fn sqlite_target(url: &str) -> Option<SqliteTarget> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, query),
        None => (rest, ""),
    };
    let in_memory = path.is_empty()
        || path == ":memory:"
        || query
            .split('&')
            .any(|pair| pair.eq_ignore_ascii_case("mode=memory"));
    Some(if in_memory {
        SqliteTarget::Memory
    } else {
        SqliteTarget::File(PathBuf::from(path))
    })
}

/// What a write transaction's work decided; either way it has an answer.
enum Ending<T> {
    /// Keep what it wrote.
    Commit(T),
    /// Undo what it wrote (nothing, or something that must not stay).
    Rollback(T),
}

/// The work of a write transaction, as [`SeaStore::write`] takes it.
type Work<'t, T> = Pin<Box<dyn Future<Output = Result<Ending<T>, StoreError>> + Send + 't>>;

impl SeaStore {
    /// Connects to `postgres://…` or `sqlite://…` (e.g. `sqlite://var/app.db?mode=rwc` or
    /// `sqlite::memory:`).
    ///
    /// For a SQLite file, the parent directory is created if missing (the file itself is created
    /// only if the URL says `mode=rwc`), and every connection enables foreign keys, the WAL
    /// journal and a 5 s busy timeout. An in-memory SQLite database lives in its single
    /// connection, which is therefore never recycled.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(ACQUIRE_TIMEOUT)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire_if_idle_for(CHECK_IF_IDLE_FOR);
        match sqlite_target(url) {
            Some(SqliteTarget::Memory) => {
                options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .map_sqlx_sqlite_opts(|o| {
                        o.foreign_keys(true).busy_timeout(SQLITE_BUSY_TIMEOUT)
                    });
            }
            Some(SqliteTarget::File(path)) => {
                if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Database(format!(
                            "cannot create the directory {} for the SQLite database: {e}",
                            dir.display()
                        ))
                    })?;
                }
                options
                    .max_connections(SQLITE_MAX_CONNECTIONS)
                    .map_sqlx_sqlite_opts(|o| {
                        o.foreign_keys(true)
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Normal)
                            .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    });
            }
            None => {
                options.max_connections(POSTGRES_MAX_CONNECTIONS);
            }
        }
        let db = Database::connect(options)
            .await
            .map_err(|e| redact_url(e, url))
            .db()?;
        Ok(Self {
            db,
            registration_policy: ResendPolicy::default(),
            webhooks: webhooks::Webhooks::default(),
        })
    }

    /// The cooldown and daily cap within which [`UserStore::register`](crate::UserStore::register)
    /// owes a new account its confirmation email, counted over every account sharing its mailbox
    /// key (the settings' RESEND_COOLDOWN and RESEND_DAILY_CAP; `ResendPolicy::default()` unless
    /// set). A registration beyond them stores the account without an email.
    #[must_use]
    pub fn with_registration_policy(mut self, policy: ResendPolicy) -> Self {
        self.registration_policy = policy;
        self
    }

    /// Whether this store talks to SQLite (otherwise PostgreSQL).
    pub fn is_sqlite(&self) -> bool {
        self.backend() == Some(DbBackend::Sqlite)
    }

    /// Whether this store talks to PostgreSQL, where a batch is one hand-written statement.
    fn is_postgres(&self) -> bool {
        self.backend() == Some(DbBackend::Postgres)
    }

    /// The backend, or `None` for a disconnected connection. (Unlike
    /// `DatabaseConnection::get_database_backend`, this never panics.)
    fn backend(&self) -> Option<DbBackend> {
        match &self.db.inner {
            DatabaseConnectionType::SqlxPostgresPoolConnection(_) => Some(DbBackend::Postgres),
            DatabaseConnectionType::SqlxSqlitePoolConnection(_) => Some(DbBackend::Sqlite),
            _ => None,
        }
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.db, None).await.db()
    }

    /// The names of the migrations not yet applied, oldest first. Does not write anything (not
    /// even the migrations table).
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Migrator::get_pending_migrations_read_only(&self.db)
            .await
            .db()?
            .iter()
            .map(|m| m.name().to_owned())
            .collect())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.db()
    }

    /// Closes every connection of the pool (shared by all clones); later calls fail as
    /// unavailable.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.db.clone().close().await.db()
    }

    /// Runs `work` in a write transaction and ends it exactly once: a commit when the work says
    /// [`Ending::Commit`], a rollback when it says [`Ending::Rollback`] or fails. It runs
    /// [`detached`], so it always ends in one of the two.
    ///
    /// On SQLite the transaction takes the write lock at once (`BEGIN IMMEDIATE`), waiting up to
    /// the busy timeout, so that it cannot fail half-way when upgrading a read to a write.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t DatabaseTransaction) -> Work<'t, T> + Send + 'static,
    {
        let db = self.db.clone();
        detached(async move {
            let txn = db
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await
                .db()?;
            let (commit, answer) = match work(&txn).await {
                Ok(Ending::Commit(answer)) => (true, Ok(answer)),
                Ok(Ending::Rollback(answer)) => (false, Ok(answer)),
                Err(error) => (false, Err(error)),
            };
            if commit {
                txn.commit().await.db()?;
            } else if let Err(error) = txn.rollback().await {
                // The answer stands; the connection goes back to the pool either way.
                tracing::debug!(%error, "rollback failed");
            }
            answer
        })
        .await
    }
}

/// Runs `work` on a task of its own and waits for it. A caller that stops waiting (a visitor who
/// hangs up, a request timeout, a shutdown) then cannot cancel it half-way through a
/// transaction: cancelled mid-statement, the transaction's drop-time rollback can fail to take
/// the connection's lock, and the pooled connection stays inside an open transaction that
/// silently swallows the later writes made on it. Every transaction runs through here
/// ([`SeaStore::write`]), and so does a registration.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::spawn(work)
        .await
        .map_err(|e| StoreError::Unavailable(format!("the database task did not finish: {e}")))?
}

#[cfg(any(test, feature = "test-util"))]
impl SeaStore {
    /// The underlying connection, for tests that look at or poke the database directly.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// A store over a disconnected connection, whose queries fail: a placeholder for test
    /// fixtures. (SeaORM panics when a query is *built* for it: use only `Debug` and `close`.)
    pub fn disconnected() -> Self {
        Self {
            db: DatabaseConnection::default(),
            registration_policy: ResendPolicy::default(),
            webhooks: webhooks::Webhooks::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_database_is_unavailable_not_a_generic_error() {
        let err = SeaStore::connect("postgres://postgres@127.0.0.1:1/none")
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
    }

    #[test]
    fn sqlite_targets() {
        assert_eq!(sqlite_target("postgres://u:p@h/db"), None);
        assert_eq!(sqlite_target("sqlite::memory:"), Some(SqliteTarget::Memory));
        assert_eq!(
            sqlite_target("sqlite://:memory:"),
            Some(SqliteTarget::Memory)
        );
        assert_eq!(
            sqlite_target("sqlite:file:x?mode=memory&cache=shared"),
            Some(SqliteTarget::Memory)
        );
        assert_eq!(
            sqlite_target("sqlite://var/app.db?mode=rwc"),
            Some(SqliteTarget::File(PathBuf::from("var/app.db")))
        );
        assert_eq!(
            sqlite_target("sqlite:///tmp/x/app.db"),
            Some(SqliteTarget::File(PathBuf::from("/tmp/x/app.db")))
        );
        assert_eq!(
            sqlite_target("sqlite:app.db"),
            Some(SqliteTarget::File(PathBuf::from("app.db")))
        );
    }

    #[test]
    fn prepared_statements_lost_to_a_pooler_get_a_hint() {
        let doubled = r#"Query Error: error returned from database: prepared statement "sqlx_s_1" already exists"#;
        assert!(with_pooler_hint(doubled.to_owned()).ends_with(POOLER_HINT));
        let missing = r#"prepared statement "sqlx_s_12" does not exist"#;
        assert!(with_pooler_hint(missing.to_owned()).contains("max_prepared_statements"));
        let other = "duplicate key value violates unique constraint";
        assert_eq!(with_pooler_hint(other.to_owned()), other);
    }

    #[tokio::test]
    async fn connection_errors_do_not_repeat_the_url() {
        for url in [
            "postgres://user:hunter2@[::1/db",
            "mysql://user:hunter2@localhost/db",
            "nonsense:hunter2",
        ] {
            let err = SeaStore::connect(url).await.unwrap_err();
            let message = err.to_string();
            assert!(!message.contains("hunter2"), "{message}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        }
    }

    #[test]
    fn debug_hides_the_connection() {
        let store = SeaStore::disconnected();
        assert_eq!(
            format!("{store:?}"),
            "SeaStore { backend: None, webhook_endpoints: 0, .. }"
        );
        assert!(!store.is_sqlite());
    }

    #[tokio::test]
    async fn a_transaction_commits_or_rolls_back_as_its_work_says() {
        use sea_orm::{ConnectionTrait, Statement};
        let store = SeaStore::connect("sqlite::memory:").await.unwrap();
        store
            .db
            .execute_unprepared("CREATE TABLE t (n INTEGER)")
            .await
            .unwrap();
        let insert = |n: i64, end: fn(i64) -> Ending<i64>| {
            store.write(move |txn| {
                Box::pin(async move {
                    txn.execute_unprepared(&format!("INSERT INTO t VALUES ({n})"))
                        .await
                        .db()?;
                    if n < 0 {
                        return Err(StoreError::Corrupt("refused".into()));
                    }
                    Ok(end(n))
                })
            })
        };
        assert_eq!(insert(1, Ending::Commit).await.unwrap(), 1);
        assert_eq!(insert(2, Ending::Rollback).await.unwrap(), 2);
        assert!(insert(-3, Ending::Commit).await.is_err());
        let rows = store
            .db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT n FROM t ORDER BY n",
            ))
            .await
            .unwrap();
        let kept: Vec<i64> = rows.iter().map(|r| r.try_get("", "n").unwrap()).collect();
        assert_eq!(kept, [1], "only the committed row stays");
    }
}
