//! The forms' defences and the resend flow: CSRF, the honeypot, the per-IP limit, resend
//! outcomes, and a table of hostile inputs that must never reach the store.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use domain::ResendPolicy;
use store::Resend;

use super::*;

/// A post from a given client address, as `axum::serve` with connect info would tag it.
fn from_ip(mut request: Request<Body>, ip: &str) -> Request<Body> {
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

fn flash_cookie(reply: &Reply) -> Option<String> {
    reply
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("flash="))
}

#[tokio::test]
async fn the_home_page_sets_a_csrf_cookie_once_and_puts_its_token_in_both_forms() {
    let reply = send(state(no_users(), idle_queue(), false), get("/")).await;
    let cookie = reply
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("csrf="))
        .expect("a CSRF cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let nonce = cookie["csrf=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(reply.body.matches("name=\"csrf_token\"").count(), 2);
    let token = reply
        .body
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(header::COOKIE, format!("csrf={nonce}").parse().unwrap());
    assert!(csrf().verify(&headers, token, NOW));
    // Both forms and their honeypots are there.
    assert!(reply.body.contains("id=\"register-form\""));
    assert!(
        reply
            .body
            .contains("id=\"resend-form\" method=\"post\" action=\"/resend\"")
    );
    assert_eq!(reply.body.matches("name=\"website\"").count(), 2);

    // A visitor who has the cookie keeps it.
    let request = Request::get("/")
        .header(header::COOKIE, format!("csrf={NONCE}"))
        .body(Body::empty())
        .unwrap();
    let reply = send(state(no_users(), idle_queue(), false), request).await;
    assert!(reply.cookies().iter().all(|c| !c.starts_with("csrf=")));
    assert!(reply.body.contains(&csrf().token(NONCE, NOW)));
}

#[tokio::test]
async fn posts_without_a_valid_csrf_token_get_403_and_change_nothing() {
    let other_nonce = "BBBBBBBBBBBBBBBBBBBBBB";
    let good = csrf().token(NONCE, NOW);
    let old = csrf().token(NONCE, NOW - CSRF_MAX_AGE - 1);
    let foreign = Csrf::new(&["another key"]).unwrap().token(NONCE, NOW);
    let cookie = format!("csrf={NONCE}");
    let other = format!("csrf={other_nonce}");
    let cases: Vec<(&str, Option<&str>, String)> = vec![
        ("no token, no cookie", None, "email=a%40example.com".into()),
        ("no token", Some(&cookie), "email=a%40example.com".into()),
        (
            "no cookie",
            None,
            format!("email=a%40example.com&csrf_token={good}"),
        ),
        (
            "another visitor's cookie",
            Some(&other),
            format!("email=a%40example.com&csrf_token={good}"),
        ),
        (
            "expired token",
            Some(&cookie),
            format!("email=a%40example.com&csrf_token={old}"),
        ),
        (
            "token signed with another key",
            Some(&cookie),
            format!("email=a%40example.com&csrf_token={foreign}"),
        ),
        (
            "garbage token",
            Some(&cookie),
            "email=a%40example.com&csrf_token=..%00x".into(),
        ),
        (
            "empty token",
            Some(&cookie),
            "email=a%40example.com&csrf_token=".into(),
        ),
    ];
    for uri in ["/", "/resend"] {
        for (case, cookie, body) in &cases {
            let reply = send(
                state(no_users(), idle_queue(), false),
                raw_post(uri, *cookie, body.clone()),
            )
            .await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri}: {case}");
            assert!(
                reply.body.contains("This form has expired"),
                "{uri}: {case}"
            );
            assert_eq!(flash_cookie(&reply), None, "{uri}: {case}");
        }
    }
}

#[tokio::test]
async fn a_filled_honeypot_gets_the_normal_answer_and_nothing_is_stored() {
    for (uri, flash) in [("/", "flash=registered;"), ("/resend", "flash=resent;")] {
        let reply = send(
            state(no_users(), idle_queue(), false),
            post_to(
                uri,
                "email=bot%40example.com&website=http%3A%2F%2Fspam.example",
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{uri}");
        assert!(flash_cookie(&reply).unwrap().starts_with(flash), "{uri}");
    }
}

#[tokio::test]
async fn resend_answers_the_same_whatever_the_address() {
    let outcomes = [
        Resend::Queued(MessageId(7)),
        Resend::NotRegistered,
        Resend::AlreadyConfirmed,
        Resend::Pending,
        Resend::CoolingDown,
        Resend::DailyCapReached,
    ];
    let mut replies = Vec::new();
    for outcome in outcomes {
        let mut users = MockUserStore::new();
        users
            .expect_resend()
            .withf(|email, policy, now| {
                email.as_str() == "Someone@example.com"
                    && *policy == WebConfig::default().resend
                    && now.timestamp() == NOW
            })
            .times(1)
            .returning(move |_, _, _| Ok(outcome));
        let mut queue = MockJobQueue::new();
        let publishes = usize::from(matches!(outcome, Resend::Queued(_)));
        queue
            .expect_publish()
            .with(mockall::predicate::function(|job: &Job| {
                job.message_id == MessageId(7) && job.request_id.is_some()
            }))
            .times(publishes)
            .returning(|_| Ok(()));
        let reply = send(
            state(users, queue, false),
            post_to("/resend", "email=Someone%40EXAMPLE.com"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{outcome:?}");
        replies.push((
            reply.status,
            reply.location().map(str::to_owned),
            reply.cookies(),
            reply.body,
        ));
    }
    assert!(replies.windows(2).all(|w| w[0] == w[1]), "{replies:?}");
    assert!(replies[0].2[0].starts_with("flash=resent;"));

    // The flash it leads to.
    let request = Request::get("/")
        .header(header::COOKIE, "flash=resent")
        .body(Body::empty())
        .unwrap();
    let reply = send(state(no_users(), idle_queue(), false), request).await;
    assert!(reply.body.contains(
        "If that address has an account waiting for confirmation, a new confirmation email is on its way."
    ));
}

#[tokio::test]
async fn registering_an_unconfirmed_address_again_is_a_resend_with_the_configured_limits() {
    let limits = ResendPolicy {
        cooldown: chrono::TimeDelta::seconds(300),
        daily_cap: 2,
    };
    let mut users = MockUserStore::new();
    users
        .expect_register()
        .times(1)
        .returning(|_, _, _| Ok(Registration::AlreadyRegistered));
    users
        .expect_resend()
        .withf(move |email, policy, _| email.as_str() == "again@example.com" && *policy == limits)
        .times(1)
        .returning(|_, _, _| Ok(Resend::Queued(MessageId(3))));
    let mut queue = MockJobQueue::new();
    queue
        .expect_publish()
        .with(mockall::predicate::function(|job: &Job| {
            job.message_id == MessageId(3) && job.request_id.is_some()
        }))
        .times(1)
        .returning(|_| Ok(()));
    let config = WebConfig {
        resend: limits,
        ..WebConfig::default()
    };
    let reply = send(
        state_with(users, queue, config),
        post_form("email=again%40example.com"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(
        flash_cookie(&reply)
            .unwrap()
            .starts_with("flash=registered;")
    );
}

#[tokio::test]
async fn invalid_addresses_on_the_resend_form_are_shown_under_it() {
    let reply = send(
        state(no_users(), idle_queue(), false),
        post_to("/resend", "email=not-an-address"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"resend-email-error\""));
    assert!(!reply.body.contains("id=\"email-error\""));
    assert!(reply.body.contains("value=\"not-an-address\""));
}

fn resending_users() -> MockUserStore {
    let mut users = MockUserStore::new();
    users
        .expect_resend()
        .returning(|_, _, _| Ok(Resend::NotRegistered));
    users
}

#[tokio::test]
async fn thirty_posts_from_one_ip_in_a_minute_get_429_after_twenty() {
    let state = state(resending_users(), idle_queue(), false);
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let request = from_ip(post_to("/resend", "email=a%40example.com"), "198.51.100.4");
        statuses.push(send(state.clone(), request).await.status);
    }
    assert!(
        statuses[..20].iter().all(|s| *s == StatusCode::SEE_OTHER),
        "{statuses:?}"
    );
    assert!(
        statuses[20..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    let request = from_ip(post_to("/", "email=a%40example.com"), "198.51.100.4");
    let reply = send(state.clone(), request).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers[header::RETRY_AFTER], "3");
    assert!(reply.body.contains("Too many requests"));
    // Pages are not limited, and other clients are not affected.
    let reply = send(state.clone(), from_ip(get("/"), "198.51.100.4")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let request = from_ip(post_to("/resend", "email=a%40example.com"), "198.51.100.5");
    assert_eq!(
        send(state.clone(), request).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_limit_follows_the_trusted_proxy_header_only_when_configured() {
    let behind_proxy = |client: &str| {
        let mut request = from_ip(post_to("/resend", "email=a%40example.com"), "10.0.0.1");
        request
            .headers_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
        request
    };
    let config = WebConfig {
        rate_limit_per_ip: 1,
        trusted_proxy_header: Some(HeaderName::from_static("x-forwarded-for")),
        ..WebConfig::default()
    };
    let state = state_with(resending_users(), idle_queue(), config);
    assert_eq!(
        send(state.clone(), behind_proxy("203.0.113.1"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        send(state.clone(), behind_proxy("203.0.113.2"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        send(state.clone(), behind_proxy("203.0.113.1"))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Without the setting the header is ignored: every post is the proxy's.
    let config = WebConfig {
        rate_limit_per_ip: 1,
        ..WebConfig::default()
    };
    let state = state_with(resending_users(), idle_queue(), config);
    assert_eq!(
        send(state.clone(), behind_proxy("203.0.113.1"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        send(state.clone(), behind_proxy("203.0.113.2"))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_zero_limit_turns_it_off() {
    let config = WebConfig {
        rate_limit_per_ip: 0,
        ..WebConfig::default()
    };
    let state = state_with(resending_users(), idle_queue(), config);
    for _ in 0..50 {
        let request = from_ip(post_to("/resend", "email=a%40example.com"), "198.51.100.4");
        assert_eq!(
            send(state.clone(), request).await.status,
            StatusCode::SEE_OTHER
        );
    }
}

/// Hostile input on both forms and on the link: the status it gets, and (through mocks that
/// refuse every call) proof that nothing was stored, queued or sent.
#[tokio::test]
async fn hostile_inputs_get_a_clear_4xx_and_touch_nothing() {
    let ten_kb = "a".repeat(10 * 1024);
    let form_cases: Vec<(&str, String, StatusCode)> = vec![
        (
            "CR/LF header injection",
            "email=a%40b.com%0D%0ABcc%3A+c%40evil.com".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bare LF",
            "email=a%40b.com%0Ax".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "NUL",
            "email=a%00%40example.com".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "10 KB address",
            format!("email={ten_kb}%40example.com"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "20 KB body",
            format!("email={ten_kb}{ten_kb}"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "dotless i look-alike",
            "email=adm%C4%B1n%40example.com".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "Cyrillic a look-alike",
            "email=%D0%B0dmin%40example.com".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "display name",
            "email=Admin+%3Cadmin%40example.com%3E".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "quoted local part",
            "email=%22a+b%22%40example.com".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "address literal",
            "email=a%40%5B127.0.0.1%5D".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "two @",
            "email=a%40b%40example.com".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bad IDN domain",
            "email=a%40xn--.example".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "invalid percent-encoding",
            "email=a%40%ZZexample.com".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "invalid UTF-8",
            "email=%FF%FE%40example.com".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "repeated field",
            "email=a%40example.com&email=b%40example.com".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for uri in ["/", "/resend"] {
        for (case, body, status) in &form_cases {
            let reply = send(
                state(no_users(), idle_queue(), false),
                post_to(uri, body.clone()),
            )
            .await;
            assert_eq!(reply.status, *status, "{uri}: {case}: {}", reply.body);
            assert!(flash_cookie(&reply).is_none(), "{uri}: {case}");
            assert!(!reply.body.contains("<script"), "{uri}: {case}");
        }
    }
    let long_token = "a".repeat(5000);
    let link_cases = [
        "/confirm/garbage",
        "/confirm/..%2F..%2Fetc%2Fpasswd",
        "/confirm/%00",
        "/confirm/a.b.c",
        "/confirm/eyJhIjoxfQ.AAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/confirm/%F0%9F%92%A9",
        &format!("/confirm/{long_token}"),
    ];
    for uri in link_cases {
        let reply = send(state(no_users(), idle_queue(), false), get(uri)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{uri}");
        assert!(
            flash_cookie(&reply)
                .unwrap()
                .starts_with("flash=invalid-link;"),
            "{uri}"
        );
    }
}

/// IDN domains are accepted and stored in their ASCII (punycode) form, so a look-alike domain
/// is a different account from the one it imitates.
#[tokio::test]
async fn idn_domains_register_in_punycode() {
    let mut users = MockUserStore::new();
    users
        .expect_register()
        .withf(|email, _, _| email.as_str() == "admin@xn--exampe-t9a.com")
        .times(1)
        .returning(|email, _, _| {
            Ok(Registration::Created {
                user: user(1, email.as_str(), false),
                message: MessageId(1),
            })
        });
    let mut queue = MockJobQueue::new();
    queue.expect_publish().times(1).returning(|_| Ok(()));
    let reply = send(
        state(users, queue, false),
        post_form("email=admin%40examp%C4%B1e.com"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}
