//! The delivery metrics, registered at 0 so they are scraped before the first send. They are
//! recorded by [`Deliverer::handle`](crate::Deliverer::handle); the process-wide recorder is
//! `settings::metrics::install()`.

/// Registers the delivery series of `provider` at 0.
pub fn register_delivery_metrics(provider: &'static str) {
    metrics::counter!("emails_sent_total", "provider" => provider).increment(0);
    for outcome in ["retry", "dead", "account"] {
        metrics::counter!("emails_failed_total", "provider" => provider, "outcome" => outcome)
            .increment(0);
    }
    metrics::counter!("retries_scheduled_total").increment(0);
    metrics::counter!("messages_dead_total").increment(0);
    metrics::counter!("emails_cancelled_total").increment(0);
}
