//! Operations endpoints, served by [`serve`] on an ops listener of their own: the server's
//! `OPS_ADDR` and the worker's `WORKER_METRICS_ADDR`. The public port ([`crate::router`]) has
//! only `/healthz` and a `/readyz` without details ([`public_router`]); its `/metrics` is a 404,
//! because counters such as `resends_total{outcome}` move with whether an address has an
//! account.
//!
//! - `GET /healthz`: the process is up (no dependency is checked).
//! - `GET /readyz`: the database answers a ping and the queue its depth, each within
//!   [`CHECK_TIMEOUT`]; 200 `ok`, or 503 with one line per failed dependency
//!   (`database: unavailable`, `queue: no answer within 2s`, …: no URL, no error text, which is
//!   logged instead).
//! - `GET /metrics`: the process's metrics in the Prometheus text format, after setting the
//!   gauges read at scrape time (`queue_depth`, `messages{state}`,
//!   `oldest_owed_message_age_seconds`).
//!
//! Readiness is checked at most once per [`READINESS_TTL`] and the scrape-time gauges read at
//! most once per [`GAUGES_TTL`], however many probes and scrapes come in: the answers in between
//! are the cached ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::Clock;
use metrics_exporter_prometheus::PrometheusHandle;
use queue::JobQueue;
use store::{MessageStore, UserStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long each dependency check (readiness, scrape-time gauges) may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a readiness answer is reused.
pub const READINESS_TTL: Duration = Duration::from_secs(1);

/// How long the scrape-time gauges are reused.
pub const GAUGES_TTL: Duration = Duration::from_secs(5);

/// The last readiness answer and gauge refresh, shared by the clones of one [`Probes`].
#[derive(Debug, Default)]
pub(crate) struct ProbeCache {
    readiness: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    gauges_at: tokio::sync::Mutex<Option<Instant>>,
}

/// The Content-Type of `GET /metrics` (Prometheus text exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// What the operations endpoints look at.
#[derive(Debug, Clone)]
pub struct Probes {
    pub users: Arc<dyn UserStore>,
    pub messages: Arc<dyn MessageStore>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    /// Renders `/metrics`; `None`: `/metrics` answers 404.
    pub metrics: Option<PrometheusHandle>,
    /// Bound on each dependency check ([`CHECK_TIMEOUT`] by default).
    pub timeout: Duration,
    cache: Arc<ProbeCache>,
}

impl Probes {
    pub fn new(
        users: Arc<dyn UserStore>,
        messages: Arc<dyn MessageStore>,
        queue: Arc<dyn JobQueue>,
        clock: Arc<dyn Clock>,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        Self {
            users,
            messages,
            queue,
            clock,
            metrics,
            timeout: CHECK_TIMEOUT,
            cache: Arc::default(),
        }
    }

    /// The same probes, sharing `cache` (the answers of another set over the same parts).
    pub(crate) fn sharing(mut self, cache: Arc<ProbeCache>) -> Self {
        self.cache = cache;
        self
    }

    /// [`Self::check_readiness`], at most once per [`READINESS_TTL`] (callers in between get
    /// the last answer; concurrent callers wait for one check).
    pub async fn readiness(&self) -> Result<(), String> {
        let mut cached = self.cache.readiness.lock().await;
        if let Some((at, answer)) = cached.as_ref()
            && at.elapsed() < READINESS_TTL
        {
            return answer.clone();
        }
        let answer = self.check_readiness().await;
        *cached = Some((Instant::now(), answer.clone()));
        answer
    }

    /// `Ok` when the database and the queue both answer in time; otherwise one line per
    /// dependency that did not (`database: unavailable`), without any error detail (logged).
    pub async fn check_readiness(&self) -> Result<(), String> {
        let timeout = self.timeout;
        let (database, queue) = tokio::join!(
            tokio::time::timeout(timeout, self.users.ping()),
            tokio::time::timeout(timeout, self.queue.depth()),
        );
        let mut failed = Vec::new();
        match database {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness: the database check failed");
                failed.push(if error.is_unavailable() {
                    "database: unavailable".to_owned()
                } else {
                    "database: error".to_owned()
                });
            }
            Err(_) => {
                tracing::warn!(?timeout, "readiness: the database did not answer in time");
                failed.push(format!("database: no answer within {}", seconds(timeout)));
            }
        }
        match queue {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness: the queue check failed");
                failed.push("queue: unavailable".to_owned());
            }
            Err(_) => {
                tracing::warn!(?timeout, "readiness: the queue did not answer in time");
                failed.push(format!("queue: no answer within {}", seconds(timeout)));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("\n"))
        }
    }

    /// [`Self::refresh_gauges`], at most once per [`GAUGES_TTL`].
    pub async fn refresh_gauges_if_stale(&self) {
        let mut refreshed = self.cache.gauges_at.lock().await;
        if refreshed.is_some_and(|at| at.elapsed() < GAUGES_TTL) {
            return;
        }
        self.refresh_gauges().await;
        *refreshed = Some(Instant::now());
    }

    /// Sets the gauges read at scrape time from the database and the queue. A check that fails
    /// or times out leaves its gauges at their previous values (and logs a warning).
    pub async fn refresh_gauges(&self) {
        let timeout = self.timeout;
        let (stats, depth) = tokio::join!(
            tokio::time::timeout(timeout, self.messages.stats()),
            tokio::time::timeout(timeout, self.queue.depth()),
        );
        match stats {
            Ok(Ok(stats)) => {
                for (state, count) in [
                    ("queued", stats.queued),
                    ("sending", stats.sending),
                    ("retrying", stats.retrying),
                    ("sent", stats.sent),
                    ("dead", stats.dead),
                    ("cancelled", stats.cancelled),
                    ("bounced", stats.bounced),
                    ("complained", stats.complained),
                ] {
                    metrics::gauge!("messages", "state" => state).set(count as f64);
                }
                let age = stats
                    .oldest_owed
                    .map(|oldest| (self.clock.now() - oldest).num_milliseconds().max(0))
                    .unwrap_or(0);
                metrics::gauge!("oldest_owed_message_age_seconds").set(age as f64 / 1000.0);
            }
            Ok(Err(error)) => tracing::warn!(%error, "metrics: cannot read the message counts"),
            Err(_) => tracing::warn!(?timeout, "metrics: the message counts took too long"),
        }
        match depth {
            Ok(Ok(depth)) => metrics::gauge!("queue_depth").set(depth as f64),
            Ok(Err(error)) => tracing::warn!(%error, "metrics: cannot read the queue depth"),
            Err(_) => tracing::warn!(?timeout, "metrics: the queue depth took too long"),
        }
    }
}

/// Registers every series the web handlers count at 0, so that they are scraped (and rates
/// computed) from the start rather than from their first event.
pub fn register_server_metrics() {
    for outcome in ["created", "existing"] {
        metrics::counter!("registrations_total", "outcome" => outcome).increment(0);
    }
    for outcome in ["confirmed", "already_confirmed", "invalid"] {
        metrics::counter!("confirmations_total", "outcome" => outcome).increment(0);
    }
    for outcome in [
        "queued",
        "not_registered",
        "already_confirmed",
        "pending",
        "cooling_down",
        "daily_cap",
        "suppressed",
    ] {
        metrics::counter!("resends_total", "outcome" => outcome).increment(0);
    }
    for outcome in ["stopped", "already", "invalid"] {
        metrics::counter!("stop_links_total", "outcome" => outcome).increment(0);
    }
    for outcome in ["matched", "wrong", "no_code"] {
        metrics::counter!("confirmation_codes_total", "outcome" => outcome).increment(0);
    }
    for limit in ["form", "link"] {
        metrics::counter!("rate_limit_fallback_total", "limit" => limit).increment(0);
    }
    for name in [
        "rate_limited_total",
        "csrf_rejected_total",
        "honeypot_total",
        "publish_failures_total",
        "store_busy_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}

fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

/// The public port's `/healthz` and `/readyz`: 200 `ok`, or 503 `not ready` without naming
/// what failed (the ops listener's `/readyz` does).
pub fn public_router<S>(probes: Probes) -> Router<S> {
    Router::new()
        .route("/healthz", get(crate::pages::healthz))
        .route("/readyz", get(public_readyz))
        .with_state(probes)
}

async fn public_readyz(State(probes): State<Probes>) -> Response {
    match probes.readiness().await {
        Ok(()) => plain(StatusCode::OK, "ok\n".to_owned()),
        Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned()),
    }
}

/// `/healthz`, `/readyz` and `/metrics` over `probes`: the ops listener's routes.
pub fn router<S>(probes: Probes) -> Router<S> {
    Router::new()
        .route("/healthz", get(crate::pages::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_page))
        .with_state(probes)
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `GET /readyz`: 200 `ok`, or 503 naming the dependencies that failed.
pub async fn readyz(State(probes): State<Probes>) -> Response {
    match probes.readiness().await {
        Ok(()) => plain(StatusCode::OK, "ok\n".to_owned()),
        Err(reason) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

/// `GET /metrics`: the Prometheus text page.
pub async fn metrics_page(State(probes): State<Probes>) -> Response {
    let Some(handle) = &probes.metrics else {
        return plain(
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process\n".to_owned(),
        );
    };
    probes.refresh_gauges_if_stale().await;
    (
        [
            (header::CONTENT_TYPE, METRICS_CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        handle.render(),
    )
        .into_response()
}

/// Serves [`router`] on `listener` until `shutdown` turns true (or its sender is dropped).
pub async fn serve(
    listener: TcpListener,
    probes: Probes,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app: Router = router(probes);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

/// Checks that an HTTP server on `addr` answers `GET path` with 200 within `timeout` (for the
/// binaries' `healthcheck` subcommands: plain HTTP/1.1 on a TCP socket, no client library). An
/// unspecified address (`0.0.0.0`, `::`) is probed on loopback. The error names the status and
/// the first line of the body (`/readyz` puts the failed dependency there).
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), ProbeError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        // The answers of /healthz and /readyz are short; read at most 4 KiB of them.
        let mut response = Vec::new();
        stream.take(4096).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeError::NoAnswer(format!("{addr}{path}"), timeout))??;
    let response = String::from_utf8_lossy(&response);
    let status_line = response.lines().next().unwrap_or_default();
    if status_line.split(' ').nth(1) == Some("200") {
        return Ok(());
    }
    let reason: Vec<&str> = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| {
            body.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Err(ProbeError::NotReady(format!(
        "{addr}{path} answered {status_line:?}{}",
        if reason.is_empty() {
            String::new()
        } else {
            format!(": {}", reason.join("; "))
        }
    )))
}

/// Why [`probe`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Connecting, writing or reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The server did not answer in time.
    #[error("no answer from {0} within {1:?}")]
    NoAnswer(String, Duration),
    /// The server answered with another status than 200 (the text has it, and the body).
    #[error("{0}")]
    NotReady(String),
}
