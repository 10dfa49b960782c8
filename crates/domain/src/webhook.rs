//! Webhooks: the events the service tells an application about, each owed to each endpoint as
//! an outbox message of kind [`MessageKind::Webhook`](crate::MessageKind::Webhook).

/// What happened. Stored and sent (as the payload's `type`) by its dotted name.
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
#[strum(parse_err_ty = UnknownEvent, parse_err_fn = UnknownEvent::from)]
pub enum WebhookEvent {
    /// An account was stored (its confirmation email may or may not be owed).
    #[strum(serialize = "account.registered")]
    AccountRegistered,
    /// An account was confirmed (by the link's button, the API, or a code).
    #[strum(serialize = "account.confirmed")]
    AccountConfirmed,
    /// A confirmation email was accepted by the email provider.
    #[strum(serialize = "email.sent")]
    EmailSent,
    /// A confirmation email went dead: a permanent failure or its last attempt failed.
    #[strum(serialize = "email.failed")]
    EmailFailed,
    /// The account's mailbox was put on the suppression list (the stop link, an operator):
    /// nothing more is emailed to it. One event per account of the mailbox.
    #[strum(serialize = "email.suppressed")]
    EmailSuppressed,
}

impl WebhookEvent {
    pub const ALL: &[Self] = <Self as strum::VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An event name that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown webhook event {0:?}")]
pub struct UnknownEvent(pub String);

impl From<&str> for UnknownEvent {
    fn from(name: &str) -> Self {
        Self(name.to_owned())
    }
}

/// One webhook as the outbox holds it: what a worker needs to deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The endpoint's URL (one of `WEBHOOK_URL`'s when the event happened).
    pub endpoint: String,
    pub event: WebhookEvent,
    /// The JSON body, fixed when the event happened, so every retry sends the same bytes:
    /// `{"type": …, "timestamp": …, "data": {…}}`.
    pub payload: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_round_trip() {
        for &event in WebhookEvent::ALL {
            assert_eq!(event.as_str().parse::<WebhookEvent>(), Ok(event));
        }
        assert_eq!(WebhookEvent::EmailFailed.as_str(), "email.failed");
        assert_eq!(
            "email.lost".parse::<WebhookEvent>(),
            Err(UnknownEvent("email.lost".into()))
        );
    }
}
