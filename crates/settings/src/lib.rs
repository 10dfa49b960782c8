#![doc = include_str!("../README.md")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use domain::ConfirmationTokens;
use mailer::{FileMailer, Mailer, Sender, SesMailer, SmtpMailer};
use queue::{EmbeddedQueue, JobQueue, RedisQueue, RedisQueueConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use store::SeaStore;

pub mod metrics;
pub mod telemetry;

/// The defaults, compiled in so the binaries run from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Used in `local` when no SECRET_KEY is set. Never accepted in production.
pub const DEVELOPMENT_SECRET_KEY: &str = "development-only-secret-key-do-not-use-in-production";

/// The shortest ADMIN_TOKEN accepted (the web crate's `MIN_ADMIN_TOKEN_LEN`).
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The shortest SECRET_KEY production accepts.
pub const MIN_SECRET_KEY_LEN: usize = 32;

const DEFAULT_MAIL_FROM: &str = "Confirmation Service <no-reply@example.com>";

/// A configuration problem, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error(
        "the database at DATABASE_URL is not migrated ({0} pending migration(s)); run `server migrate` first"
    )]
    NotMigrated(usize),
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

/// Every setting, from `config/default.toml`, then `config/<APP_ENV>.toml` (optional), then
/// environment variables. See the configuration reference in the README.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub app_env: AppEnv,
    pub listen_addr: String,
    pub base_url: String,
    pub database_url: SecretString,
    pub redis_url: Option<SecretString>,
    pub secret_key: Option<SecretString>,
    /// Older keys, comma-separated, oldest first; they verify links but never sign.
    pub secret_key_fallbacks: SecretString,
    pub token_max_age: u64,
    pub mailer: MailerKind,
    pub mail_from: Option<String>,
    pub ses_email_source: Option<String>,
    pub ses_region: Option<String>,
    pub mail_file_dir: PathBuf,
    pub show_users: Option<bool>,
    pub template_dir: Option<PathBuf>,
    pub worker_concurrency: usize,
    /// `smtp://user:pass@host:587` (STARTTLS), `smtps://…:465`, or `smtp://host:1025`.
    pub smtp_url: Option<SecretString>,
    /// Most SMTP connections one worker keeps open (sends wait for a free one).
    pub smtp_max_connections: usize,
    /// SES configuration set to send with (event publishing, dedicated IPs), if any.
    pub ses_configuration_set: Option<String>,
    /// How long a stopping worker waits for emails in flight, e.g. `30s`.
    pub worker_shutdown_timeout: String,
    /// How often the sweeper looks for messages that are due or stuck, e.g. `15s`.
    pub sweep_interval: String,
    /// How long a worker holds a message it is sending before another may take it over
    /// (after a crash), e.g. `2m`. Must exceed the longest send.
    pub send_lease: String,
    /// First retry delay after a transient failure, e.g. `30s`; doubles per attempt.
    pub retry_base_delay: String,
    /// Longest delay between two attempts, e.g. `2h`.
    pub retry_max_delay: String,
    /// Attempts in all before a message is dead.
    pub retry_max_attempts: u32,
    /// Messages per second one worker may send, across its tasks; 0 = no limit.
    pub mail_max_rate: f64,
    /// Longest time one SMTP send may take, e.g. `30s`.
    pub smtp_timeout: String,
    /// How long a worker stops sending after an account-level provider failure, e.g. `5m`.
    pub account_pause: String,
    /// Least time between two confirmation emails to one address, e.g. `60s`.
    pub resend_cooldown: String,
    /// Most confirmation emails to one address in 24 hours (registration's included); at least 1.
    pub resend_daily_cap: u32,
    /// Form posts (`POST /`, `POST /resend`) per minute per client IP; 0 = no limit.
    pub rate_limit_per_ip: u32,
    /// Header in which a trusted reverse proxy passes the client IP (e.g. `X-Forwarded-For`,
    /// `X-Real-IP`); unset = the TCP peer address. Set it only when clients cannot reach the
    /// server except through that proxy.
    pub trusted_proxy_header: Option<String>,
    /// Longest time one HTTP request may take, body included, e.g. `10s`; then 408.
    pub request_timeout: String,
    /// Where `worker run` serves `/healthz`, `/readyz` and `/metrics` (e.g. `0.0.0.0:9102`);
    /// unset = no listener.
    pub worker_metrics_addr: Option<String>,
    /// Token for the delivery dashboard at `/admin` (Bearer, or the Basic password); unset = no
    /// dashboard. At least 16 characters.
    pub admin_token: Option<SecretString>,
    /// `text` or `json`. Logging reads LOG_FORMAT itself before the settings load
    /// ([`telemetry::init`]); it is here to be validated and documented with the rest.
    pub log_format: String,
}

/// The retry policy settings: first delay, cap, attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub base: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

/// The keys to sign and verify links with, and whether the development key is in use.
#[derive(Debug)]
pub struct SigningKeys {
    pub tokens: ConfirmationTokens,
    pub using_development_key: bool,
}

impl Settings {
    /// Loads from the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        Self::load_from(std::env::vars().collect())
    }

    /// Loads from the given environment variables (tests pass their own).
    pub fn load_from(env: HashMap<String, String>) -> Result<Self, SettingsError> {
        // Empty variables count as unset, so `SECRET_KEY=` in a compose file means "none".
        let env: HashMap<String, String> = env
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let app_env = env
            .get("APP_ENV")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_else(|| "local".to_owned());
        if !matches!(app_env.as_str(), "local" | "production") {
            return Err(SettingsError::Invalid(format!(
                "APP_ENV must be `local` or `production`, not {app_env:?}"
            )));
        }
        let settings: Self = config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .add_source(config::File::with_name(&format!("config/{app_env}")).required(false))
            .add_source(config::Environment::default().source(Some(env)))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |msg: String| Err(SettingsError::Invalid(msg));
        if self.listen_addr.parse::<SocketAddr>().is_err() {
            return invalid(format!(
                "LISTEN_ADDR {:?} is not an address like 127.0.0.1:5003",
                self.listen_addr
            ));
        }
        let base = &self.base_url;
        if !(base.starts_with("http://") || base.starts_with("https://"))
            || base.contains(['?', '#', ' '])
        {
            return invalid(format!(
                "BASE_URL {base:?} must be an http(s) URL without query or fragment"
            ));
        }
        if self.token_max_age == 0 {
            return invalid("TOKEN_MAX_AGE must be at least 1 second".into());
        }
        if self.worker_concurrency == 0 || self.worker_concurrency > 1024 {
            return invalid("WORKER_CONCURRENCY must be between 1 and 1024".into());
        }
        if self.smtp_max_connections == 0 || self.smtp_max_connections > 256 {
            return invalid("SMTP_MAX_CONNECTIONS must be between 1 and 256".into());
        }
        self.sender()?;
        self.signing_keys()?;
        self.shutdown_timeout()?;
        self.sweep_interval()?;
        self.send_lease()?;
        self.retry()?;
        self.mail_max_rate()?;
        self.smtp_timeout()?;
        self.account_pause()?;
        self.resend_policy()?;
        self.trusted_proxy_header()?;
        self.request_timeout()?;
        self.worker_metrics_addr()?;
        if let Some(token) = &self.admin_token
            && token.expose_secret().chars().count() < MIN_ADMIN_TOKEN_LEN
        {
            return invalid(format!(
                "ADMIN_TOKEN is too short: use at least {MIN_ADMIN_TOKEN_LEN} random characters"
            ));
        }
        self.log_format()?;
        if self.mailer == MailerKind::Smtp && self.smtp_url.is_none() {
            return invalid("MAILER=smtp needs SMTP_URL (e.g. smtp://user:pass@host:587)".into());
        }
        Ok(())
    }

    /// Whether the home page lists registered users.
    pub fn show_users(&self) -> bool {
        self.show_users.unwrap_or(self.app_env == AppEnv::Local)
    }

    /// The From mailbox: MAIL_FROM, else the tutorial's SES_EMAIL_SOURCE, else a placeholder.
    pub fn sender(&self) -> Result<Sender, SettingsError> {
        let from = self
            .mail_from
            .as_deref()
            .or(self.ses_email_source.as_deref())
            .unwrap_or(DEFAULT_MAIL_FROM);
        Sender::parse(from).map_err(|e| SettingsError::Invalid(e.to_string()))
    }

    /// The confirmation-token codec: fallbacks (oldest first) verify, SECRET_KEY signs.
    ///
    /// In production a missing or short SECRET_KEY is an error; in local the development key
    /// is used (the caller should warn).
    pub fn signing_keys(&self) -> Result<SigningKeys, SettingsError> {
        let (keys, using_development_key) = self.secret_keys()?;
        let raw: Vec<&str> = keys.iter().map(|k| k.expose_secret()).collect();
        let tokens =
            ConfirmationTokens::new(&raw).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        Ok(SigningKeys {
            tokens,
            using_development_key,
        })
    }

    /// The raw key list, oldest first (SECRET_KEY_FALLBACKS, then SECRET_KEY), and whether the
    /// development key stands in for a missing SECRET_KEY. Same rules as [`Self::signing_keys`].
    pub fn secret_keys(&self) -> Result<(Vec<SecretString>, bool), SettingsError> {
        let primary = self
            .secret_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned());
        let (primary, using_development_key) = match (primary, self.app_env) {
            (Some(key), AppEnv::Production) if key.chars().count() < MIN_SECRET_KEY_LEN => {
                return Err(SettingsError::Invalid(format!(
                    "SECRET_KEY is too short for production: use at least {MIN_SECRET_KEY_LEN} random characters \
                     (keep an old short key in SECRET_KEY_FALLBACKS so links already sent keep working)"
                )));
            }
            (Some(key), _) => (key, false),
            (None, AppEnv::Production) => {
                return Err(SettingsError::Invalid(format!(
                    "SECRET_KEY is required when APP_ENV=production (at least {MIN_SECRET_KEY_LEN} random characters)"
                )));
            }
            (None, AppEnv::Local) => (DEVELOPMENT_SECRET_KEY.to_owned(), true),
        };
        let mut keys: Vec<SecretString> = self
            .secret_key_fallbacks
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(SecretString::from)
            .collect();
        keys.push(SecretString::from(primary));
        Ok((keys, using_development_key))
    }

    /// Connects to DATABASE_URL. SQLite (the embedded default) is migrated on the spot;
    /// PostgreSQL must have been migrated with `server migrate`.
    pub async fn connect_store(&self) -> Result<SeaStore, SettingsError> {
        let store = SeaStore::connect(self.database_url.expose_secret()).await?;
        if store.is_sqlite() {
            store.migrate().await?;
        } else {
            let pending = store.pending_migrations().await?;
            if !pending.is_empty() {
                return Err(SettingsError::NotMigrated(pending.len()));
            }
        }
        Ok(store)
    }

    /// Connects to DATABASE_URL without checking migrations (for `server migrate`).
    pub async fn connect_store_unchecked(&self) -> Result<SeaStore, SettingsError> {
        Ok(SeaStore::connect(self.database_url.expose_secret()).await?)
    }

    /// The mailer MAILER selects.
    pub async fn build_mailer(&self) -> Result<Arc<dyn Mailer>, SettingsError> {
        let sender = self.sender()?;
        Ok(match self.mailer {
            MailerKind::File => Arc::new(FileMailer::new(&self.mail_file_dir, sender)),
            MailerKind::Smtp => {
                let url = self.smtp_url.as_ref().ok_or_else(|| {
                    SettingsError::Invalid(
                        "MAILER=smtp needs SMTP_URL (e.g. smtp://user:pass@host:587)".into(),
                    )
                })?;
                let timeout = self.smtp_timeout()?;
                let mailer = SmtpMailer::from_url(url.expose_secret(), sender)
                    .map_err(|e| SettingsError::Invalid(format!("SMTP_URL: {e}")))?
                    .with_timeouts(timeout.min(Duration::from_secs(10)), timeout)
                    .with_max_connections(self.smtp_max_connections);
                Arc::new(mailer)
            }
            MailerKind::Ses => Arc::new(
                SesMailer::from_env(
                    self.ses_region.clone(),
                    sender,
                    self.ses_configuration_set.clone(),
                )
                .await,
            ),
        })
    }

    /// Whether delivery runs inside `server` (no REDIS_URL) or in a separate `worker`.
    pub fn embedded_queue(&self) -> bool {
        self.redis_url.is_none()
    }

    /// The queue REDIS_URL selects: Redis Streams, or the embedded queue when unset.
    pub async fn build_queue(&self) -> Result<Arc<dyn JobQueue>, SettingsError> {
        match &self.redis_url {
            None => Ok(Arc::new(EmbeddedQueue::new())),
            Some(url) => {
                let config = RedisQueueConfig {
                    // A job handed out and never acknowledged goes to another worker when the
                    // message's lease would have expired anyway.
                    claim_idle: self.send_lease()?,
                    ..RedisQueueConfig::default()
                };
                let queue = RedisQueue::connect(url.expose_secret(), config)
                    .await
                    .map_err(|e| SettingsError::Invalid(format!("REDIS_URL: {e}")))?;
                Ok(Arc::new(queue))
            }
        }
    }

    /// WORKER_SHUTDOWN_TIMEOUT as a duration.
    pub fn shutdown_timeout(&self) -> Result<Duration, SettingsError> {
        duration_setting("WORKER_SHUTDOWN_TIMEOUT", &self.worker_shutdown_timeout)
    }

    /// SWEEP_INTERVAL as a duration (at least 100 ms).
    pub fn sweep_interval(&self) -> Result<Duration, SettingsError> {
        let interval = duration_setting("SWEEP_INTERVAL", &self.sweep_interval)?;
        if interval < Duration::from_millis(100) {
            return Err(SettingsError::Invalid(
                "SWEEP_INTERVAL must be at least 100ms".into(),
            ));
        }
        Ok(interval)
    }

    /// RETRY_BASE_DELAY, RETRY_MAX_DELAY and RETRY_MAX_ATTEMPTS.
    pub fn retry(&self) -> Result<RetrySettings, SettingsError> {
        let base = duration_setting("RETRY_BASE_DELAY", &self.retry_base_delay)?;
        let max = duration_setting("RETRY_MAX_DELAY", &self.retry_max_delay)?;
        if base.is_zero() || max < base {
            return Err(SettingsError::Invalid(
                "RETRY_BASE_DELAY must be above zero and at most RETRY_MAX_DELAY".into(),
            ));
        }
        if self.retry_max_attempts == 0 {
            return Err(SettingsError::Invalid(
                "RETRY_MAX_ATTEMPTS must be at least 1".into(),
            ));
        }
        Ok(RetrySettings {
            base,
            max,
            max_attempts: self.retry_max_attempts,
        })
    }

    /// MAIL_MAX_RATE, `None` when unlimited.
    pub fn mail_max_rate(&self) -> Result<Option<f64>, SettingsError> {
        let rate = self.mail_max_rate;
        if !rate.is_finite() || rate < 0.0 {
            return Err(SettingsError::Invalid(
                "MAIL_MAX_RATE must be a number of messages per second, 0 for no limit".into(),
            ));
        }
        Ok((rate > 0.0).then_some(rate))
    }

    /// SMTP_TIMEOUT as a duration.
    pub fn smtp_timeout(&self) -> Result<Duration, SettingsError> {
        duration_setting("SMTP_TIMEOUT", &self.smtp_timeout)
    }

    /// ACCOUNT_PAUSE as a duration.
    pub fn account_pause(&self) -> Result<Duration, SettingsError> {
        duration_setting("ACCOUNT_PAUSE", &self.account_pause)
    }

    /// RESEND_COOLDOWN and RESEND_DAILY_CAP.
    pub fn resend_policy(&self) -> Result<store::ResendPolicy, SettingsError> {
        let cooldown = duration_setting("RESEND_COOLDOWN", &self.resend_cooldown)?;
        if self.resend_daily_cap == 0 {
            return Err(SettingsError::Invalid(
                "RESEND_DAILY_CAP must be at least 1 (the registration's own email counts)".into(),
            ));
        }
        let cooldown = chrono::TimeDelta::from_std(cooldown)
            .map_err(|_| SettingsError::Invalid("RESEND_COOLDOWN is too long".into()))?;
        Ok(store::ResendPolicy {
            cooldown,
            daily_cap: self.resend_daily_cap,
        })
    }

    /// TRUSTED_PROXY_HEADER, lower-cased, if set: a header name (letters, digits, `-`, `_`).
    pub fn trusted_proxy_header(&self) -> Result<Option<String>, SettingsError> {
        let Some(name) = self.trusted_proxy_header.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SettingsError::Invalid(format!(
                "TRUSTED_PROXY_HEADER {name:?} is not a header name like X-Forwarded-For"
            )));
        }
        Ok(Some(name.to_ascii_lowercase()))
    }

    /// REQUEST_TIMEOUT as a duration (at least 1 s).
    pub fn request_timeout(&self) -> Result<Duration, SettingsError> {
        let timeout = duration_setting("REQUEST_TIMEOUT", &self.request_timeout)?;
        if timeout < Duration::from_secs(1) {
            return Err(SettingsError::Invalid(
                "REQUEST_TIMEOUT must be at least 1s".into(),
            ));
        }
        Ok(timeout)
    }

    /// LOG_FORMAT: `text` or `json`.
    pub fn log_format(&self) -> Result<telemetry::LogFormat, SettingsError> {
        telemetry::LogFormat::parse(&self.log_format).map_err(SettingsError::Invalid)
    }

    /// WORKER_METRICS_ADDR, if set: an address like `0.0.0.0:9102`.
    pub fn worker_metrics_addr(&self) -> Result<Option<SocketAddr>, SettingsError> {
        self.worker_metrics_addr
            .as_deref()
            .map(|addr| {
                addr.trim().parse::<SocketAddr>().map_err(|_| {
                    SettingsError::Invalid(format!(
                        "WORKER_METRICS_ADDR {addr:?} is not an address like 0.0.0.0:9102"
                    ))
                })
            })
            .transpose()
    }

    /// SEND_LEASE as a duration (at least 1 s).
    pub fn send_lease(&self) -> Result<Duration, SettingsError> {
        let lease = duration_setting("SEND_LEASE", &self.send_lease)?;
        if lease < Duration::from_secs(1) {
            return Err(SettingsError::Invalid(
                "SEND_LEASE must be at least 1s".into(),
            ));
        }
        Ok(lease)
    }
}

fn duration_setting(name: &str, value: &str) -> Result<Duration, SettingsError> {
    parse_duration(value).map_err(|e| SettingsError::Invalid(format!("{name}: {e}")))
}

/// Parses a duration such as `500ms`, `30s`, `15m`, `2h` or `1d` (a bare number means seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 15m, 2h or 1d"))?;
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit (use ms, s, m, h or d)"
            ));
        }
    };
    value
        .checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests;
