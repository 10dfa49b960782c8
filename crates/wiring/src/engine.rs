//! Delivery from the settings: the engine, and the worker's ops listener.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::TimeDelta;
use delivery::{
    DEFAULT_BATCH_MAX, Deliverer, DeliveryConfig, EMAIL_TEMPLATES, Engine, Reminders, Renderer,
    Retention, RunConfig, SweepConfig,
};
use mailer::{Mailer, Templates};
use metrics_exporter_prometheus::PrometheusHandle;
use settings::Settings;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use web::ops::Probes;

use crate::Services;

/// The delivery engine these settings describe, sending through `mailer`: claims and sends
/// recorded in batches, WORKER_CONCURRENCY jobs in flight, the sweeper every SWEEP_INTERVAL.
/// Run it with [`Engine::run`]. Needs a Tokio runtime (the batches run on tasks).
pub fn delivery_engine(
    settings: &Settings,
    services: &Services,
    mailer: Arc<dyn Mailer>,
) -> Engine {
    let delivery = &settings.delivery;
    let renderer = Renderer::new(
        Templates::new(EMAIL_TEMPLATES, settings.template_dir.clone()),
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
    Engine {
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
    }
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
