//! Webhooks in process: a registration, its email and its confirmation owe signed events that
//! the worker's deliverer posts to a receiver on a loopback port; a 410 stops an endpoint's
//! delivery; the dashboard shows a webhook's event and endpoint. (The release binaries under
//! faults, verified by the `standardwebhooks` package, are .ci/webhooks.py.)

// `cfg(test)` (always true here) tells clippy that the harness is test code.
#[cfg(test)]
#[expect(dead_code, reason = "the harness serves other tests too")]
mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::Clock as _;
use http_body_util::BodyExt;
use queue::{Job, JobQueue};
use store::{MessageQuery, MessageStore};
use tower::ServiceExt;

use common::in_process_with;
use receivers::{receiver, types};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ADMIN: &str = "webhook-test-admin-token";

/// The receivers (in a `cfg(test)` module, so clippy treats them as test code).
#[cfg(test)]
mod receivers {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    pub type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

    /// A receiver answering `status` at `/hooks`, recording what it gets; its URL.
    pub async fn receiver(status: StatusCode) -> (String, Seen) {
        let seen: Seen = Arc::default();
        let record = Arc::clone(&seen);
        let app = Router::new().route(
            "/hooks",
            post(move |headers: HeaderMap, body: String| {
                let record = Arc::clone(&record);
                async move {
                    record.lock().unwrap().push((headers, body));
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    /// The types of the bodies a receiver got, in order.
    pub fn types(seen: &Seen) -> Vec<String> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|(_, body)| {
                let body: serde_json::Value = serde_json::from_str(body).unwrap();
                body["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

#[tokio::test]
async fn events_are_signed_posted_once_and_shown_on_the_dashboard() {
    let (ok_url, ok) = receiver(StatusCode::NO_CONTENT).await;
    let (gone_url, gone) = receiver(StatusCode::GONE).await;
    let dir = tempfile::tempdir().unwrap();
    let urls = format!("{ok_url},{gone_url}");
    let app = in_process_with(
        dir.path(),
        &[
            ("WEBHOOK_URL", urls.as_str()),
            ("WEBHOOK_SECRET", SECRET),
            ("ADMIN_TOKEN", ADMIN),
        ],
    )
    .await;
    let store = &app.services.store;
    // Delivers every job that is due (this harness announces nothing: the sweeper's view).
    let deliver_due = || async {
        let mut outcomes = Vec::new();
        loop {
            let due = store.due(app.clock.now(), 100).await.unwrap();
            if due.is_empty() {
                return outcomes;
            }
            for id in due {
                outcomes.push(app.deliverer.handle(Job::new(id)).await.unwrap());
            }
        }
    };

    assert_eq!(
        app.register("Ada%40Example.com").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.queue.depth().await.unwrap(), 1, "the email's job only");
    let outcomes = deliver_due().await;
    assert_eq!(
        outcomes.len(),
        3 + 2,
        "email, 2 x registered, then 2 x sent"
    );
    let link = app.mailer.messages()[0].action_url.clone().unwrap();
    app.clock.advance(chrono::TimeDelta::seconds(5));
    assert_eq!(app.open(&link).await.status(), StatusCode::SEE_OTHER);
    deliver_due().await;

    assert_eq!(
        types(&ok),
        ["account.registered", "email.sent", "account.confirmed"]
    );
    assert_eq!(
        types(&gone),
        types(&ok),
        "410: each posted once, never again"
    );
    assert!(app.services.webhooks.is_some());
    let signer = webhooks::Signer::new(vec![webhooks::Secret::parse(SECRET).unwrap()]).unwrap();
    for (headers, body) in ok.lock().unwrap().iter() {
        let id = headers["webhook-id"].to_str().unwrap();
        let timestamp: i64 = headers["webhook-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(id.starts_with("msg_"));
        assert_eq!(
            headers["webhook-signature"].to_str().unwrap(),
            signer.signature(id, timestamp, body.as_bytes())
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["data"]["email"], "Ada@example.com");
    }

    // In the outbox: sent to the first endpoint, stopped at the second.
    let query = MessageQuery {
        recipient: None,
        kind: Some(domain::MessageKind::Webhook),
        before: None,
        limit: 100,
    };
    let hooks = MessageStore::list(store.as_ref(), query).await.unwrap();
    assert_eq!(hooks.len(), 6);
    let sent = hooks
        .iter()
        .filter(|r| r.message.status == domain::MessageStatus::Sent)
        .count();
    let cancelled = hooks
        .iter()
        .filter(|r| r.message.status == domain::MessageStatus::Cancelled)
        .count();
    assert_eq!((sent, cancelled), (3, 3));

    // The dashboard's page of one of them names its event and endpoint.
    let id = hooks.last().unwrap().message.id;
    let page = app
        .app
        .clone()
        .oneshot(
            Request::get(format!("/admin/messages/{id}"))
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = String::from_utf8(
        page.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        html.contains(r#"<td id="event">account.registered</td>"#),
        "{html}"
    );
    assert!(html.contains("&#x2f;hooks</td>"), "{html}");
    assert!(
        html.contains("HTTP 204") || html.contains("410 Gone"),
        "{html}"
    );
}
