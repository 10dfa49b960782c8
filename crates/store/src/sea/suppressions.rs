//! [`SuppressionStore`] on the SeaORM connection.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    MailboxKey, MessageId, MessageKind, MessageStatus, Suppression, SuppressionId,
    SuppressionSource, WebhookEvent,
};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set,
};

use super::rows::{suppression_from_model, ts};
use super::webhooks::{self, Event, rfc3339};
use super::{Db as _, Ending, SeaStore};
use crate::entities::{email_message, suppression, user};
use crate::{StoreError, SuppressionStore};

/// [`SuppressionStore::suppress`] in its write transaction: the row (unless there is one), then
/// the mailbox's queued and retrying emails cancelled, and a new suppression's
/// `email.suppressed` event owed to `endpoints` for each account of the mailbox (their ids
/// returned).
pub(super) async fn suppress_in(
    txn: &DatabaseTransaction,
    key: &str,
    source: SuppressionSource,
    now: DateTime<Utc>,
    endpoints: &[String],
) -> Result<Ending<(bool, Vec<MessageId>)>, StoreError> {
    use email_message::Column;
    // A registration or resend of this mailbox committing at the same instant may still owe an
    // email that this does not see to cancel: claiming it cancels it (see `messages::claim`).
    let inserted = suppression::Entity::insert(suppression::ActiveModel {
        mailbox_key: Set(key.to_owned()),
        source: Set(source.as_str().to_owned()),
        created_at: Set(now),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(suppression::Column::MailboxKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await
    .db()?;
    let accounts = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::MailboxKey.eq(key))
        .into_query();
    let cancelled = email_message::Entity::update_many()
        .col_expr(
            Column::Status,
            Expr::value(MessageStatus::Cancelled.as_str()),
        )
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::UserId.in_subquery(accounts))
        .filter(Column::Kind.ne(MessageKind::Webhook.as_str()))
        .filter(Column::Status.is_in([
            MessageStatus::Queued.as_str(),
            MessageStatus::Retrying.as_str(),
        ]))
        .exec(txn)
        .await
        .db()?;
    // The key is personal data: neither it nor its masked form is logged here.
    tracing::info!(
        source = source.as_str(),
        new = inserted > 0,
        cancelled = cancelled.rows_affected,
        "mailbox suppressed"
    );
    if inserted == 0 || endpoints.is_empty() {
        return Ok(Ending::Commit((inserted > 0, Vec::new())));
    }
    let events: Vec<Event> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::Email)
        .filter(user::Column::MailboxKey.eq(key))
        .into_tuple::<(i64, String)>()
        .all(txn)
        .await
        .db()?
        .into_iter()
        .map(|(id, email)| {
            Event::new(
                id,
                &email,
                WebhookEvent::EmailSuppressed,
                [
                    ("source", source.as_str().into()),
                    ("suppressed_at", rfc3339(now).into()),
                ],
            )
        })
        .collect();
    let ids = webhooks::enqueue(txn, endpoints, &events, now).await?;
    Ok(Ending::Commit((true, ids)))
}

#[async_trait]
impl SuppressionStore for SeaStore {
    async fn suppress(
        &self,
        mailbox: &MailboxKey,
        source: SuppressionSource,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let key = mailbox.as_str().to_owned();
        let now = ts(now);
        let endpoints = self.webhooks.endpoints.clone();
        let (new, ids) = self
            .write(move |txn| {
                Box::pin(async move { suppress_in(txn, &key, source, now, &endpoints).await })
            })
            .await?;
        self.notify_webhooks(ids);
        Ok(new)
    }

    async fn lift(&self, id: SuppressionId) -> Result<bool, StoreError> {
        let deleted = suppression::Entity::delete_by_id(id.0)
            .exec(&self.db)
            .await
            .db()?;
        if deleted.rows_affected > 0 {
            tracing::info!(suppression_id = %id, "suppression lifted");
        }
        Ok(deleted.rows_affected > 0)
    }

    async fn list(&self, limit: u64) -> Result<Vec<Suppression>, StoreError> {
        use suppression::Column;
        suppression::Entity::find()
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .db()?
            .into_iter()
            .map(suppression_from_model)
            .collect()
    }

    async fn is_suppressed(&self, mailbox: &MailboxKey) -> Result<bool, StoreError> {
        let found = suppression::Entity::find()
            .filter(suppression::Column::MailboxKey.eq(mailbox.as_str()))
            .count(&self.db)
            .await
            .db()?;
        Ok(found > 0)
    }
}
