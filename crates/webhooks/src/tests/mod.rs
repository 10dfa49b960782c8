use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::*;

/// The example of the Standard Webhooks specification's reference libraries: this secret, id,
/// timestamp and body sign to this signature.
#[test]
fn signs_like_the_reference_libraries() {
    let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let signer = Signer::new(vec![secret]).unwrap();
    let body = r#"{"test": 2432232314}"#;
    assert_eq!(
        signer.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body.as_bytes()),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn every_secret_signs_for_rotation() {
    let old = Secret::from_bytes([1u8; 24]);
    let new = Secret::from_bytes([2u8; 24]);
    let both = Signer::new(vec![new.clone(), old.clone()]).unwrap();
    let header = both.signature("msg_1", 10, b"{}");
    let entries: Vec<&str> = header.split(' ').collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0], new.sign("msg_1", 10, b"{}"));
    assert_eq!(entries[1], old.sign("msg_1", 10, b"{}"));
    assert_ne!(entries[0], entries[1]);
    assert!(Signer::new(Vec::new()).is_none());
}

#[test]
fn secrets_are_checked_and_never_printed() {
    assert_eq!(
        Secret::parse("MfKQ9r8GKYqrTwjUPD8IL"),
        Err(SecretError::Prefix)
    );
    assert_eq!(Secret::parse("whsec_not base64!"), Err(SecretError::Base64));
    assert_eq!(Secret::parse("whsec_c2hvcnQ="), Err(SecretError::TooShort));
    let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert_eq!(format!("{secret:?}"), "Secret(..)");
    assert_eq!(secret.to_text(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_eq!(Secret::parse(&secret.to_text()), Ok(secret));
}

/// A receiver on a loopback port answering `status` after `delay`, recording the headers and
/// bodies it gets.
async fn receiver(
    status: StatusCode,
    delay: Duration,
) -> (String, Arc<Mutex<Vec<(HeaderMap, String)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let record = Arc::clone(&record);
            async move {
                record.lock().unwrap().push((headers, body));
                tokio::time::sleep(delay).await;
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn webhooks(timeout: Duration) -> Webhooks {
    let signer = Signer::new(vec![Secret::from_bytes([7u8; 32])]).unwrap();
    Webhooks::new(signer, Arc::new(HttpTransport::new(timeout).unwrap()))
}

#[tokio::test]
async fn posts_the_signed_body_and_classifies_the_answer() {
    let hooks = webhooks(Duration::from_secs(5));
    let (ok, seen) = receiver(StatusCode::NO_CONTENT, Duration::ZERO).await;
    assert_eq!(
        hooks.deliver(&ok, "msg_1", 1700000000, r#"{"a":1}"#).await,
        Ok(204)
    );
    let (headers, body) = seen.lock().unwrap().pop().unwrap();
    assert_eq!(body, r#"{"a":1}"#);
    assert_eq!(headers["webhook-id"], "msg_1");
    assert_eq!(headers["webhook-timestamp"], "1700000000");
    assert_eq!(headers["content-type"], "application/json");
    let expected = hooks.sign(&ok, "msg_1", 1700000000, r#"{"a":1}"#);
    assert_eq!(
        headers["webhook-signature"].to_str().unwrap(),
        expected.headers[3].1
    );

    let (gone, _) = receiver(StatusCode::GONE, Duration::ZERO).await;
    assert_eq!(
        hooks.deliver(&gone, "msg_2", 1, "{}").await,
        Err(WebhookError::Gone)
    );
    let (broken, _) = receiver(StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO).await;
    assert_eq!(
        hooks.deliver(&broken, "msg_3", 1, "{}").await,
        Err(WebhookError::Failed(
            "the endpoint answered HTTP 503".into()
        ))
    );
    let (moved, _) = receiver(StatusCode::FOUND, Duration::ZERO).await;
    assert!(matches!(
        hooks.deliver(&moved, "msg_4", 1, "{}").await,
        Err(WebhookError::Failed(_))
    ));
}

#[tokio::test]
async fn a_slow_or_absent_endpoint_is_a_failure_to_retry() {
    let hooks = webhooks(Duration::from_millis(200));
    let (slow, seen) = receiver(StatusCode::OK, Duration::from_secs(30)).await;
    let answer = hooks.deliver(&slow, "msg_1", 1, "{}").await;
    assert!(
        matches!(&answer, Err(WebhookError::Failed(e)) if e.contains("no answer within")),
        "{answer:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A port nobody listens on: the connection is refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let answer = hooks
        .deliver(&format!("http://{closed}/hook"), "msg_2", 1, "{}")
        .await;
    assert!(matches!(answer, Err(WebhookError::Failed(_))), "{answer:?}");
}

#[tokio::test]
async fn an_endpoint_that_is_not_http_is_refused_for_good() {
    let hooks = webhooks(Duration::from_secs(1));
    for url in ["ftp://example.com/x", "not a url", "/relative"] {
        let answer = hooks.deliver(url, "msg_1", 1, "{}").await;
        assert!(
            matches!(answer, Err(WebhookError::BadEndpoint(_))),
            "{url}: {answer:?}"
        );
    }
}
