use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use domain::{EmailAddress, ManualClock, MessageStatus, UserId};
use mailer::{MemoryMailer, MockMailer};
use mockall::predicate::eq;
use queue::EmbeddedQueue;
use store::MockMessageStore;

use super::*;

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
    }
}

fn config() -> DeliveryConfig {
    DeliveryConfig {
        base_url: "http://127.0.0.1:5003/".into(),
        token_max_age: 3600,
        lease: TimeDelta::seconds(120),
        retry: RetryPolicy::default(),
        max_rate: None,
        account_pause: TimeDelta::seconds(300),
    }
}

fn tokens() -> ConfirmationTokens {
    ConfirmationTokens::new(&["test-secret"]).unwrap()
}

fn deliverer(messages: MockMessageStore, mailer: Arc<dyn Mailer>) -> Deliverer {
    Deliverer::new(
        Arc::new(messages),
        mailer,
        Templates::new(EMAIL_TEMPLATES, None),
        tokens(),
        Arc::new(ManualClock::at_unix(NOW)),
        config(),
    )
}

#[tokio::test]
async fn sends_a_fresh_link_and_records_the_send() {
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .with(
            eq(MessageId(7)),
            eq(DateTime::from_timestamp(NOW, 0).unwrap()),
            eq(TimeDelta::seconds(120)),
        )
        .times(1)
        .returning(|_, _, _| Ok(Claim::Claimed(owed(7, 1))));
    messages
        .expect_mark_sent()
        .withf(|id, provider, _| *id == MessageId(7) && provider.as_deref() == Some("memory-1"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mailer = Arc::new(MemoryMailer::new());
    let d = deliverer(messages, mailer.clone());

    let outcome = d.handle(Job::new(MessageId(7))).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Sent {
            provider_message_id: Some("memory-1".into())
        }
    );

    let sent = mailer.messages();
    assert_eq!(sent.len(), 1);
    let email = &sent[0];
    assert_eq!(email.to.as_str(), "Someone@example.com");
    assert_eq!(email.subject, "Confirm Your Account");
    let link = email.action_url.clone().unwrap();
    let token = link
        .strip_prefix("http://127.0.0.1:5003/confirm/")
        .expect("link on BASE_URL without a double slash");
    assert!(email.text.contains(&link));
    assert!(email.text.contains("1 hour"));
    assert!(
        email
            .html
            .as_ref()
            .unwrap()
            .contains(&format!("href=\"{}", link.replace('/', "&#x2f;")))
    );
    let verified = tokens().check(token, Some(3600), NOW).unwrap();
    assert_eq!(verified.payload, "Someone@example.com");
    assert_eq!(verified.issued_at, NOW as u64);
}

#[tokio::test]
async fn skips_without_sending_when_the_claim_fails() {
    for claim in [Claim::AlreadySent, Claim::NotClaimable, Claim::Missing] {
        let mut messages = MockMessageStore::new();
        let c = claim.clone();
        messages
            .expect_claim()
            .returning(move |_, _, _| Ok(c.clone()));
        let mut mailer = MockMailer::new();
        mailer.expect_send().never();
        mailer.expect_provider().return_const("mock");
        let d = deliverer(messages, Arc::new(mailer));
        assert!(
            matches!(
                d.handle(Job::new(MessageId(1))).await.unwrap(),
                Outcome::Skipped(_)
            ),
            "{claim:?}"
        );
    }
}

#[tokio::test]
async fn transient_failure_schedules_a_retry_within_the_backoff_window() {
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .returning(|_, _, _| Ok(Claim::Claimed(owed(3, 1))));
    messages
        .expect_mark_retry()
        .withf(|id, error, at, now| {
            let wait = *at - *now;
            *id == MessageId(3)
                && error.contains("421")
                && wait >= TimeDelta::seconds(15)
                && wait <= TimeDelta::seconds(30)
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer
        .expect_send()
        .times(1)
        .returning(|_| Err(MailError::Transient("421 try later".into())));
    mailer.expect_provider().return_const("mock");
    let d = deliverer(messages, Arc::new(mailer));
    assert!(matches!(
        d.handle(Job::new(MessageId(3))).await.unwrap(),
        Outcome::Retrying { .. }
    ));
}

#[tokio::test]
async fn permanent_failure_or_last_attempt_goes_dead() {
    for (attempts, error) in [
        (1, MailError::Permanent("550 no such user".into())),
        (10, MailError::Transient("timeout".into())),
    ] {
        let mut messages = MockMessageStore::new();
        messages
            .expect_claim()
            .returning(move |_, _, _| Ok(Claim::Claimed(owed(4, attempts))));
        messages
            .expect_mark_dead()
            .withf(|id, _, _| *id == MessageId(4))
            .times(1)
            .returning(|_, _, _| Ok(()));
        messages.expect_mark_retry().never();
        let mut mailer = MockMailer::new();
        let e = error.clone();
        mailer
            .expect_send()
            .times(1)
            .returning(move |_| Err(e.clone()));
        mailer.expect_provider().return_const("mock");
        let d = deliverer(messages, Arc::new(mailer));
        assert!(
            matches!(
                d.handle(Job::new(MessageId(4))).await.unwrap(),
                Outcome::Dead { .. }
            ),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn store_failure_on_claim_is_an_error_and_sends_nothing() {
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .returning(|_, _, _| Err(StoreError::Corrupt("test".into())));
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();
    mailer.expect_provider().return_const("mock");
    let d = deliverer(messages, Arc::new(mailer));
    assert!(d.handle(Job::new(MessageId(1))).await.is_err());
}

#[test]
fn retry_policy_backs_off_exponentially_with_a_cap_and_a_limit() {
    let p = RetryPolicy {
        base: Duration::from_secs(30),
        max: Duration::from_secs(600),
        max_attempts: 6,
    };
    assert_eq!(p.next_delay(1, 1.0), Some(Duration::from_secs(30)));
    assert_eq!(p.next_delay(1, 0.0), Some(Duration::from_secs(15)));
    assert_eq!(p.next_delay(2, 1.0), Some(Duration::from_secs(60)));
    assert_eq!(p.next_delay(3, 1.0), Some(Duration::from_secs(120)));
    assert_eq!(p.next_delay(5, 1.0), Some(Duration::from_secs(480)));
    assert_eq!(
        p.next_delay(5, 2.0),
        Some(Duration::from_secs(480)),
        "jitter is clamped"
    );
    assert_eq!(p.next_delay(6, 1.0), None);
    let big = RetryPolicy {
        max_attempts: 1000,
        ..p
    };
    assert_eq!(big.next_delay(200, 1.0), Some(Duration::from_secs(600)));

    // The default spreads ten attempts over a few hours.
    let d = RetryPolicy::default();
    let total: Duration = (1..d.max_attempts)
        .filter_map(|n| d.next_delay(n, 1.0))
        .sum();
    assert!(
        total > Duration::from_secs(3 * 3600) && total < Duration::from_secs(6 * 3600),
        "{total:?}"
    );
}

#[test]
fn human_durations() {
    assert_eq!(human_duration(3600), "1 hour");
    assert_eq!(human_duration(7200), "2 hours");
    assert_eq!(human_duration(90 * 60), "90 minutes");
    assert_eq!(human_duration(60), "1 minute");
    assert_eq!(human_duration(45), "45 seconds");
}

#[tokio::test]
async fn sweep_publishes_due_messages_and_stops_at_a_full_queue() {
    let mut messages = MockMessageStore::new();
    let now = DateTime::from_timestamp(NOW, 0).unwrap();
    messages
        .expect_due()
        .withf(move |cutoff, batch| *cutoff == now - TimeDelta::seconds(30) && *batch == 100)
        .returning(|_, _| Ok(vec![MessageId(1), MessageId(2), MessageId(3)]));
    let queue = EmbeddedQueue::with_capacity(2);
    let config = SweepConfig {
        interval: Duration::from_secs(15),
        grace: TimeDelta::seconds(30),
        batch: 100,
    };
    assert_eq!(sweep_once(&messages, &queue, now, config).await.unwrap(), 2);
    assert_eq!(queue.depth().await.unwrap(), 2);
}

#[tokio::test]
async fn sweep_waits_while_jobs_are_waiting_in_the_queue() {
    let mut messages = MockMessageStore::new();
    messages.expect_due().never();
    let queue = EmbeddedQueue::new();
    queue.publish(Job::new(MessageId(9))).await.unwrap();
    let now = DateTime::from_timestamp(NOW, 0).unwrap();
    assert_eq!(
        sweep_once(&messages, &queue, now, SweepConfig::default())
            .await
            .unwrap(),
        0
    );
}

/// A send whose record fails because the database was unavailable (a connection the server
/// ended) is recorded on a second try; another kind of failure is not retried.
#[tokio::test]
async fn an_unavailable_database_when_recording_a_send_is_tried_once_more() {
    for (first, calls, recorded) in [
        (StoreError::Unavailable("connection reset".into()), 2, true),
        (StoreError::Corrupt("bad row".into()), 1, false),
    ] {
        let mut messages = MockMessageStore::new();
        messages
            .expect_claim()
            .times(1)
            .returning(|id, _, _| Ok(Claim::Claimed(owed(id.0, 1))));
        let mut seq = mockall::Sequence::new();
        messages
            .expect_mark_sent()
            .times(1)
            .in_sequence(&mut seq)
            .return_once(move |_, _, _| Err(first));
        messages
            .expect_mark_sent()
            .times(calls - 1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(()));
        let mailer = Arc::new(MemoryMailer::new());
        let d = deliverer(messages, mailer.clone());
        let outcome = d.handle(Job::new(MessageId(7))).await;
        assert_eq!(outcome.is_ok(), recorded, "{outcome:?}");
        assert_eq!(mailer.messages().len(), 1, "sent once either way");
    }
}

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

/// With MAIL_MAX_RATE, a job waits for its send slot before it claims the message, so the
/// lease covers only the send: a long wait for a slot cannot outlast the lease (and let the
/// message be claimed and sent again meanwhile, as fault h once showed).
#[tokio::test(start_paused = true)]
async fn a_rate_limited_job_claims_only_once_it_has_a_send_slot() {
    let start = tokio::time::Instant::now();
    let claimed_at = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut messages = MockMessageStore::new();
    let seen = Arc::clone(&claimed_at);
    messages.expect_claim().times(2).returning(move |id, _, _| {
        seen.lock().unwrap().push(start.elapsed());
        Ok(Claim::Claimed(owed(id.0, 1)))
    });
    messages
        .expect_mark_sent()
        .times(2)
        .returning(|_, _, _| Ok(()));
    let mailer = Arc::new(MemoryMailer::new());
    let d = Arc::new(Deliverer::new(
        Arc::new(messages),
        mailer.clone(),
        Templates::new(EMAIL_TEMPLATES, None),
        tokens(),
        Arc::new(ManualClock::at_unix(NOW)),
        DeliveryConfig {
            max_rate: Some(1.0),
            ..config()
        },
    ));
    let jobs: Vec<_> = [1, 2]
        .into_iter()
        .map(|n| {
            let d = Arc::clone(&d);
            tokio::spawn(async move { d.handle(Job::new(MessageId(n))).await })
        })
        .collect();
    for job in jobs {
        assert!(matches!(job.await.unwrap().unwrap(), Outcome::Sent { .. }));
    }
    let mut claimed_at = claimed_at.lock().unwrap().clone();
    claimed_at.sort();
    assert_eq!(mailer.messages().len(), 2);
    assert!(claimed_at[0] < Duration::from_millis(100), "{claimed_at:?}");
    assert!(
        claimed_at[1] >= Duration::from_secs(1),
        "the second job claimed before it had a slot: {claimed_at:?}"
    );
}

/// The most events within any half-open one-second window.
fn busiest_second(times: &[Duration]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|u| **u < sorted[i] + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

// Paused time: sleeps advance the virtual clock instantly, no wall time passes.
#[tokio::test(start_paused = true)]
async fn rate_limiter_bounds_arrivals_even_when_send_durations_vary() {
    let limiter = Arc::new(RateLimiter::per_second(20.0));
    let start = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for task in 0..8u64 {
        let limiter = Arc::clone(&limiter);
        tasks.spawn(async move {
            let mut events = Vec::new();
            for n in 0..25u64 {
                let permit = limiter.acquire().await;
                let started = tokio::time::Instant::now() - start;
                // Sends of 1 to 120 ms, varying from one to the next (a fixed pseudo-random walk).
                let millis = 1 + (task * 37 + n * 53) % 120;
                tokio::time::sleep(Duration::from_millis(millis)).await;
                let finished = tokio::time::Instant::now() - start;
                drop(permit);
                events.push((started, finished));
            }
            events
        });
    }
    let mut events = Vec::new();
    while let Some(done) = tasks.join_next().await {
        events.extend(done.unwrap());
    }
    assert_eq!(events.len(), 200);
    // The provider accepts a message somewhere between its start and its finish: the bound must
    // hold for both ends.
    let starts: Vec<_> = events.iter().map(|e| e.0).collect();
    let finishes: Vec<_> = events.iter().map(|e| e.1).collect();
    assert!(
        busiest_second(&starts) <= 20,
        "{} starts in one second",
        busiest_second(&starts)
    );
    assert!(
        busiest_second(&finishes) <= 20,
        "{} finishes in one second",
        busiest_second(&finishes)
    );
    // And it does not throttle far below the rate: 200 sends in about 10 s plus the send times.
    let total = *finishes.iter().max().unwrap();
    assert!(
        total > Duration::from_secs(9) && total < Duration::from_secs(13),
        "{total:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_below_one_per_second_spaces_sends() {
    let limiter = RateLimiter::per_second(0.5);
    let start = tokio::time::Instant::now();
    let mut starts = Vec::new();
    for _ in 0..3 {
        let permit = limiter.acquire().await;
        starts.push(tokio::time::Instant::now() - start);
        drop(permit);
    }
    assert_eq!(
        starts,
        vec![
            Duration::ZERO,
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
}

#[tokio::test]
async fn an_account_failure_pauses_sending_without_burning_retries() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let mut messages = MockMessageStore::new();
    // The last allowed attempt: an ordinary transient failure would make it dead.
    messages
        .expect_claim()
        .times(1)
        .returning(|_, _, _| Ok(Claim::Claimed(owed(5, 10))));
    messages
        .expect_mark_retry()
        .withf(|id, error, at, now| {
            *id == MessageId(5)
                && error.contains("sending paused")
                && *at - *now == TimeDelta::seconds(300)
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    messages.expect_mark_dead().never();
    let mut mailer = MockMailer::new();
    mailer.expect_send().times(1).returning(|_| {
        Err(MailError::Account(
            "SES sending paused for the account".into(),
        ))
    });
    mailer.expect_provider().return_const("mock");
    let d = Deliverer::new(
        Arc::new(messages),
        Arc::new(mailer),
        Templates::new(EMAIL_TEMPLATES, None),
        tokens(),
        clock.clone(),
        config(),
    );
    assert!(matches!(
        d.handle(Job::new(MessageId(5))).await.unwrap(),
        Outcome::Retrying { .. }
    ));
    assert_eq!(d.paused_for(), Some(Duration::from_secs(300)));

    // While paused, nothing is claimed or sent (the mocks allow one claim and one send only).
    let next = d.handle(Job::new(MessageId(6))).await.unwrap();
    assert!(matches!(next, Outcome::Skipped(_)), "{next:?}");

    clock.advance(TimeDelta::seconds(300));
    assert_eq!(d.paused_for(), None);
}

/// The confirmation email as the embedded templates render it, with markup fed into every
/// variable: compared with the committed snapshot (`UPDATE_SNAPSHOTS=1` rewrites it after a
/// deliberate template change), and checked for escaping, the link, its lifetime and the
/// "ignore it" line.
#[test]
fn confirmation_email_snapshot_with_markup_in_every_variable() {
    let hostile_url = "http://e.example/confirm/\"><script>alert(1)</script>&x='y'";
    let ctx = ConfirmContext {
        confirm_url: hostile_url,
        expires_in: "<b>1 hour</b> & \"more\"".to_owned(),
    };
    let rendered = Templates::new(EMAIL_TEMPLATES, None)
        .render_email("email/confirm", &ctx)
        .unwrap();
    let html = rendered.html.clone().expect("an HTML part");
    let snapshot = format!(
        "--- subject\n{}\n--- text\n{}\n--- html\n{}\n",
        rendered.subject, rendered.text, html
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/tests/snapshots/confirm_email.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &snapshot).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        snapshot, expected,
        "the email changed: check it, then run with UPDATE_SNAPSHOTS=1"
    );

    assert_eq!(rendered.subject, "Confirm Your Account");
    // Text: the values verbatim (it is not HTML), with the lifetime and the "ignore" line.
    assert!(rendered.text.contains(hostile_url));
    assert!(rendered.text.contains("The link works for <b>1 hour</b>"));
    assert!(
        rendered
            .text
            .contains("If you did not sign up, you can ignore this email")
    );
    // HTML: nothing from a variable survives as markup.
    assert!(!html.contains("<script>"));
    assert!(!html.contains("<b>"));
    assert!(!html.contains("\"><script"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
    assert!(html.contains("&lt;b&gt;1 hour&lt;&#x2f;b&gt; &amp; &quot;more&quot;"));
    assert!(html.contains("If you did not sign up, you can ignore this email"));
}

/// With a normal link the HTML part links to it exactly (escaping only `/` as `&#x2f;`, which
/// every mail client decodes), so the multipart message carries one working link in each part.
#[test]
fn the_html_link_decodes_to_the_text_link() {
    let url = "https://example.com/confirm/eyJhIjoxfQ.Zx4-_A.abc_DEF-123";
    let ctx = ConfirmContext {
        confirm_url: url,
        expires_in: human_duration(3600),
    };
    let rendered = Templates::new(EMAIL_TEMPLATES, None)
        .render_email("email/confirm", &ctx)
        .unwrap();
    let html = rendered.html.unwrap();
    assert!(html.contains(&format!("href=\"{}\"", url.replace('/', "&#x2f;"))));
    assert!(rendered.text.contains(&format!("{url}\n")));
    assert!(rendered.text.contains("The link works for 1 hour."));
}
