#![doc = include_str!("../README.md")]

use std::sync::Arc;

use mailer::{Mailer, Templates};
use secrecy::ExposeSecret;
use settings::Settings;
use tokio::net::TcpListener;
use tokio::sync::watch;
use web::{AppState, Csrf, PAGE_TEMPLATES, WebConfig};
pub use worker::{Services, report, shutdown_signal};

pub mod token_tool;

/// The web application state for these settings and services.
pub fn app_state(settings: &Settings, services: &Services) -> anyhow::Result<AppState> {
    let (keys, _) = settings.secret_keys()?;
    let keys: Vec<&str> = keys.iter().map(|k| k.expose_secret()).collect();
    let trusted_proxy_header = settings
        .trusted_proxy_header()?
        .map(axum::http::HeaderName::try_from)
        .transpose()?;
    let config = WebConfig {
        show_users: settings.show_users(),
        token_max_age: settings.token_max_age,
        secure_cookies: settings.base_url.starts_with("https://"),
        resend: settings.resend_policy()?,
        rate_limit_per_ip: settings.rate_limit_per_ip,
        trusted_proxy_header,
        request_timeout: settings.request_timeout()?,
        ..WebConfig::default()
    };
    Ok(AppState::new(
        services.store.clone(),
        services.queue.clone(),
        Arc::new(services.tokens.clone()),
        Csrf::new(&keys)?,
        services.clock.clone(),
        Templates::new(PAGE_TEMPLATES, settings.template_dir.clone()),
        config,
    ))
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
    let delivery = in_process_mailer.map(|mailer| {
        tracing::info!(
            provider = mailer.provider(),
            "delivering email in-process (no REDIS_URL)"
        );
        let (settings, services, shutdown) = (settings.clone(), services.clone(), shutdown.clone());
        tokio::spawn(async move { worker::deliver(&settings, &services, mailer, shutdown).await })
    });
    let router = web::router(app_state(settings, &services)?);
    let mut stop = shutdown.clone();
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await?;
    if let Some(delivery) = delivery {
        delivery.await??;
    }
    Ok(())
}

/// Checks that a server listening on `addr` answers `GET /healthz` with 200 within `timeout`.
/// An unspecified listen address (`0.0.0.0`, `::`) is probed on loopback.
pub async fn probe(addr: std::net::SocketAddr, timeout: std::time::Duration) -> anyhow::Result<()> {
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
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {addr} within {timeout:?}"))??;
    anyhow::ensure!(
        &head[9..12] == b"200",
        "{addr} answered {}",
        String::from_utf8_lossy(&head)
    );
    Ok(())
}
