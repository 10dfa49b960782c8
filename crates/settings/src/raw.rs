//! The settings as the layers give them (strings and numbers, names as the variables), and
//! their one parse into [`Settings`]. Every check lives here, so a bad value stops the start
//! with one error naming its variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use domain::{AdminToken, ConfirmationTokens, ResendPolicy, RetryPolicy};
use http::HeaderName;
use mailer::{DkimSigner, Sender, SmtpUrl};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::{
    AppEnv, DEFAULT_TOML, DEVELOPMENT_SECRET_KEY, DeliverySettings, LogFormat,
    MIN_PRODUCTION_ADMIN_TOKEN_LEN, MIN_SECRET_KEY_LEN, MailSettings, MailerKind, Settings,
    SettingsError, WebSettings, WebhookSettings, parse_duration,
};

const DEFAULT_MAIL_FROM: &str = "Confirmation Service <no-reply@example.com>";

/// The layers' values, one field per variable (lower case), before any check beyond its type.
#[derive(Deserialize)]
pub(crate) struct Raw {
    app_env: AppEnv,
    listen_addr: String,
    base_url: String,
    database_url: SecretString,
    redis_url: Option<SecretString>,
    redis_tls_ca_file: Option<PathBuf>,
    secret_key: Option<SecretString>,
    secret_key_fallbacks: SecretString,
    token_max_age: u64,
    mailer: MailerKind,
    mail_from: Option<String>,
    mail_return_path: Option<String>,
    ses_email_source: Option<String>,
    ses_region: Option<String>,
    mail_file_dir: PathBuf,
    show_users: Option<bool>,
    template_dir: Option<PathBuf>,
    worker_concurrency: usize,
    smtp_url: Option<SecretString>,
    smtp_tls_ca_file: Option<PathBuf>,
    smtp_max_connections: usize,
    ses_configuration_set: Option<String>,
    ses_feedback_queue_url: Option<String>,
    dkim_domain: Option<String>,
    dkim_selector: Option<String>,
    dkim_private_key_file: Option<PathBuf>,
    worker_shutdown_timeout: String,
    sweep_interval: String,
    send_lease: String,
    retry_base_delay: String,
    retry_max_delay: String,
    retry_max_attempts: u32,
    mail_max_rate: f64,
    smtp_timeout: String,
    account_pause: String,
    sent_retention: String,
    dead_retention: String,
    unconfirmed_ttl: String,
    reminder_after: String,
    resend_cooldown: String,
    resend_daily_cap: u32,
    rate_limit_per_ip: u32,
    trusted_proxy_header: Option<String>,
    request_timeout: String,
    header_read_timeout: String,
    max_connections: usize,
    confirm_on_get: bool,
    link_rate_limit_per_ip: u32,
    ops_addr: Option<String>,
    worker_metrics_addr: Option<String>,
    admin_token: Option<SecretString>,
    api_keys: Option<SecretString>,
    confirmed_redirect_url: Option<String>,
    allowed_redirect_origins: Option<String>,
    webhook_url: Option<String>,
    webhook_secret: Option<SecretString>,
    webhook_timeout: String,
    log_format: String,
}

fn invalid<T>(message: impl Into<String>) -> Result<T, SettingsError> {
    Err(SettingsError::Invalid(message.into()))
}

fn duration(name: &str, value: &str) -> Result<Duration, SettingsError> {
    parse_duration(value).map_err(|e| SettingsError::Invalid(format!("{name}: {e}")))
}

/// A retention period: `0` keeps for ever (`None`); otherwise at least an hour, so that a
/// typo (`30` meaning days, read as seconds) cannot delete what is still in use.
fn retention(name: &str, value: &str) -> Result<Option<TimeDelta>, SettingsError> {
    let keep = duration(name, value)?;
    if keep.is_zero() {
        return Ok(None);
    }
    if keep < Duration::from_secs(3600) {
        return invalid(format!(
            "{name} must be 0 (keep for ever) or at least 1h, like 30d"
        ));
    }
    time_delta(name, keep).map(Some)
}

/// REMINDER_AFTER: `0` is off; else at least a minute and shorter than the account lives.
fn reminder(
    name: &str,
    value: &str,
    ttl: Option<TimeDelta>,
) -> Result<Option<TimeDelta>, SettingsError> {
    let after = duration(name, value)?;
    if after.is_zero() {
        return Ok(None);
    }
    if after < Duration::from_secs(60) {
        return invalid(format!(
            "{name} must be 0 (no reminder) or at least 1m, like 24h"
        ));
    }
    let after = time_delta(name, after)?;
    if ttl.is_some_and(|ttl| after >= ttl) {
        return invalid(format!(
            "{name} must be shorter than UNCONFIRMED_TTL: the account is deleted before its reminder"
        ));
    }
    Ok(Some(after))
}

fn time_delta(name: &str, value: Duration) -> Result<TimeDelta, SettingsError> {
    TimeDelta::from_std(value).map_err(|_| SettingsError::Invalid(format!("{name} is too long")))
}

impl Raw {
    /// The layers, merged: defaults, `config/<APP_ENV>.toml`, then `env` (empty values count as
    /// unset, so `SECRET_KEY=` in a compose file means "none").
    pub(crate) fn load(env: HashMap<String, String>) -> Result<Self, SettingsError> {
        let env: HashMap<String, String> = env
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let app_env = env
            .get("APP_ENV")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_else(|| "local".to_owned());
        if !matches!(app_env.as_str(), "local" | "production") {
            return invalid(format!(
                "APP_ENV must be `local` or `production`, not {app_env:?}"
            ));
        }
        config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .add_source(config::File::with_name(&format!("config/{app_env}")).required(false))
            .add_source(config::Environment::default().source(Some(env)))
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| SettingsError::Load(e.to_string()))
    }

    /// Every value checked and turned into its type, in the order the variables are listed.
    pub(crate) fn parse(self) -> Result<Settings, SettingsError> {
        let Ok(listen_addr) = self.listen_addr.parse::<SocketAddr>() else {
            return invalid(format!(
                "LISTEN_ADDR {:?} is not an address like 127.0.0.1:5003",
                self.listen_addr
            ));
        };
        let base_url = parse_base_url(&self.base_url)?;
        if self.redis_tls_ca_file.is_some() {
            let tls = self
                .redis_url
                .as_ref()
                .is_some_and(|url| queue::is_tls_url(url.expose_secret().trim()));
            if !tls {
                return invalid(
                    "REDIS_TLS_CA_FILE is set, but REDIS_URL is not a rediss:// URL (TLS)",
                );
            }
        }
        if self.token_max_age == 0 {
            return invalid("TOKEN_MAX_AGE must be at least 1 second");
        }
        if self.worker_concurrency == 0 || self.worker_concurrency > 1024 {
            return invalid("WORKER_CONCURRENCY must be between 1 and 1024");
        }
        if self.smtp_max_connections == 0 || self.smtp_max_connections > 256 {
            return invalid("SMTP_MAX_CONNECTIONS must be between 1 and 256");
        }
        let from = self
            .mail_from
            .as_deref()
            .or(self.ses_email_source.as_deref())
            .unwrap_or(DEFAULT_MAIL_FROM);
        let from = Sender::parse(from).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        let from = match &self.mail_return_path {
            Some(path) => from
                .with_return_path(path)
                .map_err(|e| SettingsError::Invalid(e.to_string()))?,
            None => from,
        };
        let from = self.dkim(from)?;
        let (secret_keys, using_development_key) = self.secret_keys()?;
        let tokens = ConfirmationTokens::new(&secret_keys_strs(&secret_keys))
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        let shutdown_timeout = duration("WORKER_SHUTDOWN_TIMEOUT", &self.worker_shutdown_timeout)?;
        let sweep_interval = duration("SWEEP_INTERVAL", &self.sweep_interval)?;
        if sweep_interval < Duration::from_millis(100) {
            return invalid("SWEEP_INTERVAL must be at least 100ms");
        }
        let send_lease = duration("SEND_LEASE", &self.send_lease)?;
        if send_lease < Duration::from_secs(1) {
            return invalid("SEND_LEASE must be at least 1s");
        }
        let retry = self.retry()?;
        let rate = self.mail_max_rate;
        if !rate.is_finite() || rate < 0.0 {
            return invalid(
                "MAIL_MAX_RATE must be a number of messages per second, 0 for no limit",
            );
        }
        let smtp_timeout = duration("SMTP_TIMEOUT", &self.smtp_timeout)?;
        let account_pause = duration("ACCOUNT_PAUSE", &self.account_pause)?;
        let unconfirmed_ttl = retention("UNCONFIRMED_TTL", &self.unconfirmed_ttl)?;
        let reminder_after = reminder("REMINDER_AFTER", &self.reminder_after, unconfirmed_ttl)?;
        let cooldown = duration("RESEND_COOLDOWN", &self.resend_cooldown)?;
        if self.resend_daily_cap == 0 {
            return invalid(
                "RESEND_DAILY_CAP must be at least 1 (the registration's own email counts)",
            );
        }
        let resend = ResendPolicy {
            cooldown: time_delta("RESEND_COOLDOWN", cooldown)?,
            daily_cap: self.resend_daily_cap,
        };
        let trusted_proxy_header = self
            .trusted_proxy_header
            .as_deref()
            .map(parse_header_name)
            .transpose()?;
        let request_timeout = duration("REQUEST_TIMEOUT", &self.request_timeout)?;
        if request_timeout < Duration::from_secs(1) {
            return invalid("REQUEST_TIMEOUT must be at least 1s");
        }
        let header_read_timeout = duration("HEADER_READ_TIMEOUT", &self.header_read_timeout)?;
        if header_read_timeout < Duration::from_secs(1) {
            return invalid("HEADER_READ_TIMEOUT must be at least 1s");
        }
        if self.max_connections < 16 || self.max_connections > 1_000_000 {
            return invalid("MAX_CONNECTIONS must be between 16 and 1000000");
        }
        let worker_metrics_addr =
            optional_addr("WORKER_METRICS_ADDR", self.worker_metrics_addr.as_deref())?;
        let ops_addr = optional_addr("OPS_ADDR", self.ops_addr.as_deref())?;
        let admin_token = self
            .admin_token
            .as_ref()
            .map(|token| {
                let token = token.expose_secret();
                if self.app_env == AppEnv::Production
                    && token.chars().count() < MIN_PRODUCTION_ADMIN_TOKEN_LEN
                {
                    return invalid(format!(
                        "ADMIN_TOKEN is too short for production: use at least {MIN_PRODUCTION_ADMIN_TOKEN_LEN} random characters"
                    ));
                }
                AdminToken::new(token).map_err(|e| SettingsError::Invalid(e.to_string()))
            })
            .transpose()?;
        let api_keys = match &self.api_keys {
            Some(keys) => domain::ApiKeys::parse(keys.expose_secret())
                .map_err(|e| SettingsError::Invalid(e.to_string()))?,
            None => None,
        };
        let confirmed_redirect = self
            .confirmed_redirect_url
            .as_deref()
            .map(parse_confirmed_redirect)
            .transpose()?;
        let allowed_redirect_origins = self
            .allowed_redirect_origins
            .as_deref()
            .map(parse_origins)
            .transpose()?
            .unwrap_or_default();
        let webhooks = self.webhooks()?;
        let show_users = self.show_users.unwrap_or(self.app_env == AppEnv::Local);
        if !listen_addr.ip().is_loopback() {
            if using_development_key {
                return invalid(format!(
                    "SECRET_KEY is required when LISTEN_ADDR ({listen_addr}) is not a loopback address: \
                     the development key is public (set at least {MIN_SECRET_KEY_LEN} random characters)"
                ));
            }
            if show_users {
                return invalid(format!(
                    "SHOW_USERS lists every address on the home page: it is refused when LISTEN_ADDR \
                     ({listen_addr}) is not a loopback address (set SHOW_USERS=false)"
                ));
            }
        }
        let log_format = LogFormat::parse(&self.log_format).map_err(SettingsError::Invalid)?;
        let smtp_url = match (&self.smtp_url, self.mailer) {
            (None, MailerKind::Smtp) => {
                return invalid("MAILER=smtp needs SMTP_URL (e.g. smtp://user:pass@host:587)");
            }
            (None, _) => None,
            (Some(url), _) => Some(
                SmtpUrl::parse(url.expose_secret())
                    .map_err(|e| SettingsError::Invalid(format!("SMTP_URL: {e}")))?,
            ),
        };
        if self.smtp_tls_ca_file.is_some()
            && smtp_url
                .as_ref()
                .is_none_or(|url| url.security() == mailer::SmtpSecurity::None)
        {
            return invalid(
                "SMTP_TLS_CA_FILE is set, but SMTP_URL is unset or uses no TLS (tls=none)",
            );
        }
        Ok(Settings {
            app_env: self.app_env,
            listen_addr,
            base_url,
            database_url: self.database_url,
            redis_url: self.redis_url,
            redis_tls_ca_file: self.redis_tls_ca_file,
            secret_keys,
            using_development_key,
            tokens,
            token_max_age: Duration::from_secs(self.token_max_age),
            template_dir: self.template_dir,
            worker_metrics_addr,
            ops_addr,
            log_format,
            webhooks,
            mail: MailSettings {
                kind: self.mailer,
                from,
                smtp_url,
                smtp_tls_ca_file: self.smtp_tls_ca_file,
                smtp_max_connections: self.smtp_max_connections,
                smtp_timeout,
                ses_region: self.ses_region,
                ses_configuration_set: self.ses_configuration_set,
                ses_feedback_queue_url: feedback_queue_url(self.ses_feedback_queue_url.as_deref())?,
                file_dir: self.mail_file_dir,
                max_rate: (rate > 0.0).then_some(rate),
            },
            delivery: DeliverySettings {
                concurrency: self.worker_concurrency,
                shutdown_timeout,
                sweep_interval,
                send_lease: time_delta("SEND_LEASE", send_lease)?,
                retry,
                account_pause: time_delta("ACCOUNT_PAUSE", account_pause)?,
                sent_retention: retention("SENT_RETENTION", &self.sent_retention)?,
                dead_retention: retention("DEAD_RETENTION", &self.dead_retention)?,
                unconfirmed_ttl,
                reminder_after,
            },
            web: WebSettings {
                show_users,
                resend,
                rate_limit_per_ip: self.rate_limit_per_ip,
                link_rate_limit_per_ip: self.link_rate_limit_per_ip,
                trusted_proxy_header,
                request_timeout,
                header_read_timeout,
                max_connections: self.max_connections,
                confirm_on_get: self.confirm_on_get,
                admin_token,
                api_keys,
                confirmed_redirect,
                allowed_redirect_origins,
            },
        })
    }

    /// WEBHOOK_URL, WEBHOOK_SECRET (both or neither) and WEBHOOK_TIMEOUT.
    fn webhooks(&self) -> Result<Option<WebhookSettings>, SettingsError> {
        let timeout = duration("WEBHOOK_TIMEOUT", &self.webhook_timeout)?;
        if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(300) {
            return invalid("WEBHOOK_TIMEOUT must be between 100ms and 5m");
        }
        let (urls, secrets) = match (&self.webhook_url, &self.webhook_secret) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return invalid(
                    "WEBHOOK_URL is set but WEBHOOK_SECRET is not: webhooks are always signed                      (a secret is whsec_ followed by base64 of 24+ random bytes)",
                );
            }
            (None, Some(_)) => return invalid("WEBHOOK_SECRET is set but WEBHOOK_URL is not"),
            (Some(urls), Some(secrets)) => (urls, secrets),
        };
        let endpoints = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .enumerate()
            .map(|(n, url)| parse_webhook_url(n + 1, url))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return invalid("WEBHOOK_URL holds no URL");
        }
        let secrets = secrets
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .enumerate()
            .map(|(n, secret)| {
                webhooks::Secret::parse(secret).map_err(|e| {
                    SettingsError::Invalid(format!("WEBHOOK_SECRET, secret {}: {e}", n + 1))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(signer) = webhooks::Signer::new(secrets) else {
            return invalid("WEBHOOK_SECRET holds no secret");
        };
        Ok(Some(WebhookSettings {
            endpoints,
            signer,
            timeout,
        }))
    }

    /// DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE (both or neither) and DKIM_DOMAIN (the From
    /// address's domain by default): the sender, signing when they are set. The key file is
    /// read here, so a missing or unusable key stops the start.
    fn dkim(&self, from: Sender) -> Result<Sender, SettingsError> {
        let (selector, key_file) = match (&self.dkim_selector, &self.dkim_private_key_file) {
            (None, None) if self.dkim_domain.is_some() => {
                return invalid(
                    "DKIM_DOMAIN is set without DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE",
                );
            }
            (None, None) => return Ok(from),
            (Some(selector), Some(key_file)) => (selector, key_file),
            _ => {
                return invalid(
                    "DKIM signing needs both DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE (or neither)",
                );
            }
        };
        let domain = match &self.dkim_domain {
            Some(domain) => domain.clone(),
            None => from
                .email()
                .rsplit_once('@')
                .map(|(_, domain)| domain.to_owned())
                .unwrap_or_default(),
        };
        let signer = DkimSigner::from_pem_file(&domain, selector, key_file)
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        from.with_dkim(signer)
            .map_err(|e| SettingsError::Invalid(format!("{e} (MAIL_FROM)")))
    }

    /// RETRY_BASE_DELAY, RETRY_MAX_DELAY and RETRY_MAX_ATTEMPTS.
    fn retry(&self) -> Result<RetryPolicy, SettingsError> {
        let base = duration("RETRY_BASE_DELAY", &self.retry_base_delay)?;
        let max = duration("RETRY_MAX_DELAY", &self.retry_max_delay)?;
        if base.is_zero() || max < base {
            return invalid("RETRY_BASE_DELAY must be above zero and at most RETRY_MAX_DELAY");
        }
        if self.retry_max_attempts == 0 {
            return invalid("RETRY_MAX_ATTEMPTS must be at least 1");
        }
        Ok(RetryPolicy {
            base,
            max,
            max_attempts: self.retry_max_attempts,
        })
    }

    /// The key list, oldest first (SECRET_KEY_FALLBACKS, then SECRET_KEY), and whether the
    /// development key stands in for a missing SECRET_KEY. In production a missing or short
    /// SECRET_KEY is an error.
    fn secret_keys(&self) -> Result<(Vec<SecretString>, bool), SettingsError> {
        let primary = self
            .secret_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned());
        let (primary, using_development_key) = match (primary, self.app_env) {
            (Some(key), AppEnv::Production) if key.chars().count() < MIN_SECRET_KEY_LEN => {
                return invalid(format!(
                    "SECRET_KEY is too short for production: use at least {MIN_SECRET_KEY_LEN} random characters \
                     (keep an old short key in SECRET_KEY_FALLBACKS so links already sent keep working)"
                ));
            }
            (Some(key), _) => (key, false),
            (None, AppEnv::Production) => {
                return invalid(format!(
                    "SECRET_KEY is required when APP_ENV=production (at least {MIN_SECRET_KEY_LEN} random characters)"
                ));
            }
            (None, AppEnv::Local) => (DEVELOPMENT_SECRET_KEY.to_owned(), true),
        };
        let fallbacks: Vec<&str> = self
            .secret_key_fallbacks
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        if self.app_env == AppEnv::Production
            && fallbacks
                .iter()
                .any(|key| key.chars().count() < MIN_SECRET_KEY_LEN)
        {
            return invalid(format!(
                "SECRET_KEY_FALLBACKS holds a key shorter than {MIN_SECRET_KEY_LEN} characters: production \
                 refuses short keys there too (anyone who can guess one can sign links)"
            ));
        }
        let mut keys: Vec<SecretString> = fallbacks.into_iter().map(SecretString::from).collect();
        keys.push(SecretString::from(primary));
        Ok((keys, using_development_key))
    }
}

fn secret_keys_strs(keys: &[SecretString]) -> Vec<&str> {
    keys.iter().map(ExposeSecret::expose_secret).collect()
}

/// An optional listen address such as WORKER_METRICS_ADDR or OPS_ADDR.
fn optional_addr(name: &str, addr: Option<&str>) -> Result<Option<SocketAddr>, SettingsError> {
    addr.map(|addr| {
        addr.trim().parse::<SocketAddr>().map_err(|_| {
            SettingsError::Invalid(format!(
                "{name} {addr:?} is not an address like 127.0.0.1:9102"
            ))
        })
    })
    .transpose()
}

/// BASE_URL: an http(s) URL without query or fragment.
fn parse_base_url(text: &str) -> Result<Url, SettingsError> {
    let bad = || {
        SettingsError::Invalid(format!(
            "BASE_URL {text:?} must be an http(s) URL without query or fragment"
        ))
    };
    if text.contains(['?', '#', ' ']) {
        return Err(bad());
    }
    let url = Url::parse(text).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad());
    }
    Ok(url)
}

/// CONFIRMED_REDIRECT_URL: an absolute http(s) URL (a query is kept, a fragment refused), with
/// `email_confirmed=1` added to its query: where a confirmation sends the visitor.
fn parse_confirmed_redirect(text: &str) -> Result<String, SettingsError> {
    let bad = || {
        SettingsError::Invalid(format!(
            "CONFIRMED_REDIRECT_URL {text:?} must be an absolute http(s) URL without a fragment"
        ))
    };
    let mut url = Url::parse(text.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(bad());
    }
    url.query_pairs_mut().append_pair("email_confirmed", "1");
    Ok(url.into())
}

/// Longest webhook endpoint URL (the outbox's column).
const MAX_WEBHOOK_URL_LEN: usize = 2048;

/// One of WEBHOOK_URL's URLs (the `n`th): http or https with a host, no user or password (put
/// a token in the path or query if the receiver wants one; the signature is the
/// authentication), no fragment. The URL itself is never repeated in the error: it may hold a
/// token.
fn parse_webhook_url(n: usize, text: &str) -> Result<String, SettingsError> {
    let bad = |why: &str| {
        SettingsError::Invalid(format!(
            "WEBHOOK_URL, URL {n}: {why} (expected e.g. https://app.example.com/hooks/confirm)"
        ))
    };
    if text.len() > MAX_WEBHOOK_URL_LEN {
        return Err(bad("longer than 2048 characters"));
    }
    let url = Url::parse(text).map_err(|_| bad("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad("not an http or https URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("a user or password in the URL is refused"));
    }
    if url.fragment().is_some() {
        return Err(bad("a #fragment is refused"));
    }
    Ok(url.into())
}

/// ALLOWED_REDIRECT_ORIGINS: comma-separated origins (`https://app.example.com`, a port if not
/// the scheme's), as browsers serialize them.
fn parse_origins(text: &str) -> Result<Vec<String>, SettingsError> {
    let mut origins = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let bad = || {
            SettingsError::Invalid(format!(
                "ALLOWED_REDIRECT_ORIGINS: {item:?} is not an origin like https://app.example.com (scheme, host and port only)"
            ))
        };
        let url = Url::parse(item).map_err(|_| bad())?;
        let origin_only = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none();
        if !origin_only {
            return Err(bad());
        }
        origins.push(url.origin().ascii_serialization());
    }
    Ok(origins)
}

/// TRUSTED_PROXY_HEADER: a header name (letters, digits, `-`, `_`), lower-cased.
fn parse_header_name(name: &str) -> Result<HeaderName, SettingsError> {
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid
        .then(|| HeaderName::try_from(name.to_ascii_lowercase()).ok())
        .flatten()
        .ok_or_else(|| {
            SettingsError::Invalid(format!(
                "TRUSTED_PROXY_HEADER {name:?} is not a header name like X-Forwarded-For"
            ))
        })
}

/// SES_FEEDBACK_QUEUE_URL: empty is unset; otherwise an http(s) URL (an SQS queue URL,
/// `https://sqs.<region>.amazonaws.com/<account>/<name>`), kept as given.
fn feedback_queue_url(text: Option<&str>) -> Result<Option<String>, SettingsError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(Some(text.to_owned()))
        }
        _ => invalid(
            "SES_FEEDBACK_QUEUE_URL must be the URL of an SQS queue, \
             like https://sqs.us-east-1.amazonaws.com/123456789012/ses-feedback",
        ),
    }
}
