//! `SesMailer` through a real `aws_sdk_sesv2::Client` whose HTTP layer is one of the SDK's test
//! clients (`aws_smithy_http_client::test_util`, through [`crate::test_util`]): canned SES v2
//! answers in the service's wire format go through the SDK's own deserializers, so what is
//! classified here is exactly what a live `SendEmail` call would produce. Retries are disabled:
//! each canned answer is one attempt. Nothing leaves the machine and nothing sleeps (the
//! timeout case runs on paused Tokio time).
//!
//! SES v2 speaks REST-JSON (`awsRestJson1`). An error is an HTTP status, the error code in the
//! `x-amzn-ErrorType` header (optionally `namespace#Code:uri`, which the SDK trims), and a JSON
//! body with a `message` member; without the header the SDK takes the code from the body's
//! `code` or `__type` member. The request id comes from `x-amzn-RequestId`.

use std::time::Duration;

use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::operation::RequestId;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_smithy_http_client::test_util::NeverClient;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use base64::Engine as _;
use confirm_email_address::EmailAddress;

use super::*;
use crate::test_util::{FAKE_SES_REQUEST_ID as REQUEST_ID, FakeSes, SesReply, client_over};

const SENDER: &str = "Confirm Bot <sender@example.com>";
const SENDER_ADDRESS: &str = "sender@example.com";
const RECIPIENT: &str = "Alice.Recipient@example.org";
const LINK: &str = "https://confirm.example.com/confirm/TOKEN-abc.def";
const ENDPOINT: &str = "https://email.us-east-1.amazonaws.com/v2/email/outbound-emails";

fn sender() -> Sender {
    Sender::parse(SENDER).unwrap()
}

/// A mailer over an SES v2 client whose HTTP layer is `http`.
fn mailer_over(http: impl HttpClient + 'static) -> SesMailer {
    SesMailer::with_client(client_over(http, None), sender(), None)
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
    let ses = FakeSes::new(vec![SesReply::sent("abc")]);
    let sent = ses.mailer(sender(), None).send(&message()).await.unwrap();
    assert_eq!(sent.provider_message_id.as_deref(), Some("abc"));

    let requests = ses.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, ENDPOINT);
    assert_eq!(
        request.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let authorization = &request.headers["authorization"];
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=testing/")
            && authorization.contains("/us-east-1/ses/aws4_request"),
        "{authorization}"
    );

    let body = &request.body;
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
    let ses = FakeSes::new(vec![SesReply::sent("with-set")]);
    let sent = ses
        .mailer(sender(), Some("confirmations"))
        .send(&message())
        .await
        .unwrap();
    assert_eq!(sent.provider_message_id.as_deref(), Some("with-set"));
    let requests = ses.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.uri.as_str()),
        ("POST", ENDPOINT)
    );
    assert_eq!(
        request.body["ConfigurationSetName"], "confirmations",
        "{}",
        request.body
    );
}

/// The canned answers go through the SDK's own deserializer into the modelled error variants,
/// with code, message and request id: the wire format below is what the SDK reads.
#[tokio::test]
async fn the_sdk_parses_the_canned_wire_format_into_modelled_errors() {
    let cases: Vec<(&str, SesReply, &str)> = vec![
        (
            "code in x-amzn-ErrorType",
            SesReply::error(
                429,
                "TooManyRequestsException",
                "Maximum sending rate exceeded.",
            ),
            "TooManyRequestsException",
        ),
        (
            "namespaced header code with uri",
            SesReply::error(
                400,
                "com.amazonaws.sesv2#SendingPausedException:http://internal.amazon.com/coral/com.amazon.coral.validate/",
                "Sending is paused for this account.",
            ),
            "SendingPausedException",
        ),
        (
            "code in the body's __type only",
            SesReply::raw(
                400,
                None,
                r#"{"__type":"MessageRejected","message":"Email rejected."}"#,
            ),
            "MessageRejected",
        ),
    ];
    for (name, canned, code) in cases {
        let ses = FakeSes::new(vec![canned]);
        let err = client_over(ses.http.clone(), None)
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
        assert_eq!(ses.requests().len(), 1, "{name}: retries are disabled");
    }
}

#[tokio::test]
async fn ses_error_answers_are_classified() {
    let cases: Vec<(&str, SesReply, &str, &str)> = vec![
        (
            "429 TooManyRequestsException",
            SesReply::error(
                429,
                "TooManyRequestsException",
                "Maximum sending rate exceeded.",
            ),
            "transient",
            "Maximum sending rate exceeded.",
        ),
        (
            "400 LimitExceededException",
            SesReply::error(
                400,
                "LimitExceededException",
                "Daily message quota exceeded.",
            ),
            "transient",
            "Daily message quota exceeded.",
        ),
        (
            "500 InternalFailure",
            SesReply::error(
                500,
                "InternalFailure",
                "The request processing has failed because of an unknown error, exception or failure.",
            ),
            "transient",
            "InternalFailure (HTTP 500",
        ),
        (
            "503 ServiceUnavailable",
            SesReply::error(503, "ServiceUnavailable", "Service is unavailable."),
            "transient",
            "ServiceUnavailable (HTTP 503",
        ),
        (
            "503 without a JSON body (load balancer)",
            SesReply::raw(
                503,
                None,
                "<html><body>503 Service Unavailable</body></html>",
            ),
            "transient",
            "HTTP 503",
        ),
        (
            "400 MessageRejected (content)",
            SesReply::error(
                400,
                "MessageRejected",
                "Email rejected: the message for Alice.Recipient@EXAMPLE.org contains a virus.",
            ),
            "permanent",
            "Email rejected: the message for A***@example.org contains a virus.",
        ),
        (
            "400 MessageRejected (sender not verified)",
            SesReply::error(
                400,
                "MessageRejected",
                "Email address is not verified. The following identities failed the check in region US-EAST-1: sender@example.com",
            ),
            "account",
            "the sender identity sender@example.com is not verified",
        ),
        (
            "400 MessageRejected (recipient not verified, sandbox)",
            SesReply::error(
                400,
                "MessageRejected",
                "Email address is not verified. The following identities failed the check in region US-EAST-1: alice.recipient@example.org",
            ),
            "account",
            "sandbox",
        ),
        (
            "400 SendingPausedException",
            SesReply::error(
                400,
                "SendingPausedException",
                "Email sending is disabled for your entire Amazon SES account.",
            ),
            "account",
            "sending is paused",
        ),
        (
            "400 AccountSuspendedException",
            SesReply::error(
                400,
                "AccountSuspendedException",
                "The account has been suspended.",
            ),
            "account",
            "suspended",
        ),
        (
            "400 MailFromDomainNotVerifiedException",
            SesReply::error(
                400,
                "MailFromDomainNotVerifiedException",
                "MAIL FROM domain mail.example.com is not verified.",
            ),
            "account",
            "MAIL FROM domain is not verified",
        ),
        (
            "400 BadRequestException",
            SesReply::error(
                400,
                "BadRequestException",
                "Missing final '@domain' in Alice.Recipient@example.org",
            ),
            "permanent",
            "BadRequestException (HTTP 400",
        ),
        (
            "403 AccessDeniedException",
            SesReply::error(
                403,
                "AccessDeniedException",
                "User is not authorized to perform ses:SendEmail",
            ),
            "account",
            "credentials or their permissions",
        ),
    ];
    for (name, canned, want, needle) in cases {
        let ses = FakeSes::new(vec![canned]);
        let err = ses
            .mailer(sender(), None)
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
            ses.requests().len(),
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
    let err = mailer_over(RefusingClient)
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
    let mailer = SesMailer::with_client(
        client_over(http_client(), Some(&format!("http://127.0.0.1:{port}"))),
        sender(),
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
    let ses = FakeSes::new(Vec::new());
    let err = ses
        .mailer(sender(), None)
        .send(&message())
        .await
        .unwrap_err();
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
    let err = mailer_over(http.clone())
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

/// A port nobody listens on, so nothing leaves the machine even if a check is wrong.
fn closed_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
}

/// Missing credentials and a missing region fail before any connection, as dispatch
/// failures; they need an operator, so they are account-level.
#[tokio::test]
async fn missing_credentials_or_region_is_an_account_error() {
    let no_credentials = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new("eu-west-1"))
        .endpoint_url(closed_endpoint())
        .http_client(http_client())
        .build();
    let no_region = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "AKIDEXAMPLE",
            "s3cret",
            None,
            None,
            "test",
        ))
        .http_client(http_client())
        .build();
    for (name, config, needle) in [
        ("no credentials", no_credentials, "credentials"),
        ("no region", no_region, "region"),
    ] {
        let mailer =
            SesMailer::with_client(aws_sdk_sesv2::Client::from_conf(config), sender(), None);
        let err = mailer.send(&message()).await.unwrap_err();
        assert!(matches!(err, MailError::Account(_)), "{name}: {err}");
        assert!(err.to_string().contains(needle), "{name}: {err}");
    }
}

#[tokio::test]
async fn debug_shows_no_credentials() {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI-s3cret",
            None,
            None,
            "test",
        ))
        .http_client(http_client())
        .build();
    let mailer = SesMailer::with_client(
        aws_sdk_sesv2::Client::from_conf(config),
        Sender::parse("Bot <no-reply@example.com>").unwrap(),
        Some("  ".into()),
    );
    let debug = format!("{mailer:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(!debug.contains("AKIDEXAMPLE"), "{debug}");
    assert!(debug.contains("eu-west-1"), "{debug}");
    assert_eq!(mailer.configuration_set(), None, "blank means none");
    assert_eq!(mailer.provider(), "ses");
}
