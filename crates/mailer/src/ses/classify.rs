//! What a failed `SendEmail` call means for the retry policy; see the crate docs for the table.

use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::RequestId;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::MailError;

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
}
