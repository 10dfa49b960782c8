#![cfg(test)]
//! The delivery counters and the send-time histogram move with every outcome. The metrics
//! recorder is global to the process: counters are compared before and after, on a provider
//! label no other test uses.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use delivery::{Deliverer, DeliveryConfig, Outcome, Renderer};
use domain::{
    ConfirmationTokens, EmailAddress, ManualClock, MessageId, MessageKind, MessageStatus,
    OwedMessage, RetryPolicy, UserId,
};
use mailer::{MailError, MockMailer, Sent};
use queue::Job;
use store::{Claim, MockMessageStore};

const NOW: i64 = 1_700_000_000;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

/// The value of one series in a rendered scrape (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn owed(id: i64, attempts: u32) -> OwedMessage {
    OwedMessage {
        id: MessageId(id),
        user_id: UserId(1),
        kind: MessageKind::Confirm,
        recipient: EmailAddress::parse("someone@example.com").unwrap(),
        status: MessageStatus::Sending,
        attempts,
        created_at: at(NOW - 10),
        locale: domain::Locale::En,
        password_binding: None,
    }
}

#[tokio::test]
async fn sends_and_failures_move_the_delivery_counters() {
    let metrics = settings::metrics::install();
    const PROVIDER: &str = "counters-test";
    let mut messages = MockMessageStore::new();
    // 1: sent; 2: transient failure (retried); 3: permanent (dead); 4: account-level.
    messages
        .expect_claim()
        .returning(|id, _, _| Ok(Claim::Claimed(owed(id.0, 1))));
    messages
        .expect_mark_sent()
        .times(1)
        .returning(|_, _, _| Ok(()));
    messages
        .expect_mark_retry()
        .times(2)
        .returning(|_, _, _, _| Ok(()));
    messages
        .expect_mark_dead()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer.expect_provider().return_const(PROVIDER);
    let mut n = 0;
    mailer.expect_send().times(4).returning(move |_| {
        n += 1;
        match n {
            1 => Ok(Sent {
                provider_message_id: Some("id-1".into()),
            }),
            2 => Err(MailError::Transient("451 later".into())),
            3 => Err(MailError::Permanent("550 no such user".into())),
            _ => Err(MailError::Account("535 auth refused".into())),
        }
    });
    let deliverer = Deliverer::new(
        Arc::new(messages),
        Arc::new(mailer),
        Renderer::new(
            delivery::email_templates(None).unwrap(),
            ConfirmationTokens::new(&["test-secret"]).unwrap(),
            "http://127.0.0.1:5003",
            Duration::from_secs(3600),
        ),
        Arc::new(ManualClock::at_unix(NOW)),
        DeliveryConfig {
            lease: TimeDelta::seconds(120),
            retry: RetryPolicy::default(),
            max_rate: None,
            account_pause: TimeDelta::seconds(300),
        },
    );
    let series = [
        format!("emails_sent_total{{provider=\"{PROVIDER}\"}}"),
        format!("emails_failed_total{{provider=\"{PROVIDER}\",outcome=\"retry\"}}"),
        format!("emails_failed_total{{provider=\"{PROVIDER}\",outcome=\"dead\"}}"),
        format!("emails_failed_total{{provider=\"{PROVIDER}\",outcome=\"account\"}}"),
        format!("email_send_seconds_count{{provider=\"{PROVIDER}\"}}"),
        "retries_scheduled_total".to_owned(),
        "messages_dead_total".to_owned(),
    ];
    let before = metrics.render();
    let mut outcomes = Vec::new();
    for id in 1..=4 {
        outcomes.push(deliverer.handle(Job::new(MessageId(id))).await.unwrap());
    }
    assert!(matches!(outcomes[0], Outcome::Sent { .. }), "{outcomes:?}");
    assert!(
        matches!(outcomes[1], Outcome::Retrying { .. }),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[2], Outcome::Dead { .. }), "{outcomes:?}");
    assert!(
        matches!(outcomes[3], Outcome::Retrying { .. }),
        "{outcomes:?}"
    );
    let after = metrics.render();
    let moved: Vec<f64> = series
        .iter()
        .map(|s| sample(&after, s) - sample(&before, s))
        .collect();
    // This provider's series are this test's alone: exact. The unlabelled ones: at least.
    assert_eq!(
        &moved[..5],
        &[1.0, 1.0, 1.0, 1.0, 4.0],
        "{series:?}\n{after}"
    );
    assert!(moved[5] >= 2.0 && moved[6] >= 1.0, "{moved:?}\n{after}");
    assert!(
        after.contains("# TYPE email_send_seconds histogram"),
        "{after}"
    );
}
