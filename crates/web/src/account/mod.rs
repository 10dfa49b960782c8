//! Accounts a person signs in to: sign-in and sign-out with server-side sessions, the account
//! page (change the password, sign out everywhere, two-factor sign-in), and the password reset
//! by email ([`reset`]).
//!
//! A session is a random cookie (`__Host-session` over https) whose SHA-256 is a row in the
//! database; it is new at every sign-in, ends at sign-out, and every session of an account ends
//! when its password changes. Sign-in costs one Argon2id verification whether or not the
//! address has an account (a dummy hash stands in), and failures are throttled per client IP
//! and per account. With two-factor sign-in on, a correct password leads to a second form
//! (carrying a short-lived signed token, not a session) that takes a six-digit code, each
//! accepted once, or one of ten one-time recovery codes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use chrono::TimeDelta;
use domain::{
    Account, EmailAddress, NoSecretKey, Password, PasswordError, PasswordHashString, Passwords,
    SessionToken, TimedSerializer, Totp, TotpSecret, UserId,
};
use serde::Deserialize;
use serde_json::{Value, json};
use store::AccountStore;

use crate::forms::refuse_foreign_post;
use crate::limits::{AccountThrottle, ClientIp};
use crate::pages::{csrf_token_for, html, see_other, too_many_requests};
use crate::{AppError, AppState, FailureThrottle, i18n};

pub(crate) mod reset;

/// The session cookie over plain http.
pub const SESSION_COOKIE: &str = "session";
/// The session cookie over https (`Secure`, `Path=/`, no `Domain`).
pub const SESSION_COOKIE_HTTPS: &str = "__Host-session";
/// How long a session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Wrong passwords or codes allowed per client IP and minute.
pub const SIGN_IN_FAILURES_PER_IP_MINUTE: u32 = 10;
/// Wrong passwords or codes allowed per account within [`ACCOUNT_FAILURE_WINDOW`].
pub const SIGN_IN_FAILURES_PER_ACCOUNT: usize = 5;
/// See [`SIGN_IN_FAILURES_PER_ACCOUNT`].
pub const ACCOUNT_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long the second step of a sign-in (the code form) stays open.
const SECOND_STEP_SECONDS: u64 = 5 * 60;
/// How long the QR code of a second factor being enabled stays usable.
const TOTP_SETUP_SECONDS: u64 = 10 * 60;
/// The name authenticator apps show beside the address.
const TOTP_ISSUER: &str = "Confirm Email";

/// What the account pages need besides the rest of the state.
#[derive(Debug)]
pub struct Accounts {
    pub(crate) store: Arc<dyn AccountStore>,
    pub(crate) passwords: Passwords,
    /// The second step of a sign-in: `[user id, password binding]`, signed.
    second_step: TimedSerializer,
    /// A second factor being enabled: `[user id, secret]`, signed.
    totp_setup: TimedSerializer,
    pub(crate) ip_throttle: FailureThrottle,
    pub(crate) account_throttle: AccountThrottle,
}

impl Accounts {
    /// The account pages over `store`, signing their short-lived tokens with the last of
    /// `secret_keys`.
    pub fn new<K: AsRef<[u8]>>(
        store: Arc<dyn AccountStore>,
        passwords: Passwords,
        secret_keys: &[K],
        clock: Arc<dyn domain::Clock>,
    ) -> Result<Self, NoSecretKey> {
        let current = &secret_keys[secret_keys.len().saturating_sub(1)..];
        Ok(Self {
            store,
            passwords,
            second_step: TimedSerializer::new(current, "sign-in-second-step")?,
            totp_setup: TimedSerializer::new(current, "totp-setup")?,
            ip_throttle: FailureThrottle::new(SIGN_IN_FAILURES_PER_IP_MINUTE, Arc::clone(&clock)),
            account_throttle: AccountThrottle::new(
                SIGN_IN_FAILURES_PER_ACCOUNT,
                ACCOUNT_FAILURE_WINDOW,
                clock,
            ),
        })
    }
}

/// The account routes (only when the state has [`Accounts`]).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin", get(signin_page).post(signin))
        .route("/signin/code", post(signin_code))
        .route("/signout", post(signout))
        .route("/account", get(account_page))
        .route("/account/password", post(change_password))
        .route("/account/signout-everywhere", post(signout_everywhere))
        .route("/account/2fa", post(totp_setup))
        .route("/account/2fa/enable", post(totp_enable))
        .route("/account/2fa/disable", post(totp_disable))
        .route("/forgot", get(reset::forgot_page).post(reset::forgot))
        .route("/reset/{token}", get(reset::reset_page).post(reset::reset))
}

/// Every account form's fields; each form uses some. Missing fields are empty.
#[derive(Debug, Default, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    code: String,
    /// The signed token of a sign-in's second step, or of a second factor being enabled.
    #[serde(default)]
    step: String,
}

/// The accounts part of the state (the routes are mounted only with it).
fn accounts(state: &AppState) -> Result<&Accounts, AppError> {
    state
        .accounts
        .as_deref()
        .ok_or_else(|| AppError::Internal("accounts are not configured".into()))
}

/// The form, or the answer for one that cannot be read or did not come from this site.
pub(crate) fn accept_form(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
    name: &'static str,
) -> Result<Result<AccountForm, Response>, AppError> {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            let (status, id) = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                (StatusCode::PAYLOAD_TOO_LARGE, "form-too-large")
            } else {
                (StatusCode::BAD_REQUEST, "form-unreadable")
            };
            return crate::pages::message_page(state, status, "form-expired-title", id).map(Err);
        }
    };
    match refuse_foreign_post(state, headers, &form.csrf_token, name)? {
        Some(refused) => Ok(Err(refused)),
        None => Ok(Ok(form)),
    }
}

/// Renders one of the account pages with `view` (plus the CSRF token), setting the CSRF cookie
/// if the visitor had none.
pub(crate) fn page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    template: &str,
    mut view: Value,
) -> Result<Response, AppError> {
    let (csrf_token, csrf_cookie) = csrf_token_for(state, headers);
    if let Value::Object(map) = &mut view {
        map.insert("csrf_token".into(), Value::String(csrf_token));
    }
    let mut response = html(status, i18n::render(state, template, &view)?);
    if let Some(cookie) = csrf_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The message id of a password's problem.
pub(crate) fn password_error(error: PasswordError) -> &'static str {
    match error {
        PasswordError::TooShort => "password-too-short",
        PasswordError::TooLong => "password-too-long",
    }
}

/// Hashes `password` on a blocking thread (Argon2id takes tens of milliseconds of CPU).
pub(crate) async fn hash_password(
    accounts: &Accounts,
    password: Password,
) -> Result<PasswordHashString, AppError> {
    let passwords = accounts.passwords.clone();
    tokio::task::spawn_blocking(move || passwords.hash(&password))
        .await
        .map_err(|e| AppError::Internal(format!("hashing task: {e}")))?
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// Verifies `typed` against `stored` (or the dummy hash) on a blocking thread.
async fn verify_password(
    accounts: &Accounts,
    typed: String,
    stored: Option<PasswordHashString>,
) -> Result<bool, AppError> {
    let passwords = accounts.passwords.clone();
    tokio::task::spawn_blocking(move || passwords.verify(&typed, stored.as_ref()))
        .await
        .map_err(|e| AppError::Internal(format!("verifying task: {e}")))
}

fn cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies {
        SESSION_COOKIE_HTTPS
    } else {
        SESSION_COOKIE
    }
}

/// The `Set-Cookie` value of a session (`None`: the one that ends it).
fn session_cookie(state: &AppState, token: Option<&SessionToken>) -> HeaderValue {
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let name = cookie_name(state);
    let value = match token {
        Some(token) => format!(
            "{name}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            token.as_str(),
            SESSION_LIFETIME.as_secs()
        ),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("session=; Max-Age=0"))
}

/// The session token of the request's cookie, if it has a well-formed one.
fn session_token(state: &AppState, headers: &HeaderMap) -> Option<SessionToken> {
    let jar = CookieJar::from_headers(headers);
    SessionToken::parse(jar.get(cookie_name(state))?.value())
}

/// The signed-in account of this request, with its session token.
pub(crate) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Account, SessionToken)>, AppError> {
    let accounts = accounts(state)?;
    let Some(token) = session_token(state, headers) else {
        return Ok(None);
    };
    let now = state.clock.now();
    let Some(session) = accounts.store.session(&token.fingerprint(), now).await? else {
        return Ok(None);
    };
    let account = accounts.store.account_by_id(session.user_id).await?;
    Ok(account
        .filter(|a| a.user.confirmed)
        .map(|account| (account, token)))
}

/// Starts a session for `user` (ending the one this browser had, if any) and sends the
/// browser to its account page.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user: UserId,
) -> Result<Response, AppError> {
    let accounts = accounts(state)?;
    if let Some(old) = session_token(state, headers) {
        accounts.store.end_session(&old.fingerprint()).await?;
    }
    let token = SessionToken::generate();
    let now = state.clock.now();
    let expires = now + TimeDelta::from_std(SESSION_LIFETIME).unwrap_or(TimeDelta::MAX);
    accounts
        .store
        .create_session(user, &token.fingerprint(), now, expires)
        .await?;
    accounts.account_throttle.succeeded(user.0);
    metrics::counter!("sign_ins_total", "outcome" => "signed_in").increment(1);
    tracing::info!(user_id = %user, "signed in");
    let mut response = see_other("/account");
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(state, Some(&token)));
    Ok(response)
}

/// A form page whose one value `field` is `value`, with `error` (a message id) under it.
fn form_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    template: &str,
    field: &str,
    value: &str,
    error: Option<&str>,
) -> Result<Response, AppError> {
    let mut view = json!({ "error": error.map(|id| i18n::text(state, id)) });
    view[field] = Value::String(value.to_owned());
    page(state, headers, status, template, view)
}

/// The sign-in form (the address typed, kept).
fn signin_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Result<Response, AppError> {
    form_page(
        state,
        headers,
        status,
        "web/signin.html",
        "email",
        email,
        error,
    )
}

/// The second step of a sign-in: the code form, carrying its signed step token.
fn code_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    step: &str,
    error: Option<&str>,
) -> Result<Response, AppError> {
    form_page(
        state,
        headers,
        status,
        "web/signin_code.html",
        "step",
        step,
        error,
    )
}

/// To the sign-in page, with the session cookie cleared.
fn signed_out(state: &AppState) -> Response {
    let mut response = see_other("/signin");
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(state, None));
    response
}

/// 429 for a client or an account over its failures (the same answer, right password or not).
fn throttled(
    state: &AppState,
    accounts: &Accounts,
    ip: Option<std::net::IpAddr>,
    user: Option<UserId>,
) -> Option<Response> {
    let wait = ip
        .and_then(|ip| accounts.ip_throttle.blocked(ip))
        .or_else(|| user.and_then(|u| accounts.account_throttle.blocked(u.0)))?;
    metrics::counter!("sign_ins_total", "outcome" => "throttled").increment(1);
    tracing::info!("sign-in refused: too many failures");
    Some(too_many_requests(state, wait))
}

/// Counts a failure against the client and the account; the 429 if either is now over.
fn count_failure(
    state: &AppState,
    accounts: &Accounts,
    ip: Option<std::net::IpAddr>,
    user: Option<UserId>,
) -> Option<Response> {
    metrics::counter!("sign_ins_total", "outcome" => "failed").increment(1);
    let by_ip = ip.and_then(|ip| accounts.ip_throttle.failed(ip));
    let by_account = user.and_then(|u| accounts.account_throttle.failed(u.0));
    by_ip
        .or(by_account)
        .map(|wait| too_many_requests(state, wait))
}

/// `GET /signin`.
pub async fn signin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if signed_in(&state, &headers).await?.is_some() {
        return Ok(see_other("/account"));
    }
    signin_form(&state, &headers, StatusCode::OK, "", None)
}

/// `POST /signin`: the address and password; then the account page, or the code form when the
/// account has two-factor sign-in on. A wrong password, an unknown address and an account
/// without a password get the same answer after the same work.
pub async fn signin(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, AppError> {
    let form = match accept_form(&state, &headers, form, "signin")? {
        Ok(form) => form,
        Err(response) => return Ok(response),
    };
    let accounts = accounts(&state)?;
    if let Some(response) = throttled(&state, accounts, ip, None) {
        return Ok(response);
    }
    let Ok(email) = EmailAddress::parse(&form.email) else {
        return signin_form(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::forms::echoable(&form.email),
            Some("signin-wrong"),
        );
    };
    let account = accounts.store.account(&email).await?;
    let user = account.as_ref().map(|a| a.user.id);
    if let Some(response) = throttled(&state, accounts, ip, user) {
        return Ok(response);
    }
    // Too long a password is not hashed (a bound on the work), but answered the same.
    let typed = if form.password.chars().count() <= domain::MAX_PASSWORD_CHARS {
        form.password
    } else {
        String::new()
    };
    let stored = account.as_ref().and_then(|a| a.password.clone());
    let matched = verify_password(accounts, typed, stored).await?;
    let Some(account) = account.filter(|_| matched) else {
        tracing::info!(to = %email.masked(), "sign-in with a wrong password or an unknown address");
        if let Some(response) = count_failure(&state, accounts, ip, user) {
            return Ok(response);
        }
        return signin_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            email.as_str(),
            Some("signin-wrong"),
        );
    };
    if !account.user.confirmed {
        return signin_form(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            email.as_str(),
            Some("signin-unconfirmed"),
        );
    }
    if account.totp.is_some() {
        let binding = PasswordHashString::binding(account.password.as_ref());
        let step = sign_pair(&state, &accounts.second_step, account.user.id, &binding);
        return code_form(&state, &headers, StatusCode::OK, &step, None);
    }
    start_session(&state, &headers, account.user.id).await
}

/// A short-lived signed token of `[user, text]` (a sign-in's second step, a second factor
/// being enabled), issued now.
fn sign_pair(state: &AppState, serializer: &TimedSerializer, user: UserId, text: &str) -> String {
    serializer.sign(
        &json!([user.0, text]),
        state.clock.unix_seconds().max(0).unsigned_abs(),
    )
}

/// The user and text of a genuine [`sign_pair`] token at most `max_age` seconds old.
fn verify_pair(
    state: &AppState,
    serializer: &TimedSerializer,
    token: &str,
    max_age: u64,
) -> Option<(UserId, String)> {
    let verified = serializer
        .verify(token, Some(max_age), state.clock.unix_seconds())
        .ok()?;
    let user = verified.payload.get(0).and_then(Value::as_i64)?;
    let text = verified.payload.get(1).and_then(Value::as_str)?;
    Some((UserId(user), text.to_owned()))
}

/// The six-digit codes of `secret` for `account`.
fn totp_of(secret: &TotpSecret, account: &Account) -> Result<Totp, AppError> {
    Totp::new(secret, TOTP_ISSUER, account.user.email.as_str())
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// The account a second-step token names, if it is genuine, young enough, and its password is
/// still the one typed.
async fn second_step_account(
    state: &AppState,
    accounts: &Accounts,
    step: &str,
) -> Result<Option<Account>, AppError> {
    let Some((user, binding)) =
        verify_pair(state, &accounts.second_step, step, SECOND_STEP_SECONDS)
    else {
        return Ok(None);
    };
    let account = accounts.store.account_by_id(user).await?;
    Ok(account.filter(|a| {
        a.user.confirmed && PasswordHashString::binding(a.password.as_ref()) == binding
    }))
}

/// Whether `code` is a current six-digit code of `account` (recorded as used) or one of its
/// unused recovery codes (marked used).
async fn accept_code(
    state: &AppState,
    accounts: &Accounts,
    account: &Account,
    code: &str,
) -> Result<bool, AppError> {
    let Some(totp) = &account.totp else {
        return Ok(false);
    };
    let now = state.clock.now();
    let codes = totp_of(&totp.secret, account)?;
    if let Some(step) = codes.verify(code, now.timestamp(), totp.last_step) {
        return Ok(accounts.store.use_totp_step(account.user.id, step).await?);
    }
    match domain::recovery_code_hash(code) {
        Some(hash) => {
            let used = accounts
                .store
                .use_recovery_code(account.user.id, &hash, now)
                .await?;
            if used {
                tracing::info!(user_id = %account.user.id, "signed in with a recovery code");
            }
            Ok(used)
        }
        None => Ok(false),
    }
}

/// `POST /signin/code`: the second step, a six-digit code or a recovery code.
pub async fn signin_code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, AppError> {
    let form = match accept_form(&state, &headers, form, "signin-code")? {
        Ok(form) => form,
        Err(response) => return Ok(response),
    };
    let accounts = accounts(&state)?;
    let Some(account) = second_step_account(&state, accounts, &form.step).await? else {
        return signin_form(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
            Some("signin-step-expired"),
        );
    };
    if let Some(response) = throttled(&state, accounts, ip, Some(account.user.id)) {
        return Ok(response);
    }
    if accept_code(&state, accounts, &account, &form.code).await? {
        return start_session(&state, &headers, account.user.id).await;
    }
    tracing::info!(user_id = %account.user.id, "sign-in with a wrong or used code");
    if let Some(response) = count_failure(&state, accounts, ip, Some(account.user.id)) {
        return Ok(response);
    }
    code_form(
        &state,
        &headers,
        StatusCode::UNAUTHORIZED,
        &form.step,
        Some("signin-code-wrong"),
    )
}

/// `POST /signout`: ends this browser's session.
pub async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, AppError> {
    if let Err(response) = accept_form(&state, &headers, form, "signout")? {
        return Ok(response);
    }
    if let Some(token) = session_token(&state, &headers) {
        accounts(&state)?
            .store
            .end_session(&token.fingerprint())
            .await?;
    }
    Ok(signed_out(&state))
}

/// The account page: the address, confirmed since, the password form, two-factor settings and
/// "sign out everywhere"; `notice` and `error` are message ids.
fn account_view(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    account: &Account,
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<Response, AppError> {
    let confirmed_on = account
        .user
        .confirmed_on
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    let view = json!({
        "address": account.user.email.as_str(),
        "confirmed_on": confirmed_on,
        "has_password": account.password.is_some(),
        "totp": account.totp.is_some(),
        "recovery_left": account.totp.as_ref().map(|t| t.recovery_codes_left),
        "notice": notice.map(|id| i18n::text(state, id)),
        "error": error.map(|id| i18n::text(state, id)),
    });
    page(state, headers, status, "web/account.html", view)
}

/// The signed-in account, or the redirect to the sign-in page.
async fn require_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Result<(Account, SessionToken), Response>, AppError> {
    Ok(match signed_in(state, headers).await? {
        Some(signed) => Ok(signed),
        None => Err(see_other("/signin")),
    })
}

/// `GET /account`.
pub async fn account_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    match require_session(&state, &headers).await? {
        Ok((account, _)) => account_view(&state, &headers, StatusCode::OK, &account, None, None),
        Err(response) => Ok(response),
    }
}

/// A signed-in form post: the form and the account, or the answer already decided.
async fn signed_in_post(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
    name: &'static str,
) -> Result<Result<(AccountForm, Account, SessionToken), Response>, AppError> {
    let form = match accept_form(state, headers, form, name)? {
        Ok(form) => form,
        Err(response) => return Ok(Err(response)),
    };
    Ok(match require_session(state, headers).await? {
        Ok((account, token)) => Ok((form, account, token)),
        Err(response) => Err(response),
    })
}

/// Checks the current password typed on the account page (counted as a sign-in failure when
/// wrong); `Some(answer)` when it is not right.
async fn check_current_password(
    state: &AppState,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
    account: &Account,
    typed: String,
) -> Result<Option<Response>, AppError> {
    let accounts = accounts(state)?;
    if let Some(response) = throttled(state, accounts, ip, Some(account.user.id)) {
        return Ok(Some(response));
    }
    if verify_password(accounts, typed, account.password.clone()).await? {
        return Ok(None);
    }
    if let Some(response) = count_failure(state, accounts, ip, Some(account.user.id)) {
        return Ok(Some(response));
    }
    account_view(
        state,
        headers,
        StatusCode::UNAUTHORIZED,
        account,
        None,
        Some("account-current-wrong"),
    )
    .map(Some)
}

/// `POST /account/password`: the current password (when the account has one) and a new one.
/// Every session ends, this one too; the browser signs in again with the new password.
pub async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, AppError> {
    let (form, account, _) = match signed_in_post(&state, &headers, form, "password").await? {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let password = match Password::new(&form.password) {
        Ok(password) => password,
        Err(error) => {
            return account_view(
                &state,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                &account,
                None,
                Some(password_error(error)),
            );
        }
    };
    if account.password.is_some()
        && let Some(response) =
            check_current_password(&state, &headers, ip, &account, form.current_password).await?
    {
        return Ok(response);
    }
    let accounts = accounts(&state)?;
    let hash = hash_password(accounts, password).await?;
    let changed = accounts
        .store
        .change_password(account.user.id, None, &hash, state.clock.now())
        .await?;
    password_changed(&state, account.user.id, changed);
    Ok(signed_out(&state))
}

/// Logs a password change and publishes its notice.
pub(crate) fn password_changed(
    state: &AppState,
    user: UserId,
    changed: Option<store::PasswordChanged>,
) {
    let Some(changed) = changed else {
        return;
    };
    metrics::counter!("password_changes_total").increment(1);
    tracing::info!(user_id = %user, sessions_ended = changed.sessions_ended, "password changed");
    if let Some(notice) = changed.notice {
        crate::forms::publish_later(state, notice, None);
    }
}

/// `POST /account/signout-everywhere`: ends every session of the account.
pub async fn signout_everywhere(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, AppError> {
    let (_, account, _) = match signed_in_post(&state, &headers, form, "signout-everywhere").await?
    {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let ended = accounts(&state)?
        .store
        .end_sessions(account.user.id)
        .await?;
    tracing::info!(user_id = %account.user.id, sessions_ended = ended, "signed out everywhere");
    Ok(signed_out(&state))
}

/// The page that enables a second factor: the QR code of `secret`, its text, and the form
/// that takes the first code.
fn totp_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    account: &Account,
    step: &str,
    secret: &TotpSecret,
    error: Option<&str>,
) -> Result<Response, AppError> {
    let totp = totp_of(secret, account)?;
    let qr = qrcode::QrCode::new(totp.url().as_bytes())
        .map_err(|e| AppError::Internal(format!("QR code: {e}")))?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    let view = json!({
        "qr": qr,
        "secret": secret.base32(),
        "step": step,
        "error": error.map(|id| i18n::text(state, id)),
    });
    page(state, headers, status, "web/totp.html", view)
}

/// `POST /account/2fa`: a new secret, shown as a QR code; nothing is stored until a code
/// made from it is entered.
pub async fn totp_setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, AppError> {
    let (_, account, _) = match signed_in_post(&state, &headers, form, "2fa-setup").await? {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let secret = TotpSecret::generate();
    let step = sign_pair(
        &state,
        &accounts(&state)?.totp_setup,
        account.user.id,
        &secret.base32(),
    );
    totp_page(
        &state,
        &headers,
        StatusCode::OK,
        &account,
        &step,
        &secret,
        None,
    )
}

/// `POST /account/2fa/enable`: the first code of the new secret; turns two-factor sign-in on
/// and shows the ten recovery codes, once.
pub async fn totp_enable(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, AppError> {
    let (form, account, _) = match signed_in_post(&state, &headers, form, "2fa-enable").await? {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    let accounts = accounts(&state)?;
    let setup = verify_pair(&state, &accounts.totp_setup, &form.step, TOTP_SETUP_SECONDS)
        .filter(|(user, _)| *user == account.user.id)
        .and_then(|(_, secret)| TotpSecret::from_base32(&secret));
    let Some(secret) = setup else {
        return account_view(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            &account,
            None,
            Some("totp-setup-expired"),
        );
    };
    let totp = totp_of(&secret, &account)?;
    let now = state.clock.now();
    let Some(step) = totp.verify(&form.code, now.timestamp(), None) else {
        return totp_page(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            &account,
            &form.step,
            &secret,
            Some("signin-code-wrong"),
        );
    };
    let codes = domain::generate_recovery_codes();
    let hashes = codes
        .iter()
        .filter_map(|c| domain::recovery_code_hash(c))
        .collect();
    accounts
        .store
        .enable_totp(account.user.id, &secret, hashes)
        .await?;
    // The code just typed is used.
    accounts.store.use_totp_step(account.user.id, step).await?;
    metrics::counter!("two_factor_changes_total", "change" => "enabled").increment(1);
    tracing::info!(user_id = %account.user.id, "two-factor sign-in enabled");
    page(
        &state,
        &headers,
        StatusCode::OK,
        "web/recovery_codes.html",
        json!({ "codes": codes }),
    )
}

/// `POST /account/2fa/disable`: the current password (when the account has one), then
/// two-factor sign-in is off and the recovery codes are gone.
pub async fn totp_disable(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, AppError> {
    let (form, account, _) = match signed_in_post(&state, &headers, form, "2fa-disable").await? {
        Ok(signed) => signed,
        Err(response) => return Ok(response),
    };
    if account.password.is_some()
        && let Some(response) =
            check_current_password(&state, &headers, ip, &account, form.current_password).await?
    {
        return Ok(response);
    }
    accounts(&state)?
        .store
        .disable_totp(account.user.id)
        .await?;
    metrics::counter!("two_factor_changes_total", "change" => "disabled").increment(1);
    tracing::info!(user_id = %account.user.id, "two-factor sign-in disabled");
    let account = accounts(&state)?
        .store
        .account_by_id(account.user.id)
        .await?
        .ok_or_else(|| AppError::Internal("the account is gone".into()))?;
    account_view(
        &state,
        &headers,
        StatusCode::OK,
        &account,
        Some("totp-disabled"),
        None,
    )
}
