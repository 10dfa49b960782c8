#![doc = include_str!("../README.md")]

use std::sync::Arc;

use mailer::{Mailer, Templates};
use secrecy::ExposeSecret;
use settings::Settings;
use tokio::net::TcpListener;
use tokio::sync::watch;
use web::{AdminToken, AppState, Csrf, PAGE_TEMPLATES, WebConfig};
pub use worker::{Services, report, shutdown_signal};

pub mod token_tool;

// Settings validates ADMIN_TOKEN's length before the web crate's `AdminToken` sees it; the two
// crates do not depend on each other, so this keeps their minimums one number.
const _: () = assert!(settings::MIN_ADMIN_TOKEN_LEN == web::MIN_ADMIN_TOKEN_LEN);

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
        admin_token: settings
            .admin_token
            .as_ref()
            .map(|token| {
                AdminToken::new(token.expose_secret())
                    .ok_or_else(|| anyhow::anyhow!("ADMIN_TOKEN is too short"))
            })
            .transpose()?,
        ..WebConfig::default()
    };
    // Concurrent registrations and confirmations share statements and commits.
    let users = Arc::new(store::batch::BatchedUsers::new(
        services.store.clone(),
        worker::DEFAULT_BATCH_MAX,
    ));
    Ok(AppState::new(
        users,
        services.store.clone(),
        services.queue.clone(),
        Arc::new(services.tokens.clone()),
        Csrf::new(&keys)?,
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

/// What `server users show` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserReport {
    pub found: bool,
    pub text: String,
}

/// One user's state and their messages (newest first, at most 50), as `key: value` lines; for
/// the operator who typed the address, so it is shown in full (this is not a log).
pub async fn user_report(
    users: &dyn store::UserStore,
    messages: &dyn store::MessageStore,
    email: &domain::EmailAddress,
) -> anyhow::Result<UserReport> {
    use std::fmt::Write as _;
    let Some(user) = users.find_by_email(email).await? else {
        return Ok(UserReport {
            found: false,
            text: format!("no user with the address {email}\n"),
        });
    };
    let mut text = String::new();
    let when =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    writeln!(text, "user: {}", user.id)?;
    writeln!(text, "email: {}", user.email)?;
    writeln!(text, "confirmed: {}", user.confirmed)?;
    writeln!(text, "email_sent: {}", user.email_sent)?;
    writeln!(text, "registered_on: {}", when(user.registered_on))?;
    if let Some(at) = user.confirmed_on {
        writeln!(text, "confirmed_on: {}", when(at))?;
    }
    let records = messages
        .list(store::MessageQuery {
            recipient: Some(email.clone()),
            before: None,
            limit: 50,
        })
        .await?;
    writeln!(text, "messages: {}", records.len())?;
    for r in records {
        let m = &r.message;
        write!(
            text,
            "- message {} {} {} attempts={} created={}",
            m.id,
            m.kind.as_str(),
            m.status,
            m.attempts,
            when(m.created_at)
        )?;
        if let Some(at) = r.sent_at {
            write!(text, " sent={}", when(at))?;
        }
        if let Some(id) = &r.provider_message_id {
            write!(text, " provider_id={id}")?;
        }
        if let Some(error) = &r.last_error {
            write!(text, " last_error={error:?}")?;
        }
        writeln!(text)?;
    }
    Ok(UserReport { found: true, text })
}

/// Checks that a server listening on `addr` is ready: it answers `GET /readyz` (database and
/// queue reachable) with 200 within `timeout`. An unspecified listen address (`0.0.0.0`, `::`)
/// is probed on loopback.
pub async fn probe(addr: std::net::SocketAddr, timeout: std::time::Duration) -> anyhow::Result<()> {
    worker::probe(addr, "/readyz", timeout).await
}
