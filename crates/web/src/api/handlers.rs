//! The API's endpoints. Each does what its form or link does (the same store calls, limits,
//! logs and metrics) and answers in JSON; unlike the pages, a key holder is told the outcome.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use domain::{EmailAddress, MessageKind, MessageStatus, RequestId, User};
use serde::{Deserialize, Serialize};
use store::{ConfirmOutcome, MessageQuery, Registration, Resend};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ErrorCode};
use crate::AppState;
use crate::code::{CodeCheck, check_code};
use crate::confirm::{BadToken, check_token, count_confirmation};
use crate::forms::{publish_job, register_address, resend_address};
use crate::redirect::RedirectError;

/// `POST /api/v1/registrations` and `POST /api/v1/resend`: an address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    /// The address to register (or to send a fresh email to), as the visitor typed it.
    #[schema(example = "visitor@example.com", max_length = 254)]
    pub email: String,
}

/// `POST /api/v1/registrations`: an address, and optionally where its confirmation sends the
/// visitor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
    /// The address to register, as the visitor typed it.
    #[schema(example = "visitor@example.com", max_length = 254)]
    pub email: String,
    /// Where confirming this account sends the visitor (`email_confirmed=1` is added to its
    /// query): an absolute http(s) URL on an origin of `ALLOWED_REDIRECT_ORIGINS`, without
    /// credentials or fragment. Replaces an earlier one. Without it: `CONFIRMED_REDIRECT_URL`,
    /// else the home page.
    #[schema(example = "https://app.example.com/welcome", max_length = 2000)]
    pub redirect: Option<String>,
    /// The language of the account's emails, now and later (resends, codes, reminders): `en` or
    /// `zh-CN` (`zh`, `zh-Hans` and `en-*` are accepted too). Without it, the request's
    /// `Accept-Language`, else English. Ignored for an address already registered: its
    /// language stays.
    #[schema(example = "zh-CN", max_length = 35)]
    pub lang: Option<String>,
}

/// `POST /api/v1/confirmations`: the token of a confirmation link, or the six-digit code of
/// the email with the account's address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ConfirmationRequest {
    Token(TokenConfirmation),
    Code(CodeConfirmation),
}

/// The token of a confirmation link (the last path segment of `/confirm/{token}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenConfirmation {
    #[schema(min_length = 1, max_length = 2048)]
    pub token: String,
}

/// The six-digit code printed beside the link, and the address it was sent to. Five wrong
/// codes for an account's email stop that email's code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeConfirmation {
    #[schema(example = "visitor@example.com", max_length = 254)]
    pub email: String,
    #[schema(example = "042917", pattern = "^[0-9]{6}$")]
    pub code: String,
}

/// Where an account's confirmation email stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailState {
    /// No confirmation email was ever owed (limits or suppression at registration).
    None,
    Queued,
    Sending,
    /// A send failed and another attempt is scheduled.
    Retrying,
    /// The provider accepted it.
    Sent,
    /// Every attempt failed, or the provider refused it for good.
    Dead,
    /// Not sent: the mailbox was suppressed.
    Cancelled,
    /// Sent, then reported by the provider as a permanent bounce.
    Bounced,
    /// Sent, then reported as spam by its recipient.
    Complained,
}

impl From<MessageStatus> for EmailState {
    fn from(status: MessageStatus) -> Self {
        match status {
            MessageStatus::Queued => Self::Queued,
            MessageStatus::Sending => Self::Sending,
            MessageStatus::Retrying => Self::Retrying,
            MessageStatus::Sent => Self::Sent,
            MessageStatus::Dead => Self::Dead,
            MessageStatus::Cancelled => Self::Cancelled,
            MessageStatus::Bounced => Self::Bounced,
            MessageStatus::Complained => Self::Complained,
        }
    }
}

/// An account, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    /// The address as stored (its domain in lower case).
    pub email: String,
    pub confirmed: bool,
    /// When the account was registered (RFC 3339, UTC).
    pub registered_at: String,
    /// When it was confirmed (RFC 3339, UTC); `null` while unconfirmed.
    pub confirmed_at: Option<String>,
    /// The state of the newest confirmation email.
    pub email_state: EmailState,
    /// Whether the address's mailbox is on the suppression list (nothing is sent to it).
    pub suppressed: bool,
}

/// `202` from `POST /api/v1/registrations`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegistrationAccepted {
    /// Always `pending`: the account waits for its confirmation.
    #[schema(example = "pending")]
    pub status: String,
    /// The address as stored.
    pub email: String,
    /// `true` for a new account; `false` when the address was registered and unconfirmed
    /// already (a fresh email is owed within the limits, as `POST /api/v1/resend` would).
    pub created: bool,
    /// Whether a confirmation email is owed by this call (committed before this answer).
    pub email_owed: bool,
}

/// `202` from `POST /api/v1/resend`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResendAccepted {
    /// `queued`: a fresh email is owed (committed before this answer); `pending`: an earlier
    /// one is still on its way, nothing new.
    #[schema(example = "queued")]
    pub status: String,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn invalid_email(error: &domain::EmailError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidEmail,
        error.to_string(),
    )
}

/// The stored form of a requested redirect, or 422 `invalid_redirect`.
fn redirect_target(state: &AppState, redirect: &str) -> Result<String, ApiError> {
    crate::redirect::target(&state.config.allowed_redirect_origins, redirect).map_err(|error| {
        let message = match error {
            RedirectError::Malformed => {
                "`redirect` must be an absolute http(s) URL without credentials or fragment, at most 2000 characters."
            }
            RedirectError::OriginNotAllowed => {
                "`redirect` is not on an origin of ALLOWED_REDIRECT_ORIGINS."
            }
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidRedirect,
            message,
        )
    })
}

fn already_confirmed() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::AlreadyConfirmed,
        "This account is already confirmed.",
    )
}

/// The account of `user`, with its newest confirmation email's state and its mailbox's
/// suppression.
async fn account_of(state: &AppState, user: User) -> Result<Account, ApiError> {
    let newest = state
        .messages
        .list(MessageQuery {
            recipient: Some(user.email.clone()),
            kind: Some(MessageKind::Confirm),
            before: None,
            limit: 1,
        })
        .await?;
    let suppressed = match &state.suppressions {
        Some(suppressions) => {
            suppressions
                .is_suppressed(&user.email.mailbox_key())
                .await?
        }
        None => false,
    };
    Ok(Account {
        email: user.email.as_str().to_owned(),
        confirmed: user.confirmed,
        registered_at: rfc3339(user.registered_on),
        confirmed_at: user.confirmed_on.map(rfc3339),
        email_state: newest
            .first()
            .map_or(EmailState::None, |record| record.message.status.into()),
        suppressed,
    })
}

/// Register an address.
///
/// Stores the account and owes its confirmation email in one transaction, committed before the
/// answer, within the per-mailbox limits (as the registration form). An address that is
/// registered and unconfirmed already gets a fresh email within the limits (`created: false`);
/// a confirmed one is a 409.
#[utoipa::path(
    post,
    path = "/api/v1/registrations",
    tag = "accounts",
    request_body = RegistrationRequest,
    responses(
        (status = 202, description = "Registered; the confirmation email is owed (or limited)", body = RegistrationAccepted),
        (status = 400, description = "`invalid_json`", body = ApiError),
        (status = 401, description = "`unauthorized`", body = ApiError),
        (status = 409, description = "`already_confirmed`", body = ApiError),
        (status = 413, description = "`payload_too_large`", body = ApiError),
        (status = 415, description = "`unsupported_media_type`", body = ApiError),
        (status = 422, description = "`invalid_request`, `invalid_email`, `invalid_redirect` or `invalid_lang`", body = ApiError),
        (status = 429, description = "`too_many_requests` (wrong keys)", body = ApiError),
        (status = 503, description = "`unavailable`: nothing was saved", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn register(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    ApiJson(body): ApiJson<RegistrationRequest>,
) -> Result<Response, ApiError> {
    let email = EmailAddress::parse(&body.email).map_err(|e| invalid_email(&e))?;
    let redirect = body
        .redirect
        .as_deref()
        .map(|redirect| redirect_target(&state, redirect))
        .transpose()?;
    let locale = match body.lang.as_deref() {
        Some(lang) => domain::Locale::parse(lang).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidLang,
                e.to_string(),
            )
        })?,
        None => crate::i18n::current(),
    };
    let request_id = request_id.map(|Extension(id)| id);
    let (created, email_owed) = match register_address(&state, &email, locale, request_id).await? {
        Registration::Created { .. } => (true, true),
        Registration::CreatedWithoutEmail { .. } => (true, false),
        Registration::AlreadyRegistered => match resend_address(&state, &email).await? {
            Resend::AlreadyConfirmed => return Err(already_confirmed()),
            Resend::Queued(message) => {
                publish_job(&state, message, request_id).await;
                (false, true)
            }
            _ => (false, false),
        },
    };
    if let Some(url) = redirect {
        // After the registration's commit: a failure here is a 503, and the application's
        // retry finds the account registered and records the redirect then.
        state.users.set_confirm_redirect(&email, &url).await?;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(RegistrationAccepted {
            status: "pending".to_owned(),
            email: email.as_str().to_owned(),
            created,
            email_owed,
        }),
    )
        .into_response())
}

/// Ask for a fresh confirmation email.
///
/// For an unconfirmed account, within the per-mailbox limits (`RESEND_COOLDOWN`,
/// `RESEND_DAILY_CAP`) and unless the mailbox is suppressed.
#[utoipa::path(
    post,
    path = "/api/v1/resend",
    tag = "accounts",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "A fresh email is owed (`queued`), or one is on its way (`pending`)", body = ResendAccepted),
        (status = 400, description = "`invalid_json`", body = ApiError),
        (status = 401, description = "`unauthorized`", body = ApiError),
        (status = 404, description = "`not_found`: no account with this address", body = ApiError),
        (status = 409, description = "`already_confirmed` or `suppressed`", body = ApiError),
        (status = 413, description = "`payload_too_large`", body = ApiError),
        (status = 415, description = "`unsupported_media_type`", body = ApiError),
        (status = 422, description = "`invalid_request` or `invalid_email`", body = ApiError),
        (status = 429, description = "`cooling_down`, `daily_cap` or `too_many_requests`", body = ApiError),
        (status = 503, description = "`unavailable`: nothing was saved", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn resend(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    ApiJson(body): ApiJson<EmailRequest>,
) -> Result<Response, ApiError> {
    let email = EmailAddress::parse(&body.email).map_err(|e| invalid_email(&e))?;
    let status = match resend_address(&state, &email).await? {
        Resend::Queued(message) => {
            publish_job(&state, message, request_id.map(|Extension(id)| id)).await;
            "queued"
        }
        Resend::Pending => "pending",
        Resend::NotRegistered => {
            return Err(ApiError::not_found("No account has this address."));
        }
        Resend::AlreadyConfirmed => return Err(already_confirmed()),
        Resend::Suppressed => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Suppressed,
                "This mailbox is on the suppression list: nothing is sent to it.",
            ));
        }
        Resend::CoolingDown => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::CoolingDown,
                "The last email to this mailbox is too recent; try again later.",
            ));
        }
        Resend::DailyCapReached => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::DailyCap,
                "This mailbox has had its emails for the day; try again tomorrow.",
            ));
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(ResendAccepted {
            status: status.to_owned(),
        }),
    )
        .into_response())
}

/// Confirm an account with the token of its link, or with its email's code.
///
/// What the confirmation page's button (or the code page) does, for an application that shows
/// its own page: the token is checked (signature, `TOKEN_MAX_AGE`), or the code against the
/// account's emails sent within `TOKEN_MAX_AGE`, and the account confirmed. A wrong code, an
/// address without an account and a code spent by five wrong tries get the same 422.
#[utoipa::path(
    post,
    path = "/api/v1/confirmations",
    tag = "accounts",
    request_body = ConfirmationRequest,
    responses(
        (status = 200, description = "Confirmed; the account", body = Account),
        (status = 400, description = "`invalid_json`", body = ApiError),
        (status = 401, description = "`unauthorized`", body = ApiError),
        (status = 404, description = "`not_found`: the token's account no longer exists", body = ApiError),
        (status = 409, description = "`already_confirmed`", body = ApiError),
        (status = 410, description = "`expired`: ask for a fresh email", body = ApiError),
        (status = 413, description = "`payload_too_large`", body = ApiError),
        (status = 415, description = "`unsupported_media_type`", body = ApiError),
        (status = 422, description = "`invalid` token or code, or `invalid_request`", body = ApiError),
        (status = 429, description = "`too_many_requests` (wrong keys)", body = ApiError),
        (status = 503, description = "`unavailable`: nothing was saved", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn confirm(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ConfirmationRequest>,
) -> Result<Response, ApiError> {
    let (email, issued_at) = match body {
        ConfirmationRequest::Token(body) => match check_token(&state, &body.token) {
            Ok(checked) => checked,
            Err(bad) => {
                count_confirmation("invalid");
                return Err(match bad {
                    BadToken::Expired => ApiError::new(
                        StatusCode::GONE,
                        ErrorCode::Expired,
                        "The link has expired; ask for a fresh email.",
                    ),
                    BadToken::Invalid => invalid_token(),
                });
            }
        },
        ConfirmationRequest::Code(body) => {
            let email = EmailAddress::parse(&body.email).map_err(|e| invalid_email(&e))?;
            // Exactly six digits here (the page also takes spaces and dashes).
            let Some(code) = domain::normalize_code(&body.code)
                .ok()
                .filter(|code| *code == body.code)
            else {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::InvalidRequest,
                    "`code` is the six digits of the email.",
                ));
            };
            match check_code(&state, &email, &code).await? {
                CodeCheck::Matched { sent_at } => (email, sent_at),
                CodeCheck::Wrong => {
                    count_confirmation("invalid");
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        ErrorCode::Invalid,
                        "The code does not work (wrong, spent by five wrong tries, expired, or no such account).",
                    ));
                }
            }
        }
    };
    let outcome = state
        .users
        .confirm(&email, issued_at, state.clock.now())
        .await?;
    match outcome {
        ConfirmOutcome::Confirmed => {
            count_confirmation("confirmed");
            tracing::info!(to = %email.masked(), "account confirmed (API)");
        }
        ConfirmOutcome::AlreadyConfirmed => {
            count_confirmation("already_confirmed");
            return Err(already_confirmed());
        }
        ConfirmOutcome::NotFound => {
            count_confirmation("invalid");
            return Err(ApiError::not_found("No account has this token's address."));
        }
        ConfirmOutcome::Stale => {
            count_confirmation("invalid");
            return Err(invalid_token());
        }
    }
    let user = state
        .users
        .find_by_email(&email)
        .await?
        .ok_or_else(|| ApiError::not_found("No account has this token's address."))?;
    Ok(Json(account_of(&state, user).await?).into_response())
}

fn invalid_token() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Invalid,
        "The token is not valid.",
    )
}

/// Read an account's state.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{email}",
    tag = "accounts",
    params(("email" = String, Path, description = "The address (percent-encoded)", example = "visitor@example.com")),
    responses(
        (status = 200, description = "The account", body = Account),
        (status = 401, description = "`unauthorized`", body = ApiError),
        (status = 404, description = "`not_found`: no account with this address", body = ApiError),
        (status = 422, description = "`invalid_email`", body = ApiError),
        (status = 429, description = "`too_many_requests` (wrong keys)", body = ApiError),
        (status = 503, description = "`unavailable`", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn account(
    State(state): State<AppState>,
    email: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let email = email.map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidEmail,
            "The path does not hold a readable address.",
        )
    })?;
    let email = EmailAddress::parse(&email.0).map_err(|e| invalid_email(&e))?;
    let user = state
        .users
        .find_by_email(&email)
        .await?
        .ok_or_else(|| ApiError::not_found("No account has this address."))?;
    Ok(Json(account_of(&state, user).await?).into_response())
}
