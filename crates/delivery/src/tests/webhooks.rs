//! Webhook messages through the deliverer: posted (not mailed) with the Standard Webhooks
//! headers, and the answer recorded as for an email: sent, stopped (410), retried or dead.

use std::sync::Arc;

use ::webhooks::{MockTransport, Secret, Signer, TransportError, Webhooks};
use domain::{MessageId, MessageKind, WebhookDelivery, WebhookEvent};
use mailer::MockMailer;
use queue::Job;
use store::{Claim, MockMessageStore};

use super::*;
use crate::Outcome;

const BODY: &str =
    r#"{"type":"account.registered","timestamp":"t","data":{"email":"a@example.com"}}"#;

fn hook(id: i64, attempts: u32) -> OwedMessage {
    OwedMessage {
        kind: MessageKind::Webhook,
        ..owed(id, attempts)
    }
}

/// A store whose message 9 is a claimed webhook to `https://app.example/hooks`.
fn store_with_hook(attempts: u32) -> MockMessageStore {
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .returning(move |_, _, _| Ok(Claim::Claimed(hook(9, attempts))));
    messages.expect_webhook().returning(|_| {
        Ok(Some(WebhookDelivery {
            endpoint: "https://app.example/hooks".into(),
            event: WebhookEvent::AccountRegistered,
            payload: BODY.into(),
        }))
    });
    messages
}

/// A mailer that must not be used: webhooks are not emails.
fn no_mail() -> Arc<MockMailer> {
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();
    mailer.expect_provider().return_const("mock");
    Arc::new(mailer)
}

fn signer() -> Signer {
    Signer::new(vec![Secret::from_bytes([5u8; 32])]).unwrap()
}

fn with_transport(messages: MockMessageStore, transport: MockTransport) -> Deliverer {
    deliverer(messages, no_mail()).with_webhooks(Webhooks::new(signer(), Arc::new(transport)))
}

#[tokio::test]
async fn a_2xx_records_the_webhook_sent_with_a_stable_id_and_a_valid_signature() {
    let mut messages = store_with_hook(3);
    messages
        .expect_mark_sent()
        .withf(|id, answer, _| *id == MessageId(9) && answer.as_deref() == Some("HTTP 204"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut transport = MockTransport::new();
    transport
        .expect_post()
        .withf(|request| {
            let header = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap()
            };
            request.url == "https://app.example/hooks"
                && request.body == BODY
                && header("webhook-id") == "msg_9"
                && header("webhook-timestamp") == NOW.to_string()
                && header("webhook-signature") == signer().signature("msg_9", NOW, BODY.as_bytes())
        })
        .times(1)
        .returning(|_| Ok(204));
    let d = with_transport(messages, transport);
    assert_eq!(
        d.handle(Job::new(MessageId(9))).await.unwrap(),
        Outcome::Sent {
            provider_message_id: Some("HTTP 204".into())
        }
    );
}

#[tokio::test]
async fn a_410_stops_the_webhook_for_good() {
    let mut messages = store_with_hook(1);
    messages
        .expect_mark_stopped()
        .withf(|id, reason, _| *id == MessageId(9) && reason.contains("410"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    messages.expect_mark_retry().never();
    messages.expect_mark_dead().never();
    let mut transport = MockTransport::new();
    transport.expect_post().times(1).returning(|_| Ok(410));
    let d = with_transport(messages, transport);
    assert_eq!(
        d.handle(Job::new(MessageId(9))).await.unwrap(),
        Outcome::Cancelled
    );
}

#[tokio::test]
async fn another_answer_or_none_is_retried_then_dead() {
    let answers: [Result<u16, TransportError>; 3] = [
        Ok(500),
        Ok(301),
        Err(TransportError::Timeout(Duration::from_secs(10))),
    ];
    for answer in answers {
        let mut messages = store_with_hook(1);
        messages
            .expect_mark_retry()
            .withf(|id, _, _, _| *id == MessageId(9))
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let mut transport = MockTransport::new();
        let a = answer.clone();
        transport
            .expect_post()
            .times(1)
            .returning(move |_| a.clone());
        let d = with_transport(messages, transport);
        assert!(
            matches!(
                d.handle(Job::new(MessageId(9))).await.unwrap(),
                Outcome::Retrying { .. }
            ),
            "{answer:?}"
        );
    }
    // The last attempt: dead, like an email.
    let last = RetryPolicy::default().max_attempts;
    let mut messages = store_with_hook(last);
    messages
        .expect_mark_dead()
        .withf(|id, error, _| *id == MessageId(9) && error.contains("HTTP 503"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut transport = MockTransport::new();
    transport.expect_post().returning(|_| Ok(503));
    let d = with_transport(messages, transport);
    assert!(matches!(
        d.handle(Job::new(MessageId(9))).await.unwrap(),
        Outcome::Dead { .. }
    ));
}

#[tokio::test]
async fn a_worker_without_webhook_settings_retries_instead_of_losing_it() {
    let mut messages = store_with_hook(1);
    messages
        .expect_mark_retry()
        .withf(|_, error, _, _| error.contains("WEBHOOK_SECRET"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let d = deliverer(messages, no_mail());
    assert!(matches!(
        d.handle(Job::new(MessageId(9))).await.unwrap(),
        Outcome::Retrying { .. }
    ));
}
