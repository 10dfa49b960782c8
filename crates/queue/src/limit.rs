//! Rate limits kept in Redis, so that every server process counts against the same allowance.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fred::interfaces::LuaInterface;

use crate::{QueueError, RedisQueue};

/// A limit of `burst` events at once, then one every `interval` (a GCRA quota: `burst` per
/// `burst × interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub burst: u32,
    pub interval: Duration,
}

impl Quota {
    /// `n` events per minute, all of them allowed in a burst; `None` for 0 (no limit).
    pub fn per_minute(n: u32) -> Option<Self> {
        (n > 0).then(|| Self {
            burst: n,
            interval: Duration::from_secs(60) / n,
        })
    }
}

/// A rate limit shared by several processes: each key (a client) gets its own allowance, kept
/// where every process sees it.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SharedRateLimit: Send + Sync + fmt::Debug {
    /// Counts one event of `key` at `now` against `quota`: `Ok(Ok(()))` when allowed,
    /// `Ok(Err(wait))` when refused (the event is then not counted), `Err` when the store could
    /// not answer (the caller decides what to do without it).
    async fn check(
        &self,
        key: &str,
        quota: Quota,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Duration>, QueueError>;
}

/// GCRA in one script, so a check is one atomic round trip. The key holds the client's
/// "theoretical arrival time" (Unix milliseconds) and expires when it is back to a full burst.
/// Returns 0 when allowed, else how many milliseconds to wait.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat + interval - burst * interval
if now < allow_at then return allow_at - now end
local next_tat = tat + interval
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now)
return 0
";

/// [`SharedRateLimit`] on Redis (also a Cluster or behind Sentinel: one key per check). Made
/// with [`crate::RedisQueue::rate_limit`], sharing the queue's connection.
#[derive(Clone)]
pub struct RedisRateLimit {
    queue: Arc<RedisQueue>,
    prefix: String,
}

impl fmt::Debug for RedisRateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimit")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimit {
    pub(crate) fn new(queue: Arc<RedisQueue>, prefix: &str) -> Self {
        Self {
            queue,
            prefix: prefix.to_owned(),
        }
    }
}

#[async_trait]
impl SharedRateLimit for RedisRateLimit {
    async fn check(
        &self,
        key: &str,
        quota: Quota,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Duration>, QueueError> {
        let interval_ms = i64::try_from(quota.interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let wait_ms: i64 = self
            .queue
            .client()
            .eval(
                GCRA,
                format!("{}{key}", self.prefix),
                vec![
                    now.timestamp_millis(),
                    interval_ms,
                    i64::from(quota.burst.max(1)),
                ],
            )
            .await
            .map_err(|error| {
                QueueError::Transport(format!("Redis EVAL (rate limit) failed: {error}"))
            })?;
        Ok(match u64::try_from(wait_ms) {
            Ok(0) | Err(_) => Ok(()),
            Ok(ms) => Err(Duration::from_millis(ms)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_minute_spreads_a_minute_over_the_burst() {
        assert_eq!(Quota::per_minute(0), None);
        let quota = Quota::per_minute(20).unwrap();
        assert_eq!(quota.burst, 20);
        assert_eq!(quota.interval, Duration::from_secs(3));
    }
}
