//! The JSON API: keys, JSON errors for bad bodies (nothing reaches the store), each endpoint's
//! outcomes, and the OpenAPI document.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use domain::{ApiKeys, MessageKind, MessageRecord, MessageStatus, OwedMessage};
use store::{MessageQuery, Resend};

use super::*;

const API_KEY: &str = "0123456789abcdef0123456789abcdef-api";

fn api_config() -> WebConfig {
    WebConfig {
        api_keys: ApiKeys::parse(API_KEY).unwrap(),
        ..WebConfig::default()
    }
}

fn api_state(users: MockUserStore, messages: MockMessageStore, queue: MockJobQueue) -> AppState {
    state_full(users, messages, queue, api_config())
}

fn api_post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {API_KEY}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn api_get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {API_KEY}"))
        .body(Body::empty())
        .unwrap()
}

fn json(reply: &Reply) -> serde_json::Value {
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/json",
        "{}",
        reply.body
    );
    serde_json::from_str(&reply.body).unwrap()
}

/// The `error` code of a JSON error answer, checking it has a message too.
fn error_code(reply: &Reply) -> String {
    let body = json(reply);
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"].as_str().unwrap().to_owned()
}

fn publishes(times: usize) -> MockJobQueue {
    let mut queue = MockJobQueue::new();
    queue.expect_publish().times(times).returning(|_| Ok(()));
    queue
}

fn no_messages() -> MockMessageStore {
    let mut messages = MockMessageStore::new();
    messages.expect_list().never();
    messages
}

#[tokio::test]
async fn without_api_keys_there_is_no_api() {
    for request in [
        api_post("/api/v1/registrations", r#"{"email":"a@example.com"}"#),
        api_get("/api/v1/openapi.json"),
        api_get("/api/v1/accounts/a@example.com"),
    ] {
        let reply = send(state(no_users(), idle_queue(), false), request).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn calls_without_a_valid_key_get_401_then_429_and_reach_nothing() {
    let app = router(api_state(no_users(), no_messages(), idle_queue()));
    let attempt = |authorization: Option<&str>| {
        let mut request =
            Request::post("/api/v1/registrations").header(header::CONTENT_TYPE, "application/json");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let mut request = request
            .body(Body::from(r#"{"email":"a@example.com"}"#))
            .unwrap();
        let addr: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
        request
    };
    let wrong = format!("Bearer {API_KEY}x");
    let basic = format!("Basic {API_KEY}");
    for authorization in [
        None,
        Some(wrong.as_str()),
        Some(basic.as_str()),
        Some("Bearer "),
    ] {
        let reply = send_to(app.clone(), attempt(authorization)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(error_code(&reply), "unauthorized");
        assert_eq!(
            reply.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"api\""
        );
    }
    // Ten wrong keys a minute from one client (missing keys do not count); then even the right
    // key waits.
    for _ in 0..20 {
        let reply = send_to(app.clone(), attempt(None)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let mut throttled = None;
    for _ in 0..ADMIN_FAILURES_PER_MINUTE {
        let reply = send_to(app.clone(), attempt(Some(&wrong))).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = throttled.expect("throttled within ten wrong keys");
    assert_eq!(error_code(&reply), "too_many_requests");
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    let right = format!("Bearer {API_KEY}");
    let reply = send_to(app.clone(), attempt(Some(&right))).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    // No key at all is a 401 (it guesses nothing, and is not counted).
    let reply = send_to(app, attempt(None)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_bodies_are_json_4xx_and_never_reach_the_store() {
    let app = router(api_state(no_users(), no_messages(), idle_queue()));
    let cases: [(Request<Body>, StatusCode, &str); 8] = [
        (
            Request::post("/api/v1/registrations")
                .header(header::AUTHORIZATION, format!("Bearer {API_KEY}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("email=a%40example.com"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            api_post("/api/v1/registrations", r#"{"email": "#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            api_post("/api/v1/registrations", r#"{"mail":"a@example.com"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            api_post(
                "/api/v1/registrations",
                r#"{"email":"a@example.com","admin":true}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            api_post("/api/v1/registrations", r#"{"email":5}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            api_post("/api/v1/resend", r#"{"email":"not an address"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
        (
            api_post(
                "/api/v1/registrations",
                &format!(r#"{{"email":"{}@example.com"}}"#, "a".repeat(BODY_LIMIT)),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            api_get("/api/v1/accounts/not-an-address"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
    ];
    for (request, status, code) in cases {
        let reply = send_to(app.clone(), request).await;
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(error_code(&reply), code);
    }
    // Unknown routes and methods are JSON too.
    let reply = send_to(app.clone(), api_get("/api/v1/nothing")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&reply), "not_found");
    let reply = send_to(app, api_get("/api/v1/registrations")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&reply), "method_not_allowed");
}

#[tokio::test]
async fn registering_commits_then_publishes_and_answers_202() {
    let mut users = MockUserStore::new();
    users
        .expect_register()
        .withf(|email, _, _| email.as_str() == "New@example.com")
        .times(1)
        .returning(|_, _, _| {
            Ok(Registration::Created {
                user: user(7, "New@example.com", false),
                message: MessageId(70),
            })
        });
    let reply = send(
        api_state(users, no_messages(), publishes(1)),
        api_post("/api/v1/registrations", r#"{"email":" New@Example.COM "}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(
        json(&reply),
        serde_json::json!({"status": "pending", "email": "New@example.com", "created": true, "email_owed": true})
    );
}

/// `lang` chooses the account's language (else the request's `Accept-Language`, else English);
/// one the service does not speak is a 422 `invalid_lang` and nothing is stored.
#[tokio::test]
async fn registering_takes_the_account_s_language() {
    use domain::Locale;
    for (body, accept, want) in [
        (
            r#"{"email":"a@example.com","lang":"zh-CN"}"#,
            None,
            Locale::ZhCn,
        ),
        (
            r#"{"email":"a@example.com","lang":"zh-hans"}"#,
            Some("en"),
            Locale::ZhCn,
        ),
        (
            r#"{"email":"a@example.com","lang":"en"}"#,
            Some("zh-CN"),
            Locale::En,
        ),
        (
            r#"{"email":"a@example.com"}"#,
            Some("zh-CN,en;q=0.5"),
            Locale::ZhCn,
        ),
        (r#"{"email":"a@example.com"}"#, None, Locale::En),
    ] {
        let mut users = MockUserStore::new();
        users
            .expect_register()
            .withf(move |_, locale, _| *locale == want)
            .times(1)
            .returning(|_, _, _| {
                Ok(Registration::CreatedWithoutEmail {
                    user: user(7, "a@example.com", false),
                })
            });
        let mut request = api_post("/api/v1/registrations", body);
        if let Some(accept) = accept {
            request
                .headers_mut()
                .insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static(accept));
        }
        let reply = send(api_state(users, no_messages(), publishes(0)), request).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{body}: {}", reply.body);
    }
    let mut users = MockUserStore::new();
    users.expect_register().never();
    let reply = send(
        api_state(users, no_messages(), publishes(0)),
        api_post(
            "/api/v1/registrations",
            r#"{"email":"a@example.com","lang":"fr-FR"}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&reply), "invalid_lang");
    assert!(reply.body.contains("en, zh-CN"), "{}", reply.body);
}

#[tokio::test]
async fn registering_an_existing_address_resends_or_says_it_is_confirmed() {
    for (resend, status, owed) in [
        (
            Resend::Queued(MessageId(8)),
            StatusCode::ACCEPTED,
            Some(true),
        ),
        (Resend::CoolingDown, StatusCode::ACCEPTED, Some(false)),
        (Resend::AlreadyConfirmed, StatusCode::CONFLICT, None),
    ] {
        let mut users = MockUserStore::new();
        users
            .expect_register()
            .times(1)
            .returning(|_, _, _| Ok(Registration::AlreadyRegistered));
        users
            .expect_resend()
            .times(1)
            .returning(move |_, _, _| Ok(resend));
        let queue = publishes(usize::from(owed == Some(true)));
        let reply = send(
            api_state(users, no_messages(), queue),
            api_post("/api/v1/registrations", r#"{"email":"old@example.com"}"#),
        )
        .await;
        assert_eq!(reply.status, status, "{resend:?}: {}", reply.body);
        match owed {
            Some(owed) => {
                let body = json(&reply);
                assert_eq!(body["created"], false);
                assert_eq!(body["email_owed"], owed);
            }
            None => assert_eq!(error_code(&reply), "already_confirmed"),
        }
    }
}

#[tokio::test]
async fn resend_tells_a_key_holder_the_outcome() {
    let cases = [
        (Resend::Queued(MessageId(9)), StatusCode::ACCEPTED, "queued"),
        (Resend::Pending, StatusCode::ACCEPTED, "pending"),
        (Resend::NotRegistered, StatusCode::NOT_FOUND, "not_found"),
        (
            Resend::AlreadyConfirmed,
            StatusCode::CONFLICT,
            "already_confirmed",
        ),
        (Resend::Suppressed, StatusCode::CONFLICT, "suppressed"),
        (
            Resend::CoolingDown,
            StatusCode::TOO_MANY_REQUESTS,
            "cooling_down",
        ),
        (
            Resend::DailyCapReached,
            StatusCode::TOO_MANY_REQUESTS,
            "daily_cap",
        ),
    ];
    for (outcome, status, code) in cases {
        let mut users = MockUserStore::new();
        users
            .expect_resend()
            .times(1)
            .returning(move |_, _, _| Ok(outcome));
        let queue = publishes(usize::from(matches!(outcome, Resend::Queued(_))));
        let reply = send(
            api_state(users, no_messages(), queue),
            api_post("/api/v1/resend", r#"{"email":"a@example.com"}"#),
        )
        .await;
        assert_eq!(reply.status, status, "{outcome:?}");
        if status == StatusCode::ACCEPTED {
            assert_eq!(json(&reply)["status"], code);
        } else {
            assert_eq!(error_code(&reply), code);
        }
    }
}

fn sent_message(to: &str) -> MessageRecord {
    let at = DateTime::from_timestamp(NOW - 50, 0).unwrap();
    MessageRecord {
        message: OwedMessage {
            id: MessageId(70),
            user_id: UserId(7),
            kind: MessageKind::Confirm,
            recipient: EmailAddress::parse(to).unwrap(),
            status: MessageStatus::Sent,
            attempts: 1,
            created_at: at,
            locale: domain::Locale::En,
            password_binding: None,
        },
        last_error: None,
        provider_message_id: Some("<id@example.com>".to_owned()),
        next_attempt_at: at,
        updated_at: at,
        sent_at: Some(at),
    }
}

fn newest_message(to: &'static str) -> MockMessageStore {
    let mut messages = MockMessageStore::new();
    messages
        .expect_list()
        .withf(move |q: &MessageQuery| {
            q.limit == 1 && q.recipient.as_ref().map(EmailAddress::as_str) == Some(to)
        })
        .returning(move |_| Ok(vec![sent_message(to)]));
    messages
}

#[tokio::test]
async fn a_valid_token_confirms_and_answers_the_account() {
    let token = tokens().issue(&EmailAddress::parse("a@example.com").unwrap(), NOW - 10);
    let mut users = MockUserStore::new();
    users
        .expect_confirm()
        .times(1)
        .returning(|_, _, _| Ok(ConfirmOutcome::Confirmed));
    users.expect_find_by_email().times(1).returning(|_| {
        let mut user = user(7, "a@example.com", true);
        user.confirmed_on = DateTime::from_timestamp(NOW, 0);
        Ok(Some(user))
    });
    let reply = send(
        api_state(users, newest_message("a@example.com"), idle_queue()),
        api_post(
            "/api/v1/confirmations",
            &format!(r#"{{"token":"{token}"}}"#),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        json(&reply),
        serde_json::json!({
            "email": "a@example.com",
            "confirmed": true,
            "registered_at": "2023-11-14T22:13:20Z",
            "confirmed_at": "2023-11-14T22:13:20Z",
            "email_state": "sent",
            "suppressed": false,
        })
    );
}

#[tokio::test]
async fn bad_expired_and_used_tokens_get_their_codes() {
    let email = EmailAddress::parse("a@example.com").unwrap();
    let expired = tokens().issue(&email, NOW - 3601);
    let forged = ConfirmationTokens::new(&["another key"])
        .unwrap()
        .issue(&email, NOW);
    let cases = [
        (expired, StatusCode::GONE, "expired"),
        (forged, StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        (
            "x".repeat(5000),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
    ];
    for (token, status, code) in cases {
        let reply = send(
            api_state(no_users(), no_messages(), idle_queue()),
            api_post(
                "/api/v1/confirmations",
                &format!(r#"{{"token":"{token}"}}"#),
            ),
        )
        .await;
        assert_eq!(reply.status, status);
        assert_eq!(error_code(&reply), code);
    }
    let valid = tokens().issue(&email, NOW);
    for (outcome, status, code) in [
        (
            ConfirmOutcome::AlreadyConfirmed,
            StatusCode::CONFLICT,
            "already_confirmed",
        ),
        (ConfirmOutcome::NotFound, StatusCode::NOT_FOUND, "not_found"),
        (
            ConfirmOutcome::Stale,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
    ] {
        let mut users = MockUserStore::new();
        users
            .expect_confirm()
            .times(1)
            .returning(move |_, _, _| Ok(outcome));
        let reply = send(
            api_state(users, no_messages(), idle_queue()),
            api_post(
                "/api/v1/confirmations",
                &format!(r#"{{"token":"{valid}"}}"#),
            ),
        )
        .await;
        assert_eq!(reply.status, status, "{outcome:?}");
        assert_eq!(error_code(&reply), code);
    }
}

#[tokio::test]
async fn an_account_is_read_by_its_address() {
    let mut users = MockUserStore::new();
    users
        .expect_find_by_email()
        // Looked up by its key: the local part's case does not matter.
        .withf(|email| email.as_str() == "A@example.com" && email.key() == "a@example.com")
        .returning(|_| Ok(Some(user(7, "a@example.com", false))));
    let reply = send(
        api_state(users, newest_message("a@example.com"), idle_queue()),
        api_get("/api/v1/accounts/A%40Example.com"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = json(&reply);
    assert_eq!(body["confirmed"], false);
    assert_eq!(body["confirmed_at"], serde_json::Value::Null);
    assert_eq!(body["email_state"], "sent");

    let mut users = MockUserStore::new();
    users.expect_find_by_email().returning(|_| Ok(None));
    let reply = send(
        api_state(users, no_messages(), idle_queue()),
        api_get("/api/v1/accounts/nobody@example.com"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&reply), "not_found");
}

#[tokio::test]
async fn a_store_outage_is_a_json_503_with_retry_after() {
    let mut users = MockUserStore::new();
    users
        .expect_register()
        .returning(|_, _, _| Err(StoreError::Unavailable("connection refused".into())));
    let reply = send(
        api_state(users, no_messages(), idle_queue()),
        api_post("/api/v1/registrations", r#"{"email":"a@example.com"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&reply), "unavailable");
    assert!(!reply.body.contains("connection refused"), "{}", reply.body);
    assert_eq!(reply.headers[header::RETRY_AFTER], "5");
}

#[tokio::test]
async fn api_posts_do_not_count_against_the_form_limit() {
    let mut users = MockUserStore::new();
    users.expect_register().times(3).returning(|email, _, _| {
        Ok(Registration::CreatedWithoutEmail {
            user: user(1, email.as_str(), false),
        })
    });
    let app = router(state_full(
        users,
        no_messages(),
        idle_queue(),
        WebConfig {
            rate_limit_per_ip: 1,
            ..api_config()
        },
    ));
    for i in 0..3 {
        let mut request = api_post(
            "/api/v1/registrations",
            &format!(r#"{{"email":"u{i}@example.com"}}"#),
        );
        let addr: SocketAddr = "192.0.2.8:40000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
        let reply = send_to(app.clone(), request).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    }
}

#[tokio::test]
async fn the_openapi_document_is_public_and_describes_every_route() {
    let reply = send(
        api_state(no_users(), no_messages(), idle_queue()),
        get("/api/v1/openapi.json"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = json(&reply);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    for (path, method) in [
        ("/api/v1/registrations", "post"),
        ("/api/v1/resend", "post"),
        ("/api/v1/confirmations", "post"),
        ("/api/v1/accounts/{email}", "get"),
    ] {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{path} {method}");
        assert_eq!(operation["security"][0]["api_key"], serde_json::json!([]));
        assert!(operation["responses"]["401"].is_object(), "{path}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    assert!(
        codes
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("already_confirmed")),
        "{codes}"
    );
}

fn with_origins(config: WebConfig) -> WebConfig {
    WebConfig {
        allowed_redirect_origins: vec!["https://app.example.com".to_owned()],
        ..config
    }
}

#[tokio::test]
async fn a_registration_may_name_its_confirmation_page_on_an_allowed_origin_only() {
    let mut users = MockUserStore::new();
    users.expect_register().times(1).returning(|email, _, _| {
        Ok(Registration::CreatedWithoutEmail {
            user: user(1, email.as_str(), false),
        })
    });
    users
        .expect_set_confirm_redirect()
        .withf(|email, url| {
            email.as_str() == "a@example.com"
                && url == "https://app.example.com/done?ref=7&email_confirmed=1"
        })
        .times(1)
        .returning(|_, _| Ok(true));
    let reply = send(
        state_full(
            users,
            no_messages(),
            idle_queue(),
            with_origins(api_config()),
        ),
        api_post(
            "/api/v1/registrations",
            r#"{"email":"a@example.com","redirect":"https://app.example.com/done?ref=7"}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);

    // Another origin, or no allowed origin at all: 422, and nothing is registered.
    for config in [with_origins(api_config()), api_config()] {
        let reply = send(
            state_full(no_users(), no_messages(), idle_queue(), config),
            api_post(
                "/api/v1/registrations",
                r#"{"email":"a@example.com","redirect":"https://evil.example.com/"}"#,
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_code(&reply), "invalid_redirect");
    }
}

/// The button sends the visitor to the page the registration named, while its origin is still
/// allowed; otherwise to CONFIRMED_REDIRECT_URL.
#[tokio::test]
async fn the_button_follows_the_registrations_redirect_while_its_origin_is_allowed() {
    let token = tokens().issue(&EmailAddress::parse("test@test.com").unwrap(), NOW - 10);
    let stored = "https://app.example.com/done?email_confirmed=1";
    let fallback = "https://www.example.com/?email_confirmed=1";
    for (origins, expected) in [
        (vec!["https://app.example.com".to_owned()], stored),
        (vec!["https://other.example.com".to_owned()], fallback),
    ] {
        let mut users = MockUserStore::new();
        users
            .expect_confirm()
            .returning(|_, _, _| Ok(ConfirmOutcome::Confirmed));
        users
            .expect_confirm_redirect()
            .returning(|_| Ok(Some(stored.to_owned())));
        let config = WebConfig {
            allowed_redirect_origins: origins,
            confirmed_redirect: Some(fallback.to_owned()),
            ..WebConfig::default()
        };
        let reply = send(
            state_with(users, idle_queue(), config),
            post_to(&format!("/confirm/{token}"), ""),
        )
        .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        assert_eq!(reply.location(), Some(expected));
    }
}
