//! The SMTP transport: our own small connection pool over lettre's `AsyncSmtpConnection`,
//! configured from one URL.
//!
//! Why not lettre's `AsyncSmtpTransport` and its pool: lettre writes a message's body and the
//! final `\r\n.\r\n` in two writes, on a socket without `TCP_NODELAY`, so with the server's
//! delayed ACK every message waited ~40 ms (Nagle's algorithm); its pool sent a NOOP (one more
//! round trip) every time it reused a connection, and it did not bound the number of open
//! connections (only idle ones). Here we open the TCP connection ourselves with `TCP_NODELAY`,
//! reuse a recently used connection as is, and never have more than `max_connections` open.
//!
//! When the server offers PIPELINING (RFC 2920), a message's `MAIL FROM`, `RCPT TO` and `DATA`
//! go in one write, and its content goes in the same write as the next waiting message's
//! commands: under load, one write and one round trip per message instead of two (see
//! [`Driver`]). Servers that do not offer it get one command at a time, through lettre.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::mime::{Sender, format_mime};
use crate::{MailError, Mailer, Message, Sent};

/// Bound on establishing one TCP connection (per resolved address).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one whole send: waiting for a pool slot, getting a connection (connect, TLS, EHLO,
/// AUTH) and the MAIL/RCPT/DATA exchange. lettre's async client has no per-command timeout, so
/// without this a server that stops answering would hang the send forever.
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections open at once (in use or idle), unless `with_max_connections` says otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 4;
/// An idle connection used this recently is reused without a NOOP round trip first.
const POOL_FRESH_FOR: Duration = Duration::from_secs(1);
/// Idle connections are closed after this; servers often drop them after a minute or so.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long past its send timeout a send waits for its driver's answer before giving up on
/// it (the driver bounds its own waits by the send timeout; this only guards against a bug).
const ANSWER_GRACE: Duration = Duration::from_secs(5);
/// Bound on the polite QUIT sent (in the background) to connections we close.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// What lettre's builder offers by default: PLAIN, then LOGIN.
const AUTH_MECHANISMS: &[Mechanism] = &[Mechanism::Plain, Mechanism::Login];
/// Server replies are cut to this many bytes in error messages.
const MAX_DETAIL_LEN: usize = 300;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    ImplicitTls,
    /// STARTTLS must succeed before anything else (credentials, mail) is sent.
    StartTlsRequired,
    /// STARTTLS when the server offers it, plain text otherwise.
    StartTlsOpportunistic,
    /// Plain text.
    None,
}

impl SmtpSecurity {
    fn as_str(self) -> &'static str {
        match self {
            Self::ImplicitTls => "smtps",
            Self::StartTlsRequired => "required",
            Self::StartTlsOpportunistic => "opportunistic",
            Self::None => "none",
        }
    }
}

/// An SMTP URL that cannot be used. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpConfigError {
    #[error("SMTP URL: the scheme must be smtp:// or smtps://")]
    Scheme,
    #[error("SMTP URL: missing or invalid host")]
    Host,
    #[error("SMTP URL: invalid port (expected 1-65535)")]
    Port,
    #[error(
        "SMTP URL: credentials need both a user name and a password (smtp://user:password@host)"
    )]
    IncompleteCredentials,
    #[error(
        "SMTP URL: the user name or password is not valid percent-encoded UTF-8 (write `%` as `%25`)"
    )]
    Encoding,
    #[error("SMTP URL: unsupported parameter `{0}` (only `tls` is supported)")]
    UnknownParameter(String),
    #[error("SMTP URL: `tls` must be `required`, `opportunistic` or `none`")]
    TlsValue,
    #[error("SMTP URL: smtps:// always uses TLS; `tls={0}` contradicts it")]
    TlsConflict(&'static str),
    #[error(
        "SMTP URL: refusing `tls={mode}` with credentials for {host}: the password could travel in clear text; use smtps:// or tls=required (tls=opportunistic or tls=none with credentials is allowed only for a loopback host)"
    )]
    CleartextCredentials { mode: &'static str, host: String },
    #[error("SMTP URL: the path must be a valid EHLO name (a domain name)")]
    HelloName,
    #[error("SMTP: could not set up TLS for {host}: {reason}")]
    Tls { host: String, reason: String },
}

/// The TLS set-up of a connection, with the parameters it needs.
#[derive(Clone)]
enum TlsMode {
    Implicit(TlsParameters),
    StartTlsRequired(TlsParameters),
    StartTlsOpportunistic(TlsParameters),
    Plain,
}

/// Sends through an SMTP server over a small pool of lettre `AsyncSmtpConnection`s,
/// configured from a URL; see the crate docs for the URL forms and TLS rules.
///
/// Sends wait in one queue. At most `max_connections` connections are open at once (default
/// 4), each driven by a task of its own that takes the next waiting message as soon as the
/// server has accepted the previous one's commands; with PIPELINING, one message's content and
/// the next one's `MAIL`, `RCPT` and `DATA` go out in one write (see [`Driver`]). A connection
/// goes back to the idle pool (most recently used first) when no message is waiting; after an
/// I/O error, a timeout or a refusal lettre handles it is dropped, since its state is unknown.
/// Nothing is connected before the first send; a driver task runs only while messages wait.
pub struct SmtpMailer {
    sender: Sender,
    security: SmtpSecurity,
    pool: Arc<Pool>,
}

/// Where and how to connect, and the pool's bounds.
#[derive(Clone)]
struct Endpoint {
    host: String,
    port: u16,
    tls: TlsMode,
    hello_name: ClientId,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
    send_timeout: Duration,
    max_connections: usize,
}

impl Endpoint {
    fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The connections of one mailer and the messages waiting for them.
struct Pool {
    endpoint: Endpoint,
    idle: IdlePool<Connection>,
    queue: Mutex<Queue>,
}

/// Messages waiting for a connection, and how many drivers are taking them.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Pending>,
    /// Driver tasks running; each holds at most one connection.
    drivers: usize,
}

/// A message waiting to be sent, and where its sender waits for the answer.
struct Pending {
    envelope: Envelope,
    email: Vec<u8>,
    /// The envelope and the message are ASCII: no SMTPUTF8 or 8BITMIME is needed, so it can
    /// be pipelined.
    plain: bool,
    /// Connections that broke after taking its commands but before its content was sent.
    tries: u8,
    /// The end of its send timeout: past it, it is not sent, and a reply not yet read is a
    /// timeout.
    deadline: tokio::time::Instant,
    reply: oneshot::Sender<Result<(), (Failure, String)>>,
}

/// A message's commands can go to a second connection when the first breaks before its content
/// was sent (nothing was delivered); not to a third.
const MAX_TRIES: u8 = 2;

impl Pending {
    fn answer(self, result: Result<(), (Failure, String)>) {
        // The sender may have stopped waiting (its send timed out); nothing to tell then.
        let _ = self.reply.send(result);
    }

    fn fail(self, error: &lettre::transport::smtp::Error) {
        self.answer(Err((failure_of(error), error.to_string())));
    }
}

impl Pool {
    fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            idle: IdlePool::new(POOL_FRESH_FOR, POOL_IDLE_TIMEOUT),
            queue: Mutex::new(Queue::default()),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message, and starts a driver for it unless `max_connections` already run
    /// (one of them takes it when it is done with its current message).
    fn submit(self: &Arc<Self>, pending: Pending) {
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
    fn next(&self, queue: &mut Queue) -> Option<Pending> {
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
    fn retry(&self, mut pending: Pending, error: (Failure, String)) {
        pending.tries += 1;
        if pending.tries >= MAX_TRIES {
            pending.answer(Err(error));
        } else {
            self.queue().waiting.push_front(pending);
        }
    }

    /// An idle connection if a usable one is there, else a new one.
    async fn connection(&self) -> Result<Connection, SendFailure> {
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
    async fn open(&self) -> Result<Connection, SendFailure> {
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
struct Connection {
    smtp: AsyncSmtpConnection,
    /// The server's EHLO reply (after TLS) listed PIPELINING.
    pipelining: bool,
}

/// The task that sends waiting messages over one connection, one after the other, until none
/// is waiting.
///
/// With PIPELINING (RFC 2920) and an ASCII message, a message's `MAIL`, `RCPT` and `DATA` go out
/// in one write; once `DATA` is accepted, its content (dot-stuffed, with the final `.`) goes out
/// in the same write as the next waiting message's `MAIL`, `RCPT` and `DATA` (the content may
/// start a group, `DATA` must end one), so under load a message costs one write and one round
/// trip. The replies are read in order: the content's reply answers its message, the first
/// refusal among the next message's commands answers that one, and `RSET` clears the refused
/// transaction before the connection goes on. Without PIPELINING, or for a message that needs
/// SMTPUTF8 or 8BITMIME, lettre sends it one command at a time.
///
/// When the connection breaks (an I/O error, such as a server that closed an idle connection)
/// after a message's commands went out but before any reply refused them, nothing of it was
/// delivered, so it goes back to the front of the queue for another connection (once). A
/// refusal (a `421` "closing" reply too) is that message's answer, for the caller's retry
/// policy; a message whose content went out gets the error, as its delivery is unknown. Every
/// wait is bounded by the oldest message's send timeout; a message whose exchange timed out
/// is not tried again here.
struct Driver {
    pool: Arc<Pool>,
    conn: Option<Connection>,
    /// A message whose `DATA` was accepted and whose content is still to be sent.
    open: Option<(Pending, String)>,
    /// Whether this driver was counted out of `Queue::drivers` already.
    stopped: bool,
}

impl Drop for Driver {
    /// A driver that did not stop on its own (it panicked, or its runtime is shutting down)
    /// makes room for another.
    fn drop(&mut self) {
        if !self.stopped {
            self.pool.queue().drivers -= 1;
        }
    }
}

impl Driver {
    fn new(pool: Arc<Pool>) -> Self {
        Self {
            pool,
            conn: None,
            open: None,
            stopped: false,
        }
    }

    async fn run(mut self) {
        loop {
            let next = if self.open.is_some() {
                self.pool.next(&mut self.pool.queue())
            } else {
                match self.next_or_stop() {
                    Some(next) => Some(next),
                    None => return,
                }
            };
            match next {
                Some(next) => self.send(next).await,
                None => self.finish_open().await,
            }
        }
    }

    /// The next waiting message; when there is none, parks the connection and stops, in one
    /// step under the queue's lock, so that a message queued meanwhile starts a new driver,
    /// which finds the connection idle.
    fn next_or_stop(&mut self) -> Option<Pending> {
        let mut queue = self.pool.queue();
        if let Some(next) = self.pool.next(&mut queue) {
            return Some(next);
        }
        if let Some(conn) = self.conn.take().filter(|c| !c.smtp.has_broken()) {
            self.pool.idle.put(conn, Instant::now());
        }
        queue.drivers -= 1;
        self.stopped = true;
        None
    }

    /// Sends `next` (and the open message's content), on this driver's connection or a new one.
    async fn send(&mut self, next: Pending) {
        let timeout = self.pool.endpoint.send_timeout;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => match tokio::time::timeout_at(next.deadline, self.pool.connection()).await {
                Ok(Ok(conn)) => self.conn.insert(conn),
                Ok(Err(failure)) => return next.answer(Err(failure.into_parts())),
                Err(_elapsed) => return next.answer(Err(timed_out(timeout))),
            },
        };
        if !(conn.pipelining && next.plain) {
            self.finish_open().await;
            return self.send_one_by_one(next).await;
        }
        let text = match std::str::from_utf8(&next.email) {
            Ok(text) => dot_stuffed(text),
            // `plain` means ASCII, so this does not happen; lettre copes either way.
            Err(_) => {
                self.finish_open().await;
                return self.send_one_by_one(next).await;
            }
        };
        let open = self.open.take();
        // The content, if any, and three short commands.
        let mut write =
            String::with_capacity(open.as_ref().map_or(0, |(_, content)| content.len()) + 512);
        if let Some((_, content)) = &open {
            write.push_str(content);
        }
        write.push_str(&Mail::new(next.envelope.from().cloned(), vec![]).to_string());
        for to in next.envelope.to() {
            write.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
        }
        write.push_str(&Data.to_string());
        let expected = usize::from(open.is_some()) + next.envelope.to().len() + 2;
        // Messages are taken in order, so the open one's deadline comes first.
        let deadline = open
            .as_ref()
            .map_or(next.deadline, |(open, _)| open.deadline);
        let (mut replies, broke) = round_trip(conn, &write, expected, deadline, timeout).await;
        let mut replies = replies.drain(..);
        if let Some((pending, _)) = open {
            match replies.next() {
                Some(Ok(())) => pending.answer(Ok(())),
                Some(Err(error)) => pending.answer(Err(error)),
                None => pending.answer(Err(broke.clone().unwrap_or_else(unanswered))),
            }
        }
        let commands: Vec<_> = replies.collect();
        let refusal = commands.iter().find_map(|r| r.as_ref().err()).cloned();
        match (refusal, broke) {
            (None, None) => self.open = Some((next, text)),
            (None, Some(error)) if error.0 == Failure::Timeout => {
                // Its send timeout is (nearly) over too: give up rather than try again.
                self.conn = None;
                next.answer(Err(error));
            }
            (None, Some(error)) => {
                // The content never went out, and the server refused nothing: another
                // connection may send it.
                self.conn = None;
                self.pool.retry(next, error);
            }
            // The server's refusal is the answer (a 421 "closing" reply too: the worker's
            // retry policy decides, and counts it as an attempt).
            (Some(error), broke) => {
                // `DATA` accepted after a refused `MAIL` or `RCPT` would wait for content we
                // will not send: drop the connection rather than guess.
                if broke.is_some() || matches!(commands.last(), Some(Ok(()))) {
                    self.conn = None;
                } else if let Some(conn) = &mut self.conn {
                    let reset =
                        tokio::time::timeout_at(next.deadline, conn.smtp.command(Rset)).await;
                    if !matches!(reset, Ok(Ok(_))) {
                        self.conn = None;
                    }
                }
                next.answer(Err(error));
            }
        }
    }

    /// Sends the open message's content on its own (no message is waiting to go with it).
    async fn finish_open(&mut self) {
        let Some((pending, content)) = self.open.take() else {
            return;
        };
        let Some(conn) = &mut self.conn else {
            return pending.answer(Err(unanswered()));
        };
        let timeout = self.pool.endpoint.send_timeout;
        let (mut replies, broke) = round_trip(conn, &content, 1, pending.deadline, timeout).await;
        if broke.is_some() {
            self.conn = None;
        }
        match replies.pop() {
            Some(reply) => pending.answer(reply),
            None => pending.answer(Err(broke.unwrap_or_else(unanswered))),
        }
    }

    /// Sends `next` through lettre, one command at a time (lettre drops the connection after
    /// any refusal).
    async fn send_one_by_one(&mut self, next: Pending) {
        let Some(conn) = &mut self.conn else {
            // `finish_open` lost the connection: `next` was not sent, it waits for another.
            return self.pool.queue().waiting.push_front(next);
        };
        let timeout = self.pool.endpoint.send_timeout;
        let send = conn.smtp.send(&next.envelope, &next.email);
        let timed_out_midway = match tokio::time::timeout_at(next.deadline, send).await {
            Ok(Ok(_)) => {
                next.answer(Ok(()));
                false
            }
            Ok(Err(error)) => {
                next.fail(&error);
                false
            }
            Err(_elapsed) => {
                next.answer(Err(timed_out(timeout)));
                true
            }
        };
        // lettre drops (marks broken) a connection after any error; after a timeout its state
        // mid-transaction is unknown.
        if timed_out_midway || self.conn.as_ref().is_none_or(|c| c.smtp.has_broken()) {
            self.conn = None;
        }
    }
}

/// Writes `write` and reads up to `expected` replies, each a success or the server's refusal.
/// Stops at the first I/O or protocol error, or at `deadline` (a `timeout` after the first
/// message's send began), and returns it as the second value: the connection is then broken
/// and must be dropped.
async fn round_trip(
    conn: &mut Connection,
    write: &str,
    expected: usize,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> (
    Vec<Result<(), (Failure, String)>>,
    Option<(Failure, String)>,
) {
    let mut replies = Vec::with_capacity(expected);
    let mut reply = tokio::time::timeout_at(deadline, conn.smtp.command(write)).await;
    loop {
        match reply {
            Err(_elapsed) => return (replies, Some(timed_out(timeout))),
            Ok(Err(error)) if error.status().is_none() => {
                return (replies, Some((failure_of(&error), error.to_string())));
            }
            Ok(Err(error)) => replies.push(Err((failure_of(&error), error.to_string()))),
            Ok(Ok(_)) => replies.push(Ok(())),
        }
        if replies.len() >= expected {
            return (replies, None);
        }
        reply = tokio::time::timeout_at(deadline, conn.smtp.read_response()).await;
    }
}

fn timed_out(timeout: Duration) -> (Failure, String) {
    (
        Failure::Timeout,
        format!("no answer within {} s", timeout.as_secs_f32()),
    )
}

/// For a message whose content went out on a connection that then broke before answering.
fn unanswered() -> (Failure, String) {
    (
        Failure::Connection,
        "the connection closed before the server answered".into(),
    )
}

/// The message as sent after `DATA`: a `.` doubled at the start of every line (RFC 5321
/// §4.5.2, as lettre does it), then `\r\n.\r\n`.
fn dot_stuffed(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    if text.starts_with('.') {
        out.push('.');
    }
    let mut rest = text;
    while let Some(at) = rest.find("\r\n.") {
        out.push_str(&rest[..at + 3]);
        out.push('.');
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out.push_str("\r\n.\r\n");
    out
}

impl fmt::Debug for SmtpMailer {
    /// Shows where mail goes and how, never the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = &self.pool.endpoint;
        f.debug_struct("SmtpMailer")
            .field("host", &endpoint.host)
            .field("port", &endpoint.port)
            .field("security", &self.security)
            .field("authenticated", &endpoint.credentials.is_some())
            .field("sender", &self.sender.to_header_value())
            .field("connect_timeout", &endpoint.connect_timeout)
            .field("send_timeout", &endpoint.send_timeout)
            .field("max_connections", &endpoint.max_connections)
            .field("idle_connections", &self.pool.idle.len())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// Configures a transport from `smtps://user:pass@host:465`, `smtp://user:pass@host:587`
    /// (STARTTLS required) or `smtp://host:1025` (STARTTLS if offered), with an optional
    /// `?tls=required|opportunistic|none` override and an optional `/ehlo-name` path.
    /// Nothing is connected yet.
    pub fn from_url(url: &str, sender: Sender) -> Result<Self, SmtpConfigError> {
        let parsed = parse_url(url)?;
        let tls_parameters = || {
            TlsParameters::new(parsed.host.clone()).map_err(|e| SmtpConfigError::Tls {
                host: parsed.host.clone(),
                reason: e.to_string(),
            })
        };
        let tls = match parsed.security {
            SmtpSecurity::ImplicitTls => TlsMode::Implicit(tls_parameters()?),
            SmtpSecurity::StartTlsRequired => TlsMode::StartTlsRequired(tls_parameters()?),
            SmtpSecurity::StartTlsOpportunistic => {
                TlsMode::StartTlsOpportunistic(tls_parameters()?)
            }
            SmtpSecurity::None => TlsMode::Plain,
        };
        let hello_name = match parsed.hello_name {
            Some(name) => ClientId::Domain(name),
            None => ClientId::default(),
        };
        let credentials = parsed
            .credentials
            .map(|(user, password)| Credentials::new(user, password));
        Ok(Self {
            sender,
            security: parsed.security,
            pool: Arc::new(Pool::new(Endpoint {
                host: parsed.host,
                port: parsed.port,
                tls,
                hello_name,
                credentials,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                send_timeout: DEFAULT_SEND_TIMEOUT,
                max_connections: DEFAULT_MAX_CONNECTIONS,
            })),
        })
    }

    /// A new (empty) pool with `change` made to the endpoint; for the builder methods, which
    /// are called before the first send.
    fn reconfigured(mut self, change: impl FnOnce(&mut Endpoint)) -> Self {
        let mut endpoint = self.pool.endpoint.clone();
        change(&mut endpoint);
        self.pool = Arc::new(Pool::new(endpoint));
        self
    }

    /// Replaces the default timeouts: 10 s to connect (per address tried), 30 s for a whole
    /// send (waiting for a free connection, connecting, TLS, EHLO, AUTH, MAIL/RCPT/DATA).
    pub fn with_timeouts(self, connect: Duration, send: Duration) -> Self {
        self.reconfigured(|endpoint| {
            endpoint.connect_timeout = connect;
            endpoint.send_timeout = send;
        })
    }

    /// At most `n` connections open to the server at once (default 4); a send waits for a free
    /// one, within its send timeout. `0` counts as `1`.
    pub fn with_max_connections(self, n: usize) -> Self {
        self.reconfigured(|endpoint| endpoint.max_connections = n.max(1))
    }

    /// The most connections open to the server at once.
    pub fn max_connections(&self) -> usize {
        self.pool.endpoint.max_connections
    }

    pub fn host(&self) -> &str {
        &self.pool.endpoint.host
    }

    pub fn port(&self) -> u16 {
        self.pool.endpoint.port
    }

    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    /// Whether the URL carried credentials (sent with AUTH after TLS is up).
    pub fn is_authenticated(&self) -> bool {
        self.pool.endpoint.credentials.is_some()
    }

    fn server(&self) -> String {
        self.pool.endpoint.server()
    }

    /// Queues the message for the next free connection and waits for the server's answer.
    async fn deliver(&self, envelope: Envelope, email: Vec<u8>) -> Result<(), (Failure, String)> {
        let plain = envelope
            .from()
            .is_none_or(|a| AsRef::<str>::as_ref(a).is_ascii())
            && envelope
                .to()
                .iter()
                .all(|a| AsRef::<str>::as_ref(a).is_ascii())
            && email.is_ascii();
        let (reply, answer) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + self.pool.endpoint.send_timeout;
        self.pool.submit(Pending {
            envelope,
            email,
            plain,
            tries: 0,
            deadline,
            reply,
        });
        // The driver answers by the deadline (it bounds every wait with it); this bound only
        // guards against a driver that stopped without answering.
        match tokio::time::timeout_at(deadline + ANSWER_GRACE, answer).await {
            Ok(answer) => answer.unwrap_or_else(|_| Err(unanswered())),
            Err(_elapsed) => Err(timed_out(self.pool.endpoint.send_timeout)),
        }
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &Message) -> Result<Sent, MailError> {
        let message_id = self.sender.new_message_id();
        let (envelope, bytes) = format_mime(&self.sender, message, &message_id)?;
        match self.deliver(envelope, bytes).await {
            Ok(()) => {
                tracing::debug!(to = %message.to.masked(), server = %self.server(), "email accepted by the SMTP server");
                Ok(Sent {
                    provider_message_id: Some(message_id),
                })
            }
            Err((failure, detail)) => {
                Err(classify(failure, &self.server(), &redact(&detail, message)))
            }
        }
    }

    fn provider(&self) -> &'static str {
        "smtp"
    }
}

/// Resolves `host:port` and tries each address in turn, each attempt bounded by `timeout`.
/// The socket gets `TCP_NODELAY`: lettre writes a message's body and its final `\r\n.\r\n`
/// separately, and with Nagle's algorithm the second write would wait for the server's delayed
/// ACK (~40 ms per message).
async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, SendFailure> {
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
fn quit_in_background(connections: Vec<Connection>) {
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
enum Freshness {
    /// Used less than `fresh_for` ago: reuse without a round trip.
    Fresh,
    /// Idle longer: check it with NOOP first.
    Stale,
}

/// The idle connections, oldest first; reuse takes the most recently used (LIFO), so the
/// others age out when traffic drops. Times are passed in, so tests need no clock.
struct IdlePool<C> {
    connections: Mutex<Vec<(C, Instant)>>,
    /// Idle for less than this: reused without a check.
    fresh_for: Duration,
    /// Idle for this long or longer: closed, never reused.
    idle_timeout: Duration,
}

impl<C> IdlePool<C> {
    fn new(fresh_for: Duration, idle_timeout: Duration) -> Self {
        Self {
            connections: Mutex::new(Vec::new()),
            fresh_for,
            idle_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(C, Instant)>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks a connection after a successful send.
    fn put(&self, conn: C, now: Instant) {
        self.lock().push((conn, now));
    }

    /// The most recently used connection that has not expired, with whether it needs a check,
    /// and the expired ones, taken out to be closed.
    fn take(&self, now: Instant) -> (Option<(C, Freshness)>, Vec<C>) {
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
    fn drain(&self) -> Vec<C> {
        self.lock().drain(..).map(|(conn, _)| conn).collect()
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Why a send failed, before classification.
enum SendFailure {
    /// lettre's error: a server reply, I/O or TLS on its stream, a client-side check.
    Smtp(lettre::transport::smtp::Error),
    /// Our own part: resolving and connecting the TCP socket, the pool.
    Local(Failure, String),
}

impl From<lettre::transport::smtp::Error> for SendFailure {
    fn from(error: lettre::transport::smtp::Error) -> Self {
        Self::Smtp(error)
    }
}

impl SendFailure {
    /// The failure for `classify` and its detail (not yet redacted).
    fn into_parts(self) -> (Failure, String) {
        match self {
            Self::Smtp(error) => (failure_of(&error), error.to_string()),
            Self::Local(failure, detail) => (failure, detail),
        }
    }
}

/// What went wrong with an SMTP send, reduced to what the retry policy needs (lettre's errors
/// cannot be constructed outside lettre, so classification works on this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// A negative reply from the server, with its code.
    Reply(u16),
    /// Connecting or waiting for the server took too long.
    Timeout,
    /// TLS could not be set up.
    Tls,
    /// Connecting, reading, writing or understanding the server failed.
    Connection,
    /// lettre refused before or instead of talking to the server.
    Client,
}

fn failure_of(error: &lettre::transport::smtp::Error) -> Failure {
    if let Some(code) = error.status() {
        Failure::Reply(u16::from(code))
    } else if error.is_timeout() {
        Failure::Timeout
    } else if error.is_tls() {
        Failure::Tls
    } else if error.is_client() {
        Failure::Client
    } else {
        // Connection, network, response parsing, transport shut down.
        Failure::Connection
    }
}

/// Classifies an SMTP failure. `detail` must already be redacted; it is kept for operators.
///
/// | failure                                          | class     |
/// |--------------------------------------------------|-----------|
/// | reply 530, 534, 535, 538 (authentication)        | Account   |
/// | other 4xx reply                                  | Transient |
/// | other 5xx reply                                  | Permanent |
/// | timeout, connection, network, TLS                | Transient |
/// | STARTTLS required but not offered, no usable AUTH | Account  |
/// | other client-side error                          | Permanent |
fn classify(failure: Failure, server: &str, detail: &str) -> MailError {
    match failure {
        Failure::Reply(530 | 534 | 535 | 538) => MailError::Account(format!(
            "SMTP {server} refused authentication (check the user name and password in the SMTP URL): {detail}"
        )),
        Failure::Reply(code) if (400..500).contains(&code) => {
            MailError::Transient(format!("SMTP {server} deferred the message: {detail}"))
        }
        Failure::Reply(_) => {
            MailError::Permanent(format!("SMTP {server} rejected the message: {detail}"))
        }
        Failure::Timeout => MailError::Transient(format!("SMTP {server} timed out: {detail}")),
        Failure::Tls => MailError::Transient(format!("SMTP {server} TLS failure: {detail}")),
        Failure::Connection => {
            MailError::Transient(format!("SMTP {server} connection failure: {detail}"))
        }
        Failure::Client if detail.contains("STARTTLS is not supported") => {
            MailError::Account(format!(
                "SMTP {server} does not offer STARTTLS, which this URL requires; nothing was sent (no credentials, no message)"
            ))
        }
        Failure::Client if detail.contains("No compatible authentication mechanism") => {
            MailError::Account(format!(
                "SMTP {server} offers no authentication mechanism lettre supports (PLAIN, LOGIN); nothing was sent"
            ))
        }
        Failure::Client => MailError::Permanent(format!(
            "SMTP {server}: message refused by the client: {detail}"
        )),
    }
}

/// Makes provider error text safe for logs: the recipient address (in any letter case) becomes
/// its masked form, the message's link disappears, and the text is cut to a bounded length.
pub(crate) fn redact(text: &str, message: &Message) -> String {
    let mut out = replace_ascii_case_insensitive(text, message.to.as_str(), &message.to.masked());
    if let Some(link) = message.action_url.as_deref().filter(|l| !l.is_empty()) {
        out = out.replace(link, "<link>");
    }
    let out = out.replace(['\r', '\n'], " ");
    if out.len() <= MAX_DETAIL_LEN {
        return out;
    }
    let mut end = MAX_DETAIL_LEN;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &out[..end])
}

/// Replaces every ASCII-case-insensitive occurrence of `needle` (ASCII lower-casing keeps byte
/// offsets, so the positions found in the lowered text are valid in the original).
fn replace_ascii_case_insensitive(haystack: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() {
        return haystack.to_owned();
    }
    let lower_haystack = haystack.to_ascii_lowercase();
    let lower_needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(haystack.len());
    let mut rest = 0;
    for (start, _) in lower_haystack.match_indices(&lower_needle) {
        if start < rest {
            continue;
        }
        out.push_str(&haystack[rest..start]);
        out.push_str(with);
        rest = start + needle.len();
    }
    out.push_str(&haystack[rest..]);
    out
}

/// The parts of an SMTP URL.
#[derive(Debug, PartialEq, Eq)]
struct ParsedUrl {
    host: String,
    port: u16,
    security: SmtpSecurity,
    credentials: Option<(String, String)>,
    hello_name: Option<String>,
}

/// Parses `scheme://[user:password@]host[:port][/ehlo-name][?tls=...]`.
///
/// The user information ends at the last `@`, so a user name that is an email address, or a
/// password with `@`, `:`, `/` or `?`, works even unencoded; `%` must be written `%25`.
fn parse_url(url: &str) -> Result<ParsedUrl, SmtpConfigError> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or(SmtpConfigError::Scheme)?;
    let implicit_tls = match scheme.to_ascii_lowercase().as_str() {
        "smtp" => false,
        "smtps" => true,
        _ => return Err(SmtpConfigError::Scheme),
    };

    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (rest, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    };

    let credentials = match userinfo {
        None => None,
        Some(userinfo) => {
            let (user, password) = userinfo
                .split_once(':')
                .ok_or(SmtpConfigError::IncompleteCredentials)?;
            let user = percent_decode(user)?;
            let password = percent_decode(password)?;
            if user.is_empty() || password.is_empty() {
                return Err(SmtpConfigError::IncompleteCredentials);
            }
            Some((user, password))
        }
    };

    let (host, port) = parse_authority(authority)?;

    let hello_name = match path.trim_matches('/') {
        "" => None,
        name if is_hostname(name) => Some(name.to_owned()),
        _ => return Err(SmtpConfigError::HelloName),
    };

    let mut tls = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "tls" {
            let shown: String = key
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .take(32)
                .collect();
            return Err(SmtpConfigError::UnknownParameter(shown));
        }
        tls = Some(match value.to_ascii_lowercase().as_str() {
            "required" => SmtpSecurity::StartTlsRequired,
            "opportunistic" => SmtpSecurity::StartTlsOpportunistic,
            "none" => SmtpSecurity::None,
            _ => return Err(SmtpConfigError::TlsValue),
        });
    }

    let security = match (implicit_tls, tls) {
        (true, None | Some(SmtpSecurity::StartTlsRequired)) => SmtpSecurity::ImplicitTls,
        (true, Some(other)) => return Err(SmtpConfigError::TlsConflict(other.as_str())),
        (false, Some(explicit)) => explicit,
        (false, None) if credentials.is_some() => SmtpSecurity::StartTlsRequired,
        (false, None) => SmtpSecurity::StartTlsOpportunistic,
    };
    if credentials.is_some()
        && matches!(
            security,
            SmtpSecurity::StartTlsOpportunistic | SmtpSecurity::None
        )
        && !is_loopback(&host)
    {
        return Err(SmtpConfigError::CleartextCredentials {
            mode: security.as_str(),
            host,
        });
    }

    let port = match port {
        Some(port) => port,
        None if implicit_tls => 465,
        None if credentials.is_some() || security == SmtpSecurity::StartTlsRequired => 587,
        None => 25,
    };

    Ok(ParsedUrl {
        host,
        port,
        security,
        credentials,
        hello_name,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the host comes back lower-case, without brackets.
fn parse_authority(authority: &str) -> Result<(String, Option<u16>), SmtpConfigError> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']').ok_or(SmtpConfigError::Host)?;
        let ip: Ipv6Addr = v6.parse().map_err(|_| SmtpConfigError::Host)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(SmtpConfigError::Port)?),
        };
        (ip.to_string(), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if !is_hostname(host) {
            return Err(SmtpConfigError::Host);
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(digits) => match digits.parse::<u16>() {
            Ok(port) if port != 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => return Err(SmtpConfigError::Port),
        },
    };
    Ok((host, port))
}

/// A DNS name or IPv4 address: ASCII letters, digits, `-`, `_` and dots, at most 253 bytes.
fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn percent_decode(input: &str) -> Result<String, SmtpConfigError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(SmtpConfigError::Encoding)?;
            let digit = |b: u8| char::from(b).to_digit(16).ok_or(SmtpConfigError::Encoding);
            let value = digit(hex[0])? * 16 + digit(hex[1])?;
            out.push(u8::try_from(value).map_err(|_| SmtpConfigError::Encoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| SmtpConfigError::Encoding)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use domain::EmailAddress;

    use super::*;

    fn sender() -> Sender {
        Sender::parse("no-reply@example.com").unwrap()
    }

    fn parsed(url: &str) -> ParsedUrl {
        parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn url_forms_choose_tls_and_ports() {
        let p = parsed("smtps://user:pass@smtp.example.com:465");
        assert_eq!(p.security, SmtpSecurity::ImplicitTls);
        assert_eq!((p.host.as_str(), p.port), ("smtp.example.com", 465));
        assert_eq!(p.credentials, Some(("user".into(), "pass".into())));

        let p = parsed("smtp://user:pass@smtp.example.com:587");
        assert_eq!(p.security, SmtpSecurity::StartTlsRequired);
        assert_eq!(p.port, 587);

        let p = parsed("smtp://127.0.0.1:1025");
        assert_eq!(p.security, SmtpSecurity::StartTlsOpportunistic);
        assert_eq!(p.credentials, None);
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 1025));

        assert_eq!(parsed("smtps://u:p@Mail.Example.COM").port, 465);
        assert_eq!(
            parsed("smtps://u:p@Mail.Example.COM").host,
            "mail.example.com"
        );
        assert_eq!(parsed("smtp://u:p@mail.example.com").port, 587);
        assert_eq!(parsed("smtp://mail.example.com").port, 25);
        assert_eq!(parsed("SMTP://mail.example.com?tls=required").port, 587);
    }

    #[test]
    fn explicit_tls_parameter_overrides() {
        assert_eq!(
            parsed("smtp://mail.example.com:25?tls=none").security,
            SmtpSecurity::None
        );
        assert_eq!(
            parsed("smtp://mail.example.com:25?tls=required").security,
            SmtpSecurity::StartTlsRequired
        );
        assert_eq!(
            parsed("smtp://u:p@mail.example.com?tls=required").security,
            SmtpSecurity::StartTlsRequired
        );
        assert_eq!(
            parsed("smtps://u:p@mail.example.com?tls=required").security,
            SmtpSecurity::ImplicitTls
        );
        assert_eq!(
            parse_url("smtps://mail.example.com?tls=none"),
            Err(SmtpConfigError::TlsConflict("none"))
        );
        assert_eq!(
            parse_url("smtp://mail.example.com?tls=maybe"),
            Err(SmtpConfigError::TlsValue)
        );
        assert_eq!(
            parse_url("smtp://mail.example.com?timeout=3"),
            Err(SmtpConfigError::UnknownParameter("timeout".into()))
        );
    }

    #[test]
    fn credentials_are_never_sent_in_clear_except_to_loopback() {
        for url in [
            "smtp://user:s3cret@mail.example.com:25?tls=none",
            "smtp://user:s3cret@mail.example.com:25?tls=opportunistic",
            "smtp://user:s3cret@10.0.0.1:25?tls=none",
        ] {
            let err = parse_url(url).unwrap_err();
            assert!(
                matches!(err, SmtpConfigError::CleartextCredentials { .. }),
                "{url}: {err}"
            );
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
        for url in [
            "smtp://user:s3cret@localhost:2525?tls=none",
            "smtp://user:s3cret@127.0.0.1:2525?tls=opportunistic",
            "smtp://user:s3cret@[::1]:2525?tls=none",
        ] {
            assert!(parsed(url).credentials.is_some(), "{url}");
        }
    }

    #[test]
    fn user_and_password_are_percent_decoded() {
        let p = parsed("smtps://me%40example.com:p%40ss%3Aw%2Frd%25@mail.example.com");
        assert_eq!(
            p.credentials,
            Some(("me@example.com".into(), "p@ss:w/rd%".into()))
        );
        // The user information ends at the last `@`: unencoded `@` in a user name works too.
        let p = parsed("smtps://me@example.com:pa?ss@mail.example.com:465");
        assert_eq!(
            p.credentials,
            Some(("me@example.com".into(), "pa?ss".into()))
        );
        assert_eq!((p.host.as_str(), p.port), ("mail.example.com", 465));
        let p = parsed("smtps://u:%E2%82%AC@mail.example.com");
        assert_eq!(p.credentials, Some(("u".into(), "€".into())));
    }

    #[test]
    fn bad_urls_give_clear_errors_without_the_password() {
        let cases = [
            ("http://mail.example.com", SmtpConfigError::Scheme),
            ("mail.example.com:25", SmtpConfigError::Scheme),
            ("smtp://", SmtpConfigError::Host),
            ("smtp://:25", SmtpConfigError::Host),
            ("smtp://mail example.com", SmtpConfigError::Host),
            ("smtp://[::1", SmtpConfigError::Host),
            ("smtp://mail.example.com:0", SmtpConfigError::Port),
            ("smtp://mail.example.com:70000", SmtpConfigError::Port),
            ("smtp://mail.example.com:+25", SmtpConfigError::Port),
            ("smtp://mail.example.com:", SmtpConfigError::Port),
            (
                "smtps://user@mail.example.com",
                SmtpConfigError::IncompleteCredentials,
            ),
            (
                "smtps://user:@mail.example.com",
                SmtpConfigError::IncompleteCredentials,
            ),
            (
                "smtps://:s3cret@mail.example.com",
                SmtpConfigError::IncompleteCredentials,
            ),
            (
                "smtps://u:s3cret%zz@mail.example.com",
                SmtpConfigError::Encoding,
            ),
            (
                "smtps://u:s3cret%+1@mail.example.com",
                SmtpConfigError::Encoding,
            ),
            (
                "smtps://u:s3cret%ff@mail.example.com",
                SmtpConfigError::Encoding,
            ),
            (
                "smtps://u:s3cret%4@mail.example.com",
                SmtpConfigError::Encoding,
            ),
            (
                "smtp://mail.example.com/bad name",
                SmtpConfigError::HelloName,
            ),
        ];
        for (url, want) in cases {
            let err = parse_url(url).unwrap_err();
            assert_eq!(err, want, "{url}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn ehlo_name_and_ipv6() {
        let p = parsed("smtp://mail.example.com:25/client.example.org");
        assert_eq!(p.hello_name.as_deref(), Some("client.example.org"));
        let p = parsed("smtp://[::1]:2525");
        assert_eq!((p.host.as_str(), p.port), ("::1", 2525));
    }

    #[test]
    fn debug_and_errors_never_show_credentials() {
        let mailer =
            SmtpMailer::from_url("smtps://someone:hunter2-s3cret@mail.example.com", sender())
                .unwrap();
        let debug = format!("{mailer:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("someone"), "{debug}");
        assert!(debug.contains("mail.example.com"), "{debug}");
        assert!(debug.contains("ImplicitTls"), "{debug}");
        assert_eq!(mailer.provider(), "smtp");
        assert!(mailer.is_authenticated());
        assert_eq!(mailer.security(), SmtpSecurity::ImplicitTls);
        assert_eq!((mailer.host(), mailer.port()), ("mail.example.com", 465));
    }

    #[test]
    fn classification_table() {
        let s = "mail.example.com:587";
        let cases = [
            (Failure::Reply(421), "transient"),
            (Failure::Reply(450), "transient"),
            (Failure::Reply(451), "transient"),
            (Failure::Reply(452), "transient"),
            (Failure::Reply(454), "transient"),
            (Failure::Reply(500), "permanent"),
            (Failure::Reply(550), "permanent"),
            (Failure::Reply(552), "permanent"),
            (Failure::Reply(553), "permanent"),
            (Failure::Reply(554), "permanent"),
            (Failure::Reply(530), "account"),
            (Failure::Reply(534), "account"),
            (Failure::Reply(535), "account"),
            (Failure::Reply(538), "account"),
            (Failure::Timeout, "transient"),
            (Failure::Tls, "transient"),
            (Failure::Connection, "transient"),
            (Failure::Client, "permanent"),
        ];
        for (failure, want) in cases {
            let got = classify(failure, s, "detail");
            let class = match &got {
                MailError::Transient(_) => "transient",
                MailError::Permanent(_) => "permanent",
                MailError::Account(_) => "account",
            };
            assert_eq!(class, want, "{failure:?}: {got}");
            assert!(got.to_string().contains(s), "{got}");
        }
        let no_starttls = classify(
            Failure::Client,
            s,
            "internal client error: STARTTLS is not supported on this server",
        );
        assert!(
            matches!(no_starttls, MailError::Account(_)),
            "{no_starttls}"
        );
        let no_auth = classify(
            Failure::Client,
            s,
            "internal client error: No compatible authentication mechanism was found",
        );
        assert!(matches!(no_auth, MailError::Account(_)), "{no_auth}");
    }

    #[test]
    fn redaction_hides_recipient_and_link() {
        let message = Message {
            to: EmailAddress::parse("Alice.Smith@example.org").unwrap(),
            subject: "s".into(),
            text: "t".into(),
            html: None,
            action_url: Some("http://x/confirm/TOKEN".into()),
        };
        let text = "permanent error (550): 5.1.1 <alice.smith@EXAMPLE.org>: Recipient \
                    address rejected; also Alice.Smith@example.org\r\nsee http://x/confirm/TOKEN";
        let out = redact(text, &message);
        assert!(!out.to_ascii_lowercase().contains("alice.smith"), "{out}");
        assert!(!out.contains("TOKEN"), "{out}");
        assert!(out.contains("A***@example.org"), "{out}");
        assert!(out.contains("5.1.1"), "{out}");
        assert!(!out.contains('\n'), "{out}");
        let long = redact(&"é".repeat(400), &message);
        assert!(long.len() <= MAX_DETAIL_LEN + 3, "{}", long.len());
    }

    /// Waits (yielding, within 5 s) until no driver task runs: every connection is then idle
    /// or closed.
    async fn settled(mailer: &SmtpMailer) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while mailer.pool.queue().drivers > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the drivers stop once no message waits");
    }

    fn message_to(to: &str) -> Message {
        Message {
            to: EmailAddress::parse(to).unwrap(),
            subject: "s".into(),
            text: "t".into(),
            html: None,
            action_url: None,
        }
    }

    /// A server that accepts connections and never says anything: the send must give up.
    #[tokio::test]
    async fn silent_server_times_out_as_transient() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn({
            let accepted = Arc::clone(&accepted);
            async move {
                let mut held = Vec::new();
                while let Ok((socket, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    held.push(socket);
                }
            }
        });
        let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), sender())
            .unwrap()
            .with_timeouts(Duration::from_secs(1), Duration::from_millis(300));
        let message = message_to("someone@example.org");
        let err = mailer.send(&message).await.unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");
        // The connection went with the timed-out send; the next send opens another one (and
        // fails the same way), and the first one's slot was given back.
        let err = mailer.send(&message).await.unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err}");
        settled(&mailer).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(mailer.pool.idle.len(), 0);
        accept.abort();
    }

    // --- the idle pool, with injected times ------------------------------------------------

    fn pool() -> IdlePool<u32> {
        IdlePool::new(POOL_FRESH_FOR, POOL_IDLE_TIMEOUT)
    }

    #[test]
    fn idle_pool_reuses_the_most_recent_connection_first() {
        let t0 = Instant::now();
        let pool = pool();
        assert_eq!(pool.take(t0), (None, vec![]));
        pool.put(1, t0);
        pool.put(2, t0 + Duration::from_millis(10));
        assert_eq!(pool.len(), 2);
        let at = t0 + Duration::from_millis(500);
        assert_eq!(pool.take(at), (Some((2, Freshness::Fresh)), vec![]));
        assert_eq!(pool.take(at), (Some((1, Freshness::Fresh)), vec![]));
        assert_eq!(pool.take(at), (None, vec![]));
    }

    #[test]
    fn idle_pool_checks_after_a_second_and_expires_after_thirty() {
        let t0 = Instant::now();
        let pool = pool();
        pool.put(1, t0);
        let just_fresh = t0 + POOL_FRESH_FOR - Duration::from_millis(1);
        assert_eq!(pool.take(just_fresh), (Some((1, Freshness::Fresh)), vec![]));

        pool.put(1, t0);
        assert_eq!(
            pool.take(t0 + POOL_FRESH_FOR),
            (Some((1, Freshness::Stale)), vec![])
        );

        pool.put(1, t0);
        let just_alive = t0 + POOL_IDLE_TIMEOUT - Duration::from_millis(1);
        assert_eq!(pool.take(just_alive), (Some((1, Freshness::Stale)), vec![]));

        pool.put(1, t0);
        assert_eq!(pool.take(t0 + POOL_IDLE_TIMEOUT), (None, vec![1]));
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn idle_pool_hands_out_expired_connections_for_closing() {
        let t0 = Instant::now();
        let pool = pool();
        pool.put(1, t0);
        pool.put(2, t0 + Duration::from_secs(1));
        pool.put(3, t0 + Duration::from_secs(20));
        // At t0 + 31 s: 1 and 2 idled past 30 s, 3 for 11 s (to be checked with NOOP).
        let (taken, expired) = pool.take(t0 + Duration::from_secs(31));
        assert_eq!(taken, Some((3, Freshness::Stale)));
        assert_eq!(expired, vec![1, 2]);
        assert_eq!(pool.len(), 0);
        // A clock that went backwards (times from different threads) counts as no idle time.
        pool.put(4, t0 + Duration::from_secs(40));
        assert_eq!(
            pool.take(t0 + Duration::from_secs(39)),
            (Some((4, Freshness::Fresh)), vec![])
        );
        pool.put(5, t0);
        pool.put(6, t0);
        assert_eq!(pool.drain(), vec![5, 6]);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn max_connections_default_and_builder() {
        let url = "smtp://127.0.0.1:2525";
        let mailer = SmtpMailer::from_url(url, sender()).unwrap();
        assert_eq!(mailer.max_connections(), DEFAULT_MAX_CONNECTIONS);
        let mailer = mailer.with_max_connections(9);
        assert_eq!(mailer.max_connections(), 9);
        let mailer = SmtpMailer::from_url(url, sender())
            .unwrap()
            .with_max_connections(0);
        assert_eq!(mailer.max_connections(), 1);
        assert!(format!("{mailer:?}").contains("max_connections: 1"));
    }

    // --- the TCP connect helper ---------------------------------------------------------------

    #[tokio::test]
    async fn connect_sets_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = connect_tcp("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{:?}", e.into_parts()));
        assert!(stream.nodelay().unwrap());
        assert_eq!(stream.peer_addr().unwrap().port(), port);
        // A name that resolves to several addresses (::1 and 127.0.0.1, in either order): the
        // helper tries them in turn and reaches the IPv4 listener.
        let stream = connect_tcp("localhost", port, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{:?}", e.into_parts()));
        assert!(stream.nodelay().unwrap());
    }

    #[tokio::test]
    async fn connect_refused_is_a_connection_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let Err(failure) = connect_tcp("127.0.0.1", port, Duration::from_secs(5)).await else {
            panic!("connected to a closed port");
        };
        let (failure, detail) = failure.into_parts();
        assert_eq!(failure, Failure::Connection, "{detail}");
        assert!(detail.contains(&format!("127.0.0.1:{port}")), "{detail}");
        let err = classify(failure, "127.0.0.1", &detail);
        assert!(matches!(err, MailError::Transient(_)), "{err}");
    }

    // --- a fake SMTP server -------------------------------------------------------------------

    /// What the fake server saw.
    #[derive(Debug, Default)]
    struct Counts {
        /// TCP connections accepted.
        connections: AtomicUsize,
        /// Connections open right now, and the most open at once.
        open: AtomicUsize,
        max_open: AtomicUsize,
        mails: AtomicUsize,
        /// Messages received in full (up to `\r\n.\r\n`).
        messages: AtomicUsize,
        noops: AtomicUsize,
        auths: AtomicUsize,
        starttls: AtomicUsize,
        /// `MAIL` commands that arrived together with the next command (not waiting for the
        /// reply).
        pipelined: AtomicUsize,
        /// Body lines received that started with `..` (a stuffed dot).
        stuffed_lines: AtomicUsize,
        /// Messages whose final `.` arrived together with the next `MAIL` command.
        content_pipelined: AtomicUsize,
        rsets: AtomicUsize,
    }

    impl Counts {
        fn get(counter: &AtomicUsize) -> usize {
            counter.load(Ordering::SeqCst)
        }
    }

    #[derive(Debug, Clone, Copy, Default)]
    struct Behaviour {
        /// Close the connection right after accepting a message.
        close_after_message: bool,
        /// Never answer the end of the first message's DATA (the message is counted).
        hang_first_data: bool,
        /// Offer STARTTLS in the EHLO reply, and refuse it with 454 when asked.
        offer_starttls: bool,
        /// Offer PIPELINING in the EHLO reply.
        offer_pipelining: bool,
        /// Refuse every `RCPT` with 550.
        refuse_rcpt: bool,
        /// Refuse with 550 the `RCPT` of addresses containing this.
        refuse_rcpt_containing: Option<&'static str>,
        /// After this many messages on a connection, answer the next command with 421 and
        /// close it.
        close_with_421_after: Option<usize>,
    }

    struct FakeServer {
        port: u16,
        counts: Arc<Counts>,
        accept: tokio::task::JoinHandle<()>,
    }

    impl Drop for FakeServer {
        fn drop(&mut self) {
            self.accept.abort();
        }
    }

    impl FakeServer {
        async fn start(behaviour: Behaviour) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let counts = Arc::new(Counts::default());
            let first_data = Arc::new(AtomicBool::new(true));
            let accept = tokio::spawn({
                let counts = Arc::clone(&counts);
                async move {
                    while let Ok((socket, _)) = listener.accept().await {
                        counts.connections.fetch_add(1, Ordering::SeqCst);
                        let open = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
                        counts.max_open.fetch_max(open, Ordering::SeqCst);
                        let counts = Arc::clone(&counts);
                        let first_data = Arc::clone(&first_data);
                        tokio::spawn(async move {
                            let _ = serve(socket, &counts, behaviour, &first_data).await;
                            counts.open.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                }
            });
            Self {
                port,
                counts,
                accept,
            }
        }

        fn url(&self) -> String {
            format!("smtp://127.0.0.1:{}", self.port)
        }

        fn mailer(&self) -> SmtpMailer {
            SmtpMailer::from_url(&self.url(), sender())
                .unwrap()
                .with_timeouts(Duration::from_secs(5), Duration::from_secs(10))
        }
    }

    /// Just enough ESMTP for lettre's client, with postfix's checks of the command order.
    async fn serve(
        socket: TcpStream,
        counts: &Counts,
        behaviour: Behaviour,
        first_data: &AtomicBool,
    ) -> std::io::Result<()> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        write.write_all(b"220 fake.test ESMTP\r\n").await?;
        let mut line = String::new();
        // `MAIL` given, and recipients accepted, in the current transaction.
        let mut mail = false;
        let mut recipients = 0;
        let mut accepted = 0;
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if behaviour.close_with_421_after == Some(accepted) {
                write
                    .write_all(b"421 4.7.0 fake.test Error: too many messages\r\n")
                    .await?;
                return Ok(());
            }
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" if behaviour.offer_starttls => {
                    b"250-fake.test\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
                }
                "EHLO" if behaviour.offer_pipelining => {
                    b"250-fake.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n"
                }
                "EHLO" => b"250-fake.test\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n",
                "STARTTLS" => {
                    counts.starttls.fetch_add(1, Ordering::SeqCst);
                    b"454 4.7.0 TLS not available\r\n"
                }
                "AUTH" => {
                    counts.auths.fetch_add(1, Ordering::SeqCst);
                    b"235 2.7.0 Authentication successful\r\n"
                }
                "MAIL" if mail => b"503 5.5.1 Error: nested MAIL command\r\n",
                "MAIL" => {
                    counts.mails.fetch_add(1, Ordering::SeqCst);
                    if read.buffer().starts_with(b"RCPT") {
                        counts.pipelined.fetch_add(1, Ordering::SeqCst);
                    }
                    mail = true;
                    b"250 2.1.0 OK\r\n"
                }
                "RCPT" if !mail => b"503 5.5.1 Error: need MAIL command\r\n",
                "RCPT"
                    if behaviour.refuse_rcpt
                        || behaviour
                            .refuse_rcpt_containing
                            .is_some_and(|part| line.contains(part)) =>
                {
                    b"550 5.1.1 No such user\r\n"
                }
                "RCPT" => {
                    recipients += 1;
                    b"250 2.1.5 OK\r\n"
                }
                "RSET" => {
                    counts.rsets.fetch_add(1, Ordering::SeqCst);
                    (mail, recipients) = (false, 0);
                    b"250 2.0.0 OK\r\n"
                }
                "DATA" if recipients == 0 => b"554 5.5.1 Error: no valid recipients\r\n",
                "NOOP" => {
                    counts.noops.fetch_add(1, Ordering::SeqCst);
                    b"250 2.0.0 OK\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 2.0.0 Bye\r\n").await?;
                    return Ok(());
                }
                "DATA" => {
                    write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    loop {
                        line.clear();
                        if read.read_line(&mut line).await? == 0 {
                            return Ok(());
                        }
                        if line == ".\r\n" {
                            break;
                        }
                        if line.starts_with("..") {
                            counts.stuffed_lines.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    counts.messages.fetch_add(1, Ordering::SeqCst);
                    if read.buffer().starts_with(b"MAIL") {
                        counts.content_pipelined.fetch_add(1, Ordering::SeqCst);
                    }
                    (mail, recipients) = (false, 0);
                    accepted += 1;
                    if behaviour.hang_first_data && first_data.swap(false, Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    write.write_all(b"250 2.0.0 Queued\r\n").await?;
                    if behaviour.close_after_message {
                        return Ok(());
                    }
                    continue;
                }
                _ => b"500 5.5.2 Unknown command\r\n",
            };
            write.write_all(reply).await?;
        }
    }

    #[test]
    fn dot_stuffing_doubles_a_dot_at_the_start_of_each_line() {
        assert_eq!(dot_stuffed("a\r\nb"), "a\r\nb\r\n.\r\n");
        assert_eq!(
            dot_stuffed(".a\r\n.\r\nb.c\r\n..d\r\n"),
            "..a\r\n..\r\nb.c\r\n...d\r\n\r\n.\r\n"
        );
        // Only after CRLF, as lettre does it.
        assert_eq!(dot_stuffed("a\n.b\r.c"), "a\n.b\r.c\r\n.\r\n");
    }

    /// With PIPELINING offered, MAIL, RCPT and DATA go out together, the body is dot-stuffed,
    /// and the connection is reused; without it, every command waits for its reply.
    #[tokio::test]
    async fn pipelines_mail_rcpt_data_only_when_the_server_offers_it() {
        for offer_pipelining in [true, false] {
            let server = FakeServer::start(Behaviour {
                offer_pipelining,
                ..Behaviour::default()
            })
            .await;
            let mailer = server.mailer();
            for i in 0..5 {
                let mut message = message_to(&format!("user{i}@example.org"));
                message.text = ".starts with a dot\n..and two\nnone.".into();
                mailer.send(&message).await.unwrap();
            }
            let counts = &server.counts;
            assert_eq!(Counts::get(&counts.messages), 5);
            assert_eq!(Counts::get(&counts.connections), 1);
            let expected = if offer_pipelining { 5 } else { 0 };
            assert_eq!(
                Counts::get(&counts.pipelined),
                expected,
                "{offer_pipelining}"
            );
            assert!(
                Counts::get(&counts.stuffed_lines) >= 10,
                "two stuffed lines per message"
            );
        }
    }

    /// A refused recipient in a pipelined send is a permanent failure; `DATA` is refused after
    /// it, and `RSET` clears the transaction so that the connection is kept.
    #[tokio::test]
    async fn pipelined_refusal_is_permanent_and_the_connection_is_reset_and_kept() {
        let server = FakeServer::start(Behaviour {
            offer_pipelining: true,
            refuse_rcpt: true,
            ..Behaviour::default()
        })
        .await;
        let mailer = server.mailer();
        for _ in 0..2 {
            let err = mailer
                .send(&message_to("nobody@example.org"))
                .await
                .unwrap_err();
            assert!(matches!(err, MailError::Permanent(_)), "{err:?}");
            assert!(err.to_string().contains("550"), "{err}");
        }
        settled(&mailer).await;
        let counts = &server.counts;
        assert_eq!(Counts::get(&counts.messages), 0);
        assert_eq!(Counts::get(&counts.rsets), 2);
        assert_eq!(Counts::get(&counts.connections), 1);
        assert_eq!(mailer.pool.idle.len(), 1);
    }

    /// Sends to each address at once (the sends are queued before the first driver runs, on
    /// this single-threaded test runtime) and returns each result, in order.
    async fn send_all(
        mailer: &Arc<SmtpMailer>,
        to: &[impl AsRef<str>],
    ) -> Vec<Result<Sent, MailError>> {
        let sends: Vec<_> = to
            .iter()
            .map(|to| {
                let mailer = Arc::clone(mailer);
                let message = message_to(to.as_ref());
                tokio::spawn(async move { mailer.send(&message).await })
            })
            .collect();
        let mut results = Vec::new();
        for send in sends {
            results.push(send.await.unwrap());
        }
        results
    }

    /// Sends 10 messages at once through one connection to a server with `behaviour` that
    /// offers PIPELINING, checks that every one was accepted, and waits for the driver to stop.
    async fn ten_sends_on_one_connection(behaviour: Behaviour) -> (FakeServer, Arc<SmtpMailer>) {
        let server = FakeServer::start(Behaviour {
            offer_pipelining: true,
            ..behaviour
        })
        .await;
        let mailer = Arc::new(server.mailer().with_max_connections(1));
        let to = users(10);
        for result in send_all(&mailer, &to).await {
            result.unwrap();
        }
        settled(&mailer).await;
        (server, mailer)
    }

    /// Under load each message's content goes out in the same write as the next message's
    /// `MAIL`, `RCPT` and `DATA`: one round trip per message.
    #[tokio::test]
    async fn a_message_content_and_the_next_commands_share_one_write() {
        let (server, mailer) = ten_sends_on_one_connection(Behaviour::default()).await;
        let counts = &server.counts;
        assert_eq!(Counts::get(&counts.messages), 10);
        assert_eq!(Counts::get(&counts.connections), 1);
        // Every content but the last one's, which had no message after it.
        assert_eq!(Counts::get(&counts.content_pipelined), 9);
        assert_eq!(Counts::get(&counts.rsets), 0);
        assert_eq!(mailer.pool.idle.len(), 1);
    }

    /// A refused recipient among pipelined messages fails that message only: the others go
    /// out on the same connection.
    #[tokio::test]
    async fn a_refused_recipient_fails_only_its_own_message() {
        let server = FakeServer::start(Behaviour {
            offer_pipelining: true,
            refuse_rcpt_containing: Some("refused"),
            ..Behaviour::default()
        })
        .await;
        let mailer = Arc::new(server.mailer().with_max_connections(1));
        let to = [
            "a@example.org",
            "refused1@example.org",
            "b@example.org",
            "c@example.org",
            "refused2@example.org",
            "d@example.org",
        ];
        let results = send_all(&mailer, &to).await;
        for (to, result) in to.iter().zip(&results) {
            if to.starts_with("refused") {
                let err = result.as_ref().unwrap_err();
                assert!(matches!(err, MailError::Permanent(_)), "{to}: {err}");
                assert!(!err.to_string().contains("refused1@"), "{err}");
            } else {
                assert!(result.is_ok(), "{to}: {result:?}");
            }
        }
        settled(&mailer).await;
        let counts = &server.counts;
        assert_eq!(Counts::get(&counts.messages), 4);
        assert_eq!(Counts::get(&counts.rsets), 2);
        assert_eq!(Counts::get(&counts.connections), 1);
    }

    /// A server that closes the connection after each message, before reading the next
    /// message's commands (sent with the content): that message goes out on a new connection,
    /// and no send fails.
    #[tokio::test]
    async fn messages_cut_off_by_a_closed_connection_go_out_on_a_new_one() {
        let (server, _mailer) = ten_sends_on_one_connection(Behaviour {
            close_after_message: true,
            ..Behaviour::default()
        })
        .await;
        let counts = &server.counts;
        assert_eq!(Counts::get(&counts.messages), 10);
        assert_eq!(Counts::get(&counts.connections), 10);
    }

    /// A 421 "closing" reply to a message's commands is that message's (transient) answer, not
    /// tried again by the mailer: the worker's retry policy counts every attempt the server
    /// saw. The messages after it go out on a new connection.
    #[tokio::test]
    async fn a_closing_reply_fails_its_message_and_the_next_ones_reconnect() {
        let server = FakeServer::start(Behaviour {
            offer_pipelining: true,
            close_with_421_after: Some(3),
            ..Behaviour::default()
        })
        .await;
        let mailer = Arc::new(server.mailer().with_max_connections(1));
        let to = users(10);
        let results = send_all(&mailer, &to).await;
        let failed: Vec<usize> = (0..10).filter(|i| results[*i].is_err()).collect();
        // Connections of 3 messages each: the 4th and the 8th got the 421.
        assert_eq!(failed, [3, 7]);
        for i in failed {
            let err = results[i].as_ref().unwrap_err();
            assert!(matches!(err, MailError::Transient(_)), "{err}");
            assert!(err.to_string().contains("421"), "{err}");
        }
        settled(&mailer).await;
        assert_eq!(Counts::get(&server.counts.messages), 8);
        assert_eq!(Counts::get(&server.counts.connections), 3);
    }

    /// When the server stops answering, the message whose content went out and the one whose
    /// commands went with it both time out, and neither is sent again by the mailer (the
    /// worker's retry decides).
    #[tokio::test]
    async fn a_timed_out_exchange_is_not_sent_again() {
        let server = FakeServer::start(Behaviour {
            offer_pipelining: true,
            hang_first_data: true,
            ..Behaviour::default()
        })
        .await;
        let mailer = Arc::new(
            server
                .mailer()
                .with_max_connections(1)
                .with_timeouts(Duration::from_secs(5), Duration::from_millis(300)),
        );
        let results = send_all(&mailer, &["a@example.org", "b@example.org"]).await;
        for result in results {
            let err = result.unwrap_err();
            assert!(err.to_string().contains("timed out"), "{err}");
        }
        settled(&mailer).await;
        let counts = &server.counts;
        // The server hung after the first content, before reading the second `MAIL`.
        assert_eq!(Counts::get(&counts.messages), 1);
        assert_eq!(Counts::get(&counts.connections), 1);
        assert_eq!(mailer.pool.idle.len(), 0);
    }

    #[tokio::test]
    async fn sequential_sends_share_one_connection_without_noop() {
        let server = FakeServer::start(Behaviour::default()).await;
        let mailer = server.mailer();
        for i in 0..20 {
            let sent = mailer
                .send(&message_to(&format!("user{i}@example.org")))
                .await
                .unwrap();
            assert!(sent.provider_message_id.is_some());
        }
        let counts = &server.counts;
        assert_eq!(Counts::get(&counts.messages), 20);
        assert_eq!(Counts::get(&counts.connections), 1);
        assert_eq!(
            Counts::get(&counts.noops),
            0,
            "reuse within 1 s sends no NOOP"
        );
        assert_eq!(mailer.pool.idle.len(), 1);
    }

    /// Sends `n` messages at once through `mailer` and checks that every one was accepted.
    async fn send_concurrently(mailer: &Arc<SmtpMailer>, n: usize) {
        for result in send_all(mailer, &users(n)).await {
            result.unwrap();
        }
    }

    /// `user0@example.org`, `user1@example.org`, …
    fn users(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("user{i}@example.org")).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sends_open_at_most_max_connections() {
        let server = FakeServer::start(Behaviour::default()).await;
        let mailer = Arc::new(server.mailer().with_max_connections(4));
        send_concurrently(&mailer, 40).await;
        let counts = &server.counts;
        assert_eq!(Counts::get(&counts.messages), 40);
        let connections = Counts::get(&counts.connections);
        assert!((1..=4).contains(&connections), "{connections} connections");
        assert!(Counts::get(&counts.max_open) <= 4);
        settled(&mailer).await;
        assert_eq!(
            mailer.pool.idle.len(),
            connections,
            "every connection is back"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_connection_serves_concurrent_sends_in_turn() {
        let server = FakeServer::start(Behaviour::default()).await;
        let mailer = Arc::new(server.mailer().with_max_connections(1));
        send_concurrently(&mailer, 10).await;
        assert_eq!(Counts::get(&server.counts.messages), 10);
        assert_eq!(Counts::get(&server.counts.connections), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_not_reused_after_the_failure() {
        let server = FakeServer::start(Behaviour {
            close_after_message: true,
            ..Behaviour::default()
        })
        .await;
        let mailer = server.mailer();
        let message = message_to("someone@example.org");
        mailer.send(&message).await.unwrap();
        assert_eq!(mailer.pool.idle.len(), 1, "lettre cannot see the close yet");
        // Reused within 1 s without a check: the dead connection fails this send, transiently.
        let err = mailer.send(&message).await.unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err}");
        assert!(!err.to_string().contains("someone@"), "{err}");
        assert_eq!(
            mailer.pool.idle.len(),
            0,
            "the failed connection was dropped"
        );
        // The next send opens a new connection and succeeds.
        mailer.send(&message).await.unwrap();
        assert_eq!(Counts::get(&server.counts.connections), 2);
        assert_eq!(Counts::get(&server.counts.messages), 2);
    }

    #[tokio::test]
    async fn a_stale_connection_is_checked_with_noop_and_replaced_when_dead() {
        let server = FakeServer::start(Behaviour {
            close_after_message: true,
            ..Behaviour::default()
        })
        .await;
        let mut mailer = server.mailer();
        // Every idle connection counts as idle for more than a second.
        Arc::get_mut(&mut mailer.pool).unwrap().idle.fresh_for = Duration::ZERO;
        let message = message_to("someone@example.org");
        mailer.send(&message).await.unwrap();
        // The NOOP finds the connection closed, so this send opens a new one.
        mailer.send(&message).await.unwrap();
        assert_eq!(Counts::get(&server.counts.connections), 2);
        assert_eq!(Counts::get(&server.counts.messages), 2);
    }

    #[tokio::test]
    async fn a_stale_live_connection_is_reused_after_one_noop() {
        let server = FakeServer::start(Behaviour::default()).await;
        let mut mailer = server.mailer();
        Arc::get_mut(&mut mailer.pool).unwrap().idle.fresh_for = Duration::ZERO;
        let message = message_to("someone@example.org");
        for _ in 0..3 {
            mailer.send(&message).await.unwrap();
        }
        assert_eq!(Counts::get(&server.counts.connections), 1);
        assert_eq!(Counts::get(&server.counts.noops), 2);
        assert_eq!(Counts::get(&server.counts.messages), 3);
    }

    #[tokio::test]
    async fn an_expired_connection_is_closed_not_reused() {
        let server = FakeServer::start(Behaviour::default()).await;
        let mut mailer = server.mailer();
        // Every idle connection counts as idle for more than 30 s.
        Arc::get_mut(&mut mailer.pool).unwrap().idle.idle_timeout = Duration::ZERO;
        let message = message_to("someone@example.org");
        mailer.send(&message).await.unwrap();
        mailer.send(&message).await.unwrap();
        assert_eq!(Counts::get(&server.counts.connections), 2);
        assert_eq!(Counts::get(&server.counts.noops), 0);
        assert_eq!(mailer.pool.idle.len(), 1);
    }

    #[tokio::test]
    async fn a_timed_out_connection_is_dropped_and_the_next_send_reconnects() {
        let server = FakeServer::start(Behaviour {
            hang_first_data: true,
            ..Behaviour::default()
        })
        .await;
        let mailer = server
            .mailer()
            .with_timeouts(Duration::from_secs(5), Duration::from_millis(500));
        let message = message_to("someone@example.org");
        let err = mailer.send(&message).await.unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");
        assert_eq!(mailer.pool.idle.len(), 0);
        mailer.send(&message).await.unwrap();
        assert_eq!(Counts::get(&server.counts.connections), 2);
        assert_eq!(Counts::get(&server.counts.messages), 2);
    }

    #[tokio::test]
    async fn credentials_authenticate_once_per_connection() {
        let server = FakeServer::start(Behaviour::default()).await;
        let url = format!("smtp://user:s3cret@127.0.0.1:{}?tls=none", server.port);
        let mailer = SmtpMailer::from_url(&url, sender()).unwrap();
        let message = message_to("someone@example.org");
        for _ in 0..3 {
            mailer.send(&message).await.unwrap();
        }
        assert_eq!(Counts::get(&server.counts.auths), 1);
        assert_eq!(Counts::get(&server.counts.connections), 1);
        assert_eq!(Counts::get(&server.counts.messages), 3);
    }

    #[tokio::test]
    async fn required_starttls_not_offered_sends_nothing() {
        let server = FakeServer::start(Behaviour::default()).await;
        let url = format!("smtp://user:s3cret@127.0.0.1:{}", server.port);
        let mailer = SmtpMailer::from_url(&url, sender()).unwrap();
        assert_eq!(mailer.security(), SmtpSecurity::StartTlsRequired);
        let err = mailer
            .send(&message_to("someone@example.org"))
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::Account(_)), "{err}");
        assert!(err.to_string().contains("STARTTLS"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert_eq!(Counts::get(&server.counts.auths), 0);
        assert_eq!(Counts::get(&server.counts.mails), 0);
        assert_eq!(mailer.pool.idle.len(), 0);
    }

    #[tokio::test]
    async fn opportunistic_starttls_is_tried_when_offered() {
        let server = FakeServer::start(Behaviour {
            offer_starttls: true,
            ..Behaviour::default()
        })
        .await;
        let mailer = server.mailer();
        assert_eq!(mailer.security(), SmtpSecurity::StartTlsOpportunistic);
        let err = mailer
            .send(&message_to("someone@example.org"))
            .await
            .unwrap_err();
        // The fake server refuses STARTTLS with 454: a deferral.
        assert!(matches!(err, MailError::Transient(_)), "{err}");
        assert!(err.to_string().contains("454"), "{err}");
        assert_eq!(Counts::get(&server.counts.starttls), 1);
        assert_eq!(Counts::get(&server.counts.mails), 0);
    }

    #[tokio::test]
    async fn implicit_tls_against_a_plain_server_fails_transiently() {
        let server = FakeServer::start(Behaviour::default()).await;
        let url = format!("smtps://127.0.0.1:{}", server.port);
        let mailer = SmtpMailer::from_url(&url, sender())
            .unwrap()
            .with_timeouts(Duration::from_secs(5), Duration::from_secs(5));
        let err = mailer
            .send(&message_to("someone@example.org"))
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err}");
        assert_eq!(Counts::get(&server.counts.connections), 1);
        assert_eq!(Counts::get(&server.counts.mails), 0);
        assert_eq!(mailer.pool.idle.len(), 0);
    }
}
