//! SES feedback recorded once per report and mailbox: a permanent bounce or a complaint marks
//! its message and suppresses the mailbox; a transient bounce is only recorded.

use domain::{Feedback, FeedbackKind, FeedbackOutcome, MessageStatus, SuppressionSource};
use store::{FeedbackStore, MessageStore, Registration, SeaStore, SuppressionStore, UserStore};

use crate::common::{self, backend_tests, claim_ok, email, secs, t0};

fn feedback(id: &str, kind: FeedbackKind, provider_id: &str, address: &str) -> Feedback {
    Feedback {
        feedback_id: id.to_owned(),
        kind,
        provider_message_id: provider_id.to_owned(),
        mailbox: email(address).mailbox_key(),
        detail: "Permanent/General 5.1.1".to_owned(),
        occurred_at: t0() + secs(10.0),
    }
}

/// Registers `address` and sends its email, recorded under `provider_id`.
async fn sent(store: &SeaStore, address: &str, provider_id: &str) -> domain::MessageId {
    let (_, id) = common::register(store, address, t0()).await;
    claim_ok(store, id, t0()).await;
    store
        .mark_sent(id, Some(provider_id.to_owned()), t0() + secs(1.0))
        .await
        .unwrap();
    id
}

async fn a_permanent_bounce_marks_the_message_and_suppresses_once(store: &SeaStore) {
    let id = sent(store, "gone@example.com", "ses-1").await;
    let other = sent(store, "fine@example.com", "ses-2").await;
    let report = feedback(
        "fb-1",
        FeedbackKind::PermanentBounce,
        "ses-1",
        "Gone@example.com",
    );
    let now = t0() + secs(20.0);
    assert_eq!(
        store.record_feedback(&report, now).await.unwrap(),
        FeedbackOutcome::Recorded {
            message: Some(id),
            suppressed: true
        }
    );
    let status: String = common::message_column(store, id, "status").await;
    assert_eq!(status, MessageStatus::Bounced.as_str());
    let status: String = common::message_column(store, other, "status").await;
    assert_eq!(status, MessageStatus::Sent.as_str());
    let listed = SuppressionStore::list(store, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].source, SuppressionSource::Bounce);
    assert_eq!(
        listed[0].mailbox_key,
        email("gone@example.com").mailbox_key()
    );

    // The same report again (a queue redelivers): nothing changes.
    assert_eq!(
        store
            .record_feedback(&report, now + secs(5.0))
            .await
            .unwrap(),
        FeedbackOutcome::Duplicate
    );
    assert_eq!(common::count(store, "email_feedback").await, 1);
    let recorded = store.feedback(id).await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].kind, FeedbackKind::PermanentBounce);
    assert_eq!(recorded[0].detail, "Permanent/General 5.1.1");
    assert_eq!(recorded[0].occurred_at, t0() + secs(10.0));
    assert_eq!(recorded[0].received_at, now);
    assert!(store.feedback(other).await.unwrap().is_empty());

    let stats = store.stats().await.unwrap();
    assert_eq!((stats.bounced, stats.sent), (1, 1));
    // A bounced message counts as sent for a late job: nothing is sent again.
    assert_eq!(
        store
            .claim(id, now + secs(60.0), common::lease())
            .await
            .unwrap(),
        store::Claim::AlreadySent
    );
    // Nothing more is owed to the mailbox.
    assert!(matches!(
        store
            .register(
                &email("gone+2@example.com"),
                domain::Locale::En,
                now + secs(3600.0)
            )
            .await
            .unwrap(),
        Registration::Created { .. } | Registration::CreatedWithoutEmail { .. }
    ));
    assert!(
        store
            .is_suppressed(&email("gone@example.com").mailbox_key())
            .await
            .unwrap()
    );
}

async fn a_transient_bounce_is_recorded_only(store: &SeaStore) {
    let id = sent(store, "full@example.com", "ses-3").await;
    let mut report = feedback(
        "fb-2",
        FeedbackKind::TransientBounce,
        "ses-3",
        "full@example.com",
    );
    report.detail = "Transient/MailboxFull 4.2.2".to_owned();
    assert_eq!(
        store
            .record_feedback(&report, t0() + secs(20.0))
            .await
            .unwrap(),
        FeedbackOutcome::Recorded {
            message: Some(id),
            suppressed: false
        }
    );
    let status: String = common::message_column(store, id, "status").await;
    assert_eq!(status, MessageStatus::Sent.as_str());
    assert!(SuppressionStore::list(store, 10).await.unwrap().is_empty());
    assert_eq!(
        store.feedback(id).await.unwrap()[0].kind,
        FeedbackKind::TransientBounce
    );
}

async fn a_complaint_overrides_a_bounce_and_keeps_the_first_source(store: &SeaStore) {
    let id = sent(store, "spam@example.com", "ses-4").await;
    let bounce = feedback(
        "fb-3",
        FeedbackKind::PermanentBounce,
        "ses-4",
        "spam@example.com",
    );
    store
        .record_feedback(&bounce, t0() + secs(20.0))
        .await
        .unwrap();
    let mut complaint = feedback("fb-4", FeedbackKind::Complaint, "ses-4", "spam@example.com");
    complaint.detail = "abuse".to_owned();
    assert_eq!(
        store
            .record_feedback(&complaint, t0() + secs(30.0))
            .await
            .unwrap(),
        FeedbackOutcome::Recorded {
            message: Some(id),
            suppressed: false
        }
    );
    let status: String = common::message_column(store, id, "status").await;
    assert_eq!(status, MessageStatus::Complained.as_str());
    let listed = SuppressionStore::list(store, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].source, SuppressionSource::Bounce);
    let kinds: Vec<_> = store
        .feedback(id)
        .await
        .unwrap()
        .iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(
        kinds,
        [FeedbackKind::PermanentBounce, FeedbackKind::Complaint]
    );
    assert_eq!(store.stats().await.unwrap().complained, 1);
}

async fn feedback_about_an_unknown_message_still_suppresses(store: &SeaStore) {
    let report = feedback(
        "fb-5",
        FeedbackKind::Complaint,
        "not-ours",
        "who@example.com",
    );
    assert_eq!(
        store.record_feedback(&report, t0()).await.unwrap(),
        FeedbackOutcome::Recorded {
            message: None,
            suppressed: true
        }
    );
    assert!(
        store
            .is_suppressed(&email("who@example.com").mailbox_key())
            .await
            .unwrap()
    );
    assert_eq!(
        SuppressionStore::list(store, 10).await.unwrap()[0].source,
        SuppressionSource::Complaint
    );
    // One report naming two recipients is recorded for each.
    let second = feedback(
        "fb-5",
        FeedbackKind::Complaint,
        "not-ours",
        "too@example.com",
    );
    assert!(matches!(
        store.record_feedback(&second, t0()).await.unwrap(),
        FeedbackOutcome::Recorded { .. }
    ));
    assert_eq!(common::count(store, "email_feedback").await, 2);
}

backend_tests!(
    a_permanent_bounce_marks_the_message_and_suppresses_once,
    a_transient_bounce_is_recorded_only,
    a_complaint_overrides_a_bounce_and_keeps_the_first_source,
    feedback_about_an_unknown_message_still_suppresses,
);
