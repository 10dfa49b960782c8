//! What an SMTP failure means for the retry policy.

use std::time::Duration;

use crate::MailError;

/// Why a send failed, before classification.
pub(super) enum SendFailure {
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
    pub(super) fn into_parts(self) -> (Failure, String) {
        match self {
            Self::Smtp(error) => (failure_of(&error), error.to_string()),
            Self::Local(failure, detail) => (failure, detail),
        }
    }
}

/// What went wrong with an SMTP send, reduced to what the retry policy needs (lettre's errors
/// cannot be constructed outside lettre, so classification works on this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
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

pub(super) fn failure_of(error: &lettre::transport::smtp::Error) -> Failure {
    if let Some(code) = error.status() {
        Failure::Reply(u16::from(code))
    } else if error.is_timeout() {
        Failure::Timeout
    } else if error.is_tls() || rustls_failure(error) {
        Failure::Tls
    } else if error.is_client() {
        Failure::Client
    } else {
        // Connection, network, response parsing, transport shut down.
        Failure::Connection
    }
}

/// Whether a rustls error is behind `error`: lettre reports a refused certificate, a name
/// mismatch or a broken handshake as a connection error whose `io::Error` wraps it.
fn rustls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(current) = next {
        if current.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        next = current.source();
    }
    false
}

/// Classifies an SMTP failure. `detail` must already be redacted; it is kept for operators.
///
/// | failure                                          | class     |
/// |--------------------------------------------------|-----------|
/// | reply 530, 534, 535, 538 (authentication)        | Account   |
/// | other 4xx reply                                  | Transient |
/// | other 5xx reply                                  | Permanent |
/// | timeout, connection, network                     | Transient |
/// | TLS (certificate, host name, handshake)          | Account   |
/// | STARTTLS required but not offered, no usable AUTH | Account  |
/// | other client-side error                          | Permanent |
pub(super) fn classify(failure: Failure, server: &str, detail: &str) -> MailError {
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
        // Nothing can succeed until an operator acts (a CA to trust, a host name to fix, a
        // server that does not speak TLS on this port): pause sending, keep the attempts.
        Failure::Tls => MailError::Account(format!(
            "SMTP {server} TLS failure (check SMTP_TLS_CA_FILE, the host name and the port in the SMTP URL): {detail}"
        )),
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

pub(super) fn timed_out(timeout: Duration) -> (Failure, String) {
    (
        Failure::Timeout,
        format!("no answer within {} s", timeout.as_secs_f32()),
    )
}

/// For a message whose content went out on a connection that then broke before answering.
pub(super) fn unanswered() -> (Failure, String) {
    (
        Failure::Connection,
        "the connection closed before the server answered".into(),
    )
}
