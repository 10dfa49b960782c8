//! `MAIL_MAX_RATE`: at most so many sends in any one-second window at the provider.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Keeps the provider from seeing more than `rate` messages in any one-second window, across
/// every task sharing the limiter.
///
/// Spacing the *starts* of sends is not enough: a send's duration varies (SMTP round trips, a
/// busy provider), so sends started 50 ms apart can arrive 5 ms apart. Instead each send holds a
/// slot from its start until one second after it finishes, and a send may start only while
/// fewer than `rate` slots are held. Whenever the provider accepted a message (between its
/// start and our seeing it finish), the other messages accepted within the same second were
/// then either still in flight or finished less than a second before, so they held slots:
/// at most `rate` in any window. Rates below 1 use one slot and a window of `1 / rate` seconds;
/// fractional rates above 1 are rounded down.
#[derive(Debug)]
pub struct RateLimiter {
    slots: usize,
    window: Duration,
    state: Mutex<LimiterState>,
    released: Notify,
}

#[derive(Debug, Default)]
struct LimiterState {
    in_flight: usize,
    /// When recent sends finished, oldest first.
    finished: VecDeque<Instant>,
}

/// A held send slot; dropping it records the send as finished.
#[derive(Debug)]
pub struct RatePermit<'a> {
    limiter: &'a RateLimiter,
}

impl Drop for RatePermit<'_> {
    fn drop(&mut self) {
        let mut state = self.limiter.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.finished.push_back(Instant::now());
        drop(state);
        self.limiter.released.notify_waiters();
    }
}

impl RateLimiter {
    /// A limiter for `rate` messages per second (`rate` > 0).
    pub fn per_second(rate: f64) -> Self {
        let rate = rate.max(1e-6);
        let (slots, window) = if rate >= 1.0 {
            // Rounding down is the point: never allow more than the rate.
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "rate >= 1 and capped"
            )]
            let slots = rate.floor().min(1_000_000.0) as usize;
            (slots, Duration::from_secs(1))
        } else {
            (1, Duration::from_secs_f64(1.0 / rate))
        };
        Self {
            slots,
            window,
            state: Mutex::default(),
            released: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a free slot; hold the permit for the whole send.
    pub async fn acquire(&self) -> RatePermit<'_> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let wake_at = {
                let mut state = self.lock();
                let now = Instant::now();
                while state
                    .finished
                    .front()
                    .is_some_and(|t| *t + self.window <= now)
                {
                    state.finished.pop_front();
                }
                if state.in_flight + state.finished.len() < self.slots {
                    state.in_flight += 1;
                    return RatePermit { limiter: self };
                }
                state.finished.front().map(|t| *t + self.window)
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut released => {}
                    }
                }
                None => released.await,
            }
        }
    }
}
