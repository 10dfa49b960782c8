//! What the dashboard's pages show: rows of messages and attempts, masked, with times and ages
//! for people.

use chrono::{DateTime, Utc};
use domain::{MessageRecord, MessageStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    #[serde(default)]
    pub(super) email: Option<String>,
    #[serde(default)]
    pub(super) before: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(super) struct Counts {
    pub(super) queued: u64,
    pub(super) sending: u64,
    pub(super) retrying: u64,
    pub(super) sent: u64,
    /// Whether `sent` is the database's estimate (a large outbox).
    pub(super) sent_is_estimate: bool,
    pub(super) dead: u64,
    pub(super) cancelled: u64,
    pub(super) bounced: u64,
    pub(super) complained: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct SuppressionRow {
    pub(super) id: i64,
    /// Masked: the key is personal data.
    pub(super) mailbox: String,
    pub(super) source: &'static str,
    pub(super) since: String,
}

#[derive(Debug, Serialize)]
pub(super) struct SuppressionsView {
    pub(super) rows: Vec<SuppressionRow>,
    pub(super) notice: Option<&'static str>,
    pub(super) csrf_token: String,
}

#[derive(Debug, Serialize)]
pub(super) struct Row {
    pub(super) id: i64,
    pub(super) recipient: String,
    pub(super) template: &'static str,
    /// The language its account's emails are written in.
    pub(super) language: &'static str,
    pub(super) state: &'static str,
    pub(super) attempts: u32,
    pub(super) last_error: Option<String>,
    pub(super) provider_message_id: Option<String>,
    pub(super) created: String,
    pub(super) updated: String,
    pub(super) next_attempt: Option<String>,
    pub(super) sent: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct DashboardView {
    pub(super) counts: Counts,
    pub(super) queue_depth: Option<u64>,
    pub(super) oldest_owed_age: Option<String>,
    pub(super) search_masked: Option<String>,
    pub(super) search_error: Option<&'static str>,
    pub(super) search_param: String,
    pub(super) rows: Vec<Row>,
    pub(super) next_before: Option<i64>,
    pub(super) paged: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct AttemptRow {
    pub(super) attempt: u32,
    pub(super) outcome: &'static str,
    pub(super) error: Option<String>,
    pub(super) provider_message_id: Option<String>,
    pub(super) finished: String,
}

#[derive(Debug, Serialize)]
pub(super) struct MessageView {
    pub(super) row: Row,
    pub(super) attempts: Vec<AttemptRow>,
    /// The bounces and complaints reported about it.
    pub(super) feedback: Vec<FeedbackRow>,
    pub(super) dead: bool,
    pub(super) notice: Option<&'static str>,
    pub(super) csrf_token: String,
    /// What a webhook message carries; `None` for an email.
    pub(super) webhook: Option<WebhookView>,
}

/// One bounce or complaint reported about a message.
#[derive(Debug, Serialize)]
pub(super) struct FeedbackRow {
    pub(super) kind: &'static str,
    pub(super) detail: String,
    pub(super) occurred: String,
    pub(super) received: String,
}

/// A webhook message's event and endpoint (without its query, which may hold a token).
#[derive(Debug, Serialize)]
pub(super) struct WebhookView {
    pub(super) event: &'static str,
    pub(super) endpoint: String,
}

impl WebhookView {
    pub(super) fn new(delivery: &domain::WebhookDelivery) -> Self {
        let endpoint = match url::Url::parse(&delivery.endpoint) {
            Ok(mut url) => {
                if url.query().is_some() {
                    url.set_query(Some("…"));
                }
                url.to_string()
            }
            Err(_) => "(unreadable URL)".to_owned(),
        };
        Self {
            event: delivery.event.as_str(),
            endpoint,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    #[serde(default)]
    pub(super) done: Option<String>,
}

pub(super) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "3 h 2 min", "45 s": an age for people.
pub(super) fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

pub(super) fn row(record: MessageRecord) -> Row {
    let m = &record.message;
    let owed = matches!(m.status, MessageStatus::Queued | MessageStatus::Retrying);
    Row {
        id: m.id.0,
        recipient: m.recipient.masked(),
        template: m.kind.as_str(),
        language: m.locale.as_str(),
        state: m.status.as_str(),
        attempts: m.attempts,
        last_error: record.last_error.as_deref().map(|e| m.recipient.mask_in(e)),
        provider_message_id: record.provider_message_id.clone(),
        created: when(m.created_at),
        updated: when(record.updated_at),
        next_attempt: owed.then(|| when(record.next_attempt_at)),
        sent: record.sent_at.map(when),
    }
}

/// Percent-encodes everything but unreserved characters.
pub(super) fn form_urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The fixed texts a button's redirect may show.
pub(super) fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "requeued" => "Requeued: the message will be sent again, its attempts counted from zero.",
        "not-dead" => "Nothing requeued: the message is not dead.",
        "resent" => "A fresh confirmation email is owed to this account.",
        "pending" => "Nothing resent: a confirmation email to this account is still on its way.",
        "confirmed" => "Nothing resent: the account is already confirmed.",
        "no-account" => "Nothing resent: the account no longer exists.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(age(5), "5 s");
        assert_eq!(age(125), "2 min 5 s");
        assert_eq!(age(3 * 3600 + 120), "3 h 2 min");
        assert_eq!(age(2 * 86_400 + 3600), "2 d 1 h");
        assert_eq!(age(-3), "0 s");
    }
}
