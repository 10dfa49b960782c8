//! [`Transport`] over HTTP(S): hyper's pooled client with rustls and the system's roots.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{SignedRequest, Transport, TransportError};

/// Posts webhooks with a timeout for the whole call (connecting, sending, the answer's head).
/// Follows no redirect (a 3xx is an answer like another: retried). Connections are pooled.
#[derive(Clone)]
pub struct HttpTransport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A client trusting the system's root certificates; fails if none can be loaded.
    pub fn new(timeout: Duration) -> std::io::Result<Self> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { client, timeout })
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn post(&self, request: SignedRequest) -> Result<u16, TransportError> {
        let uri: http::Uri = request
            .url
            .parse()
            .map_err(|e: http::uri::InvalidUri| TransportError::BadUrl(e.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(TransportError::BadUrl(
                "not an http or https URL with a host".into(),
            ));
        }
        let mut builder = http::Request::post(uri).header(http::header::USER_AGENT, USER_AGENT);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let body = Full::new(Bytes::from(request.body));
        let http_request = builder
            .body(body)
            .map_err(|e| TransportError::BadUrl(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.client.request(http_request)).await {
            Err(_) => Err(TransportError::Timeout(self.timeout)),
            Ok(Err(error)) => Err(TransportError::Connection(describe(&error))),
            Ok(Ok(response)) => Ok(response.status().as_u16()),
        }
    }
}

/// The `user-agent` of every post.
const USER_AGENT: &str = concat!("email-confirmation-webhooks/", env!("CARGO_PKG_VERSION"));

/// The error and its causes on one line (hyper's top-level error alone says little: "client
/// error (Connect)").
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
