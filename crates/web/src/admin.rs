//! The delivery dashboard at `/admin`: counts by state, the queue, recent messages (paged,
//! searchable by exact address), one message's attempt history, and buttons to requeue a dead
//! message or resend a confirmation. Mounted only when `ADMIN_TOKEN` is set (otherwise `/admin`
//! is the ordinary 404); every request must carry the token, as `Authorization: Bearer <token>`
//! or as the password of HTTP Basic authentication (any user name). The buttons are forms with
//! the site's CSRF token. Recipients are shown masked; a searched address is only a lookup key.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use domain::{EmailAddress, MessageId, MessageRecord, MessageStatus, RequestId};
use serde::{Deserialize, Serialize};
use store::{MessageQuery, Resend, ResendPolicy};
use subtle::ConstantTimeEq as _;

use crate::handlers::{csrf_token_for, html, message_page};
use crate::{AppError, AppState};

/// Messages per dashboard page.
pub const PAGE_SIZE: u64 = 50;
/// The shortest `ADMIN_TOKEN` accepted.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The dashboard's bearer token. `Debug` never shows it.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8]>);

impl AdminToken {
    /// The token, if it is long enough.
    pub fn new(token: &str) -> Option<Self> {
        (token.chars().count() >= MIN_ADMIN_TOKEN_LEN).then(|| Self(token.as_bytes().into()))
    }

    fn matches(&self, candidate: &[u8]) -> bool {
        bool::from(self.0.as_ref().ct_eq(candidate))
    }

    /// Whether the request's `Authorization` header carries the token (Bearer, or Basic with
    /// the token as password).
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.matches(credentials.as_bytes());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = STANDARD.decode(credentials) else {
                return false;
            };
            let password = match decoded.iter().position(|b| *b == b':') {
                Some(colon) => &decoded[colon + 1..],
                None => return false,
            };
            return self.matches(password);
        }
        false
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// The dashboard's routes, behind the token check.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/messages/{id}", get(message))
        .route("/admin/messages/{id}/requeue", post(requeue))
        .route("/admin/messages/{id}/resend", post(resend))
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let admitted = state
        .config
        .admin_token
        .as_ref()
        .is_some_and(|token| token.admits(request.headers()));
    if admitted {
        return next.run(request).await;
    }
    tracing::info!("admin request without a valid token refused");
    let mut response = message_page(
        &state,
        StatusCode::UNAUTHORIZED,
        "Sign in required",
        "The delivery dashboard needs the admin token.",
    )
    .unwrap_or_else(IntoResponse::into_response);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"admin\", charset=\"UTF-8\""),
    );
    response
}

#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    before: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Counts {
    queued: u64,
    sending: u64,
    retrying: u64,
    sent: u64,
    dead: u64,
}

#[derive(Debug, Serialize)]
struct Row {
    id: i64,
    recipient: String,
    template: &'static str,
    state: &'static str,
    attempts: u32,
    last_error: Option<String>,
    provider_message_id: Option<String>,
    created: String,
    updated: String,
    next_attempt: Option<String>,
    sent: Option<String>,
}

#[derive(Debug, Serialize)]
struct DashboardView {
    counts: Counts,
    queue_depth: Option<u64>,
    oldest_owed_age: Option<String>,
    search_masked: Option<String>,
    search_error: Option<&'static str>,
    search_param: String,
    rows: Vec<Row>,
    next_before: Option<i64>,
    paged: bool,
}

#[derive(Debug, Serialize)]
struct AttemptRow {
    attempt: u32,
    outcome: &'static str,
    error: Option<String>,
    provider_message_id: Option<String>,
    finished: String,
}

#[derive(Debug, Serialize)]
struct MessageView {
    row: Row,
    attempts: Vec<AttemptRow>,
    dead: bool,
    notice: Option<&'static str>,
    csrf_token: String,
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "3 h 2 min", "45 s": an age for people.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

/// `text` with every occurrence of `address` (any case) replaced by its masked form: provider
/// errors often quote the recipient.
fn scrub(text: &str, address: &EmailAddress) -> String {
    let needle = address.as_str().to_ascii_lowercase();
    let haystack = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = haystack[rest..].find(&needle) {
        let start = rest + found;
        out.push_str(&text[rest..start]);
        out.push_str(&address.masked());
        rest = start + needle.len();
    }
    out.push_str(&text[rest..]);
    out
}

fn row(record: MessageRecord) -> Row {
    let m = &record.message;
    let owed = matches!(m.status, MessageStatus::Queued | MessageStatus::Retrying);
    Row {
        id: m.id.0,
        recipient: m.recipient.masked(),
        template: m.kind.as_str(),
        state: m.status.as_str(),
        attempts: m.attempts,
        last_error: record.last_error.as_deref().map(|e| scrub(e, &m.recipient)),
        provider_message_id: record.provider_message_id.clone(),
        created: when(m.created_at),
        updated: when(record.updated_at),
        next_attempt: owed.then(|| when(record.next_attempt_at)),
        sent: record.sent_at.map(when),
    }
}

/// `GET /admin`: counts, the queue, and the newest messages (or those of one address).
async fn dashboard(
    State(state): State<AppState>,
    query: Result<Query<DashboardQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Ok(Query(query)) = query else {
        return message_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The dashboard's address could not be read.",
        );
    };
    let stats = state.messages.stats().await?;
    let queue_depth = match state.queue.depth().await {
        Ok(depth) => Some(depth),
        Err(error) => {
            tracing::warn!(%error, "queue depth unavailable for the dashboard");
            None
        }
    };
    let now = state.clock.now();
    let search = query
        .email
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let (recipient, search_error) = match search.map(EmailAddress::parse) {
        None => (None, None),
        Some(Ok(email)) => (Some(email), None),
        Some(Err(_)) => (None, Some("That is not an email address.")),
    };
    let rows: Vec<Row> = if search_error.is_some() {
        Vec::new()
    } else {
        state
            .messages
            .list(MessageQuery {
                recipient: recipient.clone(),
                before: query.before.map(MessageId),
                limit: PAGE_SIZE,
            })
            .await?
            .into_iter()
            .map(row)
            .collect()
    };
    let next_before = (rows.len() as u64 == PAGE_SIZE)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let view = DashboardView {
        counts: Counts {
            queued: stats.queued,
            sending: stats.sending,
            retrying: stats.retrying,
            sent: stats.sent,
            dead: stats.dead,
        },
        queue_depth,
        oldest_owed_age: stats.oldest_owed.map(|t| age((now - t).num_seconds())),
        search_masked: recipient.as_ref().map(EmailAddress::masked),
        search_error,
        // Kept for the paging link only; the page never prints it.
        search_param: recipient
            .as_ref()
            .map(|e| form_urlencode(e.as_str()))
            .unwrap_or_default(),
        rows,
        next_before,
        paged: query.before.is_some(),
    };
    Ok(html(
        StatusCode::OK,
        state.pages.render("web/admin.html", &view)?,
    ))
}

/// Percent-encodes everything but unreserved characters.
fn form_urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    #[serde(default)]
    done: Option<String>,
}

/// The fixed texts a button's redirect may show.
fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "requeued" => "Requeued: the message will be sent again, its attempts counted from zero.",
        "not-dead" => "Nothing requeued: the message is not dead.",
        "resent" => "A fresh confirmation email is owed to this account.",
        "pending" => "Nothing resent: a confirmation email to this account is still on its way.",
        "confirmed" => "Nothing resent: the account is already confirmed.",
        "no-account" => "Nothing resent: the account no longer exists.",
        _ => return None,
    })
}

/// `GET /admin/messages/{id}`: one message and its attempts.
async fn message(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, AppError> {
    let Ok(Path(id)) = id else {
        return crate::handlers::not_found(State(state)).await;
    };
    let Some(record) = state.messages.get(MessageId(id)).await? else {
        return crate::handlers::not_found(State(state)).await;
    };
    let attempts = state
        .messages
        .attempts(MessageId(id))
        .await?
        .into_iter()
        .map(|a| AttemptRow {
            attempt: a.attempt,
            outcome: a.outcome.as_str(),
            error: a
                .error
                .as_deref()
                .map(|e| scrub(e, &record.message.recipient)),
            provider_message_id: a.provider_message_id,
            finished: when(a.finished_at),
        })
        .collect();
    let dead = record.message.status == MessageStatus::Dead;
    let (csrf_token, set_cookie) = csrf_token_for(&state, &headers);
    let view = MessageView {
        row: row(record),
        attempts,
        dead,
        notice: query.done.as_deref().and_then(notice),
        csrf_token,
    };
    let mut response = html(
        StatusCode::OK,
        state.pages.render("web/admin_message.html", &view)?,
    );
    if let Some(cookie) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// A button's form: the CSRF token only.
#[derive(Debug, Deserialize)]
pub struct ButtonForm {
    #[serde(default)]
    csrf_token: String,
}

/// The CSRF check of a button; `Some` is the 403 (or 4xx) page to answer instead.
fn check_button(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<ButtonForm>, FormRejection>,
) -> Option<Response> {
    let token = match form {
        Ok(Form(form)) => form.csrf_token,
        Err(rejection) => {
            let page = message_page(
                state,
                rejection.status(),
                "Bad request",
                "The form could not be read.",
            );
            return Some(page.unwrap_or_else(IntoResponse::into_response));
        }
    };
    if state
        .csrf
        .verify(headers, &token, state.clock.now().timestamp())
    {
        return None;
    }
    tracing::info!("admin form without a valid CSRF token refused");
    let page = message_page(
        state,
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form has expired or did not come from this site. Please reload the page and try again.",
    );
    Some(page.unwrap_or_else(IntoResponse::into_response))
}

fn back_to(id: i64, done: &str) -> Response {
    Redirect::to(&format!("/admin/messages/{id}?done={done}")).into_response()
}

/// `POST /admin/messages/{id}/requeue`: a dead message gets a fresh start and is published.
async fn requeue(
    State(state): State<AppState>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<i64>,
    form: Result<Form<ButtonForm>, FormRejection>,
) -> Result<Response, AppError> {
    if let Some(response) = check_button(&state, &headers, form) {
        return Ok(response);
    }
    let requeued = state
        .messages
        .requeue_dead(Some(MessageId(id)), state.clock.now())
        .await?;
    if requeued.is_empty() {
        return Ok(back_to(id, "not-dead"));
    }
    tracing::info!(message_id = id, "dead message requeued from the dashboard");
    let request_id = request_id.map(|Extension(id)| id);
    crate::handlers::publish_job(&state, MessageId(id), request_id).await;
    Ok(back_to(id, "requeued"))
}

/// `POST /admin/messages/{id}/resend`: a fresh confirmation email to this message's account,
/// without the visitor-facing cooldown and cap (an operator decided), but never while one is
/// still on its way.
async fn resend(
    State(state): State<AppState>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<i64>,
    form: Result<Form<ButtonForm>, FormRejection>,
) -> Result<Response, AppError> {
    if let Some(response) = check_button(&state, &headers, form) {
        return Ok(response);
    }
    let Some(record) = state.messages.get(MessageId(id)).await? else {
        return crate::handlers::not_found(State(state)).await;
    };
    let unlimited = ResendPolicy {
        cooldown: chrono::TimeDelta::zero(),
        daily_cap: u32::MAX,
    };
    let outcome = state
        .users
        .resend(&record.message.recipient, unlimited, state.clock.now())
        .await?;
    let done = match outcome {
        Resend::Queued(new) => {
            tracing::info!(message_id = %new, "confirmation resent from the dashboard");
            let request_id = request_id.map(|Extension(id)| id);
            crate::handlers::publish_job(&state, new, request_id).await;
            return Ok(back_to(new.0, "resent"));
        }
        Resend::Pending => "pending",
        Resend::AlreadyConfirmed => "confirmed",
        Resend::NotRegistered => "no-account",
        Resend::CoolingDown | Resend::DailyCapReached => "pending",
    };
    Ok(back_to(id, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_accepted_as_bearer_or_basic_password_only() {
        let token = AdminToken::new("0123456789abcdef-admin").unwrap();
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            token.admits(&headers)
        };
        assert!(with("Bearer 0123456789abcdef-admin"));
        assert!(with("bearer   0123456789abcdef-admin "));
        let basic = STANDARD.encode("ops:0123456789abcdef-admin");
        assert!(with(&format!("Basic {basic}")));
        assert!(!with("Bearer 0123456789abcdef-admiN"));
        assert!(!with("Bearer 0123456789abcdef-admin-and-more"));
        assert!(!with("Bearer "));
        assert!(!with(&format!(
            "Basic {}",
            STANDARD.encode("0123456789abcdef-admin")
        )));
        assert!(!with("Basic !!!"));
        assert!(!with("Digest 0123456789abcdef-admin"));
        assert!(!token.admits(&HeaderMap::new()));
        assert!(AdminToken::new("short").is_none());
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
    }

    #[test]
    fn provider_errors_quoting_the_recipient_are_masked() {
        let email = EmailAddress::parse("Jane.Doe@Example.com").unwrap();
        assert_eq!(
            scrub(
                "550 5.1.1 <jane.doe@example.com>: unknown; JANE.DOE@EXAMPLE.COM",
                &email
            ),
            "550 5.1.1 <J***@example.com>: unknown; J***@example.com"
        );
        assert_eq!(scrub("451 try later", &email), "451 try later");
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(5), "5 s");
        assert_eq!(age(125), "2 min 5 s");
        assert_eq!(age(3 * 3600 + 120), "3 h 2 min");
        assert_eq!(age(2 * 86_400 + 3600), "2 d 1 h");
        assert_eq!(age(-3), "0 s");
    }
}
