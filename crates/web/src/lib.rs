#![doc = include_str!("../README.md")]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::get;
use domain::{Clock, ConfirmationTokens};
use mailer::Templates;
use queue::JobQueue;
use store::UserStore;
use tower_http::set_header::SetResponseHeaderLayer;

mod error;
mod flash;
mod handlers;

pub use error::AppError;
pub use flash::Flash;

/// The page templates compiled into the binary (names relative to `templates/`).
pub const PAGE_TEMPLATES: &[(&str, &str)] = &[
    (
        "web/_base.html",
        include_str!("../../../templates/web/_base.html"),
    ),
    (
        "web/home.html",
        include_str!("../../../templates/web/home.html"),
    ),
    (
        "web/message.html",
        include_str!("../../../templates/web/message.html"),
    ),
];

/// The stylesheet, served from `/static/main.css` so pages look right offline.
pub const MAIN_CSS: &str = include_str!("../../../templates/web/static/main.css");

/// Largest request body accepted; larger ones get 413.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Web-facing settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// List registered users on the home page (a demo feature of the tutorial; off in production).
    pub show_users: bool,
    /// How many users the home page lists at most, newest first.
    pub users_limit: u64,
    /// Confirmation link lifetime, in seconds.
    pub token_max_age: u64,
    /// Mark cookies `Secure` (when served over https).
    pub secure_cookies: bool,
    /// Longest wait for the queue after a registration is committed.
    pub publish_timeout: Duration,
    /// After a failed publish, how long registrations skip the queue (the sweeper covers them).
    pub publish_backoff: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            show_users: false,
            users_limit: 50,
            token_max_age: 3600,
            secure_cookies: false,
            publish_timeout: Duration::from_secs(2),
            publish_backoff: Duration::from_secs(5),
        }
    }
}

/// Everything the handlers need, as trait objects so tests can swap any of them.
#[derive(Debug, Clone)]
pub struct AppState {
    pub users: Arc<dyn UserStore>,
    pub queue: Arc<dyn JobQueue>,
    pub tokens: Arc<ConfirmationTokens>,
    pub clock: Arc<dyn Clock>,
    pub pages: Templates,
    pub config: Arc<WebConfig>,
    /// Shared by all requests: closed for a while after the queue fails.
    pub queue_gate: Arc<QueueGate>,
}

/// A small circuit breaker in front of the queue.
#[derive(Debug, Default)]
pub struct QueueGate {
    closed_until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl QueueGate {
    /// Whether publishing should be skipped right now.
    pub fn is_closed(&self) -> bool {
        self.lock()
            .is_some_and(|until| tokio::time::Instant::now() < until)
    }

    /// Skip publishing for `period`.
    pub fn close_for(&self, period: Duration) {
        *self.lock() = Some(tokio::time::Instant::now() + period);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<tokio::time::Instant>> {
        self.closed_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The application's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(handlers::home).post(handlers::register))
        .route("/confirm/{token}", get(handlers::confirm))
        .route("/healthz", get(handlers::healthz))
        .route("/static/main.css", get(handlers::stylesheet))
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(header_layer(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header_layer(header::REFERRER_POLICY, "no-referrer"))
        .layer(header_layer(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header_layer(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        ))
        .with_state(state)
}

fn header_layer(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

#[cfg(test)]
mod tests;
