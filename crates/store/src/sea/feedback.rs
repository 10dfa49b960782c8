//! [`FeedbackStore`] on the SeaORM connection.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    Feedback, FeedbackKind, FeedbackOutcome, FeedbackRecord, MessageId, MessageStatus,
    SuppressionSource,
};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::rows::{truncate_chars, ts};
use super::suppressions::suppress_in;
use super::{Db as _, Ending, SeaStore};
use crate::entities::{email_feedback, email_message};
use crate::{FeedbackStore, StoreError};

/// Longest text kept from a report's detail (the column's size, in characters).
const DETAIL_LEN: usize = 255;

/// What recording one report decided, before the webhooks it owes are announced.
type Recorded = (FeedbackOutcome, Vec<MessageId>);

/// [`FeedbackStore::record_feedback`] in its write transaction.
async fn record_in(
    txn: &DatabaseTransaction,
    feedback: &Feedback,
    now: DateTime<Utc>,
    endpoints: &[String],
) -> Result<Ending<Recorded>, StoreError> {
    use email_message::Column;
    let message = email_message::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::ProviderMessageId.eq(feedback.provider_message_id.as_str()))
        .order_by_desc(Column::Id)
        .into_tuple::<i64>()
        .one(txn)
        .await
        .db()?;
    let inserted = email_feedback::Entity::insert(email_feedback::ActiveModel {
        feedback_id: Set(feedback.feedback_id.clone()),
        mailbox_key: Set(feedback.mailbox.as_str().to_owned()),
        message_id: Set(message),
        provider_message_id: Set(feedback.provider_message_id.clone()),
        kind: Set(feedback.kind.as_str().to_owned()),
        detail: Set(truncate_chars(feedback.detail.clone(), DETAIL_LEN)),
        occurred_at: Set(ts(feedback.occurred_at)),
        received_at: Set(now),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([
            email_feedback::Column::FeedbackId,
            email_feedback::Column::MailboxKey,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(txn)
    .await
    .db()?;
    if inserted == 0 {
        return Ok(Ending::Commit((FeedbackOutcome::Duplicate, Vec::new())));
    }
    let message = message.map(MessageId);
    let (status, from, source) = match feedback.kind {
        FeedbackKind::TransientBounce => {
            return Ok(Ending::Commit((
                FeedbackOutcome::Recorded {
                    message,
                    suppressed: false,
                },
                Vec::new(),
            )));
        }
        FeedbackKind::PermanentBounce => (
            MessageStatus::Bounced,
            &[MessageStatus::Sent][..],
            SuppressionSource::Bounce,
        ),
        FeedbackKind::Complaint => (
            MessageStatus::Complained,
            &[MessageStatus::Sent, MessageStatus::Bounced][..],
            SuppressionSource::Complaint,
        ),
    };
    if let Some(id) = message {
        // A report that overtakes the send's own record (the message still `sending`) leaves
        // the status alone; the row above keeps the report.
        email_message::Entity::update_many()
            .col_expr(Column::Status, Expr::value(status.as_str()))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::Id.eq(id.0))
            .filter(Column::Status.is_in(from.iter().map(|s| s.as_str())))
            .exec(txn)
            .await
            .db()?;
    }
    let (suppressed, ids) =
        match suppress_in(txn, feedback.mailbox.as_str(), source, now, endpoints).await? {
            Ending::Commit(done) | Ending::Rollback(done) => done,
        };
    Ok(Ending::Commit((
        FeedbackOutcome::Recorded {
            message,
            suppressed,
        },
        ids,
    )))
}

#[async_trait]
impl FeedbackStore for SeaStore {
    async fn record_feedback(
        &self,
        feedback: &Feedback,
        now: DateTime<Utc>,
    ) -> Result<FeedbackOutcome, StoreError> {
        let feedback = feedback.clone();
        let now = ts(now);
        let endpoints = self.webhooks.endpoints.clone();
        let (outcome, ids) = self
            .write(move |txn| {
                Box::pin(async move { record_in(txn, &feedback, now, &endpoints).await })
            })
            .await?;
        self.notify_webhooks(ids);
        Ok(outcome)
    }

    async fn feedback(&self, message: MessageId) -> Result<Vec<FeedbackRecord>, StoreError> {
        use email_feedback::Column;
        email_feedback::Entity::find()
            .filter(Column::MessageId.eq(message.0))
            .order_by_asc(Column::Id)
            .all(&self.db)
            .await
            .db()?
            .into_iter()
            .map(|m| {
                let kind = FeedbackKind::from_str(&m.kind)
                    .map_err(|e| StoreError::Corrupt(format!("feedback {}: {e}", m.id)))?;
                Ok(FeedbackRecord {
                    kind,
                    detail: m.detail,
                    occurred_at: m.occurred_at,
                    received_at: m.received_at,
                })
            })
            .collect()
    }
}
