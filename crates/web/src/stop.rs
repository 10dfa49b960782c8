//! The second link in the confirmation email, `/stop/{token}`: "I did not sign up: stop emails
//! to this address".
//!
//! The same scanner rule as the confirmation link: `GET` (and `HEAD`) only show the masked
//! address and a button; the button's `POST` (with the page's CSRF token) puts the address's
//! mailbox on the suppression list. From then on nothing is sent to it; an operator can lift it.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use domain::{EmailAddress, StopTokens, SuppressionSource};

use crate::forms::{ButtonForm, refuse_foreign_post};
use crate::pages::{link_page, message_page, not_found};
use crate::{AppError, AppState};

/// Tokens longer than this are refused before any decoding work.
const MAX_TOKEN_LEN: usize = 2048;

fn counted(outcome: &'static str) {
    metrics::counter!("stop_links_total", "outcome" => outcome).increment(1);
}

/// The address a stop link's token signs; `None` for a malformed, forged or expired one.
fn verify(state: &AppState, token: &str) -> Option<EmailAddress> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let tokens: StopTokens = state.tokens.stop_tokens();
    match tokens.check(token, state.clock.now().timestamp()) {
        Ok(verified) => EmailAddress::parse(&verified.payload).ok(),
        Err(error) => {
            tracing::info!(reason = error.code(), "stop link refused");
            None
        }
    }
}

fn invalid(state: &AppState) -> Result<Response, AppError> {
    message_page(
        state,
        StatusCode::BAD_REQUEST,
        "link-invalid-title",
        "stop-link-invalid",
    )
}

/// `GET /stop/{token}` (and `HEAD`): the page with the button.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    token: Result<Path<String>, PathRejection>,
) -> Result<Response, AppError> {
    if state.suppressions.is_none() {
        return not_found(State(state)).await;
    }
    let Ok(Path(token)) = token else {
        return invalid(&state);
    };
    let Some(email) = verify(&state, &token) else {
        return invalid(&state);
    };
    link_page(&state, &headers, "web/stop.html", &email, &token)
}

/// `POST /stop/{token}`: the button. The mailbox goes on the suppression list (idempotent).
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    token: Result<Path<String>, PathRejection>,
    form: Result<Form<ButtonForm>, FormRejection>,
) -> Result<Response, AppError> {
    let Some(store) = state.suppressions.clone() else {
        return not_found(State(state)).await;
    };
    let csrf_token = form.map(|Form(form)| form.csrf_token).unwrap_or_default();
    if let Some(refused) = refuse_foreign_post(&state, &headers, &csrf_token, "stop")? {
        return Ok(refused);
    }
    let Some(email) = token.ok().and_then(|Path(token)| verify(&state, &token)) else {
        counted("invalid");
        return invalid(&state);
    };
    let added = store
        .suppress(
            &email.mailbox_key(),
            SuppressionSource::StopLink,
            state.clock.now(),
        )
        .await?;
    counted(if added { "stopped" } else { "already" });
    tracing::info!(to = %email.masked(), new = added, "mailbox suppressed through the stop link");
    message_page(&state, StatusCode::OK, "stop-done-title", "stop-done")
}
