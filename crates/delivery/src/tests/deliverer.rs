use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta};
use domain::MessageId;
use mailer::{MailError, MemoryMailer, MockMailer};
use mockall::predicate::eq;
use queue::Job;
use store::{Claim, StoreError};

use super::*;
use crate::Outcome;

#[tokio::test]
async fn sends_a_fresh_link_and_records_the_send() {
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .with(
            eq(MessageId(7)),
            eq(DateTime::from_timestamp(NOW, 0).unwrap()),
            eq(TimeDelta::seconds(120)),
        )
        .times(1)
        .returning(|_, _, _| Ok(Claim::Claimed(owed(7, 1))));
    messages
        .expect_mark_sent()
        .withf(|id, provider, _| *id == MessageId(7) && provider.as_deref() == Some("memory-1"))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mailer = Arc::new(MemoryMailer::new());
    let d = deliverer(messages, mailer.clone());

    let outcome = d.handle(Job::new(MessageId(7))).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Sent {
            provider_message_id: Some("memory-1".into())
        }
    );

    let sent = mailer.messages();
    assert_eq!(sent.len(), 1);
    let email = &sent[0];
    assert_eq!(email.to.as_str(), "Someone@example.com");
    assert_eq!(email.subject, "Confirm Your Account");
    let link = email.action_url.clone().unwrap();
    let token = link
        .strip_prefix("http://127.0.0.1:5003/confirm/")
        .expect("link on BASE_URL without a double slash");
    assert!(email.text.contains(&link));
    assert!(email.text.contains("1 hour"));
    assert!(
        email
            .html
            .as_ref()
            .unwrap()
            .contains(&format!("href=\"{}", link.replace('/', "&#x2f;")))
    );
    let verified = tokens().check(token, Some(3600), NOW).unwrap();
    assert_eq!(verified.payload, "Someone@example.com");
    assert_eq!(verified.issued_at, NOW as u64);
}

#[tokio::test]
async fn skips_without_sending_when_the_claim_fails() {
    for claim in [Claim::AlreadySent, Claim::NotClaimable, Claim::Missing] {
        let mut messages = MockMessageStore::new();
        let c = claim.clone();
        messages
            .expect_claim()
            .returning(move |_, _, _| Ok(c.clone()));
        let mut mailer = MockMailer::new();
        mailer.expect_send().never();
        mailer.expect_provider().return_const("mock");
        let d = deliverer(messages, Arc::new(mailer));
        assert!(
            matches!(
                d.handle(Job::new(MessageId(1))).await.unwrap(),
                Outcome::Skipped(_)
            ),
            "{claim:?}"
        );
    }
}

#[tokio::test]
async fn transient_failure_schedules_a_retry_within_the_backoff_window() {
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .returning(|_, _, _| Ok(Claim::Claimed(owed(3, 1))));
    messages
        .expect_mark_retry()
        .withf(|id, error, at, now| {
            let wait = *at - *now;
            *id == MessageId(3)
                && error.contains("421")
                && wait >= TimeDelta::seconds(15)
                && wait <= TimeDelta::seconds(30)
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer
        .expect_send()
        .times(1)
        .returning(|_| Err(MailError::Transient("421 try later".into())));
    mailer.expect_provider().return_const("mock");
    let d = deliverer(messages, Arc::new(mailer));
    assert!(matches!(
        d.handle(Job::new(MessageId(3))).await.unwrap(),
        Outcome::Retrying { .. }
    ));
}

#[tokio::test]
async fn permanent_failure_or_last_attempt_goes_dead() {
    for (attempts, error) in [
        (1, MailError::Permanent("550 no such user".into())),
        (10, MailError::Transient("timeout".into())),
    ] {
        let mut messages = MockMessageStore::new();
        messages
            .expect_claim()
            .returning(move |_, _, _| Ok(Claim::Claimed(owed(4, attempts))));
        messages
            .expect_mark_dead()
            .withf(|id, _, _| *id == MessageId(4))
            .times(1)
            .returning(|_, _, _| Ok(()));
        messages.expect_mark_retry().never();
        let mut mailer = MockMailer::new();
        let e = error.clone();
        mailer
            .expect_send()
            .times(1)
            .returning(move |_| Err(e.clone()));
        mailer.expect_provider().return_const("mock");
        let d = deliverer(messages, Arc::new(mailer));
        assert!(
            matches!(
                d.handle(Job::new(MessageId(4))).await.unwrap(),
                Outcome::Dead { .. }
            ),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn store_failure_on_claim_is_an_error_and_sends_nothing() {
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .returning(|_, _, _| Err(StoreError::Corrupt("test".into())));
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();
    mailer.expect_provider().return_const("mock");
    let d = deliverer(messages, Arc::new(mailer));
    assert!(d.handle(Job::new(MessageId(1))).await.is_err());
}

/// A send whose record fails because the database was unavailable (a connection the server
/// ended) is recorded on a second try; another kind of failure is not retried.
#[tokio::test]
async fn an_unavailable_database_when_recording_a_send_is_tried_once_more() {
    for (first, calls, recorded) in [
        (StoreError::Unavailable("connection reset".into()), 2, true),
        (StoreError::Corrupt("bad row".into()), 1, false),
    ] {
        let mut messages = MockMessageStore::new();
        messages
            .expect_claim()
            .times(1)
            .returning(|id, _, _| Ok(Claim::Claimed(owed(id.0, 1))));
        let mut seq = mockall::Sequence::new();
        messages
            .expect_mark_sent()
            .times(1)
            .in_sequence(&mut seq)
            .return_once(move |_, _, _| Err(first));
        messages
            .expect_mark_sent()
            .times(calls - 1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(()));
        let mailer = Arc::new(MemoryMailer::new());
        let d = deliverer(messages, mailer.clone());
        let outcome = d.handle(Job::new(MessageId(7))).await;
        assert_eq!(outcome.is_ok(), recorded, "{outcome:?}");
        assert_eq!(mailer.messages().len(), 1, "sent once either way");
    }
}

#[tokio::test]
async fn an_account_failure_pauses_sending_without_burning_retries() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let mut messages = MockMessageStore::new();
    // The last allowed attempt: an ordinary transient failure would make it dead.
    messages
        .expect_claim()
        .times(1)
        .returning(|_, _, _| Ok(Claim::Claimed(owed(5, 10))));
    messages
        .expect_mark_retry()
        .withf(|id, error, at, now| {
            *id == MessageId(5)
                && error.contains("sending paused")
                && *at - *now == TimeDelta::seconds(300)
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    messages.expect_mark_dead().never();
    let mut mailer = MockMailer::new();
    mailer.expect_send().times(1).returning(|_| {
        Err(MailError::Account(
            "SES sending paused for the account".into(),
        ))
    });
    mailer.expect_provider().return_const("mock");
    let d = deliverer_with(messages, Arc::new(mailer), clock.clone(), config());
    assert!(matches!(
        d.handle(Job::new(MessageId(5))).await.unwrap(),
        Outcome::Retrying { .. }
    ));
    assert_eq!(d.paused_for(), Some(Duration::from_secs(300)));

    // While paused, nothing is claimed or sent (the mocks allow one claim and one send only).
    let next = d.handle(Job::new(MessageId(6))).await.unwrap();
    assert!(matches!(next, Outcome::Skipped(_)), "{next:?}");

    clock.advance(TimeDelta::seconds(300));
    assert_eq!(d.paused_for(), None);
}

/// A claim that finds the recipient's mailbox suppressed cancels the message: nothing is sent,
/// no failure or retry is recorded, the job is done.
#[tokio::test]
async fn a_message_to_a_suppressed_mailbox_is_cancelled_not_sent() {
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .times(1)
        .returning(|_, _, _| Ok(Claim::Cancelled));
    messages.expect_mark_sent().never();
    messages.expect_mark_retry().never();
    messages.expect_mark_dead().never();
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();
    mailer.expect_provider().return_const("mock");
    let d = deliverer(messages, Arc::new(mailer));
    assert_eq!(
        d.handle(Job::new(MessageId(9))).await.unwrap(),
        Outcome::Cancelled
    );
}
