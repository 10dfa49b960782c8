//! The engine's unit tests: mocks of the store and mailer one layer down, manual clocks, and
//! Tokio's paused time for the loop, so nothing sleeps.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta};
use domain::{
    ConfirmationTokens, EmailAddress, ManualClock, MessageId, MessageKind, MessageStatus,
    OwedMessage, RetryPolicy, UserId,
};
use mailer::Mailer;
use store::MockMessageStore;

use crate::{Deliverer, DeliveryConfig, Renderer};

mod consumer;
mod deliverer;
mod feedback;
mod rate_limit;
mod sweeper;
mod webhooks;

const NOW: i64 = 1_700_000_000;

fn owed(id: i64, attempts: u32) -> OwedMessage {
    OwedMessage {
        id: MessageId(id),
        user_id: UserId(1),
        kind: MessageKind::Confirm,
        recipient: EmailAddress::parse("Someone@Example.com").unwrap(),
        status: MessageStatus::Sending,
        attempts,
        created_at: DateTime::from_timestamp(NOW - 10, 0).unwrap(),
        locale: domain::Locale::En,
        password_binding: None,
    }
}

fn config() -> DeliveryConfig {
    DeliveryConfig {
        lease: TimeDelta::seconds(120),
        retry: RetryPolicy::default(),
        max_rate: None,
        account_pause: TimeDelta::seconds(300),
    }
}

fn tokens() -> ConfirmationTokens {
    ConfirmationTokens::new(&["test-secret"]).unwrap()
}

/// The renderer of these tests: the embedded templates, links on the default BASE_URL (with a
/// trailing `/`, which the link must not double), valid for an hour.
fn renderer() -> Renderer {
    Renderer::new(
        crate::email_templates(None).unwrap(),
        tokens(),
        "http://127.0.0.1:5003/",
        Duration::from_secs(3600),
    )
}

fn deliverer(messages: MockMessageStore, mailer: Arc<dyn Mailer>) -> Deliverer {
    deliverer_with(
        messages,
        mailer,
        Arc::new(ManualClock::at_unix(NOW)),
        config(),
    )
}

fn deliverer_with(
    messages: MockMessageStore,
    mailer: Arc<dyn Mailer>,
    clock: Arc<ManualClock>,
    config: DeliveryConfig,
) -> Deliverer {
    Deliverer::new(Arc::new(messages), mailer, renderer(), clock, config)
}
