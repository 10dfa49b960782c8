#![doc = include_str!("../README.md")]

use async_trait::async_trait;
use domain::EmailAddress;

mod file;
mod memory;
mod mime;
mod templates;

pub use file::FileMailer;
pub use memory::MemoryMailer;
pub use mime::{Sender, SenderError, build_mime};
pub use templates::{RenderedEmail, TemplateError, Templates};

/// One email to send: already rendered, addressed to one recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
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
}

impl MailError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
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
