#![doc = include_str!("../README.md")]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

mod http;

pub use http::HttpTransport;

/// What a secret's text starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest key bytes a secret may hold (the specification's libraries generate 24 to 64).
pub const MIN_SECRET_BYTES: usize = 16;

/// One signing key, from its `whsec_<base64>` text. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a secret's text was refused (the text itself is never repeated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret must start with `whsec_`")]
    Prefix,
    #[error("a webhook secret must be `whsec_` followed by base64")]
    Base64,
    #[error("a webhook secret must hold at least {MIN_SECRET_BYTES} bytes")]
    TooShort,
}

impl Secret {
    /// Reads `whsec_<base64>` (standard alphabet, padded or not).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Prefix)?;
        let key = STANDARD
            .decode(encoded)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
            .map_err(|_| SecretError::Base64)?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        Ok(Self(key))
    }

    /// A secret made of these key bytes.
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    /// The secret's text, `whsec_<base64>`, to share with a receiver.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// Signs with every secret it holds (the first is the newest; keep the old one beside it while
/// receivers move to the new one).
#[derive(Debug, Clone)]
pub struct Signer {
    secrets: Vec<Secret>,
}

impl Signer {
    /// `None` without any secret: a webhook must be signed.
    pub fn new(secrets: Vec<Secret>) -> Option<Self> {
        (!secrets.is_empty()).then_some(Self { secrets })
    }

    /// The `webhook-signature` header: one `v1,…` entry per secret, space-separated.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.secrets
            .iter()
            .map(|secret| secret.sign(id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One signed webhook, ready to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub url: String,
    /// The three Standard Webhooks headers, names lower-case, plus `content-type`.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Why a post did not reach an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Connection(String),
    /// The URL cannot be posted to (not http or https, no host).
    #[error("bad endpoint URL: {0}")]
    BadUrl(String),
}

/// Posts a request and returns the HTTP status of the answer. [`HttpTransport`] for real; mock it
/// one layer up.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    async fn post(&self, request: SignedRequest) -> Result<u16, TransportError>;
}

/// How one delivery ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The endpoint answered 410 Gone: it wants no more of this; do not retry.
    #[error("the endpoint answered 410 Gone")]
    Gone,
    /// Another status, or no answer: worth retrying later.
    #[error("{0}")]
    Failed(String),
    /// The endpoint URL cannot be posted to: retrying will not help.
    #[error("{0}")]
    BadEndpoint(String),
}

/// Signs and posts webhooks.
#[derive(Debug, Clone)]
pub struct Webhooks {
    signer: Signer,
    transport: Arc<dyn Transport>,
}

impl Webhooks {
    pub fn new(signer: Signer, transport: Arc<dyn Transport>) -> Self {
        Self { signer, transport }
    }

    /// The request for one attempt: `body` signed for message `id` at `timestamp` (Unix
    /// seconds).
    pub fn sign(&self, url: &str, id: &str, timestamp: i64, body: &str) -> SignedRequest {
        SignedRequest {
            url: url.to_owned(),
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("webhook-id", id.to_owned()),
                ("webhook-timestamp", timestamp.to_string()),
                (
                    "webhook-signature",
                    self.signer.signature(id, timestamp, body.as_bytes()),
                ),
            ],
            body: body.to_owned(),
        }
    }

    /// Posts `body` to `url`, signed for message `id` at `timestamp`; the status of a 2xx
    /// answer.
    pub async fn deliver(
        &self,
        url: &str,
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> Result<u16, WebhookError> {
        let request = self.sign(url, id, timestamp, body);
        match self.transport.post(request).await {
            Ok(status) if (200..300).contains(&status) => Ok(status),
            Ok(410) => Err(WebhookError::Gone),
            Ok(status) => Err(WebhookError::Failed(format!(
                "the endpoint answered HTTP {status}"
            ))),
            Err(TransportError::BadUrl(why)) => Err(WebhookError::BadEndpoint(why)),
            Err(error) => Err(WebhookError::Failed(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests;
