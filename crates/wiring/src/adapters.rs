//! The adapters the settings select: the store (`DATABASE_URL`), the queue (`REDIS_URL`) and
//! the mailer (`MAILER`).

use std::sync::Arc;
use std::time::Duration;

use domain::{Clock, ConfirmationTokens, SystemClock};
use mailer::{FileMailer, Mailer, SesMailer, SmtpMailer};
use queue::{EmbeddedQueue, JobQueue, RedisQueue, RedisQueueConfig};
use secrecy::ExposeSecret;
use settings::{MailerKind, Settings};
use store::{SeaStore, StoreError};

/// Why an adapter could not be built. The texts name the setting, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the database at DATABASE_URL is not migrated ({0} pending migration(s)); run `server migrate` first"
    )]
    NotMigrated(usize),
    /// The queue at REDIS_URL cannot be used (its text says why, without the password).
    #[error("configuration: REDIS_URL: {0}")]
    Queue(queue::QueueError),
    /// The SMTP transport cannot be set up (TLS for its host).
    #[error("configuration: SMTP_URL: {0}")]
    Smtp(mailer::SmtpConfigError),
    /// A setting the binary needs is missing.
    #[error("configuration: {0}")]
    Missing(&'static str),
}

/// The adapters delivery and the web server run on.
#[derive(Debug, Clone)]
pub struct Services {
    pub store: Arc<SeaStore>,
    pub queue: Arc<dyn JobQueue>,
    pub tokens: ConfirmationTokens,
    pub clock: Arc<dyn Clock>,
}

impl Services {
    /// Connects the database (SQLite migrates itself; PostgreSQL must be migrated) and the
    /// queue; warns when the development key signs links.
    pub async fn connect(settings: &Settings) -> Result<Self, WiringError> {
        if settings.using_development_key {
            tracing::warn!(
                "SECRET_KEY is not set: using the development key. Links are forgeable; set SECRET_KEY outside local development"
            );
        }
        Ok(Self {
            store: Arc::new(connect_store(settings).await?),
            queue: build_queue(settings).await?,
            tokens: settings.tokens.clone(),
            clock: Arc::new(SystemClock),
        })
    }
}

/// Connects to DATABASE_URL. SQLite (the embedded default) is migrated on the spot;
/// PostgreSQL must have been migrated with `server migrate`. A registration's email is owed
/// within RESEND_COOLDOWN and RESEND_DAILY_CAP, counted per mailbox.
pub async fn connect_store(settings: &Settings) -> Result<SeaStore, WiringError> {
    let store = connect_store_unchecked(settings)
        .await?
        .with_registration_policy(settings.web.resend);
    if store.is_sqlite() {
        store.migrate().await?;
    } else {
        let pending = store.pending_migrations().await?;
        if !pending.is_empty() {
            return Err(WiringError::NotMigrated(pending.len()));
        }
    }
    Ok(store)
}

/// Connects to DATABASE_URL without checking migrations (for `server migrate`).
pub async fn connect_store_unchecked(settings: &Settings) -> Result<SeaStore, WiringError> {
    Ok(SeaStore::connect(settings.database_url.expose_secret()).await?)
}

/// The queue REDIS_URL selects: Redis Streams, or the embedded queue when unset.
pub async fn build_queue(settings: &Settings) -> Result<Arc<dyn JobQueue>, WiringError> {
    let Some(url) = &settings.redis_url else {
        return Ok(Arc::new(EmbeddedQueue::new()));
    };
    let config = RedisQueueConfig {
        // A job handed out and never acknowledged goes to another worker when the message's
        // lease would have expired anyway.
        claim_idle: settings
            .delivery
            .send_lease
            .to_std()
            .unwrap_or(Duration::from_secs(120)),
        ..RedisQueueConfig::default()
    };
    let queue = RedisQueue::connect(url.expose_secret(), config)
        .await
        .map_err(WiringError::Queue)?;
    Ok(Arc::new(queue))
}

/// The mailer MAILER selects.
pub async fn build_mailer(settings: &Settings) -> Result<Arc<dyn Mailer>, WiringError> {
    let mail = &settings.mail;
    let sender = mail.from.clone();
    Ok(match mail.kind {
        MailerKind::File => Arc::new(FileMailer::new(&mail.file_dir, sender)),
        MailerKind::Smtp => {
            let url = mail.smtp_url.clone().ok_or(WiringError::Missing(
                "MAILER=smtp needs SMTP_URL (e.g. smtp://user:pass@host:587)",
            ))?;
            let timeout = mail.smtp_timeout;
            let mailer = SmtpMailer::new(url, sender)
                .map_err(WiringError::Smtp)?
                .with_timeouts(timeout.min(Duration::from_secs(10)), timeout)
                .with_max_connections(mail.smtp_max_connections);
            Arc::new(mailer)
        }
        MailerKind::Ses => Arc::new(
            SesMailer::from_env(
                mail.ses_region.clone(),
                sender,
                mail.ses_configuration_set.clone(),
            )
            .await,
        ),
    })
}
