//! The pages: the home page with its forms, message pages, and the answers every handler
//! shares (redirects with a flash, 429, 404, the stylesheet).

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use crate::{AppError, AppState, Csrf, Flash, MAIN_CSS, i18n};

/// Which form of the home page an answer is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormKind {
    Register,
    /// The registration form, whose password is the problem (the address is kept).
    RegisterPassword,
    Resend,
}

impl FormKind {
    /// The form's name in logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Register | Self::RegisterPassword => "register",
            Self::Resend => "resend",
        }
    }
}

#[derive(Debug, Serialize)]
struct FlashView {
    category: &'static str,
    message: String,
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
    /// Accounts are on: the registration form has a password field, and the page links to
    /// the sign-in and reset pages.
    accounts: bool,
    password_error: Option<String>,
    /// After a registration: the link to the page for the emailed code.
    offer_code: bool,
    /// After a registration on this browser: the registration form holds the address just
    /// registered, to be corrected if it was mistyped.
    correcting: bool,
}

/// What the home page shows besides the flash: a form's rejected input and its error.
#[derive(Debug)]
pub(crate) struct FormProblem {
    pub(crate) form: FormKind,
    pub(crate) input: String,
    pub(crate) error: String,
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

pub(crate) async fn render_home(
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
    let mut password_error = None;
    if let Some(problem) = problem {
        match problem.form {
            FormKind::Register => (email, error) = (problem.input, Some(problem.error)),
            FormKind::RegisterPassword => {
                (email, password_error) = (problem.input, Some(problem.error));
            }
            FormKind::Resend => (resend_email, resend_error) = (problem.input, Some(problem.error)),
        }
    }
    // Right after a registration, the form holds the address registered (from the pending
    // cookie), so a typo can be fixed and registered again; the mistyped account is never
    // confirmed and expires with UNCONFIRMED_TTL.
    let registered = flash == Some(Flash::Registered);
    let correcting = registered && email.is_empty() && error.is_none() && password_error.is_none();
    let correcting = correcting
        .then(|| crate::code::pending_address(state, headers))
        .flatten();
    if let Some(address) = &correcting {
        address.as_str().clone_into(&mut email);
    }
    let view = HomeView {
        flashes: flash
            .map(|f| FlashView {
                category: f.category(),
                message: i18n::text(state, f.message_id()),
            })
            .into_iter()
            .collect(),
        csrf_token,
        email,
        error,
        resend_email,
        resend_error,
        show_users: state.config.show_users,
        accounts: state.accounts.is_some(),
        password_error,
        users_table: users_table.as_deref().unwrap_or_default(),
        offer_code: registered,
        correcting: correcting.is_some(),
    };
    let mut response = html(status, i18n::render(state, "web/home.html", &view)?);
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
    let (nonce, cookie) = match state.csrf.nonce_from(headers) {
        Some(nonce) => (nonce, None),
        None => {
            let nonce = Csrf::new_nonce();
            let cookie = state.csrf.cookie(&nonce);
            (nonce, Some(cookie))
        }
    };
    (
        state.csrf.token(&nonce, state.clock.now().timestamp()),
        cookie,
    )
}

/// What the pages of the emailed links show: the masked address, the token the button posts
/// back, and the form's CSRF token.
#[derive(Debug, Serialize)]
struct LinkView<'a> {
    address: String,
    token: &'a str,
    csrf_token: String,
}

/// The page an emailed link opens (`template`: the confirmation or the stop page): the masked
/// `address` and one button posting `token` back with this visitor's CSRF token (and cookie).
pub(crate) fn link_page(
    state: &AppState,
    headers: &HeaderMap,
    template: &str,
    address: &domain::EmailAddress,
    token: &str,
) -> Result<Response, AppError> {
    let (csrf_token, csrf_cookie) = csrf_token_for(state, headers);
    let view = LinkView {
        address: address.masked(),
        token,
        csrf_token,
    };
    let mut response = html(StatusCode::OK, i18n::render(state, template, &view)?);
    if let Some(cookie) = csrf_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// A page with a title and a message, and the given status.
/// A page with a title and one message, both message ids, in the visitor's language.
pub(crate) fn message_page(
    state: &AppState,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Result<Response, AppError> {
    let view = MessageView {
        title: &i18n::text(state, title),
        message: &i18n::text(state, message),
    };
    Ok(html(
        status,
        i18n::render(state, "web/message.html", &view)?,
    ))
}

/// A message page for operators (the dashboard): the texts as given, in English.
pub(crate) fn message_page_english(
    state: &AppState,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Result<Response, AppError> {
    let view = MessageView { title, message };
    Ok(html(
        status,
        i18n::render_english(state, "web/message.html", &view)?,
    ))
}

/// 429 with `Retry-After` (whole seconds, rounded up).
pub(crate) fn too_many_requests(state: &AppState, wait: Duration) -> Response {
    let seconds = wait.as_millis().div_ceil(1000).max(1);
    let page = message_page(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-title",
        "too-many",
    );
    let mut response = page.unwrap_or_else(IntoResponse::into_response);
    if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

pub(crate) fn redirect_home(state: &AppState, flash: Flash) -> Response {
    let mut response = see_other("/");
    response.headers_mut().append(
        header::SET_COOKIE,
        flash.set_cookie(state.config.secure_cookies),
    );
    response
}

/// A 303 to `location` that no cache keeps (the answers to the forms and buttons).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = Redirect::to(location).into_response();
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
        "not-found-title",
        "not-found",
    )
}
