use domain::MessageId;
use queue::{EmbeddedQueue, Job, JobQueue};

use super::*;
use crate::{SweepConfig, sweep_once};

#[tokio::test]
async fn sweep_publishes_due_messages_and_stops_at_a_full_queue() {
    let mut messages = MockMessageStore::new();
    let now = DateTime::from_timestamp(NOW, 0).unwrap();
    messages
        .expect_due()
        .withf(move |cutoff, batch| *cutoff == now - TimeDelta::seconds(30) && *batch == 100)
        .returning(|_, _| Ok(vec![MessageId(1), MessageId(2), MessageId(3)]));
    let queue = EmbeddedQueue::with_capacity(2);
    let config = SweepConfig {
        interval: Duration::from_secs(15),
        grace: TimeDelta::seconds(30),
        batch: 100,
        ..SweepConfig::default()
    };
    assert_eq!(sweep_once(&messages, &queue, now, config).await.unwrap(), 2);
    assert_eq!(queue.depth().await.unwrap(), 2);
}

#[tokio::test]
async fn sweep_waits_while_jobs_are_waiting_in_the_queue() {
    let mut messages = MockMessageStore::new();
    messages.expect_due().never();
    let queue = EmbeddedQueue::new();
    queue.publish(Job::new(MessageId(9))).await.unwrap();
    let now = DateTime::from_timestamp(NOW, 0).unwrap();
    assert_eq!(
        sweep_once(&messages, &queue, now, SweepConfig::default())
            .await
            .unwrap(),
        0
    );
}

/// Retention runs each kind's delete with its own cut-off, repeats while a batch comes back
/// full, stops at the bound, and skips what is kept for ever.
#[tokio::test]
async fn retention_deletes_in_bounded_batches_with_each_cut_off() {
    use domain::MessageStatus;
    use store::MockUserStore;

    use crate::{Purged, Retention, retain_once};

    let now = DateTime::from_timestamp(NOW, 0).unwrap();
    let mut messages = MockMessageStore::new();
    // Sent: full, full, then short (3 calls); cancelled: empty at once; bounced and complained
    // (sent, then reported) go with the sent ones.
    let mut sent_answers = vec![10, 10, 4].into_iter();
    messages
        .expect_purge_finished()
        .withf(move |status, before, limit| {
            *status == MessageStatus::Sent && *before == now - TimeDelta::days(30) && *limit == 10
        })
        .times(3)
        .returning(move |_, _, _| Ok(sent_answers.next().unwrap()));
    messages
        .expect_purge_finished()
        .withf(|status, _, _| *status == MessageStatus::Cancelled)
        .times(1)
        .returning(|_, _, _| Ok(0));
    messages
        .expect_purge_finished()
        .withf(move |status, before, _| {
            matches!(status, MessageStatus::Bounced | MessageStatus::Complained)
                && *before == now - TimeDelta::days(30)
        })
        .times(2)
        .returning(|_, _, _| Ok(1));
    // Dead: always full, so the bound (4 batches) stops it.
    messages
        .expect_purge_finished()
        .withf(move |status, before, _| {
            *status == MessageStatus::Dead && *before == now - TimeDelta::days(90)
        })
        .times(4)
        .returning(|_, _, _| Ok(10));
    let users = MockUserStore::new();
    let retention = Retention {
        sent: Some(TimeDelta::days(30)),
        dead: Some(TimeDelta::days(90)),
        unconfirmed: None,
    };
    let purged = retain_once(&messages, &users, now, retention, 10, 4)
        .await
        .unwrap();
    assert_eq!(
        purged,
        Purged {
            sent: 26,
            dead: 40,
            unconfirmed: 0
        }
    );

    // Unconfirmed accounts only: the messages are not touched.
    let mut messages = MockMessageStore::new();
    messages.expect_purge_finished().never();
    let mut users = MockUserStore::new();
    users
        .expect_purge_unconfirmed()
        .withf(move |before, limit| *before == now - TimeDelta::days(7) && *limit == 10)
        .times(1)
        .returning(|_, _| Ok(2));
    let retention = Retention {
        unconfirmed: Some(TimeDelta::days(7)),
        ..Retention::default()
    };
    let purged = retain_once(&messages, &users, now, retention, 10, 4)
        .await
        .unwrap();
    assert_eq!(purged.unconfirmed, 2);
}

/// A reminder pass claims the due accounts (registered before now − REMINDER_AFTER), owes each a
/// fresh email within the resend policy, publishes what is owed, and counts the rest as held
/// back.
#[tokio::test]
async fn reminders_are_claimed_then_owed_within_the_limits_and_published() {
    use domain::{EmailAddress, ResendPolicy};
    use store::{MockUserStore, Resend};

    use crate::{Reminded, Reminders, remind_once};

    let now = DateTime::from_timestamp(NOW, 0).unwrap();
    let after = TimeDelta::hours(24);
    let policy = ResendPolicy::default();
    let mut users = MockUserStore::new();
    users
        .expect_claim_reminders()
        .withf(move |before, at, limit| *before == now - after && *at == now && *limit == 50)
        .times(1)
        .returning(|_, _, _| {
            Ok(vec![
                EmailAddress::parse("failing@example.com").unwrap(),
                EmailAddress::parse("due@example.com").unwrap(),
                EmailAddress::parse("limited@example.com").unwrap(),
            ])
        });
    users
        .expect_resend()
        .withf(move |_, p, at| *p == policy && *at == now)
        .times(3)
        .returning(|email, _, _| match email.as_str() {
            // One account's failure does not cost the others their reminders.
            "failing@example.com" => Err(store::StoreError::Database("deadlock".into())),
            "due@example.com" => Ok(Resend::Queued(MessageId(41))),
            _ => Ok(Resend::CoolingDown),
        });
    let queue = EmbeddedQueue::new();
    let done = remind_once(&users, &queue, now, Reminders { after, policy }, 50)
        .await
        .unwrap();
    assert_eq!(
        done,
        Reminded {
            claimed: 3,
            owed: 1
        }
    );
    let job = queue.receive(Duration::ZERO).await.unwrap().unwrap().job;
    assert_eq!(job.message_id, MessageId(41));
    assert_eq!(queue.depth().await.unwrap(), 0);
}
