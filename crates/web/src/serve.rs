//! Serving a router on a TCP listener with bounds a public port needs: hyper's HTTP/1.1 server
//! with a timer (so a client that does not finish its request headers within
//! [`ServeConfig::header_read_timeout`] is disconnected, and so is a keep-alive connection left
//! idle that long), and at most [`ServeConfig::max_connections`] open connections.
//!
//! At the bound, a new connection does not wait and does not starve: the connections that have
//! been waiting longest for a request's headers (the slowest clients, a sixteenth of the bound
//! at once) are closed to make room. Only when every open connection is in the middle of a
//! request is the new one refused.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// Binds the public port with a listen backlog as deep as `max_connections` (at least 1,024, at
/// most 65,535; the kernel caps it at `net.core.somaxconn`). A burst of connections beyond the
/// backlog makes the kernel drop new clients' SYNs, and a dropped SYN costs its client a
/// second (measured: a normal client's 1.02 s answer while 2,000 sockets connected at once to
/// Tokio's default backlog of 1,024).
pub fn bind(addr: SocketAddr, max_connections: usize) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let backlog = u32::try_from(max_connections)
        .unwrap_or(u32::MAX)
        .clamp(1024, 65_535);
    socket.listen(backlog)
}

/// A router set once the service is ready: until then every request but `/healthz` gets 503
/// with `Retry-After` (and `/readyz` says `not ready`), so a server can listen, and answer its
/// health checks, while it waits for its database or queue.
#[derive(Debug, Clone, Default)]
pub struct LateRouter {
    inner: Arc<std::sync::OnceLock<Router>>,
}

impl LateRouter {
    /// Serves `router` from now on (a second call changes nothing).
    pub fn set(&self, router: Router) {
        let _ = self.inner.set(router);
    }

    /// Whether the router is set.
    pub fn is_set(&self) -> bool {
        self.inner.get().is_some()
    }

    /// The router to serve: the one set, or the 503 answers until then.
    pub fn router(&self) -> Router {
        let inner = Arc::clone(&self.inner);
        Router::new().fallback_service(tower::service_fn(move |request: Request| {
            let inner = Arc::clone(&inner);
            async move {
                Ok::<Response, Infallible>(match inner.get() {
                    Some(router) => call(router.clone(), request).await,
                    None => starting(request.uri().path()),
                })
            }
        }))
    }
}

/// The answer while the service is starting.
fn starting(path: &str) -> Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse as _;
    let (status, body) = match path {
        "/healthz" => (StatusCode::OK, "ok\n"),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is starting. Please try again in a few seconds.\n",
        ),
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::RETRY_AFTER, "5"),
        ],
        body,
    )
        .into_response()
}

/// The bounds of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeConfig {
    /// HEADER_READ_TIMEOUT: the longest a client may take to send a request's headers, and
    /// the longest a keep-alive connection may stay idle between requests.
    pub header_read_timeout: Duration,
    /// MAX_CONNECTIONS: open connections at most.
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// One open connection, as the accept loop sees it.
#[derive(Debug)]
struct Slot {
    /// `Some(since)`: waiting for a request's headers since then; `None`: handling a request.
    waiting_since: Option<Instant>,
    /// Notified to close the connection (shed).
    close: Arc<Notify>,
}

/// The open connections.
#[derive(Debug, Default)]
struct Connections {
    slots: Mutex<HashMap<u64, Slot>>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more connection under `max`: `true` when there is room. At the bound
    /// it closes the connections that have waited longest for their request headers (the
    /// slowest clients): a sixteenth of `max` at once, so that the next new connections find
    /// room without shedding one each.
    fn make_room(&self, max: usize) -> bool {
        let mut slots = self.lock();
        if slots.len() < max {
            return true;
        }
        let mut waiting: Vec<(Instant, u64)> = slots
            .iter()
            .filter_map(|(id, slot)| slot.waiting_since.map(|since| (since, *id)))
            .collect();
        if waiting.is_empty() {
            return false;
        }
        let batch = (max / 16).clamp(1, waiting.len());
        if batch < waiting.len() {
            waiting.select_nth_unstable(batch - 1);
        }
        for (_, id) in waiting.into_iter().take(batch) {
            if let Some(slot) = slots.remove(&id) {
                slot.close.notify_one();
            }
        }
        metrics::counter!("connections_shed_total", "reason" => "slowest").increment(batch as u64);
        true
    }

    fn insert(&self, id: u64, close: Arc<Notify>) {
        self.lock().insert(
            id,
            Slot {
                waiting_since: Some(Instant::now()),
                close,
            },
        );
    }

    /// Marks a connection as handling a request (`busy`) or waiting for the next one.
    fn set_busy(&self, id: u64, busy: bool) {
        if let Some(slot) = self.lock().get_mut(&id) {
            slot.waiting_since = if busy { None } else { Some(Instant::now()) };
        }
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Serves `router` on `listener` within `config`'s bounds until `shutdown` turns true (or its
/// sender is dropped); then stops accepting, lets requests in flight finish and returns once
/// every connection is closed. Handlers see the client's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let connections = Arc::new(Connections::default());
    let mut tasks = JoinSet::new();
    let mut next_id: u64 = 0;
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);
    let (stop_tx, stop_rx) = watch::channel(false);
    loop {
        let accepted = tokio::select! {
            () = &mut stopping => break,
            accepted = listener.accept() => accepted,
        };
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was accepted: go on
                // after a short pause (what hyper's and axum's own loops do).
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !connections.make_room(config.max_connections) {
            metrics::counter!("connections_shed_total", "reason" => "full").increment(1);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        next_id = next_id.wrapping_add(1);
        let id = next_id;
        let close = Arc::new(Notify::new());
        connections.insert(id, Arc::clone(&close));
        let task = connection(
            id,
            stream,
            peer,
            router.clone(),
            config,
            Arc::clone(&connections),
            close,
            stop_rx.clone(),
        );
        tasks.spawn(task);
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tracing::debug!(
        open = connections.len(),
        "stopped accepting; waiting for open connections"
    );
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection until it ends, is shed, or the server stops (then gracefully: the
/// request in flight is answered, and the connection closed).
#[expect(clippy::too_many_arguments, reason = "the parts of one connection")]
async fn connection(
    id: u64,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    config: ServeConfig,
    connections: Arc<Connections>,
    close: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let tracker = Arc::clone(&connections);
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let tracker = Arc::clone(&tracker);
            async move {
                tracker.set_busy(id, true);
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                let response = call(router, request).await;
                tracker.set_busy(id, false);
                Ok::<Response, Infallible>(response)
            }
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = close.notified() => {
            tracing::debug!("connection shed to make room for a new one");
            Ok(())
        }
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        // Header timeouts, resets and malformed requests: the client's doing, not ours.
        tracing::debug!(%error, "connection ended with an error");
    }
    connections.remove(id);
}

/// Resolves once the server stops (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn call(router: Router, request: Request) -> Response {
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn start(config: ServeConfig) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "hi" }));
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(serve(listener, router, config, stopped));
        (addr, stop)
    }

    /// Reads until the server closes the connection; what it sent.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn get_once(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        read_to_close(&mut stream).await
    }

    /// A client that does not finish its headers within the header timeout is disconnected,
    /// and so is a keep-alive connection left idle that long.
    #[tokio::test(start_paused = true)]
    async fn slow_headers_and_idle_connections_are_closed_after_the_header_timeout() {
        let timeout = Duration::from_secs(10);
        let (addr, _stop) = start(ServeConfig {
            header_read_timeout: timeout,
            max_connections: 64,
        })
        .await;
        let started = Instant::now();
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HT").await.unwrap();
        let answer = read_to_close(&mut slow).await;
        assert!(!answer.contains("hi"), "{answer}");
        assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());

        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let answer = read_to_close(&mut idle).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hi"),
            "{answer}"
        );
        assert!(
            started.elapsed() >= timeout,
            "kept open while idle: {:?}",
            started.elapsed()
        );
    }

    /// Until its router is set, a late router answers 503 (health 200); then it serves it.
    #[tokio::test]
    async fn a_late_router_answers_503_until_it_is_set() {
        let late = LateRouter::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, stopped) = watch::channel(false);
        tokio::spawn(serve(
            listener,
            late.router(),
            ServeConfig::default(),
            stopped,
        ));
        let status = |answer: String| answer.split(' ').nth(1).unwrap_or_default().to_owned();
        assert_eq!(status(get_once(addr).await), "503");
        let mut health = TcpStream::connect(addr).await.unwrap();
        health
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(status(read_to_close(&mut health).await), "200");
        late.set(Router::new().route("/", get(|| async { "hi" })));
        assert!(late.is_set());
        assert!(get_once(addr).await.ends_with("hi"));
    }

    /// At the bound, a new client is served: the connection waiting longest for its headers is
    /// closed to make room.
    #[tokio::test]
    async fn at_the_bound_the_slowest_connection_makes_room() {
        let (addr, _stop) = start(ServeConfig {
            header_read_timeout: Duration::from_secs(600),
            max_connections: 2,
        })
        .await;
        let mut oldest = TcpStream::connect(addr).await.unwrap();
        oldest.write_all(b"GET").await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        second.write_all(b"GET").await.unwrap();
        // The server accepts in arrival order: both are open before the third comes in.
        let answer = get_once(addr).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hi"),
            "{answer}"
        );
        assert_eq!(read_to_close(&mut oldest).await, "", "the oldest was shed");
        // The second still stands: it can finish its request.
        second
            .write_all(b" / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_to_close(&mut second).await;
        assert!(answer.ends_with("hi"), "{answer}");
    }
}
