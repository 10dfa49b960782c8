//! The delivery dashboard: off without a token, closed without it, masked, CSRF-protected
//! buttons.

use domain::{MessageKind, MessageRecord, MessageStatus, OwedMessage, ResendPolicy};
use store::{Attempt, DeliveryStats, MessageQuery, Resend};

use super::*;

const TOKEN: &str = "admin-token-0123456789";

fn admin_config() -> WebConfig {
    WebConfig {
        admin_token: AdminToken::new(TOKEN).ok(),
        ..WebConfig::default()
    }
}

fn record(id: i64, to: &str, status: MessageStatus, error: Option<&str>) -> MessageRecord {
    let at = DateTime::from_timestamp(NOW - 100, 0).unwrap();
    MessageRecord {
        message: OwedMessage {
            id: MessageId(id),
            user_id: UserId(1),
            kind: MessageKind::Confirm,
            recipient: EmailAddress::parse(to).unwrap(),
            status,
            attempts: 3,
            created_at: at,
            locale: domain::Locale::En,
            password_binding: None,
        },
        last_error: error.map(str::to_owned),
        provider_message_id: (status == MessageStatus::Sent).then(|| "ses-0001".to_owned()),
        next_attempt_at: at,
        updated_at: at,
        sent_at: None,
    }
}

/// A dashboard button's post: the form token bound to the admin credential.
fn admin_post(uri: &str) -> Request<Body> {
    let binding = AdminToken::new(TOKEN).unwrap().binding();
    let token = csrf().admin_token(&binding, NOW);
    raw_post(uri, None, format!("csrf_token={token}"))
}

fn authed(mut request: Request<Body>) -> Request<Body> {
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    request
}

fn dashboard_store() -> MockMessageStore {
    let mut messages = MockMessageStore::new();
    messages.expect_stats().returning(|| {
        Ok(DeliveryStats {
            queued: 4,
            sending: 1,
            retrying: 2,
            sent: 40,
            sent_is_estimate: false,
            dead: 3,
            cancelled: 0,
            bounced: 1,
            complained: 2,
            oldest_owed: DateTime::from_timestamp(NOW - 125, 0),
        })
    });
    messages.expect_list().returning(|query: MessageQuery| {
        assert_eq!(query.limit, 50);
        Ok(vec![
            record(
                9,
                "Jane.Doe@example.com",
                MessageStatus::Dead,
                Some("550 5.1.1 <jane.doe@example.com>: no such user"),
            ),
            record(8, "bob@example.org", MessageStatus::Sent, None),
        ])
    });
    messages
}

fn depth_queue(depth: u64) -> MockJobQueue {
    let mut queue = MockJobQueue::new();
    queue.expect_depth().returning(move || Ok(depth));
    queue.expect_publish().never();
    queue
}

#[tokio::test]
async fn without_a_token_configured_there_is_no_admin() {
    for uri in ["/admin", "/admin/messages/1"] {
        let reply = send(state(no_users(), idle_queue(), false), authed(get(uri))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn the_dashboard_needs_the_token() {
    let basic_wrong = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "ops:wrong-token-0000000"
        )
    );
    for auth in [None, Some("Bearer nope"), Some(basic_wrong.as_str())] {
        let mut request = get("/admin");
        if let Some(auth) = auth {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, auth.parse().unwrap());
        }
        let state = state_full(
            no_users(),
            MockMessageStore::new(),
            idle_queue(),
            admin_config(),
        );
        let reply = send(state, request).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(
            reply.headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert!(!reply.body.contains("Delivery dashboard</h1>"));
    }
    // The buttons too, before any CSRF or store work.
    let state = state_full(
        no_users(),
        MockMessageStore::new(),
        idle_queue(),
        admin_config(),
    );
    let reply = send(state, post_to("/admin/messages/9/requeue", "")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_estimated_sent_count_is_labelled_as_such() {
    let mut messages = MockMessageStore::new();
    messages.expect_stats().returning(|| {
        Ok(DeliveryStats {
            sent: 2_000_000,
            sent_is_estimate: true,
            ..DeliveryStats::default()
        })
    });
    messages.expect_list().returning(|_| Ok(Vec::new()));
    let state = state_full(no_users(), messages, depth_queue(0), admin_config());
    let reply = send(state, authed(get("/admin"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        reply.body.contains("about 2000000</abbr>"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn the_dashboard_shows_counts_queue_and_masked_messages() {
    let state = state_full(
        no_users(),
        dashboard_store(),
        depth_queue(6),
        admin_config(),
    );
    let reply = send(state, authed(get("/admin"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = &reply.body;
    for (state, n) in [
        ("queued", 4),
        ("sending", 1),
        ("retrying", 2),
        ("sent", 40),
        ("dead", 3),
        ("bounced", 1),
        ("complained", 2),
    ] {
        assert!(
            body.contains(&format!("<td data-state=\"{state}\">{n}</td>")),
            "{state}"
        );
    }
    assert!(body.contains("<td>6</td>"), "queue depth");
    assert!(body.contains("2 min 5 s"), "oldest owed age");
    assert!(body.contains("J***@example.com"));
    assert!(body.contains("b***@example.org"));
    assert!(
        body.contains("href=\"&#x2f;admin&#x2f;messages&#x2f;9\"")
            || body.contains("href=\"/admin/messages/9\"")
    );
    // No full address anywhere, not even inside a provider's error.
    assert!(
        !body.to_ascii_lowercase().contains("jane.doe@example.com"),
        "{body}"
    );
    assert!(!body.contains("bob@example.org"));
    assert!(body.contains("550 5.1.1 &lt;J***@example.com&gt;: no such user"));
    assert!(body.contains("ses-0001"));
}

#[tokio::test]
async fn search_looks_up_by_address_without_showing_it() {
    let mut messages = MockMessageStore::new();
    messages
        .expect_stats()
        .returning(|| Ok(DeliveryStats::default()));
    messages
        .expect_list()
        .withf(|q| {
            q.recipient.as_ref().map(EmailAddress::as_str) == Some("Jane.Doe@example.com")
                && q.before == Some(MessageId(100))
        })
        .times(1)
        .returning(|_| {
            Ok(vec![record(
                9,
                "Jane.Doe@example.com",
                MessageStatus::Sent,
                None,
            )])
        });
    let state = state_full(no_users(), messages, depth_queue(0), admin_config());
    let reply = send(
        state,
        authed(get("/admin?email=Jane.Doe%40example.com&before=100")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("Messages to J***@example.com"));
    assert!(
        !reply
            .body
            .to_ascii_lowercase()
            .contains("jane.doe@example.com")
    );

    // A bad address: a clear message, no lookup.
    let mut messages = MockMessageStore::new();
    messages
        .expect_stats()
        .returning(|| Ok(DeliveryStats::default()));
    messages.expect_list().never();
    let state = state_full(no_users(), messages, depth_queue(0), admin_config());
    let reply = send(state, authed(get("/admin?email=not-an-address"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("That is not an email address."));
    let state = state_full(
        no_users(),
        MockMessageStore::new(),
        idle_queue(),
        admin_config(),
    );
    let reply = send(state, authed(get("/admin?before=x"))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

fn message_store(status: MessageStatus) -> MockMessageStore {
    let mut messages = MockMessageStore::new();
    messages
        .expect_get()
        .with(mockall::predicate::eq(MessageId(9)))
        .returning(move |_| {
            Ok(Some(record(
                9,
                "Jane.Doe@example.com",
                status,
                Some("451 later"),
            )))
        });
    messages.expect_get().returning(|_| Ok(None));
    messages.expect_attempts().returning(|_| {
        Ok(vec![Attempt {
            attempt: 1,
            outcome: MessageStatus::Retrying,
            error: Some("451 4.7.1 <JANE.DOE@example.com> greylisted".into()),
            provider_message_id: None,
            finished_at: DateTime::from_timestamp(NOW - 50, 0).unwrap(),
        }])
    });
    messages
}

#[tokio::test]
async fn a_message_page_shows_its_attempts_and_the_buttons_it_allows() {
    let state = state_full(
        no_users(),
        message_store(MessageStatus::Dead),
        idle_queue(),
        admin_config(),
    );
    let reply = send(state, authed(get("/admin/messages/9?done=requeued"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("Message 9"));
    assert!(reply.body.contains("<td id=\"language\">en</td>"));
    assert!(
        reply
            .body
            .contains("451 4.7.1 &lt;J***@example.com&gt; greylisted")
    );
    assert!(reply.body.contains("id=\"requeue-form\""));
    assert!(reply.body.contains("id=\"resend-form\""));
    assert!(
        reply
            .body
            .contains("Requeued: the message will be sent again")
    );
    // The buttons carry a token bound to the admin credential (no public CSRF cookie).
    let binding = AdminToken::new(TOKEN).unwrap().binding();
    let marker = "name=\"csrf_token\" value=\"";
    let start = reply.body.find(marker).unwrap() + marker.len();
    let token = reply.body[start..].split('"').next().unwrap();
    assert!(csrf().verify_admin(&binding, token, NOW));

    let state = state_full(
        no_users(),
        message_store(MessageStatus::Sent),
        idle_queue(),
        admin_config(),
    );
    let reply = send(state, authed(get("/admin/messages/9?done=%3Cscript%3E"))).await;
    assert!(
        !reply.body.contains("id=\"requeue-form\""),
        "only dead messages can be requeued"
    );
    assert!(!reply.body.contains("<script>"));

    for uri in ["/admin/messages/10", "/admin/messages/abc"] {
        let state = state_full(
            no_users(),
            message_store(MessageStatus::Sent),
            idle_queue(),
            admin_config(),
        );
        assert_eq!(
            send(state, authed(get(uri))).await.status,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
    }
}

#[tokio::test]
async fn requeue_needs_csrf_then_requeues_and_publishes() {
    let mut messages = MockMessageStore::new();
    messages.expect_requeue_dead().never();
    let state = state_full(no_users(), messages, idle_queue(), admin_config());
    let reply = send(
        state,
        authed(raw_post(
            "/admin/messages/9/requeue",
            Some(&format!("csrf={NONCE}")),
            "",
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // The public forms' token (valid for its cookie) is no dashboard token.
    let mut messages = MockMessageStore::new();
    messages.expect_requeue_dead().never();
    let state = state_full(no_users(), messages, idle_queue(), admin_config());
    let reply = send(state, authed(post_to("/admin/messages/9/requeue", ""))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let mut messages = MockMessageStore::new();
    messages
        .expect_requeue_dead()
        .withf(|id, _| *id == Some(MessageId(9)))
        .times(1)
        .returning(|_, _| Ok(vec![MessageId(9)]));
    let mut queue = MockJobQueue::new();
    queue
        .expect_publish()
        .withf(|job| job.message_id == MessageId(9))
        .times(1)
        .returning(|_| Ok(()));
    let state = state_full(no_users(), messages, queue, admin_config());
    let reply = send(state, authed(admin_post("/admin/messages/9/requeue"))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), Some("/admin/messages/9?done=requeued"));

    // Not dead (any more): nothing published.
    let mut messages = MockMessageStore::new();
    messages.expect_requeue_dead().returning(|_, _| Ok(vec![]));
    let state = state_full(no_users(), messages, idle_queue(), admin_config());
    let reply = send(state, authed(admin_post("/admin/messages/9/requeue"))).await;
    assert_eq!(reply.location(), Some("/admin/messages/9?done=not-dead"));
}

#[tokio::test]
async fn resend_from_the_dashboard_skips_the_visitor_limits() {
    let mut users = MockUserStore::new();
    users
        .expect_resend()
        .withf(|email, policy, _| {
            email.as_str() == "Jane.Doe@example.com"
                && *policy
                    == ResendPolicy {
                        cooldown: chrono::TimeDelta::zero(),
                        daily_cap: u32::MAX,
                    }
        })
        .times(1)
        .returning(|_, _, _| Ok(Resend::Queued(MessageId(12))));
    let mut queue = MockJobQueue::new();
    queue
        .expect_publish()
        .withf(|job| job.message_id == MessageId(12))
        .times(1)
        .returning(|_| Ok(()));
    let state = state_full(
        users,
        message_store(MessageStatus::Sent),
        queue,
        admin_config(),
    );
    let reply = send(state, authed(admin_post("/admin/messages/9/resend"))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), Some("/admin/messages/12?done=resent"));

    let mut users = MockUserStore::new();
    users
        .expect_resend()
        .returning(|_, _, _| Ok(Resend::AlreadyConfirmed));
    let state = state_full(
        users,
        message_store(MessageStatus::Sent),
        idle_queue(),
        admin_config(),
    );
    let reply = send(state, authed(admin_post("/admin/messages/9/resend"))).await;
    assert_eq!(reply.location(), Some("/admin/messages/9?done=confirmed"));
}

/// Wrong credentials are throttled per client IP: after ten in a minute, even the right token
/// gets 429 until the client's allowance is back; other clients are not affected.
#[tokio::test]
async fn wrong_admin_credentials_are_throttled_per_ip() {
    let state = state_full(
        no_users(),
        dashboard_store(),
        depth_queue(6),
        admin_config(),
    );
    let from = |ip: &str, token: &str| {
        let mut request = get("/admin");
        request.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let peer: std::net::SocketAddr = format!("{ip}:4000").parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        request
    };
    for i in 0..10 {
        let reply = send(state.clone(), from("192.0.2.7", "wrong-token-wrong-token")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "try {i}");
    }
    let reply = send(state.clone(), from("192.0.2.7", "wrong-token-wrong-token")).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    let reply = send(state.clone(), from("192.0.2.7", TOKEN)).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "blocked whatever it sends"
    );
    let reply = send(state, from("192.0.2.8", TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "another client");
}

/// The suppressions page lists masked mailboxes with their source and time; its Lift button
/// (with the admin-bound token) lifts one.
#[tokio::test]
async fn the_suppressions_page_lists_masked_mailboxes_and_lifts_them() {
    use domain::{MailboxKey, Suppression, SuppressionId, SuppressionSource};
    use store::MockSuppressionStore;

    let mut suppressions = MockSuppressionStore::new();
    suppressions.expect_list().returning(|_| {
        Ok(vec![Suppression {
            id: SuppressionId(4),
            mailbox_key: MailboxKey::parse("victim@gmail.com").unwrap(),
            source: SuppressionSource::StopLink,
            created_at: DateTime::from_timestamp(NOW - 60, 0).unwrap(),
        }])
    });
    suppressions
        .expect_lift()
        .withf(|id| *id == SuppressionId(4))
        .times(1)
        .returning(|_| Ok(true));
    let state = state_full(no_users(), dashboard_store(), idle_queue(), admin_config())
        .with_suppressions(Arc::new(suppressions));
    let reply = send(state.clone(), authed(get("/admin/suppressions"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("stop_link"), "{}", reply.body);
    assert!(
        !reply.body.contains("victim@gmail.com"),
        "masked: {}",
        reply.body
    );
    assert!(reply.body.contains("/admin/suppressions/4/lift"));
    // Without the token, or with a public form's token: refused.
    assert_eq!(
        send(state.clone(), get("/admin/suppressions")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let forged = send(
        state.clone(),
        authed(post_to("/admin/suppressions/4/lift", "")),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let reply = send(state, authed(admin_post("/admin/suppressions/4/lift"))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), Some("/admin/suppressions?done=lifted"));
}
