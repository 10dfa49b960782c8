#![cfg(test)]
//! The whole flow on the embedded default: real SQLite, the embedded queue, the real worker
//! code, and (in the socket tests) the real server over TCP. Mail is captured in memory or read
//! back from the `.eml` files the file transport writes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use domain::{EmailAddress, ManualClock};
use http_body_util::BodyExt;
use mailer::MemoryMailer;
use queue::{EmbeddedQueue, JobQueue};
use server::Services;
use settings::Settings;
use store::{ConfirmOutcome, UserStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tower::ServiceExt;

fn settings_for(dir: &Path, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert(
        "DATABASE_URL".into(),
        format!("sqlite://{}?mode=rwc", dir.join("app.db").display()),
    );
    env.insert(
        "MAIL_FILE_DIR".into(),
        dir.join("mail").display().to_string(),
    );
    env.insert("SECRET_KEY".into(), "flow-test-secret".into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    Settings::load_from(env).unwrap()
}

/// The server's router and the worker's deliverer over real SQLite and the embedded queue, with
/// a captured mailer and a manual clock: the whole flow without a socket.
struct InProcess {
    services: Services,
    mailer: Arc<MemoryMailer>,
    queue: Arc<EmbeddedQueue>,
    clock: Arc<ManualClock>,
    app: axum::Router,
    deliverer: worker::Deliverer,
}

async fn in_process(dir: &Path) -> InProcess {
    in_process_with(dir, &[]).await
}

async fn in_process_with(dir: &Path, extra: &[(&str, &str)]) -> InProcess {
    let settings = settings_for(dir, extra);
    let mailer = Arc::new(MemoryMailer::new());
    let queue = Arc::new(EmbeddedQueue::new());
    let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
    let services = Services {
        store: Arc::new(settings.connect_store().await.unwrap()),
        queue: queue.clone(),
        tokens: settings.signing_keys().unwrap().tokens,
        clock: clock.clone(),
    };
    let app = web::router(server::app_state(&settings, &services).unwrap());
    let deliverer = worker::Deliverer::from_settings(
        &settings,
        services.store.clone(),
        mailer.clone(),
        services.tokens.clone(),
        clock.clone(),
    )
    .unwrap();
    InProcess {
        services,
        mailer,
        queue,
        clock,
        app,
        deliverer,
    }
}

impl InProcess {
    /// `POST /` with `email=<encoded>` (already form-encoded) and the CSRF token and cookie of a
    /// freshly loaded home page, as a browser would send them.
    async fn register(&self, encoded: &str) -> Response {
        self.post("/", encoded).await
    }

    /// A form post to `uri` with `email=<encoded>`, like [`Self::register`].
    async fn post(&self, uri: &str, encoded: &str) -> Response {
        let home = self
            .app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let cookies = set_cookies(home.headers());
        let body = home.into_body().collect().await.unwrap().to_bytes();
        let (cookie, token) = csrf_from(&cookies, &String::from_utf8_lossy(&body));
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookie)
            .body(Body::from(format!("email={encoded}&csrf_token={token}")))
            .unwrap();
        self.app.clone().oneshot(request).await.unwrap()
    }

    /// Opens a link from an email (on the default BASE_URL).
    async fn open(&self, link: &str) -> Response {
        let path = link.strip_prefix("http://127.0.0.1:5003").unwrap();
        let request = Request::get(path).body(Body::empty()).unwrap();
        self.app.clone().oneshot(request).await.unwrap()
    }

    /// Takes the next job from the queue and hands it to the worker.
    async fn deliver_next(&self) -> worker::Outcome {
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

fn set_cookies(headers: &axum::http::HeaderMap) -> String {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `Cookie` header value and form token from a home page's `Set-Cookie` lines and body.
fn csrf_from(set_cookies: &str, body: &str) -> (String, String) {
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
fn flash(reply: &Response) -> &str {
    reply.headers()[header::SET_COOKIE].to_str().unwrap()
}

#[tokio::test]
async fn register_deliver_and_confirm_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;

    assert_eq!(
        app.register("Flow%40Example.com").await.status(),
        StatusCode::SEE_OTHER
    );
    // Same address in another case: same answer, nothing new owed.
    assert_eq!(
        app.register("flow%40example.COM").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.queue.depth().await.unwrap(), 1);

    let delivery = app.queue.receive(Duration::ZERO).await.unwrap().unwrap();
    let outcome = app.deliverer.handle(delivery.job).await.unwrap();
    assert!(
        matches!(outcome, worker::Outcome::Sent { .. }),
        "{outcome:?}"
    );
    // A redelivery of the same job does not send again.
    assert!(matches!(
        app.deliverer.handle(delivery.job).await.unwrap(),
        worker::Outcome::Skipped(_)
    ));
    let sent = app.mailer.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to.as_str(), "Flow@example.com");
    let link = sent[0].action_url.clone().unwrap();

    let store = &app.services.store;
    let user = store
        .find_by_email(&EmailAddress::parse("flow@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(user.email_sent && !user.confirmed);

    app.clock.advance(chrono::TimeDelta::seconds(60));
    let reply = app.open(&link).await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert!(flash(&reply).starts_with("flash=confirmed;"));
    assert!(flash(&app.open(&link).await).starts_with("flash=already-confirmed;"));

    let user = store.find_by_email(&user.email).await.unwrap().unwrap();
    assert!(user.confirmed && user.confirmed_on.is_some());

    // After the link's lifetime, a fresh link is needed.
    app.clock.advance(chrono::TimeDelta::seconds(3600));
    assert!(flash(&app.open(&link).await).starts_with("flash=invalid-link;"));
}

#[tokio::test]
async fn a_deleted_users_link_is_refused_even_after_the_address_registers_again() {
    use sea_orm::ConnectionTrait;

    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;

    app.register("gone%40example.com").await;
    app.deliver_next().await;
    let old_link = app.mailer.messages()[0].action_url.clone().unwrap();

    app.services
        .store
        .connection()
        .execute_unprepared("DELETE FROM users WHERE email_key = 'gone@example.com'")
        .await
        .unwrap();
    let reply = app.open(&old_link).await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert!(flash(&reply).starts_with("flash=invalid-link;"));

    // Registering again, later, owes (and sends) a new email whose link works; the old link
    // was for the deleted account and does not confirm the new one.
    app.clock.advance(chrono::TimeDelta::seconds(120));
    app.register("gone%40example.com").await;
    assert!(matches!(
        app.deliver_next().await,
        worker::Outcome::Sent { .. }
    ));
    let new_link = app.mailer.messages()[1].action_url.clone().unwrap();
    assert!(flash(&app.open(&old_link).await).starts_with("flash=invalid-link;"));
    assert!(flash(&app.open(&new_link).await).starts_with("flash=confirmed;"));
}

#[tokio::test]
async fn resend_sends_a_fresh_link_once_per_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;
    app.register("resend%40example.com").await;
    app.deliver_next().await;
    // Ten resends within the first minute: the registration's email is still cooling down.
    for _ in 0..10 {
        let reply = app.post("/resend", "resend%40example.com").await;
        assert!(flash(&reply).starts_with("flash=resent;"));
    }
    assert_eq!(app.queue.depth().await.unwrap(), 0);
    // After the cooldown, ten more: one fresh email.
    app.clock.advance(chrono::TimeDelta::seconds(61));
    for _ in 0..10 {
        app.post("/resend", "RESEND%40example.com").await;
    }
    assert_eq!(app.queue.depth().await.unwrap(), 1);
    app.deliver_next().await;
    let sent = app.mailer.messages();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].to.as_str(), "resend@example.com");
    // Registering the address again is a resend too (and is cooling down now).
    app.register("resend%40example.com").await;
    assert_eq!(app.queue.depth().await.unwrap(), 0);
    // The fresh link confirms; a resend for a confirmed account sends nothing.
    let link = sent[1].action_url.clone().unwrap();
    assert!(flash(&app.open(&link).await).starts_with("flash=confirmed;"));
    app.clock.advance(chrono::TimeDelta::seconds(600));
    app.post("/resend", "resend%40example.com").await;
    assert_eq!(app.queue.depth().await.unwrap(), 0);
    assert_eq!(app.mailer.messages().len(), 2);
}

#[tokio::test]
async fn a_link_signed_with_a_key_moved_to_the_fallbacks_confirms_until_it_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let old_key = [("SECRET_KEY", "the-old-key")];
    let app = in_process_with(dir.path(), &old_key).await;
    app.register("rotate%40example.com").await;
    app.deliver_next().await;
    let link = app.mailer.messages()[0].action_url.clone().unwrap();
    drop(app);

    // The old key removed: the link is invalid (and changes nothing).
    let app = in_process_with(dir.path(), &[("SECRET_KEY", "the-new-key")]).await;
    assert!(flash(&app.open(&link).await).starts_with("flash=invalid-link;"));
    drop(app);
    // Rotated: a new SECRET_KEY, the old one in SECRET_KEY_FALLBACKS. The link still confirms.
    let rotated = [
        ("SECRET_KEY", "the-new-key"),
        ("SECRET_KEY_FALLBACKS", "the-old-key"),
    ];
    let app = in_process_with(dir.path(), &rotated).await;
    assert!(flash(&app.open(&link).await).starts_with("flash=confirmed;"));
}

/// A minimal HTTP/1.1 client: one request per connection.
async fn http(addr: SocketAddr, request: String) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

/// `POST /` with the form and the CSRF cookie and token of a freshly loaded home page.
async fn post(addr: SocketAddr, form: &str) -> (u16, String, String) {
    let (_, head, body) = http(addr, get("/")).await;
    let (cookie, token) = csrf_from(&head, &body);
    let form = format!("{form}&csrf_token={token}");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    http(addr, request).await
}

struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(settings: &Settings) -> Running {
    let services = Services::from_settings(settings).await.unwrap();
    let mailer = settings.build_mailer().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let settings = settings.clone();
    let task = tokio::spawn(async move {
        server::serve(&settings, services, Some(mailer), listener, stopped).await
    });
    Running { addr, stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// Waits (bounded) for the file transport to write `count` messages; returns their paths.
async fn wait_for_mail(dir: &Path, count: usize) -> Vec<PathBuf> {
    for _ in 0..1000 {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        if files.len() >= count {
            files.sort();
            return files;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {count} email file(s) in {}", dir.display());
}

fn link_in(eml: &Path) -> String {
    let text = std::fs::read_to_string(eml).unwrap();
    let start = text
        .find("http://127.0.0.1:5003/confirm/")
        .expect("the email holds the link");
    text[start..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_serves_registers_mails_and_confirms_over_http_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(dir.path(), &[("SHOW_USERS", "true")]);
    let app = start(&settings).await;

    let (status, head, _) = post(app.addr, "email=restart%40example.com").await;
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("flash=registered"), "{head}");

    let files = wait_for_mail(&dir.path().join("mail"), 1).await;
    let link = link_in(&files[0]);
    let path = link.strip_prefix("http://127.0.0.1:5003").unwrap();
    let (status, head, _) = http(app.addr, get(path)).await;
    assert_eq!(status, 303);
    assert!(head.contains("flash=confirmed"), "{head}");
    let (_, _, body) = http(app.addr, get("/")).await;
    assert!(body.contains("restart@example.com"));
    app.stop().await;

    // Restart on the same database: the data is still there.
    let app = start(&settings).await;
    let (status, _, body) = http(app.addr, get("/")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<td>restart@example.com</td><td>True</td><td>True</td>"),
        "{body}"
    );
    let (_, head, _) = http(app.addr, get(path)).await;
    assert!(head.contains("flash=already-confirmed"), "{head}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_owed_before_a_restart_is_sent_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(dir.path(), &[]);
    // Commit a registration while no delivery runs (as if the process died right after).
    let store = settings.connect_store().await.unwrap();
    let email = EmailAddress::parse("owed@example.com").unwrap();
    store.register(&email, chrono::Utc::now()).await.unwrap();
    drop(store);

    let app = start(&settings).await;
    let files = wait_for_mail(&dir.path().join("mail"), 1).await;
    assert_eq!(files.len(), 1);
    let link = link_in(&files[0]);
    let (_, head, _) = http(
        app.addr,
        get(link.strip_prefix("http://127.0.0.1:5003").unwrap()),
    )
    .await;
    assert!(head.contains("flash=confirmed"), "{head}");
    app.stop().await;

    let store = settings.connect_store().await.unwrap();
    assert_eq!(
        store
            .confirm(&email, chrono::Utc::now(), chrono::Utc::now())
            .await
            .unwrap(),
        ConfirmOutcome::AlreadyConfirmed
    );
}
