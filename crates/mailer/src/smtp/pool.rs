//! The connections of one mailer: at most `max_connections` open, reused most recently used
//! first, checked with NOOP only after a second idle, closed after thirty; and the queue of
//! messages waiting for one. The exchange on a connection is in `pipeline`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::classify::{Failure, SendFailure, failure_of, timed_out};
use super::pipeline::Driver;

/// An idle connection used this recently is reused without a NOOP round trip first.
pub(super) const POOL_FRESH_FOR: Duration = Duration::from_secs(1);

/// Idle connections are closed after this; servers often drop them after a minute or so.
pub(super) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on the polite QUIT sent (in the background) to connections we close.
pub(super) const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// What lettre's builder offers by default: PLAIN, then LOGIN.
pub(super) const AUTH_MECHANISMS: &[Mechanism] = &[Mechanism::Plain, Mechanism::Login];

/// The TLS set-up of a connection, with the parameters it needs.
#[derive(Clone)]
pub(super) enum TlsMode {
    Implicit(TlsParameters),
    StartTlsRequired(TlsParameters),
    StartTlsOpportunistic(TlsParameters),
    Plain,
}

/// Where and how to connect, and the pool's bounds.
#[derive(Clone)]
pub(super) struct Endpoint {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) tls: TlsMode,
    pub(super) hello_name: ClientId,
    pub(super) credentials: Option<Credentials>,
    pub(super) connect_timeout: Duration,
    pub(super) send_timeout: Duration,
    pub(super) max_connections: usize,
}

impl Endpoint {
    pub(super) fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The connections of one mailer and the messages waiting for them.
pub(super) struct Pool {
    pub(super) endpoint: Endpoint,
    pub(super) idle: IdlePool<Connection>,
    pub(super) queue: Mutex<Queue>,
}

/// Messages waiting for a connection, and how many drivers are taking them.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) waiting: VecDeque<Pending>,
    /// Driver tasks running; each holds at most one connection.
    pub(super) drivers: usize,
}

/// A message waiting to be sent, and where its sender waits for the answer.
pub(super) struct Pending {
    pub(super) envelope: Envelope,
    pub(super) email: Vec<u8>,
    /// The envelope and the message are ASCII: no SMTPUTF8 or 8BITMIME is needed, so it can
    /// be pipelined.
    pub(super) plain: bool,
    /// Connections that broke after taking its commands but before its content was sent.
    pub(super) tries: u8,
    /// The end of its send timeout: past it, it is not sent, and a reply not yet read is a
    /// timeout.
    pub(super) deadline: tokio::time::Instant,
    pub(super) reply: oneshot::Sender<Result<(), (Failure, String)>>,
}

/// A message's commands can go to a second connection when the first breaks before its content
/// was sent (nothing was delivered); not to a third.
pub(super) const MAX_TRIES: u8 = 2;

impl Pending {
    pub(super) fn answer(self, result: Result<(), (Failure, String)>) {
        // The sender may have stopped waiting (its send timed out); nothing to tell then.
        let _ = self.reply.send(result);
    }

    pub(super) fn fail(self, error: &lettre::transport::smtp::Error) {
        self.answer(Err((failure_of(error), error.to_string())));
    }
}

impl Pool {
    pub(super) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            idle: IdlePool::new(POOL_FRESH_FOR, POOL_IDLE_TIMEOUT),
            queue: Mutex::new(Queue::default()),
        }
    }

    pub(super) fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message, and starts a driver for it unless `max_connections` already run
    /// (one of them takes it when it is done with its current message).
    pub(super) fn submit(self: &Arc<Self>, pending: Pending) {
        let mut queue = self.queue();
        queue.waiting.push_back(pending);
        if queue.drivers < self.endpoint.max_connections {
            queue.drivers += 1;
            drop(queue);
            tokio::spawn(Driver::new(Arc::clone(self)).run());
        }
    }

    /// The first waiting message still within its send timeout (one past it gets the timeout
    /// and is not sent at all).
    pub(super) fn next(&self, queue: &mut Queue) -> Option<Pending> {
        let now = tokio::time::Instant::now();
        while let Some(pending) = queue.waiting.pop_front() {
            if pending.reply.is_closed() {
                continue;
            }
            if pending.deadline <= now {
                pending.answer(Err(timed_out(self.endpoint.send_timeout)));
                continue;
            }
            return Some(pending);
        }
        None
    }

    /// Puts back, first in line, a message whose connection broke before its content was
    /// sent, or answers it with `error` if it has had its tries.
    pub(super) fn retry(&self, mut pending: Pending, error: (Failure, String)) {
        pending.tries += 1;
        if pending.tries >= MAX_TRIES {
            pending.answer(Err(error));
        } else {
            self.queue().waiting.push_front(pending);
        }
    }

    /// An idle connection if a usable one is there, else a new one.
    pub(super) async fn connection(&self) -> Result<Connection, SendFailure> {
        let (idle, expired) = self.idle.take(Instant::now());
        quit_in_background(expired);
        match idle {
            Some((conn, Freshness::Fresh)) => return Ok(conn),
            Some((mut conn, Freshness::Stale)) => {
                let alive =
                    tokio::time::timeout(self.endpoint.connect_timeout, conn.smtp.test_connected())
                        .await;
                if matches!(alive, Ok(true)) && !conn.smtp.has_broken() {
                    return Ok(conn);
                }
                tracing::debug!(server = %self.endpoint.server(), "idle SMTP connection failed its NOOP check; opening a new one");
            }
            None => {}
        }
        self.open().await
    }

    /// Connects, reads the greeting, sends EHLO, sets up TLS as configured, asks EHLO again
    /// for the extensions lettre does not record (PIPELINING) and authenticates.
    pub(super) async fn open(&self) -> Result<Connection, SendFailure> {
        let endpoint = &self.endpoint;
        tracing::debug!(server = %endpoint.server(), "opening an SMTP connection");
        let hello = &endpoint.hello_name;
        let mut conn = match &endpoint.tls {
            // lettre offers no non-deprecated way to run implicit TLS over a socket of ours, so
            // this uses lettre's own socket, without TCP_NODELAY: smtps:// keeps the ~40 ms
            // stall per message (Nagle's algorithm against the server's delayed ACK). Port 587
            // with STARTTLS does not: its TLS runs over our socket.
            TlsMode::Implicit(tls) => {
                AsyncSmtpConnection::connect_tokio1(
                    (endpoint.host.as_str(), endpoint.port),
                    Some(endpoint.connect_timeout),
                    hello,
                    Some(tls.clone()),
                    None,
                )
                .await?
            }
            _ => {
                let stream =
                    connect_tcp(&endpoint.host, endpoint.port, endpoint.connect_timeout).await?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), hello).await?
            }
        };
        match &endpoint.tls {
            // Fails with lettre's "STARTTLS is not supported on this server" (a client error,
            // classified Account) before anything else is sent when the server does not offer it.
            TlsMode::StartTlsRequired(tls) => conn.starttls(tls.clone(), hello).await?,
            TlsMode::StartTlsOpportunistic(tls) if conn.can_starttls() => {
                conn.starttls(tls.clone(), hello).await?;
            }
            _ => {}
        }
        // Before AUTH: a new EHLO resets the session (RFC 5321 §4.1.4).
        let ehlo = conn.command(Ehlo::new(hello.clone())).await?;
        let pipelining = ehlo
            .message()
            .any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
        if let Some(credentials) = &endpoint.credentials {
            conn.auth(AUTH_MECHANISMS, credentials).await?;
        }
        Ok(Connection {
            smtp: conn,
            pipelining,
        })
    }
}

impl Drop for Pool {
    /// Says QUIT on the idle connections when a Tokio runtime is there to do it; otherwise
    /// they are just closed.
    fn drop(&mut self) {
        let idle = self.idle.drain();
        if tokio::runtime::Handle::try_current().is_ok() {
            quit_in_background(idle);
        }
    }
}

/// An open connection and what its server offered.
pub(super) struct Connection {
    pub(super) smtp: AsyncSmtpConnection,
    /// The server's EHLO reply (after TLS) listed PIPELINING.
    pub(super) pipelining: bool,
}

/// Resolves `host:port` and tries each address in turn, each attempt bounded by `timeout`.
/// The socket gets `TCP_NODELAY`: lettre writes a message's body and its final `\r\n.\r\n`
/// separately, and with Nagle's algorithm the second write would wait for the server's delayed
/// ACK, every message.
pub(super) async fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, SendFailure> {
    let addresses = tokio::net::lookup_host((host, port)).await.map_err(|e| {
        SendFailure::Local(
            Failure::Connection,
            format!("could not resolve {host}: {e}"),
        )
    })?;
    let mut last_error = None;
    for address in addresses {
        match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::warn!(%address, error = %e, "could not set TCP_NODELAY on the SMTP connection; every message will wait for the server's delayed ACK");
                }
                return Ok(stream);
            }
            Ok(Err(e)) => {
                last_error = Some((
                    Failure::Connection,
                    format!("could not connect to {address}: {e}"),
                ));
            }
            Err(_elapsed) => {
                last_error = Some((
                    Failure::Timeout,
                    format!(
                        "could not connect to {address} within {} s",
                        timeout.as_secs_f32()
                    ),
                ));
            }
        }
    }
    let (failure, detail) = last_error.unwrap_or_else(|| {
        (
            Failure::Connection,
            format!("{host} resolved to no address"),
        )
    });
    Err(SendFailure::Local(failure, detail))
}

/// Sends QUIT on connections we no longer want, on a spawned task (bounded by
/// `QUIT_TIMEOUT`), so the send that found them does not wait. Call inside a Tokio runtime.
pub(super) fn quit_in_background(connections: Vec<Connection>) {
    if connections.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for mut conn in connections {
            let _ = tokio::time::timeout(QUIT_TIMEOUT, conn.smtp.abort()).await;
        }
    });
}

/// Whether an idle connection can be used as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Freshness {
    /// Used less than `fresh_for` ago: reuse without a round trip.
    Fresh,
    /// Idle longer: check it with NOOP first.
    Stale,
}

/// The idle connections, oldest first; reuse takes the most recently used (LIFO), so the
/// others age out when traffic drops. Times are passed in, so tests need no clock.
pub(super) struct IdlePool<C> {
    pub(super) connections: Mutex<Vec<(C, Instant)>>,
    /// Idle for less than this: reused without a check.
    pub(super) fresh_for: Duration,
    /// Idle for this long or longer: closed, never reused.
    pub(super) idle_timeout: Duration,
}

impl<C> IdlePool<C> {
    pub(super) fn new(fresh_for: Duration, idle_timeout: Duration) -> Self {
        Self {
            connections: Mutex::new(Vec::new()),
            fresh_for,
            idle_timeout,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Vec<(C, Instant)>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks a connection after a successful send.
    pub(super) fn put(&self, conn: C, now: Instant) {
        self.lock().push((conn, now));
    }

    /// The most recently used connection that has not expired, with whether it needs a check,
    /// and the expired ones, taken out to be closed.
    pub(super) fn take(&self, now: Instant) -> (Option<(C, Freshness)>, Vec<C>) {
        let mut connections = self.lock();
        let idle_timeout = self.idle_timeout;
        let expired = connections
            .extract_if(.., |(_, since)| {
                now.saturating_duration_since(*since) >= idle_timeout
            })
            .map(|(conn, _)| conn)
            .collect();
        let taken = connections.pop().map(|(conn, since)| {
            let freshness = if now.saturating_duration_since(since) < self.fresh_for {
                Freshness::Fresh
            } else {
                Freshness::Stale
            };
            (conn, freshness)
        });
        (taken, expired)
    }

    /// Takes every idle connection out.
    pub(super) fn drain(&self) -> Vec<C> {
        self.lock().drain(..).map(|(conn, _)| conn).collect()
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}
