//! The feedback loop over a mocked queue and store: what is recorded, what is deleted, what is
//! left for the redrive policy, and that a failure of either does not stop it.

use std::sync::{Arc, Mutex};

use chrono::DateTime;
use domain::{FeedbackKind, FeedbackOutcome, ManualClock, MessageId};
use mailer::feedback::{FeedbackQueueError, MockFeedbackQueue, QueuedNotification};
use store::{MockFeedbackStore, StoreError};

use super::NOW;
use crate::{FeedbackLoop, Handled};

fn bounce(feedback_id: &str, bounce_type: &str, recipients: &[&str]) -> String {
    let recipients: Vec<_> = recipients
        .iter()
        .map(|r| serde_json::json!({"emailAddress": r, "status": "5.1.1"}))
        .collect();
    let ses = serde_json::json!({
        "notificationType": "Bounce",
        "bounce": {
            "feedbackId": feedback_id,
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": recipients,
            "timestamp": "2026-12-07T10:00:00.000Z"
        },
        "mail": {"messageId": "ses-42", "destination": ["x@example.com"]}
    });
    serde_json::json!({"Type": "Notification", "Message": ses.to_string()}).to_string()
}

fn queued(receipt: &str, body: String) -> QueuedNotification {
    QueuedNotification {
        receipt: receipt.to_owned(),
        body,
        receive_count: Some(1),
    }
}

fn looped(queue: MockFeedbackQueue, store: MockFeedbackStore) -> FeedbackLoop {
    FeedbackLoop {
        queue: Arc::new(queue),
        store: Arc::new(store),
        clock: Arc::new(ManualClock::new(DateTime::from_timestamp(NOW, 0).unwrap())),
    }
}

#[tokio::test]
async fn records_each_recipient_and_deletes_what_it_handled() {
    let mut queue = MockFeedbackQueue::new();
    queue.expect_receive().times(1).returning(|| {
        Ok(vec![
            queued(
                "r1",
                bounce("fb-1", "Permanent", &["A@example.com", "b@example.com"]),
            ),
            queued("r2", "{not json".to_owned()),
            queued("r3", bounce("fb-2", "Transient", &["c@example.com"])),
            queued(
                "r4",
                r#"{"notificationType": "Delivery", "mail": {"messageId": "m"}}"#.into(),
            ),
            queued(
                "r5",
                r#"{"Type": "SubscriptionConfirmation", "SubscribeURL": "https://sns"}"#.into(),
            ),
        ])
    });
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&deleted);
    queue.expect_delete().returning(move |receipt| {
        seen.lock().unwrap().push(receipt.to_owned());
        Ok(())
    });
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&recorded);
    let mut store = MockFeedbackStore::new();
    store
        .expect_record_feedback()
        .times(3)
        .returning(move |f, now| {
            assert_eq!(now.timestamp(), NOW);
            seen.lock().unwrap().push(f.clone());
            Ok(FeedbackOutcome::Recorded {
                message: Some(MessageId(7)),
                suppressed: f.kind.suppresses(),
            })
        });
    let handled = looped(queue, store).poll_once().await.unwrap();
    assert_eq!(
        handled,
        [
            Handled::Done,
            Handled::Left,
            Handled::Done,
            Handled::Done,
            Handled::Left
        ]
    );
    // The malformed one and the subscription confirmation stay on the queue for its redrive
    // policy (the confirmation's SubscribeURL can be read in the dead-letter queue).
    assert_eq!(*deleted.lock().unwrap(), ["r1", "r3", "r4"]);
    let recorded = recorded.lock().unwrap();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].kind, FeedbackKind::PermanentBounce);
    assert_eq!(
        recorded[0].mailbox,
        domain::EmailAddress::parse("a@example.com")
            .unwrap()
            .mailbox_key()
    );
    assert_eq!(recorded[0].provider_message_id, "ses-42");
    assert_eq!(recorded[0].feedback_id, "fb-1");
    assert_eq!(recorded[0].detail, "Permanent/General 5.1.1");
    assert_eq!(
        recorded[1].mailbox,
        domain::EmailAddress::parse("b@example.com")
            .unwrap()
            .mailbox_key()
    );
    assert_eq!(recorded[2].kind, FeedbackKind::TransientBounce);
}

#[tokio::test]
async fn a_store_failure_leaves_the_notification_for_later() {
    let mut queue = MockFeedbackQueue::new();
    queue.expect_receive().returning(|| {
        Ok(vec![queued(
            "r1",
            bounce("fb-1", "Permanent", &["a@example.com"]),
        )])
    });
    queue.expect_delete().never();
    let mut store = MockFeedbackStore::new();
    store
        .expect_record_feedback()
        .returning(|_, _| Err(StoreError::Unavailable("database down".into())));
    let handled = looped(queue, store).poll_once().await.unwrap();
    assert_eq!(handled, [Handled::Left]);
}

#[tokio::test]
async fn a_duplicate_is_deleted_and_an_invalid_recipient_skipped() {
    let mut queue = MockFeedbackQueue::new();
    queue.expect_receive().returning(|| {
        Ok(vec![queued(
            "r1",
            bounce("fb-1", "Permanent", &["not an address", "a@example.com"]),
        )])
    });
    queue.expect_delete().times(1).returning(|_| Ok(()));
    let mut store = MockFeedbackStore::new();
    store
        .expect_record_feedback()
        .times(1)
        .returning(|_, _| Ok(FeedbackOutcome::Duplicate));
    let handled = looped(queue, store).poll_once().await.unwrap();
    assert_eq!(handled, [Handled::Done]);
}

#[tokio::test(start_paused = true)]
async fn the_loop_survives_a_failing_queue_and_stops_on_shutdown() {
    let calls = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&calls);
    let mut queue = MockFeedbackQueue::new();
    queue.expect_receive().returning(move || {
        let mut n = counted.lock().unwrap();
        *n += 1;
        if *n == 1 {
            Err(FeedbackQueueError(
                "ReceiveMessage: connection refused".into(),
            ))
        } else {
            Ok(Vec::new())
        }
    });
    let store = MockFeedbackStore::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(looped(queue, store).run(stopped));
    // Paused time: the pause after the failure passes without waiting.
    tokio::time::sleep(crate::QUEUE_PAUSE * 2).await;
    assert!(
        *calls.lock().unwrap() >= 2,
        "polled again after the failure"
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}
