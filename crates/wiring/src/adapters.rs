//! The adapters the settings select: the store (`DATABASE_URL`), the queue (`REDIS_URL`) and
//! the mailer (`MAILER`).

use std::sync::Arc;
use std::time::Duration;

use domain::{Clock, ConfirmationTokens, MessageId, SystemClock};
use mailer::{FileMailer, Mailer, SesMailer, SmtpMailer};
use queue::{EmbeddedQueue, Job, JobQueue, RedisQueue, RedisQueueConfig, SharedRateLimit};
use secrecy::ExposeSecret;
use settings::{MailerKind, Settings};
use store::{SeaStore, StoreError};
use webhooks::{HttpTransport, Webhooks};

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
    /// The webhooks' HTTPS client cannot be set up (no root certificates).
    #[error("configuration: WEBHOOK_URL: cannot load the system's root certificates: {0}")]
    WebhookTls(std::io::Error),
}

/// The adapters delivery and the web server run on.
#[derive(Debug, Clone)]
pub struct Services {
    pub store: Arc<SeaStore>,
    pub queue: Arc<dyn JobQueue>,
    pub tokens: ConfirmationTokens,
    pub clock: Arc<dyn Clock>,
    /// Signs and posts webhooks (WEBHOOK_URL and WEBHOOK_SECRET set); `None`: no webhooks.
    pub webhooks: Option<Webhooks>,
    /// Where the servers share their per-IP limits (Redis, when REDIS_URL is set); `None`: each
    /// process counts on its own.
    pub shared_limits: Option<Arc<dyn SharedRateLimit>>,
}

impl WiringError {
    /// Whether waiting may help: the database or the queue cannot be reached right now (as
    /// opposed to a setting that cannot work, or an unmigrated database).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(error) => error.is_unavailable(),
            Self::Queue(error) => matches!(error, queue::QueueError::Transport(_)),
            _ => false,
        }
    }
}

/// The first wait between two connection attempts at start; it doubles up to
/// [`CONNECT_MAX_DELAY`].
pub const CONNECT_FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest wait between two connection attempts at start.
pub const CONNECT_MAX_DELAY: Duration = Duration::from_secs(10);
/// How often the "still waiting" line is logged while the database or queue is unreachable.
const CONNECT_LOG_EVERY: Duration = Duration::from_secs(30);

impl Services {
    /// [`Self::connect`], waiting while the database or the queue cannot be reached: it tries
    /// again after 0.5 s, then twice as long each time up to 10 s, and logs one line when it
    /// starts waiting and one every 30 s after. A setting that cannot work (a malformed URL, an
    /// unmigrated database) is an error at once. `Ok(None)`: `stop` turned true first.
    pub async fn connect_patiently(
        settings: &Settings,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<Self>, WiringError> {
        let mut delay = CONNECT_FIRST_DELAY;
        let mut logged_at: Option<tokio::time::Instant> = None;
        loop {
            let error = match Self::connect(settings).await {
                Ok(services) => {
                    if logged_at.is_some() {
                        tracing::info!("connected: starting");
                    }
                    return Ok(Some(services));
                }
                Err(error) if error.is_transient() => error,
                Err(error) => return Err(error),
            };
            if logged_at.is_none_or(|at| at.elapsed() >= CONNECT_LOG_EVERY) {
                tracing::warn!(%error, retry_in = ?delay, "cannot start yet: waiting for the database and the queue");
                logged_at = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|stop| *stop) => return Ok(None),
            }
            delay = (delay * 2).min(CONNECT_MAX_DELAY);
        }
    }

    /// Connects the database (SQLite migrates itself; PostgreSQL must be migrated) and the
    /// queue; warns when the development key signs links.
    pub async fn connect(settings: &Settings) -> Result<Self, WiringError> {
        if settings.using_development_key {
            tracing::warn!(
                "SECRET_KEY is not set: using the development key. Links are forgeable; set SECRET_KEY outside local development"
            );
        }
        let mut store = connect_store(settings).await?;
        let (queue, shared_limits) = connect_queue(settings).await?;
        let webhooks = match &settings.webhooks {
            Some(hooks) => {
                store = store.with_webhooks(
                    hooks.endpoints.clone(),
                    Some(publish_webhooks(Arc::clone(&queue))),
                );
                let transport =
                    HttpTransport::new(hooks.timeout).map_err(WiringError::WebhookTls)?;
                Some(Webhooks::new(hooks.signer.clone(), Arc::new(transport)))
            }
            None => None,
        };
        Ok(Self {
            store: Arc::new(store),
            queue,
            tokens: settings.tokens.clone(),
            clock: Arc::new(SystemClock),
            webhooks,
            shared_limits,
        })
    }
}

/// How many new webhook messages may wait to be published; beyond, the sweeper publishes them.
const WEBHOOK_ANNOUNCEMENTS: usize = 4096;

/// A channel whose messages (the ids of webhook messages the store has just committed) a task
/// publishes to `queue` as jobs, so a webhook leaves at once rather than at the next sweep. A
/// publish that fails is left to the sweeper (the message is owed in the outbox either way).
/// The task ends when every sender is gone.
fn publish_webhooks(queue: Arc<dyn JobQueue>) -> tokio::sync::mpsc::Sender<MessageId> {
    let (sender, mut ids) = tokio::sync::mpsc::channel(WEBHOOK_ANNOUNCEMENTS);
    tokio::spawn(async move {
        while let Some(id) = ids.recv().await {
            if let Err(error) = queue.publish(Job::new(id)).await {
                tracing::debug!(message_id = %id, %error, "webhook not published; the sweeper will");
            }
        }
    });
    sender
}

/// Connects to DATABASE_URL. SQLite (the embedded default) is migrated on the spot;
/// PostgreSQL must have been migrated with `server migrate`. A registration's email is owed
/// within RESEND_COOLDOWN and RESEND_DAILY_CAP, counted per mailbox, and the changes it
/// records owe their webhook events to WEBHOOK_URL (published by the sweeper; [`Services`]
/// publishes them at once).
pub async fn connect_store(settings: &Settings) -> Result<SeaStore, WiringError> {
    let mut store = connect_store_unchecked(settings)
        .await?
        .with_registration_policy(settings.web.resend);
    if let Some(hooks) = &settings.webhooks {
        store = store.with_webhooks(hooks.endpoints.clone(), None);
    }
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
    Ok(connect_queue(settings).await?.0)
}

/// The queue REDIS_URL selects, and with Redis the shared rate limits on the same connection.
async fn connect_queue(
    settings: &Settings,
) -> Result<(Arc<dyn JobQueue>, Option<Arc<dyn SharedRateLimit>>), WiringError> {
    let Some(url) = &settings.redis_url else {
        return Ok((Arc::new(EmbeddedQueue::new()), None));
    };
    let config = RedisQueueConfig {
        // A job handed out and never acknowledged goes to another worker when the message's
        // lease would have expired anyway.
        claim_idle: settings
            .delivery
            .send_lease
            .to_std()
            .unwrap_or(Duration::from_secs(120)),
        tls_ca_file: settings.redis_tls_ca_file.clone(),
        ..RedisQueueConfig::default()
    };
    let queue = Arc::new(
        RedisQueue::connect(url.expose_secret(), config)
            .await
            .map_err(WiringError::Queue)?,
    );
    let limits: Arc<dyn SharedRateLimit> = Arc::new(queue.rate_limit());
    Ok((queue, Some(limits)))
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
            let mut mailer = SmtpMailer::new(url, sender)
                .map_err(WiringError::Smtp)?
                .with_timeouts(timeout.min(Duration::from_secs(10)), timeout)
                .with_max_connections(mail.smtp_max_connections);
            if let Some(ca) = &mail.smtp_tls_ca_file {
                mailer = mailer.with_tls_ca_file(ca).map_err(WiringError::Smtp)?;
            }
            Arc::new(mailer)
        }
        MailerKind::Ses => {
            if let Some(dkim) = sender.dkim() {
                tracing::warn!(
                    domain = dkim.domain(),
                    selector = dkim.selector(),
                    "DKIM_* is ignored with MAILER=ses: SES signs with its own DKIM keys (Easy DKIM or BYODKIM for the identity)"
                );
            }
            Arc::new(
                SesMailer::from_env(
                    mail.ses_region.clone(),
                    sender,
                    mail.ses_configuration_set.clone(),
                )
                .await,
            )
        }
    })
}
