//! `SMTP_URL`: `scheme://[user:password@]host[:port][/ehlo-name][?tls=...]`, read with the
//! `url` crate (as lettre's own `connection_url` does) and the rules this service adds: TLS
//! by scheme and credentials, and credentials only over TLS (or to a loopback host).

use std::net::IpAddr;

use percent_encoding::percent_decode_str;
use url::{Host, Url};

use super::{SmtpConfigError, SmtpSecurity};

/// The parts of an SMTP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ParsedUrl {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) security: SmtpSecurity,
    pub(super) credentials: Option<(String, String)>,
    pub(super) hello_name: Option<String>,
}

/// Parses an SMTP URL; see the crate docs for its forms.
///
/// The user information ends at the last `@` before the host, so a user name that is an email
/// address works unencoded; `%`, `/`, `?` and `#` in a user name or password must be
/// percent-encoded (`%25`, `%2F`, `%3F`, `%23`).
pub(super) fn parse_url(text: &str) -> Result<ParsedUrl, SmtpConfigError> {
    let text = text.trim();
    // Before `Url::parse`, which would take `host:25` for a URL of scheme `host`.
    let (scheme, _) = text.split_once("://").ok_or(SmtpConfigError::Scheme)?;
    let implicit_tls = match scheme.to_ascii_lowercase().as_str() {
        "smtp" => false,
        "smtps" => true,
        _ => return Err(SmtpConfigError::Scheme),
    };
    let url = Url::parse(text).map_err(|error| match error {
        url::ParseError::InvalidPort => SmtpConfigError::Port,
        _ => SmtpConfigError::Host,
    })?;

    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, Some(password)) if !user.is_empty() && !password.is_empty() => {
            Some((decode(user)?, decode(password)?))
        }
        _ => return Err(SmtpConfigError::IncompleteCredentials),
    };

    let host = match url.host() {
        Some(Host::Domain(name)) if is_hostname(name) => name.to_ascii_lowercase(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(SmtpConfigError::Host),
    };
    let port = match url.port() {
        Some(0) => return Err(SmtpConfigError::Port),
        port => port,
    };

    let hello_name = match url.path().trim_matches('/') {
        "" => None,
        name if is_hostname(name) => Some(name.to_owned()),
        _ => return Err(SmtpConfigError::HelloName),
    };

    let mut tls = None;
    for (key, value) in url.query_pairs() {
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

/// A percent-encoded user name or password, decoded. A `%` not followed by two hex digits is
/// refused rather than taken literally: it is almost always a password pasted unencoded.
fn decode(encoded: &str) -> Result<String, SmtpConfigError> {
    let malformed = encoded.match_indices('%').any(|(at, _)| {
        encoded
            .get(at + 1..at + 3)
            .is_none_or(|hex| !hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if malformed {
        return Err(SmtpConfigError::Encoding);
    }
    percent_decode_str(encoded)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| SmtpConfigError::Encoding)
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
