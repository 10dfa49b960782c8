//! The in-process queue used when no Redis is configured.
//!
//! It lives in memory, so it forgets its jobs when the process stops; that is fine because the
//! database holds what is owed and the sweeper republishes every due message on start and then
//! periodically. Jobs already waiting are not enqueued twice.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use domain::MessageId;
use tokio::sync::Notify;

use crate::{Delivery, Job, JobQueue, QueueError};

/// Default bound on waiting jobs; past it `publish` says `Full` and the sweeper retries later.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<Job>,
    /// Messages in `waiting`, to drop duplicate publishes (whatever their request ids: the
    /// first publish's is kept).
    queued: HashSet<MessageId>,
    closed: bool,
}

/// An in-memory FIFO queue shared by the producers and consumers of one process.
#[derive(Debug)]
pub struct EmbeddedQueue {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
}

impl Default for EmbeddedQueue {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl EmbeddedQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            capacity,
        }
    }

    /// Stops accepting and handing out jobs; waiting consumers return `Closed`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain queue with no invariant a panic could break half-way.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn try_take(&self) -> Result<Option<Job>, QueueError> {
        let mut state = self.lock();
        if state.closed {
            return Err(QueueError::Closed);
        }
        let job = state.waiting.pop_front();
        if let Some(job) = &job {
            state.queued.remove(&job.message_id);
        }
        Ok(job)
    }
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn publish(&self, job: Job) -> Result<(), QueueError> {
        {
            let mut state = self.lock();
            if state.closed {
                return Err(QueueError::Closed);
            }
            if state.queued.contains(&job.message_id) {
                return Ok(());
            }
            if state.waiting.len() >= self.capacity {
                return Err(QueueError::Full(self.capacity));
            }
            state.waiting.push_back(job);
            state.queued.insert(job.message_id);
        }
        self.notify.notify_one();
        Ok(())
    }

    async fn receive(&self, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so a publish between the look and the wait
            // is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(job) = self.try_take()? {
                return Ok(Some(Delivery {
                    job,
                    receipt: job.message_id.to_string(),
                }));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn ack(&self, _delivery: &Delivery) -> Result<(), QueueError> {
        // Redelivery after a crash comes from the database sweeper, not from this queue.
        Ok(())
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        Ok(self.lock().waiting.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::MessageId;

    use super::*;

    fn job(n: i64) -> Job {
        Job::new(MessageId(n))
    }

    #[tokio::test]
    async fn delivers_in_order_and_drops_duplicates_while_waiting() {
        let q = EmbeddedQueue::new();
        q.publish(job(1)).await.unwrap();
        q.publish(job(2)).await.unwrap();
        q.publish(job(1)).await.unwrap();
        assert_eq!(q.depth().await.unwrap(), 2);
        let first = q.receive(Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(first.job, job(1));
        q.ack(&first).await.unwrap();
        // Once taken, the same job may be published again (a retry).
        q.publish(job(1)).await.unwrap();
        assert_eq!(
            q.receive(Duration::ZERO).await.unwrap().unwrap().job,
            job(2)
        );
        assert_eq!(
            q.receive(Duration::ZERO).await.unwrap().unwrap().job,
            job(1)
        );
        assert_eq!(q.receive(Duration::ZERO).await.unwrap(), None);
    }

    #[tokio::test]
    async fn receive_many_takes_what_is_waiting_up_to_max() {
        let q = EmbeddedQueue::new();
        for n in 1..=5 {
            q.publish(job(n)).await.unwrap();
        }
        let batch = q.receive_many(Duration::ZERO, 3).await.unwrap();
        let ids: Vec<i64> = batch.iter().map(|d| d.job.message_id.0).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        q.ack_many(&batch).await.unwrap();
        let rest = q.receive_many(Duration::ZERO, 10).await.unwrap();
        assert_eq!(rest.len(), 2);
        assert!(q.receive_many(Duration::ZERO, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn carries_the_request_id_and_drops_duplicates_of_one_message() {
        let q = EmbeddedQueue::new();
        let tagged = job(1).with_request_id(domain::RequestId::parse("req-1"));
        q.publish(tagged).await.unwrap();
        // The sweeper's copy (no request id) of a waiting message is a duplicate.
        q.publish(job(1)).await.unwrap();
        assert_eq!(q.depth().await.unwrap(), 1);
        assert_eq!(
            q.receive(Duration::ZERO).await.unwrap().unwrap().job,
            tagged
        );
    }

    #[tokio::test]
    async fn full_queue_refuses_instead_of_dropping_silently() {
        let q = EmbeddedQueue::with_capacity(1);
        q.publish(job(1)).await.unwrap();
        assert!(matches!(q.publish(job(2)).await, Err(QueueError::Full(1))));
        assert_eq!(q.depth().await.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn receive_times_out_and_wakes_on_publish() {
        let q = Arc::new(EmbeddedQueue::new());
        assert_eq!(q.receive(Duration::from_secs(5)).await.unwrap(), None);

        let consumer = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.receive(Duration::from_secs(3600)).await }
        });
        tokio::task::yield_now().await;
        q.publish(job(7)).await.unwrap();
        let got = consumer.await.unwrap().unwrap().unwrap();
        assert_eq!(got.job, job(7));
    }

    #[tokio::test]
    async fn close_wakes_consumers_and_refuses_publishes() {
        let q = Arc::new(EmbeddedQueue::new());
        let consumer = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.receive(Duration::from_secs(3600)).await }
        });
        tokio::task::yield_now().await;
        q.close();
        assert!(matches!(consumer.await.unwrap(), Err(QueueError::Closed)));
        assert!(matches!(q.publish(job(1)).await, Err(QueueError::Closed)));
    }
}
