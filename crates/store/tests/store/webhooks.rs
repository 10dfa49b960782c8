//! Webhook events in the outbox: each change owes its event to every endpoint, in the change's
//! own transaction; webhooks are messages like emails (claimed, sent, retried, dead, stopped),
//! but never events themselves and never cancelled by the suppression list.

use domain::{
    MessageId, MessageKind, MessageStatus, SuppressionSource, WebhookDelivery, WebhookEvent,
};
use store::{
    Claim, ConfirmOutcome, MessageQuery, MessageStore, SeaStore, SuppressionStore, UserStore,
};

use crate::common::{self, backend_tests, claim_ok, email, lease, secs, t0};

const HOOK_A: &str = "https://a.example/hooks";
const HOOK_B: &str = "http://127.0.0.1:9/hooks?token=x";

fn with_hooks(store: &SeaStore) -> SeaStore {
    store
        .clone()
        .with_webhooks(vec![HOOK_A.to_owned(), HOOK_B.to_owned()], None)
}

/// The webhook messages owed now, oldest first, with what they carry.
async fn webhooks(store: &SeaStore) -> Vec<(MessageId, WebhookDelivery, serde_json::Value)> {
    let mut out = Vec::new();
    let query = MessageQuery {
        recipient: None,
        kind: Some(MessageKind::Webhook),
        before: None,
        limit: 1000,
    };
    let mut records = MessageStore::list(store, query).await.unwrap();
    records.reverse();
    for record in records {
        let id = record.message.id;
        assert_eq!(record.message.kind, MessageKind::Webhook);
        let delivery = store.webhook(id).await.unwrap().unwrap();
        let body: serde_json::Value = serde_json::from_str(&delivery.payload).unwrap();
        out.push((id, delivery, body));
    }
    out
}

/// Every change owes one event per endpoint, with the Standard Webhooks body.
async fn each_change_owes_its_event_to_every_endpoint(store: &SeaStore) {
    let store = with_hooks(store);
    let (user, email_id) = common::register(&store, "Ada@Example.com", t0()).await;
    let owed = webhooks(&store).await;
    assert_eq!(owed.len(), 2, "one per endpoint");
    let endpoints: Vec<&str> = owed.iter().map(|(_, d, _)| d.endpoint.as_str()).collect();
    assert_eq!(endpoints, [HOOK_A, HOOK_B]);
    for (id, delivery, body) in &owed {
        assert_eq!(delivery.event, WebhookEvent::AccountRegistered);
        assert_eq!(body["type"], "account.registered");
        assert_eq!(body["data"]["email"], "Ada@example.com");
        assert!(
            body["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2026-11-21T10:00:00")
        );
        assert_eq!(body["data"]["registered_at"], body["timestamp"]);
        let record = store.get(*id).await.unwrap().unwrap();
        assert_eq!(record.message.user_id, user.id);
        assert_eq!(record.message.status, MessageStatus::Queued);
        assert_eq!(record.message.recipient.as_str(), "Ada@example.com");
    }
    // Due like any message, so the sweeper publishes what nobody announced.
    let due = store.due(t0(), 10).await.unwrap();
    assert_eq!(due.len(), 3);
    assert!(due.contains(&email_id));

    // The confirmation email sent: `email.sent`; the user's `email_sent` set.
    claim_ok(&store, email_id, t0() + secs(1.0)).await;
    store
        .mark_sent(email_id, Some("ses-1".into()), t0() + secs(2.0))
        .await
        .unwrap();
    assert!(
        store
            .find_by_email(&email("ada@example.com"))
            .await
            .unwrap()
            .unwrap()
            .email_sent
    );
    let sent: Vec<_> = webhooks(&store)
        .await
        .into_iter()
        .filter(|(_, d, _)| d.event == WebhookEvent::EmailSent)
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].2["data"]["message_id"], email_id.0);
    assert_eq!(sent[0].2["data"]["provider_message_id"], "ses-1");

    // Confirmed: `account.confirmed`; a second confirmation owes nothing.
    let issued = t0() + secs(1.0);
    let ada = email("ADA@example.com");
    let confirm = |at| store.confirm(&ada, issued, at);
    assert_eq!(
        confirm(t0() + secs(3.0)).await.unwrap(),
        ConfirmOutcome::Confirmed
    );
    assert_eq!(
        confirm(t0() + secs(4.0)).await.unwrap(),
        ConfirmOutcome::AlreadyConfirmed
    );
    let confirmed: Vec<_> = webhooks(&store)
        .await
        .into_iter()
        .filter(|(_, d, _)| d.event == WebhookEvent::AccountConfirmed)
        .collect();
    assert_eq!(confirmed.len(), 2);
    assert_eq!(confirmed[0].2["data"]["email"], "Ada@example.com");
    assert_eq!(common::count(&store, "webhook_deliveries").await, 6);

    // A webhook sent owes no event, and leaves `email_sent` alone.
    let (hook, _, _) = &webhooks(&store).await[0];
    claim_ok(&store, *hook, t0() + secs(5.0)).await;
    store
        .mark_sent(*hook, Some("HTTP 204".into()), t0() + secs(6.0))
        .await
        .unwrap();
    assert_eq!(common::count(&store, "webhook_deliveries").await, 6);
}

/// Batches owe one event per change as well (the PostgreSQL statements).
async fn batches_owe_one_event_per_change(store: &SeaStore) {
    let store = with_hooks(store);
    let addresses = [
        "b1@example.com",
        "b2@example.com",
        "B1@example.com",
        "b3@example.com",
    ];
    let answers = store
        .register_many(
            addresses
                .iter()
                .map(|a| (email(a), domain::Locale::En))
                .collect(),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        answers
            .iter()
            .filter(|a| **a == store::Registration::AlreadyRegistered)
            .count(),
        1
    );
    assert_eq!(webhooks(&store).await.len(), 6, "3 accounts x 2 endpoints");
    let outcomes = store
        .confirm_many(
            vec![
                (email("b1@example.com"), t0()),
                (email("b2@example.com"), t0()),
                (email("B1@example.com"), t0()),
            ],
            t0() + secs(1.0),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            ConfirmOutcome::Confirmed,
            ConfirmOutcome::Confirmed,
            ConfirmOutcome::AlreadyConfirmed
        ]
    );
    let confirmed: Vec<String> = webhooks(&store)
        .await
        .into_iter()
        .filter(|(_, d, _)| d.event == WebhookEvent::AccountConfirmed)
        .map(|(_, _, body)| body["data"]["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(confirmed.len(), 4);
    assert!(confirmed.contains(&"b1@example.com".to_owned()));
    assert!(confirmed.contains(&"b2@example.com".to_owned()));

    let query = MessageQuery {
        recipient: None,
        kind: Some(MessageKind::Confirm),
        before: None,
        limit: 100,
    };
    let confirm_emails = MessageStore::list(&store, query).await.unwrap();
    assert_eq!(confirm_emails.len(), 3);
    let ids: Vec<MessageId> = confirm_emails.iter().map(|r| r.message.id).collect();
    let claims = store
        .claim_many(ids.clone(), t0() + secs(2.0), lease())
        .await
        .unwrap();
    assert!(claims.iter().all(|c| matches!(c, Ok(Claim::Claimed(_)))));
    store
        .mark_sent_many(ids.iter().map(|id| (*id, None)).collect(), t0() + secs(3.0))
        .await
        .unwrap();
    let sent = webhooks(&store)
        .await
        .into_iter()
        .filter(|(_, d, _)| d.event == WebhookEvent::EmailSent)
        .count();
    assert_eq!(sent, 6, "3 emails x 2 endpoints");
}

/// A dead confirmation email owes `email.failed`; a dead or stopped webhook owes nothing.
async fn a_dead_email_owes_email_failed_and_webhooks_stop(store: &SeaStore) {
    let store = with_hooks(store);
    let (_, email_id) = common::register(&store, "dead@example.com", t0()).await;
    claim_ok(&store, email_id, t0()).await;
    store
        .mark_dead(email_id, "550 no such user".into(), t0() + secs(1.0))
        .await
        .unwrap();
    let failed: Vec<_> = webhooks(&store)
        .await
        .into_iter()
        .filter(|(_, d, _)| d.event == WebhookEvent::EmailFailed)
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].2["data"]["error"], "550 no such user");
    assert_eq!(failed[0].2["data"]["message_id"], email_id.0);
    let before = common::count(&store, "webhook_deliveries").await;

    let (hook, _, _) = failed[0].clone();
    claim_ok(&store, hook, t0() + secs(2.0)).await;
    store
        .mark_dead(hook, "HTTP 500".into(), t0() + secs(3.0))
        .await
        .unwrap();
    let (gone, _, _) = failed[1].clone();
    claim_ok(&store, gone, t0() + secs(2.0)).await;
    store
        .mark_stopped(
            gone,
            "the endpoint answered 410 Gone".into(),
            t0() + secs(3.0),
        )
        .await
        .unwrap();
    assert_eq!(common::count(&store, "webhook_deliveries").await, before);
    let stopped = store.get(gone).await.unwrap().unwrap();
    assert_eq!(stopped.message.status, MessageStatus::Cancelled);
    assert_eq!(
        stopped.last_error.as_deref(),
        Some("the endpoint answered 410 Gone")
    );
    let attempts = store.attempts(gone).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, MessageStatus::Cancelled);
    // Stopped is final: never due again; the dead one can be requeued like an email.
    let due = store.due(t0() + secs(3600.0), 100).await.unwrap();
    assert!(!due.contains(&gone));
    assert_eq!(
        store
            .requeue_dead(Some(hook), t0() + secs(4.0))
            .await
            .unwrap(),
        [hook]
    );
}

/// The suppression list stops emails to a mailbox, not the application's webhooks about it.
async fn suppression_does_not_cancel_webhooks(store: &SeaStore) {
    let store = with_hooks(store);
    let (user, email_id) = common::register(&store, "quiet@example.com", t0()).await;
    store
        .suppress(&user.email.mailbox_key(), SuppressionSource::Operator, t0())
        .await
        .unwrap();
    let email_status: String = common::message_column(&store, email_id, "status").await;
    assert_eq!(email_status, MessageStatus::Cancelled.as_str());
    // The suppression itself is an event, once per endpoint (and not again when repeated).
    let suppressed: Vec<_> = webhooks(&store)
        .await
        .into_iter()
        .filter(|(_, d, _)| d.event == WebhookEvent::EmailSuppressed)
        .collect();
    assert_eq!(suppressed.len(), 2);
    assert_eq!(suppressed[0].2["data"]["email"], "quiet@example.com");
    assert_eq!(suppressed[0].2["data"]["source"], "operator");
    assert!(
        !store
            .suppress(&user.email.mailbox_key(), SuppressionSource::Operator, t0())
            .await
            .unwrap()
    );
    assert_eq!(
        webhooks(&store).await.len(),
        4,
        "2 registered + 2 suppressed"
    );
    for (id, _, _) in webhooks(&store).await {
        let record = store.get(id).await.unwrap().unwrap();
        assert_eq!(record.message.status, MessageStatus::Queued);
        assert!(matches!(
            store.claim(id, t0() + secs(1.0), lease()).await.unwrap(),
            Claim::Claimed(_)
        ));
    }
}

/// Without endpoints, nothing changes: no webhook message, no row in `webhook_deliveries`.
async fn without_endpoints_no_event_is_owed(store: &SeaStore) {
    let (_, email_id) = common::register(store, "plain@example.com", t0()).await;
    claim_ok(store, email_id, t0()).await;
    store.mark_sent(email_id, None, t0()).await.unwrap();
    store
        .confirm(&email("plain@example.com"), t0(), t0() + secs(1.0))
        .await
        .unwrap();
    assert_eq!(common::count(store, "webhook_deliveries").await, 0);
    assert_eq!(common::count(store, "email_messages").await, 1);
    assert_eq!(store.webhook(email_id).await.unwrap(), None);
}

backend_tests!(
    each_change_owes_its_event_to_every_endpoint,
    batches_owe_one_event_per_change,
    a_dead_email_owes_email_failed_and_webhooks_stop,
    suppression_does_not_cancel_webhooks,
    without_endpoints_no_event_is_owed,
);
