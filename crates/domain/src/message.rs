//! Emails the service owes to someone: the outbox rows that make delivery durable.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{EmailAddress, UserId};

/// The database id of an owed email message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which email a message is; selects its templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// The account confirmation email with its signed link.
    Confirm,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message kind name that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message kind {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for MessageKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "confirm" => Ok(Self::Confirm),
            other => Err(UnknownKind(other.to_owned())),
        }
    }
}

/// Where an owed message stands.
///
/// `queued` → `sending` (claimed with a lease) → `sent`; a transient failure goes to `retrying`
/// with a next attempt time, a permanent one (or too many attempts) to `dead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    Queued,
    Sending,
    Retrying,
    Sent,
    Dead,
}

impl MessageStatus {
    pub const ALL: [Self; 5] = [
        Self::Queued,
        Self::Sending,
        Self::Retrying,
        Self::Sent,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Retrying => "retrying",
            Self::Sent => "sent",
            Self::Dead => "dead",
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for MessageStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
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
        for status in MessageStatus::ALL {
            assert_eq!(status.as_str().parse::<MessageStatus>(), Ok(status));
        }
        assert!("lost".parse::<MessageStatus>().is_err());
        assert_eq!("confirm".parse::<MessageKind>(), Ok(MessageKind::Confirm));
        assert!("reset".parse::<MessageKind>().is_err());
    }
}
