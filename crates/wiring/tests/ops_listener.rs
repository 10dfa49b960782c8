#![cfg(test)]
//! The worker's ops listener (`WORKER_METRICS_ADDR`) over SQLite and the embedded queue, and the
//! readiness probe both binaries' `healthcheck` use.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use domain::{ConfirmationTokens, MessageId};
use queue::{EmbeddedQueue, Job};
use store::SeaStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiring::Services;

/// `GET path` on `addr`: (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

async fn sqlite_services(dir: &Path) -> Services {
    let url = format!("sqlite://{}?mode=rwc", dir.join("ops.db").display());
    let store = SeaStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Services {
        store: Arc::new(store),
        queue: Arc::new(EmbeddedQueue::new()),
        tokens: ConfirmationTokens::new(&["test-secret"]).unwrap(),
        clock: Arc::new(domain::SystemClock),
        webhooks: None,
        shared_limits: None,
    }
}

#[tokio::test]
async fn the_listener_serves_health_readiness_and_metrics_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let services = sqlite_services(dir.path()).await;
    services
        .queue
        .publish(Job::new(MessageId(9)))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (addr, task) = wiring::start_ops_listener(
        "127.0.0.1:0".parse().unwrap(),
        &services,
        settings::metrics::install(),
        stopped,
    )
    .await
    .unwrap();

    assert_eq!(http_get(addr, "/healthz").await, (200, "ok".to_owned()));
    assert_eq!(http_get(addr, "/readyz").await, (200, "ok\n".to_owned()));
    web::ops::probe(addr, "/readyz", Duration::from_secs(3))
        .await
        .unwrap();
    let (status, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("# TYPE queue_depth gauge"), "{metrics}");
    for line in [
        "queue_depth 1",
        "messages{state=\"queued\"} 0",
        "messages{state=\"dead\"} 0",
        "oldest_owed_message_age_seconds 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let missing = web::ops::probe(addr, "/nowhere", Duration::from_secs(3))
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("404"), "{missing}");

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the listener stops on shutdown")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
