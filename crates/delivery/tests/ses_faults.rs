#![cfg(test)]
//! The deliverer with a real `SesMailer` over a real `aws_sdk_sesv2::Client` whose HTTP
//! layer is the SDK's replay client (`mailer::test_util::FakeSes`): SES throttling, a rejected
//! message and a paused account, answered in SES v2's REST-JSON wire format (status,
//! `x-amzn-ErrorType` header, `{"message": ...}` body), go through the SDK's deserializer, the
//! mailer's classification and the deliverer's retry policy. The store is a mock, the clock
//! manual; no network, no sleeps.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use delivery::{Deliverer, DeliveryConfig, Outcome, Renderer};
use domain::{
    ConfirmationTokens, EmailAddress, ManualClock, MessageId, MessageKind, MessageStatus,
    OwedMessage, RetryPolicy, UserId,
};
use mailer::Sender;
use mailer::test_util::{FakeSes, SesReply, SesRequest};
use queue::Job;
use store::{Claim, MockMessageStore};

const NOW: i64 = 1_700_000_000;
const RECIPIENT: &str = "Someone@Example.com";
const BASE_URL: &str = "http://127.0.0.1:5003";
const ENDPOINT: &str = "https://email.us-east-1.amazonaws.com/v2/email/outbound-emails";
const ACCOUNT_PAUSE: TimeDelta = TimeDelta::seconds(300);

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn owed(id: i64, attempts: u32) -> OwedMessage {
    OwedMessage {
        id: MessageId(id),
        user_id: UserId(1),
        kind: MessageKind::Confirm,
        recipient: EmailAddress::parse(RECIPIENT).unwrap(),
        status: MessageStatus::Sending,
        attempts,
        created_at: at(NOW - 10),
        locale: domain::Locale::En,
        password_binding: None,
    }
}

fn job(id: i64) -> Job {
    Job::new(MessageId(id))
}

fn tokens() -> ConfirmationTokens {
    ConfirmationTokens::new(&["test-secret"]).unwrap()
}

fn deliverer(messages: MockMessageStore, ses: &FakeSes, clock: &Arc<ManualClock>) -> Deliverer {
    let mailer = ses.mailer(
        Sender::parse("Confirm Bot <no-reply@example.com>").unwrap(),
        None,
    );
    Deliverer::new(
        Arc::new(messages),
        Arc::new(mailer),
        Renderer::new(
            delivery::email_templates(None).unwrap(),
            tokens(),
            &format!("{BASE_URL}/"),
            Duration::from_secs(3600),
        ),
        clock.clone(),
        DeliveryConfig {
            lease: TimeDelta::seconds(120),
            retry: RetryPolicy::default(),
            max_rate: None,
            account_pause: ACCOUNT_PAUSE,
        },
    )
}

/// Checks one `SendEmail` request: the endpoint, the addresses, and a raw MIME message carrying
/// a confirmation link whose token is valid for the recipient at `issued`.
fn assert_send_email(request: &SesRequest, issued: i64) {
    let body = &request.body;
    assert_eq!(
        (request.method.as_str(), request.uri.as_str()),
        ("POST", ENDPOINT)
    );
    assert_eq!(body["FromEmailAddress"], "no-reply@example.com", "{body}");
    assert_eq!(
        body["Destination"]["ToAddresses"],
        serde_json::json!(["Someone@example.com"]),
        "{body}"
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(body["Content"]["Raw"]["Data"].as_str().unwrap())
        .unwrap();
    let mime = String::from_utf8(raw).unwrap();
    assert!(mime.contains("Subject: Confirm Your Account\r\n"), "{mime}");
    assert!(mime.contains("Message-ID: <"), "{mime}");
    let prefix = format!("{BASE_URL}/confirm/");
    let token = mime
        .lines()
        .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no confirmation link in {mime}"));
    let verified = tokens().check(token, Some(3600), issued).unwrap();
    assert_eq!(verified.payload, "Someone@example.com");
    assert_eq!(verified.issued_at, u64::try_from(issued).unwrap());
}

fn assert_no_recipient(error: &str) {
    assert!(
        !error.to_ascii_lowercase().contains("someone@example.com"),
        "recipient leaked: {error}"
    );
}

/// SES throttles the first attempt (429 TooManyRequestsException): the message is retried
/// within the first backoff window (15–30 s after one attempt, default policy); the next job,
/// once due, sends it and records SES's MessageId.
#[tokio::test]
async fn throttled_then_sent_on_the_next_job() {
    let ses = FakeSes::new(vec![
        SesReply::error(
            429,
            "TooManyRequestsException",
            "Maximum sending rate exceeded.",
        ),
        SesReply::sent("0100018c-ses-message-id-000001"),
    ]);
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .withf(|id, now, _| *id == MessageId(7) && *now == at(NOW))
        .times(1)
        .returning(|_, _, _| Ok(Claim::Claimed(owed(7, 1))));
    messages
        .expect_mark_retry()
        .withf(|id, error, retry_at, now| {
            let wait = *retry_at - *now;
            *id == MessageId(7)
                && *now == at(NOW)
                && error.starts_with("transient: SES throttled the request")
                && error.contains("TooManyRequestsException (HTTP 429")
                && wait >= TimeDelta::seconds(15)
                && wait <= TimeDelta::seconds(30)
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    messages
        .expect_claim()
        .withf(|id, now, _| *id == MessageId(7) && *now > at(NOW))
        .times(1)
        .returning(|_, _, _| Ok(Claim::Claimed(owed(7, 2))));
    messages
        .expect_mark_sent()
        .withf(|id, provider, _| {
            *id == MessageId(7) && provider.as_deref() == Some("0100018c-ses-message-id-000001")
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    messages.expect_mark_dead().never();
    let d = deliverer(messages, &ses, &clock);

    let first = d.handle(job(7)).await.unwrap();
    let Outcome::Retrying {
        at: retry_at,
        error,
    } = &first
    else {
        panic!("expected a retry, got {first:?}");
    };
    let wait = *retry_at - at(NOW);
    assert!(
        wait >= TimeDelta::seconds(15) && wait <= TimeDelta::seconds(30),
        "{wait:?}"
    );
    assert_no_recipient(error);
    assert_eq!(d.paused_for(), None, "throttling is not an account failure");
    assert_eq!(ses.requests().len(), 1, "one attempt: SDK retries are off");

    clock.set(*retry_at);
    let second = d.handle(job(7)).await.unwrap();
    assert_eq!(
        second,
        Outcome::Sent {
            provider_message_id: Some("0100018c-ses-message-id-000001".into())
        }
    );
    let sent = ses.requests();
    assert_eq!(sent.len(), 2);
    assert_send_email(&sent[0], NOW);
    assert_send_email(&sent[1], retry_at.timestamp());
}

/// SES rejects the message itself: it goes dead on its first attempt (of ten allowed), nothing
/// is scheduled for a retry and sending is not paused.
#[tokio::test]
async fn message_rejected_goes_dead_after_one_attempt() {
    let ses = FakeSes::new(vec![SesReply::error(
        400,
        "MessageRejected",
        "Email rejected per DMARC policy for example.com; recipient Someone@example.com",
    )]);
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .withf(|id, _, _| *id == MessageId(8))
        .times(1)
        .returning(|_, _, _| Ok(Claim::Claimed(owed(8, 1))));
    messages
        .expect_mark_dead()
        .withf(|id, error, now| {
            *id == MessageId(8)
                && *now == at(NOW)
                && error.starts_with("permanent: SES rejected the message")
                && error.contains("MessageRejected (HTTP 400")
                && error.contains("S***@example.com")
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    messages.expect_mark_retry().never();
    messages.expect_mark_sent().never();
    let d = deliverer(messages, &ses, &clock);

    let outcome = d.handle(job(8)).await.unwrap();
    let Outcome::Dead { error } = &outcome else {
        panic!("expected dead, got {outcome:?}");
    };
    assert!(error.contains("Email rejected per DMARC policy"), "{error}");
    assert_no_recipient(error);
    assert_eq!(d.paused_for(), None, "a rejected message pauses nothing");
    let sent = ses.requests();
    assert_eq!(sent.len(), 1, "exactly one attempt");
    assert_send_email(&sent[0], NOW);
}

/// SES says sending is paused for the account: the message is retried when the account pause
/// ends (not on the backoff schedule), the deliverer stops claiming, the next job makes no
/// request at all, and once the clock passes the pause the next job is sent.
#[tokio::test]
async fn sending_paused_stops_claims_and_requests_until_the_pause_ends() {
    let ses = FakeSes::new(vec![
        SesReply::error(
            400,
            "SendingPausedException",
            "Email sending is disabled for your entire Amazon SES account.",
        ),
        SesReply::sent("0100018c-after-the-pause"),
    ]);
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let resumed = at(NOW) + ACCOUNT_PAUSE + TimeDelta::seconds(1);
    let mut messages = MockMessageStore::new();
    messages
        .expect_claim()
        .withf(|id, now, _| *id == MessageId(9) && *now == at(NOW))
        .times(1)
        .returning(|_, _, _| Ok(Claim::Claimed(owed(9, 1))));
    messages
        .expect_mark_retry()
        .withf(|id, error, retry_at, now| {
            *id == MessageId(9)
                && *now == at(NOW)
                && *retry_at == at(NOW) + ACCOUNT_PAUSE
                && error.starts_with("account: sending is paused")
                && error.contains("SendingPausedException (HTTP 400")
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    // Only after the pause: a claim of message 10 during the pause matches no expectation.
    messages
        .expect_claim()
        .withf(move |id, now, _| *id == MessageId(10) && *now == resumed)
        .times(1)
        .returning(|_, _, _| Ok(Claim::Claimed(owed(10, 1))));
    messages
        .expect_mark_sent()
        .withf(|id, provider, _| {
            *id == MessageId(10) && provider.as_deref() == Some("0100018c-after-the-pause")
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    messages.expect_mark_dead().never();
    let d = deliverer(messages, &ses, &clock);

    let first = d.handle(job(9)).await.unwrap();
    let Outcome::Retrying {
        at: retry_at,
        error,
    } = &first
    else {
        panic!("expected a retry, got {first:?}");
    };
    assert_eq!(*retry_at, at(NOW) + ACCOUNT_PAUSE);
    assert_no_recipient(error);
    assert_eq!(d.paused_for(), Some(Duration::from_secs(300)));
    assert_eq!(ses.requests().len(), 1);

    // During the pause: no claim, no HTTP request.
    clock.advance(TimeDelta::seconds(120));
    let during = d.handle(job(10)).await.unwrap();
    assert!(matches!(during, Outcome::Skipped(_)), "{during:?}");
    assert_eq!(d.paused_for(), Some(Duration::from_secs(180)));
    assert_eq!(
        ses.requests().len(),
        1,
        "no request to SES while sending is paused"
    );

    // Past the pause: the next job is claimed and sent.
    clock.set(resumed);
    assert_eq!(d.paused_for(), None);
    let after = d.handle(job(10)).await.unwrap();
    assert_eq!(
        after,
        Outcome::Sent {
            provider_message_id: Some("0100018c-after-the-pause".into())
        }
    );
    let sent = ses.requests();
    assert_eq!(sent.len(), 2);
    assert_send_email(&sent[0], NOW);
    assert_send_email(&sent[1], resumed.timestamp());
}
