//! Handler tests through `oneshot`, with mocked store and queue: no socket, no database.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::DateTime;
use domain::{EmailAddress, ManualClock, MessageId, User, UserId};
use http_body_util::BodyExt;
use queue::{Job, MockJobQueue, QueueError};
use store::{ConfirmOutcome, MockMessageStore, MockUserStore, Registration, StoreError};
use tower::ServiceExt;

use super::*;

const NOW: i64 = 1_700_000_000;
const KEY: &str = "test-secret-key";

fn tokens() -> ConfirmationTokens {
    ConfirmationTokens::new(&[KEY]).unwrap()
}

mod accounts;
mod admin;
mod api;
mod forms;
mod i18n;
mod ops;
mod request_ids;

/// The CSRF nonce of the test visitor's cookie.
const NONCE: &str = "AAAAAAAAAAAAAAAAAAAAAA";

fn csrf() -> Csrf {
    Csrf::new(&[KEY]).unwrap()
}

fn state(users: MockUserStore, queue: MockJobQueue, show_users: bool) -> AppState {
    state_with(
        users,
        queue,
        WebConfig {
            show_users,
            ..WebConfig::default()
        },
    )
}

fn state_with(users: MockUserStore, queue: MockJobQueue, config: WebConfig) -> AppState {
    state_full(users, MockMessageStore::new(), queue, config)
}

fn state_full(
    users: MockUserStore,
    messages: MockMessageStore,
    queue: MockJobQueue,
    config: WebConfig,
) -> AppState {
    AppState::new(
        Arc::new(users),
        Arc::new(messages),
        Arc::new(queue),
        Arc::new(tokens()),
        csrf(),
        Arc::new(ManualClock::at_unix(NOW)),
        page_templates(None).unwrap(),
        config,
    )
}

fn user(id: i64, email: &str, confirmed: bool) -> User {
    User {
        id: UserId(id),
        email: EmailAddress::parse(email).unwrap(),
        confirmed,
        email_sent: true,
        registered_on: DateTime::from_timestamp(NOW, 0).unwrap(),
        confirmed_on: None,
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }
    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

async fn send(state: AppState, request: Request<Body>) -> Reply {
    send_to(router(state), request).await
}

/// A request through any router (the public one, or the ops listener's).
async fn send_to(app: Router, request: Request<Body>) -> Reply {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// `POST /` as the browser sends it: the form fields plus the CSRF cookie and token.
fn post_form(body: impl Into<String>) -> Request<Body> {
    post_to("/", body)
}

/// A form post to `uri` with the CSRF cookie and token added.
fn post_to(uri: &str, body: impl Into<String>) -> Request<Body> {
    let token = csrf().token(NONCE, NOW);
    let mut body = body.into();
    if !body.is_empty() {
        body.push('&');
    }
    body.push_str(&format!("csrf_token={token}"));
    raw_post(uri, Some(&format!("csrf={NONCE}")), body)
}

/// A form post exactly as given (no CSRF token added).
fn raw_post(uri: &str, cookie: Option<&str>, body: impl Into<String>) -> Request<Body> {
    let mut request =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(body.into())).unwrap()
}

fn no_users() -> MockUserStore {
    let mut users = MockUserStore::new();
    users.expect_recent_users().never();
    users.expect_register().never();
    users.expect_resend().never();
    users.expect_confirm().never();
    users
}

fn idle_queue() -> MockJobQueue {
    let mut queue = MockJobQueue::new();
    queue.expect_publish().never();
    queue
}

#[tokio::test]
async fn home_shows_the_form_and_hides_users_by_default() {
    let reply = send(state(no_users(), idle_queue(), false), get("/")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("<h1>Register</h1>"));
    assert!(reply.body.contains("name=\"email\""));
    assert!(reply.body.contains("href=\"/static/main.css\""));
    assert!(!reply.body.contains("Registered Users"));
    assert_eq!(reply.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(reply.headers[header::REFERRER_POLICY], "no-referrer");
    assert!(
        reply.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

#[tokio::test]
async fn home_lists_newest_users_escaped_when_enabled() {
    let mut users = MockUserStore::new();
    users
        .expect_recent_users()
        .with(mockall::predicate::eq(50))
        .times(1)
        .returning(|_| {
            Ok(vec![
                user(2, "x&y@example.com", true).into(),
                user(1, "a@example.com", false).into(),
            ])
        });
    let reply = send(state(users, idle_queue(), true), get("/")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("<h2>Registered Users</h2>"));
    for heading in ["ID", "Email", "Confirm Email Sent?", "Confirmed?"] {
        assert!(
            reply.body.contains(&format!("<th>{heading}</th>")),
            "{heading}"
        );
    }
    assert!(reply.body.contains("x&amp;y@example.com"));
    let (first, second) = (
        reply.body.find("x&amp;y").unwrap(),
        reply.body.find("a@example.com").unwrap(),
    );
    assert!(first < second, "newest first");
}

#[tokio::test]
async fn registering_stores_publishes_and_redirects_with_the_flash() {
    let mut users = MockUserStore::new();
    users
        .expect_register()
        .withf(|email, locale, now| {
            email.as_str() == "New@example.com"
                && *locale == domain::Locale::En
                && now.timestamp() == NOW
        })
        .times(1)
        .returning(|email, _, _| {
            Ok(Registration::Created {
                user: user(5, email.as_str(), false),
                message: MessageId(9),
            })
        });
    let mut queue = MockJobQueue::new();
    queue
        .expect_publish()
        .with(mockall::predicate::function(|job: &Job| {
            job.message_id == MessageId(9) && job.request_id.is_some()
        }))
        .times(1)
        .returning(|_| Ok(()));
    let reply = send(
        state(users, queue, false),
        post_form("email=+New%40EXAMPLE.com+"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), Some("/"));
    assert!(
        reply
            .cookies()
            .iter()
            .any(|c| c.starts_with("flash=registered;"))
    );
}

#[tokio::test]
async fn existing_address_gets_exactly_the_same_response_and_nothing_is_queued() {
    let mut users = MockUserStore::new();
    users
        .expect_register()
        .times(1)
        .returning(|_, _, _| Ok(Registration::AlreadyRegistered));
    // An existing account is a resend: here it is confirmed, or still cooling down.
    users
        .expect_resend()
        .times(1)
        .returning(|_, _, _| Ok(store::Resend::AlreadyConfirmed));
    let existing_state = state(users, idle_queue(), false);
    let existing = send(existing_state.clone(), post_form("email=old%40example.com")).await;
    // The resend runs after the answer (so that it takes no longer than for a new address).
    existing_state.background.wait().await;

    let mut users = MockUserStore::new();
    users.expect_register().returning(|e, _, _| {
        Ok(Registration::Created {
            user: user(1, e.as_str(), false),
            message: MessageId(1),
        })
    });
    let mut queue = MockJobQueue::new();
    queue.expect_publish().returning(|_| Ok(()));
    let fresh = send(
        state(users, queue, false),
        post_form("email=new%40example.com"),
    )
    .await;

    assert_eq!(existing.status, fresh.status);
    assert_eq!(existing.location(), fresh.location());
    // The same cookies; the pending cookie's value signs the typed address (whatever its
    // account), so only its value differs.
    let without_pending_value = |cookies: Vec<String>| -> Vec<String> {
        cookies
            .into_iter()
            .map(|c| match c.split_once(';') {
                Some((name_value, rest)) if name_value.starts_with("pending=") => {
                    format!("pending=<value>;{rest}")
                }
                _ => c,
            })
            .collect()
    };
    assert!(existing.cookies().iter().any(|c| c.starts_with("pending=")));
    assert_eq!(
        without_pending_value(existing.cookies()),
        without_pending_value(fresh.cookies())
    );
    assert_eq!(existing.body, fresh.body);
}

fn registering_users() -> MockUserStore {
    let mut users = MockUserStore::new();
    users.expect_register().returning(|e, _, _| {
        Ok(Registration::Created {
            user: user(1, e.as_str(), false),
            message: MessageId(1),
        })
    });
    users
}

#[tokio::test(start_paused = true)]
async fn a_failing_queue_does_not_fail_registrations_and_is_skipped_for_a_while() {
    let mut queue = MockJobQueue::new();
    // Called once: the next registrations within the backoff skip the queue.
    queue
        .expect_publish()
        .times(1)
        .returning(|_| Err(QueueError::Transport("connection refused".into())));
    let state = state(registering_users(), queue, false);
    for _ in 0..3 {
        let reply = send(state.clone(), post_form("email=a%40example.com")).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
    }
    assert!(state.queue_gate.is_closed());
    tokio::time::advance(state.config.publish_backoff).await;
    assert!(!state.queue_gate.is_closed());
}

/// A queue whose publish never answers.
#[derive(Debug)]
struct HangingQueue;

#[async_trait::async_trait]
impl JobQueue for HangingQueue {
    async fn publish(&self, _job: Job) -> Result<(), QueueError> {
        std::future::pending().await
    }
    async fn receive(&self, _wait: Duration) -> Result<Option<queue::Delivery>, QueueError> {
        Ok(None)
    }
    async fn ack(&self, _delivery: &queue::Delivery) -> Result<(), QueueError> {
        Ok(())
    }
    async fn depth(&self) -> Result<u64, QueueError> {
        Ok(0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_queue_is_cut_off_by_the_publish_timeout() {
    let mut state = state(registering_users(), idle_queue(), false);
    state.queue = Arc::new(HangingQueue);
    let started = tokio::time::Instant::now();
    let reply = send(state.clone(), post_form("email=a%40example.com")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(started.elapsed(), state.config.publish_timeout);
    assert!(state.queue_gate.is_closed());
}

#[tokio::test]
async fn invalid_addresses_re_render_the_form_with_422() {
    let long = format!("{}@example.com", "a".repeat(300));
    let cases = [
        ("email=not-an-address", "exactly one @", true),
        ("email=", "Please enter an email address.", true),
        ("", "Please enter an email address.", true),
        (
            "email=a%40b%0D%0ABcc%3A+x%40evil.com",
            "control character",
            false,
        ),
        ("email=Joe+%3Cjoe%40example.com%3E", "without a name", true),
        (
            "email=%3Cscript%3Ealert(1)%3C%2Fscript%3E%40example.com",
            "angle brackets",
            true,
        ),
    ];
    for (body, message, _) in cases {
        let reply = send(state(no_users(), idle_queue(), false), post_form(body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(reply.body.contains(message), "{body}: {}", reply.body);
        assert!(
            !reply.body.contains("<script>"),
            "input must be escaped: {body}"
        );
    }
    let reply = send(
        state(no_users(), idle_queue(), false),
        post_form(format!("email={long}")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("too long"));
    assert!(
        !reply.body.contains(&"a".repeat(300)),
        "oversized input is not echoed"
    );
}

#[tokio::test]
async fn unreadable_or_oversized_forms_get_a_clear_4xx() {
    let reply = send(
        state(no_users(), idle_queue(), false),
        Request::post("/")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(reply.body.contains("could not be read"));

    let reply = send(
        state(no_users(), idle_queue(), false),
        post_form(format!("email={}", "a".repeat(BODY_LIMIT + 1))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_store_failure_is_a_generic_500_without_details() {
    let mut users = MockUserStore::new();
    users
        .expect_register()
        .returning(|_, _, _| Err(StoreError::Corrupt("secret internal detail".into())));
    let reply = send(
        state(users, idle_queue(), false),
        post_form("email=a%40example.com"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.contains("Something went wrong"));
    assert!(!reply.body.contains("secret internal detail"));
}

#[tokio::test]
async fn an_unreachable_database_is_a_503_with_retry_after() {
    let mut users = MockUserStore::new();
    users
        .expect_register()
        .returning(|_, _, _| Err(StoreError::Unavailable("pool timed out".into())));
    let reply = send(
        state(users, idle_queue(), false),
        post_form("email=a%40example.com"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers[header::RETRY_AFTER], "5");
    assert!(reply.body.contains("Nothing was saved"));
    assert!(!reply.body.contains("pool timed out"));
}

#[tokio::test]
async fn flash_is_shown_once_and_cleared() {
    let request = Request::get("/")
        .header(header::COOKIE, "flash=confirmed")
        .body(Body::empty())
        .unwrap();
    let reply = send(state(no_users(), idle_queue(), false), request).await;
    assert!(
        reply
            .body
            .contains("You have confirmed your account. Thanks!")
    );
    assert!(reply.body.contains("alert-success"));
    assert!(
        reply
            .cookies()
            .iter()
            .any(|c| c.starts_with("flash=;") && c.contains("Max-Age=0"))
    );
}

async fn confirm_with(token: &str, outcome: Option<ConfirmOutcome>) -> Reply {
    let mut users = MockUserStore::new();
    match outcome {
        Some(outcome) => {
            users
                .expect_confirm()
                // The token below is issued 10 s before NOW: its time is passed on.
                .withf(|email, issued_at, now| {
                    email.as_str() == "test@test.com"
                        && issued_at.timestamp() == NOW - 10
                        && now.timestamp() == NOW
                })
                .times(1)
                .returning(move |_, _, _| Ok(outcome));
        }
        None => {
            users.expect_confirm().never();
        }
    }
    send(
        state(users, idle_queue(), false),
        post_to(&format!("/confirm/{token}"), ""),
    )
    .await
}

fn flash_of(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), Some("/"));
    reply
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("flash="))
        .unwrap()
}

#[tokio::test]
async fn confirm_link_outcomes() {
    let email = EmailAddress::parse("test@test.com").unwrap();
    let fresh = tokens().issue(&email, NOW - 10);
    assert!(
        flash_of(&confirm_with(&fresh, Some(ConfirmOutcome::Confirmed)).await)
            .starts_with("flash=confirmed;")
    );
    assert!(
        flash_of(&confirm_with(&fresh, Some(ConfirmOutcome::AlreadyConfirmed)).await)
            .starts_with("flash=already-confirmed;")
    );
    // A valid link for a deleted user: the invalid message, never a 500.
    assert!(
        flash_of(&confirm_with(&fresh, Some(ConfirmOutcome::NotFound)).await)
            .starts_with("flash=invalid-link;")
    );
    // A link older than the account (address deleted and registered again): invalid.
    assert!(
        flash_of(&confirm_with(&fresh, Some(ConfirmOutcome::Stale)).await)
            .starts_with("flash=invalid-link;")
    );
}

#[tokio::test]
async fn bad_links_never_reach_the_store() {
    let email = EmailAddress::parse("test@test.com").unwrap();
    let expired = tokens().issue(&email, NOW - 3601);
    let future = tokens().issue(&email, NOW + 60);
    let other_key = ConfirmationTokens::new(&["another-key"])
        .unwrap()
        .issue(&email, NOW);
    let mut tampered = tokens().issue(&email, NOW);
    tampered.insert(1, 'x');
    let number_payload = domain::TimedSerializer::new(&[KEY], ConfirmationTokens::SALT)
        .unwrap()
        .sign(&serde_json::json!(42), NOW as u64);
    let not_an_address = domain::TimedSerializer::new(&[KEY], ConfirmationTokens::SALT)
        .unwrap()
        .sign(&serde_json::json!("nope"), NOW as u64);
    let huge = "a".repeat(5000);
    for token in [
        expired.as_str(),
        future.as_str(),
        other_key.as_str(),
        tampered.as_str(),
        number_payload.as_str(),
        not_an_address.as_str(),
        "invalid",
        "a.b.c",
        "%FF%FE",
        "%C3%A9.%C3%A9.%C3%A9",
        huge.as_str(),
    ] {
        let reply = confirm_with(token, None).await;
        assert!(
            flash_of(&reply).starts_with("flash=invalid-link;"),
            "{token}"
        );
        // The GET shows the message already (and reaches no store either).
        let mut users = MockUserStore::new();
        users.expect_confirm().never();
        let reply = send(
            state(users, idle_queue(), false),
            get(&format!("/confirm/{token}")),
        )
        .await;
        assert!(
            flash_of(&reply).starts_with("flash=invalid-link;"),
            "{token}"
        );
    }
}

/// The link's GET (and HEAD) shows the button and never confirms; a POST without the page's
/// token, or from another site, is refused.
#[tokio::test]
async fn the_link_page_confirms_nothing_and_its_button_needs_this_sites_token() {
    let email = EmailAddress::parse("test@test.com").unwrap();
    let token = tokens().issue(&email, NOW - 10);
    let uri = format!("/confirm/{token}");
    for method in ["GET", "HEAD"] {
        let mut users = MockUserStore::new();
        users.expect_confirm().never();
        let request = Request::builder()
            .method(method)
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let reply = send(state(users, idle_queue(), false), request).await;
        assert_eq!(reply.status, StatusCode::OK, "{method}");
        if method == "GET" {
            assert!(reply.body.contains("Confirm my account"), "{}", reply.body);
            assert!(reply.body.contains("t***@test.com"), "{}", reply.body);
            assert!(
                reply.body.contains(&format!("action=\"{uri}\"")),
                "{}",
                reply.body
            );
        }
    }
    let refused = |request: Request<Body>| async move {
        let mut users = MockUserStore::new();
        users.expect_confirm().never();
        send(state(users, idle_queue(), false), request).await
    };
    // No token, a token for another cookie.
    assert_eq!(
        refused(raw_post(&uri, None, "")).await.status,
        StatusCode::FORBIDDEN
    );
    let other = csrf().token("BBBBBBBBBBBBBBBBBBBBBB", NOW);
    let reply = refused(raw_post(
        &uri,
        Some(&format!("csrf={NONCE}")),
        format!("csrf_token={other}"),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // A valid token, but the browser says the form came from another site.
    let mut request = post_to(&uri, "");
    request
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(refused(request).await.status, StatusCode::FORBIDDEN);
}

/// With BASE_URL's origin known, a form post with another `Origin` is refused (403, nothing
/// done); the same origin is accepted. Over https every answer carries HSTS.
#[tokio::test]
async fn foreign_origins_are_refused_and_https_sends_hsts() {
    let config = || WebConfig {
        public_origin: Some("https://accounts.example.com".to_owned()),
        hsts: true,
        ..WebConfig::default()
    };
    let mut users = MockUserStore::new();
    users.expect_register().never();
    let mut request = post_form("email=a%40example.com");
    request
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    let reply = send(state_with(users, idle_queue(), config()), request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.headers[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000; includeSubDomains"
    );
    // The browser's own Sec-Fetch-Site decides when present: cross-site is refused even with
    // our origin; same-origin is accepted with `Origin: null` (what Chromium sends under
    // `Referrer-Policy: no-referrer`).
    let mut request = post_form("email=a%40example.com");
    request.headers_mut().insert(
        header::ORIGIN,
        "https://accounts.example.com".parse().unwrap(),
    );
    request
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let mut users = MockUserStore::new();
    users.expect_register().never();
    let reply = send(state_with(users, idle_queue(), config()), request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let mut request = post_form("email=a%40example.com");
    request
        .headers_mut()
        .insert(header::ORIGIN, "null".parse().unwrap());
    request
        .headers_mut()
        .insert("sec-fetch-site", "same-origin".parse().unwrap());
    let mut queue = MockJobQueue::new();
    queue.expect_publish().returning(|_| Ok(()));
    let reply = send(state_with(registering_users(), queue, config()), request).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);

    let mut request = post_form("email=a%40example.com");
    request.headers_mut().insert(
        header::ORIGIN,
        "https://accounts.example.com".parse().unwrap(),
    );
    let mut queue = MockJobQueue::new();
    queue.expect_publish().returning(|_| Ok(()));
    let reply = send(state_with(registering_users(), queue, config()), request).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    // Over plain http: no HSTS.
    let reply = send(state(no_users(), idle_queue(), false), get("/")).await;
    assert!(
        !reply
            .headers
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );
}

#[tokio::test]
async fn health_static_and_unknown_routes() {
    let reply = send(state(no_users(), idle_queue(), false), get("/healthz")).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "ok"));
    let reply = send(
        state(no_users(), idle_queue(), false),
        get("/static/main.css"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/css; charset=utf-8"
    );
    assert!(reply.body.contains(".alert-success"));
    let reply = send(state(no_users(), idle_queue(), false), get("/nope")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.body.contains("Page not found"));
}

/// With CONFIRMED_REDIRECT_URL, a confirmed (or already confirmed) visitor goes back to the
/// application; a bad link still goes home with its message.
#[tokio::test]
async fn a_confirmation_redirects_to_the_application_when_configured() {
    let email = EmailAddress::parse("test@test.com").unwrap();
    let token = tokens().issue(&email, NOW - 10);
    let target = "https://app.example.com/welcome?from=mail&email_confirmed=1";
    for outcome in [ConfirmOutcome::Confirmed, ConfirmOutcome::AlreadyConfirmed] {
        let mut users = MockUserStore::new();
        users
            .expect_confirm()
            .times(1)
            .returning(move |_, _, _| Ok(outcome));
        let config = WebConfig {
            confirmed_redirect: Some(target.to_owned()),
            ..WebConfig::default()
        };
        let reply = send(
            state_with(users, idle_queue(), config),
            post_to(&format!("/confirm/{token}"), ""),
        )
        .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{outcome:?}");
        assert_eq!(reply.location(), Some(target));
    }
    let config = WebConfig {
        confirmed_redirect: Some(target.to_owned()),
        ..WebConfig::default()
    };
    let reply = send(
        state_with(no_users(), idle_queue(), config),
        post_to("/confirm/forged.token.here", ""),
    )
    .await;
    assert!(
        flash_of(&reply).starts_with("flash=invalid-link"),
        "{:?}",
        reply.cookies()
    );
}
