//! The feedback loop: bounce and complaint notifications read from a queue (SES → SNS → SQS)
//! into the store, where a permanent bounce or a complaint suppresses the mailbox.
//!
//! Each notification is parsed ([`mailer::feedback::parse_notification`]), recorded once per
//! recipient ([`FeedbackStore::record_feedback`], idempotent by the report's id), then deleted
//! from the queue. One that cannot be parsed, or whose recording failed, is not deleted: it comes
//! back after the queue's visibility timeout and, after the redrive policy's count, moves to the
//! queue's dead-letter queue. Nothing stops the loop; a queue that fails is polled again after
//! [`QUEUE_PAUSE`].

use std::sync::Arc;
use std::time::Duration;

use domain::{Clock, EmailAddress, Feedback, FeedbackKind, FeedbackOutcome};
use mailer::feedback::{
    FeedbackQueue, FeedbackQueueError, QueuedNotification, Report, SesNotification,
    parse_notification,
};
use store::FeedbackStore;
use tokio::sync::watch;

/// How long the loop waits after the queue itself failed.
pub const QUEUE_PAUSE: Duration = Duration::from_secs(5);

/// How long the loop waits after a receive that brought nothing.
pub const IDLE_PAUSE: Duration = Duration::from_secs(1);

/// The values of `feedback_total`'s `type` label.
pub const FEEDBACK_TYPES: [&str; 5] = [
    "permanent_bounce",
    "transient_bounce",
    "complaint",
    "other",
    "malformed",
];

/// Registers `feedback_total{type}` at 0, so it is scraped before the first notification.
pub fn register_feedback_metrics() {
    for kind in FEEDBACK_TYPES {
        metrics::counter!("feedback_total", "type" => kind).increment(0);
    }
}

/// What became of one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Recorded (or already recorded, or nothing to record): deleted from the queue.
    Done,
    /// Left on the queue: unreadable (the redrive policy decides), or the store failed (it comes
    /// back after the visibility timeout).
    Left,
}

/// Reads a feedback queue into the store.
#[derive(Debug, Clone)]
pub struct FeedbackLoop {
    pub queue: Arc<dyn FeedbackQueue>,
    pub store: Arc<dyn FeedbackStore>,
    pub clock: Arc<dyn Clock>,
}

impl FeedbackLoop {
    /// Receives once (a long poll) and handles what came; returns what became of each.
    pub async fn poll_once(&self) -> Result<Vec<Handled>, FeedbackQueueError> {
        let received = self.queue.receive().await?;
        let mut handled = Vec::with_capacity(received.len());
        for notification in &received {
            let outcome = self.handle(notification).await;
            if outcome == Handled::Done
                && let Err(error) = self.queue.delete(&notification.receipt).await
            {
                // Handled, but it will come back: handling it again changes nothing.
                tracing::warn!(%error, "feedback handled but not deleted; it will be seen again");
            }
            handled.push(outcome);
        }
        Ok(handled)
    }

    /// Parses and records one notification; deletes nothing.
    pub async fn handle(&self, notification: &QueuedNotification) -> Handled {
        let parsed = match parse_notification(&notification.body) {
            Ok(parsed) => parsed,
            Err(error) => {
                metrics::counter!("feedback_total", "type" => "malformed").increment(1);
                tracing::warn!(
                    %error,
                    receive_count = notification.receive_count,
                    "feedback notification not understood; left to the queue's redrive policy"
                );
                return Handled::Left;
            }
        };
        let (report, kind) = match parsed {
            SesNotification::Other(name) if name.starts_with("SNS ") => {
                // A subscription (or unsubscription) to confirm: its SubscribeURL is in the body.
                // Left on the queue, it ends in the dead-letter queue, where it can be read.
                metrics::counter!("feedback_total", "type" => "other").increment(1);
                tracing::warn!(
                    notification = %name,
                    "an SNS confirmation arrived on the feedback queue; left for its dead-letter \
                     queue: confirm the subscription with its SubscribeURL (or `aws sns confirm-subscription`)"
                );
                return Handled::Left;
            }
            SesNotification::Other(name) => {
                metrics::counter!("feedback_total", "type" => "other").increment(1);
                tracing::debug!(notification = %name, "feedback notification ignored");
                return Handled::Done;
            }
            SesNotification::Bounce(report) if report.permanent => {
                (report, FeedbackKind::PermanentBounce)
            }
            SesNotification::Bounce(report) => (report, FeedbackKind::TransientBounce),
            SesNotification::Complaint(report) => (report, FeedbackKind::Complaint),
        };
        metrics::counter!("feedback_total", "type" => kind.as_str()).increment(1);
        self.record(&report, kind).await
    }

    /// Records `report` for each of its recipients.
    async fn record(&self, report: &Report, kind: FeedbackKind) -> Handled {
        let now = self.clock.now();
        let mut handled = Handled::Done;
        for recipient in &report.recipients {
            let Ok(address) = EmailAddress::parse(recipient) else {
                // Nothing to suppress: SES names a recipient this service could not have sent to.
                tracing::warn!(
                    feedback_id = %report.feedback_id,
                    kind = kind.as_str(),
                    "feedback names a recipient that is not a valid address; skipped"
                );
                continue;
            };
            let feedback = Feedback {
                feedback_id: report.feedback_id.clone(),
                kind,
                provider_message_id: report.message_id.clone(),
                mailbox: address.mailbox_key(),
                detail: report.detail.clone(),
                occurred_at: report.timestamp,
            };
            match self.store.record_feedback(&feedback, now).await {
                Ok(FeedbackOutcome::Recorded {
                    message,
                    suppressed,
                }) => tracing::info!(
                    feedback_id = %report.feedback_id,
                    kind = kind.as_str(),
                    message_id = message.map(|id| id.0),
                    suppressed,
                    "feedback recorded"
                ),
                Ok(FeedbackOutcome::Duplicate) => tracing::debug!(
                    feedback_id = %report.feedback_id,
                    "feedback already recorded"
                ),
                Err(error) => {
                    tracing::warn!(
                        %error,
                        feedback_id = %report.feedback_id,
                        "feedback not recorded; it will come back from the queue"
                    );
                    handled = Handled::Left;
                }
            }
        }
        handled
    }

    /// Polls until `shutdown` turns true. A receive in progress is abandoned at shutdown (what
    /// it would have received stays on the queue).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        register_feedback_metrics();
        tracing::info!("feedback loop started");
        loop {
            let polled = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                polled = self.poll_once() => polled,
            };
            let pause = match polled {
                Ok(handled) if !handled.is_empty() => continue,
                // A long poll that came back empty: SQS waited already; a queue that answers
                // at once is not spun on.
                Ok(_) => IDLE_PAUSE,
                Err(error) => {
                    tracing::warn!(%error, pause = ?QUEUE_PAUSE, "feedback queue failed; polling again after a pause");
                    QUEUE_PAUSE
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("feedback loop stopped");
    }
}
