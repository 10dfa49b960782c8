//! The link in the confirmation email, `/confirm/{token}`.
//!
//! Mail security scanners open links (HEAD and GET) before the reader does, so opening the link
//! changes nothing: `GET` shows the masked address and a "Confirm my account" button, and only
//! the button's `POST` (with the page's CSRF token) confirms. A bad or expired link shows its
//! message on the `GET` already. `CONFIRM_ON_GET=true` restores the tutorial's one-click link
//! for `GET` (a `HEAD` still changes nothing).

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use chrono::{DateTime, Utc};
use domain::EmailAddress;
use store::ConfirmOutcome;

use crate::forms::{ButtonForm, refuse_foreign_post};
use crate::pages::{link_page, redirect_home, see_other};
use crate::{AppError, AppState, Flash};

/// Tokens longer than this are refused before any decoding work (ours are ~100 characters).
const MAX_TOKEN_LEN: usize = 2048;

/// Counts a confirmation's outcome (`confirmations_total{outcome}`) and passes it on.
fn confirmation(flash: Flash) -> Flash {
    let outcome = match flash {
        Flash::Confirmed => "confirmed",
        Flash::AlreadyConfirmed => "already_confirmed",
        _ => "invalid",
    };
    count_confirmation(outcome);
    flash
}

/// Why a confirmation token was refused (the reason is logged, never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadToken {
    /// Signed by us, but older than TOKEN_MAX_AGE (or from the future).
    Expired,
    /// Too long, forged, malformed, or without a valid address.
    Invalid,
}

/// The address a confirmation token signs and when it was signed.
pub(crate) fn check_token(
    state: &AppState,
    token: &str,
) -> Result<(EmailAddress, DateTime<Utc>), BadToken> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(BadToken::Invalid);
    }
    let now = state.clock.now();
    let verified =
        match state
            .tokens
            .check(token, Some(state.config.token_max_age), now.timestamp())
        {
            Ok(verified) => verified,
            Err(error) => {
                tracing::info!(reason = error.code(), "confirmation link refused");
                return Err(if error == domain::TokenError::Expired {
                    BadToken::Expired
                } else {
                    BadToken::Invalid
                });
            }
        };
    let Ok(email) = EmailAddress::parse(&verified.payload) else {
        tracing::warn!("confirmation link with a valid signature but no valid address");
        return Err(BadToken::Invalid);
    };
    let issued_at = i64::try_from(verified.issued_at)
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or_default();
    Ok((email, issued_at))
}

/// The address a link's token signs and when it was signed; `None` for a malformed, forged or
/// expired token (logged with its reason, never the token).
fn verify(
    state: &AppState,
    token: &Result<Path<String>, PathRejection>,
) -> Option<(EmailAddress, DateTime<Utc>)> {
    let Ok(Path(token)) = token else {
        return None;
    };
    check_token(state, token).ok()
}

/// Counts a confirmation's outcome (`confirmations_total{outcome}`: `confirmed`,
/// `already_confirmed` or `invalid`), for the pages and the API.
pub(crate) fn count_confirmation(outcome: &'static str) {
    metrics::counter!("confirmations_total", "outcome" => outcome).increment(1);
}

/// Confirms the account a verified link (or a matching code, sent at `issued_at`) names, and
/// redirects home with the outcome.
pub(crate) async fn confirm_account(
    state: &AppState,
    email: &EmailAddress,
    issued_at: DateTime<Utc>,
) -> Result<Response, AppError> {
    let flash = match state
        .users
        .confirm(email, issued_at, state.clock.now())
        .await?
    {
        ConfirmOutcome::Confirmed => {
            tracing::info!(to = %email.masked(), "account confirmed");
            Flash::Confirmed
        }
        ConfirmOutcome::AlreadyConfirmed => Flash::AlreadyConfirmed,
        ConfirmOutcome::NotFound => {
            tracing::info!(to = %email.masked(), "confirmation link for an address with no account");
            Flash::InvalidLink
        }
        ConfirmOutcome::Stale => {
            tracing::info!(to = %email.masked(), "confirmation link older than the account (address registered again)");
            Flash::InvalidLink
        }
    };
    let flash = confirmation(flash);
    if !matches!(flash, Flash::Confirmed | Flash::AlreadyConfirmed) {
        return Ok(redirect_home(state, flash));
    }
    let allowed = &state.config.allowed_redirect_origins;
    let own = if allowed.is_empty() {
        None
    } else {
        // The account is confirmed whatever happens here: a failed read falls back.
        match state.users.confirm_redirect(email).await {
            Ok(url) => url.filter(|url| crate::redirect::still_allowed(allowed, url)),
            Err(error) => {
                tracing::warn!(%error, "could not read the confirmation's redirect: using the default");
                None
            }
        }
    };
    if let Some(url) = own.as_ref().or(state.config.confirmed_redirect.as_ref()) {
        // Back to the application (its own page, or CONFIRMED_REDIRECT_URL).
        return Ok(see_other(url));
    }
    Ok(redirect_home(state, flash))
}

/// `GET /confirm/{token}` (and `HEAD`): the page with the button; a bad link redirects home
/// with its message. With `CONFIRM_ON_GET`, a `GET` confirms at once.
pub async fn show(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    token: Result<Path<String>, PathRejection>,
) -> Result<Response, AppError> {
    let Some((email, issued_at)) = verify(&state, &token) else {
        let flash = Flash::InvalidLink;
        return Ok(redirect_home(
            &state,
            if state.config.confirm_on_get {
                confirmation(flash)
            } else {
                flash
            },
        ));
    };
    if state.config.confirm_on_get && method == Method::GET {
        return confirm_account(&state, &email, issued_at).await;
    }
    let token = token.map(|Path(token)| token).unwrap_or_default();
    link_page(&state, &headers, "web/confirm.html", &email, &token)
}

/// `POST /confirm/{token}`: the button. A form from elsewhere gets 403; a bad link redirects
/// home with its message; otherwise the account is confirmed.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    token: Result<Path<String>, PathRejection>,
    form: Result<Form<ButtonForm>, FormRejection>,
) -> Result<Response, AppError> {
    let csrf_token = form.map(|Form(form)| form.csrf_token).unwrap_or_default();
    if let Some(refused) = refuse_foreign_post(&state, &headers, &csrf_token, "confirm")? {
        return Ok(refused);
    }
    match verify(&state, &token) {
        Some((email, issued_at)) => confirm_account(&state, &email, issued_at).await,
        None => Ok(redirect_home(&state, confirmation(Flash::InvalidLink))),
    }
}
