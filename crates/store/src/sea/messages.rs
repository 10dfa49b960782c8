//! [`MessageStore`] on the SeaORM connection: the outbox.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use domain::{MessageId, MessageKind, MessageRecord, MessageStatus, WebhookDelivery, WebhookEvent};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, NotSet,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Set,
};

use super::postgres::SentRow;
use super::rows::{
    MAX_ERROR_CHARS, OWED, message_from_model, parse_status, record_from_model, truncate_chars, ts,
};
use super::webhooks::{self, Event, rfc3339};
use super::{Db as _, Ending, SeaStore, accounts, postgres, users};
use crate::entities::{email_attempt, email_message, user};
use crate::{Attempt, Claim, DeliveryStats, MessageQuery, MessageStore, StoreError};

/// The status a claim gives a message: `sending`, or `cancelled` for an email (of any kind) whose
/// recipient's mailbox (the mailbox key of its user) is on the suppression list. (A webhook is
/// sent to the application, not to the mailbox: it is never cancelled so.)
static CLAIMED_STATUS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "CASE WHEN email_messages.kind <> '{}' AND EXISTS (SELECT 1 FROM suppressions s \
         WHERE s.mailbox_key = \
         (SELECT u.mailbox_key FROM users u WHERE u.id = email_messages.user_id)) \
         THEN '{}' ELSE '{}' END",
        MessageKind::Webhook.as_str(),
        MessageStatus::Cancelled.as_str(),
        MessageStatus::Sending.as_str()
    )
});

/// The statuses of a message the provider accepted (see `MessageStatus::was_sent`).
pub(super) const SENT: [&str; 3] = ["sent", "bounced", "complained"];

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

/// Records a finished attempt of message `id`.
async fn record_attempt(
    txn: &DatabaseTransaction,
    id: MessageId,
    attempt: i32,
    outcome: MessageStatus,
    error: Option<String>,
    provider_message_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
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
    .await
    .db()?;
    Ok(())
}

/// [`MessageStore::mark_sent`] of one message, inside a transaction (the SQLite path); the
/// message recorded, if it still exists.
async fn mark_sent_in(
    txn: &DatabaseTransaction,
    id: MessageId,
    provider_message_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<Option<SentRow>, StoreError> {
    use email_message::Column;
    let found = email_message::Entity::find_by_id(id.0)
        .select_only()
        .column(Column::UserId)
        .column(Column::Attempts)
        .column(Column::Kind)
        .column(Column::Recipient)
        .into_tuple::<(i64, i32, String, String)>()
        .one(txn)
        .await
        .db()?;
    let Some((user_id, attempts, kind, recipient)) = found else {
        tracing::warn!(message_id = %id, "mark_sent for a message that no longer exists");
        return Ok(None);
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
        .await
        .db()?;
    record_attempt(
        txn,
        id,
        attempts,
        MessageStatus::Sent,
        None,
        provider_message_id.clone(),
        now,
    )
    .await?;
    if kind == MessageKind::Confirm.as_str() {
        user::Entity::update_many()
            .col_expr(user::Column::EmailSent, Expr::value(true))
            .filter(user::Column::Id.eq(user_id))
            .exec(txn)
            .await
            .db()?;
    }
    Ok(Some(SentRow {
        id: id.0,
        user_id,
        kind,
        recipient,
        provider_message_id,
    }))
}

/// The `email.sent` events of the confirmation emails in `sent`.
fn sent_events(sent: &[SentRow], now: DateTime<Utc>) -> Vec<Event> {
    sent.iter()
        .filter(|row| row.kind == MessageKind::Confirm.as_str())
        .map(|row| {
            Event::new(
                row.user_id,
                &row.recipient,
                WebhookEvent::EmailSent,
                [
                    ("message_id", row.id.into()),
                    ("sent_at", rfc3339(now).into()),
                    (
                        "provider_message_id",
                        row.provider_message_id.clone().into(),
                    ),
                ],
            )
        })
        .collect()
}

/// Records a failed attempt, inside its transaction: `status` (retrying or dead), the error,
/// and for a retry the next attempt time; releases the lease. A late failure report never undoes
/// a send recorded by another worker, so a row already `sent` is left alone (and nothing is
/// committed).
///
/// The death of a confirmation email owes the `email.failed` event to `endpoints`; the ids of
/// the webhook messages are returned.
async fn record_failure_in(
    txn: &DatabaseTransaction,
    id: MessageId,
    status: MessageStatus,
    retry_at: Option<DateTime<Utc>>,
    error: String,
    now: DateTime<Utc>,
    endpoints: &[String],
) -> Result<Ending<Vec<MessageId>>, StoreError> {
    use email_message::Column;
    let mut update = email_message::Entity::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(Column::LastError, Expr::value(error.clone()))
        .col_expr(Column::LeaseUntil, Expr::value(None::<DateTime<Utc>>))
        .col_expr(Column::UpdatedAt, Expr::value(now));
    if let Some(at) = retry_at {
        update = update.col_expr(Column::NextAttemptAt, Expr::value(ts(at)));
    }
    let updated = update
        .filter(Column::Id.eq(id.0))
        .filter(Column::Status.is_not_in(SENT))
        .exec(txn)
        .await
        .db()?;
    if updated.rows_affected == 0 {
        tracing::warn!(message_id = %id, %status, "failure not recorded: message already sent or gone");
        return Ok(Ending::Rollback(Vec::new()));
    }
    let (attempts, user_id, kind, recipient) = email_message::Entity::find_by_id(id.0)
        .select_only()
        .column(Column::Attempts)
        .column(Column::UserId)
        .column(Column::Kind)
        .column(Column::Recipient)
        .into_tuple::<(i32, i64, String, String)>()
        .one(txn)
        .await
        .db()?
        .ok_or_else(|| StoreError::Corrupt(format!("email message {id} vanished")))?;
    record_attempt(txn, id, attempts, status, Some(error.clone()), None, now).await?;
    if status != MessageStatus::Dead || kind != MessageKind::Confirm.as_str() {
        return Ok(Ending::Commit(Vec::new()));
    }
    let failed = Event::new(
        user_id,
        &recipient,
        WebhookEvent::EmailFailed,
        [
            ("message_id", id.0.into()),
            ("failed_at", rfc3339(now).into()),
            ("error", error.into()),
        ],
    );
    let ids = webhooks::enqueue(txn, endpoints, &[failed], now).await?;
    Ok(Ending::Commit(ids))
}

/// Gives dead messages (one, or all with `None`) a fresh start, inside its transaction; returns
/// the ids requeued.
async fn requeue_dead_in(
    txn: &DatabaseTransaction,
    id: Option<MessageId>,
    now: DateTime<Utc>,
) -> Result<Ending<Vec<MessageId>>, StoreError> {
    use email_message::Column;
    let mut find = email_message::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Status.eq(MessageStatus::Dead.as_str()));
    if let Some(id) = id {
        find = find.filter(Column::Id.eq(id.0));
    }
    let ids: Vec<i64> = find.into_tuple::<i64>().all(txn).await.db()?;
    if !ids.is_empty() {
        email_message::Entity::update_many()
            .col_expr(Column::Status, Expr::value(MessageStatus::Queued.as_str()))
            .col_expr(Column::Attempts, Expr::value(0))
            .col_expr(Column::NextAttemptAt, Expr::value(now))
            .col_expr(Column::LeaseUntil, Expr::value(None::<DateTime<Utc>>))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::Id.is_in(ids.clone()))
            .filter(Column::Status.eq(MessageStatus::Dead.as_str()))
            .exec(txn)
            .await
            .db()?;
    }
    Ok(Ending::Commit(ids.into_iter().map(MessageId).collect()))
}

/// Logs the messages of `sent` that [`postgres::mark_sent_many`] did not find.
fn warn_unrecorded(sent: &[(MessageId, Option<String>)], recorded: &[SentRow]) {
    let found: HashSet<i64> = recorded.iter().map(|row| row.id).collect();
    for (id, _) in sent {
        if !found.contains(&id.0) {
            tracing::warn!(message_id = %id, "mark_sent for a message that no longer exists");
        }
    }
}

/// Above this many rows in the outbox (by PostgreSQL's estimate), the sent messages are
/// estimated rather than counted.
const EXACT_COUNT_BELOW: u64 = 100_000;

impl SeaStore {
    /// The number of sent messages, and whether it is an estimate: on PostgreSQL with an outbox
    /// of at least [`EXACT_COUNT_BELOW`] rows by the planner's statistics, its row estimate less
    /// the `others` counted exactly; otherwise counted (through the `(status, …)` index).
    async fn sent_count(&self, others: u64) -> Result<(u64, bool), StoreError> {
        use email_message::Column;
        if self.is_postgres() {
            let estimate = postgres::estimated_rows(&self.db, "email_messages").await?;
            if let Some(rows) = estimate.filter(|rows| *rows >= EXACT_COUNT_BELOW) {
                return Ok((rows.saturating_sub(others), true));
            }
        }
        let sent = email_message::Entity::find()
            .filter(Column::Status.eq(MessageStatus::Sent.as_str()))
            .count(&self.db)
            .await
            .db()?;
        Ok((sent, false))
    }

    /// The messages `select` finds, as records.
    async fn records(
        &self,
        select: Select<email_message::Entity>,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let mut records = select
            .all(&self.db)
            .await
            .db()?
            .into_iter()
            .map(record_from_model)
            .collect::<Result<Vec<_>, _>>()?;
        let ids = records.iter().map(|r| r.message.user_id.0).collect();
        let locales = users::locales_of(&self.db, ids).await?;
        for record in &mut records {
            record.message.locale = locales
                .get(&record.message.user_id.0)
                .copied()
                .unwrap_or_default();
        }
        Ok(records)
    }

    /// [`MessageStore::mark_retry`] and [`MessageStore::mark_dead`].
    async fn record_failure(
        &self,
        id: MessageId,
        status: MessageStatus,
        retry_at: Option<DateTime<Utc>>,
        error: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let error = truncate_chars(error, MAX_ERROR_CHARS);
        let now = ts(now);
        let endpoints = self.webhooks.endpoints.clone();
        let ids = self
            .write(move |txn| {
                Box::pin(async move {
                    record_failure_in(txn, id, status, retry_at, error, now, &endpoints).await
                })
            })
            .await?;
        self.notify_webhooks(ids);
        Ok(())
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
        // One statement (UPDATE … RETURNING): the rows read back are the ones it wrote. A
        // message whose recipient's mailbox is suppressed becomes `cancelled` instead of
        // `sending` (two index lookups per row: its user, the suppression list).
        let mut update = email_message::Entity::update_many()
            .col_expr(Column::Status, Expr::cust(CLAIMED_STATUS.as_str()))
            .col_expr(Column::LeaseUntil, Expr::value(lease_until))
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::Id.is_in(ids.iter().map(|id| id.0)))
            .filter(claimable_at(now));
        if self.is_postgres() {
            update = update.filter(postgres::without_waiting_for_the_disk());
        }
        let claimed = update.exec_with_returning(&self.db).await.db()?;
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
                .await
                .db()?
                .into_iter()
                .collect()
        };
        let locales =
            users::locales_of(&self.db, claimed.values().map(|m| m.user_id).collect()).await?;
        // A password-reset email's link carries the binding of the account's password now.
        let resets = claimed
            .values()
            .filter(|m| m.kind == MessageKind::PasswordReset.as_str())
            .map(|m| m.user_id)
            .collect();
        let bindings = accounts::bindings_of(&self.db, resets).await?;
        let mut handed_out = HashSet::new();
        let answers = ids
            .iter()
            .map(|id| {
                if let Some(row) = claimed.remove(&id.0) {
                    handed_out.insert(id.0);
                    if row.status == MessageStatus::Cancelled.as_str() {
                        tracing::debug!(message_id = %id, "cancelled at its claim: mailbox suppressed");
                        return Ok(Claim::Cancelled);
                    }
                    let mut message = message_from_model(row)?;
                    message.locale = locales.get(&message.user_id.0).copied().unwrap_or_default();
                    if message.kind == MessageKind::PasswordReset {
                        message.password_binding = bindings.get(&message.user_id.0).cloned();
                    }
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
                        status if status.was_sent() => Claim::AlreadySent,
                        MessageStatus::Cancelled => Claim::Cancelled,
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
        if self.is_postgres() && !self.has_webhooks() {
            let recorded = postgres::mark_sent_many(&self.db, &sent, now).await?;
            warn_unrecorded(&sent, &recorded);
            return Ok(());
        }
        let postgres = self.is_postgres();
        let endpoints = self.webhooks.endpoints.clone();
        let ids = self
            .write(move |txn| {
                Box::pin(async move {
                    let recorded = if postgres {
                        let recorded = postgres::mark_sent_many(txn, &sent, now).await?;
                        warn_unrecorded(&sent, &recorded);
                        recorded
                    } else {
                        let mut recorded = Vec::with_capacity(sent.len());
                        for (id, provider_message_id) in sent {
                            recorded.extend(mark_sent_in(txn, id, provider_message_id, now).await?);
                        }
                        recorded
                    };
                    let events = sent_events(&recorded, now);
                    let ids = webhooks::enqueue(txn, &endpoints, &events, now).await?;
                    Ok(Ending::Commit(ids))
                })
            })
            .await?;
        self.notify_webhooks(ids);
        Ok(())
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

    async fn mark_stopped(
        &self,
        id: MessageId,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.record_failure(id, MessageStatus::Cancelled, None, reason, now)
            .await
    }

    async fn webhook(&self, id: MessageId) -> Result<Option<WebhookDelivery>, StoreError> {
        webhooks::find(&self.db, id).await
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
            .await
            .db()?;
        Ok(ids.into_iter().map(MessageId).collect())
    }

    async fn dead(&self, limit: u64) -> Result<Vec<MessageRecord>, StoreError> {
        use email_message::Column;
        let dead = email_message::Entity::find()
            .filter(Column::Status.eq(MessageStatus::Dead.as_str()))
            .order_by_desc(Column::UpdatedAt)
            .order_by_desc(Column::Id)
            .limit(limit);
        self.records(dead).await
    }

    async fn requeue_dead(
        &self,
        id: Option<MessageId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError> {
        let now = ts(now);
        self.write(move |txn| Box::pin(async move { requeue_dead_in(txn, id, now).await }))
            .await
    }

    async fn purge_dead(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        use email_message::Column;
        let result = email_message::Entity::delete_many()
            .filter(Column::Status.eq(MessageStatus::Dead.as_str()))
            .filter(Column::UpdatedAt.lt(ts(before)))
            .exec(&self.db)
            .await
            .db()?;
        Ok(result.rows_affected)
    }

    async fn purge_finished(
        &self,
        status: MessageStatus,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, StoreError> {
        use email_message::Column;
        if !matches!(
            status,
            MessageStatus::Sent
                | MessageStatus::Dead
                | MessageStatus::Cancelled
                | MessageStatus::Bounced
                | MessageStatus::Complained
        ) || limit == 0
        {
            return Ok(0);
        }
        let oldest = email_message::Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Status.eq(status.as_str()))
            .filter(Column::UpdatedAt.lt(ts(before)))
            .limit(limit)
            .into_query();
        let deleted = email_message::Entity::delete_many()
            .filter(Column::Id.in_subquery(oldest))
            .exec(&self.db)
            .await
            .db()?;
        Ok(deleted.rows_affected)
    }

    async fn stats(&self) -> Result<DeliveryStats, StoreError> {
        use email_message::Column;
        // Every state but `sent`, by index range (`status` leads two indexes).
        let counted = [
            MessageStatus::Queued,
            MessageStatus::Sending,
            MessageStatus::Retrying,
            MessageStatus::Dead,
            MessageStatus::Cancelled,
            MessageStatus::Bounced,
            MessageStatus::Complained,
        ];
        let counts = email_message::Entity::find()
            .select_only()
            .column(Column::Status)
            .column_as(Column::Id.count(), "n")
            .filter(Column::Status.is_in(counted.map(MessageStatus::as_str)))
            .group_by(Column::Status)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await
            .db()?;
        let mut stats = DeliveryStats::default();
        let mut others = 0;
        for (status, n) in counts {
            let n = u64::try_from(n).unwrap_or(0);
            others += n;
            match parse_status(0, &status)? {
                MessageStatus::Queued => stats.queued = n,
                MessageStatus::Sending => stats.sending = n,
                MessageStatus::Retrying => stats.retrying = n,
                MessageStatus::Sent => stats.sent = n,
                MessageStatus::Dead => stats.dead = n,
                MessageStatus::Cancelled => stats.cancelled = n,
                MessageStatus::Bounced => stats.bounced = n,
                MessageStatus::Complained => stats.complained = n,
            }
        }
        (stats.sent, stats.sent_is_estimate) = self.sent_count(others).await?;
        stats.oldest_owed = email_message::Entity::find()
            .select_only()
            .column_as(Column::CreatedAt.min(), "oldest")
            .filter(Column::Status.is_in(OWED))
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(&self.db)
            .await
            .db()?
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
                .await
                .db()?;
            let Some(user_id) = user_id else {
                return Ok(Vec::new());
            };
            select = select.filter(Column::UserId.eq(user_id));
        }
        if let Some(before) = query.before {
            select = select.filter(Column::Id.lt(before.0));
        }
        if let Some(kind) = query.kind {
            select = select.filter(Column::Kind.eq(kind.as_str()));
        }
        self.records(select).await
    }

    async fn get(&self, id: MessageId) -> Result<Option<MessageRecord>, StoreError> {
        Ok(self
            .records(email_message::Entity::find_by_id(id.0))
            .await?
            .pop())
    }

    async fn attempts(&self, id: MessageId) -> Result<Vec<Attempt>, StoreError> {
        email_attempt::Entity::find()
            .filter(email_attempt::Column::MessageId.eq(id.0))
            .order_by_asc(email_attempt::Column::Id)
            .all(&self.db)
            .await
            .db()?
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
