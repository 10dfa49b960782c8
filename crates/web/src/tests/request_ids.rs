//! Request ids: echoed in every response, taken from a well-formed `X-Request-Id`, carried into
//! the published job.

use super::*;

fn hex32(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

fn request_id(reply: &Reply) -> &str {
    reply.headers[REQUEST_ID_HEADER].to_str().unwrap()
}

#[tokio::test]
async fn every_response_carries_a_fresh_request_id() {
    let healthz = send(state(no_users(), idle_queue(), false), get("/healthz")).await;
    let missing = send(state(no_users(), idle_queue(), false), get("/nowhere")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(hex32(request_id(&healthz)), "{}", request_id(&healthz));
    assert!(hex32(request_id(&missing)), "{}", request_id(&missing));
    assert_ne!(request_id(&healthz), request_id(&missing));
}

#[tokio::test]
async fn an_incoming_id_is_kept_only_when_short_and_plain() {
    let with = |value: &'static str| {
        let mut request = get("/healthz");
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER, HeaderValue::from_static(value));
        request
    };
    let kept = send(state(no_users(), idle_queue(), false), with("lb-7f3a.01_x")).await;
    assert_eq!(request_id(&kept), "lb-7f3a.01_x");
    for bad in [
        "has spaces",
        "a@example.com",
        "../../etc",
        "0123456789012345678901234567890123456789012345678901234567890123456789",
    ] {
        let replaced = send(state(no_users(), idle_queue(), false), with(bad)).await;
        assert!(
            hex32(request_id(&replaced)),
            "{bad:?} -> {}",
            request_id(&replaced)
        );
    }
}

#[tokio::test]
async fn the_published_job_carries_the_request_id() {
    let mut users = MockUserStore::new();
    users.expect_register().times(1).returning(|email, _, _| {
        Ok(Registration::Created {
            user: user(5, email.as_str(), false),
            message: MessageId(9),
        })
    });
    let mut queue = MockJobQueue::new();
    queue
        .expect_publish()
        .withf(|job: &Job| {
            job.message_id == MessageId(9)
                && job.request_id.map(|id| id.to_string()).as_deref() == Some("reg-42")
        })
        .times(1)
        .returning(|_| Ok(()));
    let mut request = post_form("email=new%40example.com");
    request
        .headers_mut()
        .insert(REQUEST_ID_HEADER, HeaderValue::from_static("reg-42"));
    let reply = send(state(users, queue, false), request).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(request_id(&reply), "reg-42");
}
