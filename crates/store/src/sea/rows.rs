//! Between rows and domain types: timestamps, the stored strings, and what a row that this
//! version cannot read becomes ([`StoreError::Corrupt`]).

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use domain::{
    EmailAddress, Locale, MailboxKey, MessageId, MessageKind, MessageRecord, MessageStatus,
    OwedMessage, Suppression, SuppressionId, SuppressionSource, User, UserId, UserSummary,
};
use sea_orm::{DbErr, SqlErr};

use crate::StoreError;
use crate::entities::{email_message, suppression, user};

/// The states of a message still owed.
pub(super) const OWED: [&str; 3] = ["queued", "sending", "retrying"];
/// `last_error` is cut to this many characters.
pub(super) const MAX_ERROR_CHARS: usize = 1000;

/// Timestamps are stored to the microsecond (PostgreSQL's precision), on every backend alike.
pub(super) fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// Cuts `s` to at most `max` characters.
pub(super) fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((end, _)) = s.char_indices().nth(max) {
        s.truncate(end);
    }
    s
}

/// The columns of a [`UserSummary`], in the order `recent_users` selects them.
pub(super) type SummaryColumns = (i64, String, bool, bool);

/// A stored address, which was valid when it was written.
fn stored_address(id: i64, email: &str) -> Result<EmailAddress, StoreError> {
    EmailAddress::parse(email)
        .map_err(|_| StoreError::Corrupt(format!("user {id} has an invalid email address")))
}

pub(super) fn user_from_model(m: user::Model) -> Result<User, StoreError> {
    Ok(User {
        id: UserId(m.id),
        email: stored_address(m.id, &m.email)?,
        confirmed: m.confirmed,
        email_sent: m.email_sent,
        registered_on: m.registered_on,
        confirmed_on: m.confirmed_on,
    })
}

/// A user just registered at `now`, as the statement that inserted it would read back.
pub(super) fn new_user(id: i64, email: EmailAddress, now: DateTime<Utc>) -> User {
    User {
        id: UserId(id),
        email,
        confirmed: false,
        email_sent: false,
        registered_on: now,
        confirmed_on: None,
    }
}

pub(super) fn summary_from_columns(
    (id, email, confirmed, email_sent): SummaryColumns,
) -> Result<UserSummary, StoreError> {
    Ok(UserSummary {
        id: UserId(id),
        email: stored_address(id, &email)?,
        confirmed,
        email_sent,
    })
}

pub(super) fn parse_status(id: i64, status: &str) -> Result<MessageStatus, StoreError> {
    MessageStatus::from_str(status)
        .map_err(|e| StoreError::Corrupt(format!("email message {id}: {e}")))
}

pub(super) fn message_from_model(m: email_message::Model) -> Result<OwedMessage, StoreError> {
    let recipient = EmailAddress::parse(&m.recipient).map_err(|_| {
        StoreError::Corrupt(format!("email message {} has an invalid recipient", m.id))
    })?;
    let kind = MessageKind::from_str(&m.kind)
        .map_err(|e| StoreError::Corrupt(format!("email message {}: {e}", m.id)))?;
    let status = parse_status(m.id, &m.status)?;
    let attempts = u32::try_from(m.attempts).map_err(|_| {
        StoreError::Corrupt(format!(
            "email message {} has a negative attempt count",
            m.id
        ))
    })?;
    Ok(OwedMessage {
        id: MessageId(m.id),
        user_id: UserId(m.user_id),
        kind,
        recipient,
        status,
        attempts,
        created_at: m.created_at,
        // The account's, filled in by the caller that reads it (see `users::locales_of`).
        locale: Locale::default(),
        password_binding: None,
    })
}

pub(super) fn record_from_model(m: email_message::Model) -> Result<MessageRecord, StoreError> {
    Ok(MessageRecord {
        last_error: m.last_error.clone(),
        provider_message_id: m.provider_message_id.clone(),
        next_attempt_at: m.next_attempt_at,
        updated_at: m.updated_at,
        sent_at: m.sent_at,
        message: message_from_model(m)?,
    })
}

pub(super) fn suppression_from_model(m: suppression::Model) -> Result<Suppression, StoreError> {
    let mailbox_key = MailboxKey::parse(&m.mailbox_key).map_err(|_| {
        StoreError::Corrupt(format!("suppression {} has an invalid mailbox key", m.id))
    })?;
    let source = SuppressionSource::from_str(&m.source)
        .map_err(|e| StoreError::Corrupt(format!("suppression {}: {e}", m.id)))?;
    Ok(Suppression {
        id: SuppressionId(m.id),
        mailbox_key,
        source,
        created_at: m.created_at,
    })
}

pub(super) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// A new `queued` message of `kind` to `recipient` for `user_id`, due at `now`, to insert.
pub(super) fn queued_message(
    user_id: i64,
    kind: MessageKind,
    recipient: &str,
    now: DateTime<Utc>,
) -> email_message::ActiveModel {
    use sea_orm::{NotSet, Set};
    email_message::ActiveModel {
        id: NotSet,
        user_id: Set(user_id),
        kind: Set(kind.as_str().to_owned()),
        recipient: Set(recipient.to_owned()),
        status: Set(MessageStatus::Queued.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_until: Set(None),
        last_error: Set(None),
        provider_message_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        sent_at: Set(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo".to_owned(), 2), "hé");
        assert_eq!(truncate_chars("short".to_owned(), 10), "short");
        let long = "é".repeat(1500);
        assert_eq!(
            truncate_chars(long, MAX_ERROR_CHARS).chars().count(),
            MAX_ERROR_CHARS
        );
    }

    #[test]
    fn timestamps_keep_microseconds() {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(ts(t).timestamp_subsec_nanos(), 123_456_000);
    }
}
