#![cfg(test)]
//! The real server over TCP (embedded default: SQLite, the embedded queue, in-process delivery
//! with the file mailer): `/readyz`, `/metrics` after a registration and its email, and the
//! `server healthcheck` subcommand (which probes `/readyz`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use settings::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn settings_in(dir: &Path, ops_addr: SocketAddr) -> Settings {
    let env: HashMap<String, String> = [
        ("OPS_ADDR", ops_addr.to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("app.db").display()),
        ),
        ("MAIL_FILE_DIR", dir.join("mail").display().to_string()),
        ("SECRET_KEY", "ops-test-secret".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Settings::load_from(env).unwrap()
}

/// One request per connection: (status, head, body).
async fn http(addr: SocketAddr, request: String) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

/// `POST /` with `email`, carrying the CSRF cookie and token of a fresh home page.
async fn register(addr: SocketAddr, email: &str) -> u16 {
    let (_, head, body) = http(addr, get("/")).await;
    let cookie = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, value)| value.trim().strip_prefix("csrf="))
        .and_then(|v| v.split(';').next())
        .unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker).unwrap() + marker.len();
    let token = &body[start..start + body[start..].find('"').unwrap()];
    let form = format!("email={email}&csrf_token={token}");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: csrf={cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    http(addr, request).await.0
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// `server healthcheck` against LISTEN_ADDR = `addr`: its exit status and stderr.
fn healthcheck(dir: &Path, addr: SocketAddr) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("healthcheck")
        .env_clear()
        .env("LISTEN_ADDR", addr.to_string())
        .env("RUST_LOG", "error")
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_metrics_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let ops = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let settings = settings_in(dir.path(), ops);
    let services = wiring::Services::connect(&settings).await.unwrap();
    let mailer = wiring::build_mailer(&settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn({
        let settings = settings.clone();
        async move { wiring::serve(&settings, services, Some(mailer), listener, stopped).await }
    });

    assert_eq!(http(addr, get("/readyz")).await.0, 200);
    web::ops::probe(addr, "/readyz", Duration::from_secs(3))
        .await
        .unwrap();
    let (code, stderr) =
        tokio::task::spawn_blocking(move || healthcheck(&std::env::temp_dir(), addr))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{stderr}");

    // The public port has no metrics (they would tell which addresses have accounts), and its
    // /readyz names nothing; the ops listener has both.
    assert_eq!(http(addr, get("/metrics")).await.0, 404);
    assert_eq!(http(addr, get("/readyz")).await.2.trim(), "ok");
    assert_eq!(http(ops, get("/readyz")).await.0, 200);
    let (status, head, before) = http(ops, get("/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(register(addr, "ops%40example.com").await, 303);
    // Delivered in-process by the file mailer. (The gauges read from the database are
    // cached for a few seconds; the counters move at once.)
    let mut after = String::new();
    for _ in 0..500 {
        after = http(ops, get("/metrics")).await.2;
        if sample(&after, "emails_sent_total{provider=\"file\"}") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert!(
        moved("registrations_total{outcome=\"created\"}") >= 1.0,
        "{after}"
    );
    assert!(
        moved("emails_sent_total{provider=\"file\"}") >= 1.0,
        "{after}"
    );
    assert!(
        moved("email_send_seconds_count{provider=\"file\"}") >= 1.0,
        "{after}"
    );
    assert!(after.contains("messages{state=\"sent\"}"), "{after}");
    assert!(after.contains("queue_depth"), "{after}");

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Nothing listens any more: the healthcheck fails.
    let (code, stderr) =
        tokio::task::spawn_blocking(move || healthcheck(&std::env::temp_dir(), addr))
            .await
            .unwrap();
    assert_eq!(code, Some(1), "{stderr}");
}
