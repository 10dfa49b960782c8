//! The Amazon SES v2 transport: `SendEmail` with raw MIME content.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::RequestId;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::mime::{Sender, format_mime};
use crate::smtp::redact;
use crate::{MailError, Mailer, Message, Sent};

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
            .field(
                "region",
                &self.client.config().region().map(|r| r.as_ref().to_owned()),
            )
            .field("sender", &self.sender.to_header_value())
            .field("configuration_set", &self.configuration_set)
            .finish_non_exhaustive()
    }
}

impl SesMailer {
    /// Uses an SES v2 client configured by the caller. `configuration_set` (if not empty) is
    /// sent as `ConfigurationSetName` with every message.
    pub fn new(
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
    ///
    /// HTTPS goes through rustls with ring ([`SesMailer::http_client`]), given explicitly because the AWS
    /// crates are built without their default HTTP client.
    pub async fn from_env(
        region: Option<String>,
        sender: Sender,
        configuration_set: Option<String>,
    ) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(Self::http_client())
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
        Self::new(
            aws_sdk_sesv2::Client::new(&config),
            sender,
            configuration_set,
        )
    }

    /// The HTTPS client to give the AWS SDK: hyper 1 with rustls and the ring crypto provider,
    /// trusting the platform's root certificates; plain `http://` endpoints (local emulators
    /// such as moto) work too. The AWS crates are built here without a default HTTP client, so a
    /// client configured by hand for [`SesMailer::new`] needs this (or another) HTTP client, or
    /// every call fails with "No HTTP client was available".
    pub fn http_client() -> SharedHttpClient {
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https()
    }

    /// The SES v2 client, for other calls (quotas, identities).
    pub fn client(&self) -> &aws_sdk_sesv2::Client {
        &self.client
    }

    pub fn configuration_set(&self) -> Option<&str> {
        self.configuration_set.as_deref()
    }
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
            .from_email_address(self.sender.mailbox().email.to_string())
            .destination(
                Destination::builder()
                    .to_addresses(message.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().raw(content).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|error| {
                let sender = self.sender.mailbox().email.to_string();
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

/// Error codes that mean "slow down" or "try again" (the AWS SDK's own throttling and
/// transient lists, plus the server-side failures).
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Error codes that mean the credentials or their permissions are wrong: no message can go out
/// until an operator fixes them.
const ACCESS_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "NotAuthorized",
];

/// Classifies a failed `SendEmail` call for the retry policy; see the crate docs for the table.
/// `sender` is the From address, to tell "sender not verified" from other verification
/// failures. The text may still contain the recipient: [`SesMailer::send`] redacts it.
pub(crate) fn classify(error: &SdkError<SendEmailError, HttpResponse>, sender: &str) -> MailError {
    match error {
        SdkError::ServiceError(service) => classify_service(
            service.err(),
            service.raw().status().as_u16(),
            error.request_id().or_else(|| service.err().request_id()),
            sender,
        ),
        SdkError::TimeoutError(_) => {
            MailError::Transient(format!("SES request timed out: {}", chain(error)))
        }
        SdkError::DispatchFailure(failure) => {
            let text = chain(error);
            if !failure.is_io() && !failure.is_timeout() && is_configuration_problem(&text) {
                MailError::Account(format!(
                    "SES client configuration (credentials, region or endpoint): {text}"
                ))
            } else {
                MailError::Transient(format!("could not reach SES: {text}"))
            }
        }
        SdkError::ResponseError(response) => MailError::Transient(format!(
            "unreadable response from SES (HTTP {}): {}",
            response.raw().status().as_u16(),
            chain(error)
        )),
        SdkError::ConstructionFailure(_) => {
            MailError::Permanent(format!("could not build the SES request: {}", chain(error)))
        }
        _ => MailError::Transient(format!("SES request failed: {}", chain(error))),
    }
}

/// An error and its sources, joined with `: ` (the SDK's own display of an `SdkError` says only
/// "dispatch failure" and the like; the cause is in the sources).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Failures to sign or address a request (no credentials, no region) surface as dispatch
/// failures without a connection attempt; they will not go away by themselves.
fn is_configuration_problem(chain: &str) -> bool {
    let chain = chain.to_ascii_lowercase();
    ["credentials", "region", "no http client", "endpoint"]
        .iter()
        .any(|needle| chain.contains(needle))
}

fn classify_service(
    error: &SendEmailError,
    status: u16,
    request_id: Option<&str>,
    sender: &str,
) -> MailError {
    let code = error_code(error);
    let text = error_message(error).unwrap_or("no message");
    // The request id goes before the (possibly long, later truncated) message, so operators
    // always keep it for AWS support.
    let request = request_id
        .map(|id| format!(", request id {id}"))
        .unwrap_or_default();
    let detail = format!("SES {code} (HTTP {status}{request}): {text}");
    match error {
        SendEmailError::AccountSuspendedException(_) => MailError::Account(format!(
            "the SES account is suspended: no email can be sent until AWS lifts it; {detail}"
        )),
        SendEmailError::SendingPausedException(_) => MailError::Account(format!(
            "sending is paused for this SES account or configuration set; {detail}"
        )),
        SendEmailError::MailFromDomainNotVerifiedException(_) => MailError::Account(format!(
            "the sender's custom MAIL FROM domain is not verified in SES; {detail}"
        )),
        SendEmailError::MessageRejected(_) if identity_not_verified(text) => {
            let lower = text.to_ascii_lowercase();
            if lower.contains(&sender.to_ascii_lowercase())
                || lower.contains(sender_domain(sender))
                || lower.contains("send from")
            {
                MailError::Account(format!(
                    "the sender identity {sender} is not verified in SES (verify the address or its domain in this region); {detail}"
                ))
            } else {
                MailError::Account(format!(
                    "an identity is not verified in SES (in the SES sandbox recipients must be verified too: request production access); {detail}"
                ))
            }
        }
        SendEmailError::TooManyRequestsException(_) | SendEmailError::LimitExceededException(_) => {
            MailError::Transient(format!("SES throttled the request; {detail}"))
        }
        SendEmailError::MessageRejected(_)
        | SendEmailError::BadRequestException(_)
        | SendEmailError::NotFoundException(_) => {
            MailError::Permanent(format!("SES rejected the message; {detail}"))
        }
        _ if RETRYABLE_CODES.contains(&code) || status == 429 || status >= 500 => {
            MailError::Transient(format!("SES is unavailable or throttling; {detail}"))
        }
        _ if ACCESS_CODES.contains(&code) || status == 401 || status == 403 => {
            MailError::Account(format!(
                "SES refused the credentials or their permissions (ses:SendEmail / ses:SendRawEmail on the identity); {detail}"
            ))
        }
        _ if (400..500).contains(&status) => {
            MailError::Permanent(format!("SES rejected the request; {detail}"))
        }
        _ => MailError::Transient(format!("unexpected SES answer; {detail}")),
    }
}

/// SES's "Email address is not verified. The following identities failed the check..." and
/// moto's "Did not have authority to send from email ...".
fn identity_not_verified(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("not verified") || lower.contains("did not have authority to send")
}

fn sender_domain(sender: &str) -> &str {
    sender.rsplit_once('@').map_or(sender, |(_, domain)| domain)
}

/// The error's code: the modelled variant's name (also when built without metadata), else
/// the code the service sent.
fn error_code(error: &SendEmailError) -> &str {
    match error {
        SendEmailError::AccountSuspendedException(_) => "AccountSuspendedException",
        SendEmailError::BadRequestException(_) => "BadRequestException",
        SendEmailError::LimitExceededException(_) => "LimitExceededException",
        SendEmailError::MailFromDomainNotVerifiedException(_) => {
            "MailFromDomainNotVerifiedException"
        }
        SendEmailError::MessageRejected(_) => "MessageRejected",
        SendEmailError::NotFoundException(_) => "NotFoundException",
        SendEmailError::SendingPausedException(_) => "SendingPausedException",
        SendEmailError::TooManyRequestsException(_) => "TooManyRequestsException",
        _ => error.code().unwrap_or("UnknownError"),
    }
}

fn error_message(error: &SendEmailError) -> Option<&str> {
    let modelled = match error {
        SendEmailError::AccountSuspendedException(e) => e.message(),
        SendEmailError::BadRequestException(e) => e.message(),
        SendEmailError::LimitExceededException(e) => e.message(),
        SendEmailError::MailFromDomainNotVerifiedException(e) => e.message(),
        SendEmailError::MessageRejected(e) => e.message(),
        SendEmailError::NotFoundException(e) => e.message(),
        SendEmailError::SendingPausedException(e) => e.message(),
        SendEmailError::TooManyRequestsException(e) => e.message(),
        _ => None,
    };
    modelled.or_else(|| error.message())
}

#[cfg(test)]
mod tests {
    use aws_sdk_sesv2::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_sesv2::types::error::{
        AccountSuspendedException, BadRequestException, LimitExceededException,
        MailFromDomainNotVerifiedException, MessageRejected, NotFoundException,
        SendingPausedException, TooManyRequestsException,
    };
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    const SENDER: &str = "no-reply@example.com";

    fn raw(status: u16) -> HttpResponse {
        Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn service(err: SendEmailError, status: u16) -> SdkError<SendEmailError, HttpResponse> {
        SdkError::service_error(err, raw(status))
    }

    fn unhandled(code: &str, status: u16) -> SdkError<SendEmailError, HttpResponse> {
        service(
            SendEmailError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message("something happened")
                    .build(),
            ),
            status,
        )
    }

    fn class(error: &MailError) -> &'static str {
        match error {
            MailError::Transient(_) => "transient",
            MailError::Permanent(_) => "permanent",
            MailError::Account(_) => "account",
        }
    }

    #[test]
    fn classification_table() {
        let rejected = |text: &str| {
            service(
                SendEmailError::MessageRejected(MessageRejected::builder().message(text).build()),
                400,
            )
        };
        let cases: Vec<(&str, SdkError<SendEmailError, HttpResponse>, &str)> = vec![
            (
                "TooManyRequests",
                service(
                    SendEmailError::TooManyRequestsException(
                        TooManyRequestsException::builder()
                            .message("Maximum sending rate exceeded.")
                            .build(),
                    ),
                    429,
                ),
                "transient",
            ),
            (
                "LimitExceeded",
                service(
                    SendEmailError::LimitExceededException(
                        LimitExceededException::builder()
                            .message("Daily message quota exceeded.")
                            .build(),
                    ),
                    400,
                ),
                "transient",
            ),
            ("Throttling code", unhandled("Throttling", 400), "transient"),
            (
                "ThrottlingException code",
                unhandled("ThrottlingException", 400),
                "transient",
            ),
            ("500", unhandled("InternalFailure", 500), "transient"),
            ("503 unknown code", unhandled("Whatever", 503), "transient"),
            ("429 unknown code", unhandled("Whatever", 429), "transient"),
            (
                "timeout",
                SdkError::timeout_error("operation timed out after 30s"),
                "transient",
            ),
            (
                "dispatch io",
                SdkError::dispatch_failure(ConnectorError::io("connection refused".into())),
                "transient",
            ),
            (
                "dispatch timeout",
                SdkError::dispatch_failure(ConnectorError::timeout("connect timed out".into())),
                "transient",
            ),
            (
                "dispatch other",
                SdkError::dispatch_failure(ConnectorError::other("h2 protocol error".into(), None)),
                "transient",
            ),
            (
                "no credentials",
                SdkError::dispatch_failure(ConnectorError::other(
                    "failed to load credentials: no providers in chain provided credentials".into(),
                    None,
                )),
                "account",
            ),
            (
                "unreadable 502",
                SdkError::response_error("not JSON", raw(502)),
                "transient",
            ),
            (
                "construction",
                SdkError::construction_failure("missing field"),
                "permanent",
            ),
            (
                "MessageRejected content",
                rejected("Email rejected: contains a virus"),
                "permanent",
            ),
            (
                "BadRequest",
                service(
                    SendEmailError::BadRequestException(
                        BadRequestException::builder()
                            .message("Invalid address")
                            .build(),
                    ),
                    400,
                ),
                "permanent",
            ),
            (
                "NotFound",
                service(
                    SendEmailError::NotFoundException(
                        NotFoundException::builder()
                            .message("Configuration set <x> does not exist.")
                            .build(),
                    ),
                    404,
                ),
                "permanent",
            ),
            (
                "other 4xx",
                unhandled("ValidationException", 400),
                "permanent",
            ),
            (
                "AccountSuspended",
                service(
                    SendEmailError::AccountSuspendedException(
                        AccountSuspendedException::builder()
                            .message("Account suspended")
                            .build(),
                    ),
                    400,
                ),
                "account",
            ),
            (
                "SendingPaused",
                service(
                    SendEmailError::SendingPausedException(
                        SendingPausedException::builder()
                            .message("Sending paused for this account.")
                            .build(),
                    ),
                    400,
                ),
                "account",
            ),
            (
                "MailFromDomainNotVerified",
                service(
                    SendEmailError::MailFromDomainNotVerifiedException(
                        MailFromDomainNotVerifiedException::builder()
                            .message("MAIL FROM domain not verified")
                            .build(),
                    ),
                    400,
                ),
                "account",
            ),
            (
                "sender not verified (SES)",
                rejected(
                    "Email address is not verified. The following identities failed the check in region US-EAST-1: no-reply@example.com",
                ),
                "account",
            ),
            (
                "sender not verified (moto)",
                rejected("Did not have authority to send from email no-reply@example.com"),
                "account",
            ),
            (
                "recipient not verified (sandbox)",
                rejected(
                    "Email address is not verified. The following identities failed the check in region EU-WEST-1: someone@elsewhere.org",
                ),
                "account",
            ),
            (
                "access denied",
                unhandled("AccessDeniedException", 403),
                "account",
            ),
            (
                "bad key",
                unhandled("UnrecognizedClientException", 403),
                "account",
            ),
            (
                "bad signature",
                unhandled("SignatureDoesNotMatch", 403),
                "account",
            ),
        ];
        for (name, error, want) in cases {
            let got = classify(&error, SENDER);
            assert_eq!(class(&got), want, "{name}: {got}");
        }
    }

    #[test]
    fn account_errors_say_which() {
        let sender = classify(
            &service(
                SendEmailError::MessageRejected(
                    MessageRejected::builder()
                        .message("Email address is not verified. The following identities failed the check in region US-EAST-1: No-Reply@Example.com")
                        .build(),
                ),
                400,
            ),
            SENDER,
        );
        assert!(
            sender
                .to_string()
                .contains("sender identity no-reply@example.com is not verified"),
            "{sender}"
        );
        let sandbox = classify(
            &service(
                SendEmailError::MessageRejected(
                    MessageRejected::builder()
                        .message("Email address is not verified. The following identities failed the check in region US-EAST-1: a@b.org")
                        .build(),
                ),
                400,
            ),
            SENDER,
        );
        assert!(sandbox.to_string().contains("sandbox"), "{sandbox}");
        let paused = classify(
            &service(
                SendEmailError::SendingPausedException(SendingPausedException::builder().build()),
                400,
            ),
            SENDER,
        );
        assert!(paused.to_string().contains("paused"), "{paused}");
        let suspended = classify(
            &service(
                SendEmailError::AccountSuspendedException(
                    AccountSuspendedException::builder().build(),
                ),
                400,
            ),
            SENDER,
        );
        assert!(suspended.to_string().contains("suspended"), "{suspended}");
    }

    #[test]
    fn service_error_text_has_code_status_message_and_request_id() {
        let mut response = raw(400);
        response.headers_mut().insert("x-amzn-requestid", "req-123");
        let error = SdkError::service_error(
            SendEmailError::generic(
                ErrorMetadata::builder()
                    .code("ValidationException")
                    .message("bad input")
                    .build(),
            ),
            response,
        );
        let text = classify(&error, SENDER).to_string();
        assert!(text.contains("ValidationException"), "{text}");
        assert!(text.contains("HTTP 400"), "{text}");
        assert!(text.contains("bad input"), "{text}");
        assert!(text.contains("req-123"), "{text}");
    }

    fn message() -> Message {
        Message {
            to: domain::EmailAddress::parse("someone@example.org").unwrap(),
            subject: "s".into(),
            text: "t".into(),
            html: None,
            action_url: None,
        }
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
            .http_client(SesMailer::http_client())
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
            .http_client(SesMailer::http_client())
            .build();
        for (name, config, needle) in [
            ("no credentials", no_credentials, "credentials"),
            ("no region", no_region, "region"),
        ] {
            let mailer = SesMailer::new(
                aws_sdk_sesv2::Client::from_conf(config),
                Sender::parse(SENDER).unwrap(),
                None,
            );
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
            .http_client(SesMailer::http_client())
            .build();
        let mailer = SesMailer::new(
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
}
