#![doc = include_str!("../README.md")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use domain::{AdminToken, ConfirmationTokens, ResendPolicy, RetryPolicy};
use http::HeaderName;
use mailer::{Sender, SmtpUrl};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

pub mod metrics;
mod raw;
pub mod telemetry;

pub use telemetry::LogFormat;

/// The defaults, compiled in so the binaries run from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Used in `local` when no SECRET_KEY is set. Never accepted in production.
pub const DEVELOPMENT_SECRET_KEY: &str = "development-only-secret-key-do-not-use-in-production";

/// The shortest SECRET_KEY production accepts.
pub const MIN_SECRET_KEY_LEN: usize = 32;

/// The shortest ADMIN_TOKEN production accepts (local accepts
/// [`domain::MIN_ADMIN_TOKEN_LEN`]).
pub const MIN_PRODUCTION_ADMIN_TOKEN_LEN: usize = 32;

/// A configuration problem, worded for the operator: it names the variable, never shows a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The layers could not be read or a value has the wrong type (`config` says which key).
    #[error("configuration: {0}")]
    Load(String),
    /// A value was read but is not acceptable.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Where the service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    Local,
    Production,
}

/// How email leaves the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailerKind {
    File,
    Smtp,
    Ses,
}

/// Every setting, read once from `config/default.toml`, then `config/<APP_ENV>.toml`
/// (optional), then environment variables, and checked as it is read: a value here is a value
/// the service can use. The reference is `docs/configuration.md`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub app_env: AppEnv,
    /// LISTEN_ADDR: where the server listens.
    pub listen_addr: SocketAddr,
    /// BASE_URL: the public root URL, which links and cookies are built on.
    pub base_url: Url,
    /// DATABASE_URL.
    pub database_url: SecretString,
    /// REDIS_URL; `None`: the embedded queue, and delivery inside `server`.
    pub redis_url: Option<SecretString>,
    /// REDIS_TLS_CA_FILE: a PEM file of CA certificates trusted for `rediss://` besides the
    /// system's (only with a `rediss://` REDIS_URL).
    pub redis_tls_ca_file: Option<PathBuf>,
    /// The signing keys, oldest first (SECRET_KEY_FALLBACKS, then SECRET_KEY, which signs).
    pub secret_keys: Vec<SecretString>,
    /// No SECRET_KEY was set (local only): the development key signs. The binaries warn.
    pub using_development_key: bool,
    /// The confirmation-token codec over [`Self::secret_keys`].
    pub tokens: ConfirmationTokens,
    /// TOKEN_MAX_AGE: how long a confirmation link stays valid.
    pub token_max_age: Duration,
    /// TEMPLATE_DIR: files overriding the embedded page and email templates.
    pub template_dir: Option<PathBuf>,
    /// WORKER_METRICS_ADDR: where `worker run` serves `/healthz`, `/readyz` and `/metrics`.
    pub worker_metrics_addr: Option<SocketAddr>,
    /// OPS_ADDR: where `server` serves `/metrics` and the detailed `/readyz`; `None`: no
    /// metrics anywhere (the public port answers 404 on `/metrics`).
    pub ops_addr: Option<SocketAddr>,
    /// LOG_FORMAT (logging reads it itself before the settings load, see
    /// [`telemetry::init`]; it is here to be validated with the rest).
    pub log_format: LogFormat,
    /// WEBHOOK_URL, WEBHOOK_SECRET and WEBHOOK_TIMEOUT; `None`: no webhooks.
    pub webhooks: Option<WebhookSettings>,
    pub mail: MailSettings,
    pub delivery: DeliverySettings,
    pub web: WebSettings,
}

/// How email is sent.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// MAILER.
    pub kind: MailerKind,
    /// MAIL_FROM, else the tutorial's SES_EMAIL_SOURCE, else a placeholder.
    pub from: Sender,
    /// SMTP_URL, parsed; always there with `MAILER=smtp`.
    pub smtp_url: Option<SmtpUrl>,
    /// SMTP_TLS_CA_FILE: a PEM file of CA certificates trusted for the SMTP server's TLS besides
    /// the system's (only with an SMTP_URL that uses TLS).
    pub smtp_tls_ca_file: Option<PathBuf>,
    /// SMTP_MAX_CONNECTIONS (1 to 256).
    pub smtp_max_connections: usize,
    /// SMTP_TIMEOUT: the longest one SMTP send may take.
    pub smtp_timeout: Duration,
    /// SES_REGION; `None`: the standard AWS chain's region.
    pub ses_region: Option<String>,
    /// SES_CONFIGURATION_SET.
    pub ses_configuration_set: Option<String>,
    /// SES_FEEDBACK_QUEUE_URL: the SQS queue SES's bounce and complaint notifications arrive on
    /// (through SNS); the process that delivers reads it. `None`: no feedback loop.
    pub ses_feedback_queue_url: Option<String>,
    /// MAIL_FILE_DIR.
    pub file_dir: PathBuf,
    /// MAIL_MAX_RATE in messages per second; `None`: no limit.
    pub max_rate: Option<f64>,
}

/// Where the events go and how they are signed.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// WEBHOOK_URL: the endpoints, each an http or https URL (in its normalised form).
    pub endpoints: Vec<String>,
    /// WEBHOOK_SECRET: signs with every secret (the first is the newest).
    pub signer: webhooks::Signer,
    /// WEBHOOK_TIMEOUT: the longest one post may take (100 ms to 5 min).
    pub timeout: Duration,
}

/// How delivery runs.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// WORKER_CONCURRENCY (1 to 1024).
    pub concurrency: usize,
    /// WORKER_SHUTDOWN_TIMEOUT.
    pub shutdown_timeout: Duration,
    /// SWEEP_INTERVAL (at least 100 ms).
    pub sweep_interval: Duration,
    /// SEND_LEASE (at least 1 s).
    pub send_lease: TimeDelta,
    /// RETRY_BASE_DELAY, RETRY_MAX_DELAY and RETRY_MAX_ATTEMPTS.
    pub retry: RetryPolicy,
    /// ACCOUNT_PAUSE.
    pub account_pause: TimeDelta,
    /// SENT_RETENTION: how long sent (and cancelled) messages are kept; `None` (`0`): for ever.
    pub sent_retention: Option<TimeDelta>,
    /// DEAD_RETENTION: how long dead messages are kept; `None` (`0`): for ever.
    pub dead_retention: Option<TimeDelta>,
    /// UNCONFIRMED_TTL: how long an unconfirmed account is kept; `None` (`0`): for ever.
    pub unconfirmed_ttl: Option<TimeDelta>,
    /// REMINDER_AFTER: when an unconfirmed account gets its one reminder; `None` (`0`): never.
    /// Shorter than UNCONFIRMED_TTL.
    pub reminder_after: Option<TimeDelta>,
}

/// What the web pages do.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// SHOW_USERS; by default on in local, off in production.
    pub show_users: bool,
    /// RESEND_COOLDOWN and RESEND_DAILY_CAP.
    pub resend: ResendPolicy,
    /// RATE_LIMIT_PER_IP; 0: no limit.
    pub rate_limit_per_ip: u32,
    /// LINK_RATE_LIMIT_PER_IP: requests to the emailed links per minute per client IP; 0: no
    /// limit.
    pub link_rate_limit_per_ip: u32,
    /// TRUSTED_PROXY_HEADER, lower-cased.
    pub trusted_proxy_header: Option<HeaderName>,
    /// REQUEST_TIMEOUT (at least 1 s).
    pub request_timeout: Duration,
    /// HEADER_READ_TIMEOUT (at least 1 s): the longest a client may take to send its request
    /// headers, and a keep-alive connection may stay idle.
    pub header_read_timeout: Duration,
    /// MAX_CONNECTIONS: open connections on the public port at most.
    pub max_connections: usize,
    /// CONFIRM_ON_GET: opening the link confirms (the tutorial's behaviour) instead of showing
    /// a page with a button.
    pub confirm_on_get: bool,
    /// ADMIN_TOKEN; `None`: no dashboard.
    pub admin_token: Option<AdminToken>,
    /// API_KEYS: the keys of the JSON API (`/api/v1`); `None`: no API.
    pub api_keys: Option<domain::ApiKeys>,
    /// CONFIRMED_REDIRECT_URL with `email_confirmed=1` in its query: where a confirmation
    /// sends the visitor; `None`: the home page with its message.
    pub confirmed_redirect: Option<String>,
    /// ALLOWED_REDIRECT_ORIGINS: the origins a registration through the API may name as its
    /// confirmation's redirect (`https://app.example.com`); empty: none.
    pub allowed_redirect_origins: Vec<String>,
}

impl Settings {
    /// Loads from the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        Self::load_from(std::env::vars().collect())
    }

    /// Loads from the given environment variables (tests pass their own).
    pub fn load_from(env: HashMap<String, String>) -> Result<Self, SettingsError> {
        raw::Raw::load(env)?.parse()
    }

    /// Whether delivery runs inside `server` (no REDIS_URL) or in a separate `worker`.
    pub fn embedded_queue(&self) -> bool {
        self.redis_url.is_none()
    }

    /// Whether pages are served over https (cookies are then marked `Secure`).
    pub fn https(&self) -> bool {
        self.base_url.scheme() == "https"
    }

    /// The signing keys as plain strings, oldest first, for the codecs that take them.
    pub fn secret_key_strs(&self) -> Vec<&str> {
        self.secret_keys
            .iter()
            .map(ExposeSecret::expose_secret)
            .collect()
    }
}

/// Parses a duration such as `500ms`, `30s`, `15m`, `2h` or `1d` with `humantime` (which also
/// reads `1h 30m` or `2hours`); a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{text:?} is too long"));
    }
    humantime::parse_duration(text).map_err(|error| match error {
        humantime::DurationError::UnknownUnit { .. } => {
            format!("{text:?} has an unknown unit (use ms, s, m, h or d)")
        }
        humantime::DurationError::NumberOverflow => format!("{text:?} is too long"),
        _ => format!("{text:?} is not a duration like 500ms, 30s, 15m, 2h or 1d"),
    })
}

#[cfg(test)]
mod tests;
