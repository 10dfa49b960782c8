//! The web server from the settings: its state, and serving it (with delivery in-process when
//! there is no Redis).

use std::net::SocketAddr;
use std::sync::Arc;

use delivery::DEFAULT_BATCH_MAX;
use domain::NoSecretKey;
use mailer::{Mailer, Templates};
use settings::Settings;
use store::batch::BatchedUsers;
use tokio::net::TcpListener;
use tokio::sync::watch;
use web::{AppState, Csrf, PAGE_TEMPLATES, WebConfig};

use crate::{Services, delivery_engine};

/// The web application state for these settings and services.
pub fn app_state(settings: &Settings, services: &Services) -> Result<AppState, NoSecretKey> {
    let web = &settings.web;
    let config = WebConfig {
        show_users: web.show_users,
        token_max_age: settings.token_max_age.as_secs(),
        secure_cookies: settings.https(),
        resend: web.resend,
        rate_limit_per_ip: web.rate_limit_per_ip,
        trusted_proxy_header: web.trusted_proxy_header.clone(),
        request_timeout: web.request_timeout,
        admin_token: web.admin_token.clone(),
        ..WebConfig::default()
    };
    // Concurrent registrations and confirmations share statements and commits.
    let users = Arc::new(BatchedUsers::new(services.store.clone(), DEFAULT_BATCH_MAX));
    Ok(AppState::new(
        users,
        services.store.clone(),
        services.queue.clone(),
        Arc::new(services.tokens.clone()),
        Csrf::new(&settings.secret_key_strs())?,
        services.clock.clone(),
        Templates::new(PAGE_TEMPLATES, settings.template_dir.clone()),
        config,
    )
    .with_metrics(settings::metrics::install()))
}

/// Serves HTTP on `listener` until `shutdown` turns true.
///
/// With `in_process_mailer` (the embedded default, no REDIS_URL) it also runs delivery — the
/// consumer loop and the sweeper — and waits for emails in flight before returning. With Redis
/// it passes `None`: the separate `worker` process delivers, and the server only publishes.
pub async fn serve(
    settings: &Settings,
    services: Services,
    in_process_mailer: Option<Arc<dyn Mailer>>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Before delivery starts, so that its series are registered too.
    settings::metrics::install();
    let delivery = in_process_mailer.map(|mailer| {
        tracing::info!(
            provider = mailer.provider(),
            "delivering email in-process (no REDIS_URL)"
        );
        let engine = delivery_engine(settings, &services, mailer);
        tokio::spawn(engine.run(shutdown.clone()))
    });
    let router = web::router(app_state(settings, &services)?);
    let mut stop = shutdown.clone();
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await?;
    if let Some(delivery) = delivery {
        delivery.await?;
    }
    Ok(())
}
