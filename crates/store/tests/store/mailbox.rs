//! The limits of a mailbox (every account whose address has the same `MailboxKey`): resend
//! cooldown and daily cap counted over all its aliases, and the suppression list.

use domain::{
    EmailAddress, MessageId, MessageStatus, ResendPolicy, SuppressionId, SuppressionSource,
};
use store::{Claim, MessageStore, Registration, Resend, SeaStore, SuppressionStore, UserStore};

use crate::common::{self, backend_tests, email, lease, secs, t0};

fn mailbox(address: &str) -> domain::MailboxKey {
    email(address).mailbox_key()
}

/// The message a registration owed, which must be owed.
fn owed(registration: Registration) -> MessageId {
    match registration {
        Registration::Created { message, .. } => message,
        other => panic!("expected an owed email, got {other:?}"),
    }
}

/// Ten aliases of one Gmail inbox, registered within a minute under the default policy (one
/// email a minute, five a day): ten accounts, at most two emails (here exactly one: all are
/// within the cooldown of the first).
async fn ten_aliases_of_one_mailbox_within_a_minute_owe_at_most_two_emails(store: &SeaStore) {
    let store = store
        .clone()
        .with_registration_policy(ResendPolicy::default());
    let aliases: Vec<String> = (0..10)
        .map(|i| match i % 3 {
            0 => format!("victim+{i}@gmail.com"),
            1 => format!("v.ictim+{i}@googlemail.com"),
            _ => format!("Vic.Tim+{i}@Gmail.com"),
        })
        .collect();
    let mut owed_emails = 0;
    for (i, alias) in aliases.iter().enumerate() {
        let at = t0() + secs(5.0 * i as f64);
        match store
            .register(&email(alias), domain::Locale::En, at)
            .await
            .unwrap()
        {
            Registration::Created { user, .. } => {
                owed_emails += 1;
                assert_eq!(user.email.as_str(), email(alias).as_str(), "kept as typed");
            }
            Registration::CreatedWithoutEmail { user } => {
                assert_eq!(user.email.as_str(), email(alias).as_str());
                assert!(!user.confirmed);
            }
            Registration::AlreadyRegistered => panic!("{alias} is a new account"),
        }
    }
    assert!(owed_emails <= 2, "{owed_emails} emails");
    assert_eq!(owed_emails, 1);
    assert_eq!(common::count(&store, "users").await, 10);
    assert_eq!(common::count(&store, "email_messages").await, 1);
    // Each alias is still its own account, found by its own address.
    for alias in &aliases {
        assert!(store.find_by_email(&email(alias)).await.unwrap().is_some());
    }
    // Every account has the same mailbox key.
    let keys: i64 = {
        use sea_orm::{ConnectionTrait, Statement};
        let db = store.connection();
        db.query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(DISTINCT mailbox_key) AS n FROM users WHERE mailbox_key = 'victim@gmail.com'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap()
    };
    assert_eq!(keys, 1);
}

/// The same, all at once: concurrent registrations of aliases of one mailbox (PostgreSQL
/// orders them on the mailbox's allowance row, SQLite's writers are serial) owe one email; aliases of
/// another mailbox are not held back.
async fn concurrent_alias_registrations_owe_one_email(store: &SeaStore) {
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let address = format!("target+{i}@gmail.com");
                store
                    .register(&email(&address), domain::Locale::En, t0())
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Registration::Created { .. } => created += 1,
            Registration::CreatedWithoutEmail { .. } => {}
            Registration::AlreadyRegistered => panic!("every alias is a new account"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(common::count(store, "users").await, 10);
    assert_eq!(common::count(store, "email_messages").await, 1);
    owed(
        store
            .register(&email("other@gmail.com"), domain::Locale::En, t0())
            .await
            .unwrap(),
    );
}

/// `register_many` with several aliases of one mailbox in one batch: one email between them,
/// one answer each, in order.
async fn a_batch_of_aliases_owes_one_email(store: &SeaStore) {
    let emails: Vec<EmailAddress> = [
        "batch+1@gmail.com",
        "solo@example.com",
        "b.atch+2@gmail.com",
        "BATCH+1@gmail.com",
        "batch@googlemail.com",
    ]
    .iter()
    .map(|a| email(a))
    .collect();
    let accounts = emails
        .into_iter()
        .map(|e| (e, domain::Locale::En))
        .collect();
    let answers = store.register_many(accounts, t0()).await.unwrap();
    assert!(
        matches!(answers[0], Registration::Created { .. }),
        "{answers:?}"
    );
    assert!(
        matches!(answers[1], Registration::Created { .. }),
        "{answers:?}"
    );
    assert!(
        matches!(answers[2], Registration::CreatedWithoutEmail { .. }),
        "{answers:?}"
    );
    assert_eq!(answers[3], Registration::AlreadyRegistered);
    assert!(
        matches!(answers[4], Registration::CreatedWithoutEmail { .. }),
        "{answers:?}"
    );
    assert_eq!(common::count(store, "users").await, 4);
    assert_eq!(common::count(store, "email_messages").await, 2);
}

/// The cooldown and the daily cap count the confirmation messages of every alias, for
/// registrations and resends alike; another mailbox is unaffected.
async fn cooldown_and_daily_cap_count_every_alias(store: &SeaStore) {
    let store = store.clone().with_registration_policy(ResendPolicy {
        cooldown: chrono::TimeDelta::seconds(60),
        daily_cap: 3,
    });
    let policy = ResendPolicy {
        cooldown: chrono::TimeDelta::seconds(60),
        daily_cap: 3,
    };
    let first = owed(
        store
            .register(&email("cap+a@gmail.com"), domain::Locale::En, t0())
            .await
            .unwrap(),
    );
    common::claim_ok(&store, first, t0()).await;
    store.mark_sent(first, None, t0()).await.unwrap();
    // Another alias within the cooldown: an account, no email; its resend is cooling down.
    assert!(matches!(
        store
            .register(
                &email("c.a.p+b@gmail.com"),
                domain::Locale::En,
                t0() + secs(30.0)
            )
            .await
            .unwrap(),
        Registration::CreatedWithoutEmail { .. }
    ));
    assert_eq!(
        store
            .resend(&email("C.A.P+b@gmail.com"), policy, t0() + secs(59.0))
            .await
            .unwrap(),
        Resend::CoolingDown
    );
    // After the cooldown: the second alias's resend is owed (the second of the day).
    let Resend::Queued(second) = store
        .resend(&email("C.A.P+b@gmail.com"), policy, t0() + secs(60.0))
        .await
        .unwrap()
    else {
        panic!("owed after the cooldown");
    };
    // A third alias registers later: the third email of the day.
    let third = owed(
        store
            .register(
                &email("cap+c@gmail.com"),
                domain::Locale::En,
                t0() + secs(200.0),
            )
            .await
            .unwrap(),
    );
    for id in [second, third] {
        common::claim_ok(&store, id, t0() + secs(201.0)).await;
        store.mark_sent(id, None, t0() + secs(201.0)).await.unwrap();
    }
    // The cap is reached for the whole mailbox.
    assert!(matches!(
        store
            .register(
                &email("cap+d@gmail.com"),
                domain::Locale::En,
                t0() + secs(400.0)
            )
            .await
            .unwrap(),
        Registration::CreatedWithoutEmail { .. }
    ));
    assert_eq!(
        store
            .resend(&email("cap+a@gmail.com"), policy, t0() + secs(400.0))
            .await
            .unwrap(),
        Resend::DailyCapReached
    );
    // Not another mailbox.
    owed(
        store
            .register(
                &email("cap2@gmail.com"),
                domain::Locale::En,
                t0() + secs(400.0),
            )
            .await
            .unwrap(),
    );
    // A day after the first, one message has left the window.
    assert!(matches!(
        store
            .resend(
                &email("cap+d@gmail.com"),
                policy,
                t0() + chrono::TimeDelta::days(1) + secs(1.0)
            )
            .await
            .unwrap(),
        Resend::Queued(_)
    ));
}

async fn suppression_stops_every_alias_and_can_be_lifted(store: &SeaStore) {
    let policy = ResendPolicy::UNLIMITED;
    let queued = owed(
        store
            .register(&email("stop+1@gmail.com"), domain::Locale::En, t0())
            .await
            .unwrap(),
    );
    let retrying = owed(
        store
            .register(&email("other@example.com"), domain::Locale::En, t0())
            .await
            .unwrap(),
    );
    assert!(
        !store
            .is_suppressed(&mailbox("s.top@gmail.com"))
            .await
            .unwrap()
    );

    assert!(
        store
            .suppress(
                &mailbox("STOP@gmail.com"),
                SuppressionSource::StopLink,
                t0() + secs(1.0)
            )
            .await
            .unwrap()
    );
    // Idempotent: the first source and time stay.
    assert!(
        !store
            .suppress(
                &mailbox("stop+x@googlemail.com"),
                SuppressionSource::Operator,
                t0() + secs(2.0)
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .is_suppressed(&mailbox("s.top+9@gmail.com"))
            .await
            .unwrap()
    );
    // What was owed to the mailbox is cancelled; other mailboxes are untouched.
    let status: String = common::message_column(store, queued, "status").await;
    assert_eq!(status, MessageStatus::Cancelled.as_str());
    let status: String = common::message_column(store, retrying, "status").await;
    assert_eq!(status, MessageStatus::Queued.as_str());
    assert_eq!(
        store
            .claim(queued, t0() + secs(3.0), lease())
            .await
            .unwrap(),
        Claim::Cancelled
    );
    assert!(store.due(t0() + secs(3.0), 10).await.unwrap() == vec![retrying]);

    // Registrations and resends answer as usual and owe nothing.
    assert!(matches!(
        store
            .register(
                &email("stop+2@gmail.com"),
                domain::Locale::En,
                t0() + secs(3600.0)
            )
            .await
            .unwrap(),
        Registration::CreatedWithoutEmail { .. }
    ));
    assert_eq!(
        store
            .resend(&email("stop+1@gmail.com"), policy, t0() + secs(3600.0))
            .await
            .unwrap(),
        Resend::Suppressed
    );
    let listed = SuppressionStore::list(store, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].mailbox_key, mailbox("stop@gmail.com"));
    assert_eq!(listed[0].source, SuppressionSource::StopLink);
    assert_eq!(listed[0].created_at, t0() + secs(1.0));
    assert_eq!(store.stats().await.unwrap().cancelled, 1);

    // Lifted: email is owed again.
    assert!(
        !store
            .lift(SuppressionId(listed[0].id.0 + 1000))
            .await
            .unwrap()
    );
    assert!(store.lift(listed[0].id).await.unwrap());
    assert!(!store.lift(listed[0].id).await.unwrap());
    assert!(
        !store
            .is_suppressed(&mailbox("stop@gmail.com"))
            .await
            .unwrap()
    );
    assert!(SuppressionStore::list(store, 10).await.unwrap().is_empty());
    assert!(matches!(
        store
            .resend(&email("stop+1@gmail.com"), policy, t0() + secs(3601.0))
            .await
            .unwrap(),
        Resend::Queued(_)
    ));
}

/// A message already claimed when its mailbox is suppressed is not stopped by `suppress`; if its
/// lease runs out and it is claimed again, that claim cancels it. Retrying messages are
/// cancelled by `suppress`.
async fn a_claim_cancels_a_message_to_a_suppressed_mailbox(store: &SeaStore) {
    let sending = owed(
        store
            .register(&email("late@example.com"), domain::Locale::En, t0())
            .await
            .unwrap(),
    );
    common::claim_ok(store, sending, t0()).await;
    let retrying = owed(
        store
            .register(
                &email("late+r@example.com"),
                domain::Locale::En,
                t0() + secs(61.0),
            )
            .await
            .unwrap(),
    );
    common::claim_ok(store, retrying, t0() + secs(61.0)).await;
    store
        .mark_retry(
            retrying,
            "451 later".into(),
            t0() + secs(90.0),
            t0() + secs(62.0),
        )
        .await
        .unwrap();
    let other = owed(
        store
            .register(&email("fine@example.com"), domain::Locale::En, t0())
            .await
            .unwrap(),
    );

    store
        .suppress(
            &mailbox("late@example.com"),
            SuppressionSource::Operator,
            t0() + secs(63.0),
        )
        .await
        .unwrap();
    let status: String = common::message_column(store, sending, "status").await;
    assert_eq!(status, MessageStatus::Sending.as_str());
    let status: String = common::message_column(store, retrying, "status").await;
    assert_eq!(status, MessageStatus::Cancelled.as_str());

    let after_lease = t0() + lease() + secs(1.0);
    let answers = store
        .claim_many(vec![sending, other, retrying], after_lease, lease())
        .await
        .unwrap();
    assert_eq!(answers[0], Ok(Claim::Cancelled));
    assert!(matches!(answers[1], Ok(Claim::Claimed(_))), "{answers:?}");
    assert_eq!(answers[2], Ok(Claim::Cancelled));
    let status: String = common::message_column(store, sending, "status").await;
    assert_eq!(status, MessageStatus::Cancelled.as_str());
    // Final: never due again (unlike the claimed one, whose lease runs out).
    let due = store.due(after_lease + secs(3600.0), 10).await.unwrap();
    assert_eq!(due, vec![other]);
}

backend_tests!(
    ten_aliases_of_one_mailbox_within_a_minute_owe_at_most_two_emails,
    concurrent_alias_registrations_owe_one_email,
    a_batch_of_aliases_owes_one_email,
    cooldown_and_daily_cap_count_every_alias,
    suppression_stops_every_alias_and_can_be_lifted,
    a_claim_cancels_a_message_to_a_suppressed_mailbox,
);
