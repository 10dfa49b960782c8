//! The JSON API for applications' servers, under `/api/v1`: register an address, ask for a
//! fresh email, confirm with a token, read an account's state. Mounted only when `API_KEYS` is
//! set (otherwise every `/api/` path is the ordinary 404).
//!
//! Every call but `GET /api/v1/openapi.json` needs `Authorization: Bearer <key>` with one of the
//! keys; wrong credentials count against the client IP's credential throttle, as the dashboard's
//! do. No cookies, no CSRF token: the API is for servers, not browsers (a browser cannot send
//! the key without the page holding it). The per-IP form limits do not apply; the per-mailbox
//! limits (cooldown, daily cap, suppressions) do, exactly as for the forms.
//!
//! Every answer is JSON; errors are `{"error": code, "message": text}` with the fitting 4xx (or
//! 503 while the database is unreachable). Bodies that are not JSON, a wrong content type or a
//! body over [`crate::BODY_LIMIT`] are 4xx, never 5xx. The OpenAPI 3.1 document is generated
//! from these handlers and types (`utoipa`), in `doc`.
//!
//! One concern a file: access, errors and the JSON body here; the endpoints in `handlers`;
//! the OpenAPI document in `doc`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::headers::authorization::Bearer;
use axum_extra::headers::{Authorization, HeaderMapExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::{AppError, AppState};

mod doc;
mod handlers;

pub use doc::openapi_json;

/// Where the API is mounted.
pub const PREFIX: &str = "/api/v1";

/// What went wrong, for programs: the `error` of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No `Authorization: Bearer` header with a valid key (401).
    Unauthorized,
    /// Too many wrong keys from this client (429, with `Retry-After`).
    TooManyRequests,
    /// No such route, or no account with this address (404).
    NotFound,
    /// The route exists, but not for this method (405).
    MethodNotAllowed,
    /// The body is not `application/json` (415).
    UnsupportedMediaType,
    /// The body is not valid JSON (400).
    InvalidJson,
    /// The JSON does not have the documented fields and types (422).
    InvalidRequest,
    /// The body is larger than the limit (413).
    PayloadTooLarge,
    /// The address is not a valid email address (422).
    InvalidEmail,
    /// The `redirect` is not an absolute http(s) URL on an allowed origin (422).
    InvalidRedirect,
    /// The `lang` is not a language the service speaks (`en`, `zh-CN`) (422).
    InvalidLang,
    /// The token is forged, malformed, or for an account that no longer exists as it was (422).
    Invalid,
    /// The token is older than `TOKEN_MAX_AGE` (410).
    Expired,
    /// The account is already confirmed (409).
    AlreadyConfirmed,
    /// No new email: the last one to this mailbox is younger than `RESEND_COOLDOWN` (429).
    CoolingDown,
    /// No new email: this mailbox reached `RESEND_DAILY_CAP` (429).
    DailyCap,
    /// No email: the mailbox is on the suppression list (409).
    Suppressed,
    /// The database cannot be reached; nothing was saved (503, with `Retry-After`).
    Unavailable,
    /// Something failed on our side; nothing is known to be saved (500).
    Internal,
}

/// An error answer: `{"error": code, "message": text}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiError {
    pub error: ErrorCode,
    /// For people: what happened and what to do.
    pub message: String,
    #[serde(skip)]
    status: StatusCode,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
            status,
            retry_after: None,
        }
    }

    fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub(crate) fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(&self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"api\""),
            );
        }
        response
    }
}

impl From<store::StoreError> for ApiError {
    fn from(error: store::StoreError) -> Self {
        AppError::from(error).into()
    }
}

impl From<AppError> for ApiError {
    /// Store failures: 503 while the database is unreachable or saturated (nothing was saved),
    /// 500 otherwise; the details go to the log only.
    fn from(error: AppError) -> Self {
        if let AppError::Store(store) = &error
            && (store.is_unavailable() || store.is_busy())
        {
            tracing::warn!(%error, "database unavailable: API answers 503");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "The database cannot be reached; nothing was saved. Try again shortly.",
            )
            .retry_after(5);
        }
        tracing::error!(%error, "API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "Something went wrong on our side.",
        )
    }
}

/// A JSON body whose rejections are API errors: a missing or wrong content type is 415, bad
/// JSON 400, JSON without the documented fields 422, a body over the limit 413.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let (code, message) = match rejection {
        JsonRejection::MissingJsonContentType(_) => (
            ErrorCode::UnsupportedMediaType,
            "Send the body as JSON with `Content-Type: application/json`.".to_owned(),
        ),
        JsonRejection::JsonSyntaxError(_) => (
            ErrorCode::InvalidJson,
            "The body is not valid JSON.".to_owned(),
        ),
        JsonRejection::JsonDataError(error) => {
            // serde's text names the field and the type expected; cut, as it may quote input.
            let detail: String = error.body_text().chars().take(200).collect();
            (ErrorCode::InvalidRequest, detail)
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            format!("The body is larger than {} bytes.", crate::BODY_LIMIT),
        ),
        _ => (
            ErrorCode::InvalidJson,
            "The body could not be read.".to_owned(),
        ),
    };
    let status = match code {
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::InvalidRequest => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, code, message)
}

/// The API's routes (relative to [`PREFIX`]): the document is public, the rest needs a key.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let protected = Router::new()
        .route("/registrations", post(handlers::register))
        .route("/resend", post(handlers::resend))
        .route("/confirmations", post(handlers::confirm))
        .route("/accounts/{email}", get(handlers::account))
        .route_layer(axum::middleware::from_fn_with_state(state, require_key));
    Router::new()
        .route("/openapi.json", get(doc::serve))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::not_found("There is no such API route.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "This route does not take this method.",
    )
}

/// Admits a request whose `Authorization: Bearer` carries one of the keys. A request without
/// `Authorization` is a 401; a wrong key counts against the client's credential throttle: past
/// it, every request with a key gets 429 until it cools down.
async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = crate::limits::request_ip(&state, &request);
    let throttled = |wait: std::time::Duration| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyRequests,
            "Too many requests with a wrong key from this client; wait and try again.",
        )
        .retry_after(wait.as_secs().max(1))
        .into_response()
    };
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "Send one of the API keys as `Authorization: Bearer <key>`.",
        )
        .into_response()
    };
    if !request.headers().contains_key(header::AUTHORIZATION) {
        // No key at all guesses nothing: 401, not counted against the throttle.
        metrics::counter!("api_unauthorized_total").increment(1);
        return unauthorized();
    }
    if let Some(wait) = ip.and_then(|ip| state.credential_throttle.blocked(ip)) {
        tracing::info!("API request refused: too many wrong keys from this client");
        return throttled(wait);
    }
    let admitted = state.config.api_keys.as_ref().is_some_and(|keys| {
        request
            .headers()
            .typed_get::<Authorization<Bearer>>()
            .is_some_and(|Authorization(bearer)| keys.matches(bearer.token().trim().as_bytes()))
    });
    if admitted {
        return next.run(request).await;
    }
    tracing::info!("API request without a valid key refused");
    metrics::counter!("api_unauthorized_total").increment(1);
    if let Some(wait) = ip.and_then(|ip| state.credential_throttle.failed(ip)) {
        return throttled(wait);
    }
    unauthorized()
}
