//! The hand-written PostgreSQL statements: each does a whole call, or a whole batch of calls,
//! in one statement, so one round trip and one commit. SQLite goes through SeaORM's query
//! builder instead (`users`, `messages`), one row at a time.
//!
//! Batches travel as one JSON parameter, unpacked with `jsonb_to_recordset`; lookups use
//! `= ANY(ARRAY(…))` and scalar subqueries rather than joins, which PostgreSQL would plan as a
//! scan of the whole table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{
    EmailAddress, Locale, MailboxKey, MessageId, MessageKind, MessageStatus, ResendPolicy,
};
use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::Db as _;
use super::mailbox;
use super::rows::new_user;
use super::users::registered_before;
use crate::{ConfirmOutcome, Registration, StoreError};

/// [`UserStore::register`](crate::UserStore::register) and
/// [`UserStore::register_many`](crate::UserStore::register_many) for addresses of distinct keys
/// and distinct mailboxes, in one statement (atomic on its own: run outside a transaction, it
/// costs one round trip and one commit): it inserts the
/// users (`ON CONFLICT (email_key) DO NOTHING` on the unique key, also under concurrency: an
/// existing key inserts nothing), takes one email of the allowance of each new user's mailbox
/// that is not suppressed (see [`mailbox::TAKE`]), and inserts the owed message of each new
/// user whose mailbox took one. One answer per address, in order.
///
/// A new address costs one lookup more than the insert alone (the suppression list) and one
/// upsert on the `mailboxes` primary key. Rows go in mailbox-key order, so two batches that
/// share mailboxes lock their rows in the same order and never wait for each other in a cycle.
pub(super) async fn register_distinct(
    db: &impl ConnectionTrait,
    accounts: &[(EmailAddress, Locale)],
    policy: ResendPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<Registration>, StoreError> {
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows: Vec<(MailboxKey, &EmailAddress, Locale)> = accounts
        .iter()
        .map(|(e, l)| (e.mailbox_key(), e, *l))
        .collect();
    rows.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|(m, e, l)| {
            serde_json::json!({
                "email": e.as_str(),
                "email_key": e.key(),
                "mailbox_key": m.as_str(),
                "locale": l.as_str()
            })
        })
        .collect();
    let [now_v, day_ago, cooled, cap] = mailbox::take_values(policy, now);
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "WITH i AS (SELECT * FROM jsonb_to_recordset($1::text::jsonb) \
             AS r(email text, email_key text, mailbox_key text, locale text)), \
             u AS (INSERT INTO users (email, email_key, mailbox_key, confirmed, email_sent, \
             registered_on, locale) SELECT email, email_key, mailbox_key, FALSE, FALSE, $2, \
             locale FROM i \
             ORDER BY mailbox_key \
             ON CONFLICT (email_key) DO NOTHING RETURNING id, email, email_key, mailbox_key), \
             owed AS (INSERT INTO mailboxes AS b \
             (mailbox_key, last_owed_at, window_started_at, owed_in_window) \
             SELECT u.mailbox_key, $2, $2, 1 FROM u WHERE NOT EXISTS \
             (SELECT 1 FROM suppressions s WHERE s.mailbox_key = u.mailbox_key) \
             ORDER BY u.mailbox_key {take}), \
             m AS (INSERT INTO email_messages (user_id, kind, recipient, status, attempts, \
             next_attempt_at, created_at, updated_at) \
             SELECT id, $6, email, $7, 0, $2, $2, $2 FROM u \
             WHERE u.mailbox_key IN (SELECT mailbox_key FROM owed) \
             RETURNING id, user_id) \
             SELECT u.email_key, u.id AS user_id, (SELECT m.id FROM m WHERE m.user_id = u.id) AS id \
             FROM u",
            take = mailbox::TAKE
        ),
        [
            serde_json::Value::Array(rows).to_string().into(),
            now_v,
            day_ago,
            cooled,
            cap,
            MessageKind::Confirm.as_str().into(),
            MessageStatus::Queued.as_str().into(),
        ],
    );
    let mut created: HashMap<String, (i64, Option<i64>)> = HashMap::new();
    for row in db.query_all_raw(statement).await.db()? {
        let key: String = row.try_get("", "email_key").db()?;
        let ids = (
            row.try_get("", "user_id").db()?,
            row.try_get("", "id").db()?,
        );
        created.insert(key, ids);
    }
    Ok(accounts
        .iter()
        .map(|(email, _)| match created.remove(&email.key()) {
            Some((user_id, Some(message_id))) => {
                tracing::debug!(user = user_id, message_id, email = %email.masked(), "registered");
                Registration::Created {
                    user: new_user(user_id, email.clone(), now),
                    message: MessageId(message_id),
                }
            }
            Some((user_id, None)) => {
                tracing::debug!(user = user_id, email = %email.masked(), "registered; no email owed");
                Registration::CreatedWithoutEmail {
                    user: new_user(user_id, email.clone(), now),
                }
            }
            None => Registration::AlreadyRegistered,
        })
        .collect())
}

/// [`UserStore::confirm_many`](crate::UserStore::confirm_many) for links of distinct accounts, in
/// one statement: the answer for each link, by its address's key.
pub(super) async fn confirm_distinct(
    db: &impl ConnectionTrait,
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

/// A message [`mark_sent_many`] recorded as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SentRow {
    pub(super) id: i64,
    pub(super) user_id: i64,
    pub(super) kind: String,
    pub(super) recipient: String,
    pub(super) provider_message_id: Option<String>,
}

/// [`MessageStore::mark_sent_many`](crate::MessageStore::mark_sent_many): one atomic statement,
/// one round trip for the whole batch. The time between the provider accepting a message and it
/// being recorded as sent is the window in which a crash causes a duplicate, so it is kept as
/// short as the database allows. Sets `email_sent` for the users of confirmation emails (not
/// webhooks). Returns the messages recorded (those that still exist).
pub(super) async fn mark_sent_many(
    db: &impl ConnectionTrait,
    sent: &[(MessageId, Option<String>)],
    now: DateTime<Utc>,
) -> Result<Vec<SentRow>, StoreError> {
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
         RETURNING e.id, e.user_id, e.kind, e.recipient, e.attempts, e.provider_message_id), \
         a AS (INSERT INTO email_attempts \
         (message_id, attempt, outcome, provider_message_id, finished_at) \
         SELECT id, attempts, $2, provider_message_id, $3 FROM m), \
         u AS (UPDATE users SET email_sent = TRUE \
         WHERE id = ANY (ARRAY(SELECT user_id FROM m WHERE kind = $4)) AND NOT email_sent) \
         SELECT id, user_id, kind, recipient, provider_message_id FROM m",
        [
            serde_json::Value::Array(rows).to_string().into(),
            MessageStatus::Sent.as_str().into(),
            now.into(),
            MessageKind::Confirm.as_str().into(),
        ],
    );
    db.query_all_raw(statement)
        .await
        .db()?
        .iter()
        .map(|row| {
            Ok(SentRow {
                id: row.try_get("", "id").db()?,
                user_id: row.try_get("", "user_id").db()?,
                kind: row.try_get("", "kind").db()?,
                recipient: row.try_get("", "recipient").db()?,
                provider_message_id: row.try_get("", "provider_message_id").db()?,
            })
        })
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

/// The planner's estimate of the rows of `table` (`pg_class.reltuples`, kept by ANALYZE and
/// autovacuum): `None` before the table was ever analyzed. Costs one catalogue lookup.
pub(super) async fn estimated_rows(
    db: &impl ConnectionTrait,
    table: &str,
) -> Result<Option<u64>, StoreError> {
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT reltuples::float8 AS n FROM pg_class WHERE oid = to_regclass($1)",
        [table.into()],
    );
    let Some(row) = db.query_one_raw(statement).await.db()? else {
        return Ok(None);
    };
    let rows: f64 = row.try_get("", "n").db()?;
    // -1: never analyzed. Rounded: an estimate has no fraction worth keeping.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a non-negative row estimate far below u64::MAX"
    )]
    Ok((rows >= 0.0).then(|| rows.round() as u64))
}
