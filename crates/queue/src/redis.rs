//! The Redis adapter: a Redis Stream read through a consumer group (at-least-once).
//!
//! * `publish` is `XADD <stream> * job <json>`.
//! * `receive` first takes over, with `XAUTOCLAIM`, an entry another consumer (or this one) was
//!   handed more than `claim_idle` ago and never acknowledged, then reads a new entry with a
//!   blocking `XREADGROUP … >` on a connection of its own.
//! * `ack` is `XACK` + `XDEL` in one pipeline, so the stream only holds unfinished work.
//!
//! The group is created with `XGROUP CREATE <stream> <group> 0 MKSTREAM` on the first receive and
//! again whenever Redis says the stream or the group is gone (restart without persistence,
//! `FLUSHALL`, `DEL`), so the queue heals by itself; jobs lost that way are republished from the
//! database by the sweeper.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, ErrorKind, Options, ReconnectPolicy,
    StreamsInterface, Value,
};
use fred::types::config::{TlsConnector, UnresponsiveConfig};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{Delivery, Job, JobQueue, QueueError};

type Client = fred::prelude::Client;

/// The stream field holding the job's JSON.
const JOB_FIELD: &str = "job";
/// `XAUTOCLAIM` runs at most this often per queue while it finds nothing to take over.
const CLAIM_INTERVAL: Duration = Duration::from_secs(1);
/// Unparsable entries dropped in one `receive` before it gives up for this call.
const MAX_DISCARDS_PER_RECEIVE: usize = 64;
/// Connect (and command) timeout used when `command_timeout` is zero.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff: 100 ms, 200 ms, 400 ms … capped at 2 s, forever.
const RECONNECT_MIN_DELAY_MS: u32 = 100;
const RECONNECT_MAX_DELAY_MS: u32 = 2_000;
/// An XAUTOCLAIM cursor meaning "from the start of the pending entries list".
const CURSOR_START: &str = "0-0";

/// The prefix of the shared rate limits' keys (`confirm:limit:<limit>:<client>`).
pub const LIMIT_PREFIX: &str = "confirm:limit:";

/// Where the Redis queue keeps its jobs and who this consumer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisQueueConfig {
    /// Key of the stream holding the jobs. Default `confirm:jobs`.
    pub stream: String,
    /// Consumer group shared by all workers. Default `workers`.
    pub group: String,
    /// This consumer's name in the group; must be unique among the running workers.
    /// Default: `<hostname or "worker">-<pid>-<8 random hex digits>`.
    pub consumer: String,
    /// How long a delivered, unacknowledged entry stays with its consumer before another one may
    /// take it over (`XAUTOCLAIM`). Keep it above the longest time a job may take. Default 120 s.
    pub claim_idle: Duration,
    /// Bound on every command (a blocking read gets its wait on top). Zero disables command
    /// timeouts; connecting is still bounded by 5 s. Default 5 s.
    pub command_timeout: Duration,
    /// A PEM file of CA certificates trusted for `rediss://` beside the system's store (for a
    /// private CA). Only valid with a `rediss://` URL. Default none.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for RedisQueueConfig {
    fn default() -> Self {
        Self {
            stream: "confirm:jobs".to_owned(),
            group: "workers".to_owned(),
            consumer: default_consumer_name(),
            claim_idle: Duration::from_secs(120),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            tls_ca_file: None,
        }
    }
}

/// Whether `url` has one of the TLS schemes (`rediss`, `valkeys`, and their `-cluster` and
/// `-sentinel` forms), with which [`RedisQueue::connect`] speaks TLS only.
pub fn is_tls_url(url: &str) -> bool {
    plain_scheme(url).1
}

/// `url` with a TLS scheme (`rediss`, `valkeys`, and their `-cluster`/`-sentinel` forms) made
/// plain, and whether it had one.
fn plain_scheme(url: &str) -> (String, bool) {
    for (tls, plain) in [("rediss", "redis"), ("valkeys", "valkey")] {
        if let Some(rest) = url.strip_prefix(tls)
            && (rest.starts_with("://") || rest.starts_with('-'))
        {
            return (format!("{plain}{rest}"), true);
        }
    }
    (url.to_owned(), false)
}

/// `<hostname>-<pid>-<random>`: readable in `XINFO CONSUMERS`, unique per process and instance.
fn default_consumer_name() -> String {
    let host = hostname().unwrap_or_else(|| "worker".to_owned());
    let random: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(8)
        .collect();
    format!("{host}-{}-{random}", std::process::id())
}

/// This machine's host name (the `hostname` crate), cut to characters a consumer name reads
/// well with; `None` if there is none.
fn hostname() -> Option<String> {
    let raw = hostname::get().ok()?;
    let clean: String = raw
        .to_string_lossy()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// Where the next `XAUTOCLAIM` starts and when it may run.
#[derive(Debug)]
struct ClaimState {
    cursor: String,
    next_claim: Instant,
}

/// A job queue on a Redis Stream with a consumer group; see the crate documentation.
pub struct RedisQueue {
    /// Ordinary commands: XADD, XACK/XDEL, XAUTOCLAIM, XLEN/XPENDING, XGROUP, PING.
    client: Client,
    /// Only the blocking XREADGROUP: a blocked connection cannot serve anything else.
    reader: Client,
    config: RedisQueueConfig,
    /// `host:port` of the server, for messages (never the URL: it may hold a password).
    server: String,
    group_ready: AtomicBool,
    /// Held for a whole `receive`: there is one blocking connection, so reads take turns.
    claim: Mutex<ClaimState>,
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("server", &self.server)
            .field("stream", &self.config.stream)
            .field("group", &self.config.group)
            .field("consumer", &self.config.consumer)
            .field("claim_idle", &self.config.claim_idle)
            .field("command_timeout", &self.config.command_timeout)
            .finish_non_exhaustive()
    }
}

/// One entry as Redis returned it.
#[derive(Debug)]
struct RawEntry {
    id: String,
    /// `None` when the entry's data was deleted (XAUTOCLAIM on Redis 6.2).
    fields: Option<Vec<(String, Value)>>,
}

impl RedisQueue {
    /// Connects two clients to `url` (`redis://[[user]:password@]host[:port][/db]`, or
    /// `rediss://` for TLS): one for ordinary commands and one for the blocking read. Fails
    /// with `Transport` when Redis cannot be reached within the command timeout (5 s by
    /// default); once connected, both clients reconnect by themselves after a Redis restart or
    /// a dropped connection.
    ///
    /// `rediss://` always speaks TLS, verifying the server's certificate and name against the
    /// system's trust store and `config.tls_ca_file` (see `tls`); it never falls back to
    /// cleartext, so a server without TLS fails to connect.
    pub async fn connect(url: &str, config: RedisQueueConfig) -> Result<Self, QueueError> {
        let url_secrets = url_secrets(url);
        // fred would set up TLS for a TLS scheme itself, from the system's store alone (and
        // fail if any file in it is unreadable): it is given the plain scheme, and TLS is set
        // up here.
        let (url, uses_tls) = plain_scheme(url);
        let mut fred_config = Config::from_url(&url).map_err(|error| {
            QueueError::Config(redact(
                format!("invalid Redis URL: {}", error.details()),
                &url_secrets,
            ))
        })?;
        if uses_tls {
            let tls = crate::tls::client_config(config.tls_ca_file.as_deref())
                .map_err(|e| QueueError::Config(format!("Redis TLS: {e}")))?;
            fred_config.tls = Some(TlsConnector::from(tls).into());
        } else if config.tls_ca_file.is_some() {
            return Err(QueueError::Config(
                "a Redis TLS CA file is set, but the Redis URL is not rediss://".into(),
            ));
        }
        let mut secrets = url_secrets;
        secrets.extend(fred_config.password.iter().cloned());
        let server = fred_config
            .server
            .hosts()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");

        let connect_timeout = if config.command_timeout.is_zero() {
            DEFAULT_COMMAND_TIMEOUT
        } else {
            config.command_timeout
        };
        let mut builder = Builder::from_config(fred_config);
        builder
            .with_connection_config(|connection| {
                connection.connection_timeout = connect_timeout;
                connection.internal_command_timeout = connect_timeout;
                // A connection that stops answering (half-open TCP) is closed and reopened
                // instead of timing out every command until the kernel notices.
                if !config.command_timeout.is_zero() {
                    connection.unresponsive = UnresponsiveConfig {
                        max_timeout: Some(config.command_timeout),
                        interval: (config.command_timeout / 4)
                            .clamp(Duration::from_millis(50), Duration::from_secs(1)),
                    };
                }
            })
            .with_performance_config(|performance| {
                performance.default_command_timeout = config.command_timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(
                0, // retry forever
                RECONNECT_MIN_DELAY_MS,
                RECONNECT_MAX_DELAY_MS,
                2,
            ));
        let build_error = |error: FredError| {
            QueueError::Config(redact(
                format!("cannot configure the Redis client: {error}"),
                &secrets,
            ))
        };
        let client = builder.build().map_err(build_error)?;
        let reader = builder.build().map_err(build_error)?;

        init(&client, connect_timeout, &server, &secrets, uses_tls).await?;
        if let Err(error) = init(&reader, connect_timeout, &server, &secrets, uses_tls).await {
            quit_in_background(client);
            return Err(error);
        }
        Ok(Self {
            client,
            reader,
            config,
            server,
            group_ready: AtomicBool::new(false),
            claim: Mutex::new(ClaimState {
                cursor: CURSOR_START.to_owned(),
                next_claim: Instant::now(),
            }),
        })
    }

    /// Checks that Redis answers on the command connection.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let _: Value = self
            .client
            .ping(None)
            .await
            .map_err(|e| transport("PING", &e))?;
        Ok(())
    }

    /// A [`crate::SharedRateLimit`] on this queue's Redis and connection, its keys under
    /// [`LIMIT_PREFIX`]. It keeps the queue (and so the connection) open.
    pub fn rate_limit(self: &Arc<Self>) -> crate::RedisRateLimit {
        crate::RedisRateLimit::new(Arc::clone(self), LIMIT_PREFIX)
    }

    /// The client for ordinary commands.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration this queue runs with.
    pub fn config(&self) -> &RedisQueueConfig {
        &self.config
    }

    fn stream(&self) -> &str {
        &self.config.stream
    }

    fn group(&self) -> &str {
        &self.config.group
    }

    fn consumer(&self) -> &str {
        &self.config.consumer
    }

    /// `XGROUP CREATE <stream> <group> 0 MKSTREAM`; an existing group is fine. Id 0 so that jobs
    /// published before the group existed are read too.
    async fn ensure_group(&self) -> Result<(), QueueError> {
        let created: Result<Value, FredError> = self
            .client
            .xgroup_create(self.stream(), self.group(), "0", true)
            .await;
        match created {
            Ok(_) => tracing::info!(
                stream = self.stream(),
                group = self.group(),
                "created the Redis consumer group"
            ),
            Err(error) if error.details().starts_with("BUSYGROUP") => {}
            Err(error) => return Err(transport("XGROUP CREATE", &error)),
        }
        self.group_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// The stream or the group vanished: recreate them now.
    async fn recreate_group(&self, error: &FredError) -> Result<(), QueueError> {
        tracing::warn!(
            stream = self.stream(),
            group = self.group(),
            error = error.details(),
            "the Redis stream or consumer group is gone; recreating it"
        );
        self.group_ready.store(false, Ordering::Release);
        self.ensure_group().await
    }

    /// Tries to take over one entry left unacknowledged for `claim_idle`.
    async fn claim_one(&self, state: &mut ClaimState) -> Result<Option<RawEntry>, QueueError> {
        let idle_ms = u64::try_from(self.config.claim_idle.as_millis()).unwrap_or(u64::MAX);
        let reply: Result<Value, FredError> = self
            .client
            .xautoclaim(
                self.stream(),
                self.group(),
                self.consumer(),
                idle_ms,
                state.cursor.as_str(),
                Some(1),
                false,
            )
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) if group_is_gone(&error) => {
                state.cursor = CURSOR_START.to_owned();
                state.next_claim = Instant::now() + CLAIM_INTERVAL;
                self.recreate_group(&error).await?;
                return Ok(None);
            }
            Err(error) => {
                state.next_claim = Instant::now() + CLAIM_INTERVAL;
                return Err(transport("XAUTOCLAIM", &error));
            }
        };
        let (cursor, entries) = parse_autoclaim(reply).map_err(|what| {
            QueueError::Transport(format!("unexpected XAUTOCLAIM reply: {what}"))
        })?;
        state.cursor = cursor;
        let mut found = None;
        for entry in entries {
            if entry.fields.is_none() {
                // Redis 6.2 hands back deleted entries as nil; drop them from the pending list.
                self.ack_id(&entry.id).await?;
            } else if found.is_none() {
                found = Some(entry);
            }
        }
        // While something is found there may be more: look again on the next receive.
        state.next_claim = if found.is_some() {
            Instant::now()
        } else {
            Instant::now() + CLAIM_INTERVAL
        };
        Ok(found)
    }

    /// `XREADGROUP … COUNT <count> [BLOCK ms] STREAMS <stream> >` on the blocking connection.
    async fn read_new(&self, deadline: Instant, count: usize) -> Result<Vec<RawEntry>, QueueError> {
        match self.read_once(deadline, count).await {
            Err(error) if group_is_gone(&error) => {
                self.recreate_group(&error).await?;
                self.read_once(deadline, count)
                    .await
                    .map_err(|e| transport("XREADGROUP", &e))
            }
            other => other.map_err(|e| transport("XREADGROUP", &e)),
        }
    }

    async fn read_once(&self, deadline: Instant, count: usize) -> Result<Vec<RawEntry>, FredError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // BLOCK 0 would wait forever: no wait means no BLOCK at all.
        let block = (!remaining.is_zero()).then(|| {
            u64::try_from(remaining.as_millis())
                .unwrap_or(u64::MAX)
                .max(1)
        });
        let mut options = Options::default();
        if !self.config.command_timeout.is_zero() {
            // The read's own timeout must outlast the server-side BLOCK.
            options.timeout = Some(remaining + self.config.command_timeout);
        }
        let reply: Value = self
            .reader
            .with_options(&options)
            .xreadgroup(
                self.group(),
                self.consumer(),
                Some(u64::try_from(count).unwrap_or(u64::MAX)),
                block,
                false,
                self.stream(),
                ">",
            )
            .await?;
        let entries = parse_read(reply).map_err(|what| FredError::new(ErrorKind::Parse, what))?;
        // An entry deleted while pending comes back without fields (Redis 6.2): skip it.
        Ok(entries
            .into_iter()
            .filter(|entry| entry.fields.is_some())
            .collect())
    }

    /// Turns an entry into a delivery, or drops it (ack + delete) when it holds no valid job.
    async fn deliver(&self, entry: RawEntry) -> Result<Option<Delivery>, QueueError> {
        match decode_job(entry.fields.as_deref()) {
            Some(job) => Ok(Some(Delivery {
                job,
                receipt: entry.id,
            })),
            None => {
                tracing::warn!(
                    entry_id = %entry.id,
                    stream = self.stream(),
                    "dropping a queue entry that does not hold a valid job"
                );
                self.ack_id(&entry.id).await?;
                Ok(None)
            }
        }
    }

    /// [`JobQueue::receive_many`]: one entry left unacknowledged by a dead consumer when one is
    /// due for taking over, else up to `max` new entries with one `XREADGROUP`.
    async fn receive_up_to(&self, wait: Duration, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let deadline = Instant::now() + wait;
        let mut state = self.claim.lock().await;
        if !self.group_ready.load(Ordering::Acquire) {
            self.ensure_group().await?;
        }
        let mut discarded = 0;
        while discarded < MAX_DISCARDS_PER_RECEIVE {
            let claimed = if Instant::now() >= state.next_claim {
                self.claim_one(&mut state).await?
            } else {
                None
            };
            let entries = match claimed {
                Some(entry) => vec![entry],
                None => self.read_new(deadline, max.max(1)).await?,
            };
            if entries.is_empty() {
                return Ok(Vec::new());
            }
            let mut deliveries = Vec::with_capacity(entries.len());
            for entry in entries {
                match self.deliver(entry).await? {
                    Some(delivery) => deliveries.push(delivery),
                    None => discarded += 1,
                }
            }
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
        }
        Ok(Vec::new())
    }

    /// `XACK` + `XDEL` in one round trip.
    async fn ack_id(&self, id: &str) -> Result<(), QueueError> {
        self.ack_ids(&[id]).await
    }

    /// `XACK` + `XDEL` of several entries in one round trip.
    async fn ack_ids(&self, ids: &[&str]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let pipeline = self.client.pipeline();
        let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        let queued: Result<(), FredError> = async {
            let _: () = pipeline
                .xack(self.stream(), self.group(), ids.clone())
                .await?;
            let _: () = pipeline.xdel(self.stream(), ids).await?;
            Ok(())
        }
        .await;
        queued.map_err(|e| transport("XACK/XDEL", &e))?;
        let mut results = pipeline.try_all::<Value>().await.into_iter();
        match results.next() {
            Some(Ok(_)) => {}
            // The group is gone, so nothing is pending in it; the entry is deleted below anyway.
            Some(Err(error)) if group_is_gone(&error) => {}
            Some(Err(error)) => return Err(transport("XACK", &error)),
            None => return Err(QueueError::Transport("empty reply to XACK/XDEL".to_owned())),
        }
        match results.next() {
            Some(Ok(_)) => Ok(()),
            Some(Err(error)) => Err(transport("XDEL", &error)),
            None => Err(QueueError::Transport("no reply to XDEL".to_owned())),
        }
    }
}

impl Drop for RedisQueue {
    fn drop(&mut self) {
        // The clients' connection tasks run until QUIT (they reconnect forever otherwise).
        quit_in_background(self.client.clone());
        quit_in_background(self.reader.clone());
    }
}

#[async_trait]
impl JobQueue for RedisQueue {
    async fn publish(&self, job: Job) -> Result<(), QueueError> {
        let payload = serde_json::to_string(&job)
            .map_err(|e| QueueError::Transport(format!("cannot encode the job: {e}")))?;
        let id: Value = self
            .client
            .xadd(
                self.stream(),
                false,
                None::<()>,
                "*",
                vec![(JOB_FIELD, payload)],
            )
            .await
            .map_err(|e| transport("XADD", &e))?;
        match id.as_str() {
            Some(id) if !id.is_empty() => Ok(()),
            _ => Err(QueueError::Transport(
                "Redis XADD returned no entry id; the job was not enqueued".to_owned(),
            )),
        }
    }

    async fn receive(&self, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        Ok(self.receive_up_to(wait, 1).await?.pop())
    }

    async fn receive_many(&self, wait: Duration, max: usize) -> Result<Vec<Delivery>, QueueError> {
        self.receive_up_to(wait, max).await
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.ack_ids(&[delivery.receipt.as_str()]).await
    }

    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<(), QueueError> {
        let ids: Vec<&str> = deliveries.iter().map(|d| d.receipt.as_str()).collect();
        self.ack_ids(&ids).await
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        let pipeline = self.client.pipeline();
        let queued: Result<(), FredError> = async {
            let _: () = pipeline.xlen(self.stream()).await?;
            let _: () = pipeline.xpending(self.stream(), self.group(), ()).await?;
            Ok(())
        }
        .await;
        queued.map_err(|e| transport("XLEN/XPENDING", &e))?;
        let mut results = pipeline.try_all::<Value>().await.into_iter();
        let length = match results.next() {
            Some(Ok(length)) => length.as_u64().unwrap_or(0),
            Some(Err(error)) => return Err(transport("XLEN", &error)),
            None => return Err(QueueError::Transport("empty reply to XLEN".to_owned())),
        };
        let pending = match results.next() {
            // The summary form: [count, first id, last id, consumers].
            Some(Ok(Value::Array(summary))) => summary.first().and_then(Value::as_u64).unwrap_or(0),
            Some(Ok(_)) => 0,
            // No stream or no group: nothing is pending.
            Some(Err(error)) if group_is_gone(&error) => 0,
            Some(Err(error)) => return Err(transport("XPENDING", &error)),
            None => return Err(QueueError::Transport("no reply to XPENDING".to_owned())),
        };
        Ok(length.saturating_sub(pending))
    }
}

/// Connects one client, bounded by `limit` (plus a little slack for the handshake).
async fn init(
    client: &Client,
    limit: Duration,
    server: &str,
    secrets: &[String],
    uses_tls: bool,
) -> Result<(), QueueError> {
    let detail = match tokio::time::timeout(limit + Duration::from_secs(1), client.init()).await {
        // The returned handle drives the connection; it runs until QUIT.
        Ok(Ok(_connection_task)) => return Ok(()),
        Ok(Err(error)) => error.to_string(),
        Err(_) => {
            quit_in_background(client.clone());
            format!("no answer within {limit:?}")
        }
    };
    let message = if uses_tls {
        format!(
            "cannot connect to Redis at {server} over TLS: {} ({detail})",
            tls_hint(&detail)
        )
    } else {
        format!("cannot connect to Redis at {server}: {detail}")
    };
    Err(QueueError::Transport(redact(message, secrets)))
}

/// What an operator should make of a failed `rediss://` connection, from rustls's error.
fn tls_hint(detail: &str) -> &'static str {
    if detail.contains("UnknownIssuer") {
        "the server's certificate is signed by a CA this process does not trust (set \
         REDIS_TLS_CA_FILE to that CA's PEM file)"
    } else if detail.contains("NotValidForName") {
        "the server's certificate is not valid for the host name in REDIS_URL (use a name it \
         was issued for)"
    } else if detail.contains("Expired") || detail.contains("NotValidYet") {
        "the server's certificate is outside its validity period"
    } else if detail.contains("InvalidCertificate") {
        "the server's certificate was refused"
    } else {
        "the TLS handshake did not complete: does the server speak TLS on this port? \
         (rediss:// never falls back to cleartext)"
    }
}

fn quit_in_background(client: Client) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = client.quit().await;
        });
    }
}

fn transport(command: &str, error: &FredError) -> QueueError {
    QueueError::Transport(format!("Redis {command} failed: {error}"))
}

/// Whether Redis says the stream or the consumer group does not exist (any more).
fn group_is_gone(error: &FredError) -> bool {
    let details = error.details();
    details.starts_with("NOGROUP")
        // A blocked XREADGROUP whose stream was deleted (Redis 7).
        || details.starts_with("UNBLOCKED")
        || details.to_ascii_lowercase().contains("no such key")
}

/// The password (and whole user-info part) of a URL, to keep them out of messages.
fn url_secrets(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let Some((user_info, _)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    let mut secrets = vec![user_info.to_owned()];
    if let Some((_, password)) = user_info.split_once(':') {
        secrets.push(password.to_owned());
    }
    secrets.retain(|secret| !secret.is_empty());
    secrets
}

fn redact(mut text: String, secrets: &[String]) -> String {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

fn value_to_string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// `[id, [field, value, …]]` (or a map of fields in RESP3); data `nil` when deleted.
fn parse_entry(value: Value) -> Result<Option<RawEntry>, &'static str> {
    let parts = match value {
        Value::Null => return Ok(None),
        Value::Array(parts) => parts,
        _ => return Err("an entry is not an array"),
    };
    let mut parts = parts.into_iter();
    let id = parts
        .next()
        .and_then(value_to_string)
        .ok_or("an entry has no id")?;
    let fields = match parts.next() {
        None | Some(Value::Null) => None,
        Some(Value::Array(flat)) => {
            let mut fields = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
                fields.push((value_to_string(name).unwrap_or_default(), value));
            }
            Some(fields)
        }
        Some(Value::Map(map)) => Some(
            map.inner()
                .into_iter()
                .map(|(name, value)| (name.as_str_lossy().into_owned(), value))
                .collect(),
        ),
        Some(_) => return Err("an entry's fields are not an array"),
    };
    Ok(Some(RawEntry { id, fields }))
}

fn parse_entries(value: Value) -> Result<Vec<RawEntry>, &'static str> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(entries) => {
            let mut parsed = Vec::with_capacity(entries.len());
            for entry in entries {
                if let Some(entry) = parse_entry(entry)? {
                    parsed.push(entry);
                }
            }
            Ok(parsed)
        }
        _ => Err("the entries are not an array"),
    }
}

/// `XREADGROUP`: nil on timeout, else `[[stream, entries], …]` (RESP2) or `{stream: entries}`.
fn parse_read(reply: Value) -> Result<Vec<RawEntry>, &'static str> {
    let mut all = Vec::new();
    match reply {
        Value::Null => {}
        Value::Array(streams) => {
            for stream in streams {
                let Value::Array(pair) = stream else {
                    return Err("a stream is not an array");
                };
                let entries = pair.into_iter().nth(1).unwrap_or(Value::Null);
                all.extend(parse_entries(entries)?);
            }
        }
        Value::Map(map) => {
            for (_, entries) in map.inner() {
                all.extend(parse_entries(entries)?);
            }
        }
        _ => return Err("not an array"),
    }
    Ok(all)
}

/// `XAUTOCLAIM`: `[next cursor, entries]`, plus `[deleted ids]` since Redis 7 (those are already
/// gone from the pending list, so they need nothing more).
fn parse_autoclaim(reply: Value) -> Result<(String, Vec<RawEntry>), &'static str> {
    let Value::Array(parts) = reply else {
        return Err("not an array");
    };
    let mut parts = parts.into_iter();
    let cursor = parts.next().and_then(value_to_string).ok_or("no cursor")?;
    let entries = parse_entries(parts.next().unwrap_or(Value::Null))?;
    Ok((cursor, entries))
}

fn decode_job(fields: Option<&[(String, Value)]>) -> Option<Job> {
    let (_, payload) = fields?.iter().find(|(name, _)| name == JOB_FIELD)?;
    let payload = payload.as_str()?;
    serde_json::from_str(&payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_and_redacted() {
        let secrets = url_secrets("redis://user:s3cret@host:6379/0");
        assert_eq!(secrets, vec!["user:s3cret".to_owned(), "s3cret".to_owned()]);
        assert_eq!(
            redact("failed for user:s3cret and s3cret".to_owned(), &secrets),
            "failed for *** and ***"
        );
        assert_eq!(url_secrets("redis://:pw@host"), vec![":pw", "pw"]);
        assert!(url_secrets("redis://host:6379").is_empty());
        assert!(url_secrets("not a url").is_empty());
    }

    #[test]
    fn tls_schemes_are_made_plain_and_remembered() {
        for (url, plain, tls) in [
            ("rediss://:pw@host:6380/1", "redis://:pw@host:6380/1", true),
            (
                "rediss-cluster://host:7000",
                "redis-cluster://host:7000",
                true,
            ),
            ("valkeys://host", "valkey://host", true),
            ("redis://host", "redis://host", false),
            ("redissx://host", "redissx://host", false),
        ] {
            assert_eq!(plain_scheme(url), (plain.to_owned(), tls), "{url}");
        }
    }

    #[tokio::test]
    async fn a_ca_file_without_rediss_or_unreadable_is_refused() {
        for (url, expected) in [
            ("redis://127.0.0.1:1", "not rediss://"),
            ("rediss://127.0.0.1:1", "/nonexistent/ca.pem"),
        ] {
            let config = RedisQueueConfig {
                tls_ca_file: Some("/nonexistent/ca.pem".into()),
                ..RedisQueueConfig::default()
            };
            let error = RedisQueue::connect(url, config).await.unwrap_err();
            assert!(
                matches!(&error, QueueError::Config(m) if m.contains(expected)),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn default_consumer_names_differ() {
        let a = RedisQueueConfig::default();
        let b = RedisQueueConfig::default();
        assert_ne!(a.consumer, b.consumer);
        assert!(a.consumer.contains(&std::process::id().to_string()));
        assert_eq!(a.stream, "confirm:jobs");
        assert_eq!(a.group, "workers");
    }

    #[test]
    fn job_payload_carries_the_request_id_and_old_payloads_still_decode() {
        let fields = |payload: &str| vec![(JOB_FIELD.to_owned(), Value::from(payload))];
        let tagged =
            Job::new(domain::MessageId(7)).with_request_id(domain::RequestId::parse("r-1"));
        let payload = serde_json::to_string(&tagged).unwrap();
        assert_eq!(payload, r#"{"message_id":7,"request_id":"r-1"}"#);
        assert_eq!(decode_job(Some(&fields(&payload))), Some(tagged));
        let plain = Job::new(domain::MessageId(7));
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"message_id":7}"#
        );
        // Entries written before request ids existed, and malformed ids, still give the job.
        assert_eq!(
            decode_job(Some(&fields(r#"{"message_id":7}"#))),
            Some(plain)
        );
        for odd in [r#""bad id""#, "null", "12"] {
            let payload = format!(r#"{{"message_id":7,"request_id":{odd}}}"#);
            assert_eq!(
                decode_job(Some(&fields(&payload))),
                Some(plain),
                "{payload}"
            );
        }
    }

    #[test]
    fn parses_read_and_autoclaim_replies() {
        let entry = |id: &str, payload: &str| {
            Value::Array(vec![
                Value::from(id),
                Value::Array(vec![Value::from("job"), Value::from(payload)]),
            ])
        };
        let read = Value::Array(vec![Value::Array(vec![
            Value::from("s"),
            Value::Array(vec![entry("1-0", r#"{"message_id":7}"#)]),
        ])]);
        let entries = parse_read(read).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id, "1-0");
        assert_eq!(
            decode_job(entries[0].fields.as_deref()).unwrap().message_id,
            domain::MessageId(7)
        );
        assert!(parse_read(Value::Null).unwrap().is_empty());

        // Redis 7: [cursor, entries, deleted]; Redis 6.2: deleted entries as nil data.
        let claim = Value::Array(vec![
            Value::from("0-0"),
            Value::Array(vec![
                entry("2-0", "garbage"),
                Value::Array(vec![Value::from("3-0"), Value::Null]),
            ]),
            Value::Array(vec![Value::from("4-0")]),
        ]);
        let (cursor, entries) = parse_autoclaim(claim).unwrap();
        assert_eq!(cursor, "0-0");
        assert_eq!(entries.len(), 2);
        assert!(decode_job(entries[0].fields.as_deref()).is_none());
        assert!(entries[1].fields.is_none());
    }
}
