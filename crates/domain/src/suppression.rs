//! The suppression list: mailboxes the service sends nothing to any more.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::MailboxKey;

/// The database id of a suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SuppressionId(pub i64);

impl fmt::Display for SuppressionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a mailbox is suppressed. Stored by its snake-case name (`stop_link`, `operator`,
/// `bounce`, `complaint`).
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
    parse_err_ty = UnknownSource,
    parse_err_fn = UnknownSource::from
)]
pub enum SuppressionSource {
    /// The recipient followed the "I did not sign up: stop emails to this address" link of a
    /// confirmation email.
    StopLink,
    /// An operator added it (`worker suppressions add`).
    Operator,
    /// The provider reported a permanent bounce for it (SES feedback).
    Bounce,
    /// Its owner marked an email as spam (SES feedback: a complaint).
    Complaint,
}

impl SuppressionSource {
    pub const ALL: &[Self] = <Self as strum::VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A suppression source name that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown suppression source {0:?}")]
pub struct UnknownSource(pub String);

impl From<&str> for UnknownSource {
    fn from(name: &str) -> Self {
        Self(name.to_owned())
    }
}

/// A mailbox on the suppression list: nothing is sent to it (registrations and resends are
/// answered as usual and owe no email) until an operator lifts it. The key is personal data;
/// `Debug` shows it masked (see [`MailboxKey`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub id: SuppressionId,
    pub mailbox_key: MailboxKey,
    pub source: SuppressionSource,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_round_trip() {
        for &source in SuppressionSource::ALL {
            assert_eq!(source.as_str().parse::<SuppressionSource>(), Ok(source));
            assert_eq!(source.to_string(), source.as_str());
        }
        assert_eq!(SuppressionSource::StopLink.as_str(), "stop_link");
        assert_eq!(SuppressionSource::Operator.as_str(), "operator");
        assert_eq!(SuppressionSource::Bounce.as_str(), "bounce");
        assert_eq!(SuppressionSource::Complaint.as_str(), "complaint");
        assert_eq!(
            "bounced".parse::<SuppressionSource>(),
            Err(UnknownSource("bounced".into()))
        );
    }
}
