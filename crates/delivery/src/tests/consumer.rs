use std::sync::Arc;
use std::time::Duration;

use mailer::{MailError, MemoryMailer, Message};
use queue::{EmbeddedQueue, Job, JobQueue};
use store::{Claim, StoreError};
use tokio::sync::{Semaphore, watch};

use super::*;
use crate::{RunConfig, run};

/// The delivery loop on a task of its own; [`Running::stop`] shuts it down and waits for it.
struct Running {
    stop: watch::Sender<bool>,
    runner: tokio::task::JoinHandle<()>,
}

/// A store where each of `n` jobs claims its message and records it sent, one call each.
fn claims_and_sends(n: usize) -> MockMessageStore {
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .times(n)
        .returning(|id, _, _| Ok(Claim::Claimed(owed(id.0, 1))));
    messages
        .expect_mark_sent()
        .times(n)
        .returning(|_, _, _| Ok(()));
    messages
}

/// The loop's settings in these tests: `concurrency` jobs in flight, batches of `batch`.
fn run_config(concurrency: usize, batch: usize) -> RunConfig {
    RunConfig {
        concurrency,
        drain_timeout: Duration::from_secs(5),
        poll: Duration::from_millis(20),
        batch,
    }
}

fn start_run(queue: Arc<dyn JobQueue>, deliverer: Arc<Deliverer>, config: RunConfig) -> Running {
    let (stop, stopped) = watch::channel(false);
    let runner = tokio::spawn(run(queue, deliverer, config, stopped));
    Running { stop, runner }
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.runner)
            .await
            .expect("run stops on shutdown")
            .unwrap();
    }
}

/// Polls `done` until it holds, at most 1,000 times 1 ms apart (virtual time in the paused
/// tests: no wall time passes). The caller asserts what it waited for.
async fn wait_until(mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..1000 {
        if done().await {
            return;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

// Paused time: the polling below advances the virtual clock only, no wall time passes.
#[tokio::test(start_paused = true)]
async fn run_delivers_queued_jobs_then_stops_on_shutdown() {
    let mailer = Arc::new(MemoryMailer::new());
    let d = Arc::new(deliverer(claims_and_sends(3), mailer.clone()));
    let queue = Arc::new(EmbeddedQueue::new());
    for n in 1..=3 {
        queue.publish(Job::new(MessageId(n))).await.unwrap();
    }
    let config = RunConfig {
        concurrency: 2,
        drain_timeout: Duration::from_secs(5),
        poll: Duration::from_millis(20),
        ..RunConfig::default()
    };
    let running = start_run(queue.clone(), d, config);
    wait_until(async || mailer.messages().len() == 3).await;
    assert_eq!(mailer.messages().len(), 3);
    running.stop().await;
    assert_eq!(queue.depth().await.unwrap(), 0);
}

/// With batching on, concurrent jobs share `claim_many` / `mark_sent_many` calls, each job still
/// gets its own answer, and a failed batch fails only its own jobs (they stay owed).
#[tokio::test(start_paused = true)]
async fn batched_jobs_share_claims_and_sends_and_keep_their_own_answers() {
    let claimed = Arc::new(std::sync::Mutex::new(Vec::<Vec<MessageId>>::new()));
    let recorded = Arc::new(std::sync::Mutex::new(Vec::<MessageId>::new()));
    let mut messages = MockMessageStore::new();
    let seen = Arc::clone(&claimed);
    messages
        .expect_claim_many()
        .returning(move |ids, now, lease| {
            assert_eq!(now, DateTime::from_timestamp(NOW, 0).unwrap());
            assert_eq!(lease, TimeDelta::seconds(120));
            seen.lock().unwrap().push(ids.clone());
            Ok(ids
                .into_iter()
                .map(|id| match id.0 {
                    // 13 is already sent; 14 cannot be read; the rest are claimed.
                    13 => Ok(Claim::AlreadySent),
                    14 => Err(StoreError::Corrupt("message 14".into())),
                    n => Ok(Claim::Claimed(owed(n, 1))),
                })
                .collect())
        });
    let seen = Arc::clone(&recorded);
    messages.expect_mark_sent_many().returning(move |sends, _| {
        seen.lock().unwrap().extend(sends.iter().map(|(id, _)| *id));
        Ok(())
    });
    let mailer = Arc::new(MemoryMailer::new());
    let d = Arc::new(deliverer(messages, mailer.clone()).with_batching(8));
    let queue = Arc::new(EmbeddedQueue::new());
    for n in 1..=20 {
        queue.publish(Job::new(MessageId(n))).await.unwrap();
    }
    let running = start_run(queue.clone(), d, run_config(8, 8));
    wait_until(async || recorded.lock().unwrap().len() == 18).await;
    running.stop().await;

    assert_eq!(
        mailer.messages().len(),
        18,
        "every claimable message sent once"
    );
    let mut recorded = recorded.lock().unwrap().clone();
    recorded.sort();
    let expected: Vec<MessageId> = (1..=20)
        .filter(|n| *n != 13 && *n != 14)
        .map(MessageId)
        .collect();
    assert_eq!(recorded, expected);
    let claimed = claimed.lock().unwrap().clone();
    let mut all: Vec<MessageId> = claimed.concat();
    all.sort();
    assert_eq!(
        all,
        (1..=20).map(MessageId).collect::<Vec<_>>(),
        "each claimed once"
    );
    assert!(
        claimed.len() < 20 && claimed.iter().any(|batch| batch.len() > 1),
        "concurrent claims went out together: {claimed:?}"
    );
    assert!(claimed.iter().all(|batch| batch.len() <= 8), "{claimed:?}");
    assert_eq!(queue.depth().await.unwrap(), 0, "every job acknowledged");
}

/// A queue that records, for each `receive_many`, how many jobs it asked for and got, and
/// whose acknowledgements, with `ack_gate`, each wait for a permit of the gate (used up, so that
/// the test can count the acks that went through).
#[derive(Debug)]
struct RecordingQueue {
    inner: EmbeddedQueue,
    receives: std::sync::Mutex<Vec<(usize, usize)>>,
    ack_gate: Option<Semaphore>,
}

impl RecordingQueue {
    fn new(ack_gate: Option<Semaphore>) -> Self {
        Self {
            inner: EmbeddedQueue::new(),
            receives: std::sync::Mutex::new(Vec::new()),
            ack_gate,
        }
    }
}

#[async_trait::async_trait]
impl JobQueue for RecordingQueue {
    async fn publish(&self, job: Job) -> Result<(), queue::QueueError> {
        self.inner.publish(job).await
    }
    async fn receive(&self, wait: Duration) -> Result<Option<queue::Delivery>, queue::QueueError> {
        self.inner.receive(wait).await
    }
    async fn receive_many(
        &self,
        wait: Duration,
        max: usize,
    ) -> Result<Vec<queue::Delivery>, queue::QueueError> {
        let got = self.inner.receive_many(wait, max).await?;
        self.receives.lock().unwrap().push((max, got.len()));
        Ok(got)
    }
    async fn ack(&self, delivery: &queue::Delivery) -> Result<(), queue::QueueError> {
        if let Some(gate) = &self.ack_gate {
            gate.acquire().await.unwrap().forget();
        }
        self.inner.ack(delivery).await
    }
    async fn depth(&self) -> Result<u64, queue::QueueError> {
        self.inner.depth().await
    }
}

/// A mailer whose sends take 1 to 7 ms (virtual time), so that jobs finish one by one.
#[derive(Debug, Default)]
struct StaggeredMailer {
    sent: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Mailer for StaggeredMailer {
    async fn send(&self, message: &Message) -> Result<mailer::Sent, MailError> {
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let ms = 1 + (n * 5 + message.to.as_str().len()) % 7;
        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
        Ok(mailer::Sent {
            provider_message_id: None,
        })
    }
    fn provider(&self) -> &'static str {
        "staggered"
    }
}

/// While a backlog lasts (a receive filled every free slot), the loop waits for a quarter of its
/// slots before receiving again, so jobs are received (and claimed) several at a time even when
/// they finish one by one; once the queue runs dry it receives for a single free slot again.
#[tokio::test(start_paused = true)]
async fn a_backlog_is_received_in_batches_not_one_job_per_freed_slot() {
    let mut messages = MockMessageStore::new();
    messages.expect_claim_many().returning(|ids, _, _| {
        Ok(ids
            .into_iter()
            .map(|id| Ok(Claim::Claimed(owed(id.0, 1))))
            .collect())
    });
    messages.expect_mark_sent_many().returning(|_, _| Ok(()));
    let mailer = Arc::new(StaggeredMailer::default());
    let d = Arc::new(deliverer(messages, mailer.clone()).with_batching(16));
    let queue = Arc::new(RecordingQueue::new(None));
    for n in 1..=100 {
        queue.publish(Job::new(MessageId(n))).await.unwrap();
    }
    let running = start_run(queue.clone(), d, run_config(64, 16));
    wait_until(async || {
        queue.inner.depth().await.unwrap() == 0
            && mailer.sent.load(std::sync::atomic::Ordering::SeqCst) == 100
    })
    .await;
    running.stop().await;
    assert_eq!(mailer.sent.load(std::sync::atomic::Ordering::SeqCst), 100);
    let receives = queue.receives.lock().unwrap().clone();
    let got: usize = receives.iter().map(|(_, got)| got).sum();
    assert_eq!(got, 100, "{receives:?}");
    assert!(
        receives.iter().all(|(asked, _)| *asked <= 16),
        "at most a batch: {receives:?}"
    );
    // After a full receive, the next one asks for at least 64 / 4 = 16 jobs (the batch size).
    for pair in receives.windows(2) {
        let ((asked, got), (next_asked, _)) = (pair[0], pair[1]);
        if got == asked && got > 0 {
            assert!(
                next_asked >= 16,
                "received one at a time during a backlog: {receives:?}"
            );
        }
    }
    assert!(receives.len() <= 100 / 16 + 2, "{receives:?}");
}

/// A job's slot frees once its send is recorded, not once the queue has confirmed its
/// acknowledgement: a slow ack does not hold up the next job (the slots bound the jobs that a
/// crash could send twice, and a recorded job is skipped as already sent if delivered again).
#[tokio::test(start_paused = true)]
async fn a_slow_acknowledgement_does_not_hold_the_jobs_slot() {
    let mailer = Arc::new(MemoryMailer::new());
    let d = Arc::new(deliverer(claims_and_sends(3), mailer.clone()));
    let queue = Arc::new(RecordingQueue::new(Some(Semaphore::new(0))));
    for n in 1..=3 {
        queue.publish(Job::new(MessageId(n))).await.unwrap();
    }
    let running = start_run(queue.clone(), d, run_config(1, 1));
    wait_until(async || mailer.messages().len() == 3).await;
    assert_eq!(
        mailer.messages().len(),
        3,
        "one slot, and every job sent while the first ack still waits"
    );
    assert_eq!(
        queue.inner.depth().await.unwrap(),
        0,
        "every job handed out"
    );
    let gate = queue.ack_gate.as_ref().unwrap();
    gate.add_permits(3);
    running.stop().await;
    assert_eq!(
        gate.available_permits(),
        0,
        "the three acks went through once the gate opened"
    );
}
