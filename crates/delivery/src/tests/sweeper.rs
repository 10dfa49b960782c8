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
