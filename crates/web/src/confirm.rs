//! `GET /confirm/{token}`: the link in the confirmation email.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use domain::EmailAddress;
use store::ConfirmOutcome;

use crate::pages::redirect_home;
use crate::{AppError, AppState, Flash};

/// Tokens longer than this are refused before any decoding work (ours are ~100 characters).
const MAX_TOKEN_LEN: usize = 2048;

/// Counts a confirmation link's outcome (`confirmations_total{outcome}`) and passes it on.
fn confirmation(flash: Flash) -> Flash {
    let outcome = match flash {
        Flash::Confirmed => "confirmed",
        Flash::AlreadyConfirmed => "already_confirmed",
        _ => "invalid",
    };
    metrics::counter!("confirmations_total", "outcome" => outcome).increment(1);
    flash
}

/// `GET /confirm/{token}`: confirm the account, then redirect home with the outcome.
pub async fn confirm(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
) -> Result<Response, AppError> {
    let Ok(Path(token)) = token else {
        return Ok(redirect_home(&state, confirmation(Flash::InvalidLink)));
    };
    if token.len() > MAX_TOKEN_LEN {
        return Ok(redirect_home(&state, confirmation(Flash::InvalidLink)));
    }
    let now = state.clock.now();
    let verified =
        match state
            .tokens
            .check(&token, Some(state.config.token_max_age), now.timestamp())
        {
            Ok(verified) => verified,
            Err(error) => {
                tracing::info!(reason = error.code(), "confirmation link refused");
                return Ok(redirect_home(&state, confirmation(Flash::InvalidLink)));
            }
        };
    let Ok(email) = EmailAddress::parse(&verified.payload) else {
        tracing::warn!("confirmation link with a valid signature but no valid address");
        return Ok(redirect_home(&state, confirmation(Flash::InvalidLink)));
    };
    let issued_at = i64::try_from(verified.issued_at)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .unwrap_or_default();
    let flash = match state.users.confirm(&email, issued_at, now).await? {
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
    Ok(redirect_home(&state, confirmation(flash)))
}
