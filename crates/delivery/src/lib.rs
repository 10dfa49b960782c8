#![doc = include_str!("../README.md")]

use std::sync::Arc;

use domain::Clock;
use queue::JobQueue;
use store::{MessageStore, UserStore};
use tokio::sync::watch;

mod consumer;
mod deliverer;
mod feedback;
mod metrics;
pub mod operator;
mod rate_limit;
mod render;
mod sweeper;

pub use consumer::{RunConfig, run};
pub use deliverer::{Deliverer, DeliveryConfig, DeliveryError, Outcome, job_span};
pub use feedback::{FEEDBACK_TYPES, FeedbackLoop, Handled, QUEUE_PAUSE, register_feedback_metrics};
pub use metrics::register_delivery_metrics;
pub use rate_limit::{RateLimiter, RatePermit};
pub use render::{EMAIL_MESSAGES, EMAIL_TEMPLATES, Renderer, duration_in, email_templates};
pub use sweeper::{
    DEFAULT_SWEEP_INTERVAL, Purged, REMINDER_BATCH, RETENTION_BATCH, RETENTION_BATCHES,
    RETENTION_EVERY, Reminded, Reminders, Retention, SweepConfig, remind_once, retain_once,
    run_sweeper, sweep_once,
};

/// Most calls one database or queue batch carries (see `store::batch`).
pub const DEFAULT_BATCH_MAX: usize = 64;

/// Delivery as a whole: the consumer loop and the sweeper, over one queue and one outbox.
#[derive(Debug)]
pub struct Engine {
    pub deliverer: Arc<Deliverer>,
    pub queue: Arc<dyn JobQueue>,
    pub messages: Arc<dyn MessageStore>,
    /// The accounts, for the retention of unconfirmed ones.
    pub users: Arc<dyn UserStore>,
    pub clock: Arc<dyn Clock>,
    pub run: RunConfig,
    pub sweep: SweepConfig,
    /// The SES feedback loop, when a feedback queue is configured.
    pub feedback: Option<FeedbackLoop>,
}

impl Engine {
    /// Runs the consumer loop and the sweeper until `shutdown` turns true, then waits for the
    /// emails in flight (bounded by `run.drain_timeout`). The delivery metrics of the
    /// deliverer's provider are registered first, so they are scraped at 0 before a send.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        register_delivery_metrics(self.deliverer.provider());
        tokio::join!(
            run(
                Arc::clone(&self.queue),
                self.deliverer,
                self.run,
                shutdown.clone()
            ),
            run_sweeper(
                self.messages,
                self.users,
                self.queue,
                self.clock,
                self.sweep,
                shutdown.clone()
            ),
            async move {
                if let Some(feedback) = self.feedback {
                    feedback.run(shutdown).await;
                }
            },
        );
    }
}

#[cfg(test)]
mod tests;
