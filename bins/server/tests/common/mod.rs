//! The in-process harness shared by the flow and log tests: the server's router and the
//! worker's deliverer over real SQLite and the embedded queue, with a captured mailer and a
//! manual clock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use domain::ManualClock;
use http_body_util::BodyExt;
use mailer::MemoryMailer;
use queue::{EmbeddedQueue, JobQueue};
use settings::Settings;
use tower::ServiceExt;
use wiring::Services;

/// The SECRET_KEY of the harness (unless a test overrides it).
pub const SECRET_KEY: &str = "flow-test-secret";

/// Settings over a SQLite database and a mail directory in `dir`, plus `extra` variables.
pub fn settings_for(dir: &Path, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert(
        "DATABASE_URL".into(),
        format!("sqlite://{}?mode=rwc", dir.join("app.db").display()),
    );
    env.insert(
        "MAIL_FILE_DIR".into(),
        dir.join("mail").display().to_string(),
    );
    env.insert("SECRET_KEY".into(), SECRET_KEY.into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    Settings::load_from(env).unwrap()
}

/// The server's router and the worker's deliverer over real SQLite and the embedded queue, with
/// a captured mailer and a manual clock: the whole flow without a socket.
pub struct InProcess {
    pub services: Services,
    pub mailer: Arc<MemoryMailer>,
    pub queue: Arc<EmbeddedQueue>,
    pub clock: Arc<ManualClock>,
    pub app: axum::Router,
    pub deliverer: Arc<delivery::Deliverer>,
    /// The work the server does after answering.
    pub background: web::Background,
}

pub async fn in_process(dir: &Path) -> InProcess {
    in_process_with(dir, &[]).await
}

pub async fn in_process_with(dir: &Path, extra: &[(&str, &str)]) -> InProcess {
    let settings = settings_for(dir, extra);
    let mailer = Arc::new(MemoryMailer::new());
    let queue = Arc::new(EmbeddedQueue::new());
    let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
    let services = Services {
        store: Arc::new(wiring::connect_store(&settings).await.unwrap()),
        queue: queue.clone(),
        tokens: settings.tokens.clone(),
        clock: clock.clone(),
        webhooks: settings.webhooks.as_ref().map(|hooks| {
            let transport = webhooks::HttpTransport::new(hooks.timeout).unwrap();
            webhooks::Webhooks::new(hooks.signer.clone(), Arc::new(transport))
        }),
        shared_limits: None,
    };
    let state = wiring::app_state(&settings, &services).unwrap();
    let background = state.background.clone();
    let app = web::router(state);
    // The deliverer `worker run` and the embedded server use, on the captured mailer.
    let deliverer = wiring::delivery_engine(&settings, &services, mailer.clone())
        .unwrap()
        .deliverer;
    InProcess {
        services,
        mailer,
        queue,
        clock,
        app,
        deliverer,
        background,
    }
}

impl InProcess {
    /// `POST /` with `email=<encoded>` (already form-encoded) and the CSRF token and cookie of a
    /// freshly loaded home page, as a browser would send them.
    pub async fn register(&self, encoded: &str) -> Response {
        self.post("/", encoded).await
    }

    /// A form post to `uri` with `email=<encoded>`, like [`Self::register`].
    pub async fn post(&self, uri: &str, encoded: &str) -> Response {
        self.post_in(None, uri, encoded).await
    }

    /// [`Self::post`] from a browser whose `Accept-Language` is `language` (none: no header).
    pub async fn post_in(&self, language: Option<&str>, uri: &str, encoded: &str) -> Response {
        let with_language = |request: axum::http::request::Builder| match language {
            Some(language) => request.header(header::ACCEPT_LANGUAGE, language),
            None => request,
        };
        let home = self
            .app
            .clone()
            .oneshot(
                with_language(Request::get("/"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let cookies = set_cookies(home.headers());
        let body = home.into_body().collect().await.unwrap().to_bytes();
        let (cookie, token) = csrf_from(&cookies, &String::from_utf8_lossy(&body));
        let request = with_language(Request::post(uri))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookie)
            .body(Body::from(format!("email={encoded}&csrf_token={token}")))
            .unwrap();
        let reply = self.app.clone().oneshot(request).await.unwrap();
        // What the server does after answering (a resend, a publish) is done too.
        self.background.wait().await;
        reply
    }

    /// Opens a link from an email (on the default BASE_URL) as a person does: `GET`, then, if
    /// the page shows the "Confirm my account" button, presses it (`POST` with the page's CSRF
    /// token and cookie). The last answer.
    pub async fn open(&self, link: &str) -> Response {
        let page = self.view(link).await;
        if page.status() != StatusCode::OK {
            return page;
        }
        self.post_button(link.strip_prefix("http://127.0.0.1:5003").unwrap())
            .await
    }

    /// Loads the page at `path` and presses its form's button (a POST with the page's CSRF
    /// token and cookie).
    pub async fn post_button(&self, path: &str) -> Response {
        let page = self
            .app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let cookies = set_cookies(page.headers());
        let body = page.into_body().collect().await.unwrap().to_bytes();
        let (cookie, token) = csrf_from(&cookies, &String::from_utf8_lossy(&body));
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookie)
            .body(Body::from(format!("csrf_token={token}")))
            .unwrap();
        self.app.clone().oneshot(request).await.unwrap()
    }

    /// Requests a link from an email with `method` only (`GET` or `HEAD`), as a mail scanner
    /// does.
    pub async fn fetch(&self, method: &str, link: &str) -> Response {
        let path = link.strip_prefix("http://127.0.0.1:5003").unwrap();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        self.app.clone().oneshot(request).await.unwrap()
    }

    /// `GET` on a link from an email.
    pub async fn view(&self, link: &str) -> Response {
        self.fetch("GET", link).await
    }

    /// Takes the next job from the queue and hands it to the worker.
    pub async fn deliver_next(&self) -> delivery::Outcome {
        let job = self
            .queue
            .receive(Duration::ZERO)
            .await
            .unwrap()
            .unwrap()
            .job;
        self.deliverer.handle(job).await.unwrap()
    }
}

pub fn set_cookies(headers: &axum::http::HeaderMap) -> String {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `Cookie` header value and form token from a home page's `Set-Cookie` lines and body.
pub fn csrf_from(set_cookies: &str, body: &str) -> (String, String) {
    let cookie = set_cookies
        .split(['\n', ';'])
        .map(|part| {
            part.trim()
                .trim_start_matches("Set-Cookie: ")
                .trim_start_matches("set-cookie: ")
        })
        .find(|part| part.starts_with("csrf="))
        .expect("the home page sets the CSRF cookie")
        .to_owned();
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker).expect("the form carries a CSRF token") + marker.len();
    let token = body[start..].split('"').next().unwrap().to_owned();
    (cookie, token)
}

/// The flash cookie a response sets.
pub fn flash(reply: &Response) -> &str {
    reply.headers()[header::SET_COOKIE].to_str().unwrap()
}
