#![doc = include_str!("../README.md")]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use domain::{AdminToken, ApiKeys, Clock, ConfirmationTokens, ResendPolicy};
use mailer::Templates;
use queue::JobQueue;
use store::{FeedbackStore, MessageStore, SuppressionStore, UserStore};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

mod account;
mod admin;
pub mod api;
mod code;
mod confirm;
mod csrf;
mod error;
mod flash;
mod forms;
pub mod i18n;
mod limits;
pub mod ops;
mod pages;
mod redirect;
mod request_id;
mod serve;
mod stop;
mod users_table;

pub use account::{
    Accounts, SESSION_COOKIE, SESSION_COOKIE_HTTPS, SESSION_LIFETIME, SIGN_IN_FAILURES_PER_ACCOUNT,
    SIGN_IN_FAILURES_PER_IP_MINUTE,
};
pub use csrf::{CSRF_COOKIE, CSRF_COOKIE_HTTPS, CSRF_MAX_AGE, Csrf};
pub use error::AppError;
pub use flash::Flash;
pub use i18n::{PAGE_MESSAGES, page_templates};
pub use limits::{AccountThrottle, FailureThrottle, IpRateLimiter, client_ip};
pub use serve::{LateRouter, ServeConfig, bind, serve};

/// Wrong dashboard or API credentials allowed per client IP and minute; beyond them, 429.
pub const ADMIN_FAILURES_PER_MINUTE: u32 = 10;
pub use request_id::{REQUEST_ID_HEADER, request_id_from};

/// The page templates compiled into the binary (names relative to `templates/`).
pub const PAGE_TEMPLATES: &[(&str, &str)] = &[
    (
        "web/_base.html",
        include_str!("../../../templates/web/_base.html"),
    ),
    (
        "web/_users.html",
        include_str!("../../../templates/web/_users.html"),
    ),
    (
        "web/home.html",
        include_str!("../../../templates/web/home.html"),
    ),
    (
        "web/admin.html",
        include_str!("../../../templates/web/admin.html"),
    ),
    (
        "web/admin_message.html",
        include_str!("../../../templates/web/admin_message.html"),
    ),
    (
        "web/message.html",
        include_str!("../../../templates/web/message.html"),
    ),
    (
        "web/confirm.html",
        include_str!("../../../templates/web/confirm.html"),
    ),
    (
        "web/code.html",
        include_str!("../../../templates/web/code.html"),
    ),
    (
        "web/stop.html",
        include_str!("../../../templates/web/stop.html"),
    ),
    (
        "web/admin_suppressions.html",
        include_str!("../../../templates/web/admin_suppressions.html"),
    ),
    (
        "web/signin.html",
        include_str!("../../../templates/web/signin.html"),
    ),
    (
        "web/signin_code.html",
        include_str!("../../../templates/web/signin_code.html"),
    ),
    (
        "web/account.html",
        include_str!("../../../templates/web/account.html"),
    ),
    (
        "web/totp.html",
        include_str!("../../../templates/web/totp.html"),
    ),
    (
        "web/recovery_codes.html",
        include_str!("../../../templates/web/recovery_codes.html"),
    ),
    (
        "web/forgot.html",
        include_str!("../../../templates/web/forgot.html"),
    ),
    (
        "web/reset.html",
        include_str!("../../../templates/web/reset.html"),
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
    /// Cooldown and daily cap on confirmation emails to one address.
    pub resend: ResendPolicy,
    /// Form posts per minute per client IP; 0 = no limit.
    pub rate_limit_per_ip: u32,
    /// The header a trusted reverse proxy puts the client's IP in (e.g. `x-forwarded-for`);
    /// `None` = use the TCP peer address.
    pub trusted_proxy_header: Option<HeaderName>,
    /// Longest time a request may take (reading the body included) before a 408.
    pub request_timeout: Duration,
    /// The delivery dashboard's token; `None` = no `/admin` at all.
    pub admin_token: Option<AdminToken>,
    /// The JSON API's keys (`API_KEYS`); `None` = no `/api/` at all.
    pub api_keys: Option<ApiKeys>,
    /// Where a confirmed (or already confirmed) visitor is sent instead of the home page
    /// (`CONFIRMED_REDIRECT_URL`, `email_confirmed=1` already in its query).
    pub confirmed_redirect: Option<String>,
    /// The origins a registration through the API may name as its own confirmation redirect
    /// (`ALLOWED_REDIRECT_ORIGINS`, serialized as browsers do); empty: none.
    pub allowed_redirect_origins: Vec<String>,
    /// Opening the emailed link confirms (`CONFIRM_ON_GET`), instead of showing a button.
    pub confirm_on_get: bool,
    /// Requests to the emailed links (`/confirm/…`, `/stop/…`, any method) per minute per
    /// client IP; 0 = no limit.
    pub link_rate_limit_per_ip: u32,
    /// This site's origin as browsers send it (`https://example.com`), from BASE_URL; a form
    /// post with another `Origin` is refused. `None`: not checked.
    pub public_origin: Option<String>,
    /// Send `Strict-Transport-Security` (BASE_URL is https).
    pub hsts: bool,
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
            resend: ResendPolicy::default(),
            rate_limit_per_ip: 20,
            trusted_proxy_header: None,
            request_timeout: Duration::from_secs(10),
            admin_token: None,
            api_keys: None,
            confirmed_redirect: None,
            allowed_redirect_origins: Vec::new(),
            confirm_on_get: false,
            link_rate_limit_per_ip: 30,
            public_origin: None,
            hsts: false,
        }
    }
}

/// Everything the handlers need, as trait objects so tests can swap any of them.
#[derive(Debug, Clone)]
pub struct AppState {
    pub users: Arc<dyn UserStore>,
    /// The outbox, for the delivery dashboard.
    pub messages: Arc<dyn MessageStore>,
    pub queue: Arc<dyn JobQueue>,
    pub tokens: Arc<ConfirmationTokens>,
    pub clock: Arc<dyn Clock>,
    pub pages: Templates,
    pub config: Arc<WebConfig>,
    /// Shared by all requests: closed for a while after the queue fails.
    pub queue_gate: Arc<QueueGate>,
    /// Signs and checks the forms' CSRF tokens.
    pub csrf: Arc<Csrf>,
    /// Counts form posts per client IP.
    pub ip_limiter: Arc<IpRateLimiter>,
    /// Counts requests to the emailed links per client IP.
    pub link_limiter: Arc<IpRateLimiter>,
    /// Counts wrong dashboard and API credentials per client IP.
    pub credential_throttle: Arc<FailureThrottle>,
    /// Work done after answering.
    pub background: Background,
    /// The suppression list (the stop link, the dashboard's page); `None`: `/stop/…` and
    /// `/admin/suppressions` are 404. Set with [`AppState::with_suppressions`].
    pub suppressions: Option<Arc<dyn SuppressionStore>>,
    /// The bounces and complaints recorded per message, shown on the dashboard's message page;
    /// `None`: not shown. Set with [`AppState::with_feedback`].
    pub feedback: Option<Arc<dyn FeedbackStore>>,
    /// Sign-in, sessions, the account page and the password reset; `None`: none of their
    /// routes, and no password field on the registration form. Set with
    /// [`AppState::with_accounts`].
    pub accounts: Option<Arc<Accounts>>,
    /// Renders `GET /metrics` (the process-wide recorder); `None` (the default of
    /// [`AppState::new`]): `/metrics` answers 404. Set with [`AppState::with_metrics`].
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The home page's users table, shared by the requests that wait for it at once.
    users_table: Arc<users_table::UsersTable>,
    /// The cached answers of `/readyz` and `/metrics`, shared by the public port and the ops
    /// listener.
    probe_cache: Arc<ops::ProbeCache>,
}

impl AppState {
    /// The state for these parts; the queue gate and the IP limiter (sized from
    /// `config.rate_limit_per_ip`) start empty.
    #[expect(
        clippy::too_many_arguments,
        reason = "one per part; each is a different type"
    )]
    pub fn new(
        users: Arc<dyn UserStore>,
        messages: Arc<dyn MessageStore>,
        queue: Arc<dyn JobQueue>,
        tokens: Arc<ConfirmationTokens>,
        csrf: Csrf,
        clock: Arc<dyn Clock>,
        pages: Templates,
        config: WebConfig,
    ) -> Self {
        let users_table = Arc::new(users_table::UsersTable::new(
            Arc::clone(&users),
            pages.clone(),
            config.users_limit,
        ));
        let ip_limiter = Arc::new(IpRateLimiter::new(
            config.rate_limit_per_ip,
            Arc::clone(&clock),
        ));
        let link_limiter = Arc::new(IpRateLimiter::new(
            config.link_rate_limit_per_ip,
            Arc::clone(&clock),
        ));
        let credential_throttle = Arc::new(FailureThrottle::new(
            ADMIN_FAILURES_PER_MINUTE,
            Arc::clone(&clock),
        ));
        Self {
            probe_cache: Arc::default(),
            users,
            messages,
            queue,
            tokens,
            clock,
            pages,
            ip_limiter,
            link_limiter,
            credential_throttle,
            background: Background::default(),
            suppressions: None,
            feedback: None,
            accounts: None,
            config: Arc::new(config),
            queue_gate: Arc::default(),
            csrf: Arc::new(csrf),
            metrics: None,
            users_table,
        }
    }

    /// The same state, rendering `GET /metrics` with `handle` (and the web counters registered
    /// at 0).
    #[must_use]
    pub fn with_metrics(mut self, handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        ops::register_server_metrics();
        self.metrics = Some(handle);
        self
    }

    /// The same state with the suppression list behind the stop link and the dashboard.
    #[must_use]
    pub fn with_suppressions(mut self, suppressions: Arc<dyn SuppressionStore>) -> Self {
        self.suppressions = Some(suppressions);
        self
    }

    /// The same state with accounts: a password on the registration form, sign-in, the account
    /// page and the password reset.
    #[must_use]
    pub fn with_accounts(mut self, accounts: Accounts) -> Self {
        self.accounts = Some(Arc::new(accounts));
        self
    }

    /// The same state with the recorded bounces and complaints shown on the dashboard.
    #[must_use]
    pub fn with_feedback(mut self, feedback: Arc<dyn FeedbackStore>) -> Self {
        self.feedback = Some(feedback);
        self
    }

    /// The same state with the per-IP form and link limits counted in `store`, shared by every
    /// server using it (REDIS_URL set), instead of in this process alone.
    #[must_use]
    pub fn with_shared_limits(mut self, store: Arc<dyn queue::SharedRateLimit>) -> Self {
        self.ip_limiter = Arc::new(
            IpRateLimiter::new(self.config.rate_limit_per_ip, Arc::clone(&self.clock))
                .shared(Arc::clone(&store), "form"),
        );
        self.link_limiter = Arc::new(
            IpRateLimiter::new(self.config.link_rate_limit_per_ip, Arc::clone(&self.clock))
                .shared(store, "link"),
        );
        self
    }

    /// What `/readyz` and `/metrics` look at: one set of cached answers for the public port
    /// and the ops listener.
    pub fn probes(&self) -> ops::Probes {
        ops::Probes::new(
            self.users.clone(),
            self.messages.clone(),
            self.queue.clone(),
            self.clock.clone(),
            self.metrics.clone(),
        )
        .sharing(Arc::clone(&self.probe_cache))
    }
}

/// Work a handler does after its answer (the resend behind a registration of an existing
/// address, a publish), so that every answer takes the same time whatever the address. Tracked:
/// a stopping server waits for it ([`Self::wait`]).
#[derive(Debug, Clone, Default)]
pub struct Background(tokio_util::task::TaskTracker);

impl Background {
    /// Runs `work` on a task of its own.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.0.spawn(work);
    }

    /// Waits until no work is left (new work may be spawned meanwhile and is waited for too).
    pub async fn wait(&self) {
        self.0.close();
        self.0.wait().await;
        self.0.reopen();
    }
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
    let timeout = state.config.request_timeout;
    let hsts = state.config.hsts;
    let mut routes = Router::new();
    if state.config.admin_token.is_some() {
        routes = routes.merge(admin::routes(state.clone()));
    }
    if state.config.api_keys.is_some() {
        routes = routes.nest(api::PREFIX, api::routes(state.clone()));
    }
    if state.accounts.is_some() {
        routes = routes.merge(account::routes());
    }
    routes
        .route("/", get(pages::home).post(forms::register))
        .route("/resend", post(forms::resend))
        .route("/confirm/{token}", get(confirm::show).post(confirm::submit))
        .route("/code", get(code::show).post(code::submit))
        .route("/stop/{token}", get(stop::show).post(stop::submit))
        .route("/static/main.css", get(pages::stylesheet))
        .merge(ops::public_router(state.probes()))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::limit_posts,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyTimeoutLayer::new(timeout))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(header_layer(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header_layer(header::REFERRER_POLICY, "no-referrer"))
        .layer(header_layer(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header_layer(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        ))
        // Over https, browsers are told to come back only over https (a year).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            move |_: &axum::response::Response| {
                hsts.then(|| HeaderValue::from_static("max-age=31536000; includeSubDomains"))
            },
        ))
        // Every answer, a 408 or 413 too, in the visitor's language.
        .layer(axum::middleware::from_fn(i18n::negotiate))
        // Outermost: the request span covers every layer above (a 408 or 413 is logged too).
        .layer(axum::middleware::from_fn(request_id::track))
        .with_state(state)
}

fn header_layer(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

#[cfg(test)]
mod tests;
