//! Request handlers. Request types live here; only domain types go further down.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use std::time::Duration;

use axum::response::{IntoResponse, Redirect, Response};
use domain::{EmailAddress, MAX_ADDRESS_LEN, RequestId};
use queue::Job;
use serde::{Deserialize, Serialize};
use store::{ConfirmOutcome, Registration, Resend};

use crate::{AppError, AppState, Csrf, Flash, MAIN_CSS};

/// Tokens longer than this are refused before any decoding work (ours are ~100 characters).
const MAX_TOKEN_LEN: usize = 2048;

/// The registration and resend forms: an `email` field, the CSRF token, and the honeypot
/// (`website`, hidden from people; bots that fill it in are ignored). Missing fields are empty.
#[derive(Debug, Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    website: String,
}

/// Which form of the home page an answer is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FormKind {
    Register,
    Resend,
}

#[derive(Debug, Serialize)]
struct FlashView {
    category: &'static str,
    message: &'static str,
}

#[derive(Debug, Serialize)]
struct HomeView<'a> {
    flashes: Vec<FlashView>,
    csrf_token: String,
    email: String,
    error: Option<String>,
    resend_email: String,
    resend_error: Option<String>,
    show_users: bool,
    /// The rendered users table (HTML), empty when not shown.
    users_table: &'a str,
}

/// What the home page shows besides the flash: a form's rejected input and its error.
#[derive(Debug)]
struct FormProblem {
    form: FormKind,
    input: String,
    error: String,
}

#[derive(Debug, Serialize)]
struct MessageView<'a> {
    title: &'a str,
    message: &'a str,
}

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn render_home(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    flash: Option<Flash>,
    problem: Option<FormProblem>,
) -> Result<Response, AppError> {
    let users_table = if state.config.show_users {
        Some(state.users_table.render().await?)
    } else {
        None
    };
    let (csrf_token, csrf_cookie) = csrf_token_for(state, headers);
    let (mut email, mut error, mut resend_email, mut resend_error) =
        (String::new(), None, String::new(), None);
    if let Some(problem) = problem {
        match problem.form {
            FormKind::Register => (email, error) = (problem.input, Some(problem.error)),
            FormKind::Resend => (resend_email, resend_error) = (problem.input, Some(problem.error)),
        }
    }
    let view = HomeView {
        flashes: flash
            .map(|f| FlashView {
                category: f.category(),
                message: f.message(),
            })
            .into_iter()
            .collect(),
        csrf_token,
        email,
        error,
        resend_email,
        resend_error,
        show_users: state.config.show_users,
        users_table: users_table.as_deref().unwrap_or_default(),
    };
    let mut response = html(status, state.pages.render("web/home.html", &view)?);
    if flash.is_some() {
        response
            .headers_mut()
            .append(header::SET_COOKIE, Flash::clear_cookie());
    }
    if let Some(cookie) = csrf_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The CSRF token for a form on a page answering this request, and the `Set-Cookie` value of a
/// new nonce when the request had none.
pub(crate) fn csrf_token_for(
    state: &AppState,
    headers: &HeaderMap,
) -> (String, Option<header::HeaderValue>) {
    let (nonce, cookie) = match Csrf::nonce_from(headers) {
        Some(nonce) => (nonce, None),
        None => {
            let nonce = Csrf::new_nonce();
            let cookie = Csrf::cookie(&nonce, state.config.secure_cookies);
            (nonce, Some(cookie))
        }
    };
    (
        state.csrf.token(&nonce, state.clock.now().timestamp()),
        cookie,
    )
}

/// A page with a title and a message, and the given status.
pub(crate) fn message_page(
    state: &AppState,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Result<Response, AppError> {
    let view = MessageView { title, message };
    Ok(html(status, state.pages.render("web/message.html", &view)?))
}

/// 429 with `Retry-After` (whole seconds, rounded up).
pub(crate) fn too_many_requests(state: &AppState, wait: Duration) -> Response {
    let seconds = wait.as_millis().div_ceil(1000).max(1);
    let page = message_page(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        "You have sent this form too often. Please wait a minute and try again.",
    );
    let mut response = page.unwrap_or_else(IntoResponse::into_response);
    if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn redirect_home(state: &AppState, flash: Flash) -> Response {
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        flash.set_cookie(state.config.secure_cookies),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// `GET /`: the form, any flash, and (when enabled) the newest users.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let flash = Flash::from_request(&headers);
    render_home(&state, &headers, StatusCode::OK, flash, None).await
}

/// Publishes the job of a committed message, tagged with the id of the request that owed it (so
/// the worker's log lines carry it), bounded by the publish timeout. After a failure the queue
/// is left alone for a few seconds (registrations stay fast during a Redis outage; the sweeper
/// sends what was not published).
pub(crate) async fn publish_job(
    state: &AppState,
    message: domain::MessageId,
    request_id: Option<RequestId>,
) {
    if state.queue_gate.is_closed() {
        tracing::debug!(message_id = %message, "queue recently failed; leaving this one to the sweeper");
        return;
    }
    let publish = state
        .queue
        .publish(Job::new(message).with_request_id(request_id));
    let failure = match tokio::time::timeout(state.config.publish_timeout, publish).await {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {:?}", state.config.publish_timeout),
    };
    state.queue_gate.close_for(state.config.publish_backoff);
    metrics::counter!("publish_failures_total").increment(1);
    tracing::warn!(message_id = %message, error = %failure, "publish failed; the sweeper will send this message");
}

/// The checks every form post goes through before its own work: a readable body (413 when too
/// large, 400 otherwise), a valid CSRF token (403), the honeypot (filled in: answered like a
/// success, nothing done) and a valid address (422). `Ok(None)` means "answer as if done".
async fn accept(
    state: &AppState,
    headers: &HeaderMap,
    which: FormKind,
    form: Result<Form<EmailForm>, FormRejection>,
) -> Result<Result<Option<EmailAddress>, Response>, AppError> {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            let status = rejection.status();
            let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "The form was too large."
            } else {
                "The form could not be read. Please submit it from this page."
            };
            let problem = FormProblem {
                form: which,
                input: String::new(),
                error: error.to_owned(),
            };
            return render_home(state, headers, status, None, Some(problem))
                .await
                .map(Err);
        }
    };
    if !state
        .csrf
        .verify(headers, &form.csrf_token, state.clock.now().timestamp())
    {
        tracing::info!(form = ?which, "form post without a valid CSRF token refused");
        metrics::counter!("csrf_rejected_total").increment(1);
        return message_page(
            state,
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired or did not come from this site. Please go back to the home page, reload it and try again.",
        )
        .map(Err);
    }
    if !form.website.is_empty() {
        tracing::info!(form = ?which, "honeypot field filled in: ignoring the post");
        metrics::counter!("honeypot_total").increment(1);
        return Ok(Ok(None));
    }
    match EmailAddress::parse(&form.email) {
        Ok(email) => Ok(Ok(Some(email))),
        Err(error) => {
            // Echo the input back only when it is of sane size and printable.
            let input = if form.email.len() <= MAX_ADDRESS_LEN
                && !form.email.chars().any(char::is_control)
            {
                form.email.trim().to_owned()
            } else {
                String::new()
            };
            let problem = FormProblem {
                form: which,
                input,
                error: error.to_string(),
            };
            render_home(
                state,
                headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(problem),
            )
            .await
            .map(Err)
        }
    }
}

/// Owes a fresh confirmation email to an unconfirmed account, within the resend limits, and
/// publishes it. Every outcome is logged (masked) and none is visible to the visitor.
async fn resend_to(
    state: &AppState,
    email: &EmailAddress,
    request_id: Option<RequestId>,
) -> Result<(), AppError> {
    let outcome = state
        .users
        .resend(email, state.config.resend, state.clock.now())
        .await?;
    let label = match outcome {
        Resend::Queued(_) => "queued",
        Resend::NotRegistered => "not_registered",
        Resend::AlreadyConfirmed => "already_confirmed",
        Resend::Pending => "pending",
        Resend::CoolingDown => "cooling_down",
        Resend::DailyCapReached => "daily_cap",
    };
    metrics::counter!("resends_total", "outcome" => label).increment(1);
    let to = email.masked();
    match outcome {
        Resend::Queued(message) => {
            tracing::info!(message_id = %message, %to, "confirmation email owed again");
            publish_job(state, message, request_id).await;
        }
        Resend::NotRegistered => tracing::info!(%to, "resend for an address with no account"),
        Resend::AlreadyConfirmed => {
            tracing::info!(%to, "resend for a confirmed account: nothing sent")
        }
        Resend::Pending => {
            tracing::info!(%to, "resend while a confirmation email is still on its way: nothing new")
        }
        Resend::CoolingDown => {
            tracing::info!(%to, limit = "cooldown", "resend limited: nothing sent")
        }
        Resend::DailyCapReached => {
            tracing::info!(%to, limit = "daily-cap", "resend limited: nothing sent")
        }
    }
    Ok(())
}

/// `POST /`: register, then redirect with the same flash whether or not the address was new. An
/// existing unconfirmed address is treated as a resend.
pub async fn register(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    form: Result<Form<EmailForm>, FormRejection>,
) -> Result<Response, AppError> {
    let email = match accept(&state, &headers, FormKind::Register, form).await? {
        Ok(Some(email)) => email,
        Ok(None) => return Ok(redirect_home(&state, Flash::Registered)),
        Err(response) => return Ok(response),
    };
    let request_id = request_id.map(|Extension(id)| id);
    match state.users.register(&email, state.clock.now()).await? {
        Registration::Created { user, message } => {
            metrics::counter!("registrations_total", "outcome" => "created").increment(1);
            tracing::info!(user_id = %user.id, message_id = %message, to = %email.masked(), "user registered");
            // The promise is already committed; the queue is only the fast path. If it is slow or
            // down, the sweeper republishes the message later.
            publish_job(&state, message, request_id).await;
        }
        Registration::AlreadyRegistered => {
            metrics::counter!("registrations_total", "outcome" => "existing").increment(1);
            tracing::info!(to = %email.masked(), "registration for an existing address: treated as a resend");
            resend_to(&state, &email, request_id).await?;
        }
    }
    Ok(redirect_home(&state, Flash::Registered))
}

/// `POST /resend`: a fresh confirmation email for an unconfirmed account (within the limits),
/// and the same answer whatever the address.
pub async fn resend(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    form: Result<Form<EmailForm>, FormRejection>,
) -> Result<Response, AppError> {
    let request_id = request_id.map(|Extension(id)| id);
    match accept(&state, &headers, FormKind::Resend, form).await? {
        Ok(Some(email)) => resend_to(&state, &email, request_id).await?,
        Ok(None) => {}
        Err(response) => return Ok(response),
    }
    Ok(redirect_home(&state, Flash::Resent))
}

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

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /static/main.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        MAIN_CSS,
    )
        .into_response()
}

/// Anything else: a friendly 404.
pub async fn not_found(State(state): State<AppState>) -> Result<Response, AppError> {
    message_page(
        &state,
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address.",
    )
}
