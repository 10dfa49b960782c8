#![cfg(test)]
//! `SesMailer` through a real `aws_sdk_sesv2::Client` whose HTTP layer is one of the SDK's test
//! clients (`aws_smithy_http_client::test_util`): canned SES v2 answers in the service's wire
//! format go through the SDK's own deserializers, so what is classified here is exactly what a
//! live `SendEmail` call would produce. Retries are disabled: each canned answer is one attempt.
//! Nothing leaves the machine and nothing sleeps (the timeout case runs on paused Tokio time).
//!
//! SES v2 speaks REST-JSON (`awsRestJson1`). An error is an HTTP status, the error code in the
//! `x-amzn-ErrorType` header (optionally `namespace#Code:uri`, which the SDK trims), and a JSON
//! body with a `message` member; without the header the SDK takes the code from the body's
//! `code` or `__type` member. The request id comes from `x-amzn-RequestId`.

use std::time::Duration;

use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::operation::RequestId;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_smithy_http_client::test_util::{NeverClient, ReplayEvent, StaticReplayClient};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;
use base64::Engine as _;
use domain::EmailAddress;
use mailer::{MailError, Mailer, Message, Sender, SesMailer};
use serde_json::Value;

const SENDER: &str = "Confirm Bot <sender@example.com>";
const SENDER_ADDRESS: &str = "sender@example.com";
const RECIPIENT: &str = "Alice.Recipient@example.org";
const LINK: &str = "https://confirm.example.com/confirm/TOKEN-abc.def";
const REQUEST_ID: &str = "0f6b1c2d-3e4f-4a5b-8c9d-0e1f2a3b4c5d";
const ENDPOINT: &str = "https://email.us-east-1.amazonaws.com/v2/email/outbound-emails";

/// A real SES v2 client: static fake credentials, us-east-1, latest behaviour version, no
/// retries, a 30 s attempt timeout (as `SesMailer::from_env` sets), and `http` as its HTTP layer.
fn client(http: impl HttpClient + 'static) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDSESFAULTS",
            "fake-secret",
            None,
            None,
            "ses-faults",
        ))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .http_client(http)
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

fn mailer(http: impl HttpClient + 'static, configuration_set: Option<&str>) -> SesMailer {
    SesMailer::new(
        client(http),
        Sender::parse(SENDER).unwrap(),
        configuration_set.map(str::to_owned),
    )
}

fn message() -> Message {
    Message {
        to: EmailAddress::parse(RECIPIENT).unwrap(),
        subject: "Confirm Your Account".into(),
        text: format!("Please follow this link to activate your account:\n{LINK}\n"),
        html: Some(format!("<p><a href=\"{LINK}\">Confirm</a></p>\n")),
        action_url: Some(LINK.into()),
    }
}

/// An HTTP response as SES sends it: JSON body, request id header, optional error type.
fn response(status: u16, error_type: Option<&str>, body: &str) -> HttpResponse {
    let mut response = HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(body.to_owned()),
    );
    let headers = response.headers_mut();
    headers.insert("content-type", "application/json");
    headers.insert("x-amzn-requestid", REQUEST_ID);
    if let Some(error_type) = error_type {
        headers.insert("x-amzn-errortype", error_type.to_owned());
    }
    response
}

/// An SES v2 error: status, `x-amzn-ErrorType: <code>`, body `{"message": "..."}`.
fn ses_error(status: u16, code: &str, message: &str) -> HttpResponse {
    response(
        status,
        Some(code),
        &serde_json::json!({ "message": message }).to_string(),
    )
}

fn success(message_id: &str) -> HttpResponse {
    response(
        200,
        None,
        &serde_json::json!({ "MessageId": message_id }).to_string(),
    )
}

/// A replay client answering `responses` in order (the expected requests are not used: the
/// actual ones are inspected directly).
fn replay(responses: Vec<HttpResponse>) -> StaticReplayClient {
    StaticReplayClient::new(
        responses
            .into_iter()
            .map(|r| ReplayEvent::new(HttpRequest::empty(), r))
            .collect(),
    )
}

fn requests(client: &StaticReplayClient) -> Vec<(String, String, Value)> {
    client
        .actual_requests()
        .map(|r| {
            let body = r.body().bytes().expect("in-memory request body");
            (
                r.method().to_owned(),
                r.uri().to_owned(),
                serde_json::from_slice(body).unwrap(),
            )
        })
        .collect()
}

fn class(error: &MailError) -> &'static str {
    match error {
        MailError::Transient(_) => "transient",
        MailError::Permanent(_) => "permanent",
        MailError::Account(_) => "account",
    }
}

/// The recipient must never appear in an error text, in any letter case.
fn assert_no_recipient(text: &str) {
    assert!(
        !text
            .to_ascii_lowercase()
            .contains(&RECIPIENT.to_ascii_lowercase()),
        "recipient leaked: {text}"
    );
    assert!(!text.contains("TOKEN-abc"), "link leaked: {text}");
}

#[tokio::test]
async fn success_returns_the_ses_message_id_and_sends_raw_mime() {
    let http = replay(vec![success("abc")]);
    let sent = mailer(http.clone(), None).send(&message()).await.unwrap();
    assert_eq!(sent.provider_message_id.as_deref(), Some("abc"));

    let sent_requests: Vec<HttpRequest> = http
        .actual_requests()
        .map(|r| r.try_clone().unwrap())
        .collect();
    assert_eq!(sent_requests.len(), 1);
    let request = &sent_requests[0];
    assert_eq!(request.method(), "POST");
    assert_eq!(request.uri(), ENDPOINT);
    assert_eq!(
        request.headers().get("content-type"),
        Some("application/json")
    );
    let authorization = request.headers().get("authorization").unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDSESFAULTS/")
            && authorization.contains("/us-east-1/ses/aws4_request"),
        "{authorization}"
    );

    let body: Value = serde_json::from_slice(request.body().bytes().unwrap()).unwrap();
    assert_eq!(body["FromEmailAddress"], SENDER_ADDRESS, "{body}");
    assert_eq!(
        body["Destination"]["ToAddresses"],
        serde_json::json!(["Alice.Recipient@example.org"]),
        "{body}"
    );
    assert!(body.get("ConfigurationSetName").is_none(), "{body}");
    assert!(body["Content"].get("Simple").is_none(), "{body}");
    let data = body["Content"]["Raw"]["Data"].as_str().unwrap();
    let mime = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap();
    let message_id = mime
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_else(|| panic!("no Message-ID in {mime}"));
    let local = message_id
        .strip_prefix('<')
        .and_then(|id| id.strip_suffix("@example.com>"))
        .unwrap_or_else(|| panic!("Message-ID not ours: {message_id}"));
    assert_eq!(local.len(), 32, "{message_id}");
    assert!(local.chars().all(|c| c.is_ascii_hexdigit()), "{message_id}");
    assert!(
        mime.contains("From: \"Confirm Bot\" <sender@example.com>\r\n"),
        "{mime}"
    );
    assert!(
        mime.contains("To: Alice.Recipient@example.org\r\n"),
        "{mime}"
    );
    assert!(mime.contains("Subject: Confirm Your Account\r\n"), "{mime}");
    assert!(mime.contains("multipart/alternative"), "{mime}");
    assert!(mime.contains(&format!("{LINK}\r\n")), "{mime}");
}

#[tokio::test]
async fn configuration_set_is_sent_when_configured() {
    let http = replay(vec![success("with-set")]);
    let sent = mailer(http.clone(), Some("confirmations"))
        .send(&message())
        .await
        .unwrap();
    assert_eq!(sent.provider_message_id.as_deref(), Some("with-set"));
    let sent = requests(&http);
    assert_eq!(sent.len(), 1);
    let (method, uri, body) = &sent[0];
    assert_eq!((method.as_str(), uri.as_str()), ("POST", ENDPOINT));
    assert_eq!(body["ConfigurationSetName"], "confirmations", "{body}");
}

/// The canned answers go through the SDK's own deserializer into the modelled error variants,
/// with code, message and request id: the wire format below is what the SDK reads.
#[tokio::test]
async fn the_sdk_parses_the_canned_wire_format_into_modelled_errors() {
    let cases: Vec<(&str, HttpResponse, &str)> = vec![
        (
            "code in x-amzn-ErrorType",
            ses_error(
                429,
                "TooManyRequestsException",
                "Maximum sending rate exceeded.",
            ),
            "TooManyRequestsException",
        ),
        (
            "namespaced header code with uri",
            ses_error(
                400,
                "com.amazonaws.sesv2#SendingPausedException:http://internal.amazon.com/coral/com.amazon.coral.validate/",
                "Sending is paused for this account.",
            ),
            "SendingPausedException",
        ),
        (
            "code in the body's __type only",
            response(
                400,
                None,
                r#"{"__type":"MessageRejected","message":"Email rejected."}"#,
            ),
            "MessageRejected",
        ),
    ];
    for (name, canned, code) in cases {
        let http = replay(vec![canned]);
        let err = client(http.clone())
            .send_email()
            .from_email_address(SENDER_ADDRESS)
            .send()
            .await
            .unwrap_err();
        let status = err.raw_response().map(|r| r.status().as_u16());
        assert!(matches!(status, Some(400 | 429)), "{name}: {status:?}");
        assert_eq!(err.request_id(), Some(REQUEST_ID), "{name}");
        let service = err.into_service_error();
        assert_eq!(service.code(), Some(code), "{name}: {service:?}");
        assert!(service.message().is_some(), "{name}: {service:?}");
        let modelled = match code {
            "TooManyRequestsException" => {
                matches!(service, SendEmailError::TooManyRequestsException(_))
            }
            "SendingPausedException" => {
                matches!(service, SendEmailError::SendingPausedException(_))
            }
            "MessageRejected" => matches!(service, SendEmailError::MessageRejected(_)),
            _ => false,
        };
        assert!(modelled, "{name}: not the modelled variant: {service:?}");
        assert_eq!(requests(&http).len(), 1, "{name}: retries are disabled");
    }
}

#[tokio::test]
async fn ses_error_answers_are_classified() {
    let cases: Vec<(&str, HttpResponse, &str, &str)> = vec![
        (
            "429 TooManyRequestsException",
            ses_error(
                429,
                "TooManyRequestsException",
                "Maximum sending rate exceeded.",
            ),
            "transient",
            "Maximum sending rate exceeded.",
        ),
        (
            "400 LimitExceededException",
            ses_error(
                400,
                "LimitExceededException",
                "Daily message quota exceeded.",
            ),
            "transient",
            "Daily message quota exceeded.",
        ),
        (
            "500 InternalFailure",
            ses_error(
                500,
                "InternalFailure",
                "The request processing has failed because of an unknown error, exception or failure.",
            ),
            "transient",
            "InternalFailure (HTTP 500",
        ),
        (
            "503 ServiceUnavailable",
            ses_error(503, "ServiceUnavailable", "Service is unavailable."),
            "transient",
            "ServiceUnavailable (HTTP 503",
        ),
        (
            "503 without a JSON body (load balancer)",
            {
                let mut r = HttpResponse::new(
                    StatusCode::try_from(503).unwrap(),
                    SdkBody::from("<html><body>503 Service Unavailable</body></html>"),
                );
                r.headers_mut().insert("content-type", "text/html");
                r.headers_mut().insert("x-amzn-requestid", REQUEST_ID);
                r
            },
            "transient",
            "HTTP 503",
        ),
        (
            "400 MessageRejected (content)",
            ses_error(
                400,
                "MessageRejected",
                "Email rejected: the message for Alice.Recipient@EXAMPLE.org contains a virus.",
            ),
            "permanent",
            "Email rejected: the message for A***@example.org contains a virus.",
        ),
        (
            "400 MessageRejected (sender not verified)",
            ses_error(
                400,
                "MessageRejected",
                "Email address is not verified. The following identities failed the check in region US-EAST-1: sender@example.com",
            ),
            "account",
            "the sender identity sender@example.com is not verified",
        ),
        (
            "400 MessageRejected (recipient not verified, sandbox)",
            ses_error(
                400,
                "MessageRejected",
                "Email address is not verified. The following identities failed the check in region US-EAST-1: alice.recipient@example.org",
            ),
            "account",
            "sandbox",
        ),
        (
            "400 SendingPausedException",
            ses_error(
                400,
                "SendingPausedException",
                "Email sending is disabled for your entire Amazon SES account.",
            ),
            "account",
            "sending is paused",
        ),
        (
            "400 AccountSuspendedException",
            ses_error(
                400,
                "AccountSuspendedException",
                "The account has been suspended.",
            ),
            "account",
            "suspended",
        ),
        (
            "400 MailFromDomainNotVerifiedException",
            ses_error(
                400,
                "MailFromDomainNotVerifiedException",
                "MAIL FROM domain mail.example.com is not verified.",
            ),
            "account",
            "MAIL FROM domain is not verified",
        ),
        (
            "400 BadRequestException",
            ses_error(
                400,
                "BadRequestException",
                "Missing final '@domain' in Alice.Recipient@example.org",
            ),
            "permanent",
            "BadRequestException (HTTP 400",
        ),
        (
            "403 AccessDeniedException",
            ses_error(
                403,
                "AccessDeniedException",
                "User is not authorized to perform ses:SendEmail",
            ),
            "account",
            "credentials or their permissions",
        ),
    ];
    for (name, canned, want, needle) in cases {
        let http = replay(vec![canned]);
        let err = mailer(http.clone(), None)
            .send(&message())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert_eq!(class(&err), want, "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text}");
        // The text is cut at 300 characters, but the request id comes before SES's message, so
        // even the long "not verified" texts keep it.
        assert!(text.contains(REQUEST_ID), "{name}: no request id: {text}");
        assert_no_recipient(&text);
        assert_eq!(
            http.actual_requests().count(),
            1,
            "{name}: one attempt, retries disabled"
        );
    }
}

/// A connector whose connection is refused, as hyper reports it (an I/O connector error).
#[derive(Debug, Clone)]
struct RefusingClient;

impl HttpConnector for RefusingClient {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::ready(Err(ConnectorError::io(
            std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "tcp connect error: Connection refused (os error 111)",
            )
            .into(),
        )))
    }
}

impl HttpClient for RefusingClient {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.clone().into_shared()
    }
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let err = mailer(RefusingClient, None)
        .send(&message())
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("could not reach SES"), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    assert_no_recipient(&text);
}

/// The same through the real HTTPS client against a local port nobody listens on.
#[tokio::test]
async fn connection_refused_by_the_real_http_client_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDSESFAULTS", "x", None, None, "t"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .retry_config(RetryConfig::disabled())
        .http_client(SesMailer::http_client())
        .build();
    let mailer = SesMailer::new(
        aws_sdk_sesv2::Client::from_conf(config),
        Sender::parse(SENDER).unwrap(),
        None,
    );
    let err = mailer.send(&message()).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    assert!(err.to_string().contains("could not reach SES"), "{err}");
    assert_no_recipient(&err.to_string());
}

/// The test util's replay client with nothing left to answer fails the dispatch.
#[tokio::test]
async fn dispatch_failure_from_the_replay_client_is_transient() {
    let http = replay(Vec::new());
    let err = mailer(http, None).send(&message()).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("could not reach SES"), "{text}");
    assert!(text.contains("no more test data"), "{text}");
    assert_no_recipient(&text);
}

/// A server that never answers: the SDK's attempt timeout fires (on paused Tokio time, so the
/// 30 s pass at once) and the failure is transient.
#[tokio::test(start_paused = true)]
async fn attempt_timeout_is_transient() {
    let http = NeverClient::new();
    let started = tokio::time::Instant::now();
    let err = mailer(http.clone(), None)
        .send(&message())
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("timed out"), "{text}");
    assert_no_recipient(&text);
    assert_eq!(http.num_calls(), 1);
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}
