//! The sweeper: republishes what is owed and due, so nothing is lost when the queue forgets,
//! and applies the retention settings in small batches.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use domain::{Clock, MessageStatus, ResendPolicy};
use queue::{Job, JobQueue};
use store::{MessageStore, Resend, StoreError, UserStore};
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
    /// What is deleted, and when.
    pub retention: Retention,
    /// The one reminder to accounts still unconfirmed (REMINDER_AFTER); `None`: off.
    pub reminders: Option<Reminders>,
}

/// REMINDER_AFTER: an account still unconfirmed this long after registering is owed one more
/// confirmation email (a fresh link and code), within the resend limits of `policy`. Claimed
/// at most once per account, on the retention's cadence ([`RETENTION_EVERY`]), at most
/// [`REMINDER_BATCH`] accounts a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reminders {
    pub after: TimeDelta,
    pub policy: ResendPolicy,
}

/// Accounts one reminder pass claims at most.
pub const REMINDER_BATCH: u64 = 200;

/// What one reminder pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reminded {
    /// Accounts claimed (each is never claimed again).
    pub claimed: u64,
    /// Reminder emails owed (the others were within a limit, already had an email on its way,
    /// were suppressed or confirmed meanwhile: they count as reminded).
    pub owed: u64,
}

/// How long finished messages and unconfirmed accounts are kept (`None`: for ever). A sweep
/// (at most one every [`RETENTION_EVERY`]) deletes what has expired in batches of
/// [`RETENTION_BATCH`] rows, at most [`RETENTION_BATCHES`] batches of each kind, so a backlog
/// (the first run on a years-old database) is worked off over several sweeps without a long
/// lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// SENT_RETENTION: sent messages (and cancelled ones) with their attempts.
    pub sent: Option<TimeDelta>,
    /// DEAD_RETENTION: dead messages with their attempts.
    pub dead: Option<TimeDelta>,
    /// UNCONFIRMED_TTL: accounts still unconfirmed, owed nothing, with their messages.
    pub unconfirmed: Option<TimeDelta>,
}

/// Rows one retention statement deletes at most.
pub const RETENTION_BATCH: u64 = 500;
/// Retention statements of each kind one sweep runs at most.
pub const RETENTION_BATCHES: u32 = 20;
/// Retention runs on a sweep at most this often (sweeps may come every 100 ms).
pub const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Sent and cancelled messages.
    pub sent: u64,
    pub dead: u64,
    /// Unconfirmed accounts (their messages went with them).
    pub unconfirmed: u64,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_SWEEP_INTERVAL,
            grace: TimeDelta::zero(),
            batch: 1000,
            retention: Retention::default(),
            reminders: None,
        }
    }
}

/// Owes the reminders due at `now` (at most `batch` accounts) and publishes them (a publish that
/// fails is left to the sweep: the email is owed in the outbox either way).
pub async fn remind_once(
    users: &dyn UserStore,
    queue: &dyn JobQueue,
    now: DateTime<Utc>,
    reminders: Reminders,
    batch: u64,
) -> Result<Reminded, StoreError> {
    let due = users
        .claim_reminders(now - reminders.after, now, batch)
        .await?;
    let mut done = Reminded {
        claimed: u64::try_from(due.len()).unwrap_or(u64::MAX),
        owed: 0,
    };
    for email in due {
        // A failure costs that account its reminder (it is claimed), not the others'.
        let outcome = match users.resend(&email, reminders.policy, now).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(to = %email.masked(), %error, "reminder not owed: the store failed");
                continue;
            }
        };
        let Resend::Queued(message_id) = outcome else {
            tracing::info!(to = %email.masked(), ?outcome, "reminder not sent: a limit or state holds it back");
            continue;
        };
        done.owed += 1;
        tracing::info!(%message_id, to = %email.masked(), "reminder owed");
        if let Err(error) = queue.publish(Job::new(message_id)).await {
            tracing::debug!(%message_id, %error, "reminder not published; the sweep will");
        }
    }
    Ok(done)
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

/// Deletes what `retention` says has expired at `now`: batches of `batch` rows, at most
/// `batches` statements of each kind.
pub async fn retain_once(
    messages: &dyn MessageStore,
    users: &dyn UserStore,
    now: DateTime<Utc>,
    retention: Retention,
    batch: u64,
    batches: u32,
) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    if let Some(keep) = retention.sent {
        for status in [
            MessageStatus::Sent,
            MessageStatus::Cancelled,
            MessageStatus::Bounced,
            MessageStatus::Complained,
        ] {
            purged.sent += repeat(batches, batch, || {
                messages.purge_finished(status, now - keep, batch)
            })
            .await?;
        }
    }
    if let Some(keep) = retention.dead {
        purged.dead = repeat(batches, batch, || {
            messages.purge_finished(MessageStatus::Dead, now - keep, batch)
        })
        .await?;
    }
    if let Some(keep) = retention.unconfirmed {
        purged.unconfirmed = repeat(batches, batch, || {
            users.purge_unconfirmed(now - keep, batch)
        })
        .await?;
    }
    Ok(purged)
}

/// Runs `delete` up to `batches` times, while each deletes a full `batch`; the total.
async fn repeat<F, Fut>(batches: u32, batch: u64, mut delete: F) -> Result<u64, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    for _ in 0..batches {
        let deleted = delete().await?;
        total += deleted;
        if deleted < batch {
            break;
        }
    }
    Ok(total)
}

/// Sweeps at once, then every `config.interval`, until `shutdown` turns true.
pub async fn run_sweeper(
    messages: Arc<dyn MessageStore>,
    users: Arc<dyn UserStore>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    config: SweepConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(config.interval);
    let mut retained_at: Option<tokio::time::Instant> = None;
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
        if (config.retention == Retention::default() && config.reminders.is_none())
            || retained_at.is_some_and(|at| at.elapsed() < RETENTION_EVERY)
        {
            continue;
        }
        retained_at = Some(tokio::time::Instant::now());
        if let Some(reminders) = config.reminders {
            match remind_once(
                users.as_ref(),
                queue.as_ref(),
                clock.now(),
                reminders,
                REMINDER_BATCH,
            )
            .await
            {
                Ok(done) => {
                    metrics::counter!("reminders_total", "outcome" => "owed").increment(done.owed);
                    metrics::counter!("reminders_total", "outcome" => "held_back")
                        .increment(done.claimed - done.owed);
                    if done.claimed > 0 {
                        tracing::info!(claimed = done.claimed, owed = done.owed, "reminders");
                    }
                }
                Err(error) => tracing::warn!(%error, "reminders failed; will try again"),
            }
        }
        if config.retention == Retention::default() {
            continue;
        }
        let retained = retain_once(
            messages.as_ref(),
            users.as_ref(),
            clock.now(),
            config.retention,
            RETENTION_BATCH,
            RETENTION_BATCHES,
        )
        .await;
        match retained {
            Ok(purged) => {
                for (what, n) in [
                    ("sent", purged.sent),
                    ("dead", purged.dead),
                    ("unconfirmed", purged.unconfirmed),
                ] {
                    if n > 0 {
                        metrics::counter!("retention_deleted_total", "what" => what).increment(n);
                    }
                }
                if purged != Purged::default() {
                    tracing::info!(
                        sent = purged.sent,
                        dead = purged.dead,
                        unconfirmed_accounts = purged.unconfirmed,
                        "retention: expired rows deleted"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "retention failed; will try again"),
        }
    }
}
