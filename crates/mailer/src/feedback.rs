//! Bounce and complaint notifications from Amazon SES, and the queue they arrive on.
//!
//! SES publishes what the receiving side reports (a bounce, a complaint, optionally a delivery)
//! to an SNS topic; the usual production wiring subscribes an SQS queue to that topic. Each SQS
//! message body is then an SNS envelope (`{"Type": "Notification", "Message": "<JSON text>", …}`)
//! holding SES's notification, or the notification itself when the subscription enables raw
//! message delivery. [`parse_notification`] reads both, for identity notifications
//! (`notificationType`) and configuration-set event publishing (`eventType`) alike.
//! [`FeedbackQueue`] is where such bodies come from; `SqsFeedbackQueue` (feature `ses`) reads
//! them from SQS.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// One notification read from SES, by type.
#[derive(Clone, PartialEq, Eq)]
pub enum SesNotification {
    /// A bounce: the receiving side refused the message, for good or for now.
    Bounce(Report),
    /// A complaint: a recipient marked the message as spam.
    Complaint(Report),
    /// Anything else SES or SNS publishes (`Delivery`, `Send`, `AmazonSnsSubscriptionSucceeded`,
    /// an SNS `SubscriptionConfirmation`): named, nothing to act on.
    Other(String),
}

impl fmt::Debug for SesNotification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bounce(report) => f.debug_tuple("Bounce").field(report).finish(),
            Self::Complaint(report) => f.debug_tuple("Complaint").field(report).finish(),
            Self::Other(kind) => f.debug_tuple("Other").field(kind).finish(),
        }
    }
}

/// What a bounce or complaint notification says.
#[derive(Clone, PartialEq, Eq)]
pub struct Report {
    /// SES's id of the report (`feedbackId`): the same report delivered twice has the same id.
    pub feedback_id: String,
    /// The id SES gave the message when it accepted it (`mail.messageId`; what `SendEmail`
    /// answered).
    pub message_id: String,
    /// For a bounce, whether it is permanent (`bounceType` `Permanent`); `Transient` and
    /// `Undetermined` are not. Always `true` for a complaint.
    pub permanent: bool,
    /// Without any address: `Permanent/General 5.1.1` for a bounce (type, subtype, and the
    /// first recipient's enhanced status code when given), the feedback type (`abuse`) or
    /// `complaint` for a complaint.
    pub detail: String,
    /// The recipients it is about, as SES wrote them (personal data: `Debug` shows only how
    /// many).
    pub recipients: Vec<String>,
    /// When the receiving side reported it.
    pub timestamp: DateTime<Utc>,
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report")
            .field("feedback_id", &self.feedback_id)
            .field("message_id", &self.message_id)
            .field("permanent", &self.permanent)
            .field("detail", &self.detail)
            .field("recipients", &self.recipients.len())
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

/// A body that is not a notification this module can read. The text never quotes the body
/// (it holds addresses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed SES notification: {0}")]
pub struct MalformedNotification(pub String);

fn malformed(what: impl Into<String>) -> MalformedNotification {
    MalformedNotification(what.into())
}

/// The SNS envelope, as far as it matters here.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    notification_type: Option<String>,
    event_type: Option<String>,
    bounce: Option<Bounce>,
    complaint: Option<Complaint>,
    mail: Option<Mail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail {
    message_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: Option<String>,
    bounced_recipients: Vec<Recipient>,
    timestamp: DateTime<Utc>,
    feedback_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    complained_recipients: Vec<Recipient>,
    #[serde(default)]
    complaint_feedback_type: Option<String>,
    timestamp: DateTime<Utc>,
    feedback_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
    #[serde(default)]
    status: Option<String>,
}

/// Reads one SQS message body: an SNS envelope holding an SES notification, or the notification
/// itself (raw message delivery).
pub fn parse_notification(body: &str) -> Result<SesNotification, MalformedNotification> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| malformed(format!("not JSON: {}", describe(&e))))?;
    if value.get("Type").is_none() {
        return parse_ses(value);
    }
    let envelope: Envelope = serde_json::from_value(value)
        .map_err(|e| malformed(format!("not an SNS envelope: {}", describe(&e))))?;
    if envelope.kind != "Notification" {
        let kind = if envelope.kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
            envelope.kind
        } else {
            "?".to_owned()
        };
        return Ok(SesNotification::Other(format!("SNS {kind}")));
    }
    let message = envelope
        .message
        .ok_or_else(|| malformed("an SNS notification without a Message"))?;
    let value = serde_json::from_str(&message)
        .map_err(|e| malformed(format!("not an SES notification: {}", describe(&e))))?;
    parse_ses(value)
}

fn parse_ses(value: serde_json::Value) -> Result<SesNotification, MalformedNotification> {
    let notification: Notification = serde_json::from_value(value)
        .map_err(|e| malformed(format!("not an SES notification: {}", describe(&e))))?;
    let Some(kind) = notification.notification_type.or(notification.event_type) else {
        return Err(malformed("neither notificationType nor eventType"));
    };
    let message_id = || {
        notification
            .mail
            .as_ref()
            .map(|mail| mail.message_id.clone())
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| malformed(format!("a {kind} without mail.messageId")))
    };
    match kind.as_str() {
        "Bounce" => {
            let bounce = notification
                .bounce
                .ok_or_else(|| malformed("a Bounce without its bounce object"))?;
            let permanent = match bounce.bounce_type.as_str() {
                "Permanent" => true,
                "Transient" | "Undetermined" => false,
                _ => return Err(malformed("an unknown bounceType")),
            };
            let mut detail = bounce.bounce_type.clone();
            if let Some(sub) = bounce.bounce_sub_type.as_deref().filter(|s| !s.is_empty()) {
                detail = format!("{detail}/{sub}");
            }
            if let Some(status) = bounce
                .bounced_recipients
                .first()
                .and_then(|r| r.status.as_deref())
                .filter(|s| is_status_code(s))
            {
                detail = format!("{detail} {status}");
            }
            Ok(SesNotification::Bounce(report(
                bounce.feedback_id,
                message_id()?,
                permanent,
                detail,
                bounce.bounced_recipients,
                bounce.timestamp,
            )?))
        }
        "Complaint" => {
            let complaint = notification
                .complaint
                .ok_or_else(|| malformed("a Complaint without its complaint object"))?;
            let detail = complaint
                .complaint_feedback_type
                .filter(|t| {
                    !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_graphic())
                })
                .unwrap_or_else(|| "complaint".to_owned());
            Ok(SesNotification::Complaint(report(
                complaint.feedback_id,
                message_id()?,
                true,
                detail,
                complaint.complained_recipients,
                complaint.timestamp,
            )?))
        }
        _ if kind.len() <= 64 && kind.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Ok(SesNotification::Other(kind))
        }
        _ => Err(malformed("an unknown notification type")),
    }
}

fn report(
    feedback_id: String,
    message_id: String,
    permanent: bool,
    detail: String,
    recipients: Vec<Recipient>,
    timestamp: DateTime<Utc>,
) -> Result<Report, MalformedNotification> {
    if feedback_id.trim().is_empty() {
        return Err(malformed("an empty feedbackId"));
    }
    if recipients.is_empty() {
        return Err(malformed("a report without recipients"));
    }
    Ok(Report {
        feedback_id,
        message_id,
        permanent,
        detail,
        recipients: recipients.into_iter().map(|r| r.email_address).collect(),
        timestamp,
    })
}

/// An enhanced status code (`5.1.1`), and nothing else: a status field is kept only in that
/// shape, so no free text (which could hold an address) reaches the record.
fn is_status_code(status: &str) -> bool {
    let parts: Vec<&str> = status.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// What kind of mistake serde_json found, and where, never the input: its messages can quote
/// a value (`invalid type: string "jane@…"`).
fn describe(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "bad syntax",
        serde_json::error::Category::Data => "unexpected content",
        serde_json::error::Category::Eof => "cut short",
    };
    format!("{kind} at line {} column {}", error.line(), error.column())
}

/// One notification waiting on a feedback queue.
#[derive(Clone, PartialEq, Eq)]
pub struct QueuedNotification {
    /// What deletes it from the queue ([`FeedbackQueue::delete`]).
    pub receipt: String,
    /// The message body ([`parse_notification`] reads it).
    pub body: String,
    /// How many times the queue has handed it out, this time included (SQS's
    /// `ApproximateReceiveCount`), when known.
    pub receive_count: Option<u32>,
}

impl fmt::Debug for QueuedNotification {
    /// The body holds addresses: only its length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedNotification")
            .field("body_len", &self.body.len())
            .field("receive_count", &self.receive_count)
            .finish_non_exhaustive()
    }
}

/// A queue failure (the queue is unreachable, refused the call, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("feedback queue: {0}")]
pub struct FeedbackQueueError(pub String);

/// Where feedback notifications come from: receive a few, handle them, delete each one handled.
/// One left undeleted comes back after the queue's visibility timeout, and after enough
/// receives goes to the queue's dead-letter queue (its redrive policy).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait FeedbackQueue: Send + Sync + fmt::Debug {
    /// Waits (long polling, up to about 20 s) for notifications; may return none.
    async fn receive(&self) -> Result<Vec<QueuedNotification>, FeedbackQueueError>;

    /// Deletes a handled notification by its receipt.
    async fn delete(&self, receipt: &str) -> Result<(), FeedbackQueueError>;
}

#[cfg(test)]
mod tests;
