//! A transport that keeps messages in memory, for tests and embedding.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::{MailError, Mailer, Message, Sent};

/// Collects every message it is asked to send.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<Message>>,
}

impl MemoryMailer {
    /// An empty mailbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every message sent so far, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, message: &Message) -> Result<Sent, MailError> {
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sent.push(message.clone());
        Ok(Sent {
            provider_message_id: Some(format!("memory-{}", sent.len())),
        })
    }

    fn provider(&self) -> &'static str {
        "memory"
    }
}
