//! The web server from the settings: its state, and serving it (with delivery in-process when
//! there is no Redis).

use std::sync::Arc;

use anyhow::Context as _;
use delivery::DEFAULT_BATCH_MAX;
use mailer::Mailer;
use settings::Settings;
use store::batch::BatchedUsers;
use tokio::net::TcpListener;
use tokio::sync::watch;
use web::{AppState, Csrf, LateRouter, ServeConfig, WebConfig};

use crate::{Services, delivery_engine, feedback_loop};

/// The web application state for these settings and services.
pub fn app_state(settings: &Settings, services: &Services) -> anyhow::Result<AppState> {
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
        api_keys: web.api_keys.clone(),
        confirmed_redirect: web.confirmed_redirect.clone(),
        allowed_redirect_origins: web.allowed_redirect_origins.clone(),
        confirm_on_get: web.confirm_on_get,
        link_rate_limit_per_ip: web.link_rate_limit_per_ip,
        public_origin: Some(settings.base_url.origin().ascii_serialization()),
        hsts: settings.https(),
        ..WebConfig::default()
    };
    // Concurrent registrations and confirmations share statements and commits.
    let users = Arc::new(BatchedUsers::new(services.store.clone(), DEFAULT_BATCH_MAX));
    let state = AppState::new(
        users,
        services.store.clone(),
        services.queue.clone(),
        Arc::new(services.tokens.clone()),
        Csrf::new(&settings.secret_key_strs())?.over_https(settings.https()),
        services.clock.clone(),
        web::page_templates(settings.template_dir.clone())
            .context("cannot use the page messages under TEMPLATE_DIR")?,
        config,
    )
    .with_metrics(settings::metrics::install())
    .with_suppressions(services.store.clone())
    .with_feedback(services.store.clone())
    .with_accounts(web::Accounts::new(
        services.store.clone(),
        domain::Passwords::new().context("cannot set up password hashing")?,
        &settings.secret_key_strs(),
        services.clock.clone(),
    )?);
    Ok(match &services.shared_limits {
        Some(limits) => state.with_shared_limits(Arc::clone(limits)),
        None => state,
    })
}

/// Serves HTTP on `listener` until `shutdown` turns true, with these connected `services`.
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
    let late = LateRouter::default();
    // The routes are in place before the first request is accepted.
    let app = start_app(settings, services, in_process_mailer, &late, &shutdown).await?;
    let serving = tokio::spawn(web::serve(
        listener,
        late.router(),
        serve_config(settings),
        shutdown,
    ));
    serving.await??;
    app.finish().await
}

/// The server as `server serve` runs it: listens at once, and while the database or the queue
/// cannot be reached yet, answers 503 (`/healthz` 200, `/readyz` `not ready`) and tries again
/// with backoff ([`Services::connect_patiently`]); then serves the pages. A setting that cannot
/// work stops it with an error.
pub async fn run_server(
    settings: &Settings,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    tracing::info!("listening on http://{}", listener.local_addr()?);
    let late = LateRouter::default();
    let serving = tokio::spawn(web::serve(
        listener,
        late.router(),
        serve_config(settings),
        shutdown.clone(),
    ));
    let started = async {
        let Some(services) = Services::connect_patiently(settings, shutdown.clone()).await? else {
            return Ok(None);
        };
        let mailer = if settings.embedded_queue() {
            Some(crate::build_mailer(settings).await?)
        } else {
            None
        };
        start_app(settings, services, mailer, &late, &shutdown)
            .await
            .map(Some)
    };
    let app = match started.await {
        Ok(app) => app,
        Err(error) => {
            serving.abort();
            return Err(error).context("cannot start");
        }
    };
    serving.await??;
    match app {
        Some(app) => app.finish().await,
        None => Ok(()),
    }
}

fn serve_config(settings: &Settings) -> ServeConfig {
    ServeConfig {
        header_read_timeout: settings.web.header_read_timeout,
        max_connections: settings.web.max_connections,
    }
}

/// What runs beside the pages: delivery in-process, the ops listener, work done after answers.
struct Running {
    delivery: Option<tokio::task::JoinHandle<()>>,
    ops: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    background: web::Background,
}

impl Running {
    /// Waits for them once the pages are served no more.
    async fn finish(self) -> anyhow::Result<()> {
        self.background.wait().await;
        if let Some(ops) = self.ops {
            ops.await??;
        }
        if let Some(delivery) = self.delivery {
            delivery.await?;
        }
        Ok(())
    }
}

/// Starts delivery (with an in-process mailer) and the ops listener, and sets the pages'
/// routes on `late`.
async fn start_app(
    settings: &Settings,
    services: Services,
    in_process_mailer: Option<Arc<dyn Mailer>>,
    late: &LateRouter,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    // Before delivery starts, so that its series are registered too.
    settings::metrics::install();
    let delivery = match in_process_mailer {
        Some(mailer) => {
            tracing::info!(
                provider = mailer.provider(),
                "delivering email in-process (no REDIS_URL)"
            );
            let mut engine = delivery_engine(settings, &services, mailer)?;
            engine.feedback = feedback_loop(settings, &services).await;
            Some(tokio::spawn(engine.run(shutdown.clone())))
        }
        None => None,
    };
    let state = app_state(settings, &services)?;
    let ops = match settings.ops_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on OPS_ADDR={addr}"))?;
            tracing::info!(
                "ops listener on http://{} (/healthz, /readyz, /metrics)",
                listener.local_addr()?
            );
            Some(tokio::spawn(web::ops::serve(
                listener,
                state.probes(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let background = state.background.clone();
    late.set(web::router(state));
    Ok(Running {
        delivery,
        ops,
        background,
    })
}
