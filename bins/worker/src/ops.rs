//! Operations: the worker's HTTP listener (`WORKER_METRICS_ADDR`), the readiness probe both
//! binaries' `healthcheck` use, `worker send-test-email` and `worker stats`.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::EmailAddress;
use mailer::{MailError, Mailer, Message};
use metrics_exporter_prometheus::PrometheusHandle;
use queue::JobQueue;
use store::MessageStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use web::ops::Probes;

use crate::{Services, WorkerError};

/// The subject of `worker send-test-email`.
pub const TEST_EMAIL_SUBJECT: &str = "Test email from the confirmation service";

/// Starts the listener serving `/healthz`, `/readyz` and `/metrics` (rendered by `metrics`) on
/// `addr`, over the database and queue of `services`, until `shutdown` turns true. Returns the
/// address it listens on (useful with port 0) and its task.
pub async fn start_listener(
    addr: SocketAddr,
    services: &Services,
    metrics: PrometheusHandle,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let probes = probes(services, Some(metrics));
    tracing::info!("ops listener on http://{local} (/healthz, /readyz, /metrics)");
    let task = tokio::spawn(web::ops::serve(listener, probes, shutdown));
    Ok((local, task))
}

/// Checks that an HTTP server on `addr` answers `GET path` with 200 within `timeout` (for the
/// binaries' `healthcheck` subcommands: plain HTTP/1.1 on a TCP socket, no client library). An
/// unspecified address (`0.0.0.0`, `::`) is probed on loopback. The error names the status and
/// the first line of the body (`/readyz` puts the failed dependency there).
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        // The answers of /healthz and /readyz are short; read at most 4 KiB of them.
        let mut response = Vec::new();
        stream.take(4096).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {addr}{path} within {timeout:?}"))??;
    let response = String::from_utf8_lossy(&response);
    let status_line = response.lines().next().unwrap_or_default();
    if status_line.split(' ').nth(1) == Some("200") {
        return Ok(());
    }
    let reason: Vec<&str> = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| {
            body.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    anyhow::bail!(
        "{addr}{path} answered {status_line:?}{}",
        if reason.is_empty() {
            String::new()
        } else {
            format!(": {}", reason.join("; "))
        }
    )
}

/// The message `worker send-test-email` sends: a subject, text and HTML, no link, no token.
pub fn test_message(to: &EmailAddress, provider: &str, now: DateTime<Utc>) -> Message {
    let when = now.format("%Y-%m-%d %H:%M:%S UTC");
    Message {
        to: to.clone(),
        subject: TEST_EMAIL_SUBJECT.to_owned(),
        text: format!(
            "This is a test email from the email-confirmation service, sent with `worker send-test-email` \
             through the {provider} transport at {when}.\n\nIf you can read it, sending works. No action is needed.\n"
        ),
        html: Some(format!(
            "<p>This is a test email from the email-confirmation service, sent with \
             <code>worker send-test-email</code> through the {provider} transport at {when}.</p>\n\
             <p>If you can read it, sending works. No action is needed.</p>\n"
        )),
        action_url: None,
    }
}

/// Sends [`test_message`] to `to` through `mailer`; on success, the line to print:
/// `sent: provider=<p> message_id=<id>` (`-` when the provider returned no id).
pub async fn send_test_email(
    mailer: &dyn Mailer,
    to: &EmailAddress,
    now: DateTime<Utc>,
) -> Result<String, MailError> {
    let provider = mailer.provider();
    let sent = mailer.send(&test_message(to, provider, now)).await?;
    tracing::info!(to = %to.masked(), provider, "test email sent");
    Ok(format!(
        "sent: provider={provider} message_id={}",
        sent.provider_message_id.as_deref().unwrap_or("-")
    ))
}

/// What `worker stats` prints: one `name value` line each for the message counts by state, the
/// age in whole seconds of the oldest owed message (0 when none is owed) and, when `queue` is
/// given, the number of jobs waiting in it.
pub async fn stats_report(
    messages: &dyn MessageStore,
    queue: Option<&dyn JobQueue>,
    now: DateTime<Utc>,
) -> Result<String, WorkerError> {
    let stats = messages.stats().await?;
    let age = stats
        .oldest_owed
        .map(|oldest| (now - oldest).num_seconds().max(0))
        .unwrap_or(0);
    let mut out = format!(
        "queued {}\nsending {}\nretrying {}\nsent {}\ndead {}\noldest_owed_age_seconds {age}\n",
        stats.queued, stats.sending, stats.retrying, stats.sent, stats.dead
    );
    if let Some(queue) = queue {
        out.push_str(&format!("queue_depth {}\n", queue.depth().await?));
    }
    Ok(out)
}

/// Registers the delivery series of `provider` at 0 (so they are scraped before the first send).
pub fn register_delivery_metrics(provider: &'static str) {
    metrics::counter!("emails_sent_total", "provider" => provider).increment(0);
    for outcome in ["retry", "dead", "account"] {
        metrics::counter!("emails_failed_total", "provider" => provider, "outcome" => outcome)
            .increment(0);
    }
    metrics::counter!("retries_scheduled_total").increment(0);
    metrics::counter!("messages_dead_total").increment(0);
}

/// What the worker's `/readyz` and `/metrics` look at: the database and queue of `services`.
pub fn probes(services: &Services, metrics: Option<PrometheusHandle>) -> Probes {
    Probes::new(
        services.store.clone(),
        services.store.clone(),
        services.queue.clone(),
        services.clock.clone(),
        metrics,
    )
}
