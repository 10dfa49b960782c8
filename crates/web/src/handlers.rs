//! Request handlers. Request types live here; only domain types go further down.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use domain::{EmailAddress, MAX_ADDRESS_LEN, User};
use queue::Job;
use serde::{Deserialize, Serialize};
use store::{ConfirmOutcome, Registration};

use crate::{AppError, AppState, Flash, MAIN_CSS};

/// Tokens longer than this are refused before any decoding work (ours are ~100 characters).
const MAX_TOKEN_LEN: usize = 2048;

/// The registration form: one `email` field. A missing field is treated as empty.
#[derive(Debug, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    email: String,
}

#[derive(Debug, Serialize)]
struct FlashView {
    category: &'static str,
    message: &'static str,
}

#[derive(Debug, Serialize)]
struct UserRow {
    id: i64,
    email: String,
    email_sent: &'static str,
    confirmed: &'static str,
}

impl From<User> for UserRow {
    fn from(user: User) -> Self {
        // The tutorial's Jinja printed Python booleans.
        let yes_no = |b: bool| if b { "True" } else { "False" };
        Self {
            id: user.id.0,
            email: user.email.to_string(),
            email_sent: yes_no(user.email_sent),
            confirmed: yes_no(user.confirmed),
        }
    }
}

#[derive(Debug, Serialize)]
struct HomeView {
    flashes: Vec<FlashView>,
    email: String,
    error: Option<String>,
    show_users: bool,
    users: Vec<UserRow>,
}

#[derive(Debug, Serialize)]
struct MessageView<'a> {
    title: &'a str,
    message: &'a str,
}

fn html(status: StatusCode, body: String) -> Response {
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
    status: StatusCode,
    flash: Option<Flash>,
    email: String,
    error: Option<String>,
) -> Result<Response, AppError> {
    let users = if state.config.show_users {
        state
            .users
            .recent_users(state.config.users_limit)
            .await?
            .into_iter()
            .map(UserRow::from)
            .collect()
    } else {
        Vec::new()
    };
    let view = HomeView {
        flashes: flash
            .map(|f| FlashView {
                category: f.category(),
                message: f.message(),
            })
            .into_iter()
            .collect(),
        email,
        error,
        show_users: state.config.show_users,
        users,
    };
    let mut response = html(status, state.pages.render("web/home.html", &view)?);
    if flash.is_some() {
        response
            .headers_mut()
            .append(header::SET_COOKIE, Flash::clear_cookie());
    }
    Ok(response)
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
    render_home(
        &state,
        StatusCode::OK,
        Flash::from_request(&headers),
        String::new(),
        None,
    )
    .await
}

/// Publishes the job of a committed message, bounded by the publish timeout. After a failure the
/// queue is left alone for a few seconds (registrations stay fast during a Redis outage; the
/// sweeper sends what was not published).
async fn publish(state: &AppState, message: domain::MessageId) {
    if state.queue_gate.is_closed() {
        tracing::debug!(message_id = %message, "queue recently failed; leaving this one to the sweeper");
        return;
    }
    let publish = state.queue.publish(Job {
        message_id: message,
    });
    let failure = match tokio::time::timeout(state.config.publish_timeout, publish).await {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {:?}", state.config.publish_timeout),
    };
    state.queue_gate.close_for(state.config.publish_backoff);
    tracing::warn!(message_id = %message, error = %failure, "publish failed; the sweeper will send this message");
}

/// `POST /`: register, then redirect with the same flash whether or not the address was new.
pub async fn register(
    State(state): State<AppState>,
    form: Result<Form<RegisterForm>, FormRejection>,
) -> Result<Response, AppError> {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            let status = rejection.status();
            let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "The form was too large."
            } else {
                "The form could not be read. Please submit it from this page."
            };
            return render_home(&state, status, None, String::new(), Some(error.to_owned())).await;
        }
    };
    let email = match EmailAddress::parse(&form.email) {
        Ok(email) => email,
        Err(error) => {
            // Echo the input back only when it is of sane size and printable.
            let echo = if form.email.len() <= MAX_ADDRESS_LEN
                && !form.email.chars().any(char::is_control)
            {
                form.email.trim().to_owned()
            } else {
                String::new()
            };
            return render_home(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                echo,
                Some(error.to_string()),
            )
            .await;
        }
    };
    match state.users.register(&email, state.clock.now()).await? {
        Registration::Created { user, message } => {
            tracing::info!(user_id = %user.id, message_id = %message, to = %email.masked(), "user registered");
            // The promise is already committed; the queue is only the fast path. If it is slow or
            // down, the sweeper republishes the message later.
            publish(&state, message).await;
        }
        Registration::AlreadyRegistered => {
            tracing::info!(to = %email.masked(), "registration for an existing address; nothing stored");
        }
    }
    Ok(redirect_home(&state, Flash::Registered))
}

/// `GET /confirm/{token}`: confirm the account, then redirect home with the outcome.
pub async fn confirm(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
) -> Result<Response, AppError> {
    let Ok(Path(token)) = token else {
        return Ok(redirect_home(&state, Flash::InvalidLink));
    };
    if token.len() > MAX_TOKEN_LEN {
        return Ok(redirect_home(&state, Flash::InvalidLink));
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
                return Ok(redirect_home(&state, Flash::InvalidLink));
            }
        };
    let Ok(email) = EmailAddress::parse(&verified.payload) else {
        tracing::warn!("confirmation link with a valid signature but no valid address");
        return Ok(redirect_home(&state, Flash::InvalidLink));
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
    Ok(redirect_home(&state, flash))
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
    let view = MessageView {
        title: "Page not found",
        message: "There is nothing at this address.",
    };
    Ok(html(
        StatusCode::NOT_FOUND,
        state.pages.render("web/message.html", &view)?,
    ))
}
