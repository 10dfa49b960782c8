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
//! minute. Every client is checked, however many there are: the limit never fails open.
//!
//! With several server processes, each counts on its own unless the limiter is shared
//! ([`IpRateLimiter::shared`], wired when REDIS_URL is set): the same GCRA then runs in Redis,
//! one key per client, so N servers allow one allowance, not N. When Redis does not answer
//! within [`SHARED_TIMEOUT`], the process falls back to its own count for [`SHARED_PAUSE`]
//! (still limited, never open) and tries Redis again after it.

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
use queue::SharedRateLimit;

use crate::AppState;

/// How often clients back at a full burst are dropped from the map.
pub const PRUNE_EVERY: Duration = Duration::from_secs(10);
/// The longest a post waits for the shared limit's answer before the local count decides.
pub const SHARED_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the local count stands in after the shared limit failed to answer.
pub const SHARED_PAUSE: Duration = Duration::from_secs(5);

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
    /// The posts per minute allowed (`0`: no limit).
    per_minute: u32,
    /// The count shared with the other servers, when there is one.
    shared: Option<Shared>,
}

/// A limit counted in a [`SharedRateLimit`] under a name of its own.
#[derive(Debug)]
struct Shared {
    store: Arc<dyn SharedRateLimit>,
    name: &'static str,
    quota: queue::Quota,
    /// Until then (Unix nanoseconds) the local count decides: the store failed to answer.
    off_until: AtomicU64,
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
            per_minute,
            shared: None,
        }
    }

    /// The same limiter, counting in `store` (under `name`, e.g. `form`) so that every process
    /// using the same store shares one allowance per client. No effect when the limit is off.
    #[must_use]
    pub fn shared(mut self, store: Arc<dyn SharedRateLimit>, name: &'static str) -> Self {
        self.shared = queue::Quota::per_minute(self.per_minute).map(|quota| Shared {
            store,
            name,
            quota,
            off_until: AtomicU64::new(0),
        });
        self
    }

    /// Whether the count is shared with other processes.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Counts one post from `ip` now, in the shared count when there is one (else, or while it
    /// does not answer, in this process), or says how long to wait.
    pub async fn admit(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(shared) = &self.shared else {
            return self.check(ip);
        };
        let now = self.clock.now().as_u64();
        if now < shared.off_until.load(Ordering::Relaxed) {
            return self.check(ip);
        }
        let key = format!("{}:{}", shared.name, client_key(ip));
        let answer = tokio::time::timeout(
            SHARED_TIMEOUT,
            shared.store.check(&key, shared.quota, self.clock.0.now()),
        )
        .await;
        let error = match answer {
            Ok(Ok(decision)) => return decision,
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {SHARED_TIMEOUT:?}"),
        };
        let pause = u64::try_from(SHARED_PAUSE.as_nanos()).unwrap_or(u64::MAX);
        shared
            .off_until
            .store(now.saturating_add(pause), Ordering::Relaxed);
        metrics::counter!("rate_limit_fallback_total", "limit" => shared.name).increment(1);
        tracing::warn!(limit = shared.name, %error, pause = ?SHARED_PAUSE, "shared rate limit unavailable: counting in this process meanwhile");
        self.check(ip)
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

/// Counts failed sign-ins per account (wrong passwords, wrong codes): beyond `max` of them
/// within `window`, the account refuses every sign-in, right or wrong, until the oldest failure
/// is `window` old. Kept in this process (each server counts its own).
#[derive(Debug)]
pub struct AccountThrottle {
    max: usize,
    window: chrono::TimeDelta,
    clock: Arc<dyn Clock>,
    failures: std::sync::Mutex<std::collections::HashMap<i64, std::collections::VecDeque<i64>>>,
}

impl AccountThrottle {
    /// A throttle allowing `max` failures per account within `window`.
    pub fn new(max: usize, window: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            max,
            window: chrono::TimeDelta::from_std(window).unwrap_or(chrono::TimeDelta::MAX),
            clock,
            failures: std::sync::Mutex::default(),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, std::collections::VecDeque<i64>>>
    {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long account `user` is still refused, if it is.
    pub fn blocked(&self, user: i64) -> Option<Duration> {
        let now = self.clock.now().timestamp_millis();
        let window = self.window.num_milliseconds();
        let mut failures = self.lock();
        let times = failures.get_mut(&user)?;
        while times.front().is_some_and(|&t| t <= now - window) {
            times.pop_front();
        }
        if times.is_empty() {
            failures.remove(&user);
            return None;
        }
        let oldest = *times.front()?;
        (times.len() >= self.max)
            .then(|| Duration::from_millis(u64::try_from(oldest + window - now).unwrap_or(0)))
    }

    /// Counts one failure of account `user`; `Some(wait)` when it is now refused.
    pub fn failed(&self, user: i64) -> Option<Duration> {
        let now = self.clock.now().timestamp_millis();
        {
            let mut failures = self.lock();
            if failures.len() >= MAX_BLOCKED {
                let window = self.window.num_milliseconds();
                failures.retain(|_, times| times.back().is_some_and(|&t| t > now - window));
            }
            failures.entry(user).or_default().push_back(now);
        }
        self.blocked(user)
    }

    /// Forgets the failures of `user` (a successful sign-in).
    pub fn succeeded(&self, user: i64) {
        self.lock().remove(&user);
    }
}

/// The client's IP, as [`client_ip`] sees it with the state's settings (`None` for requests
/// built in tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl axum::extract::FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        Ok(Self(client_ip(
            &parts.headers,
            peer,
            state.config.trusted_proxy_header.as_ref(),
        )))
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
    path.starts_with("/confirm/") || path.starts_with("/stop/") || path.starts_with("/reset/")
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
    match limiter.admit(ip).await {
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

    /// A shared store answering from a script: `None` is a failure, and every key asked is
    /// kept.
    #[derive(Debug, Default)]
    struct FakeShared {
        refuse: Option<(&'static str, Duration)>,
        fail: bool,
        hang: bool,
        keys: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl SharedRateLimit for FakeShared {
        async fn check(
            &self,
            key: &str,
            quota: queue::Quota,
            _now: chrono::DateTime<chrono::Utc>,
        ) -> Result<Result<(), Duration>, queue::QueueError> {
            assert_eq!(quota, queue::Quota::per_minute(2).unwrap());
            self.keys.lock().unwrap().push(key.to_owned());
            if self.hang {
                std::future::pending::<()>().await;
            }
            if self.fail {
                return Err(queue::QueueError::Transport("connection refused".into()));
            }
            Ok(match self.refuse {
                Some((refused, wait)) if refused == key => Err(wait),
                _ => Ok(()),
            })
        }
    }

    fn shared(store: FakeShared) -> (IpRateLimiter, Arc<FakeShared>, Arc<ManualClock>) {
        let (limiter, clock) = limiter(2);
        let store = Arc::new(store);
        let shared: Arc<dyn SharedRateLimit> = store.clone();
        (limiter.shared(shared, "form"), store, clock)
    }

    #[tokio::test]
    async fn a_shared_count_decides_keyed_by_client() {
        let wait = Duration::from_secs(7);
        let (limiter, store, _) = shared(FakeShared {
            refuse: Some(("form:192.0.2.1", wait)),
            ..FakeShared::default()
        });
        assert!(limiter.is_shared());
        // Refused by the shared count although this process has never seen the client.
        assert_eq!(limiter.admit("192.0.2.1".parse().unwrap()).await, Err(wait));
        // Allowed by it beyond this process's own allowance of 2.
        for _ in 0..5 {
            assert_eq!(limiter.admit("2001:db8::1".parse().unwrap()).await, Ok(()));
        }
        assert_eq!(limiter.tracked(), 0, "nothing counted locally");
        let keys = store.keys.lock().unwrap().clone();
        assert_eq!(keys[0], "form:192.0.2.1");
        assert!(keys[1..].iter().all(|k| k == "form:2001:db8::"), "{keys:?}");
    }

    #[tokio::test]
    async fn without_an_answer_the_process_counts_alone_for_a_while() {
        let (limiter, store, clock) = shared(FakeShared {
            fail: true,
            ..FakeShared::default()
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        // Still limited (by this process's count), never open.
        assert!(limiter.admit(ip).await.is_ok());
        assert!(limiter.admit(ip).await.is_ok());
        assert!(limiter.admit(ip).await.is_err());
        assert_eq!(
            store.keys.lock().unwrap().len(),
            1,
            "not asked again during the pause"
        );
        clock.advance(TimeDelta::from_std(SHARED_PAUSE).unwrap() + ms(1));
        let _ = limiter.admit(ip).await;
        assert_eq!(
            store.keys.lock().unwrap().len(),
            2,
            "asked again after the pause"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_count_that_hangs_is_not_waited_for() {
        let (limiter, store, _) = shared(FakeShared {
            hang: true,
            ..FakeShared::default()
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let started = tokio::time::Instant::now();
        assert!(limiter.admit(ip).await.is_ok());
        assert_eq!(started.elapsed(), SHARED_TIMEOUT);
        assert_eq!(limiter.tracked(), 1, "counted locally instead");
        assert_eq!(store.keys.lock().unwrap().len(), 1);
    }

    #[test]
    fn an_off_limit_is_not_shared() {
        let (limiter, _) = limiter(0);
        let store: Arc<dyn SharedRateLimit> = Arc::new(FakeShared::default());
        assert!(!limiter.shared(store, "form").is_shared());
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
