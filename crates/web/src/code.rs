//! `GET /code` and `POST /code`: confirming an account with the six-digit code printed in its
//! confirmation email, for people who read their mail on another device than the one they
//! registered on.
//!
//! The registration sets a signed cookie naming the address ([`pending_cookie`]), so on the
//! same browser only the code is asked for; on any other, the address is typed with it. A code
//! is checked against every confirmation email of the account still within `TOKEN_MAX_AGE` of
//! being sent ([`check_code`]); a wrong one counts against all of them, and a code stops working
//! after [`domain::ConfirmationCodes::MAX_FAILURES`] wrong tries. The link and the code are
//! independent: opening, scanning or using the link does not spend the code, nor the other way
//! round. One answer covers a wrong code, an unknown address and a spent code, so the form
//! tells nobody which addresses have accounts.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use chrono::{DateTime, TimeDelta, Utc};
use domain::{EmailAddress, MAX_ADDRESS_LEN};
use serde::{Deserialize, Serialize};

use crate::confirm::confirm_account;
use crate::forms::refuse_foreign_post;
use crate::i18n;
use crate::pages::{csrf_token_for, html};
use crate::{AppError, AppState};

/// The pending-address cookie over http; over https it is [`PENDING_COOKIE_HTTPS`].
pub const PENDING_COOKIE: &str = "pending";
/// The pending-address cookie over https (`Secure`, `Path=/`, no `Domain`).
pub const PENDING_COOKIE_HTTPS: &str = "__Host-pending";

/// The code form: the address (optional when the pending cookie names it), the code, and the
/// CSRF token. Missing fields are empty.
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf_token: String,
}

#[derive(Debug, Default, Serialize)]
struct CodeView {
    csrf_token: String,
    /// The masked address of the pending cookie: only the code is asked for.
    pending: Option<String>,
    email: String,
    email_error: Option<String>,
    code_error: Option<String>,
}

/// What a code is worth for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeCheck {
    /// It is the code of one of the account's live emails, sent then.
    Matched { sent_at: DateTime<Utc> },
    /// It is not (or the address has no live code): counted against the live ones.
    Wrong,
}

/// Checks `code` (normalized) against the live codes of `email`'s account; a wrong one is
/// counted against every one of them. Every candidate is compared, whichever matches.
pub(crate) async fn check_code(
    state: &AppState,
    email: &EmailAddress,
    code: &str,
) -> Result<CodeCheck, AppError> {
    let now = state.clock.now();
    let max_age = i64::try_from(state.config.token_max_age).unwrap_or(i64::MAX);
    let since = now - TimeDelta::try_seconds(max_age).unwrap_or(TimeDelta::MAX);
    let candidates = state.users.code_candidates(email, since).await?;
    let codes = state.tokens.codes();
    let matched = candidates.iter().fold(None, |found, candidate| {
        let hit = codes.matches(candidate.message, code);
        found.or(hit.then_some(candidate.sent_at))
    });
    let outcome = match matched {
        Some(sent_at) => CodeCheck::Matched { sent_at },
        None => {
            let ids: Vec<_> = candidates.iter().map(|c| c.message).collect();
            state.users.code_failed(&ids).await?;
            CodeCheck::Wrong
        }
    };
    let label = match (outcome, candidates.is_empty()) {
        (CodeCheck::Matched { .. }, _) => "matched",
        (CodeCheck::Wrong, false) => "wrong",
        (CodeCheck::Wrong, true) => "no_code",
    };
    metrics::counter!("confirmation_codes_total", "outcome" => label).increment(1);
    tracing::info!(to = %email.masked(), outcome = label, "confirmation code tried");
    Ok(outcome)
}

/// The `Set-Cookie` value naming `email` as the address the code page asks about, valid as long
/// as its link (`TOKEN_MAX_AGE`).
pub(crate) fn pending_cookie(state: &AppState, email: &EmailAddress) -> Option<HeaderValue> {
    let value = state
        .tokens
        .pending_tokens()
        .issue(email, state.clock.now().timestamp());
    let name = pending_cookie_name(state);
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let max_age = state.config.token_max_age;
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// The pending cookie's name: `__Host-pending` over https, `pending` otherwise.
fn pending_cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies {
        PENDING_COOKIE_HTTPS
    } else {
        PENDING_COOKIE
    }
}

/// The address the request's pending cookie names, if it is genuine and fresh.
pub(crate) fn pending_address(state: &AppState, headers: &HeaderMap) -> Option<EmailAddress> {
    let jar = CookieJar::from_headers(headers);
    let value = jar.get(pending_cookie_name(state))?.value();
    let verified = state
        .tokens
        .pending_tokens()
        .check(
            value,
            state.config.token_max_age,
            state.clock.now().timestamp(),
        )
        .ok()?;
    EmailAddress::parse(&verified.payload).ok()
}

fn render(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    mut view: CodeView,
) -> Result<Response, AppError> {
    let (csrf_token, csrf_cookie) = csrf_token_for(state, headers);
    view.csrf_token = csrf_token;
    let mut response = html(status, i18n::render(state, "web/code.html", &view)?);
    if let Some(cookie) = csrf_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `GET /code`: the form; only the code when the pending cookie names the address.
pub async fn show(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let view = CodeView {
        pending: pending_address(&state, &headers).map(|email| email.masked()),
        ..CodeView::default()
    };
    render(&state, &headers, StatusCode::OK, view)
}

/// `POST /code`: the right code confirms the account exactly as the link's button does; anything
/// else is the form again with its error (422), nothing confirmed.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Result<Response, AppError> {
    let pending = pending_address(&state, &headers);
    let mut view = CodeView {
        pending: pending.as_ref().map(EmailAddress::masked),
        ..CodeView::default()
    };
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            view.code_error = Some(i18n::text(&state, "form-unreadable"));
            return render(&state, &headers, rejection.status(), view);
        }
    };
    if let Some(refused) = refuse_foreign_post(&state, &headers, &form.csrf_token, "code")? {
        return Ok(refused);
    }
    let typed = form.email.trim();
    let email = if typed.is_empty() {
        pending
    } else {
        match EmailAddress::parse(typed) {
            Ok(email) => Some(email),
            Err(error) => {
                if typed.len() <= MAX_ADDRESS_LEN && !typed.chars().any(char::is_control) {
                    typed.clone_into(&mut view.email);
                }
                view.email_error = Some(i18n::text(&state, i18n::email_error(&error)));
                None
            }
        }
    };
    let code = domain::normalize_code(&form.code);
    if code.is_err() {
        view.code_error = Some(i18n::text(&state, "code-digits"));
    }
    let (Some(email), Ok(code)) = (email, code) else {
        if view.email_error.is_none() && view.pending.is_none() {
            view.email_error = Some(i18n::text(&state, "code-email-missing"));
        }
        return render(&state, &headers, StatusCode::UNPROCESSABLE_ENTITY, view);
    };
    match check_code(&state, &email, &code).await? {
        CodeCheck::Matched { sent_at } => confirm_account(&state, &email, sent_at).await,
        CodeCheck::Wrong => {
            if view.pending.is_none() {
                view.email = email.as_str().to_owned();
            }
            view.code_error = Some(i18n::text(&state, "code-wrong"));
            render(&state, &headers, StatusCode::UNPROCESSABLE_ENTITY, view)
        }
    }
}
