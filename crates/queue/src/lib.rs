#![doc = include_str!("../README.md")]

use std::time::Duration;

use async_trait::async_trait;
use domain::{MessageId, RequestId};
use serde::{Deserialize, Deserializer, Serialize};

mod embedded;
mod limit;
mod redis;
mod tls;

pub use embedded::EmbeddedQueue;
#[cfg(feature = "mock")]
pub use limit::MockSharedRateLimit;
pub use limit::{Quota, RedisRateLimit, SharedRateLimit};
pub use redis::{LIMIT_PREFIX, RedisQueue, RedisQueueConfig, is_tls_url};

/// One unit of work: "send owed message N". The message row in the database says what to send;
/// the job only points at it, so a lost job loses nothing (the sweeper republishes the row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Job {
    pub message_id: MessageId,
    /// The id of the web request that published the job, so the worker's log lines can be
    /// found with it; `None` when the sweeper or a command published it. Jobs published before
    /// this field existed (and ones with a malformed id) read as `None`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_request_id"
    )]
    pub request_id: Option<RequestId>,
}

impl Job {
    /// A job for `message_id` with no request id (the sweeper's, a command's).
    pub fn new(message_id: MessageId) -> Self {
        Self {
            message_id,
            request_id: None,
        }
    }

    /// The same job, tagged with the id of the request that published it.
    pub fn with_request_id(self, request_id: Option<RequestId>) -> Self {
        Self { request_id, ..self }
    }
}

/// A request id that does not parse is dropped, not a reason to throw the job away.
fn lenient_request_id<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<RequestId>, D::Error> {
    let text = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(text
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .and_then(RequestId::parse))
}

/// A job handed to a consumer, to be acknowledged once handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub job: Job,
    /// Opaque handle the queue needs to acknowledge this delivery.
    pub receipt: String,
}

/// Why the queue could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue holds as many jobs as it may; the job was NOT enqueued.
    #[error("queue is full ({0} jobs)")]
    Full(usize),
    /// The queue was closed (the process is shutting down).
    #[error("queue is closed")]
    Closed,
    /// The transport failed (connection refused, timeout, protocol error).
    #[error("queue transport error: {0}")]
    Transport(String),
    /// The queue's settings cannot work (a malformed URL): retrying will not help.
    #[error("{0}")]
    Config(String),
}

/// A job queue with at-least-once delivery: a delivery that is never acknowledged may be handed
/// out again. Publishing returns `Ok` only when the job was really enqueued.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait JobQueue: Send + Sync + std::fmt::Debug {
    /// Enqueues a job.
    async fn publish(&self, job: Job) -> Result<(), QueueError>;

    /// Waits up to `wait` for a job; `Ok(None)` when none arrived in time.
    async fn receive(&self, wait: Duration) -> Result<Option<Delivery>, QueueError>;

    /// Waits up to `wait` for a job, then takes whatever else is ready without waiting, at most
    /// `max` in all (`max` 0 counts as 1). Empty when nothing arrived in time. Every delivery
    /// returned must be acknowledged (or left to be handed out again) like one from
    /// [`Self::receive`].
    async fn receive_many(&self, wait: Duration, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let mut deliveries = Vec::new();
        if let Some(first) = self.receive(wait).await? {
            deliveries.push(first);
            while deliveries.len() < max {
                match self.receive(Duration::ZERO).await? {
                    Some(next) => deliveries.push(next),
                    None => break,
                }
            }
        }
        Ok(deliveries)
    }

    /// Acknowledges a delivery: it will not be handed out again.
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// Acknowledges several deliveries (in one round trip where the queue allows).
    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<(), QueueError> {
        for delivery in deliveries {
            self.ack(delivery).await?;
        }
        Ok(())
    }

    /// Number of jobs waiting (not counting ones handed out and not yet acknowledged).
    async fn depth(&self) -> Result<u64, QueueError>;
}
