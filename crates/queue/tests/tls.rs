#![cfg(test)]
//! `rediss://` for real, run when its variables are set (`.ci/run` sets them all):
//!
//! - `TEST_REDIS_URL`: a cleartext Redis, which a `rediss://` URL must refuse to use;
//! - `TEST_REDIS_TLS_URL` (`rediss://localhost:<port>`): a TLS-only Redis whose certificate
//!   names `localhost` only, signed by the CA in `TEST_REDIS_CA_FILE`.
//!
//! Without them each test says so and passes; with them set and the server unreachable they
//! fail.

use std::path::PathBuf;
use std::time::Duration;

use domain::MessageId;
use queue::{Job, JobQueue, QueueError, RedisQueue, RedisQueueConfig};
use tokio::time::Instant;

fn var(test: &str, name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!("{test}: skipped, set {name} to run it");
            None
        }
    }
}

/// The TLS server's URL and its CA file.
fn tls_server(test: &str) -> Option<(String, PathBuf)> {
    let url = var(test, "TEST_REDIS_TLS_URL")?;
    let ca = var(test, "TEST_REDIS_CA_FILE")
        .unwrap_or_else(|| panic!("TEST_REDIS_TLS_URL is set, TEST_REDIS_CA_FILE must be too"));
    assert!(url.starts_with("rediss://localhost:"), "{url}");
    Some((url, ca.into()))
}

fn config(ca: Option<PathBuf>) -> RedisQueueConfig {
    let id = uuid::Uuid::new_v4().simple().to_string();
    RedisQueueConfig {
        stream: format!("test:tls:{id}"),
        group: format!("group-{id}"),
        command_timeout: Duration::from_secs(2),
        tls_ca_file: ca,
        ..RedisQueueConfig::default()
    }
}

/// The error of connecting, which must come within the connect timeout and be a transport error
/// (the password in the URL is never in it).
async fn connect_error(url: &str, config: RedisQueueConfig) -> String {
    let started = Instant::now();
    let error = RedisQueue::connect(url, config)
        .await
        .expect_err("the connection must be refused");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let QueueError::Transport(text) = &error else {
        panic!("expected a transport error, got {error:?}");
    };
    assert!(!text.contains("hunter2"), "{text}");
    text.clone()
}

#[tokio::test]
async fn rediss_to_a_cleartext_server_fails_and_never_speaks_cleartext() {
    let test = "rediss_to_a_cleartext_server_fails_and_never_speaks_cleartext";
    let Some(plain) = var(test, "TEST_REDIS_URL") else {
        return;
    };
    let rest = plain
        .strip_prefix("redis://")
        .expect("TEST_REDIS_URL is a redis:// URL");
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let url = format!("rediss://:hunter2@{hostport}");
    let text = connect_error(&url, config(None)).await;
    assert!(text.contains("over TLS"), "{text}");
    assert!(text.contains("does the server speak TLS"), "{text}");
}

#[tokio::test]
async fn rediss_with_the_ca_file_round_trips_a_job() {
    let Some((url, ca)) = tls_server("rediss_with_the_ca_file_round_trips_a_job") else {
        return;
    };
    let queue = RedisQueue::connect(&url, config(Some(ca))).await.unwrap();
    queue.ping().await.unwrap();
    let job = Job::new(MessageId(42));
    queue.publish(job).await.unwrap();
    let delivery = queue
        .receive(Duration::from_secs(1))
        .await
        .unwrap()
        .expect("the job published over TLS");
    assert_eq!(delivery.job, job);
    queue.ack(&delivery).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn rediss_without_the_ca_refuses_the_unknown_issuer() {
    let Some((url, _)) = tls_server("rediss_without_the_ca_refuses_the_unknown_issuer") else {
        return;
    };
    let text = connect_error(&url, config(None)).await;
    assert!(text.contains("REDIS_TLS_CA_FILE"), "{text}");
}

#[tokio::test]
async fn rediss_refuses_a_certificate_for_another_name() {
    let Some((url, ca)) = tls_server("rediss_refuses_a_certificate_for_another_name") else {
        return;
    };
    // The certificate names `localhost` only.
    let url = url.replace("rediss://localhost:", "rediss://127.0.0.1:");
    let text = connect_error(&url, config(Some(ca))).await;
    assert!(text.contains("not valid for the host name"), "{text}");
}
