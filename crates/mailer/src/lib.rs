#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use async_trait::async_trait;
/// The recipient's address: parsed once, so it cannot inject a header (from
/// `confirm-email-address`).
pub use confirm_email_address::EmailAddress;

mod dkim;
pub mod feedback;
#[cfg(feature = "file")]
mod file;
pub mod i18n;
mod memory;
#[cfg_attr(
    not(any(feature = "smtp", feature = "ses", feature = "file")),
    expect(dead_code, reason = "only the transports write MIME")
)]
mod mime;
#[cfg(any(feature = "smtp", feature = "ses"))]
mod redact;
#[cfg(feature = "ses")]
mod ses;
#[cfg(feature = "smtp")]
mod smtp;
mod templates;
#[cfg(all(feature = "ses", any(test, feature = "test-util")))]
pub mod test_util;

pub use dkim::{DkimError, DkimSigner};
#[cfg(feature = "file")]
pub use file::FileMailer;
pub use memory::MemoryMailer;
pub use mime::{ReturnPathError, Sender, SenderError};
#[cfg(feature = "ses")]
pub use ses::{SesMailer, SqsFeedbackQueue};
#[cfg(feature = "smtp")]
pub use smtp::{SmtpConfigError, SmtpMailer, SmtpSecurity, SmtpUrl};
pub use templates::{RenderedEmail, TemplateError, Templates};

/// One email to send: already rendered, addressed to one recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The one recipient.
    pub to: EmailAddress,
    /// The subject, one line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body, sent as the alternative to the text when present.
    pub html: Option<String>,
    /// The one link the message exists for (a confirmation link), if any. Transports never put
    /// it anywhere but the body; development transports may show it to the developer.
    pub action_url: Option<String>,
}

impl std::fmt::Debug for Message {
    /// Bodies and links carry tokens and the address: Debug shows neither.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("text_len", &self.text.len())
            .field("html_len", &self.html.as_ref().map(String::len))
            .finish_non_exhaustive()
    }
}

/// What the transport reports after accepting a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id for the message (SES MessageId, our Message-ID for SMTP and files).
    pub provider_message_id: Option<String>,
}

/// Why a send failed, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth retrying later: throttling, timeouts, connection errors, 4xx SMTP replies.
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying will not help: rejected recipient or content, 5xx SMTP replies.
    #[error("permanent: {0}")]
    Permanent(String),
    /// The provider refuses to send anything for this account (SES sending paused, account
    /// suspended, sender identity not verified): no message can go out until an operator acts.
    /// Worth retrying later, but it concerns every message, not this one.
    #[error("account: {0}")]
    Account(String),
}

impl MailError {
    /// Whether retrying this message later may succeed (transient and account-level failures).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::Account(_))
    }
}

/// A way to hand a message to someone who delivers it.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends one message. `Ok` means the provider accepted it.
    async fn send(&self, message: &Message) -> Result<Sent, MailError>;

    /// A short name for logs and metrics: `file`, `memory`, `smtp`, `ses`.
    fn provider(&self) -> &'static str;
}
