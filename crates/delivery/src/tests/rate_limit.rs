use std::sync::Arc;
use std::time::Duration;

use mailer::MemoryMailer;
use queue::Job;
use store::Claim;
use tokio::task::JoinSet;

use super::*;
use crate::{Outcome, RateLimiter};

/// With MAIL_MAX_RATE, a job waits for its send slot before it claims the message, so the
/// lease covers only the send: a long wait for a slot cannot outlast the lease (and let the
/// message be claimed and sent again meanwhile, as fault h once showed).
#[tokio::test(start_paused = true)]
async fn a_rate_limited_job_claims_only_once_it_has_a_send_slot() {
    let start = tokio::time::Instant::now();
    let claimed_at = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut messages = MockMessageStore::new();
    let seen = Arc::clone(&claimed_at);
    messages.expect_claim().times(2).returning(move |id, _, _| {
        seen.lock().unwrap().push(start.elapsed());
        Ok(Claim::Claimed(owed(id.0, 1)))
    });
    messages
        .expect_mark_sent()
        .times(2)
        .returning(|_, _, _| Ok(()));
    let mailer = Arc::new(MemoryMailer::new());
    let d = Arc::new(deliverer_with(
        messages,
        mailer.clone(),
        Arc::new(ManualClock::at_unix(NOW)),
        DeliveryConfig {
            max_rate: Some(1.0),
            ..config()
        },
    ));
    let jobs: Vec<_> = [1, 2]
        .into_iter()
        .map(|n| {
            let d = Arc::clone(&d);
            tokio::spawn(async move { d.handle(Job::new(MessageId(n))).await })
        })
        .collect();
    for job in jobs {
        assert!(matches!(job.await.unwrap().unwrap(), Outcome::Sent { .. }));
    }
    let mut claimed_at = claimed_at.lock().unwrap().clone();
    claimed_at.sort();
    assert_eq!(mailer.messages().len(), 2);
    assert!(claimed_at[0] < Duration::from_millis(100), "{claimed_at:?}");
    assert!(
        claimed_at[1] >= Duration::from_secs(1),
        "the second job claimed before it had a slot: {claimed_at:?}"
    );
}

/// The most events within any half-open one-second window.
fn busiest_second(times: &[Duration]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|u| **u < sorted[i] + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

// Paused time: sleeps advance the virtual clock instantly, no wall time passes.
#[tokio::test(start_paused = true)]
async fn rate_limiter_bounds_arrivals_even_when_send_durations_vary() {
    let limiter = Arc::new(RateLimiter::per_second(20.0));
    let start = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for task in 0..8u64 {
        let limiter = Arc::clone(&limiter);
        tasks.spawn(async move {
            let mut events = Vec::new();
            for n in 0..25u64 {
                let permit = limiter.acquire().await;
                let started = tokio::time::Instant::now() - start;
                // Sends of 1 to 120 ms, varying from one to the next (a fixed pseudo-random walk).
                let millis = 1 + (task * 37 + n * 53) % 120;
                tokio::time::sleep(Duration::from_millis(millis)).await;
                let finished = tokio::time::Instant::now() - start;
                drop(permit);
                events.push((started, finished));
            }
            events
        });
    }
    let mut events = Vec::new();
    while let Some(done) = tasks.join_next().await {
        events.extend(done.unwrap());
    }
    assert_eq!(events.len(), 200);
    // The provider accepts a message somewhere between its start and its finish: the bound must
    // hold for both ends.
    let starts: Vec<_> = events.iter().map(|e| e.0).collect();
    let finishes: Vec<_> = events.iter().map(|e| e.1).collect();
    assert!(
        busiest_second(&starts) <= 20,
        "{} starts in one second",
        busiest_second(&starts)
    );
    assert!(
        busiest_second(&finishes) <= 20,
        "{} finishes in one second",
        busiest_second(&finishes)
    );
    // And it does not throttle far below the rate: 200 sends in about 10 s plus the send times.
    let total = *finishes.iter().max().unwrap();
    assert!(
        total > Duration::from_secs(9) && total < Duration::from_secs(13),
        "{total:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_below_one_per_second_spaces_sends() {
    let limiter = RateLimiter::per_second(0.5);
    let start = tokio::time::Instant::now();
    let mut starts = Vec::new();
    for _ in 0..3 {
        let permit = limiter.acquire().await;
        starts.push(tokio::time::Instant::now() - start);
        drop(permit);
    }
    assert_eq!(
        starts,
        vec![
            Duration::ZERO,
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
}
