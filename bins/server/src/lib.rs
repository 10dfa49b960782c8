#![doc = include_str!("../README.md")]

use std::sync::Arc;

use anyhow::Context;

use domain::{Clock, ConfirmationTokens};
use mailer::{Mailer, Templates};
use queue::JobQueue;
use settings::Settings;
use store::SeaStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use web::{AppState, PAGE_TEMPLATES, WebConfig};
use worker::{Deliverer, RunConfig};

pub mod token_tool;

/// The adapters the server runs on.
#[derive(Debug, Clone)]
pub struct Services {
    pub store: Arc<SeaStore>,
    pub queue: Arc<dyn JobQueue>,
    pub mailer: Arc<dyn Mailer>,
    pub tokens: ConfirmationTokens,
    pub clock: Arc<dyn Clock>,
}

impl Services {
    /// Builds every adapter from the settings (connecting to, and for SQLite migrating, the
    /// database).
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let keys = settings.signing_keys()?;
        if keys.using_development_key {
            tracing::warn!(
                "SECRET_KEY is not set: using the development key. Links are forgeable; set SECRET_KEY outside local development"
            );
        }
        Ok(Self {
            store: Arc::new(
                settings
                    .connect_store()
                    .await
                    .context("cannot use the database at DATABASE_URL")?,
            ),
            queue: settings.build_queue()?,
            mailer: settings.build_mailer()?,
            tokens: keys.tokens,
            clock: Arc::new(domain::SystemClock),
        })
    }
}

/// The web application state for these settings and services.
pub fn app_state(settings: &Settings, services: &Services) -> AppState {
    AppState {
        users: services.store.clone(),
        queue: services.queue.clone(),
        tokens: Arc::new(services.tokens.clone()),
        clock: services.clock.clone(),
        pages: Templates::new(PAGE_TEMPLATES, settings.template_dir.clone()),
        config: Arc::new(WebConfig {
            show_users: settings.show_users(),
            token_max_age: settings.token_max_age,
            secure_cookies: settings.base_url.starts_with("https://"),
            ..WebConfig::default()
        }),
    }
}

/// Serves HTTP on `listener` until `shutdown` turns true. Without Redis it also runs the
/// delivery loop and the sweeper in-process, and waits for emails in flight before returning.
pub async fn serve(
    settings: &Settings,
    services: Services,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut background = tokio::task::JoinSet::new();
    if settings.embedded_queue() {
        let deliverer = Arc::new(Deliverer::from_settings(
            settings,
            services.store.clone(),
            services.mailer.clone(),
            services.tokens.clone(),
            services.clock.clone(),
        ));
        let run_config = RunConfig {
            concurrency: settings.worker_concurrency,
            ..RunConfig::default()
        };
        background.spawn(worker::run(
            services.queue.clone(),
            deliverer,
            run_config,
            shutdown.clone(),
        ));
        background.spawn(worker::run_sweeper(
            services.store.clone(),
            services.queue.clone(),
            services.clock.clone(),
            worker::DEFAULT_SWEEP_INTERVAL,
            shutdown.clone(),
        ));
        tracing::info!(
            "no REDIS_URL: delivering email in-process (MAILER={:?})",
            settings.mailer
        );
    }
    let router = web::router(app_state(settings, &services));
    let mut stop = shutdown.clone();
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    while background.join_next().await.is_some() {}
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}
