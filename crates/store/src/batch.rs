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
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{EmailAddress, Locale, ResendPolicy, User, UserSummary};
use tokio::sync::{mpsc, oneshot};

use crate::{ConfirmOutcome, Registration, Resend, StoreError, UserStore};

/// Runs calls in batches on a task of its own (see the module docs).
///
/// The task keeps running while the coalescer or a clone of it is alive; a batch already
/// started always finishes (its callers may stop waiting, the batch is not cancelled with them).
/// A call whose caller stopped waiting before its batch started is dropped unrun. At most
/// `capacity` calls wait for a batch; beyond that a call is refused at once ([`CallError::Full`])
/// rather than queued behind work that would answer it too late. A batch that panics answers
/// its own callers with [`CallError::Stopped`]; the next batch runs as usual.
#[derive(Debug)]
pub struct Coalescer<Req, Resp> {
    calls: mpsc::Sender<(Req, oneshot::Sender<Resp>)>,
}

impl<Req, Resp> Clone for Coalescer<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            calls: self.calls.clone(),
        }
    }
}

/// Why a call got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The batch task is gone (the runtime is shutting down), or the batch carrying the call
    /// panicked or gave no answer for it.
    #[error("the batch gave no answer (shutting down, or it failed)")]
    Stopped,
    /// Too many calls are already waiting: nothing was run.
    #[error("too many calls waiting for a batch")]
    Full,
}

/// How many calls may wait for a batch by default: far more than a healthy database leaves
/// waiting, few enough that a caller at the back is answered while its client still waits.
pub const DEFAULT_CAPACITY: usize = 4096;

impl<Req, Resp> Coalescer<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Spawns the batch task with room for [`DEFAULT_CAPACITY`] waiting calls (see
    /// [`Self::spawn_with_capacity`]).
    pub fn spawn<F, Fut>(max: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        Self::spawn_with_capacity(max, DEFAULT_CAPACITY, run)
    }

    /// Spawns the batch task. `run` gets at most `max` calls (at least one) and must return one
    /// answer per call, in order; a missing answer drops that caller's reply (it sees
    /// [`CallError::Stopped`]). At most `capacity` calls wait for a batch.
    pub fn spawn_with_capacity<F, Fut>(max: usize, capacity: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (calls, mut rx) = mpsc::channel::<(Req, oneshot::Sender<Resp>)>(capacity.max(1));
        let max = max.max(1);
        tokio::spawn(async move {
            let mut requests = Vec::with_capacity(max);
            let mut replies: Vec<oneshot::Sender<Resp>> = Vec::with_capacity(max);
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some((request, reply)) = next.take() {
                    // A caller that stopped waiting (its client went away) needs no answer.
                    if !reply.is_closed() {
                        requests.push(request);
                        replies.push(reply);
                    }
                    if requests.len() < max {
                        next = rx.try_recv().ok();
                    }
                }
                if requests.is_empty() {
                    continue;
                }
                // On a task of its own, so that a batch that panics fails only its own callers
                // (they see `CallError::Stopped`), not every later call.
                if let Ok(answers) = tokio::spawn(run(std::mem::take(&mut requests))).await {
                    for (reply, answer) in replies.drain(..).zip(answers) {
                        // The caller may have stopped waiting; its answer is of no use then.
                        let _ = reply.send(answer);
                    }
                }
                replies.clear();
            }
        });
        Self { calls }
    }

    /// Sends `request` with the next batch and waits for its answer; refused at once when
    /// the coalescer's capacity is used up.
    pub async fn call(&self, request: Req) -> Result<Resp, CallError> {
        let (reply, answer) = oneshot::channel();
        self.calls
            .try_send((request, reply))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => CallError::Full,
                mpsc::error::TrySendError::Closed(_) => CallError::Stopped,
            })?;
        answer.await.map_err(|_| CallError::Stopped)
    }
}

/// A [`UserStore`] that sends concurrent registrations and confirmations to the store it wraps
/// in batches ([`UserStore::register_many`], [`UserStore::confirm_many`], at most `max` per
/// batch); every other call goes straight through. A batch runs with the latest `now` of its
/// calls. If a batch of several fails for another reason than an unavailable database, its calls
/// are retried one by one, so one bad call cannot fail the others. While the database is down,
/// the calls that waited through a failed batch get its error at once rather than waiting for
/// another connection attempt. Needs a Tokio runtime (it spawns the batch tasks).
#[derive(Debug)]
pub struct BatchedUsers {
    inner: Arc<dyn UserStore>,
    registrations: Coalescer<Call<RegisterCall>, Result<Registration, StoreError>>,
    confirmations: Coalescer<Call<ConfirmCall>, Result<ConfirmOutcome, StoreError>>,
}

/// A registration waiting for its batch: the address, its language and the request's time.
type RegisterCall = (EmailAddress, Locale, DateTime<Utc>);

/// A confirmation waiting for its batch: the address, the link's time, the request's time.
type ConfirmCall = (EmailAddress, DateTime<Utc>, DateTime<Utc>);

/// A call and when it was made (to tell the calls that waited through a failed batch).
type Call<C> = (Instant, C);

/// The last time a batch found the database unavailable, and why.
///
/// Calls made before that moment have already waited for one connection attempt (up to the
/// pool's acquire timeout) while the database was down; they get that answer at once instead of
/// waiting for another attempt, so that during an outage a request waits for at most one
/// attempt, as it would without batching.
#[derive(Debug, Default)]
struct Outage(Mutex<Option<(Instant, StoreError)>>);

impl Outage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, StoreError)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The error to give a call made at `made`, if it waited through a failed batch.
    fn waited_through(&self, made: Instant) -> Option<StoreError> {
        match &*self.lock() {
            Some((at, error)) if made < *at => Some(error.clone()),
            _ => None,
        }
    }

    fn record(&self, error: &StoreError) {
        if error.is_unavailable() {
            *self.lock() = Some((Instant::now(), error.clone()));
        }
    }
}

/// Answers one batch of calls: those that waited through a failed batch get its error, the
/// others go to `many` in one statement; if that fails for another reason than an unavailable
/// database, they are retried one by one with `one`, so one bad call cannot fail the others.
async fn answer<C, A, Many, ManyFut, One, OneFut>(
    calls: Vec<Call<C>>,
    outage: &Outage,
    many: Many,
    one: One,
) -> Vec<Result<A, StoreError>>
where
    C: Clone,
    Many: Fn(Vec<C>) -> ManyFut,
    ManyFut: Future<Output = Result<Vec<A>, StoreError>>,
    One: Fn(C) -> OneFut,
    OneFut: Future<Output = Result<A, StoreError>>,
{
    let mut answers: Vec<Option<Result<A, StoreError>>> = calls
        .iter()
        .map(|(made, _)| outage.waited_through(*made).map(Err))
        .collect();
    let tried: Vec<C> = calls
        .iter()
        .zip(&answers)
        .filter(|(_, answer)| answer.is_none())
        .map(|((_, call), _)| call.clone())
        .collect();
    if !tried.is_empty() {
        let count = tried.len();
        let mut results: Vec<Result<A, StoreError>> = match many(tried.clone()).await {
            Ok(batch) if batch.len() == count => batch.into_iter().map(Ok).collect(),
            Ok(_) => (0..count)
                .map(|_| {
                    Err(StoreError::Corrupt(
                        "a batch gave the wrong number of answers".into(),
                    ))
                })
                .collect(),
            Err(error) if error.is_unavailable() || count == 1 => {
                outage.record(&error);
                fail_all(&error, count)
            }
            Err(_) => {
                let mut singles = Vec::with_capacity(count);
                for call in tried {
                    singles.push(one(call).await);
                }
                singles
            }
        };
        results.reverse();
        for answer in answers.iter_mut().filter(|a| a.is_none()) {
            *answer = results.pop();
        }
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(StoreError::Corrupt("a batch lost an answer".into()))))
        .collect()
}

impl BatchedUsers {
    pub fn new(inner: Arc<dyn UserStore>, max: usize) -> Self {
        let (store, outage) = (Arc::clone(&inner), Arc::new(Outage::default()));
        let registrations = Coalescer::spawn(max, move |calls: Vec<Call<RegisterCall>>| {
            let (store, outage) = (Arc::clone(&store), Arc::clone(&outage));
            async move {
                let now = latest(calls.iter().map(|(_, (_, _, now))| *now));
                let (calls, index) = distinct(calls, |(_, (email, _, _))| email.key());
                let answers = answer(
                    calls,
                    &outage,
                    |emails: Vec<RegisterCall>| {
                        let store = Arc::clone(&store);
                        async move {
                            let accounts = emails.into_iter().map(|(e, l, _)| (e, l)).collect();
                            store.register_many(accounts, now).await
                        }
                    },
                    |(email, locale, now): RegisterCall| {
                        let store = Arc::clone(&store);
                        async move { store.register(&email, locale, now).await }
                    },
                )
                .await;
                fan_out(answers, &index, |_| Registration::AlreadyRegistered)
            }
        });
        let (store, outage) = (Arc::clone(&inner), Arc::new(Outage::default()));
        let confirmations = Coalescer::spawn(max, move |calls: Vec<Call<ConfirmCall>>| {
            let (store, outage) = (Arc::clone(&store), Arc::clone(&outage));
            async move {
                let now = latest(calls.iter().map(|(_, (_, _, now))| *now));
                let (calls, index) =
                    distinct(calls, |(_, (email, issued, _))| (email.key(), *issued));
                let answers = answer(
                    calls,
                    &outage,
                    |links: Vec<ConfirmCall>| {
                        let store = Arc::clone(&store);
                        async move {
                            let links = links
                                .into_iter()
                                .map(|(e, issued, _)| (e, issued))
                                .collect();
                            store.confirm_many(links, now).await
                        }
                    },
                    |(email, issued_at, now): ConfirmCall| {
                        let store = Arc::clone(&store);
                        async move { store.confirm(&email, issued_at, now).await }
                    },
                )
                .await;
                fan_out(answers, &index, |outcome| match outcome {
                    ConfirmOutcome::Confirmed => ConfirmOutcome::AlreadyConfirmed,
                    other => *other,
                })
            }
        });
        Self {
            inner,
            registrations,
            confirmations,
        }
    }
}

/// The answers of a batch whose one statement failed: the same error for each of its `count`
/// callers.
pub fn fail_all<T>(error: &StoreError, count: usize) -> Vec<Result<T, StoreError>> {
    (0..count).map(|_| Err(error.clone())).collect()
}

fn latest(times: impl Iterator<Item = DateTime<Utc>>) -> DateTime<Utc> {
    times.max().unwrap_or_else(Utc::now)
}

/// A call without an answer is the store being unavailable (or, when too many calls wait,
/// busy) for it: a 503, or a message that stays owed.
impl From<CallError> for StoreError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Stopped => StoreError::Unavailable(error.to_string()),
            CallError::Full => StoreError::Busy,
        }
    }
}

/// The calls of a batch with repeats taken out: the distinct calls (the first of each key, in
/// order), and for every call the index of its distinct call and whether it repeats it.
fn distinct<C, K: Eq + std::hash::Hash>(
    calls: Vec<C>,
    key: impl Fn(&C) -> K,
) -> (Vec<C>, Vec<(usize, bool)>) {
    let mut seen = std::collections::HashMap::with_capacity(calls.len());
    let mut unique = Vec::with_capacity(calls.len());
    let mut index = Vec::with_capacity(calls.len());
    for call in calls {
        match seen.entry(key(&call)) {
            std::collections::hash_map::Entry::Occupied(at) => index.push((*at.get(), true)),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(unique.len());
                index.push((unique.len(), false));
                unique.push(call);
            }
        }
    }
    (unique, index)
}

/// Every call's answer from its distinct call's: a repeat gets what it would have got right
/// after the first (`repeat`).
fn fan_out<A: Clone>(
    answers: Vec<Result<A, StoreError>>,
    index: &[(usize, bool)],
    repeat: impl Fn(&A) -> A,
) -> Vec<Result<A, StoreError>> {
    index
        .iter()
        .map(|&(at, repeated)| match answers.get(at) {
            Some(Ok(answer)) if repeated => Ok(repeat(answer)),
            Some(answer) => answer.clone(),
            None => Err(StoreError::Corrupt("a batch lost an answer".into())),
        })
        .collect()
}

#[async_trait]
impl UserStore for BatchedUsers {
    async fn register(
        &self,
        email: &EmailAddress,
        locale: Locale,
        now: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        self.registrations
            .call((Instant::now(), (email.clone(), locale, now)))
            .await?
    }

    async fn register_many(
        &self,
        accounts: Vec<(EmailAddress, Locale)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Registration>, StoreError> {
        self.inner.register_many(accounts, now).await
    }

    async fn find_by_email(&self, email: &EmailAddress) -> Result<Option<User>, StoreError> {
        self.inner.find_by_email(email).await
    }

    async fn purge_unconfirmed(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.inner.purge_unconfirmed(before, limit).await
    }

    async fn set_confirm_redirect(
        &self,
        email: &EmailAddress,
        url: &str,
    ) -> Result<bool, StoreError> {
        self.inner.set_confirm_redirect(email, url).await
    }

    async fn confirm_redirect(&self, email: &EmailAddress) -> Result<Option<String>, StoreError> {
        self.inner.confirm_redirect(email).await
    }

    async fn code_candidates(
        &self,
        email: &EmailAddress,
        sent_since: DateTime<Utc>,
    ) -> Result<Vec<crate::CodeCandidate>, StoreError> {
        self.inner.code_candidates(email, sent_since).await
    }

    async fn code_failed(&self, messages: &[domain::MessageId]) -> Result<(), StoreError> {
        self.inner.code_failed(messages).await
    }

    async fn skip_reminder(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.skip_reminder(email, now).await
    }

    async fn claim_reminders(
        &self,
        registered_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<EmailAddress>, StoreError> {
        self.inner
            .claim_reminders(registered_before, now, limit)
            .await
    }

    async fn confirm(
        &self,
        email: &EmailAddress,
        issued_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome, StoreError> {
        self.confirmations
            .call((Instant::now(), (email.clone(), issued_at, now)))
            .await?
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

    async fn recent_users(&self, limit: u64) -> Result<Vec<UserSummary>, StoreError> {
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

    /// A `UserStore` whose batch registration waits for a gate and then finds the database
    /// down (the first time only).
    #[derive(Debug)]
    struct DownOnce {
        batches: std::sync::atomic::AtomicUsize,
        gate: tokio::sync::watch::Receiver<bool>,
    }

    #[async_trait]
    impl UserStore for DownOnce {
        async fn register(
            &self,
            _: &EmailAddress,
            _: Locale,
            _: DateTime<Utc>,
        ) -> Result<Registration, StoreError> {
            unreachable!("unavailable errors are not retried one by one")
        }
        async fn register_many(
            &self,
            emails: Vec<(EmailAddress, Locale)>,
            _: DateTime<Utc>,
        ) -> Result<Vec<Registration>, StoreError> {
            let n = self
                .batches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                let _ = self.gate.clone().wait_for(|open| *open).await;
                return Err(StoreError::Unavailable("connection refused".into()));
            }
            Ok(emails
                .iter()
                .map(|_| Registration::AlreadyRegistered)
                .collect())
        }
        async fn find_by_email(&self, _: &EmailAddress) -> Result<Option<User>, StoreError> {
            unreachable!()
        }
        async fn purge_unconfirmed(&self, _: DateTime<Utc>, _: u64) -> Result<u64, StoreError> {
            unreachable!()
        }
        async fn set_confirm_redirect(
            &self,
            _: &EmailAddress,
            _: &str,
        ) -> Result<bool, StoreError> {
            unreachable!()
        }
        async fn confirm_redirect(&self, _: &EmailAddress) -> Result<Option<String>, StoreError> {
            unreachable!()
        }
        async fn code_candidates(
            &self,
            _: &EmailAddress,
            _: DateTime<Utc>,
        ) -> Result<Vec<crate::CodeCandidate>, StoreError> {
            unreachable!()
        }
        async fn code_failed(&self, _: &[domain::MessageId]) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn skip_reminder(
            &self,
            _: &EmailAddress,
            _: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            unreachable!()
        }
        async fn claim_reminders(
            &self,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
            _: u64,
        ) -> Result<Vec<EmailAddress>, StoreError> {
            unreachable!()
        }
        async fn confirm(
            &self,
            _: &EmailAddress,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> Result<ConfirmOutcome, StoreError> {
            unreachable!()
        }
        async fn confirm_many(
            &self,
            _: Vec<(EmailAddress, DateTime<Utc>)>,
            _: DateTime<Utc>,
        ) -> Result<Vec<ConfirmOutcome>, StoreError> {
            unreachable!()
        }
        async fn resend(
            &self,
            _: &EmailAddress,
            _: ResendPolicy,
            _: DateTime<Utc>,
        ) -> Result<Resend, StoreError> {
            unreachable!()
        }
        async fn recent_users(&self, _: u64) -> Result<Vec<UserSummary>, StoreError> {
            unreachable!()
        }
        async fn ping(&self) -> Result<(), StoreError> {
            unreachable!()
        }
    }

    /// During an outage a call waits for at most one connection attempt: the calls queued
    /// behind a batch that found the database down get its error without a second attempt;
    /// a call made afterwards is tried again.
    #[tokio::test]
    async fn calls_that_waited_through_an_outage_get_its_error_at_once() {
        let (release, gate) = tokio::sync::watch::channel(false);
        let store = Arc::new(DownOnce {
            batches: std::sync::atomic::AtomicUsize::new(0),
            gate,
        });
        let users = Arc::new(BatchedUsers::new(store.clone(), 8));
        let address = |n: u32| EmailAddress::parse(&format!("user{n}@example.com")).unwrap();
        let call = |n: u32| {
            let users = Arc::clone(&users);
            tokio::spawn(async move { users.register(&address(n), Locale::En, Utc::now()).await })
        };
        let first = call(1);
        while store.batches.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let queued: Vec<_> = (2..=4).map(call).collect();
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release.send_replace(true);
        assert!(first.await.unwrap().unwrap_err().is_unavailable());
        for handle in queued {
            assert!(handle.await.unwrap().unwrap_err().is_unavailable());
        }
        assert_eq!(
            store.batches.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the queued calls were not tried again"
        );
        assert_eq!(
            call(5).await.unwrap().unwrap(),
            Registration::AlreadyRegistered,
            "a later call is tried"
        );
        assert_eq!(store.batches.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_batch_that_panics_fails_its_callers_only() {
        let coalescer = Coalescer::spawn(4, |xs: Vec<u32>| async move {
            assert!(!xs.contains(&13), "a bug triggered by one input");
            xs
        });
        assert_eq!(coalescer.call(13).await, Err(CallError::Stopped));
        assert_eq!(coalescer.call(1).await, Ok(1));
    }

    #[tokio::test]
    async fn a_missing_answer_is_stopped_not_a_hang() {
        let coalescer = Coalescer::spawn(4, |_: Vec<u32>| async move { Vec::<u32>::new() });
        assert_eq!(coalescer.call(1).await, Err(CallError::Stopped));
    }

    /// Beyond its capacity a coalescer refuses at once (nothing runs for the refused call);
    /// calls whose callers stopped waiting before their batch started are dropped unrun.
    #[tokio::test]
    async fn a_full_coalescer_refuses_and_gone_callers_are_not_run() {
        let (release, gate) = tokio::sync::watch::channel(false);
        let ran = Arc::new(Mutex::new(Vec::new()));
        let coalescer = {
            let ran = Arc::clone(&ran);
            Coalescer::spawn_with_capacity(8, 2, move |xs: Vec<u32>| {
                let (ran, mut gate) = (Arc::clone(&ran), gate.clone());
                async move {
                    let _ = gate.wait_for(|open| *open).await;
                    ran.lock().unwrap().extend(xs.iter().copied());
                    xs
                }
            })
        };
        // The first call starts a batch, which waits at the gate.
        let first = tokio::spawn({
            let c = coalescer.clone();
            async move { c.call(1).await }
        });
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        // Two wait (the capacity); one of them gives up; a third is refused.
        let waiting = tokio::spawn({
            let c = coalescer.clone();
            async move { c.call(2).await }
        });
        let gone = tokio::spawn({
            let c = coalescer.clone();
            async move { c.call(3).await }
        });
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert_eq!(coalescer.call(4).await, Err(CallError::Full));
        gone.abort();
        let _ = gone.await;
        release.send_replace(true);
        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(waiting.await.unwrap(), Ok(2));
        assert_eq!(*ran.lock().unwrap(), vec![1, 2], "3 was gone, 4 refused");
        assert_eq!(StoreError::from(CallError::Full), StoreError::Busy);
    }

    /// Repeats of one call in a batch run once; the repeats get what they would have got right
    /// after it.
    #[test]
    fn repeats_in_a_batch_run_once() {
        let (unique, index) = distinct(vec!["a", "b", "a", "c", "b"], |s| *s);
        assert_eq!(unique, vec!["a", "b", "c"]);
        assert_eq!(
            index,
            vec![(0, false), (1, false), (0, true), (2, false), (1, true)]
        );
        let answers = vec![
            Ok(ConfirmOutcome::Confirmed),
            Ok(ConfirmOutcome::NotFound),
            Err(StoreError::Busy),
        ];
        let fanned = fan_out(answers, &index, |outcome| match outcome {
            ConfirmOutcome::Confirmed => ConfirmOutcome::AlreadyConfirmed,
            other => *other,
        });
        assert_eq!(
            fanned,
            vec![
                Ok(ConfirmOutcome::Confirmed),
                Ok(ConfirmOutcome::NotFound),
                Ok(ConfirmOutcome::AlreadyConfirmed),
                Err(StoreError::Busy),
                Ok(ConfirmOutcome::NotFound),
            ]
        );
    }
}
