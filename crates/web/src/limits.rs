//! Per-client-IP rate limit on form posts (`RATE_LIMIT_PER_IP` per minute).
//!
//! A generic cell rate algorithm: each IP may post `per_minute` times in a burst, then once every
//! `60 s / per_minute`; beyond that it gets 429 with `Retry-After`. IPv6 clients are counted by
//! their /64 network (one host usually owns a whole /64). State is one timestamp per client,
//! in memory, pruned as it expires; with several server processes each counts on its own.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, Method};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// Beyond this many tracked clients, expired entries are pruned on the next check.
const PRUNE_AT: usize = 10_000;
/// Hard bound on tracked clients; when it is reached even after pruning, new clients are let
/// through (and a warning logged) rather than locking everybody out.
const MAX_TRACKED: usize = 200_000;

/// The per-IP limiter.
#[derive(Debug)]
pub struct IpRateLimiter {
    /// Milliseconds between two posts once the burst is spent.
    interval_ms: i64,
    /// How far ahead of now a client's theoretical arrival time may run.
    tolerance_ms: i64,
    clients: Mutex<HashMap<IpAddr, i64>>,
}

impl IpRateLimiter {
    /// A limiter allowing `per_minute` posts per minute per client; `0` allows everything.
    pub fn new(per_minute: u32) -> Self {
        let interval_ms = if per_minute == 0 {
            0
        } else {
            60_000 / i64::from(per_minute)
        };
        Self {
            interval_ms,
            tolerance_ms: 60_000 - interval_ms,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the limit is on.
    pub fn enabled(&self) -> bool {
        self.interval_ms > 0
    }

    /// Counts one post from `ip` at `now_ms` (Unix milliseconds), or says how long to wait.
    pub fn check(&self, ip: IpAddr, now_ms: i64) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let key = client_key(ip);
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if clients.len() >= PRUNE_AT && !clients.contains_key(&key) {
            clients.retain(|_, tat| *tat > now_ms);
            if clients.len() >= MAX_TRACKED {
                tracing::warn!(
                    tracked = clients.len(),
                    "rate limiter full: letting a new client through"
                );
                return Ok(());
            }
        }
        let tat = clients.get(&key).copied().unwrap_or(now_ms).max(now_ms);
        let ahead = tat - now_ms;
        if ahead > self.tolerance_ms {
            let wait = ahead - self.tolerance_ms;
            return Err(Duration::from_millis(u64::try_from(wait).unwrap_or(0)));
        }
        clients.insert(key, tat + self.interval_ms);
        Ok(())
    }

    /// How many clients are tracked (for tests).
    pub fn tracked(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
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

/// Middleware: counts every POST against its client's limit and answers 429 beyond it.
pub async fn limit_posts(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !state.ip_limiter.enabled() {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let Some(ip) = client_ip(
        request.headers(),
        peer,
        state.config.trusted_proxy_header.as_ref(),
    ) else {
        return next.run(request).await;
    };
    let now_ms = state.clock.now().timestamp_millis();
    match state.ip_limiter.check(ip, now_ms) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            // The request span names the route; the path itself may hold a token.
            tracing::info!("rate limited: too many posts from one client");
            metrics::counter!("rate_limited_total").increment(1);
            crate::handlers::too_many_requests(&state, wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000;

    #[test]
    fn allows_the_burst_then_one_per_interval() {
        let limiter = IpRateLimiter::new(20);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..20 {
            assert!(limiter.check(ip, T + i).is_ok(), "post {i}");
        }
        let wait = limiter.check(ip, T + 20).unwrap_err();
        assert!(
            wait > Duration::from_millis(2900) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
        // Another client is not affected.
        assert!(limiter.check("192.0.2.2".parse().unwrap(), T + 20).is_ok());
        // One more post once the interval has passed, then refused again.
        assert!(limiter.check(ip, T + 3_000).is_ok());
        assert!(limiter.check(ip, T + 3_001).is_err());
        // After a quiet minute the whole burst is back.
        for i in 0..20 {
            assert!(
                limiter.check(ip, T + 63_000 + i).is_ok(),
                "post {i} after a minute"
            );
        }
        assert!(limiter.check(ip, T + 63_020).is_err());
    }

    #[test]
    fn thirty_posts_in_a_minute_get_429s_after_twenty() {
        let limiter = IpRateLimiter::new(20);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        // One post every 100 ms: the first 20 pass, then only those after each 3 s interval.
        let allowed = (0..30)
            .filter(|i| limiter.check(ip, T + i * 100).is_ok())
            .count();
        assert_eq!(allowed, 20);
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = IpRateLimiter::new(0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!limiter.enabled());
        assert!((0..1000).all(|i| limiter.check(ip, T + i).is_ok()));
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let limiter = IpRateLimiter::new(2);
        assert!(limiter.check("2001:db8::1".parse().unwrap(), T).is_ok());
        assert!(
            limiter
                .check("2001:db8::ffff:2".parse().unwrap(), T)
                .is_ok()
        );
        assert!(limiter.check("2001:db8::3".parse().unwrap(), T).is_err());
        assert!(limiter.check("2001:db8:0:1::3".parse().unwrap(), T).is_ok());
        // IPv4-mapped addresses count as the IPv4 address.
        assert!(
            limiter
                .check("::ffff:192.0.2.9".parse().unwrap(), T)
                .is_ok()
        );
        assert!(limiter.check("192.0.2.9".parse().unwrap(), T).is_ok());
        assert!(limiter.check("192.0.2.9".parse().unwrap(), T).is_err());
    }

    #[test]
    fn expired_clients_are_pruned() {
        let limiter = IpRateLimiter::new(60);
        for i in 0..PRUNE_AT as u32 {
            limiter.check(IpAddr::from(i.to_be_bytes()), T).unwrap();
        }
        assert_eq!(limiter.tracked(), PRUNE_AT);
        // A minute later every entry has expired: the next new client prunes them.
        limiter
            .check("203.0.113.1".parse().unwrap(), T + 60_000)
            .unwrap();
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
