//! The SeaORM adapter: [`UserStore`] and [`MessageStore`] on PostgreSQL or SQLite.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use domain::{
    EmailAddress, MessageId, MessageKind, MessageRecord, MessageStatus, OwedMessage, User, UserId,
    UserSummary,
};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DatabaseConnectionType, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    NotSet, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RuntimeErr, Set, SqlErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::entities::{email_attempt, email_message, user};
use crate::{
    Attempt, Claim, ConfirmOutcome, DeliveryStats, MessageQuery, MessageStore, Registration,
    Resend, ResendPolicy, StoreError, UserStore,
};

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
/// How far the clock of the process that issued a confirmation token may lag behind the clock
/// of the one that registered the account (see `UserStore::confirm`).
pub const CLOCK_SKEW_TOLERANCE: TimeDelta = TimeDelta::seconds(60);
/// The states of a message still owed.
const OWED: [&str; 3] = ["queued", "sending", "retrying"];
/// `last_error` is cut to this many characters.
const MAX_ERROR_CHARS: usize = 1000;

/// [`UserStore`] and [`MessageStore`] over a SeaORM connection pool (PostgreSQL or SQLite).
///
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct SeaStore {
    db: DatabaseConnection,
}

/// Never prints the connection (its options may hold the URL, and the URL a password).
impl fmt::Debug for SeaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeaStore")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
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
                        DbErr::Custom(format!(
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
            .map_err(|e| redact_url(e, url))?;
        Ok(Self::new(db))
    }

    /// Wraps an existing connection (which should have been opened with the settings of
    /// [`SeaStore::connect`]). Note that SeaORM panics when building a query for a
    /// `DatabaseConnection::default()` (disconnected) connection, so pass a connected one.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The underlying connection, for health checks, tests and one-off SQL.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Whether this store talks to SQLite (otherwise PostgreSQL).
    pub fn is_sqlite(&self) -> bool {
        self.backend() == Some(DbBackend::Sqlite)
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
        Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// The names of the migrations not yet applied, oldest first. Does not write anything (not
    /// even the migrations table).
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Migrator::get_pending_migrations_read_only(&self.db)
            .await?
            .iter()
            .map(|m| m.name().to_owned())
            .collect())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await?;
        Ok(())
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), waiting up to the busy timeout, so that it cannot fail half-way when
    /// upgrading a read to a write.
    async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
    }
}

impl SeaStore {
    /// [`UserStore::register`] on PostgreSQL: one statement, so one round trip and one commit.
    /// The user and the owed message are inserted together or not at all; an existing key
    /// (`ON CONFLICT DO NOTHING` on the unique `email_key`, also under concurrency) inserts
    /// neither.
    async fn register_postgres(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH u AS (INSERT INTO users (email, email_key, confirmed, email_sent, registered_on) \
             VALUES ($1, $2, FALSE, FALSE, $3) ON CONFLICT (email_key) DO NOTHING RETURNING id), \
             m AS (INSERT INTO email_messages (user_id, kind, recipient, status, attempts, \
             next_attempt_at, created_at, updated_at) \
             SELECT id, $4, $1, $5, 0, $3, $3, $3 FROM u RETURNING id, user_id) \
             SELECT user_id, id FROM m",
            [
                email.as_str().into(),
                email.key().into(),
                now.into(),
                MessageKind::Confirm.as_str().into(),
                MessageStatus::Queued.as_str().into(),
            ],
        );
        let Some(row) = self.db.query_one_raw(statement).await? else {
            return Ok(Registration::AlreadyRegistered);
        };
        let user_id: i64 = row.try_get("", "user_id")?;
        let message_id: i64 = row.try_get("", "id")?;
        tracing::debug!(user = user_id, message_id, email = %email.masked(), "registered");
        Ok(Registration::Created {
            user: User {
                id: UserId(user_id),
                email: email.clone(),
                confirmed: false,
                email_sent: false,
                registered_on: now,
                confirmed_on: None,
            },
            message: MessageId(message_id),
        })
    }

    /// Records a failed attempt: `status` (retrying or dead), the error, and for a retry the next
    /// attempt time; releases the lease. A late failure report never undoes a send recorded by
    /// another worker, so rows already `sent` are left alone.
    async fn record_failure(
        &self,
        id: MessageId,
        status: MessageStatus,
        retry_at: Option<DateTime<Utc>>,
        error: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let this = self.clone();
        detached(async move {
            use email_message::Column;
            let now = ts(now);
            let error = truncate_chars(error, MAX_ERROR_CHARS);
            let mut update = email_message::Entity::update_many()
                .col_expr(Column::Status, Expr::value(status.as_str()))
                .col_expr(Column::LastError, Expr::value(error.clone()))
                .col_expr(Column::LeaseUntil, Expr::value(None::<DateTime<Utc>>))
                .col_expr(Column::UpdatedAt, Expr::value(now));
            if let Some(at) = retry_at {
                update = update.col_expr(Column::NextAttemptAt, Expr::value(ts(at)));
            }
            let txn = this.begin_write().await?;
            let result = async {
                let updated = update
                    .filter(Column::Id.eq(id.0))
                    .filter(Column::Status.ne(MessageStatus::Sent.as_str()))
                    .exec(&txn)
                    .await?;
                if updated.rows_affected == 0 {
                    return Ok::<bool, DbErr>(false);
                }
                let attempts = email_message::Entity::find_by_id(id.0)
                    .select_only()
                    .column(Column::Attempts)
                    .into_tuple::<i32>()
                    .one(&txn)
                    .await?
                    .unwrap_or(0);
                record_attempt(&txn, id, attempts, status, Some(error), None, now).await?;
                Ok(true)
            }
            .await;
            match result {
                Ok(true) => txn.commit().await?,
                Ok(false) => {
                    abandon(txn).await;
                    tracing::warn!(message_id = %id, %status, "failure not recorded: message already sent or gone");
                }
                Err(e) => {
                    abandon(txn).await;
                    return Err(e.into());
                }
            }
            Ok(())
        })
        .await
    }
}

/// Runs `work` on a task of its own and waits for it. A caller that stops waiting (a visitor who
/// hangs up, a request timeout, a shutdown) then cannot cancel it half-way through a
/// transaction: cancelled mid-statement, the transaction's drop-time rollback can fail to take
/// the connection's lock, and the pooled connection stays inside an open transaction that
/// silently swallows the later writes made on it. Every method that opens a transaction runs
/// through here, so it always ends in a commit or a rollback.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::spawn(work)
        .await
        .map_err(|e| StoreError::Unavailable(format!("the database task did not finish: {e}")))?
}

/// A link issued at `issued_at` (whole seconds) is for an account registered before this: tokens
/// carry whole seconds, and the worker that issued the token may run on a host whose clock is a
/// little behind the server's that registered the account, so a link is for this account if it
/// was issued no earlier than [`CLOCK_SKEW_TOLERANCE`] before it.
fn registered_before(issued_at: DateTime<Utc>) -> DateTime<Utc> {
    ts(issued_at + TimeDelta::seconds(1) + CLOCK_SKEW_TOLERANCE)
}

/// Timestamps are stored to the microsecond (PostgreSQL's precision), on every backend alike.
fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// Cuts `s` to at most `max` characters.
fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((end, _)) = s.char_indices().nth(max) {
        s.truncate(end);
    }
    s
}

/// The columns of a [`UserSummary`], in the order `recent_users` selects them.
type SummaryColumns = (i64, String, bool, bool);

/// A stored address, which was valid when it was written.
fn stored_address(id: i64, email: &str) -> Result<EmailAddress, StoreError> {
    EmailAddress::parse(email)
        .map_err(|_| StoreError::Corrupt(format!("user {id} has an invalid email address")))
}

fn user_from_model(m: user::Model) -> Result<User, StoreError> {
    Ok(User {
        id: UserId(m.id),
        email: stored_address(m.id, &m.email)?,
        confirmed: m.confirmed,
        email_sent: m.email_sent,
        registered_on: m.registered_on,
        confirmed_on: m.confirmed_on,
    })
}

fn summary_from_columns(
    (id, email, confirmed, email_sent): SummaryColumns,
) -> Result<UserSummary, StoreError> {
    Ok(UserSummary {
        id: UserId(id),
        email: stored_address(id, &email)?,
        confirmed,
        email_sent,
    })
}

fn parse_status(id: i64, status: &str) -> Result<MessageStatus, StoreError> {
    MessageStatus::from_str(status)
        .map_err(|e| StoreError::Corrupt(format!("email message {id}: {e}")))
}

fn message_from_model(m: email_message::Model) -> Result<OwedMessage, StoreError> {
    let recipient = EmailAddress::parse(&m.recipient).map_err(|_| {
        StoreError::Corrupt(format!("email message {} has an invalid recipient", m.id))
    })?;
    let kind = MessageKind::from_str(&m.kind)
        .map_err(|e| StoreError::Corrupt(format!("email message {}: {e}", m.id)))?;
    let status = parse_status(m.id, &m.status)?;
    let attempts = u32::try_from(m.attempts).map_err(|_| {
        StoreError::Corrupt(format!(
            "email message {} has a negative attempt count",
            m.id
        ))
    })?;
    Ok(OwedMessage {
        id: MessageId(m.id),
        user_id: UserId(m.user_id),
        kind,
        recipient,
        status,
        attempts,
        created_at: m.created_at,
    })
}

fn record_from_model(m: email_message::Model) -> Result<MessageRecord, StoreError> {
    Ok(MessageRecord {
        last_error: m.last_error.clone(),
        provider_message_id: m.provider_message_id.clone(),
        next_attempt_at: m.next_attempt_at,
        updated_at: m.updated_at,
        sent_at: m.sent_at,
        message: message_from_model(m)?,
    })
}

fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Rolls back, ignoring failure: used on paths that already have an answer or an error, where
/// the transaction would be rolled back on drop anyway.
async fn abandon(txn: DatabaseTransaction) {
    if let Err(e) = txn.rollback().await {
        tracing::debug!(error = %e, "rollback failed");
    }
}

/// Records a finished attempt of message `id`.
async fn record_attempt(
    txn: &DatabaseTransaction,
    id: MessageId,
    attempt: i32,
    outcome: MessageStatus,
    error: Option<String>,
    provider_message_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    email_attempt::ActiveModel {
        id: NotSet,
        message_id: Set(id.0),
        attempt: Set(attempt),
        outcome: Set(outcome.as_str().to_owned()),
        error: Set(error),
        provider_message_id: Set(provider_message_id),
        finished_at: Set(now),
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// Inserts a `queued` confirmation message for `user_id`, due at `now`.
async fn owe_confirmation(
    txn: &DatabaseTransaction,
    user_id: i64,
    recipient: &str,
    now: DateTime<Utc>,
) -> Result<MessageId, DbErr> {
    let message = email_message::ActiveModel {
        id: NotSet,
        user_id: Set(user_id),
        kind: Set(MessageKind::Confirm.as_str().to_owned()),
        recipient: Set(recipient.to_owned()),
        status: Set(MessageStatus::Queued.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_until: Set(None),
        last_error: Set(None),
        provider_message_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        sent_at: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(MessageId(message.id))
}

/// The body of [`UserStore::resend`], inside its write transaction. On PostgreSQL the user's row
/// is locked (`FOR UPDATE`) so that concurrent resends for one account run one after the other;
/// SQLite's `BEGIN IMMEDIATE` already serialises writers.
async fn resend_in(
    txn: &DatabaseTransaction,
    email: &EmailAddress,
    policy: ResendPolicy,
    now: DateTime<Utc>,
    sqlite: bool,
) -> Result<Resend, StoreError> {
    use email_message::Column;
    let mut find = user::Entity::find().filter(user::Column::EmailKey.eq(email.key()));
    if !sqlite {
        find = find.lock_exclusive();
    }
    let Some(account) = find.one(txn).await? else {
        return Ok(Resend::NotRegistered);
    };
    if account.confirmed {
        return Ok(Resend::AlreadyConfirmed);
    }
    let confirmations = || {
        email_message::Entity::find()
            .filter(Column::UserId.eq(account.id))
            .filter(Column::Kind.eq(MessageKind::Confirm.as_str()))
    };
    let pending = confirmations()
        .filter(Column::Status.is_in(OWED))
        .count(txn)
        .await?;
    if pending > 0 {
        return Ok(Resend::Pending);
    }
    let newest = confirmations()
        .select_only()
        .column_as(Column::CreatedAt.max(), "newest")
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(txn)
        .await?
        .flatten();
    if newest.is_some_and(|at| now < at + policy.cooldown) {
        return Ok(Resend::CoolingDown);
    }
    let today = confirmations()
        .filter(Column::CreatedAt.gt(now - TimeDelta::days(1)))
        .count(txn)
        .await?;
    if today >= u64::from(policy.daily_cap) {
        return Ok(Resend::DailyCapReached);
    }
    // To the address as the account has it, whatever case the form used.
    let message = owe_confirmation(txn, account.id, &account.email, now).await?;
    Ok(Resend::Queued(message))
}

/// The condition under which a message may be claimed at `now`: `queued` (whatever its next
/// attempt time), `retrying` with its next attempt time reached, or `sending` with an expired
/// lease.
fn claimable_at(now: DateTime<Utc>) -> Condition {
    use email_message::Column;
    Condition::any()
        .add(Column::Status.eq(MessageStatus::Queued.as_str()))
        .add(
            Condition::all()
                .add(Column::Status.eq(MessageStatus::Retrying.as_str()))
                .add(Column::NextAttemptAt.lte(now)),
        )
        .add(lease_expired_at(now))
}

/// The condition under which a message is due for (re)publishing at `now`: `queued` or
/// `retrying` with its next attempt time reached, or `sending` with an expired lease.
fn due_at(now: DateTime<Utc>) -> Condition {
    use email_message::Column;
    Condition::any()
        .add(
            Condition::all()
                .add(Column::Status.is_in([
                    MessageStatus::Queued.as_str(),
                    MessageStatus::Retrying.as_str(),
                ]))
                .add(Column::NextAttemptAt.lte(now)),
        )
        .add(lease_expired_at(now))
}

fn lease_expired_at(now: DateTime<Utc>) -> Condition {
    use email_message::Column;
    Condition::all()
        .add(Column::Status.eq(MessageStatus::Sending.as_str()))
        .add(Column::LeaseUntil.lte(now))
}

#[async_trait]
impl UserStore for SeaStore {
    async fn register(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        let this = self.clone();
        let email = email.clone();
        detached(async move {
            let email = &email;
            let now = ts(now);
            if this.backend() == Some(DbBackend::Postgres) {
                return this.register_postgres(email, now).await;
            }
            let key = email.key();
            let txn = this.begin_write().await?;

            let existing = user::Entity::find()
                .filter(user::Column::EmailKey.eq(key.as_str()))
                .one(&txn)
                .await;
            match existing {
                Ok(None) => {}
                Ok(Some(_)) => {
                    abandon(txn).await;
                    return Ok(Registration::AlreadyRegistered);
                }
                Err(e) => {
                    abandon(txn).await;
                    return Err(e.into());
                }
            }

            let inserted = user::ActiveModel {
                id: NotSet,
                email: Set(email.as_str().to_owned()),
                email_key: Set(key),
                confirmed: Set(false),
                email_sent: Set(false),
                registered_on: Set(now),
                confirmed_on: Set(None),
            }
            .insert(&txn)
            .await;
            let user_row = match inserted {
                Ok(row) => row,
                // Someone registered the same address between our check and our insert.
                Err(e) if is_unique_violation(&e) => {
                    abandon(txn).await;
                    return Ok(Registration::AlreadyRegistered);
                }
                Err(e) => {
                    abandon(txn).await;
                    return Err(e.into());
                }
            };

            let message = match owe_confirmation(&txn, user_row.id, email.as_str(), now).await {
                Ok(id) => id,
                Err(e) => {
                    abandon(txn).await;
                    return Err(e.into());
                }
            };

            let user = user_from_model(user_row)?;
            txn.commit().await?;
            tracing::debug!(user_id = %user.id, message_id = %message, to = %email.masked(), "registered");
            Ok(Registration::Created { user, message })
        })
        .await
    }

    async fn register_many(
        &self,
        emails: Vec<EmailAddress>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Registration>, StoreError> {
        if self.backend() != Some(DbBackend::Postgres) {
            // SQLite writes one transaction at a time anyway.
            let mut out = Vec::with_capacity(emails.len());
            for email in &emails {
                out.push(self.register(email, now).await?);
            }
            return Ok(out);
        }
        let now = ts(now);
        // The first entry of each key goes into the statement; later ones find it registered.
        let mut seen = HashSet::new();
        let first: Vec<bool> = emails.iter().map(|e| seen.insert(e.key())).collect();
        let rows: Vec<serde_json::Value> = emails
            .iter()
            .zip(&first)
            .filter(|(_, first)| **first)
            .map(|(e, _)| serde_json::json!({ "email": e.as_str(), "email_key": e.key() }))
            .collect();
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH i AS (SELECT * FROM jsonb_to_recordset($1::text::jsonb) \
             AS r(email text, email_key text)), \
             u AS (INSERT INTO users (email, email_key, confirmed, email_sent, registered_on) \
             SELECT email, email_key, FALSE, FALSE, $2 FROM i \
             ON CONFLICT (email_key) DO NOTHING RETURNING id, email, email_key), \
             m AS (INSERT INTO email_messages (user_id, kind, recipient, status, attempts, \
             next_attempt_at, created_at, updated_at) \
             SELECT id, $3, email, $4, 0, $2, $2, $2 FROM u RETURNING id, user_id) \
             SELECT u.email_key, m.user_id, m.id FROM m JOIN u ON u.id = m.user_id",
            [
                serde_json::Value::Array(rows).to_string().into(),
                now.into(),
                MessageKind::Confirm.as_str().into(),
                MessageStatus::Queued.as_str().into(),
            ],
        );
        let mut created: HashMap<String, (i64, i64)> = HashMap::new();
        for row in self.db.query_all_raw(statement).await? {
            let key: String = row.try_get("", "email_key")?;
            created.insert(key, (row.try_get("", "user_id")?, row.try_get("", "id")?));
        }
        Ok(emails
            .into_iter()
            .zip(first)
            .map(|(email, first)| {
                let entry = if first {
                    created.remove(&email.key())
                } else {
                    None
                };
                match entry {
                    Some((user_id, message_id)) => Registration::Created {
                        user: User {
                            id: UserId(user_id),
                            email,
                            confirmed: false,
                            email_sent: false,
                            registered_on: now,
                            confirmed_on: None,
                        },
                        message: MessageId(message_id),
                    },
                    None => Registration::AlreadyRegistered,
                }
            })
            .collect())
    }

    async fn confirm_many(
        &self,
        links: Vec<(EmailAddress, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ConfirmOutcome>, StoreError> {
        // Several links of one account in a batch: the first goes in the statement, the others
        // are confirmed one by one afterwards, as if they had come later.
        let mut seen = HashSet::new();
        let first: Vec<bool> = links.iter().map(|(e, _)| seen.insert(e.key())).collect();
        let mut out: Vec<Option<ConfirmOutcome>> = vec![None; links.len()];
        if self.backend() == Some(DbBackend::Postgres) {
            let now = ts(now);
            let rows: Vec<serde_json::Value> = links
                .iter()
                .zip(&first)
                .filter(|(_, first)| **first)
                .map(|((email, issued_at), _)| {
                    serde_json::json!({
                        "email_key": email.key(),
                        "before": registered_before(*issued_at).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    })
                })
                .collect();
            // The final SELECT sees the rows as they were before the UPDATE in the same
            // statement, so `was_confirmed` tells AlreadyConfirmed from Stale.
            let statement = Statement::from_sql_and_values(
                DbBackend::Postgres,
                // `= ANY(ARRAY(…))` and the scalar subquery keep every access to `users` on its
                // `email_key` index (a join would be planned as a scan of the whole table).
                "WITH i AS (SELECT * FROM jsonb_to_recordset($1::text::jsonb) \
                 AS r(email_key text, before timestamptz)), \
                 c AS (UPDATE users SET confirmed = TRUE, confirmed_on = $2 \
                 WHERE users.email_key = ANY (ARRAY(SELECT email_key FROM i)) \
                 AND users.confirmed = FALSE \
                 AND users.registered_on < \
                 (SELECT before FROM i WHERE i.email_key = users.email_key) \
                 RETURNING users.email_key) \
                 SELECT i.email_key, \
                 EXISTS (SELECT 1 FROM c WHERE c.email_key = i.email_key) AS now_confirmed, \
                 (SELECT u.confirmed FROM users u WHERE u.email_key = i.email_key) \
                 AS was_confirmed FROM i",
                [
                    serde_json::Value::Array(rows).to_string().into(),
                    now.into(),
                ],
            );
            let mut answers: HashMap<String, ConfirmOutcome> = HashMap::new();
            for row in self.db.query_all_raw(statement).await? {
                let key: String = row.try_get("", "email_key")?;
                let now_confirmed: bool = row.try_get("", "now_confirmed")?;
                let was_confirmed: Option<bool> = row.try_get("", "was_confirmed")?;
                let outcome = match (now_confirmed, was_confirmed) {
                    (true, _) => ConfirmOutcome::Confirmed,
                    (false, None) => ConfirmOutcome::NotFound,
                    (false, Some(true)) => ConfirmOutcome::AlreadyConfirmed,
                    (false, Some(false)) => ConfirmOutcome::Stale,
                };
                answers.insert(key, outcome);
            }
            for (((email, _), first), slot) in links.iter().zip(&first).zip(out.iter_mut()) {
                if *first {
                    *slot = answers.remove(&email.key());
                }
            }
        }
        let mut result = Vec::with_capacity(links.len());
        for ((email, issued_at), slot) in links.iter().zip(out) {
            result.push(match slot {
                Some(outcome) => outcome,
                None => self.confirm(email, *issued_at, now).await?,
            });
        }
        Ok(result)
    }

    async fn find_by_email(&self, email: &EmailAddress) -> Result<Option<User>, StoreError> {
        user::Entity::find()
            .filter(user::Column::EmailKey.eq(email.key()))
            .one(&self.db)
            .await?
            .map(user_from_model)
            .transpose()
    }

    async fn confirm(
        &self,
        email: &EmailAddress,
        issued_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome, StoreError> {
        let key = email.key();
        let registered_before = registered_before(issued_at);
        let result = user::Entity::update_many()
            .col_expr(user::Column::Confirmed, Expr::value(true))
            .col_expr(user::Column::ConfirmedOn, Expr::value(ts(now)))
            .filter(user::Column::EmailKey.eq(key.as_str()))
            .filter(user::Column::Confirmed.eq(false))
            .filter(user::Column::RegisteredOn.lt(registered_before))
            .exec(&self.db)
            .await?;
        if result.rows_affected > 0 {
            return Ok(ConfirmOutcome::Confirmed);
        }
        let existing = user::Entity::find()
            .select_only()
            .column(user::Column::Confirmed)
            .filter(user::Column::EmailKey.eq(key))
            .into_tuple::<bool>()
            .one(&self.db)
            .await?;
        Ok(match existing {
            None => ConfirmOutcome::NotFound,
            Some(true) => ConfirmOutcome::AlreadyConfirmed,
            Some(false) => ConfirmOutcome::Stale,
        })
    }

    async fn resend(
        &self,
        email: &EmailAddress,
        policy: ResendPolicy,
        now: DateTime<Utc>,
    ) -> Result<Resend, StoreError> {
        let this = self.clone();
        let email = email.clone();
        detached(async move {
            let email = &email;
            let now = ts(now);
            let txn = this.begin_write().await?;
            let outcome = resend_in(&txn, email, policy, now, this.is_sqlite()).await;
            match outcome {
                Ok(Resend::Queued(id)) => {
                    txn.commit().await?;
                    Ok(Resend::Queued(id))
                }
                Ok(other) => {
                    abandon(txn).await;
                    Ok(other)
                }
                Err(e) => {
                    abandon(txn).await;
                    Err(e)
                }
            }
        })
        .await
    }

    async fn recent_users(&self, limit: u64) -> Result<Vec<UserSummary>, StoreError> {
        // Only the columns a summary shows, read by position: this feeds the home page's users
        // table, every row read is decoded, and reading a `Model` looks each column up by name
        // in each row.
        use user::Column as C;
        user::Entity::find()
            .select_only()
            .columns([C::Id, C::Email, C::Confirmed, C::EmailSent])
            .order_by_desc(C::Id)
            .limit(limit)
            .into_tuple::<SummaryColumns>()
            .all(&self.db)
            .await?
            .into_iter()
            .map(summary_from_columns)
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The inherent method (callers holding a `SeaStore` use it directly).
        SeaStore::ping(self).await
    }
}

#[async_trait]
impl MessageStore for SeaStore {
    async fn claim(
        &self,
        id: MessageId,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> Result<Claim, StoreError> {
        self.claim_many(vec![id], now, lease)
            .await?
            .pop()
            .unwrap_or(Ok(Claim::Missing))
    }

    async fn claim_many(
        &self,
        ids: Vec<MessageId>,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> Result<Vec<Result<Claim, StoreError>>, StoreError> {
        use email_message::Column;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let now = ts(now);
        let lease_until = ts(now
            .checked_add_signed(lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC));
        // One statement (UPDATE … RETURNING): the rows read back are the ones it wrote.
        let mut update = email_message::Entity::update_many()
            .col_expr(Column::Status, Expr::value(MessageStatus::Sending.as_str()))
            .col_expr(Column::LeaseUntil, Expr::value(lease_until))
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::Id.is_in(ids.iter().map(|id| id.0)))
            .filter(claimable_at(now));
        if self.backend() == Some(DbBackend::Postgres) {
            // The claim does not wait for its WAL to reach the disk: `synchronous_commit` is off
            // for its own (implicit) transaction only, set by the statement itself so that the
            // claim stays one round trip. The send that follows does not depend on it, and the
            // `mark_sent` after the send flushes the WAL up to and including it. A database
            // crash in between can forget the claim, so another worker may then send the
            // message again (at-least-once, as after any crash); it saves a disk flush per
            // batch, which is most of a claim's time. (The subquery runs once, as an InitPlan;
            // when no row qualifies nothing is written, and nothing waits for a flush anyway.)
            update = update.filter(Expr::cust(
                "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL",
            ));
        }
        let claimed = update.exec_with_returning(&self.db).await?;
        let mut claimed: HashMap<i64, email_message::Model> =
            claimed.into_iter().map(|m| (m.id, m)).collect();
        // Why the others were not claimed (rare: a duplicate job, a retry not yet due).
        let unclaimed: Vec<i64> = ids
            .iter()
            .map(|id| id.0)
            .filter(|id| !claimed.contains_key(id))
            .collect();
        let statuses: HashMap<i64, String> = if unclaimed.is_empty() {
            HashMap::new()
        } else {
            email_message::Entity::find()
                .select_only()
                .column(Column::Id)
                .column(Column::Status)
                .filter(Column::Id.is_in(unclaimed))
                .into_tuple::<(i64, String)>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect()
        };
        let mut handed_out = HashSet::new();
        let answers = ids
            .iter()
            .map(|id| {
                if let Some(row) = claimed.remove(&id.0) {
                    handed_out.insert(id.0);
                    let message = message_from_model(row)?;
                    tracing::debug!(message_id = %id, attempts = message.attempts, %lease_until, "claimed");
                    return Ok(Claim::Claimed(message));
                }
                if handed_out.contains(&id.0) {
                    // The same id twice in one batch: the first entry has it.
                    return Ok(Claim::NotClaimable);
                }
                Ok(match statuses.get(&id.0) {
                    None => Claim::Missing,
                    Some(status) => match parse_status(id.0, status)? {
                        MessageStatus::Sent => Claim::AlreadySent,
                        _ => Claim::NotClaimable,
                    },
                })
            })
            .collect();
        Ok(answers)
    }

    async fn mark_sent(
        &self,
        id: MessageId,
        provider_message_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.mark_sent_many(vec![(id, provider_message_id)], now)
            .await
    }

    async fn mark_sent_many(
        &self,
        sent: Vec<(MessageId, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if sent.is_empty() {
            return Ok(());
        }
        let now = ts(now);
        if self.backend() == Some(DbBackend::Postgres) {
            // One atomic statement, one round trip for the whole batch: the time between the
            // provider accepting a message and it being recorded as sent is the window in which a
            // crash causes a duplicate, so keep it as short as the database allows.
            let rows: Vec<serde_json::Value> = sent
                .iter()
                .map(|(id, provider_id)| serde_json::json!({ "id": id.0, "pid": provider_id }))
                .collect();
            let statement = Statement::from_sql_and_values(
                DbBackend::Postgres,
                // `= ANY(ARRAY(…))` keeps both UPDATEs on their primary keys: a join with the
                // JSON rows would be planned as a hash join over a scan of the whole table.
                "WITH s AS (SELECT DISTINCT ON (id) id, pid \
                 FROM jsonb_to_recordset($1::text::jsonb) AS r(id bigint, pid text)), \
                 m AS (UPDATE email_messages e SET status = $2, sent_at = $3, \
                 provider_message_id = (SELECT pid FROM s WHERE s.id = e.id), \
                 lease_until = NULL, updated_at = $3 \
                 WHERE e.id = ANY (ARRAY(SELECT id FROM s)) \
                 RETURNING e.id, e.user_id, e.attempts, e.provider_message_id), \
                 a AS (INSERT INTO email_attempts \
                 (message_id, attempt, outcome, provider_message_id, finished_at) \
                 SELECT id, attempts, $2, provider_message_id, $3 FROM m), \
                 u AS (UPDATE users SET email_sent = TRUE \
                 WHERE id = ANY (ARRAY(SELECT user_id FROM m)) AND NOT email_sent) \
                 SELECT id FROM m",
                [
                    serde_json::Value::Array(rows).to_string().into(),
                    MessageStatus::Sent.as_str().into(),
                    now.into(),
                ],
            );
            let recorded: HashSet<i64> = self
                .db
                .query_all_raw(statement)
                .await?
                .iter()
                .map(|row| row.try_get::<i64>("", "id"))
                .collect::<Result<_, _>>()?;
            for (id, _) in &sent {
                if !recorded.contains(&id.0) {
                    tracing::warn!(message_id = %id, "mark_sent for a message that no longer exists");
                }
            }
            return Ok(());
        }
        let this = self.clone();
        detached(async move {
            let txn = this.begin_write().await?;
            let result = async {
                for (id, provider_message_id) in sent {
                    mark_sent_in(&txn, id, provider_message_id, now).await?;
                }
                Ok::<(), DbErr>(())
            }
            .await;
            match result {
                Ok(()) => Ok(txn.commit().await?),
                Err(e) => {
                    abandon(txn).await;
                    Err(e.into())
                }
            }
        })
        .await
    }

    async fn mark_retry(
        &self,
        id: MessageId,
        error: String,
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.record_failure(id, MessageStatus::Retrying, Some(retry_at), error, now)
            .await
    }

    async fn mark_dead(
        &self,
        id: MessageId,
        error: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.record_failure(id, MessageStatus::Dead, None, error, now)
            .await
    }

    async fn due(&self, now: DateTime<Utc>, limit: u64) -> Result<Vec<MessageId>, StoreError> {
        use email_message::Column;
        let ids = email_message::Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(due_at(ts(now)))
            .order_by_asc(Column::NextAttemptAt)
            .order_by_asc(Column::Id)
            .limit(limit)
            .into_tuple::<i64>()
            .all(&self.db)
            .await?;
        Ok(ids.into_iter().map(MessageId).collect())
    }

    async fn dead(&self, limit: u64) -> Result<Vec<MessageRecord>, StoreError> {
        use email_message::Column;
        email_message::Entity::find()
            .filter(Column::Status.eq(MessageStatus::Dead.as_str()))
            .order_by_desc(Column::UpdatedAt)
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(record_from_model)
            .collect()
    }

    async fn requeue_dead(
        &self,
        id: Option<MessageId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError> {
        let this = self.clone();
        detached(async move {
            use email_message::Column;
            let now = ts(now);
            let txn = this.begin_write().await?;
            let mut find = email_message::Entity::find()
                .select_only()
                .column(Column::Id)
                .filter(Column::Status.eq(MessageStatus::Dead.as_str()));
            if let Some(id) = id {
                find = find.filter(Column::Id.eq(id.0));
            }
            let ids: Vec<i64> = match find.into_tuple::<i64>().all(&txn).await {
                Ok(ids) => ids,
                Err(e) => {
                    abandon(txn).await;
                    return Err(e.into());
                }
            };
            if !ids.is_empty() {
                let updated = email_message::Entity::update_many()
                    .col_expr(Column::Status, Expr::value(MessageStatus::Queued.as_str()))
                    .col_expr(Column::Attempts, Expr::value(0))
                    .col_expr(Column::NextAttemptAt, Expr::value(now))
                    .col_expr(Column::LeaseUntil, Expr::value(None::<DateTime<Utc>>))
                    .col_expr(Column::UpdatedAt, Expr::value(now))
                    .filter(Column::Id.is_in(ids.clone()))
                    .filter(Column::Status.eq(MessageStatus::Dead.as_str()))
                    .exec(&txn)
                    .await;
                if let Err(e) = updated {
                    abandon(txn).await;
                    return Err(e.into());
                }
            }
            txn.commit().await?;
            Ok(ids.into_iter().map(MessageId).collect())
        })
        .await
    }

    async fn purge_dead(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        use email_message::Column;
        let result = email_message::Entity::delete_many()
            .filter(Column::Status.eq(MessageStatus::Dead.as_str()))
            .filter(Column::UpdatedAt.lt(ts(before)))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    async fn stats(&self) -> Result<DeliveryStats, StoreError> {
        use email_message::Column;
        let counts = email_message::Entity::find()
            .select_only()
            .column(Column::Status)
            .column_as(Column::Id.count(), "n")
            .group_by(Column::Status)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await?;
        let mut stats = DeliveryStats::default();
        for (status, n) in counts {
            let n = u64::try_from(n).unwrap_or(0);
            match parse_status(0, &status)? {
                MessageStatus::Queued => stats.queued = n,
                MessageStatus::Sending => stats.sending = n,
                MessageStatus::Retrying => stats.retrying = n,
                MessageStatus::Sent => stats.sent = n,
                MessageStatus::Dead => stats.dead = n,
            }
        }
        stats.oldest_owed = email_message::Entity::find()
            .select_only()
            .column_as(Column::CreatedAt.min(), "oldest")
            .filter(Column::Status.is_in(OWED))
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(&self.db)
            .await?
            .flatten();
        Ok(stats)
    }

    async fn list(&self, query: MessageQuery) -> Result<Vec<MessageRecord>, StoreError> {
        use email_message::Column;
        let mut select = email_message::Entity::find()
            .order_by_desc(Column::Id)
            .limit(query.limit);
        if let Some(email) = &query.recipient {
            let user_id = user::Entity::find()
                .select_only()
                .column(user::Column::Id)
                .filter(user::Column::EmailKey.eq(email.key()))
                .into_tuple::<i64>()
                .one(&self.db)
                .await?;
            let Some(user_id) = user_id else {
                return Ok(Vec::new());
            };
            select = select.filter(Column::UserId.eq(user_id));
        }
        if let Some(before) = query.before {
            select = select.filter(Column::Id.lt(before.0));
        }
        select
            .all(&self.db)
            .await?
            .into_iter()
            .map(record_from_model)
            .collect()
    }

    async fn get(&self, id: MessageId) -> Result<Option<MessageRecord>, StoreError> {
        email_message::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .map(record_from_model)
            .transpose()
    }

    async fn attempts(&self, id: MessageId) -> Result<Vec<Attempt>, StoreError> {
        email_attempt::Entity::find()
            .filter(email_attempt::Column::MessageId.eq(id.0))
            .order_by_asc(email_attempt::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                Ok(Attempt {
                    attempt: u32::try_from(m.attempt).unwrap_or(0),
                    outcome: parse_status(id.0, &m.outcome)?,
                    error: m.error,
                    provider_message_id: m.provider_message_id,
                    finished_at: m.finished_at,
                })
            })
            .collect()
    }
}

/// [`MessageStore::mark_sent`] of one message, inside a transaction (the SQLite path).
async fn mark_sent_in(
    txn: &DatabaseTransaction,
    id: MessageId,
    provider_message_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use email_message::Column;
    let found = email_message::Entity::find_by_id(id.0)
        .select_only()
        .column(Column::UserId)
        .column(Column::Attempts)
        .into_tuple::<(i64, i32)>()
        .one(txn)
        .await?;
    let Some((user_id, attempts)) = found else {
        tracing::warn!(message_id = %id, "mark_sent for a message that no longer exists");
        return Ok(());
    };
    email_message::Entity::update_many()
        .col_expr(Column::Status, Expr::value(MessageStatus::Sent.as_str()))
        .col_expr(Column::SentAt, Expr::value(now))
        .col_expr(
            Column::ProviderMessageId,
            Expr::value(provider_message_id.clone()),
        )
        .col_expr(Column::LeaseUntil, Expr::value(None::<DateTime<Utc>>))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id.0))
        .exec(txn)
        .await?;
    record_attempt(
        txn,
        id,
        attempts,
        MessageStatus::Sent,
        None,
        provider_message_id,
        now,
    )
    .await?;
    user::Entity::update_many()
        .col_expr(user::Column::EmailSent, Expr::value(true))
        .filter(user::Column::Id.eq(user_id))
        .exec(txn)
        .await?;
    Ok(())
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
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo".to_owned(), 2), "hé");
        assert_eq!(truncate_chars("short".to_owned(), 10), "short");
        let long = "é".repeat(1500);
        assert_eq!(
            truncate_chars(long, MAX_ERROR_CHARS).chars().count(),
            MAX_ERROR_CHARS
        );
    }

    #[test]
    fn timestamps_keep_microseconds() {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(ts(t).timestamp_subsec_nanos(), 123_456_000);
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
        let store = SeaStore::new(DatabaseConnection::default());
        assert_eq!(format!("{store:?}"), "SeaStore { backend: None, .. }");
        assert!(!store.is_sqlite());
    }
}
