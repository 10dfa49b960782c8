//! The service's policies as values: how failed sends are retried, and how often one address
//! may be sent a confirmation email. Settings build them once; the store and the delivery
//! engine apply them.

use std::time::Duration;

use chrono::TimeDelta;

/// How failed sends are retried: exponential backoff from `base`, capped at `max`, with jitter
/// (each delay is drawn from its upper half), at most `max_attempts` attempts in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 30 s, 1 min, 2 min … capped at 2 h: ten attempts spread over about four hours.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max: Duration::from_secs(2 * 3600),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The delay before the next attempt after `attempts` failed ones, or `None` when no
    /// attempt is left. `jitter` in `[0, 1]` picks a point in the upper half of the delay.
    pub fn next_delay(&self, attempts: u32, jitter: f64) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let exp = attempts.saturating_sub(1).min(31);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        Some(full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0)))
    }
}

/// Limits on confirmation emails to one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResendPolicy {
    /// Least time between two confirmation emails to one account (counted from the newest
    /// message's creation, including the one owed at registration).
    pub cooldown: TimeDelta,
    /// Most confirmation emails to one account in any 24 hours (including the registration's).
    pub daily_cap: u32,
}

impl Default for ResendPolicy {
    /// One a minute, five a day.
    fn default() -> Self {
        Self {
            cooldown: TimeDelta::seconds(60),
            daily_cap: 5,
        }
    }
}

impl ResendPolicy {
    /// No cooldown and no cap: what an operator's explicit resend uses (the store still never
    /// owes a second email while one is on its way).
    pub const UNLIMITED: Self = Self {
        cooldown: TimeDelta::zero(),
        daily_cap: u32::MAX,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policy_backs_off_exponentially_with_a_cap_and_a_limit() {
        let p = RetryPolicy {
            base: Duration::from_secs(30),
            max: Duration::from_secs(600),
            max_attempts: 6,
        };
        assert_eq!(p.next_delay(1, 1.0), Some(Duration::from_secs(30)));
        assert_eq!(p.next_delay(1, 0.0), Some(Duration::from_secs(15)));
        assert_eq!(p.next_delay(2, 1.0), Some(Duration::from_secs(60)));
        assert_eq!(p.next_delay(3, 1.0), Some(Duration::from_secs(120)));
        assert_eq!(p.next_delay(5, 1.0), Some(Duration::from_secs(480)));
        assert_eq!(
            p.next_delay(5, 2.0),
            Some(Duration::from_secs(480)),
            "jitter is clamped"
        );
        assert_eq!(p.next_delay(6, 1.0), None);
        let big = RetryPolicy {
            max_attempts: 1000,
            ..p
        };
        assert_eq!(big.next_delay(200, 1.0), Some(Duration::from_secs(600)));

        // The default spreads ten attempts over a few hours.
        let d = RetryPolicy::default();
        let total: Duration = (1..d.max_attempts)
            .filter_map(|n| d.next_delay(n, 1.0))
            .sum();
        assert!(
            total > Duration::from_secs(3 * 3600) && total < Duration::from_secs(6 * 3600),
            "{total:?}"
        );
    }
}
