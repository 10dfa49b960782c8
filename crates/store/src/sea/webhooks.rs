//! Webhook events into the outbox: each event becomes one message of kind `webhook` per
//! endpoint, written in the transaction of the change it reports, so an event is owed exactly
//! when its change is committed (see [`SeaStore::with_webhooks`]).

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::{MessageId, MessageKind, WebhookDelivery, WebhookEvent};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use tokio::sync::mpsc;

use super::rows::queued_message;
use super::{Db as _, SeaStore};
use crate::StoreError;
use crate::entities::webhook_delivery;

/// Where events go: the endpoints, and who hears of each new webhook message once it is
/// committed (to publish it at once rather than at the next sweep).
#[derive(Debug, Clone, Default)]
pub(super) struct Webhooks {
    pub(super) endpoints: Arc<[String]>,
    pub(super) notify: Option<mpsc::Sender<MessageId>>,
}

/// One event about one account.
#[derive(Debug, Clone)]
pub(super) struct Event {
    pub(super) user_id: i64,
    /// The account's address as stored.
    pub(super) email: String,
    pub(super) event: WebhookEvent,
    pub(super) data: serde_json::Map<String, serde_json::Value>,
}

/// An RFC 3339 time, as every payload writes it (UTC, microseconds).
pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Event {
    /// An event whose data is the address and the fields given (`name`, value).
    pub(super) fn new(
        user_id: i64,
        email: &str,
        event: WebhookEvent,
        fields: impl IntoIterator<Item = (&'static str, serde_json::Value)>,
    ) -> Self {
        let mut data = serde_json::Map::new();
        data.insert("email".into(), email.into());
        for (name, value) in fields {
            data.insert(name.into(), value);
        }
        Self {
            user_id,
            email: email.to_owned(),
            event,
            data,
        }
    }

    /// The body, as the Standard Webhooks specification shapes it.
    fn payload(&self, now: DateTime<Utc>) -> String {
        serde_json::json!({
            "type": self.event.as_str(),
            "timestamp": rfc3339(now),
            "data": self.data,
        })
        .to_string()
    }
}

/// Owes `events` to every endpoint, on `db` (the caller's transaction). Returns the new
/// messages' ids. Nothing is written when there is no endpoint.
pub(super) async fn enqueue(
    db: &impl ConnectionTrait,
    endpoints: &[String],
    events: &[Event],
    now: DateTime<Utc>,
) -> Result<Vec<MessageId>, StoreError> {
    let mut ids = Vec::with_capacity(events.len() * endpoints.len());
    let mut rows = Vec::with_capacity(ids.capacity());
    for event in events {
        let payload = event.payload(now);
        for endpoint in endpoints {
            let message = queued_message(event.user_id, MessageKind::Webhook, &event.email, now)
                .insert(db)
                .await
                .db()?;
            ids.push(MessageId(message.id));
            rows.push(webhook_delivery::ActiveModel {
                message_id: Set(message.id),
                endpoint: Set(endpoint.clone()),
                event_type: Set(event.event.as_str().to_owned()),
                payload: Set(payload.clone()),
            });
        }
    }
    if !rows.is_empty() {
        webhook_delivery::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .db()?;
    }
    Ok(ids)
}

/// The endpoint, event and body of webhook message `id`, if it is one.
pub(super) async fn find(
    db: &impl ConnectionTrait,
    id: MessageId,
) -> Result<Option<WebhookDelivery>, StoreError> {
    let Some(row) = webhook_delivery::Entity::find_by_id(id.0)
        .one(db)
        .await
        .db()?
    else {
        return Ok(None);
    };
    let event = row
        .event_type
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("webhook message {id}: {e}")))?;
    Ok(Some(WebhookDelivery {
        endpoint: row.endpoint,
        event,
        payload: row.payload,
    }))
}

impl SeaStore {
    /// Sends every change this store commits from now on to `endpoints` as webhook events:
    /// `account.registered` (with the registration), `account.confirmed` (with the
    /// confirmation), `email.sent` (with the record of a confirmation email's send) and
    /// `email.failed` (with its death). Each event is one outbox message of kind `webhook` per
    /// endpoint, written in the same transaction as the change, so none is lost and none is
    /// owed for a change rolled back. `notify` hears the id of each new webhook message once it
    /// is committed (it is told without waiting: when it is full, the sweeper publishes the
    /// message instead). With no endpoint, nothing changes.
    ///
    /// The cost: with endpoints, a registration, confirmation or send record batch that is one
    /// statement on PostgreSQL becomes a transaction of the statement plus one insert per event
    /// and endpoint.
    #[must_use]
    pub fn with_webhooks(
        mut self,
        endpoints: Vec<String>,
        notify: Option<mpsc::Sender<MessageId>>,
    ) -> Self {
        self.webhooks = Webhooks {
            endpoints: endpoints.into(),
            notify,
        };
        self
    }

    /// Whether events are owed to any endpoint.
    pub(super) fn has_webhooks(&self) -> bool {
        !self.webhooks.endpoints.is_empty()
    }

    /// Tells the listener of [`Self::with_webhooks`] about webhook messages just committed.
    pub(super) fn notify_webhooks(&self, ids: Vec<MessageId>) {
        let Some(notify) = &self.webhooks.notify else {
            return;
        };
        for id in ids {
            if let Err(error) = notify.try_send(id) {
                tracing::debug!(message_id = %id, %error, "webhook not announced; the sweeper will publish it");
            }
        }
    }
}
