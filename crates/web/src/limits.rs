//! Per-client-IP rate limits: on form posts (`RATE_LIMIT_PER_IP` per minute; not the JSON API's
//! posts, which carry a key), on the emailed links (`LINK_RATE_LIMIT_PER_IP` per minute,
//! `/confirm/…` and `/stop/…`, any method), and on wrong dashboard or API credentials
//! ([`FailureThrottle`], 10 per minute).
//!
//! `governor`'s keyed GCRA limiter: each IP may post `per_minute` times in a burst, then once
//! every `60 s / per_minute`; beyond that it gets 429 with `Retry-After`. IPv6 clients are
//! counted by their /64 network (one host usually owns a whole /64). The state is one
//! timestamp per client in a sharded map (no global lock); clients whose state is back to
//! "never seen" are dropped every [`PRUNE_EVERY`], so memory follows the clients of the last
//! minute. Every client is checked, however many there are: the limit never fails open. With
//! several server processes each counts on its own.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, Method};
use axum::middleware::Next;
use axum::response::Response;
use domain::Clock;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::AppState;

/// How often clients back at a full burst are dropped from the map.
pub const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// The service's clock as governor's: Unix time in nanoseconds.
#[derive(Debug, Clone)]
struct UnixNanos(Arc<dyn Clock>);

impl GovernorClock for UnixNanos {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let now = self.0.now();
        let nanos = now
            .timestamp_nanos_opt()
            .unwrap_or_else(|| now.timestamp_micros().saturating_mul(1000));
        Nanos::from(u64::try_from(nanos).unwrap_or(0))
    }
}

type Keyed = RateLimiter<IpAddr, DashMapStateStore<IpAddr>, UnixNanos, NoOpMiddleware<Nanos>>;

/// The per-IP limiter.
#[derive(Debug)]
pub struct IpRateLimiter {
    /// `None`: no limit (`RATE_LIMIT_PER_IP=0`).
    limiter: Option<Keyed>,
    clock: UnixNanos,
    /// When the map was last pruned (Unix nanoseconds).
    pruned_at: AtomicU64,
}

impl IpRateLimiter {
    /// A limiter allowing `per_minute` posts per minute per client, on `clock`'s time; `0`
    /// allows everything.
    pub fn new(per_minute: u32, clock: Arc<dyn Clock>) -> Self {
        let clock = UnixNanos(clock);
        let limiter = NonZeroU32::new(per_minute)
            .map(|n| RateLimiter::dashmap_with_clock(Quota::per_minute(n), clock.clone()));
        Self {
            pruned_at: AtomicU64::new(clock.now().as_u64()),
            limiter,
            clock,
        }
    }

    /// Whether the limit is on.
    pub fn enabled(&self) -> bool {
        self.limiter.is_some()
    }

    /// Counts one post from `ip` now, or says how long to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        self.prune_if_due(limiter);
        limiter
            .check_key(&client_key(ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drops the clients whose state is back to a full burst, at most once per
    /// [`PRUNE_EVERY`] (one caller does it; the others go on).
    fn prune_if_due(&self, limiter: &Keyed) {
        let now = self.clock.now().as_u64();
        let last = self.pruned_at.load(Ordering::Relaxed);
        let every = u64::try_from(PRUNE_EVERY.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < every {
            return;
        }
        if self
            .pruned_at
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many clients are tracked (for tests).
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, Keyed::len)
    }
}

/// Counts failures (wrong dashboard credentials) per client IP: beyond `per_minute` of them the
/// client is refused, whatever it sends, until its allowance is back.
#[derive(Debug)]
pub struct FailureThrottle {
    failures: IpRateLimiter,
    /// Clients refused until then (Unix nanoseconds).
    blocked: std::sync::Mutex<std::collections::HashMap<IpAddr, u64>>,
}

/// Most clients remembered as blocked; beyond it, expired entries are dropped.
const MAX_BLOCKED: usize = 100_000;

impl FailureThrottle {
    /// A throttle allowing `per_minute` failures per client and minute.
    pub fn new(per_minute: u32, clock: Arc<dyn Clock>) -> Self {
        Self {
            failures: IpRateLimiter::new(per_minute, clock),
            blocked: std::sync::Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<IpAddr, u64>> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `ip` must still wait, if it is blocked.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let now = self.failures.clock.now().as_u64();
        let until = *self.lock().get(&client_key(ip))?;
        (until > now).then(|| Duration::from_nanos(until - now))
    }

    /// Counts one failure of `ip`; `Some(wait)` when it is now blocked.
    pub fn failed(&self, ip: IpAddr) -> Option<Duration> {
        let wait = self.failures.check(ip).err()?;
        let now = self.failures.clock.now().as_u64();
        let until = now.saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX));
        let mut blocked = self.lock();
        if blocked.len() >= MAX_BLOCKED {
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(client_key(ip), until);
        Some(wait)
    }
}

/// IPv4 addresses as they are; IPv6 ones cut to their /64 (IPv4-mapped ones to the IPv4).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client's address: from the trusted proxy header when one is configured and present
/// (its last entry, the one the proxy added), else the TCP peer. `None` when neither is known
/// (requests built in tests).
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trusted_header: Option<&HeaderName>,
) -> Option<IpAddr> {
    trusted_header
        .and_then(|name| headers.get_all(name).iter().next_back())
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| parse_forwarded_ip(last.trim()))
        .or(peer.map(|addr| addr.ip()))
}

/// An IP, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_forwarded_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Whether a path is one of the emailed links (`/confirm/…`, `/stop/…`).
fn is_link(path: &str) -> bool {
    path.starts_with("/confirm/") || path.starts_with("/stop/")
}

/// The client IP of a request, as [`client_ip`] sees it with this state's settings.
pub(crate) fn request_ip(state: &AppState, request: &Request) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    client_ip(
        request.headers(),
        peer,
        state.config.trusted_proxy_header.as_ref(),
    )
}

/// Middleware: counts every request to an emailed link against its client's link limit, and
/// every other POST against its form limit; answers 429 beyond them.
pub async fn limit_posts(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let limiter = if is_link(path) {
        &state.link_limiter
    } else if request.method() == Method::POST && !path.starts_with("/api/") {
        &state.ip_limiter
    } else {
        return next.run(request).await;
    };
    if !limiter.enabled() {
        return next.run(request).await;
    }
    let Some(ip) = request_ip(&state, &request) else {
        return next.run(request).await;
    };
    match limiter.check(ip) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            // The request span names the route; the path itself may hold a token.
            tracing::info!("rate limited: too many posts from one client");
            metrics::counter!("rate_limited_total").increment(1);
            crate::pages::too_many_requests(&state, wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use domain::ManualClock;

    use super::*;

    fn limiter(per_minute: u32) -> (IpRateLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
        (IpRateLimiter::new(per_minute, clock.clone()), clock)
    }

    fn ms(n: i64) -> TimeDelta {
        TimeDelta::milliseconds(n)
    }

    #[test]
    fn allows_the_burst_then_one_per_interval() {
        let (limiter, clock) = limiter(20);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..20 {
            assert!(limiter.check(ip).is_ok(), "post {i}");
        }
        let wait = limiter.check(ip).unwrap_err();
        assert!(
            wait > Duration::from_millis(2900) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
        // Another client is not affected.
        assert!(limiter.check("192.0.2.2".parse().unwrap()).is_ok());
        // One more post once the interval has passed, then refused again.
        clock.advance(ms(3_000));
        assert!(limiter.check(ip).is_ok());
        clock.advance(ms(1));
        assert!(limiter.check(ip).is_err());
        // After a quiet minute the whole burst is back.
        clock.advance(ms(60_000));
        for i in 0..20 {
            assert!(limiter.check(ip).is_ok(), "post {i} after a minute");
        }
        assert!(limiter.check(ip).is_err());
    }

    #[test]
    fn thirty_posts_in_a_minute_get_429s_after_twenty() {
        let (limiter, clock) = limiter(20);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        // One post every 100 ms: the first 20 pass, then only those after each 3 s interval.
        let allowed = (0..30)
            .filter(|_| {
                let ok = limiter.check(ip).is_ok();
                clock.advance(ms(100));
                ok
            })
            .count();
        assert_eq!(allowed, 20);
    }

    #[test]
    fn failures_beyond_the_allowance_block_the_client_until_it_is_back() {
        let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
        let throttle = FailureThrottle::new(10, clock.clone());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..10 {
            assert_eq!(throttle.blocked(ip), None, "failure {i}");
            assert_eq!(throttle.failed(ip), None, "failure {i}");
        }
        let wait = throttle.failed(ip).expect("the 11th failure blocks");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        assert!(throttle.blocked(ip).is_some());
        // Another client is not blocked.
        assert_eq!(throttle.blocked("192.0.2.2".parse().unwrap()), None);
        clock.advance(ms(6_001));
        assert_eq!(throttle.blocked(ip), None);
    }

    #[test]
    fn zero_turns_it_off() {
        let (limiter, _) = limiter(0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!limiter.enabled());
        assert!((0..1000).all(|_| limiter.check(ip).is_ok()));
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let (limiter, _) = limiter(2);
        assert!(limiter.check("2001:db8::1".parse().unwrap()).is_ok());
        assert!(limiter.check("2001:db8::ffff:2".parse().unwrap()).is_ok());
        assert!(limiter.check("2001:db8::3".parse().unwrap()).is_err());
        assert!(limiter.check("2001:db8:0:1::3".parse().unwrap()).is_ok());
        // IPv4-mapped addresses count as the IPv4 address.
        assert!(limiter.check("::ffff:192.0.2.9".parse().unwrap()).is_ok());
        assert!(limiter.check("192.0.2.9".parse().unwrap()).is_ok());
        assert!(limiter.check("192.0.2.9".parse().unwrap()).is_err());
    }

    /// Many clients are all limited (none is let through unchecked), and once their minute is
    /// over they are dropped from memory.
    #[test]
    fn every_client_is_limited_and_expired_ones_are_pruned() {
        let (limiter, clock) = limiter(2);
        let clients = 50_000_u32;
        for i in 0..clients {
            let ip = IpAddr::from(i.to_be_bytes());
            assert!(limiter.check(ip).is_ok());
            assert!(limiter.check(ip).is_ok());
            assert!(limiter.check(ip).is_err(), "client {i} past its burst");
        }
        assert_eq!(limiter.tracked(), clients as usize);
        // Two minutes later every entry is long back to a full burst: the next check prunes
        // them (governor keeps a state one interval past its full refill).
        clock.advance(ms(120_000));
        limiter.check("203.0.113.1".parse().unwrap()).unwrap();
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn client_ip_trusts_the_proxy_header_only_when_configured() {
        let peer: SocketAddr = "10.0.0.1:5555".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.1".parse().unwrap(),
        );
        let xff = HeaderName::from_static("x-forwarded-for");
        assert_eq!(client_ip(&headers, Some(peer), None), Some(peer.ip()));
        assert_eq!(
            client_ip(&headers, Some(peer), Some(&xff)),
            Some("198.51.100.1".parse().unwrap())
        );
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(&headers, Some(peer), Some(&xff)), Some(peer.ip()));
        headers.insert("x-forwarded-for", "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(
            client_ip(&headers, Some(peer), Some(&xff)),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(client_ip(&HeaderMap::new(), None, Some(&xff)), None);
    }
}
