//! "Forgot your password?": `GET`/`POST /forgot` owes a password-reset email (the same answer
//! for every address), and `GET`/`POST /reset/{token}` sets the new password. Opening the link
//! changes nothing (a link scanner may open it); only the form does. The token is bound to the
//! password it was made for, so it works once and dies with any other change.

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use domain::{EmailAddress, Password, PasswordReset, RequestId};
use serde_json::json;
use store::ResetRequest;

use super::{AccountForm, accept_form, accounts, hash_password, page, password_error};
use crate::{AppError, AppState, i18n};

/// Longest token looked at (a real one is about 150 characters).
const MAX_TOKEN_LEN: usize = 512;

/// `GET /forgot`.
pub async fn forgot_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    forgot_form(&state, &headers, StatusCode::OK, "", None, false)
}

fn forgot_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
    sent: bool,
) -> Result<Response, AppError> {
    let view = json!({
        "email": email,
        "error": error.map(|id| i18n::text(state, id)),
        "sent": sent,
    });
    page(state, headers, status, "web/forgot.html", view)
}

/// `POST /forgot`: owes a reset email to a confirmed account (after the answer, so every
/// address is answered alike and as fast).
pub async fn forgot(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, AppError> {
    let form = match accept_form(&state, &headers, form, "forgot")? {
        Ok(form) => form,
        Err(response) => return Ok(response),
    };
    let email = match EmailAddress::parse(&form.email) {
        Ok(email) => email,
        Err(error) => {
            return forgot_form(
                &state,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::forms::echoable(&form.email),
                Some(i18n::email_error(&error)),
                false,
            );
        }
    };
    let request_id = request_id.map(|Extension(id)| id);
    let later = state.clone();
    state.background.spawn(async move {
        if let Err(error) = owe_reset(&later, &email, request_id).await {
            tracing::warn!(%error, "password reset request failed: nothing sent");
        }
    });
    forgot_form(&state, &headers, StatusCode::OK, "", None, true)
}

/// Owes and publishes a reset email to `email`'s account, logging (masked) and counting what
/// happened.
async fn owe_reset(
    state: &AppState,
    email: &EmailAddress,
    request_id: Option<RequestId>,
) -> Result<(), AppError> {
    let outcome = accounts(state)?
        .store
        .owe_password_reset(email, state.clock.now())
        .await?;
    let label = match outcome {
        ResetRequest::Queued(_) => "queued",
        ResetRequest::NotRegistered => "not_registered",
        ResetRequest::NotConfirmed => "not_confirmed",
        ResetRequest::Pending => "pending",
        ResetRequest::Limited => "limited",
        ResetRequest::Suppressed => "suppressed",
    };
    metrics::counter!("password_resets_total", "outcome" => label).increment(1);
    tracing::info!(to = %email.masked(), outcome = label, "password reset requested");
    if let ResetRequest::Queued(message) = outcome {
        crate::forms::publish_job(state, message, request_id).await;
    }
    Ok(())
}

/// The reset a token asks for, if it is genuine and young enough.
fn check_token(state: &AppState, token: &str) -> Option<PasswordReset> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    state
        .tokens
        .reset_tokens()
        .check(token, state.clock.unix_seconds())
        .ok()
}

fn link_invalid(state: &AppState) -> Result<Response, AppError> {
    crate::pages::message_page(
        state,
        StatusCode::BAD_REQUEST,
        "link-invalid-title",
        "reset-link-invalid",
    )
}

fn reset_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    token: &str,
    reset: &PasswordReset,
    error: Option<&str>,
) -> Result<Response, AppError> {
    let address = EmailAddress::parse(&reset.email)
        .map(|e| e.masked())
        .unwrap_or_default();
    let view = json!({
        "token": token,
        "address": address,
        "error": error.map(|id| i18n::text(state, id)),
    });
    page(state, headers, status, "web/reset.html", view)
}

/// `GET /reset/{token}`: the form for the new password; nothing changes.
pub async fn reset_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    match check_token(&state, &token) {
        Some(reset) => reset_form(&state, &headers, StatusCode::OK, &token, &reset, None),
        None => link_invalid(&state),
    }
}

/// `POST /reset/{token}`: sets the new password if the token is still bound to the account's
/// password; every session ends and the notice is owed. A used or outdated link is refused.
pub async fn reset(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, AppError> {
    let form = match accept_form(&state, &headers, form, "reset")? {
        Ok(form) => form,
        Err(response) => return Ok(response),
    };
    let Some(reset) = check_token(&state, &token) else {
        return link_invalid(&state);
    };
    let password = match Password::new(&form.password) {
        Ok(password) => password,
        Err(error) => {
            return reset_form(
                &state,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                &token,
                &reset,
                Some(password_error(error)),
            );
        }
    };
    let accounts = accounts(&state)?;
    let Ok(email) = EmailAddress::parse(&reset.email) else {
        return link_invalid(&state);
    };
    let Some(account) = accounts.store.account(&email).await? else {
        return link_invalid(&state);
    };
    let hash = hash_password(accounts, password).await?;
    let changed = accounts
        .store
        .change_password(
            account.user.id,
            Some(&reset.binding),
            &hash,
            state.clock.now(),
        )
        .await?;
    if changed.is_none() {
        tracing::info!(user_id = %account.user.id, "reset link used again or outdated: refused");
        metrics::counter!("password_resets_total", "outcome" => "link_spent").increment(1);
        return link_invalid(&state);
    }
    super::password_changed(&state, account.user.id, changed);
    crate::pages::message_page(&state, StatusCode::OK, "reset-done-title", "reset-done")
}
