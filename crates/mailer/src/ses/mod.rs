//! The Amazon SES v2 transport: `SendEmail` with raw MIME content.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::mime::{Sender, format_mime};
use crate::redact::redact;
use crate::{MailError, Mailer, Message, Sent};

mod classify;
mod sqs;
#[cfg(test)]
mod tests;

use classify::classify;
pub use sqs::SqsFeedbackQueue;

/// Sends through Amazon SES v2 `SendEmail` with the message as raw MIME (built by
/// [`format_mime`], so it keeps our `Message-ID` and the text + HTML alternatives).
#[derive(Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    sender: Sender,
    configuration_set: Option<String>,
}

impl fmt::Debug for SesMailer {
    /// Region, sender and configuration set; never credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SesMailer")
            .field("region", &self.region())
            .field("sender", &self.sender.to_header_value())
            .field("configuration_set", &self.configuration_set)
            .finish_non_exhaustive()
    }
}

impl SesMailer {
    /// Over an SES v2 client configured by the caller (this crate's tests). `configuration_set`
    /// (if not empty) is sent as `ConfigurationSetName` with every message.
    pub(crate) fn with_client(
        client: aws_sdk_sesv2::Client,
        sender: Sender,
        configuration_set: Option<String>,
    ) -> Self {
        Self {
            client,
            sender,
            configuration_set: configuration_set.filter(|name| !name.trim().is_empty()),
        }
    }

    /// Builds the client from the standard AWS configuration chain: credentials from the
    /// environment, the shared profile files, web identity (EKS/IRSA), then ECS or EC2 instance
    /// metadata; the endpoint from `AWS_ENDPOINT_URL_SESV2` / `AWS_ENDPOINT_URL` (or the
    /// profile's `endpoint_url`) when set. `region` (the `SES_REGION` setting) wins over the
    /// chain's region (`AWS_REGION`, `AWS_DEFAULT_REGION`, profile, instance metadata).
    /// `configuration_set` (if not empty) is sent as `ConfigurationSetName` with every message.
    ///
    /// HTTPS goes through rustls with ring, given explicitly because the AWS crates are built
    /// without their default HTTP client.
    pub async fn from_env(
        region: Option<String>,
        sender: Sender,
        configuration_set: Option<String>,
    ) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            .timeout_config(default_timeouts());
        if let Some(region) = region.filter(|r| !r.trim().is_empty()) {
            loader = loader.region(aws_config::Region::new(region.trim().to_owned()));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            tracing::warn!(
                "no AWS region configured (SES_REGION, AWS_REGION or a profile): every SES send will fail"
            );
        }
        Self::with_client(
            aws_sdk_sesv2::Client::new(&config),
            sender,
            configuration_set,
        )
    }

    /// The region the client sends to, if one is configured.
    pub fn region(&self) -> Option<String> {
        self.client.config().region().map(|r| r.as_ref().to_owned())
    }

    /// The SES configuration set every send names, if any.
    pub fn configuration_set(&self) -> Option<&str> {
        self.configuration_set.as_deref()
    }
}

/// The HTTPS client to give the AWS SDK: hyper 1 with rustls and the ring crypto provider,
/// trusting the platform's root certificates; plain `http://` endpoints (local emulators such
/// as moto) work too. The AWS crates are built here without a default HTTP client, so every
/// client needs this (or another) HTTP client, or every call fails with "No HTTP client was
/// available".
pub(crate) fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// 10 s to connect, 30 s per attempt, 60 s for a send including the SDK's own retries.
fn default_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(60))
        .build()
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, message: &Message) -> Result<Sent, MailError> {
        let message_id = self.sender.new_message_id();
        let raw = format_mime(&self.sender, message, &message_id)?.1;
        let content = RawMessage::builder()
            .data(aws_smithy_types::Blob::new(raw))
            .build()
            .map_err(|e| MailError::Permanent(format!("could not build the SES request: {e}")))?;
        let output = self
            .client
            .send_email()
            .from_email_address(self.sender.email())
            .destination(
                Destination::builder()
                    .to_addresses(message.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().raw(content).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .set_feedback_forwarding_email_address(self.sender.return_path())
            .send()
            .await
            .map_err(|error| {
                let sender = self.sender.email();
                map_text(classify(&error, &sender), |text| redact(text, message))
            })?;
        tracing::debug!(
            to = %message.to.masked(),
            ses_message_id = output.message_id().unwrap_or(""),
            %message_id,
            "email accepted by SES"
        );
        Ok(Sent {
            provider_message_id: output.message_id().map(str::to_owned),
        })
    }

    fn provider(&self) -> &'static str {
        "ses"
    }
}

fn map_text(error: MailError, f: impl FnOnce(&str) -> String) -> MailError {
    match error {
        MailError::Transient(text) => MailError::Transient(f(&text)),
        MailError::Permanent(text) => MailError::Permanent(f(&text)),
        MailError::Account(text) => MailError::Account(f(&text)),
    }
}
