//! The sweeper: republishes what is owed and due, so nothing is lost when the queue forgets.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use domain::Clock;
use queue::{Job, JobQueue};
use store::MessageStore;
use tokio::sync::watch;

use crate::DeliveryError;

/// How often the sweeper looks for due messages.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(15);

/// How the sweeper works.
#[derive(Debug, Clone, Copy)]
pub struct SweepConfig {
    /// Time between sweeps.
    pub interval: Duration,
    /// How far behind `now` a message must be due before the sweeper republishes it. With Redis
    /// this leaves the server's own publish time to arrive; the embedded queue drops duplicates
    /// itself and needs none.
    pub grace: TimeDelta,
    /// Most messages republished by one sweep.
    pub batch: u64,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_SWEEP_INTERVAL,
            grace: TimeDelta::zero(),
            batch: 1000,
        }
    }
}

/// Publishes messages that are due (at most `batch`), but only when no job is waiting in the
/// queue: while the queue has work, whatever is due will be reached anyway or swept once it
/// drains, and duplicates do not pile up behind a backlog. Returns how many were published.
pub async fn sweep_once(
    messages: &dyn MessageStore,
    queue: &dyn JobQueue,
    now: DateTime<Utc>,
    config: SweepConfig,
) -> Result<usize, DeliveryError> {
    if queue.depth().await? > 0 {
        return Ok(0);
    }
    let due = messages.due(now - config.grace, config.batch).await?;
    let mut published = 0;
    for message_id in due {
        match queue.publish(Job::new(message_id)).await {
            Ok(()) => published += 1,
            Err(error) => {
                tracing::warn!(%message_id, %error, "sweeper could not publish; will try again next sweep");
                break;
            }
        }
    }
    Ok(published)
}

/// Sweeps at once, then every `config.interval`, until `shutdown` turns true.
pub async fn run_sweeper(
    messages: Arc<dyn MessageStore>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    config: SweepConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = ticker.tick() => {}
        }
        match sweep_once(messages.as_ref(), queue.as_ref(), clock.now(), config).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(published = n, "sweeper republished due messages"),
            Err(error) => tracing::warn!(%error, "sweep failed; will try again"),
        }
    }
}
