//! The SMTP transport: lettre's pooled async client, configured from one URL.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::mime::{Sender, build_mime};
use crate::{MailError, Mailer, Message, Sent};

/// Bound on establishing the TCP connection (lettre applies it to the connect only).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one whole send: getting a connection (connect, TLS, EHLO, AUTH) and the
/// MAIL/RCPT/DATA exchange. lettre's async client has no per-command timeout, so without this
/// a server that stops answering would hang the send forever.
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept for reuse (more may be open while sends run concurrently).
const POOL_MAX_IDLE: u32 = 8;
/// Idle connections are closed after this; servers often drop them after a minute or so.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
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

/// Sends through an SMTP server with lettre's pooled async client
/// (`AsyncSmtpTransport<Tokio1Executor>`), configured from a URL; see the crate docs for the
/// URL forms and TLS rules.
///
/// The connection pool is created on the first send (it needs a Tokio runtime) and is replaced
/// after a send times out, so a connection left mid-transaction is never reused. Drop the
/// mailer inside the runtime: lettre's pool closes its connections on a spawned task.
pub struct SmtpMailer {
    builder: AsyncSmtpTransportBuilder,
    sender: Sender,
    host: String,
    port: u16,
    security: SmtpSecurity,
    authenticated: bool,
    connect_timeout: Duration,
    send_timeout: Duration,
    pool: Mutex<PoolSlot>,
}

struct PoolSlot {
    /// Bumped whenever the transport is thrown away.
    generation: u64,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl fmt::Debug for SmtpMailer {
    /// Shows where mail goes and how, never the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("authenticated", &self.authenticated)
            .field("sender", &self.sender.to_header_value())
            .field("connect_timeout", &self.connect_timeout)
            .field("send_timeout", &self.send_timeout)
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
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_parameters()?),
            SmtpSecurity::StartTlsRequired => Tls::Required(tls_parameters()?),
            SmtpSecurity::StartTlsOpportunistic => Tls::Opportunistic(tls_parameters()?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&parsed.host)
            .port(parsed.port)
            .tls(tls)
            .timeout(Some(DEFAULT_CONNECT_TIMEOUT))
            .pool_config(
                PoolConfig::new()
                    .max_size(POOL_MAX_IDLE)
                    .idle_timeout(POOL_IDLE_TIMEOUT),
            );
        if let Some(name) = &parsed.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        let authenticated = parsed.credentials.is_some();
        if let Some((user, password)) = parsed.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self {
            builder,
            sender,
            host: parsed.host,
            port: parsed.port,
            security: parsed.security,
            authenticated,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            pool: Mutex::new(PoolSlot {
                generation: 0,
                transport: None,
            }),
        })
    }

    /// Replaces the default timeouts (10 s to connect, 30 s for a whole send).
    pub fn with_timeouts(mut self, connect: Duration, send: Duration) -> Self {
        self.builder = self.builder.timeout(Some(connect));
        self.connect_timeout = connect;
        self.send_timeout = send;
        let slot = self.pool.get_mut().unwrap_or_else(PoisonError::into_inner);
        slot.generation += 1;
        slot.transport = None;
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    /// Whether the URL carried credentials (sent with AUTH after TLS is up).
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    fn transport(&self) -> (u64, AsyncSmtpTransport<Tokio1Executor>) {
        let mut slot = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = slot.generation;
        let transport = slot
            .transport
            .get_or_insert_with(|| self.builder.clone().build())
            .clone();
        (generation, transport)
    }

    /// Throws the pool away (unless someone already did): its connections may be in the middle
    /// of a transaction, and lettre would otherwise hand them out again.
    fn discard_pool(&self, generation: u64) {
        let mut slot = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.generation == generation {
            slot.generation += 1;
            slot.transport = None;
        }
    }

    fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &Message) -> Result<Sent, MailError> {
        let message_id = self.sender.new_message_id();
        let email = build_mime(&self.sender, message, &message_id)?;
        let (generation, transport) = self.transport();
        let result = tokio::time::timeout(self.send_timeout, transport.send(email)).await;
        match result {
            Ok(Ok(_response)) => {
                tracing::debug!(to = %message.to.masked(), server = %self.server(), "email accepted by the SMTP server");
                Ok(Sent {
                    provider_message_id: Some(message_id),
                })
            }
            Ok(Err(error)) => {
                let detail = redact(&error.to_string(), message);
                Err(classify(failure_of(&error), &self.server(), &detail))
            }
            Err(_elapsed) => {
                self.discard_pool(generation);
                Err(classify(
                    Failure::Timeout,
                    &self.server(),
                    &format!("no answer within {} s", self.send_timeout.as_secs_f32()),
                ))
            }
        }
    }

    fn provider(&self) -> &'static str {
        "smtp"
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

    /// A server that accepts connections and never says anything: the send must give up.
    #[tokio::test]
    async fn silent_server_times_out_as_transient() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), sender())
            .unwrap()
            .with_timeouts(Duration::from_secs(1), Duration::from_millis(300));
        let message = Message {
            to: EmailAddress::parse("someone@example.org").unwrap(),
            subject: "s".into(),
            text: "t".into(),
            html: None,
            action_url: None,
        };
        let err = mailer.send(&message).await.unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");
        // The pool was thrown away; the next send gets a fresh one and fails the same way.
        let err = mailer.send(&message).await.unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err}");
        accept.abort();
    }
}
