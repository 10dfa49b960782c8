//! `/metrics` and `/readyz` through the router, with mocked store and queue.
//!
//! The metrics recorder is global to the test process and other tests count too, so counters are
//! compared before and after (they must move by at least what this test did), never absolutely.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use store::{DeliveryStats, Resend};

use super::*;

/// One scrape: every sample (`name{labels}` as rendered) with its value, and every `# TYPE`.
#[derive(Debug)]
struct Scrape {
    samples: HashMap<String, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    /// The value of a series; 0 when it is absent (a counter not yet incremented).
    fn value(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks `name="value",…` (values with `\"`, `\\` and `\n` escapes).
fn check_labels(labels: &str, line: &str) {
    let mut rest = labels;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in {line:?}"));
        assert!(is_metric_name(name), "bad label name {name:?} in {line:?}");
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// A small parser of the Prometheus text format (0.0.4): every line is blank, a comment, or
/// `name{labels} value [timestamp]` with a float value; every sample's metric has a `# TYPE`
/// (histograms' and summaries' `_bucket`, `_sum` and `_count` count as theirs).
fn parse(text: &str) -> Scrape {
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
            assert!(
                matches!(
                    kind,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ),
                "{line:?}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "two TYPE lines for {name}"
            );
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(open) => {
                let close = line
                    .rfind('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                check_labels(&line[open + 1..close], line);
                (&line[..=close], &line[close + 1..])
            }
            None => line
                .split_once(' ')
                .unwrap_or_else(|| panic!("no value in {line:?}")),
        };
        let name = series.split('{').next().unwrap_or_default();
        assert!(is_metric_name(name), "bad metric name in {line:?}");
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value {value:?} is not a float in {line:?}"));
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp in {line:?}"));
        }
        assert!(fields.next().is_none(), "trailing text in {line:?}");
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series {series}"
        );
    }
    for series in samples.keys() {
        let name = series.split('{').next().unwrap_or_default();
        let typed = types.contains_key(name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix).is_some_and(|base| {
                    matches!(
                        types.get(base).map(String::as_str),
                        Some("histogram" | "summary")
                    )
                })
            });
        assert!(typed, "{series} has no # TYPE line");
    }
    Scrape { samples, types }
}

#[test]
fn the_parser_accepts_the_format_and_refuses_what_is_not() {
    let ok = "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1 \\\"2\\\"\",y=\"z\"} 3\n\
              # TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\nb 2 1700000000000\n# TYPE b gauge\n";
    let scrape = parse(ok);
    assert_eq!(scrape.value("a_total{x=\"1 \\\"2\\\"\",y=\"z\"}"), 3.0);
    assert_eq!(scrape.value("h_bucket{le=\"+Inf\"}"), 1.0);
    assert_eq!(scrape.types["b"], "gauge");
    for bad in [
        "no_type 1\n",
        "# TYPE x counter\nx one\n",
        "# TYPE x counter\nx{a=\"1} 1\n",
        "# TYPE x counter\nx\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

fn with_metrics(state: AppState) -> AppState {
    state.with_metrics(settings::metrics::install())
}

/// A request to the ops listener's routes over `state`'s probes.
async fn send_ops(state: &AppState, request: Request<Body>) -> Reply {
    send_to(crate::ops::router(state.probes()), request).await
}

/// The counts the metrics tests' store reports.
fn sample_stats() -> Result<DeliveryStats, StoreError> {
    Ok(DeliveryStats {
        queued: 2,
        sending: 1,
        retrying: 4,
        sent: 50,
        sent_is_estimate: false,
        dead: 3,
        cancelled: 0,
        bounced: 5,
        complained: 6,
        oldest_owed: DateTime::from_timestamp(NOW - 90, 0),
    })
}

async fn scrape(state: &AppState) -> Scrape {
    let reply = send_ops(state, get("/metrics")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4"
    );
    parse(&reply.body)
}

/// A form post from a client at `ip` (as the server sees it with `ConnectInfo`).
fn from_peer(mut request: Request<Body>, ip: &str) -> Request<Body> {
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

#[tokio::test]
async fn metrics_render_prometheus_text_and_counters_move_with_requests() {
    let mut users = MockUserStore::new();
    users.expect_register().returning(|email, _, _| {
        if email.as_str().starts_with("new") {
            Ok(Registration::Created {
                user: user(3, email.as_str(), false),
                message: MessageId(30),
            })
        } else {
            Ok(Registration::AlreadyRegistered)
        }
    });
    users
        .expect_resend()
        .returning(|_, _, _| Ok(Resend::CoolingDown));
    let mut messages = MockMessageStore::new();
    messages.expect_stats().returning(sample_stats);
    let mut queue = MockJobQueue::new();
    queue.expect_publish().returning(|_| Ok(()));
    queue.expect_depth().returning(|| Ok(7));
    let mut state = with_metrics(state_with(
        users,
        queue,
        WebConfig {
            rate_limit_per_ip: 1,
            ..WebConfig::default()
        },
    ));
    state.messages = Arc::new(messages);

    let before = scrape(&state).await;
    // Registered at 0 before anything happened.
    for series in [
        "registrations_total{outcome=\"created\"}",
        "resends_total{outcome=\"daily_cap\"}",
        "confirmations_total{outcome=\"invalid\"}",
        "rate_limited_total",
        "csrf_rejected_total",
        "honeypot_total",
        "publish_failures_total",
    ] {
        assert!(before.samples.contains_key(series), "{series} missing");
    }
    assert_eq!(before.types["registrations_total"], "counter");

    let post = |uri: &str, body: &str| send(state.clone(), post_to(uri, body.to_owned()));
    assert_eq!(
        post("/", "email=new%40example.com").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        post("/", "email=old%40example.com").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        post("/resend", "email=old%40example.com").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        post("/", "email=x%40example.com&website=spam").await.status,
        StatusCode::SEE_OTHER
    );
    let no_csrf = raw_post("/", None, "email=a%40example.com");
    assert_eq!(
        send(state.clone(), no_csrf).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(state.clone(), post_to("/confirm/not-a-token", ""))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    // One post a minute from this client: the second is refused.
    let limited: Vec<StatusCode> = {
        let mut statuses = Vec::new();
        for _ in 0..2 {
            let request = from_peer(post_to("/resend", "email=old%40example.com"), "203.0.113.9");
            statuses.push(send(state.clone(), request).await.status);
        }
        statuses
    };
    assert_eq!(
        limited,
        [StatusCode::SEE_OTHER, StatusCode::TOO_MANY_REQUESTS]
    );

    // The resend behind the existing address's registration runs after its answer.
    state.background.wait().await;
    let after = scrape(&state).await;
    let moved = |series: &str| after.value(series) - before.value(series);
    for (series, at_least) in [
        ("registrations_total{outcome=\"created\"}", 1.0),
        ("registrations_total{outcome=\"existing\"}", 1.0),
        // The existing address, the resend form, and the one allowed post of the limited client.
        ("resends_total{outcome=\"cooling_down\"}", 3.0),
        ("rate_limited_total", 1.0),
        ("honeypot_total", 1.0),
        ("csrf_rejected_total", 1.0),
        ("confirmations_total{outcome=\"invalid\"}", 1.0),
    ] {
        assert!(
            moved(series) >= at_least,
            "{series} moved by {} (expected at least {at_least})",
            moved(series)
        );
    }
    // The gauges read at scrape time.
    assert_eq!(after.types["queue_depth"], "gauge");
    assert_eq!(after.value("queue_depth"), 7.0);
    for (state, count) in [
        ("queued", 2.0),
        ("sending", 1.0),
        ("retrying", 4.0),
        ("sent", 50.0),
        ("dead", 3.0),
        ("bounced", 5.0),
        ("complained", 6.0),
    ] {
        assert_eq!(
            after.value(&format!("messages{{state=\"{state}\"}}")),
            count
        );
    }
    assert_eq!(after.value("oldest_owed_message_age_seconds"), 90.0);
}

#[tokio::test]
async fn metrics_answer_404_on_the_public_port_and_without_a_recorder() {
    let with = with_metrics(state(no_users(), idle_queue(), false));
    assert_eq!(
        send(with, get("/metrics")).await.status,
        StatusCode::NOT_FOUND
    );
    let without = state(no_users(), idle_queue(), false);
    assert_eq!(
        send_ops(&without, get("/metrics")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Readiness is checked at most once a second, and the scrape-time gauges read at most once
/// per five seconds, however many probes come in; the public port and the ops listener share
/// the answers.
#[tokio::test(start_paused = true)]
async fn readiness_and_gauges_are_cached() {
    let mut users = no_users();
    users.expect_ping().times(2).returning(|| Ok(()));
    let mut queue = idle_queue();
    // Once per readiness check and once per gauge refresh. (The gauges are process-wide: the
    // values are those of the test above, which scrapes at the same time.)
    queue.expect_depth().times(4).returning(|| Ok(7));
    let mut messages = MockMessageStore::new();
    messages.expect_stats().times(2).returning(sample_stats);
    let mut state = with_metrics(state(users, queue, false));
    state.messages = Arc::new(messages);
    for _ in 0..5 {
        assert_eq!(
            send(state.clone(), get("/readyz")).await.status,
            StatusCode::OK
        );
        assert_eq!(
            send_ops(&state, get("/readyz")).await.status,
            StatusCode::OK
        );
        scrape(&state).await;
    }
    tokio::time::advance(crate::ops::READINESS_TTL).await;
    assert_eq!(send(state.clone(), get("/readyz")).await.body, "ok\n");
    scrape(&state).await;
    tokio::time::advance(crate::ops::GAUGES_TTL).await;
    scrape(&state).await;
}

fn pinging_users(result: fn() -> Result<(), StoreError>) -> MockUserStore {
    let mut users = no_users();
    users.expect_ping().times(1).returning(result);
    users
}

fn queue_with_depth(result: fn() -> Result<u64, QueueError>) -> MockJobQueue {
    let mut queue = idle_queue();
    queue.expect_depth().times(1).returning(result);
    queue
}

#[tokio::test]
async fn readyz_is_ok_when_the_database_and_the_queue_answer() {
    let state = state(pinging_users(|| Ok(())), queue_with_depth(|| Ok(12)), false);
    let reply = send(state, get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "ok\n");
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn readyz_is_503_naming_the_database_when_its_ping_fails() {
    let state = state(
        pinging_users(|| {
            Err(StoreError::Unavailable(
                "connection refused: postgres://app:hunter2@db:5432/users".into(),
            ))
        }),
        queue_with_depth(|| Ok(0)),
        false,
    );
    let public = send(state.clone(), get("/readyz")).await;
    assert_eq!(public.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(public.body, "not ready\n", "the public port names nothing");
    // The ops listener's answer (cached: the database is not asked again).
    let reply = send_ops(&state, get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, "database: unavailable\n");
}

#[tokio::test]
async fn readyz_is_503_naming_the_queue_when_it_errors() {
    let state = state(
        pinging_users(|| Ok(())),
        queue_with_depth(|| {
            Err(QueueError::Transport(
                "redis://:hunter2@cache:6379 refused".into(),
            ))
        }),
        false,
    );
    let reply = send_ops(&state, get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, "queue: unavailable\n");
    assert!(!reply.body.contains("hunter2") && !reply.body.contains("redis://"));
}

/// A queue whose depth never answers.
#[derive(Debug)]
struct SilentQueue;

#[async_trait::async_trait]
impl JobQueue for SilentQueue {
    async fn publish(&self, _job: Job) -> Result<(), QueueError> {
        Ok(())
    }
    async fn receive(&self, _wait: Duration) -> Result<Option<queue::Delivery>, QueueError> {
        Ok(None)
    }
    async fn ack(&self, _delivery: &queue::Delivery) -> Result<(), QueueError> {
        Ok(())
    }
    async fn depth(&self) -> Result<u64, QueueError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn readyz_gives_up_on_a_silent_dependency_after_two_seconds() {
    let mut state = state(
        pinging_users(|| Err(StoreError::Corrupt("?".into()))),
        idle_queue(),
        false,
    );
    state.queue = Arc::new(SilentQueue);
    let started = tokio::time::Instant::now();
    let reply = send_ops(&state, get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, "database: error\nqueue: no answer within 2s\n");
    assert_eq!(started.elapsed(), crate::ops::CHECK_TIMEOUT);
}
