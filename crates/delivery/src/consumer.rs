//! The consumer loop: jobs from the queue, handled several at a time, acknowledged in batches.

use std::sync::Arc;
use std::time::Duration;

use queue::JobQueue;
use store::batch::Coalescer;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::DEFAULT_BATCH_MAX;
use crate::deliverer::{Deliverer, job_span};

/// How the run loop behaves.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// Jobs handled at once.
    pub concurrency: usize,
    /// How long to wait for in-flight jobs on shutdown.
    pub drain_timeout: Duration,
    /// Longest single wait on the queue (bounds shutdown latency).
    pub poll: Duration,
    /// Most jobs taken from the queue, or acknowledged, in one round trip.
    pub batch: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            drain_timeout: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            batch: DEFAULT_BATCH_MAX,
        }
    }
}

/// Consumes `queue` until `shutdown` turns true, then stops taking jobs and waits (up to the
/// drain timeout) for the ones in flight. Every delivery is acknowledged after it is handled;
/// a message whose handling failed stays owed in the database and is swept again.
///
/// Jobs are taken from the queue as many at a time as there are free slots (at most
/// `config.batch`), and acknowledged in batches too (see [`batch`]).
pub async fn run(
    queue: Arc<dyn JobQueue>,
    deliverer: Arc<Deliverer>,
    config: RunConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    let acks = {
        let queue = Arc::clone(&queue);
        Coalescer::spawn(config.batch, move |deliveries: Vec<queue::Delivery>| {
            let queue = Arc::clone(&queue);
            async move {
                let count = deliveries.len();
                let result = queue.ack_many(&deliveries).await;
                (0..count)
                    .map(|_| result.as_ref().map_err(ToString::to_string).copied())
                    .collect::<Vec<Result<(), String>>>()
            }
        })
    };
    tracing::info!(
        concurrency = config.concurrency,
        provider = deliverer.provider(),
        "delivery started"
    );
    let concurrency = config.concurrency.max(1);
    // While a backlog lasts (the last receive filled every free slot), wait for this many free
    // slots before receiving again, so that jobs are received, claimed and recorded in batches
    // rather than one at a time as single slots free up; otherwise receive as soon as one is
    // free (an idle worker sends a lone job at once).
    let backlog_batch = (concurrency / 4).clamp(1, config.batch.max(1));
    let mut wait_for = 1;
    loop {
        if let Some(pause) = deliverer.paused_for() {
            // Leave jobs in the queue while the provider refuses the account.
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                () = tokio::time::sleep(pause.min(config.poll)) => continue,
            }
        }
        // `wait_for` also returns when the sender is gone: that is a shutdown too.
        let mut permit = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            permit = Arc::clone(&permits).acquire_many_owned(slots(wait_for)) => match permit { Ok(p) => p, Err(_) => break },
        };
        // Every other free slot too (up to the batch size), so one receive can fill them all.
        let extra = permits
            .available_permits()
            .min(config.batch.max(1).saturating_sub(permit.num_permits()));
        if let Some(more) = u32::try_from(extra)
            .ok()
            .filter(|n| *n > 0)
            .and_then(|n| Arc::clone(&permits).try_acquire_many_owned(n).ok())
        {
            permit.merge(more);
        }
        let received = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            received = queue.receive_many(config.poll, permit.num_permits()) => received,
        };
        // Reap finished tasks so the set does not grow.
        while in_flight.try_join_next().is_some() {}
        match received {
            Ok(deliveries) => {
                wait_for = if deliveries.len() >= permit.num_permits() {
                    backlog_batch
                } else {
                    1
                };
                for delivery in deliveries {
                    // One slot per job; the slots left over go back when `permit` drops.
                    let Some(slot) = permit.split(1) else { break };
                    let acks = acks.clone();
                    let deliverer = Arc::clone(&deliverer);
                    let span = job_span(&delivery.job);
                    in_flight.spawn(async move {
                        if let Err(error) = deliverer.handle_in_span(delivery.job).await {
                            tracing::error!(message_id = %delivery.job.message_id, %error, "Job error: left for the sweeper");
                        }
                        // The job is recorded (or left owed) now: its slot is free for the next
                        // one while the acknowledgement goes out. A job whose ack is lost is
                        // delivered again and skipped as already sent.
                        drop(slot);
                        let message_id = delivery.job.message_id;
                        match acks.call(delivery).await {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => tracing::warn!(%message_id, %error, "ack failed; the job may be delivered again"),
                            Err(error) => tracing::warn!(%message_id, %error, "ack failed; the job may be delivered again"),
                        }
                    }.instrument(span));
                }
            }
            Err(queue::QueueError::Closed) => break,
            Err(error) => {
                tracing::warn!(%error, "queue receive failed; retrying shortly");
                tokio::time::sleep(config.poll).await;
            }
        }
    }
    let pending = in_flight.len();
    if pending > 0 {
        tracing::info!(pending, "shutting down: waiting for jobs in flight");
    }
    let drained = tokio::time::timeout(config.drain_timeout, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = in_flight.len(),
            "drain timeout: unfinished jobs stay owed and will be retried"
        );
        in_flight.abort_all();
    }
    tracing::info!("delivery stopped");
}

/// `n` slots as a semaphore count (saturating; `n` never exceeds the concurrency in practice).
fn slots(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
