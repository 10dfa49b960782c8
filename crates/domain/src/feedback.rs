//! What a mail provider reports after accepting a message: a bounce or a complaint from the
//! recipient's side (SES publishes them; the worker reads them from a queue).

use std::fmt;

use chrono::{DateTime, Utc};

use crate::{MailboxKey, MessageId};

/// What the recipient's side said about a sent message. Stored by its snake-case name.
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
    serialize_all = "snake_case",
    parse_err_ty = UnknownFeedback,
    parse_err_fn = UnknownFeedback::from
)]
pub enum FeedbackKind {
    /// A permanent (hard) bounce: the mailbox does not exist or refuses mail for good. The
    /// mailbox is suppressed and the message becomes `bounced`.
    PermanentBounce,
    /// A transient (soft) bounce, or one the provider could not classify: a full mailbox, a
    /// receiver that was down. Recorded; nothing is suppressed.
    TransientBounce,
    /// The recipient marked the message as spam (a feedback loop report). The mailbox is
    /// suppressed and the message becomes `complained`.
    Complaint,
}

impl FeedbackKind {
    pub const ALL: &[Self] = <Self as strum::VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether this feedback puts the mailbox on the suppression list.
    pub fn suppresses(self) -> bool {
        !matches!(self, Self::TransientBounce)
    }
}

/// A feedback kind name that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feedback kind {0:?}")]
pub struct UnknownFeedback(pub String);

impl From<&str> for UnknownFeedback {
    fn from(name: &str) -> Self {
        Self(name.to_owned())
    }
}

/// One report about one recipient of one sent message, as received.
#[derive(Clone, PartialEq, Eq)]
pub struct Feedback {
    /// The provider's id of the report (SES's `feedbackId`): receiving it again changes nothing.
    pub feedback_id: String,
    pub kind: FeedbackKind,
    /// The provider's id of the message it is about (SES's `mail.messageId`, the id `SendEmail`
    /// answered, recorded as the message's provider message id).
    pub provider_message_id: String,
    /// The mailbox of the recipient it is about.
    pub mailbox: MailboxKey,
    /// What the provider said, without the address: `Permanent/General 5.1.1`, `abuse`.
    pub detail: String,
    /// When the receiving side reported it.
    pub occurred_at: DateTime<Utc>,
}

impl fmt::Debug for Feedback {
    /// The mailbox masked (see [`MailboxKey`]'s `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feedback")
            .field("feedback_id", &self.feedback_id)
            .field("kind", &self.kind)
            .field("provider_message_id", &self.provider_message_id)
            .field("mailbox", &self.mailbox)
            .field("detail", &self.detail)
            .field("occurred_at", &self.occurred_at)
            .finish()
    }
}

/// What recording a [`Feedback`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackOutcome {
    /// Recorded for the first time.
    Recorded {
        /// The message it is about, if this service sent it (and still keeps it).
        message: Option<MessageId>,
        /// Whether the mailbox was newly put on the suppression list.
        suppressed: bool,
    },
    /// Already recorded: nothing changed.
    Duplicate,
}

/// A recorded feedback, as operators see it next to its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRecord {
    pub kind: FeedbackKind,
    pub detail: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for &kind in FeedbackKind::ALL {
            assert_eq!(kind.as_str().parse::<FeedbackKind>(), Ok(kind));
        }
        assert_eq!(FeedbackKind::PermanentBounce.as_str(), "permanent_bounce");
        assert_eq!(FeedbackKind::TransientBounce.as_str(), "transient_bounce");
        assert_eq!(FeedbackKind::Complaint.as_str(), "complaint");
        assert!("delivery".parse::<FeedbackKind>().is_err());
        assert!(FeedbackKind::PermanentBounce.suppresses());
        assert!(FeedbackKind::Complaint.suppresses());
        assert!(!FeedbackKind::TransientBounce.suppresses());
    }
}
