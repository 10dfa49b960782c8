#![doc = include_str!("../README.md")]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use domain::{Clock, ConfirmationTokens, MessageId, MessageKind, OwedMessage};
use mailer::{MailError, Mailer, Message, Templates};
use queue::{Job, JobQueue};
use serde::Serialize;
use settings::{Settings, SettingsError};
use store::batch::{self, Coalescer};
use store::{Claim, MessageStore, SeaStore, StoreError};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

pub mod ops;

pub use ops::probe;
use tracing::Instrument;

/// The email templates compiled into the binary; a directory can override any of them.
pub const EMAIL_TEMPLATES: &[(&str, &str)] = &[
    (
        "email/confirm/subject.txt",
        include_str!("../../../templates/email/confirm/subject.txt"),
    ),
    (
        "email/confirm/body.txt",
        include_str!("../../../templates/email/confirm/body.txt"),
    ),
    (
        "email/confirm/body.html",
        include_str!("../../../templates/email/confirm/body.html"),
    ),
];

/// Most calls one database or queue batch carries (see [`batch`]).
pub const DEFAULT_BATCH_MAX: usize = 64;

/// How often the sweeper looks for due messages.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(15);

/// How failed sends are retried: exponential backoff from `base`, capped at `max`, with jitter
/// (each delay is drawn from its upper half), at most `max_attempts` attempts in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 30 s, 1 min, 2 min … capped at 2 h: ten attempts spread over about four hours.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max: Duration::from_secs(2 * 3600),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The delay before the next attempt after `attempts` failed ones, or `None` when no
    /// attempt is left. `jitter` in `[0, 1]` picks a point in the upper half of the delay.
    pub fn next_delay(&self, attempts: u32, jitter: f64) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let exp = attempts.saturating_sub(1).min(31);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        Some(full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0)))
    }
}

/// What the delivery needs to know besides its collaborators.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Public root URL of the server, used to build links (`https://example.com`).
    pub base_url: String,
    /// How long a confirmation link stays valid, in seconds.
    pub token_max_age: u64,
    /// How long a claimed message is reserved for one worker before another may take it over.
    pub lease: TimeDelta,
    pub retry: RetryPolicy,
    /// Most messages per second this deliverer sends, across all its tasks (`None`: no limit).
    pub max_rate: Option<f64>,
    /// How long sending stops after an account-level provider failure.
    pub account_pause: TimeDelta,
}

/// What happened to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        provider_message_id: Option<String>,
    },
    /// Already sent, not due, leased elsewhere, or gone: nothing to do.
    Skipped(&'static str),
    /// A transient failure; the sweeper republishes the message at `at`.
    Retrying {
        at: DateTime<Utc>,
        error: String,
    },
    /// A permanent failure or the last attempt failed; the message stops.
    Dead {
        error: String,
    },
}

/// Why a job could not be handled at all (its message stays owed and is swept later).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
}

/// Handles one job at a time; share it behind an `Arc` for concurrency.
#[derive(Debug)]
pub struct Deliverer {
    messages: Arc<dyn MessageStore>,
    mailer: Arc<dyn Mailer>,
    templates: Templates,
    tokens: ConfirmationTokens,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
    limiter: Option<RateLimiter>,
    /// Set after an account-level failure: no message is claimed before this time.
    paused_until: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// Claims and sends recorded in batches ([`Deliverer::with_batching`]); one call each
    /// without.
    batches: Option<StoreBatches>,
}

/// The batch tasks of a deliverer's database calls.
#[derive(Debug)]
struct StoreBatches {
    claims: Coalescer<MessageId, Result<Claim, StoreError>>,
    sent: Coalescer<(MessageId, Option<String>), Result<(), StoreError>>,
}

/// Keeps the provider from seeing more than `rate` messages in any one-second window, across
/// every task sharing the limiter.
///
/// Spacing the *starts* of sends is not enough: a send's duration varies (SMTP round trips, a
/// busy provider), so sends started 50 ms apart can arrive 5 ms apart. Instead each send holds a
/// slot from its start until one second after it finishes, and a send may start only while
/// fewer than `rate` slots are held. Whenever the provider accepted a message (between its
/// start and our seeing it finish), the other messages accepted within the same second were
/// then either still in flight or finished less than a second before, so they held slots:
/// at most `rate` in any window. Rates below 1 use one slot and a window of `1 / rate` seconds;
/// fractional rates above 1 are rounded down.
#[derive(Debug)]
pub struct RateLimiter {
    slots: usize,
    window: Duration,
    state: std::sync::Mutex<LimiterState>,
    released: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct LimiterState {
    in_flight: usize,
    /// When recent sends finished, oldest first.
    finished: std::collections::VecDeque<tokio::time::Instant>,
}

/// A held send slot; dropping it records the send as finished.
#[derive(Debug)]
pub struct RatePermit<'a> {
    limiter: &'a RateLimiter,
}

impl Drop for RatePermit<'_> {
    fn drop(&mut self) {
        let mut state = self.limiter.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.finished.push_back(tokio::time::Instant::now());
        drop(state);
        self.limiter.released.notify_waiters();
    }
}

impl RateLimiter {
    /// A limiter for `rate` messages per second (`rate` > 0).
    pub fn per_second(rate: f64) -> Self {
        let rate = rate.max(1e-6);
        let (slots, window) = if rate >= 1.0 {
            // Rounding down is the point: never allow more than the rate.
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "rate >= 1 and capped"
            )]
            let slots = rate.floor().min(1_000_000.0) as usize;
            (slots, Duration::from_secs(1))
        } else {
            (1, Duration::from_secs_f64(1.0 / rate))
        };
        Self {
            slots,
            window,
            state: std::sync::Mutex::default(),
            released: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a free slot; hold the permit for the whole send.
    pub async fn acquire(&self) -> RatePermit<'_> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let wake_at = {
                let mut state = self.lock();
                let now = tokio::time::Instant::now();
                while state
                    .finished
                    .front()
                    .is_some_and(|t| *t + self.window <= now)
                {
                    state.finished.pop_front();
                }
                if state.in_flight + state.finished.len() < self.slots {
                    state.in_flight += 1;
                    return RatePermit { limiter: self };
                }
                state.finished.front().map(|t| *t + self.window)
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut released => {}
                    }
                }
                None => released.await,
            }
        }
    }
}

#[derive(Serialize)]
struct ConfirmContext<'a> {
    confirm_url: &'a str,
    expires_in: String,
}

impl Deliverer {
    pub fn new(
        messages: Arc<dyn MessageStore>,
        mailer: Arc<dyn Mailer>,
        templates: Templates,
        tokens: ConfirmationTokens,
        clock: Arc<dyn Clock>,
        config: DeliveryConfig,
    ) -> Self {
        let limiter = config.max_rate.map(RateLimiter::per_second);
        Self {
            messages,
            mailer,
            templates,
            tokens,
            clock,
            config,
            limiter,
            paused_until: std::sync::Mutex::new(None),
            batches: None,
        }
    }

    /// Claims messages and records sends in batches of at most `max` (one statement per batch)
    /// when jobs run concurrently; see [`batch`]. Needs a Tokio runtime (it spawns the batch
    /// tasks). Each batch claims with the clock's time when it runs.
    pub fn with_batching(mut self, max: usize) -> Self {
        let store = Arc::clone(&self.messages);
        let clock = Arc::clone(&self.clock);
        let lease = self.config.lease;
        let claims = Coalescer::spawn(max, move |ids: Vec<MessageId>| {
            let store = Arc::clone(&store);
            let now = clock.now();
            async move {
                let count = ids.len();
                match store.claim_many(ids, now, lease).await {
                    Ok(answers) => answers,
                    Err(error) => batch::fail_all(&error, count),
                }
            }
        });
        let store = Arc::clone(&self.messages);
        let clock = Arc::clone(&self.clock);
        let sent = Coalescer::spawn(max, move |sends: Vec<(MessageId, Option<String>)>| {
            let store = Arc::clone(&store);
            let now = clock.now();
            async move {
                let count = sends.len();
                match store.mark_sent_many(sends, now).await {
                    Ok(()) => (0..count).map(|_| Ok(())).collect(),
                    Err(error) => batch::fail_all(&error, count),
                }
            }
        });
        self.batches = Some(StoreBatches { claims, sent });
        self
    }

    async fn claim(&self, id: MessageId, now: DateTime<Utc>) -> Result<Claim, StoreError> {
        match &self.batches {
            Some(batches) => batches.claims.call(id).await?,
            None => self.messages.claim(id, now, self.config.lease).await,
        }
    }

    /// Records a send the provider accepted. If the database was unavailable, tries once more
    /// before giving up: the pool hands out a connection used in the last second without checking
    /// it (see `store`), so the first statement after a database restart can fail on a connection
    /// the server ended, and a send left unrecorded is sent again once its lease runs out.
    async fn mark_sent(
        &self,
        id: MessageId,
        provider_message_id: Option<String>,
    ) -> Result<(), StoreError> {
        match self.mark_sent_once(id, provider_message_id.clone()).await {
            Err(error) if error.is_unavailable() => {
                tracing::warn!(message_id = %id, %error, "recording the send failed; trying once more");
                self.mark_sent_once(id, provider_message_id).await
            }
            done => done,
        }
    }

    async fn mark_sent_once(
        &self,
        id: MessageId,
        provider_message_id: Option<String>,
    ) -> Result<(), StoreError> {
        match &self.batches {
            Some(batches) => batches.sent.call((id, provider_message_id)).await?,
            None => {
                self.messages
                    .mark_sent(id, provider_message_id, self.clock.now())
                    .await
            }
        }
    }

    /// How much longer sending is paused after an account-level failure, if it is.
    pub fn paused_for(&self) -> Option<Duration> {
        let until = (*self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))?;
        (until - self.clock.now())
            .to_std()
            .ok()
            .filter(|d| !d.is_zero())
    }

    fn pause_until(&self, until: DateTime<Utc>) {
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *paused = Some(paused.map_or(until, |current| current.max(until)));
    }

    /// A deliverer configured from the settings (BASE_URL, TOKEN_MAX_AGE, TEMPLATE_DIR).
    pub fn from_settings(
        settings: &Settings,
        messages: Arc<dyn MessageStore>,
        mailer: Arc<dyn Mailer>,
        tokens: ConfirmationTokens,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SettingsError> {
        let delta = |d: Duration| {
            TimeDelta::from_std(d)
                .map_err(|e| SettingsError::Invalid(format!("duration out of range: {e}")))
        };
        let retry = settings.retry()?;
        let config = DeliveryConfig {
            base_url: settings.base_url.clone(),
            token_max_age: settings.token_max_age,
            lease: delta(settings.send_lease()?)?,
            retry: RetryPolicy {
                base: retry.base,
                max: retry.max,
                max_attempts: retry.max_attempts,
            },
            max_rate: settings.mail_max_rate()?,
            account_pause: delta(settings.account_pause()?)?,
        };
        let templates = Templates::new(EMAIL_TEMPLATES, settings.template_dir.clone());
        Ok(Self::new(
            messages, mailer, templates, tokens, clock, config,
        ))
    }

    /// The provider name of the mailer, for logs.
    pub fn provider(&self) -> &'static str {
        self.mailer.provider()
    }

    /// Claims, renders, sends and records one owed message.
    /// Logs one line when the job starts and one with its outcome (message id and masked
    /// recipient, never the address or the token), in the job's span ([`job_span`]).
    pub async fn handle(&self, job: Job) -> Result<Outcome, WorkerError> {
        self.handle_in_span(job).instrument(job_span(&job)).await
    }

    /// [`Self::handle`] without its span, for callers already in one.
    async fn handle_in_span(&self, job: Job) -> Result<Outcome, WorkerError> {
        let id = job.message_id;
        let paused = || {
            // Not claimed: the message stays owed and is swept again once sending resumes.
            tracing::info!(message_id = %id, "Job skipped: sending is paused");
            Ok(Outcome::Skipped(
                "sending paused after an account-level failure",
            ))
        };
        if self.paused_for().is_some() {
            return paused();
        }
        // The send slot (MAIL_MAX_RATE) is taken before the claim, so the lease covers only the
        // send: a long wait for a slot cannot outlast the lease and let this message be claimed
        // and sent again by another job meanwhile.
        let permit = match &self.limiter {
            Some(limiter) => Some(limiter.acquire().await),
            None => None,
        };
        if self.paused_for().is_some() {
            return paused();
        }
        let now = self.clock.now();
        let skipped = match self.claim(id, now).await? {
            Claim::Claimed(message) => {
                tracing::info!(
                    message_id = %id,
                    to = %message.recipient.masked(),
                    attempt = message.attempts,
                    provider = self.mailer.provider(),
                    "job started"
                );
                let outcome = self.send_claimed(&message, now, permit).await?;
                log_outcome(id, &message.recipient.masked(), &outcome);
                return Ok(outcome);
            }
            Claim::AlreadySent => "already sent",
            Claim::NotClaimable => "not due or taken by another worker",
            Claim::Missing => "message no longer exists",
        };
        tracing::info!(message_id = %id, reason = skipped, "Job skipped");
        Ok(Outcome::Skipped(skipped))
    }

    /// Renders and sends a claimed message, holding `permit` (the send slot, if the rate is
    /// limited) until the provider has answered.
    async fn send_claimed(
        &self,
        message: &OwedMessage,
        now: DateTime<Utc>,
        permit: Option<RatePermit<'_>>,
    ) -> Result<Outcome, WorkerError> {
        let email = match self.render(message, now) {
            Ok(email) => email,
            // A broken template override: retry later, once the operator has fixed it.
            Err(error) => {
                drop(permit);
                return self.failed(message, MailError::Transient(error)).await;
            }
        };
        let provider = self.mailer.provider();
        let started = std::time::Instant::now();
        let sent = self.mailer.send(&email).await;
        metrics::histogram!("email_send_seconds", "provider" => provider)
            .record(started.elapsed().as_secs_f64());
        drop(permit);
        match sent {
            Ok(sent) => {
                metrics::counter!("emails_sent_total", "provider" => provider).increment(1);
                self.mark_sent(message.id, sent.provider_message_id.clone())
                    .await?;
                Ok(Outcome::Sent {
                    provider_message_id: sent.provider_message_id,
                })
            }
            Err(error) => self.failed(message, error).await,
        }
    }

    fn render(&self, message: &OwedMessage, now: DateTime<Utc>) -> Result<Message, String> {
        match message.kind {
            MessageKind::Confirm => {
                let token = self.tokens.issue(&message.recipient, now.timestamp());
                let confirm_url = format!(
                    "{}/confirm/{token}",
                    self.config.base_url.trim_end_matches('/')
                );
                let ctx = ConfirmContext {
                    confirm_url: &confirm_url,
                    expires_in: human_duration(self.config.token_max_age),
                };
                let rendered = self
                    .templates
                    .render_email("email/confirm", &ctx)
                    .map_err(|e| e.to_string())?;
                Ok(Message {
                    to: message.recipient.clone(),
                    subject: rendered.subject,
                    text: rendered.text,
                    html: rendered.html,
                    action_url: Some(confirm_url),
                })
            }
        }
    }

    async fn failed(
        &self,
        message: &OwedMessage,
        error: MailError,
    ) -> Result<Outcome, WorkerError> {
        let now = self.clock.now();
        let text = error.to_string();
        let retry_at = match &error {
            // Every message would fail the same way: stop sending for a while and retry this one
            // when sending resumes, whatever its attempt count, instead of burning the retries of
            // every message owed.
            MailError::Account(reason) => {
                let until = now + self.config.account_pause;
                self.pause_until(until);
                tracing::error!(
                    provider = self.mailer.provider(),
                    %reason,
                    paused_until = %until,
                    "the email provider refuses to send for this account: sending paused, operator action needed"
                );
                Some(until)
            }
            MailError::Transient(_) => self
                .config
                .retry
                .next_delay(message.attempts, rand::random::<f64>())
                .and_then(|d| TimeDelta::from_std(d).ok())
                .map(|delay| now + delay),
            MailError::Permanent(_) => None,
        };
        let outcome = match (&error, retry_at) {
            (MailError::Account(_), _) => "account",
            (_, Some(_)) => "retry",
            (_, None) => "dead",
        };
        metrics::counter!("emails_failed_total", "provider" => self.mailer.provider(), "outcome" => outcome)
            .increment(1);
        match retry_at {
            Some(at) => {
                self.messages
                    .mark_retry(message.id, text.clone(), at, now)
                    .await?;
                metrics::counter!("retries_scheduled_total").increment(1);
                Ok(Outcome::Retrying { at, error: text })
            }
            None => {
                self.messages
                    .mark_dead(message.id, text.clone(), now)
                    .await?;
                metrics::counter!("messages_dead_total").increment(1);
                Ok(Outcome::Dead { error: text })
            }
        }
    }
}

/// "1 hour", "90 minutes", "45 seconds".
pub fn human_duration(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    match seconds {
        s if s >= 3600 && s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

/// The span of a job's log lines: `job{message_id=… request_id=…}`, the request id being the
/// one of the web request that published it (absent for the sweeper's jobs), so one id finds
/// the registration in the server's log and the send in the worker's.
pub fn job_span(job: &Job) -> tracing::Span {
    // At ERROR level, so it is on every line RUST_LOG lets through (see `web::request_id`).
    tracing::error_span!(
        "job",
        message_id = %job.message_id,
        request_id = job.request_id.as_ref().map(tracing::field::display),
    )
}

/// One line per outcome, like RQ's `Job OK`; never the address or the token.
fn log_outcome(id: MessageId, to: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Sent {
            provider_message_id,
        } => tracing::info!(
            message_id = %id,
            %to,
            provider_message_id = provider_message_id.as_deref().unwrap_or("-"),
            "Job OK: sent"
        ),
        Outcome::Skipped(why) => tracing::info!(message_id = %id, %to, reason = why, "Job skipped"),
        Outcome::Retrying { at, error } => {
            tracing::warn!(message_id = %id, %to, retry_at = %at, %error, "Job failed: will retry");
        }
        Outcome::Dead { error } => {
            tracing::error!(message_id = %id, %to, %error, "Job failed: dead")
        }
    }
}

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
) -> Result<usize, WorkerError> {
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

/// The adapters delivery (and the web server) run on.
#[derive(Debug, Clone)]
pub struct Services {
    pub store: Arc<SeaStore>,
    pub queue: Arc<dyn JobQueue>,
    pub tokens: ConfirmationTokens,
    pub clock: Arc<dyn Clock>,
}

impl Services {
    /// Connects the database (SQLite migrates itself; PostgreSQL must be migrated) and the
    /// queue, and loads the signing keys.
    pub async fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let keys = settings.signing_keys()?;
        if keys.using_development_key {
            tracing::warn!(
                "SECRET_KEY is not set: using the development key. Links are forgeable; set SECRET_KEY outside local development"
            );
        }
        Ok(Self {
            store: Arc::new(settings.connect_store().await?),
            queue: settings.build_queue().await?,
            tokens: keys.tokens,
            clock: Arc::new(domain::SystemClock),
        })
    }
}

/// Runs delivery (the consumer loop and the sweeper) with `mailer` until `shutdown` turns true,
/// then drains the emails in flight (bounded by WORKER_SHUTDOWN_TIMEOUT).
pub async fn deliver(
    settings: &Settings,
    services: &Services,
    mailer: Arc<dyn Mailer>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), SettingsError> {
    ops::register_delivery_metrics(mailer.provider());
    let deliverer = Arc::new(
        Deliverer::from_settings(
            settings,
            services.store.clone(),
            mailer,
            services.tokens.clone(),
            services.clock.clone(),
        )?
        .with_batching(DEFAULT_BATCH_MAX),
    );
    let run_config = RunConfig {
        concurrency: settings.worker_concurrency,
        drain_timeout: settings.shutdown_timeout()?,
        ..RunConfig::default()
    };
    let interval = settings.sweep_interval()?;
    let sweep = SweepConfig {
        interval,
        // With Redis, give the server's own publish time to arrive before sweeping a message.
        grace: if settings.embedded_queue() {
            TimeDelta::zero()
        } else {
            TimeDelta::from_std(interval * 2).unwrap_or(TimeDelta::seconds(30))
        },
        ..SweepConfig::default()
    };
    tokio::join!(
        run(
            services.queue.clone(),
            deliverer,
            run_config,
            shutdown.clone()
        ),
        run_sweeper(
            services.store.clone(),
            services.queue.clone(),
            services.clock.clone(),
            sweep,
            shutdown
        ),
    );
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (the signal both binaries stop on).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}

/// The threads a binary's async runtime runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// One worker thread per core (the server: requests are handled in parallel).
    PerCore,
    /// Everything on the main thread (the worker). Its jobs spend most of their time waiting
    /// on the database, the queue and the mail server; on one thread, jobs woken by the same
    /// batch answer run together and no wake-up crosses threads, so less CPU goes into each
    /// email and the database batches are fuller (figures in the crate README). Run more worker
    /// processes to use more cores.
    One,
}

/// Runs a binary's async entry point on a runtime with these `threads`; logs a failure on one
/// line and turns it into exit status 1.
pub fn run_main(
    threads: Threads,
    main: impl Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    let mut builder = match threads {
        Threads::PerCore => tokio::runtime::Builder::new_multi_thread(),
        Threads::One => tokio::runtime::Builder::new_current_thread(),
    };
    let result = builder
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(main));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // Shared by both binaries: a neutral target rather than this crate's name.
            tracing::error!(target: "startup", "{}", report(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, skipping causes whose text a previous one already
/// includes (many database errors repeat their source in their own message).
pub fn report(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests;
