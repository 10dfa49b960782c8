//! One owed message at a time: claim it, render it, send it, record the outcome.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use domain::{Clock, MessageId, MessageKind, OwedMessage, RetryPolicy};
use mailer::{MailError, Mailer};
use queue::Job;
use store::batch::{self, Coalescer};
use store::{Claim, MessageStore, StoreError};
use tracing::Instrument;
use webhooks::{WebhookError, Webhooks};

use crate::rate_limit::{RateLimiter, RatePermit};
use crate::render::Renderer;

/// What the delivery needs to know besides its collaborators.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
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
    /// Not sent: the recipient's mailbox is suppressed, and the message is `cancelled` (by the
    /// claim, which checks the suppression list right before the send, or earlier); or a
    /// webhook's endpoint answered 410 Gone, which stops it (`cancelled` too).
    Cancelled,
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
pub enum DeliveryError {
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
    renderer: Renderer,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
    limiter: Option<RateLimiter>,
    /// Set after an account-level failure: no message is claimed before this time.
    paused_until: Mutex<Option<DateTime<Utc>>>,
    /// Claims and sends recorded in batches ([`Deliverer::with_batching`]); one call each
    /// without.
    batches: Option<StoreBatches>,
    /// Signs and posts the outbox's webhooks ([`Deliverer::with_webhooks`]); without it, a
    /// webhook message fails (and is retried) until a worker that has it takes it.
    webhooks: Option<Webhooks>,
}

/// The batch tasks of a deliverer's database calls.
#[derive(Debug)]
struct StoreBatches {
    claims: Coalescer<MessageId, Result<Claim, StoreError>>,
    sent: Coalescer<(MessageId, Option<String>), Result<(), StoreError>>,
}

impl Deliverer {
    pub fn new(
        messages: Arc<dyn MessageStore>,
        mailer: Arc<dyn Mailer>,
        renderer: Renderer,
        clock: Arc<dyn Clock>,
        config: DeliveryConfig,
    ) -> Self {
        let limiter = config.max_rate.map(RateLimiter::per_second);
        Self {
            messages,
            mailer,
            renderer,
            clock,
            config,
            limiter,
            paused_until: Mutex::new(None),
            batches: None,
            webhooks: None,
        }
    }

    /// Delivers the outbox's webhook messages with `webhooks` (the endpoint is the message's).
    #[must_use]
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = Some(webhooks);
        self
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
            .unwrap_or_else(PoisonError::into_inner))?;
        (until - self.clock.now())
            .to_std()
            .ok()
            .filter(|d| !d.is_zero())
    }

    fn pause_until(&self, until: DateTime<Utc>) {
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *paused = Some(paused.map_or(until, |current| current.max(until)));
    }

    /// The provider name of the mailer, for logs.
    pub fn provider(&self) -> &'static str {
        self.mailer.provider()
    }

    /// Claims, renders, sends and records one owed message.
    /// Logs one line when the job starts and one with its outcome (message id and masked
    /// recipient, never the address or the token), in the job's span ([`job_span`]).
    pub async fn handle(&self, job: Job) -> Result<Outcome, DeliveryError> {
        self.handle_in_span(job).instrument(job_span(&job)).await
    }

    /// [`Self::handle`] without its span, for callers already in one.
    pub(crate) async fn handle_in_span(&self, job: Job) -> Result<Outcome, DeliveryError> {
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
                let outcome = match message.kind {
                    MessageKind::Confirm
                    | MessageKind::PasswordReset
                    | MessageKind::PasswordChanged => {
                        self.send_claimed(&message, now, permit).await?
                    }
                    MessageKind::Webhook => {
                        drop(permit);
                        self.post_claimed(&message, now).await?
                    }
                };
                log_outcome(id, &message.recipient.masked(), &outcome);
                return Ok(outcome);
            }
            Claim::Cancelled => {
                // The message id only: the recipient is on the suppression list.
                tracing::info!(message_id = %id, "Job cancelled: the recipient's mailbox is suppressed");
                metrics::counter!("emails_cancelled_total").increment(1);
                return Ok(Outcome::Cancelled);
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
    ) -> Result<Outcome, DeliveryError> {
        let email = match self.renderer.render(message, now) {
            Ok(email) => email,
            // A broken template override: retry later, once the operator has fixed it.
            Err(error) => {
                drop(permit);
                return self
                    .failed(message, MailError::Transient(error.to_string()))
                    .await;
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

    /// Posts a claimed webhook message to its endpoint: a 2xx records it sent, a 410 stops it
    /// (`cancelled`), a bad endpoint URL kills it, anything else is retried as a transient
    /// failure. `webhook-id` is `msg_<message id>`, the same on every attempt.
    async fn post_claimed(
        &self,
        message: &OwedMessage,
        now: DateTime<Utc>,
    ) -> Result<Outcome, DeliveryError> {
        let Some(webhooks) = &self.webhooks else {
            return self
                .failed(
                    message,
                    MailError::Transient(
                        "webhooks are not configured on this worker (WEBHOOK_URL and WEBHOOK_SECRET)"
                            .into(),
                    ),
                )
                .await;
        };
        let Some(delivery) = self.messages.webhook(message.id).await? else {
            return self
                .failed(
                    message,
                    MailError::Permanent("the webhook's endpoint and body are missing".into()),
                )
                .await;
        };
        let started = std::time::Instant::now();
        let answer = webhooks
            .deliver(
                &delivery.endpoint,
                &format!("msg_{}", message.id),
                now.timestamp(),
                &delivery.payload,
            )
            .await;
        metrics::histogram!("webhook_post_seconds").record(started.elapsed().as_secs_f64());
        let outcome = match &answer {
            Ok(_) => "delivered",
            Err(WebhookError::Gone) => "gone",
            Err(_) => "failed",
        };
        metrics::counter!("webhooks_total", "event" => delivery.event.as_str(), "outcome" => outcome)
            .increment(1);
        match answer {
            Ok(status) => {
                let answer = Some(format!("HTTP {status}"));
                self.mark_sent(message.id, answer.clone()).await?;
                Ok(Outcome::Sent {
                    provider_message_id: answer,
                })
            }
            Err(WebhookError::Gone) => {
                self.messages
                    .mark_stopped(message.id, WebhookError::Gone.to_string(), self.clock.now())
                    .await?;
                Ok(Outcome::Cancelled)
            }
            Err(WebhookError::BadEndpoint(why)) => {
                self.failed(message, MailError::Permanent(why)).await
            }
            Err(WebhookError::Failed(why)) => self.failed(message, MailError::Transient(why)).await,
        }
    }

    async fn failed(
        &self,
        message: &OwedMessage,
        error: MailError,
    ) -> Result<Outcome, DeliveryError> {
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
        if message.kind == MessageKind::Confirm {
            metrics::counter!("emails_failed_total", "provider" => self.mailer.provider(), "outcome" => outcome)
                .increment(1);
        }
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
        Outcome::Cancelled => tracing::info!(message_id = %id, "Job cancelled"),
        Outcome::Retrying { at, error } => {
            tracing::warn!(message_id = %id, %to, retry_at = %at, %error, "Job failed: will retry");
        }
        Outcome::Dead { error } => {
            tracing::error!(message_id = %id, %to, %error, "Job failed: dead")
        }
    }
}
