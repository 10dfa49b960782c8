//! Gathers concurrent calls into batches (group commit).
//!
//! Every registration, confirmation, claim and recorded send is one database statement and
//! commit; every acknowledged job one Redis round trip. Under load many requests make the same
//! call at the same moment, so a [`Coalescer`] runs one batch at a time and sends every call
//! that arrived while the previous batch was running in the next one. A lone call goes out at
//! once (nothing waits for a timer or for a batch to fill), so an idle service keeps its latency
//! and a busy one makes one round trip and one commit for many calls. Each caller still gets
//! its answer only after the statement that carries its call has committed.
//!
//! [`BatchedUsers`] applies this to registrations and confirmations; the worker applies it to
//! claims, recorded sends and queue acknowledgements.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{EmailAddress, User};
use tokio::sync::{mpsc, oneshot};

use crate::{ConfirmOutcome, Registration, Resend, ResendPolicy, StoreError, UserStore};

/// Runs calls in batches on a task of its own (see the module docs).
///
/// The task keeps running while the coalescer or a clone of it is alive; a batch already
/// started always finishes (its callers may stop waiting, the batch is not cancelled with them).
#[derive(Debug)]
pub struct Coalescer<Req, Resp> {
    calls: mpsc::UnboundedSender<(Req, oneshot::Sender<Resp>)>,
}

impl<Req, Resp> Clone for Coalescer<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            calls: self.calls.clone(),
        }
    }
}

/// The batch task is gone (the runtime is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the batching task has stopped")]
pub struct Stopped;

impl<Req, Resp> Coalescer<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Spawns the batch task. `run` gets at most `max` calls (at least one) and must return one
    /// answer per call, in order; a missing answer drops that caller's reply (it sees
    /// [`Stopped`]).
    pub fn spawn<F, Fut>(max: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (calls, mut rx) = mpsc::unbounded_channel::<(Req, oneshot::Sender<Resp>)>();
        let max = max.max(1);
        tokio::spawn(async move {
            let mut requests = Vec::with_capacity(max);
            let mut replies = Vec::with_capacity(max);
            while let Some((request, reply)) = rx.recv().await {
                requests.push(request);
                replies.push(reply);
                while requests.len() < max {
                    match rx.try_recv() {
                        Ok((request, reply)) => {
                            requests.push(request);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let answers = run(std::mem::take(&mut requests)).await;
                for (reply, answer) in replies.drain(..).zip(answers) {
                    // The caller may have stopped waiting; its answer is of no use then.
                    let _ = reply.send(answer);
                }
                replies.clear();
            }
        });
        Self { calls }
    }

    /// Sends `request` with the next batch and waits for its answer.
    pub async fn call(&self, request: Req) -> Result<Resp, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.calls.send((request, reply)).map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

/// A [`UserStore`] that sends concurrent registrations and confirmations to the store it wraps
/// in batches ([`UserStore::register_many`], [`UserStore::confirm_many`], at most `max` per
/// batch); every other call goes straight through. A batch runs with the latest `now` of its
/// calls. If a batch of several fails, its calls are retried one by one, so one bad call cannot
/// fail the others. Needs a Tokio runtime (it spawns the batch tasks).
#[derive(Debug)]
pub struct BatchedUsers {
    inner: Arc<dyn UserStore>,
    registrations: Coalescer<(EmailAddress, DateTime<Utc>), Result<Registration, StoreError>>,
    confirmations: Coalescer<ConfirmCall, Result<ConfirmOutcome, StoreError>>,
}

/// A confirmation waiting for its batch: the address, the link's time, the request's time.
type ConfirmCall = (EmailAddress, DateTime<Utc>, DateTime<Utc>);

impl BatchedUsers {
    pub fn new(inner: Arc<dyn UserStore>, max: usize) -> Self {
        let store = Arc::clone(&inner);
        let registrations =
            Coalescer::spawn(max, move |calls: Vec<(EmailAddress, DateTime<Utc>)>| {
                let store = Arc::clone(&store);
                async move {
                    let now = latest(calls.iter().map(|(_, now)| *now));
                    let count = calls.len();
                    let emails: Vec<EmailAddress> = calls.iter().map(|(e, _)| e.clone()).collect();
                    match store.register_many(emails, now).await {
                        Ok(answers) if answers.len() == count => {
                            answers.into_iter().map(Ok).collect()
                        }
                        failed if count == 1 => vec![failed.and_then(|mut a| {
                            a.pop().ok_or_else(|| {
                                StoreError::Corrupt("no answer to a registration".into())
                            })
                        })],
                        _ => {
                            let mut answers = Vec::with_capacity(count);
                            for (email, now) in &calls {
                                answers.push(store.register(email, *now).await);
                            }
                            answers
                        }
                    }
                }
            });
        let store = Arc::clone(&inner);
        let confirmations = Coalescer::spawn(max, move |calls: Vec<ConfirmCall>| {
            let store = Arc::clone(&store);
            async move {
                let now = latest(calls.iter().map(|(_, _, now)| *now));
                let count = calls.len();
                let links = calls
                    .iter()
                    .map(|(e, issued, _)| (e.clone(), *issued))
                    .collect();
                match store.confirm_many(links, now).await {
                    Ok(answers) if answers.len() == count => answers.into_iter().map(Ok).collect(),
                    failed if count == 1 => vec![failed.and_then(|mut a| {
                        a.pop().ok_or_else(|| {
                            StoreError::Corrupt("no answer to a confirmation".into())
                        })
                    })],
                    _ => {
                        let mut answers = Vec::with_capacity(count);
                        for (email, issued_at, now) in &calls {
                            answers.push(store.confirm(email, *issued_at, *now).await);
                        }
                        answers
                    }
                }
            }
        });
        Self {
            inner,
            registrations,
            confirmations,
        }
    }
}

fn latest(times: impl Iterator<Item = DateTime<Utc>>) -> DateTime<Utc> {
    times.max().unwrap_or_else(Utc::now)
}

fn stopped(_: Stopped) -> StoreError {
    StoreError::Unavailable("the database batch task has stopped (shutting down)".into())
}

#[async_trait]
impl UserStore for BatchedUsers {
    async fn register(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        self.registrations
            .call((email.clone(), now))
            .await
            .map_err(stopped)?
    }

    async fn register_many(
        &self,
        emails: Vec<EmailAddress>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Registration>, StoreError> {
        self.inner.register_many(emails, now).await
    }

    async fn find_by_email(&self, email: &EmailAddress) -> Result<Option<User>, StoreError> {
        self.inner.find_by_email(email).await
    }

    async fn confirm(
        &self,
        email: &EmailAddress,
        issued_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome, StoreError> {
        self.confirmations
            .call((email.clone(), issued_at, now))
            .await
            .map_err(stopped)?
    }

    async fn confirm_many(
        &self,
        links: Vec<(EmailAddress, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ConfirmOutcome>, StoreError> {
        self.inner.confirm_many(links, now).await
    }

    async fn resend(
        &self,
        email: &EmailAddress,
        policy: ResendPolicy,
        now: DateTime<Utc>,
    ) -> Result<Resend, StoreError> {
        self.inner.resend(email, policy, now).await
    }

    async fn recent_users(&self, limit: u64) -> Result<Vec<User>, StoreError> {
        self.inner.recent_users(limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn a_lone_call_runs_at_once_and_gets_its_answer() {
        let coalescer = Coalescer::spawn(8, |xs: Vec<u32>| async move {
            xs.into_iter().map(|x| x * 2).collect()
        });
        assert_eq!(coalescer.call(21).await, Ok(42));
    }

    #[tokio::test]
    async fn calls_made_while_a_batch_runs_go_out_together_in_order() {
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let (release, gate) = tokio::sync::watch::channel(false);
        let seen = Arc::clone(&batches);
        let coalescer = Coalescer::spawn(4, move |xs: Vec<u32>| {
            let seen = Arc::clone(&seen);
            let mut gate = gate.clone();
            async move {
                seen.lock().unwrap().push(xs.clone());
                // The first batch holds until every other call is queued behind it.
                let _ = gate.wait_for(|open| *open).await;
                xs.into_iter().map(|x| x + 100).collect()
            }
        });
        let first = tokio::spawn({
            let c = coalescer.clone();
            async move { c.call(0).await }
        });
        // Wait (bounded by the test's own progress, not by time) until the first batch started.
        while batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (1..=6)
            .map(|x| {
                let c = coalescer.clone();
                tokio::spawn(async move { c.call(x).await })
            })
            .collect();
        // Give the spawned callers a chance to queue their calls.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release.send_replace(true);
        assert_eq!(first.await.unwrap(), Ok(100));
        for (x, handle) in (1..=6).zip(rest) {
            assert_eq!(handle.await.unwrap(), Ok(x + 100));
        }
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches[0], vec![0]);
        // Six waiting calls with at most four per batch: two batches after the first.
        assert_eq!(batches.len(), 3, "{batches:?}");
        assert_eq!(batches[1].len(), 4, "{batches:?}");
        let mut all: Vec<u32> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..=6).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_missing_answer_is_stopped_not_a_hang() {
        let coalescer = Coalescer::spawn(4, |_: Vec<u32>| async move { Vec::<u32>::new() });
        assert_eq!(coalescer.call(1).await, Err(Stopped));
    }
}
