//! Emails the service owes to someone: the outbox rows that make delivery durable.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{EmailAddress, Locale, UserId};

/// The database id of an owed email message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which email a message is; selects its templates. Stored by its lower-case name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = UnknownKind,
    parse_err_fn = UnknownKind::from
)]
pub enum MessageKind {
    /// The account confirmation email with its signed link.
    Confirm,
    /// A webhook: one event (`crate::WebhookEvent`) owed to one endpoint, delivered by HTTP
    /// rather than by email. Its `recipient` is the address of the account the event is about.
    Webhook,
    /// A password-reset email with its signed link (see `crate::PasswordResetTokens`), bound to
    /// the account's password when it is sent.
    #[strum(serialize = "password_reset")]
    PasswordReset,
    /// The notice that the account's password was changed.
    #[strum(serialize = "password_changed")]
    PasswordChanged,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A message kind name that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message kind {0:?}")]
pub struct UnknownKind(pub String);

impl From<&str> for UnknownKind {
    fn from(name: &str) -> Self {
        Self(name.to_owned())
    }
}

/// Where an owed message stands. Stored by its lower-case name.
///
/// `queued` → `sending` (claimed with a lease) → `sent`; a transient failure goes to `retrying`
/// with a next attempt time, a permanent one (or too many attempts) to `dead`. A message whose
/// recipient's mailbox is suppressed before it is sent goes to `cancelled`. A sent email that
/// the recipient's side later reports as a permanent bounce becomes `bounced`, one reported as
/// spam `complained` (see `crate::FeedbackKind`). `sent`, `dead`, `cancelled`, `bounced` and
/// `complained` are final (an operator may requeue a dead one).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = UnknownStatus,
    parse_err_fn = UnknownStatus::from
)]
pub enum MessageStatus {
    Queued,
    Sending,
    Retrying,
    Sent,
    Dead,
    /// Not sent, and never will be: its recipient's mailbox was suppressed.
    Cancelled,
    /// Sent, then reported by the provider as a permanent bounce.
    Bounced,
    /// Sent, then reported as spam by its recipient.
    Complained,
}

impl MessageStatus {
    pub const ALL: &[Self] = <Self as strum::VariantArray>::VARIANTS;

    /// The provider accepted it: `sent`, or sent and later reported `bounced` or `complained`.
    pub fn was_sent(self) -> bool {
        matches!(self, Self::Sent | Self::Bounced | Self::Complained)
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A status name that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message status {0:?}")]
pub struct UnknownStatus(pub String);

impl From<&str> for UnknownStatus {
    fn from(name: &str) -> Self {
        Self(name.to_owned())
    }
}

/// An owed message, as a worker sees it after claiming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedMessage {
    pub id: MessageId,
    pub user_id: UserId,
    pub kind: MessageKind,
    pub recipient: EmailAddress,
    pub status: MessageStatus,
    /// Attempts made so far, counting the one in progress after a claim.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    /// The language of its account (chosen at registration): the email is written in it.
    pub locale: Locale,
    /// A password-reset email: the binding of the account's password when it was claimed
    /// (`crate::PasswordHashString::binding`), which its link carries. `None` for other kinds.
    pub password_binding: Option<String>,
}

/// Everything recorded about one message, for operators (dead letters, dashboards): the owed
/// message plus its delivery history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub message: OwedMessage,
    pub last_error: Option<String>,
    pub provider_message_id: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for &status in MessageStatus::ALL {
            assert_eq!(status.as_str().parse::<MessageStatus>(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert_eq!(
            "lost".parse::<MessageStatus>(),
            Err(UnknownStatus("lost".into()))
        );
        assert_eq!(
            UnknownStatus("lost".into()).to_string(),
            "unknown message status \"lost\""
        );
        assert!("lost".parse::<MessageStatus>().is_err());
        assert_eq!(MessageStatus::Cancelled.as_str(), "cancelled");
        assert_eq!(MessageStatus::Bounced.as_str(), "bounced");
        assert_eq!(MessageStatus::Complained.as_str(), "complained");
        assert!(MessageStatus::Bounced.was_sent() && !MessageStatus::Dead.was_sent());
        assert_eq!("confirm".parse::<MessageKind>(), Ok(MessageKind::Confirm));
        assert_eq!("webhook".parse::<MessageKind>(), Ok(MessageKind::Webhook));
        assert!("reset".parse::<MessageKind>().is_err());
    }
}
