//! The hand-written PostgreSQL statements: each does a whole call, or a whole batch of calls,
//! in one statement, so one round trip and one commit. SQLite goes through SeaORM's query
//! builder instead (`users`, `messages`), one row at a time.
//!
//! Batches travel as one JSON parameter, unpacked with `jsonb_to_recordset`; lookups use
//! `= ANY(ARRAY(…))` and scalar subqueries rather than joins, which PostgreSQL would plan as a
//! scan of the whole table.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use domain::{EmailAddress, MessageId, MessageKind, MessageStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::Db as _;
use super::rows::new_user;
use super::users::registered_before;
use crate::{ConfirmOutcome, Registration, StoreError};

/// [`UserStore::register`](crate::UserStore::register): the user and the owed message are
/// inserted together or not at all; an existing key (`ON CONFLICT DO NOTHING` on the unique
/// `email_key`, also under concurrency) inserts neither.
pub(super) async fn register(
    db: &DatabaseConnection,
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
    let Some(row) = db.query_one_raw(statement).await.db()? else {
        return Ok(Registration::AlreadyRegistered);
    };
    let user_id: i64 = row.try_get("", "user_id").db()?;
    let message_id: i64 = row.try_get("", "id").db()?;
    tracing::debug!(user = user_id, message_id, email = %email.masked(), "registered");
    Ok(Registration::Created {
        user: new_user(user_id, email.clone(), now),
        message: MessageId(message_id),
    })
}

/// [`UserStore::register_many`](crate::UserStore::register_many) in one statement.
pub(super) async fn register_many(
    db: &DatabaseConnection,
    emails: Vec<EmailAddress>,
    now: DateTime<Utc>,
) -> Result<Vec<Registration>, StoreError> {
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
    for row in db.query_all_raw(statement).await.db()? {
        let key: String = row.try_get("", "email_key").db()?;
        let ids = (
            row.try_get("", "user_id").db()?,
            row.try_get("", "id").db()?,
        );
        created.insert(key, ids);
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
                    user: new_user(user_id, email, now),
                    message: MessageId(message_id),
                },
                None => Registration::AlreadyRegistered,
            }
        })
        .collect())
}

/// [`UserStore::confirm_many`](crate::UserStore::confirm_many) for links of distinct accounts, in
/// one statement: the answer for each link, by its address's key.
pub(super) async fn confirm_distinct(
    db: &DatabaseConnection,
    links: &[(&EmailAddress, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<HashMap<String, ConfirmOutcome>, StoreError> {
    let rows: Vec<serde_json::Value> = links
        .iter()
        .map(|(email, issued_at)| {
            serde_json::json!({
                "email_key": email.key(),
                "before": registered_before(*issued_at)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            })
        })
        .collect();
    // The final SELECT sees the rows as they were before the UPDATE in the same statement, so
    // `was_confirmed` tells AlreadyConfirmed from Stale.
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
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
    let mut answers = HashMap::new();
    for row in db.query_all_raw(statement).await.db()? {
        let key: String = row.try_get("", "email_key").db()?;
        let now_confirmed: bool = row.try_get("", "now_confirmed").db()?;
        let was_confirmed: Option<bool> = row.try_get("", "was_confirmed").db()?;
        let outcome = match (now_confirmed, was_confirmed) {
            (true, _) => ConfirmOutcome::Confirmed,
            (false, None) => ConfirmOutcome::NotFound,
            (false, Some(true)) => ConfirmOutcome::AlreadyConfirmed,
            (false, Some(false)) => ConfirmOutcome::Stale,
        };
        answers.insert(key, outcome);
    }
    Ok(answers)
}

/// [`MessageStore::mark_sent_many`](crate::MessageStore::mark_sent_many): one atomic statement,
/// one round trip for the whole batch. The time between the provider accepting a message and it
/// being recorded as sent is the window in which a crash causes a duplicate, so it is kept as
/// short as the database allows. Returns the ids recorded (those that still exist).
pub(super) async fn mark_sent_many(
    db: &DatabaseConnection,
    sent: &[(MessageId, Option<String>)],
    now: DateTime<Utc>,
) -> Result<HashSet<i64>, StoreError> {
    let rows: Vec<serde_json::Value> = sent
        .iter()
        .map(|(id, provider_id)| serde_json::json!({ "id": id.0, "pid": provider_id }))
        .collect();
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
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
    db.query_all_raw(statement)
        .await
        .db()?
        .iter()
        .map(|row| row.try_get::<i64>("", "id").db())
        .collect()
}

/// A condition, true for every row, that turns `synchronous_commit` off for the statement's own
/// (implicit) transaction: a claim does not wait for its WAL to reach the disk, and stays one
/// round trip.
///
/// The send that follows does not depend on it, and the `mark_sent` after the send flushes the
/// WAL up to and including it. A database crash in between can forget the claim, so another
/// worker may then send the message again (at-least-once, as after any crash); it saves a disk
/// flush per batch, which is most of a claim's time. (The subquery runs once, as an InitPlan;
/// when no row qualifies nothing is written, and nothing waits for a flush anyway.)
pub(super) fn without_waiting_for_the_disk() -> Expr {
    Expr::cust("(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL")
}
