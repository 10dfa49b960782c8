//! The SMTP transport: our own small connection pool over lettre's `AsyncSmtpConnection`,
//! configured from one URL.
//!
//! Why not lettre's `AsyncSmtpTransport` and its pool: lettre writes a message's body and the
//! final `\r\n.\r\n` in two writes, on a socket without `TCP_NODELAY`, so every message waited
//! for the server's delayed ACK (Nagle's algorithm); its pool sent a NOOP (one more round trip)
//! every time it reused a connection, and it did not bound the number of open connections (only
//! idle ones). Here we open the TCP connection ourselves with `TCP_NODELAY`,
//! reuse a recently used connection as is, and never have more than `max_connections` open.
//!
//! When the server offers PIPELINING (RFC 2920), a message's `MAIL FROM`, `RCPT TO` and `DATA`
//! go in one write, and its content goes in the same write as the next waiting message's
//! commands: under load, one write and one round trip per message instead of two (see
//! [`Driver`]). Servers that do not offer it get one command at a time, through lettre.
//!
//! One concern a file: the URL in `url`, the connections in `pool`, the pipelined exchange in
//! `pipeline`, and what a failure means for the retry policy in `classify`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::sync::oneshot;

use crate::mime::{Sender, format_signed_mime};
use crate::redact::redact;
use crate::{MailError, Mailer, Message, Sent};
use classify::{Failure, classify, timed_out, unanswered};
use pool::{Endpoint, Pending, Pool, TlsMode};
use url::{ParsedUrl, parse_url};

mod classify;
mod pipeline;
mod pool;
mod url;

/// Bound on establishing one TCP connection (per resolved address).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on one whole send: waiting for a pool slot, getting a connection (connect, TLS, EHLO,
/// AUTH) and the MAIL/RCPT/DATA exchange. lettre's async client has no per-command timeout, so
/// without this a server that stops answering would hang the send forever.
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections open at once (in use or idle), unless `with_max_connections` says otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 4;

/// How long past its send timeout a send waits for its driver's answer before giving up on
/// it (the driver bounds its own waits by the send timeout; this only guards against a bug).
const ANSWER_GRACE: Duration = Duration::from_secs(5);

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
    /// Not `smtp://` or `smtps://`.
    #[error("SMTP URL: the scheme must be smtp:// or smtps://")]
    Scheme,
    /// No host, or one that is not valid.
    #[error("SMTP URL: missing or invalid host")]
    Host,
    /// A port outside 1 to 65535.
    #[error("SMTP URL: invalid port (expected 1-65535)")]
    Port,
    /// A user name without a password, or the reverse.
    #[error(
        "SMTP URL: credentials need both a user name and a password (smtp://user:password@host)"
    )]
    IncompleteCredentials,
    /// The user name or password is not valid percent-encoded UTF-8.
    #[error(
        "SMTP URL: the user name or password is not valid percent-encoded UTF-8 (write `%` as `%25`)"
    )]
    Encoding,
    /// A query parameter other than `tls`.
    #[error("SMTP URL: unsupported parameter `{0}` (only `tls` is supported)")]
    UnknownParameter(String),
    /// A `tls` value other than `required`, `opportunistic` or `none`.
    #[error("SMTP URL: `tls` must be `required`, `opportunistic` or `none`")]
    TlsValue,
    /// `smtps://` with a `tls` value that turns TLS down.
    #[error("SMTP URL: smtps:// always uses TLS; `tls={0}` contradicts it")]
    TlsConflict(&'static str),
    /// Credentials that could travel in clear text to a host that is not loopback.
    #[error(
        "SMTP URL: refusing `tls={mode}` with credentials for {host}: the password could travel in clear text; use smtps:// or tls=required (tls=opportunistic or tls=none with credentials is allowed only for a loopback host)"
    )]
    CleartextCredentials {
        /// The `tls` mode asked for.
        mode: &'static str,
        /// The SMTP host.
        host: String,
    },
    /// A path that is not a valid EHLO name.
    #[error("SMTP URL: the path must be a valid EHLO name (a domain name)")]
    HelloName,
    /// TLS for the host cannot be set up.
    #[error("SMTP: could not set up TLS for {host}: {reason}")]
    Tls {
        /// The SMTP host.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The CA file cannot be read or holds no certificate.
    #[error("SMTP: the CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A CA file with a URL that uses no TLS.
    #[error("SMTP: a CA file is set, but the SMTP URL uses no TLS (tls=none)")]
    CaWithoutTls,
}

/// An SMTP server's URL, parsed and checked (see [`SmtpMailer::from_url`] for its forms):
/// where to connect, how it is protected, and the credentials. `Debug` never shows the user
/// name or the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(ParsedUrl);

impl SmtpUrl {
    /// Parses `url`; the error never contains the password.
    pub fn parse(url: &str) -> Result<Self, SmtpConfigError> {
        parse_url(url).map(Self)
    }

    /// The SMTP server's host name or address.
    pub fn host(&self) -> &str {
        &self.0.host
    }

    /// The SMTP server's port.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// How the connection is secured (implicit TLS, STARTTLS required or opportunistic, none).
    pub fn security(&self) -> SmtpSecurity {
        self.0.security
    }

    /// Whether the URL carries credentials (sent with AUTH after TLS is up).
    pub fn is_authenticated(&self) -> bool {
        self.0.credentials.is_some()
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.0.host)
            .field("port", &self.0.port)
            .field("security", &self.0.security)
            .field("authenticated", &self.0.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// How a connection to `host` is protected under `security`: TLS verified against the
/// system's CA store (lettre's `rustls-native-certs`) and `extra_ca`, if given.
fn tls_mode(
    host: &str,
    security: SmtpSecurity,
    extra_ca: Option<Certificate>,
) -> Result<TlsMode, SmtpConfigError> {
    if security == SmtpSecurity::None {
        return match extra_ca {
            Some(_) => Err(SmtpConfigError::CaWithoutTls),
            None => Ok(TlsMode::Plain),
        };
    }
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(certificate) = extra_ca {
        builder = builder.add_root_certificate(certificate);
    }
    let parameters = builder.build_rustls().map_err(|e| SmtpConfigError::Tls {
        host: host.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(match security {
        SmtpSecurity::ImplicitTls => TlsMode::Implicit(parameters),
        SmtpSecurity::StartTlsRequired => TlsMode::StartTlsRequired(parameters),
        SmtpSecurity::StartTlsOpportunistic | SmtpSecurity::None => {
            TlsMode::StartTlsOpportunistic(parameters)
        }
    })
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
        Self::new(SmtpUrl::parse(url)?, sender)
    }

    /// Configures a transport from a parsed URL. Nothing is connected yet.
    pub fn new(url: SmtpUrl, sender: Sender) -> Result<Self, SmtpConfigError> {
        let parsed = url.0;
        let tls = tls_mode(&parsed.host, parsed.security, None)?;
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

    /// Trusts the CA certificates of the PEM file at `path` besides the system's store (for a
    /// relay whose certificate a private CA signed). The server's certificate and name are
    /// verified either way. Fails if the file cannot be read or holds no certificate, or if
    /// the URL uses no TLS.
    pub fn with_tls_ca_file(self, path: &Path) -> Result<Self, SmtpConfigError> {
        let ca_error = |reason: String| SmtpConfigError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let count = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_error(format!("not a PEM certificate file: {e}")))?
            .len();
        if count == 0 {
            return Err(ca_error("it holds no PEM certificate".into()));
        }
        let certificate =
            Certificate::from_pem(&pem).map_err(|e| ca_error(format!("unusable: {e}")))?;
        let tls = tls_mode(&self.pool.endpoint.host, self.security, Some(certificate))?;
        Ok(self.reconfigured(|endpoint| endpoint.tls = tls))
    }

    /// The most connections open to the server at once.
    pub fn max_connections(&self) -> usize {
        self.pool.endpoint.max_connections
    }

    /// The SMTP server's host name or address.
    pub fn host(&self) -> &str {
        &self.pool.endpoint.host
    }

    /// The SMTP server's port.
    pub fn port(&self) -> u16 {
        self.pool.endpoint.port
    }

    /// How the connection is secured (implicit TLS, STARTTLS required or opportunistic, none).
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
        let (envelope, bytes) = format_signed_mime(&self.sender, message, &message_id)?;
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

#[cfg(test)]
mod tests;
