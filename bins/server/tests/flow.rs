#![cfg(test)]
//! The whole flow on the embedded default: real SQLite, the embedded queue, the real worker
//! code, and (in the socket tests) the real server over TCP. Mail is captured in memory or read
//! back from the `.eml` files the file transport writes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::EmailAddress;
use http_body_util::BodyExt;
use queue::JobQueue;
use settings::Settings;
use store::{ConfirmOutcome, UserStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tower::ServiceExt;
use wiring::Services;

mod common;

use common::{csrf_from, flash, in_process, in_process_with, settings_for};

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
        matches!(outcome, delivery::Outcome::Sent { .. }),
        "{outcome:?}"
    );
    // A redelivery of the same job does not send again.
    assert!(matches!(
        app.deliverer.handle(delivery.job).await.unwrap(),
        delivery::Outcome::Skipped(_)
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

/// Mail scanners send HEAD and GET on every link: neither confirms. The page shows the masked
/// address and the button; only its POST confirms. With CONFIRM_ON_GET a GET confirms (a HEAD
/// still does not).
#[tokio::test]
async fn opening_the_link_confirms_nothing_until_the_button_is_pressed() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;
    app.register("scanned%40example.com").await;
    app.deliver_next().await;
    let link = app.mailer.messages()[0].action_url.clone().unwrap();
    let email = EmailAddress::parse("scanned@example.com").unwrap();
    let confirmed = || async {
        let user = app.services.store.find_by_email(&email).await.unwrap();
        user.unwrap().confirmed
    };

    assert_eq!(app.fetch("HEAD", &link).await.status(), StatusCode::OK);
    let page = app.view(&link).await;
    assert_eq!(page.status(), StatusCode::OK);
    let body = BodyExt::collect(page.into_body()).await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("Confirm my account") && body.contains(&email.masked()),
        "{body}"
    );
    assert!(
        !body.contains("scanned@example.com"),
        "the page shows the address masked"
    );
    assert!(
        !body.contains("<script"),
        "nothing submits the form by itself"
    );
    assert!(!confirmed().await, "HEAD and GET changed nothing");

    // A POST without the page's CSRF token (a scanner following the form) is refused.
    let path = link.strip_prefix("http://127.0.0.1:5003").unwrap();
    let forged = app
        .app
        .clone()
        .oneshot(
            Request::post(path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("csrf_token=x"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(!confirmed().await);

    let reply = app.open(&link).await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert!(flash(&reply).starts_with("flash=confirmed;"));
    assert!(confirmed().await);

    // A bad link shows its message on the GET already.
    let bad = app.view(&format!("{link}x")).await;
    assert_eq!(bad.status(), StatusCode::SEE_OTHER);
    assert!(flash(&bad).starts_with("flash=invalid-link;"));

    // CONFIRM_ON_GET=true: the tutorial's one-click link; HEAD still changes nothing.
    let dir = tempfile::tempdir().unwrap();
    let app = in_process_with(dir.path(), &[("CONFIRM_ON_GET", "true")]).await;
    app.register("scanned%40example.com").await;
    app.deliver_next().await;
    let link = app.mailer.messages()[0].action_url.clone().unwrap();
    assert_eq!(app.fetch("HEAD", &link).await.status(), StatusCode::OK);
    let user = app
        .services
        .store
        .find_by_email(&email)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !user.confirmed,
        "HEAD does not confirm even with CONFIRM_ON_GET"
    );
    let reply = app.view(&link).await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert!(flash(&reply).starts_with("flash=confirmed;"));
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
        delivery::Outcome::Sent { .. }
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
    submit(addr, "/", "/", form).await
}

/// Loads the page at `page`, then posts `form` to `action` with its CSRF cookie and token.
async fn submit(addr: SocketAddr, page: &str, action: &str, form: &str) -> (u16, String, String) {
    let (_, head, body) = http(addr, get(page)).await;
    let (cookie, token) = csrf_from(&head, &body);
    let form = if form.is_empty() {
        format!("csrf_token={token}")
    } else {
        format!("{form}&csrf_token={token}")
    };
    let request = format!(
        "POST {action} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    http(addr, request).await
}

/// Opens an emailed link's page and presses its "Confirm my account" button.
async fn press(addr: SocketAddr, path: &str) -> (u16, String, String) {
    submit(addr, path, path, "").await
}

struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(settings: &Settings) -> Running {
    let services = Services::connect(settings).await.unwrap();
    let mailer = wiring::build_mailer(settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let settings = settings.clone();
    let task = tokio::spawn(async move {
        wiring::serve(&settings, services, Some(mailer), listener, stopped).await
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
    let (status, head, _) = press(app.addr, path).await;
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
    let (_, head, _) = press(app.addr, path).await;
    assert!(head.contains("flash=already-confirmed"), "{head}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_owed_before_a_restart_is_sent_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(dir.path(), &[]);
    // Commit a registration while no delivery runs (as if the process died right after).
    let store = wiring::connect_store(&settings).await.unwrap();
    let email = EmailAddress::parse("owed@example.com").unwrap();
    store
        .register(&email, domain::Locale::En, chrono::Utc::now())
        .await
        .unwrap();
    drop(store);

    let app = start(&settings).await;
    let files = wait_for_mail(&dir.path().join("mail"), 1).await;
    assert_eq!(files.len(), 1);
    let link = link_in(&files[0]);
    let (_, head, _) = press(
        app.addr,
        link.strip_prefix("http://127.0.0.1:5003").unwrap(),
    )
    .await;
    assert!(head.contains("flash=confirmed"), "{head}");
    app.stop().await;

    let store = wiring::connect_store(&settings).await.unwrap();
    assert_eq!(
        store
            .confirm(&email, chrono::Utc::now(), chrono::Utc::now())
            .await
            .unwrap(),
        ConfirmOutcome::AlreadyConfirmed
    );
}

/// The email's second link: its page changes nothing on GET or HEAD; its button puts the
/// mailbox (every alias of it) on the suppression list, after which registrations and resends
/// answer as always and send nothing; lifted, the mailbox gets email again.
#[tokio::test]
async fn the_stop_link_suppresses_the_mailbox_until_an_operator_lifts_it() {
    use store::SuppressionStore;

    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;
    app.register("victim%2Bshop%40gmail.com").await;
    app.deliver_next().await;
    let text = app.mailer.messages()[0].text.clone();
    assert!(
        text.contains("I did not sign up: stop emails to this address"),
        "{text}"
    );
    let stop = text
        .split_whitespace()
        .find(|word| word.starts_with("http://127.0.0.1:5003/stop/"))
        .expect("the email has a stop link")
        .to_owned();
    let store = &app.services.store;
    let key = EmailAddress::parse("victim@gmail.com")
        .unwrap()
        .mailbox_key();

    assert_eq!(app.fetch("HEAD", &stop).await.status(), StatusCode::OK);
    let page = app.view(&stop).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        !store.is_suppressed(&key).await.unwrap(),
        "GET changed nothing"
    );
    let body = BodyExt::collect(page.into_body()).await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("Stop emails to this address"), "{body}");
    assert!(!body.contains("victim+shop@gmail.com"), "masked: {body}");

    // Pressing the button (the harness's `open` presses the page's form).
    let path = stop.strip_prefix("http://127.0.0.1:5003").unwrap();
    let pressed = app.post_button(path).await;
    assert_eq!(pressed.status(), StatusCode::OK);
    assert!(store.is_suppressed(&key).await.unwrap());

    // Another alias of the mailbox, and a resend: the same answers, nothing owed.
    app.clock.advance(chrono::TimeDelta::hours(1));
    let reply = app.register("v.ictim%40googlemail.com").await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert!(flash(&reply).starts_with("flash=registered;"));
    let reply = app.post("/resend", "victim%2Bshop%40gmail.com").await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.queue.depth().await.unwrap(), 0);
    assert_eq!(app.mailer.messages().len(), 1);

    // Lifted by an operator: the next resend is sent.
    let listed = store.list(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].source, domain::SuppressionSource::StopLink);
    assert!(store.lift(listed[0].id).await.unwrap());
    app.post("/resend", "victim%2Bshop%40gmail.com").await;
    assert_eq!(app.queue.depth().await.unwrap(), 1);
}

/// The language is the account's, chosen from the registering browser's `Accept-Language`:
/// every email to it is in that language, a resend asked for from an English browser too; the
/// pages follow each browser.
#[tokio::test]
async fn a_chinese_registration_gets_chinese_emails_whoever_asks_for_a_resend() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(dir.path()).await;
    let chinese = Some("zh-CN,zh;q=0.9,en;q=0.8");
    let english = Some("en-US,en;q=0.9");
    let reply = app.post_in(chinese, "/", "zh%40example.com").await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert_eq!(reply.headers()[header::CONTENT_LANGUAGE], "zh-CN");
    app.deliver_next().await;
    let first = app.mailer.messages()[0].clone();
    assert_eq!(first.subject, "请确认您的账户");
    assert!(first.text.contains("感谢您的注册"), "{}", first.text);
    assert!(first.text.contains("1 小时"), "{}", first.text);
    let html = first.html.clone().unwrap();
    assert!(html.contains("<html lang=\"zh-CN\">"), "{html}");

    // A resend from an English browser after the cooldown: still Chinese.
    app.clock.advance(chrono::TimeDelta::seconds(61));
    let reply = app.post_in(english, "/resend", "zh%40example.com").await;
    assert!(flash(&reply).starts_with("flash=resent;"));
    assert_eq!(reply.headers()[header::CONTENT_LANGUAGE], "en");
    app.deliver_next().await;
    let second = app.mailer.messages()[1].clone();
    assert_eq!(second.to.as_str(), "zh@example.com");
    assert_eq!(second.subject, "请确认您的账户");
    assert!(second.text.contains("验证码"), "{}", second.text);

    // An English browser's registration: English emails.
    app.post_in(english, "/", "en%40example.com").await;
    app.deliver_next().await;
    assert_eq!(app.mailer.messages()[2].subject, "Confirm Your Account");

    // The pages follow the browser: the Chinese link's page in English for an English reader.
    let home = app
        .app
        .clone()
        .oneshot(
            Request::get("/")
                .header(header::ACCEPT_LANGUAGE, "zh-CN")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = home.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("<html lang=\"zh-CN\">"), "{body}");
    assert!(body.contains("没有收到邮件？"), "{body}");
    let link = second.action_url.unwrap();
    assert!(flash(&app.open(&link).await).starts_with("flash=confirmed;"));
}
