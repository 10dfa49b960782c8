//! Delivery from the settings: the engine, and the worker's ops listener.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::TimeDelta;
use delivery::{
    DEFAULT_BATCH_MAX, Deliverer, DeliveryConfig, Engine, FeedbackLoop, Reminders, Renderer,
    Retention, RunConfig, SweepConfig,
};
use mailer::{Mailer, SqsFeedbackQueue};
use metrics_exporter_prometheus::PrometheusHandle;
use settings::Settings;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use web::ops::Probes;

use crate::Services;

/// The delivery engine these settings describe, sending through `mailer`: claims and sends
/// recorded in batches, WORKER_CONCURRENCY jobs in flight, the sweeper every SWEEP_INTERVAL.
/// Run it with [`Engine::run`]. Needs a Tokio runtime (the batches run on tasks). An email
/// message file under TEMPLATE_DIR that does not parse is an error.
pub fn delivery_engine(
    settings: &Settings,
    services: &Services,
    mailer: Arc<dyn Mailer>,
) -> anyhow::Result<Engine> {
    let delivery = &settings.delivery;
    let renderer = Renderer::new(
        delivery::email_templates(settings.template_dir.clone())
            .context("cannot use the email messages under TEMPLATE_DIR")?,
        services.tokens.clone(),
        settings.base_url.as_str(),
        settings.token_max_age,
    );
    let config = DeliveryConfig {
        lease: delivery.send_lease,
        retry: delivery.retry,
        max_rate: settings.mail.max_rate,
        account_pause: delivery.account_pause,
    };
    let deliverer = Deliverer::new(
        services.store.clone(),
        mailer,
        renderer,
        services.clock.clone(),
        config,
    )
    .with_batching(DEFAULT_BATCH_MAX);
    let deliverer = match &services.webhooks {
        Some(webhooks) => deliverer.with_webhooks(webhooks.clone()),
        None => deliverer,
    };
    let interval = delivery.sweep_interval;
    Ok(Engine {
        deliverer: Arc::new(deliverer),
        queue: services.queue.clone(),
        messages: services.store.clone(),
        users: services.store.clone(),
        clock: services.clock.clone(),
        run: RunConfig {
            concurrency: delivery.concurrency,
            drain_timeout: delivery.shutdown_timeout,
            ..RunConfig::default()
        },
        sweep: SweepConfig {
            interval,
            // With Redis, give the server's own publish time to arrive before sweeping a
            // message; the embedded queue drops duplicates itself.
            grace: if settings.embedded_queue() {
                TimeDelta::zero()
            } else {
                TimeDelta::from_std(interval * 2).unwrap_or(TimeDelta::seconds(30))
            },
            retention: Retention {
                sent: delivery.sent_retention,
                dead: delivery.dead_retention,
                unconfirmed: delivery.unconfirmed_ttl,
            },
            reminders: delivery.reminder_after.map(|after| Reminders {
                after,
                policy: settings.web.resend,
            }),
            ..SweepConfig::default()
        },
        feedback: None,
    })
}

/// The SES feedback loop over SES_FEEDBACK_QUEUE_URL (an SQS queue, reached through the
/// standard AWS chain and SES_REGION, like SES), or `None` when it is not set. Give it to the
/// engine ([`Engine::feedback`]) of the process that delivers.
pub async fn feedback_loop(settings: &Settings, services: &Services) -> Option<FeedbackLoop> {
    let url = settings.mail.ses_feedback_queue_url.as_deref()?;
    let queue = SqsFeedbackQueue::from_env(settings.mail.ses_region.clone(), url).await;
    tracing::info!(queue_url = url, "reading SES feedback from SQS");
    Some(FeedbackLoop {
        queue: Arc::new(queue),
        store: services.store.clone(),
        clock: services.clock.clone(),
    })
}

/// Starts the worker's listener (WORKER_METRICS_ADDR) serving `/healthz`, `/readyz` and
/// `/metrics` (rendered by `metrics`) over the database and queue of `services`, until
/// `shutdown` turns true. Returns the address it listens on (useful with port 0) and its task.
pub async fn start_ops_listener(
    addr: SocketAddr,
    services: &Services,
    metrics: PrometheusHandle,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let probes = Probes::new(
        services.store.clone(),
        services.store.clone(),
        services.queue.clone(),
        services.clock.clone(),
        Some(metrics),
    );
    tracing::info!("ops listener on http://{local} (/healthz, /readyz, /metrics)");
    let task = tokio::spawn(web::ops::serve(listener, probes, shutdown));
    Ok((local, task))
}
