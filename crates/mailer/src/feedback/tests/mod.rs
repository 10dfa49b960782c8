//! Notifications in the formats AWS documents ("Amazon SNS notification contents for Amazon
//! SES" and the event publishing examples), wrapped in SNS envelopes as an SQS subscription
//! receives them, and raw.

use super::*;

const BOUNCE: &str = r#"{
  "notificationType": "Bounce",
  "bounce": {
    "feedbackId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
    "bounceType": "Permanent",
    "bounceSubType": "General",
    "bouncedRecipients": [
      {"emailAddress": "jane@example.com", "action": "failed", "status": "5.1.1",
       "diagnosticCode": "smtp; 550 5.1.1 <jane@example.com>... User unknown"}
    ],
    "timestamp": "2016-01-27T14:59:38.237Z",
    "remoteMtaIp": "127.0.2.0",
    "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"
  },
  "mail": {
    "timestamp": "2016-01-27T14:59:38.237Z",
    "messageId": "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000",
    "source": "john@example.com",
    "sourceArn": "arn:aws:ses:us-east-1:888888888888:identity/example.com",
    "sourceIp": "127.0.3.0",
    "sendingAccountId": "123456789012",
    "destination": ["jane@example.com"]
  }
}"#;

const TRANSIENT: &str = r#"{
  "notificationType": "Bounce",
  "bounce": {
    "feedbackId": "0000013786031775-163e3910-53eb-4c8e-a04a-f29debf88a84-000000",
    "bounceType": "Transient",
    "bounceSubType": "MailboxFull",
    "bouncedRecipients": [{"emailAddress": "richard@example.com", "status": "4.2.2"}],
    "timestamp": "2016-01-27T14:59:38.237Z"
  },
  "mail": {"timestamp": "2016-01-27T14:59:38.237Z",
           "messageId": "00000137860315fd-34208509-5b74-41f3-95c5-22c1edc3c924-000000",
           "source": "john@example.com", "destination": ["richard@example.com"]}
}"#;

const COMPLAINT: &str = r#"{
  "notificationType": "Complaint",
  "complaint": {
    "userAgent": "AnyCompany Feedback Loop (V0.01)",
    "complainedRecipients": [{"emailAddress": "richard@example.com"}],
    "complaintFeedbackType": "abuse",
    "arrivalDate": "2016-01-27T14:59:38.237Z",
    "timestamp": "2016-01-27T14:59:38.237Z",
    "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"
  },
  "mail": {"timestamp": "2016-01-27T14:59:38.237Z",
           "messageId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
           "source": "john@example.com", "destination": ["richard@example.com"]}
}"#;

/// `message` wrapped as SNS delivers it to an SQS queue.
fn sns(message: &str) -> String {
    serde_json::json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-feedback",
        "Message": message,
        "Timestamp": "2016-01-27T14:59:38.237Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    })
    .to_string()
}

fn report(notification: SesNotification) -> Report {
    match notification {
        SesNotification::Bounce(r) | SesNotification::Complaint(r) => r,
        SesNotification::Other(kind) => panic!("not a report: {kind}"),
    }
}

#[test]
fn reads_a_permanent_bounce_wrapped_and_raw() {
    for body in [sns(BOUNCE), BOUNCE.to_owned()] {
        let parsed = parse_notification(&body).unwrap();
        assert!(matches!(parsed, SesNotification::Bounce(_)), "{parsed:?}");
        let r = report(parsed);
        assert_eq!(
            r.feedback_id,
            "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000"
        );
        assert_eq!(
            r.message_id,
            "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000"
        );
        assert!(r.permanent);
        assert_eq!(r.detail, "Permanent/General 5.1.1");
        assert_eq!(r.recipients, ["jane@example.com"]);
        assert_eq!(r.timestamp.to_rfc3339(), "2016-01-27T14:59:38.237+00:00");
    }
}

#[test]
fn reads_a_transient_bounce_and_a_complaint() {
    let r = report(parse_notification(&sns(TRANSIENT)).unwrap());
    assert!(!r.permanent);
    assert_eq!(r.detail, "Transient/MailboxFull 4.2.2");
    let undetermined = TRANSIENT.replace("\"Transient\"", "\"Undetermined\"");
    assert!(!report(parse_notification(&undetermined).unwrap()).permanent);

    let parsed = parse_notification(&sns(COMPLAINT)).unwrap();
    assert!(matches!(parsed, SesNotification::Complaint(_)));
    let r = report(parsed);
    assert!(r.permanent);
    assert_eq!(r.detail, "abuse");
    assert_eq!(r.recipients, ["richard@example.com"]);
    let untyped = COMPLAINT.replace("\"complaintFeedbackType\": \"abuse\",", "");
    assert_eq!(
        report(parse_notification(&untyped).unwrap()).detail,
        "complaint"
    );
}

#[test]
fn reads_event_publishing_records() {
    let event = BOUNCE.replace("\"notificationType\"", "\"eventType\"");
    assert!(report(parse_notification(&sns(&event)).unwrap()).permanent);
}

#[test]
fn names_what_it_does_not_act_on() {
    let delivery =
        r#"{"notificationType": "Delivery", "mail": {"messageId": "x"}, "delivery": {}}"#;
    assert_eq!(
        parse_notification(delivery).unwrap(),
        SesNotification::Other("Delivery".into())
    );
    let confirmation = r#"{"Type": "SubscriptionConfirmation", "Message": "You have chosen…"}"#;
    assert_eq!(
        parse_notification(confirmation).unwrap(),
        SesNotification::Other("SNS SubscriptionConfirmation".into())
    );
}

#[test]
fn refuses_malformed_bodies_without_quoting_them() {
    let cases = [
        "not json at all jane@example.com".to_owned(),
        sns("{\"notificationType\": \"Bounce\"}"),
        sns("jane@example.com"),
        BOUNCE.replace("\"Permanent\"", "\"jane@example.com\""),
        BOUNCE.replace("\"bounceType\": \"Permanent\",", "\"bounceType\": 5,"),
        BOUNCE.replace("\"messageId\"", "\"id\""),
        BOUNCE.replace(
            "\"feedbackId\": \"000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000\"",
            "\"feedbackId\": \"\"",
        ),
        COMPLAINT.replace("[{\"emailAddress\": \"richard@example.com\"}]", "[]"),
        r#"{"mail": {"messageId": "x"}}"#.to_owned(),
        r#"{"Type": "Notification"}"#.to_owned(),
        r#"{"notificationType": "jane@example.com"}"#.to_owned(),
    ];
    for body in cases {
        let error = parse_notification(&body).unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("malformed SES notification: "), "{text}");
        assert!(
            !text.contains("jane@") && !text.contains("richard@"),
            "{text}"
        );
    }
}

#[test]
fn debug_shows_no_address() {
    let parsed = parse_notification(BOUNCE).unwrap();
    let shown = format!("{parsed:?}");
    assert!(!shown.contains("jane@"), "{shown}");
    assert!(shown.contains("recipients: 1"), "{shown}");
    let queued = QueuedNotification {
        receipt: "r".into(),
        body: BOUNCE.into(),
        receive_count: Some(1),
    };
    assert!(!format!("{queued:?}").contains("jane@"));
}

#[test]
fn keeps_only_status_codes_from_the_status_field() {
    assert!(is_status_code("5.1.1"));
    assert!(is_status_code("4.2.2"));
    assert!(!is_status_code("5.1"));
    assert!(!is_status_code("jane@example.com"));
    let odd = BOUNCE.replace(
        "\"status\": \"5.1.1\"",
        "\"status\": \"see jane@example.com\"",
    );
    assert_eq!(
        report(parse_notification(&odd).unwrap()).detail,
        "Permanent/General"
    );
}
