//! Metrics: the process-wide Prometheus recorder, installed once.
//!
//! Code anywhere in the process records with the `metrics` macros (`metrics::counter!` …); the
//! `/metrics` endpoints render what the recorder holds with [`PrometheusHandle::render`]. No
//! HTTP listener or push gateway of the exporter is used. Every metric name is listed, with its
//! help text, in [`DESCRIPTIONS`] (and in the README's "Metrics" section).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds of `email_send_seconds`, in seconds: from a local catcher (milliseconds) to a
/// slow provider (SMTP_TIMEOUT defaults to 30 s).
pub const SEND_SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram samples are folded into their buckets (so memory stays bounded when
/// nobody scrapes).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Every metric the service records: (kind, name, help).
pub const DESCRIPTIONS: &[(Kind, &str, &str)] = &[
    (
        Kind::Counter,
        "registrations_total",
        "Valid registration form posts, by outcome (created: a new account; existing: the address had an account).",
    ),
    (
        Kind::Counter,
        "confirmations_total",
        "Confirmation link clicks, by outcome (confirmed, already_confirmed, invalid).",
    ),
    (
        Kind::Counter,
        "resends_total",
        "Requests for a fresh confirmation email (resend form, or registration of an existing address), by outcome.",
    ),
    (
        Kind::Counter,
        "rate_limited_total",
        "Form posts refused with 429 by the per-IP limit (RATE_LIMIT_PER_IP).",
    ),
    (
        Kind::Counter,
        "csrf_rejected_total",
        "Form posts refused with 403 for a missing or invalid CSRF token.",
    ),
    (
        Kind::Counter,
        "honeypot_total",
        "Form posts ignored because the hidden honeypot field was filled in.",
    ),
    (
        Kind::Counter,
        "publish_failures_total",
        "Jobs the server could not publish to the queue (the sweeper sends those messages later).",
    ),
    (
        Kind::Counter,
        "emails_sent_total",
        "Emails the provider accepted, by provider.",
    ),
    (
        Kind::Counter,
        "emails_failed_total",
        "Failed sends, by provider and outcome (retry: transient, will be retried; dead: permanent or out of attempts; account: account-level, sending paused).",
    ),
    (
        Kind::Histogram,
        "email_send_seconds",
        "Duration of the provider call of each send, by provider.",
    ),
    (
        Kind::Counter,
        "retries_scheduled_total",
        "Messages recorded as retrying after a failed attempt.",
    ),
    (
        Kind::Counter,
        "messages_dead_total",
        "Messages recorded as dead (permanent failure or retries exhausted).",
    ),
    (
        Kind::Gauge,
        "queue_depth",
        "Jobs waiting in the queue, read at scrape time.",
    ),
    (
        Kind::Gauge,
        "messages",
        "Owed and finished messages in the database by state (queued, sending, retrying, sent, dead), read at scrape time.",
    ),
    (
        Kind::Gauge,
        "oldest_owed_message_age_seconds",
        "Age of the oldest message still owed (queued, sending or retrying); 0 when none is owed. Read at scrape time.",
    ),
];

/// The kind of a metric, for its description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global recorder (the first call) and
/// returns the handle that renders it. Later calls (several test apps in one process) return
/// the same handle. If another recorder was installed first, a warning is logged and the handle
/// renders an empty page.
pub fn install() -> PrometheusHandle {
    HANDLE.get_or_init(build_and_install).clone()
}

fn build_and_install() -> PrometheusHandle {
    let builder = PrometheusBuilder::new();
    let builder = match builder.set_buckets_for_metric(
        Matcher::Full("email_send_seconds".to_owned()),
        SEND_SECONDS_BUCKETS,
    ) {
        Ok(builder) => builder,
        // Only fails on an empty list; the constant is not empty.
        Err(error) => {
            tracing::warn!(%error, "histogram buckets refused: email_send_seconds is rendered as a summary");
            PrometheusBuilder::new()
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(error) = metrics::set_global_recorder(recorder) {
        tracing::warn!(%error, "another metrics recorder is installed: /metrics will be empty");
    }
    for (kind, name, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => metrics::describe_histogram!(*name, *help),
        }
    }
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep thread; histograms are folded at scrape time only");
    }
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_once_and_renders_what_is_recorded() {
        let first = install();
        let second = install();
        metrics::counter!("settings_test_total").increment(2);
        metrics::histogram!("email_send_seconds", "provider" => "settings-test").record(0.2);
        let text = second.render();
        assert!(text.contains("settings_test_total 2"), "{text}");
        assert!(
            text.contains("email_send_seconds_bucket{provider=\"settings-test\",le=\"0.25\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE email_send_seconds histogram"),
            "{text}"
        );
        assert!(first.render().contains("settings_test_total 2"));
    }
}
