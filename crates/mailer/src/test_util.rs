//! Stand-ins for tests of code that sends through [`SesMailer`] (feature `test-util`): a fake
//! SES that answers in SES v2's wire format through the real SDK ([`FakeSes`]), and moto's
//! SES emulation on loopback ([`Moto`]). No AWS type appears here: tests build replies and
//! read requests with these types only.
#![expect(
    clippy::panic,
    reason = "test support: a service that is set up but fails must fail the calling test"
)]

use std::io::{Read as _, Write as _};
use std::time::Duration;

use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sesv2::error::DisplayErrorContext;
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_runtime_api::client::http::HttpClient;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::Value;

use crate::{Sender, SesMailer, SqsFeedbackQueue};

/// The request id every [`SesReply`] carries (`x-amzn-RequestId`).
pub const FAKE_SES_REQUEST_ID: &str = "0f6b1c2d-3e4f-4a5b-8c9d-0e1f2a3b4c5d";

/// One answer of [`FakeSes`], as SES v2 sends it (REST-JSON): a status, a JSON body, the
/// request id header and, for an error, the code in `x-amzn-ErrorType`.
#[derive(Debug)]
pub struct SesReply(HttpResponse);

impl SesReply {
    /// `200 {"MessageId": message_id}`.
    pub fn sent(message_id: &str) -> Self {
        Self::raw(
            200,
            None,
            &serde_json::json!({ "MessageId": message_id }).to_string(),
        )
    }

    /// An SES error: `status`, `x-amzn-ErrorType: code`, `{"message": message}`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::raw(
            status,
            Some(code),
            &serde_json::json!({ "message": message }).to_string(),
        )
    }

    /// Any answer: `status`, an optional `x-amzn-ErrorType` and a body as given. A status
    /// outside 100-999 is taken as 500.
    pub fn raw(status: u16, error_type: Option<&str>, body: &str) -> Self {
        let status = StatusCode::try_from(status)
            .or_else(|_| StatusCode::try_from(500))
            .unwrap_or_else(|_| unreachable!("500 is a status code"));
        let mut response = HttpResponse::new(status, SdkBody::from(body.to_owned()));
        let headers = response.headers_mut();
        headers.insert("content-type", "application/json");
        headers.insert("x-amzn-requestid", FAKE_SES_REQUEST_ID);
        if let Some(code) = error_type {
            headers.insert("x-amzn-errortype", code.to_owned());
        }
        Self(response)
    }
}

/// A request [`FakeSes`] received.
#[derive(Debug, Clone, PartialEq)]
pub struct SesRequest {
    /// The HTTP method.
    pub method: String,
    /// The request's URI.
    pub uri: String,
    /// The headers, names in lower case.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
}

/// An SES that answers each call with the next of its replies, through a real SES v2 client
/// (its HTTP layer is the SDK's replay client), so the answers go through the SDK's own
/// deserializers exactly as live ones would. With no reply left, a call fails to dispatch.
#[derive(Debug, Clone)]
pub struct FakeSes {
    pub(crate) http: StaticReplayClient,
}

impl FakeSes {
    /// A fake that answers the requests it gets with `replies`, in order.
    pub fn new(replies: Vec<SesReply>) -> Self {
        Self {
            http: StaticReplayClient::new(
                replies
                    .into_iter()
                    .map(|SesReply(response)| ReplayEvent::new(HttpRequest::empty(), response))
                    .collect(),
            ),
        }
    }

    /// A mailer sending to this SES (us-east-1, fake static credentials, no retries: each reply
    /// answers one send).
    pub fn mailer(&self, sender: Sender, configuration_set: Option<&str>) -> SesMailer {
        SesMailer::with_client(
            client_over(self.http.clone(), None),
            sender,
            configuration_set.map(str::to_owned),
        )
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<SesRequest> {
        self.http
            .actual_requests()
            .map(|request| SesRequest {
                method: request.method().to_owned(),
                uri: request.uri().to_owned(),
                headers: request
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
                    .collect(),
                body: request
                    .body()
                    .bytes()
                    .and_then(|bytes| serde_json::from_slice(bytes).ok())
                    .unwrap_or(Value::Null),
            })
            .collect()
    }
}

/// A real SES v2 client over `http`: us-east-1, fake static credentials, no retries, the
/// 30 s attempt timeout `SesMailer::from_env` sets, and `endpoint` if given.
pub(crate) fn client_over(
    http: impl HttpClient + 'static,
    endpoint: Option<&str>,
) -> aws_sdk_sesv2::Client {
    let mut config = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing",
            "testing-secret",
            None,
            None,
            "mailer-test-util",
        ))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .http_client(http);
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint);
    }
    aws_sdk_sesv2::Client::from_conf(config.build())
}

/// moto's SES v2 emulation (`python3 -m moto.server`), at the URL in `TEST_SES_ENDPOINT`.
/// What moto received is read back from its `/moto-api/data.json`.
#[derive(Debug, Clone)]
pub struct Moto {
    endpoint: String,
    client: aws_sdk_sesv2::Client,
}

/// An SQS client for moto at `endpoint`, with the same fake credentials as the SES one.
fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing",
            "testing-secret",
            None,
            None,
            "mailer-test-util",
        ))
        .retry_config(RetryConfig::disabled())
        .http_client(crate::ses::http_client())
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

impl Moto {
    /// The variable naming moto's endpoint, e.g. `http://127.0.0.1:5055`.
    pub const ENDPOINT_VAR: &str = "TEST_SES_ENDPOINT";

    /// moto at `TEST_SES_ENDPOINT`, or `None` (after a note that `test` is skipped) when the
    /// variable is unset. Panics when it is set but nothing answers there: a test that needs
    /// the service fails loudly rather than passing without it.
    pub fn from_env(test: &str) -> Option<Self> {
        let Some(endpoint) = std::env::var(Self::ENDPOINT_VAR)
            .ok()
            .filter(|url| !url.is_empty())
        else {
            // Test output, not a log: the harness shows it with the test.
            #[expect(clippy::print_stderr, reason = "a test's skip note")]
            {
                eprintln!(
                    "{test}: skipped, set {} (e.g. http://127.0.0.1:5055, a moto server) to run it",
                    Self::ENDPOINT_VAR
                );
            }
            return None;
        };
        let moto = Self::at(endpoint.trim_end_matches('/'));
        moto.data();
        Some(moto)
    }

    /// moto at `endpoint` (`http://host:port`), region us-east-1.
    pub fn at(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            client: client_over(crate::ses::http_client(), Some(endpoint)),
        }
    }

    /// The same moto, in another region (moto keeps identities per region).
    #[must_use]
    pub fn in_region(&self, region: &str) -> Self {
        let config = self
            .client
            .config()
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build();
        Self {
            endpoint: self.endpoint.clone(),
            client: aws_sdk_sesv2::Client::from_conf(config),
        }
    }

    /// The endpoint URL to point the SDK at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A mailer sending to moto (us-east-1, fake static credentials, no retries).
    pub fn mailer(&self, sender: Sender, configuration_set: Option<&str>) -> SesMailer {
        SesMailer::with_client(
            self.client.clone(),
            sender,
            configuration_set.map(str::to_owned),
        )
    }

    /// Creates an SQS queue named `name` (visibility timeout `visibility` seconds; with
    /// `dead_letter`, a redrive policy sending a message there after `max_receives` receives)
    /// and returns its URL.
    pub async fn create_queue(
        &self,
        name: &str,
        visibility: u32,
        dead_letter: Option<(&str, u32)>,
    ) -> String {
        use aws_sdk_sqs::types::QueueAttributeName;
        let sqs = sqs_client(&self.endpoint);
        let mut create = sqs.create_queue().queue_name(name).attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.to_string(),
        );
        if let Some((url, max_receives)) = dead_letter {
            let arn = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetQueueAttributes: {}", DisplayErrorContext(e)))
                .attributes
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .unwrap_or_else(|| panic!("moto gave {url} no QueueArn"));
            create = create.attributes(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives})
                    .to_string(),
            );
        }
        create
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{} is set but CreateQueue failed: {}",
                    Self::ENDPOINT_VAR,
                    DisplayErrorContext(e)
                )
            })
            .queue_url
            .unwrap_or_else(|| panic!("CreateQueue answered no QueueUrl"))
    }

    /// Puts one message with `body` on the queue at `url`.
    pub async fn send_to_queue(&self, url: &str, body: &str) {
        sqs_client(&self.endpoint)
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("SendMessage: {}", DisplayErrorContext(e)));
    }

    /// How many messages the queue at `url` holds, visible or in flight.
    pub async fn queue_depth(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName;
        let attributes = sqs_client(&self.endpoint)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetQueueAttributes: {}", DisplayErrorContext(e)))
            .attributes
            .unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|name| attributes.get(name)?.parse::<u64>().ok())
        .sum()
    }

    /// The feedback queue at `url` as the worker reads it, through moto (receives wait 1 s).
    pub fn feedback_queue(&self, url: &str) -> SqsFeedbackQueue {
        SqsFeedbackQueue::with_client(sqs_client(&self.endpoint), url)
            .with_wait(Duration::from_secs(1))
    }

    /// Creates (and so verifies: moto verifies every new identity) an email identity.
    pub async fn verify_identity(&self, identity: &str) {
        if let Err(error) = self
            .client
            .create_email_identity()
            .email_identity(identity)
            .send()
            .await
        {
            panic!(
                "{} is set but CreateEmailIdentity failed: {}",
                Self::ENDPOINT_VAR,
                DisplayErrorContext(error)
            );
        }
    }

    /// Creates a configuration set.
    pub async fn create_configuration_set(&self, name: &str) {
        if let Err(error) = self
            .client
            .create_configuration_set()
            .configuration_set_name(name)
            .send()
            .await
        {
            panic!(
                "CreateConfigurationSet failed: {}",
                DisplayErrorContext(error)
            );
        }
    }

    /// Everything moto holds (plain HTTP/1.0 GET of `/moto-api/data.json`, no client crate).
    /// Panics when moto cannot be read.
    pub fn data(&self) -> Value {
        let Some(authority) = self.endpoint.strip_prefix("http://") else {
            panic!(
                "{} must be an http:// URL, got {}",
                Self::ENDPOINT_VAR,
                self.endpoint
            );
        };
        let exchange = || -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(authority)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(
                stream,
                "GET /moto-api/data.json HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n"
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        };
        let response = exchange().unwrap_or_else(|e| {
            panic!(
                "{} is set but moto at {authority} cannot be read: {e}",
                Self::ENDPOINT_VAR
            )
        });
        let body = match response.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => body,
            _ => panic!("moto's data.json: unexpected answer {response:?}"),
        };
        serde_json::from_str(body).unwrap_or_else(|e| panic!("moto's data.json: {e}"))
    }

    /// The raw message moto recorded under SES's `message_id` (with `source`,
    /// `destinations` and `raw_data`). Panics when there is none.
    pub fn raw_message(&self, message_id: &str) -> Value {
        let data = self.data();
        let Some(messages) = data["ses"]["RawMessage"].as_array() else {
            panic!("no ses.RawMessage in moto's data: {data}");
        };
        messages
            .iter()
            .find(|m| m["id"] == message_id)
            .cloned()
            .unwrap_or_else(|| panic!("moto has no message {message_id}"))
    }
}
