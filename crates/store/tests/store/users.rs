//! `UserStore` on every backend.

use std::collections::HashSet;

use domain::{MessageKind, MessageStatus, ResendPolicy, UserSummary};
use store::{ConfirmOutcome, MessageStore, Registration, Resend, SeaStore, StoreError, UserStore};

use crate::common::{self, backend_tests, email, fresh_address, register, secs, t0};

async fn register_creates_user_and_queued_message(store: &SeaStore) {
    let (user, message) = register(store, "Mixed.Case@Example.COM", t0()).await;
    assert_eq!(user.email.as_str(), "Mixed.Case@example.com");
    assert!(!user.confirmed);
    assert!(!user.email_sent);
    assert_eq!(user.registered_on, t0());
    assert_eq!(user.confirmed_on, None);
    assert_eq!(common::count(store, "users").await, 1);
    assert_eq!(common::count(store, "email_messages").await, 1);

    let key: String = sea_user_column(store, user.id.0, "email_key").await;
    assert_eq!(key, "mixed.case@example.com");
    let status: String = common::message_column(store, message, "status").await;
    assert_eq!(status, MessageStatus::Queued.as_str());
    let kind: String = common::message_column(store, message, "kind").await;
    assert_eq!(kind, MessageKind::Confirm.as_str());
    let recipient: String = common::message_column(store, message, "recipient").await;
    assert_eq!(recipient, "Mixed.Case@example.com");
    let attempts: i32 = common::message_column(store, message, "attempts").await;
    assert_eq!(attempts, 0);
    let next: chrono::DateTime<chrono::Utc> =
        common::message_column(store, message, "next_attempt_at").await;
    assert_eq!(next, t0());
    let user_id: i64 = common::message_column(store, message, "user_id").await;
    assert_eq!(user_id, user.id.0);

    // Found case-insensitively, and exactly as returned.
    let found = store
        .find_by_email(&email("mixed.case@example.com"))
        .await
        .unwrap();
    assert_eq!(found, Some(user));
    assert_eq!(
        store
            .find_by_email(&email("nobody@example.com"))
            .await
            .unwrap(),
        None
    );
}

async fn second_registration_in_other_case_writes_nothing(store: &SeaStore) {
    register(store, "person@example.com", t0()).await;
    let again = store
        .register(
            &email("PERSON@Example.com"),
            domain::Locale::En,
            t0() + secs(5.0),
        )
        .await
        .unwrap();
    assert_eq!(again, Registration::AlreadyRegistered);
    assert_eq!(common::count(store, "users").await, 1);
    assert_eq!(common::count(store, "email_messages").await, 1);
    // A different address still registers.
    register(store, "person2@example.com", t0()).await;
    assert_eq!(common::count(store, "users").await, 2);
}

async fn concurrent_registrations_create_one(store: &SeaStore) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            // Same account, differing in case.
            let address = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com"
            };
            tokio::spawn(async move {
                store
                    .register(&email(address), domain::Locale::En, t0())
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Registration::Created { .. } => created += 1,
            Registration::AlreadyRegistered => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(common::count(store, "users").await, 1);
    assert_eq!(common::count(store, "email_messages").await, 1);
}

async fn confirm_outcomes(store: &SeaStore) {
    let (user, _) = register(store, "Confirm.Me@example.com", t0()).await;
    let at = t0() + secs(90.5);
    assert_eq!(
        store
            .confirm(&email("confirm.me@EXAMPLE.com"), t0(), at)
            .await
            .unwrap(),
        ConfirmOutcome::Confirmed
    );
    let confirmed = store.find_by_email(&user.email).await.unwrap().unwrap();
    assert!(confirmed.confirmed);
    assert_eq!(confirmed.confirmed_on, Some(at));

    let later = at + secs(60.0);
    assert_eq!(
        store.confirm(&user.email, t0(), later).await.unwrap(),
        ConfirmOutcome::AlreadyConfirmed
    );
    let still = store.find_by_email(&user.email).await.unwrap().unwrap();
    assert_eq!(
        still.confirmed_on,
        Some(at),
        "a second confirmation keeps the first time"
    );

    assert_eq!(
        store
            .confirm(&email("stranger@example.com"), t0(), at)
            .await
            .unwrap(),
        ConfirmOutcome::NotFound
    );
}

async fn a_link_older_than_the_account_is_stale(store: &SeaStore) {
    // Registered at t0 + 100.25 s. Tokens carry whole seconds and the issuer's clock may lag by
    // up to a minute: a token from t0 + 40 s still counts, one from t0 + 39 s is for an earlier
    // account.
    let registered = t0() + secs(100.25);
    let (user, _) = register(store, "again@example.com", registered).await;
    let now = registered + secs(60.0);
    assert_eq!(
        store
            .confirm(&user.email, t0() + secs(39.0), now)
            .await
            .unwrap(),
        ConfirmOutcome::Stale
    );
    assert!(
        !store
            .find_by_email(&user.email)
            .await
            .unwrap()
            .unwrap()
            .confirmed
    );
    assert_eq!(
        store
            .confirm(&user.email, t0() + secs(40.0), now)
            .await
            .unwrap(),
        ConfirmOutcome::Confirmed
    );
    // Once confirmed, an old link just says so.
    assert_eq!(
        store
            .confirm(&user.email, t0() + secs(39.0), now)
            .await
            .unwrap(),
        ConfirmOutcome::AlreadyConfirmed
    );
}

async fn concurrent_confirms_confirm_once(store: &SeaStore) {
    let (user, _) = register(store, "click@example.com", t0()).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let address = user.email.clone();
            tokio::spawn(async move {
                store
                    .confirm(&address, t0(), t0() + secs(f64::from(i)))
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().unwrap());
    }
    let confirmed = outcomes
        .iter()
        .filter(|o| **o == ConfirmOutcome::Confirmed)
        .count();
    let already = outcomes
        .iter()
        .filter(|o| **o == ConfirmOutcome::AlreadyConfirmed)
        .count();
    assert_eq!((confirmed, already), (1, 7), "{outcomes:?}");
}

async fn recent_users_newest_first_with_limit(store: &SeaStore) {
    assert!(store.recent_users(10).await.unwrap().is_empty());
    let mut users = Vec::new();
    for i in 0..5 {
        let (user, _) = register(store, &fresh_address("recent"), t0() + secs(f64::from(i))).await;
        users.push(user);
    }
    // Each flag set on a different user, so a summary that swapped or lost a column shows.
    let at = t0() + secs(10.0);
    assert_eq!(
        store.confirm(&users[3].email, t0(), at).await.unwrap(),
        ConfirmOutcome::Confirmed
    );
    users[3].confirmed = true;
    common::exec(
        store,
        &format!(
            "UPDATE users SET email_sent = TRUE WHERE id = {}",
            users[2].id
        ),
    )
    .await;
    users[2].email_sent = true;
    let recent = store.recent_users(3).await.unwrap();
    let expected: Vec<UserSummary> = [4, 3, 2]
        .into_iter()
        .map(|i| users[i].clone().into())
        .collect();
    assert_eq!(recent, expected);
    let all = store.recent_users(100).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all.iter().map(|u| u.id).collect::<HashSet<_>>().len(), 5);
    assert!(store.recent_users(0).await.unwrap().is_empty());
}

async fn unreadable_user_is_corrupt_without_the_address(store: &SeaStore) {
    common::exec(
        store,
        "INSERT INTO users (email, email_key, mailbox_key, confirmed, email_sent, registered_on) \
         VALUES ('secret-not-an-address', 'secret-not-an-address', 'secret-not-an-address', \
         FALSE, FALSE, '2026-11-21T10:00:00+00:00')",
    )
    .await;
    let err = store.recent_users(10).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");
}

/// One column of one `users` row, read with raw SQL.
async fn sea_user_column<T: sea_orm::TryGetable>(store: &SeaStore, id: i64, column: &str) -> T {
    use sea_orm::{ConnectionTrait, Statement};
    let db = store.connection();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT {column} FROM users WHERE id = {id}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<T>("", column).unwrap()
}

fn policy(cooldown_secs: i64, daily_cap: u32) -> ResendPolicy {
    ResendPolicy {
        cooldown: chrono::TimeDelta::seconds(cooldown_secs),
        daily_cap,
    }
}

/// Claims and sends a message, as a worker would.
async fn deliver(store: &SeaStore, id: domain::MessageId, now: chrono::DateTime<chrono::Utc>) {
    common::claim_ok(store, id, now).await;
    store.mark_sent(id, None, now).await.unwrap();
}

async fn resend_outcomes(store: &SeaStore) {
    let limits = policy(60, 5);
    let resend = |address: &'static str, at| async move {
        store.resend(&email(address), limits, at).await.unwrap()
    };
    assert_eq!(
        resend("nobody@example.com", t0()).await,
        Resend::NotRegistered
    );
    let (_, first) = register(store, "resend@example.com", t0()).await;
    // The registration's email is still owed: nothing new.
    assert_eq!(
        resend("resend@example.com", t0() + secs(90.0)).await,
        Resend::Pending
    );
    deliver(store, first, t0() + secs(1.0)).await;
    // Within the cooldown of the registration's email (counted from its creation).
    assert_eq!(
        resend("RESEND@example.com", t0() + secs(59.9)).await,
        Resend::CoolingDown
    );
    assert_eq!(common::count(store, "email_messages").await, 1);
    let Resend::Queued(second) = resend("Resend@Example.com", t0() + secs(60.0)).await else {
        panic!("expected a queued message after the cooldown");
    };
    assert_ne!(second, first);
    assert_eq!(common::count(store, "email_messages").await, 2);
    let status: String = common::message_column(store, second, "status").await;
    assert_eq!(status, MessageStatus::Queued.as_str());
    let recipient: String = common::message_column(store, second, "recipient").await;
    assert_eq!(recipient, "resend@example.com");
    // A dead message is not pending: after the cooldown another one may be owed.
    common::claim_ok(store, second, t0() + secs(61.0)).await;
    store
        .mark_dead(second, "550 no such user".into(), t0() + secs(61.0))
        .await
        .unwrap();
    assert!(matches!(
        resend("resend@example.com", t0() + secs(121.0)).await,
        Resend::Queued(_)
    ));
    // Confirmed accounts get nothing.
    assert_eq!(
        store
            .confirm(&email("resend@example.com"), t0(), t0() + secs(130.0))
            .await
            .unwrap(),
        ConfirmOutcome::Confirmed
    );
    assert_eq!(
        resend("resend@example.com", t0() + secs(1000.0)).await,
        Resend::AlreadyConfirmed
    );
    assert_eq!(common::count(store, "email_messages").await, 3);
}

async fn resend_daily_cap_counts_the_last_24_hours(store: &SeaStore) {
    let limits = policy(60, 3);
    let (_, first) = register(store, "capped@example.com", t0()).await;
    deliver(store, first, t0()).await;
    let mut at = t0();
    for _ in 0..2 {
        at += secs(61.0);
        let Resend::Queued(id) = store
            .resend(&email("capped@example.com"), limits, at)
            .await
            .unwrap()
        else {
            panic!("expected Queued at {at}");
        };
        deliver(store, id, at).await;
    }
    at += secs(61.0);
    assert_eq!(
        store
            .resend(&email("capped@example.com"), limits, at)
            .await
            .unwrap(),
        Resend::DailyCapReached
    );
    // 24 hours after the registration's email, one of the three has left the window.
    let next_day = t0() + chrono::TimeDelta::days(1) + secs(0.5);
    assert!(matches!(
        store
            .resend(&email("capped@example.com"), limits, next_day)
            .await
            .unwrap(),
        Resend::Queued(_)
    ));
    assert_eq!(common::count(store, "email_messages").await, 4);
}

async fn concurrent_resends_queue_one(store: &SeaStore) {
    let (_, first) = register(store, "burst@example.com", t0()).await;
    deliver(store, first, t0()).await;
    let at = t0() + secs(120.0);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .resend(&email("burst@example.com"), policy(60, 5), at)
                    .await
            })
        })
        .collect();
    let mut queued = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Resend::Queued(_) => queued += 1,
            Resend::Pending | Resend::CoolingDown => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(queued, 1);
    assert_eq!(common::count(store, "email_messages").await, 2);
}

/// `register_many` and `confirm_many` answer per entry, in order, as the single calls would.
async fn batches_register_and_confirm_per_entry(store: &SeaStore) {
    let (_, _) = register(store, "old@example.com", t0()).await;
    let answers = store
        .register_many(
            vec![
                (email("New.One@example.com"), domain::Locale::En),
                (email("old@example.com"), domain::Locale::En),
                (email("new.one@EXAMPLE.com"), domain::Locale::En),
                (email("two@example.com"), domain::Locale::En),
            ],
            t0() + secs(1.0),
        )
        .await
        .unwrap();
    assert_eq!(answers.len(), 4);
    let Registration::Created { user, message } = &answers[0] else {
        panic!("the first entry registers: {answers:?}");
    };
    assert_eq!(
        user.email.as_str(),
        "New.One@example.com",
        "the address as typed"
    );
    assert_eq!(user.registered_on, t0() + secs(1.0));
    assert_eq!(answers[1], Registration::AlreadyRegistered);
    assert_eq!(
        answers[2],
        Registration::AlreadyRegistered,
        "same key later in the batch"
    );
    assert!(matches!(answers[3], Registration::Created { .. }));
    let stored = store
        .find_by_email(&email("new.one@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id, user.id);
    assert_eq!(stored.email.as_str(), "New.One@example.com");
    assert_eq!(
        common::message_column::<i64>(store, *message, "user_id").await,
        user.id.0
    );
    assert_eq!(common::count(store, "users").await, 3);
    assert_eq!(common::count(store, "email_messages").await, 3);
    assert!(store.register_many(vec![], t0()).await.unwrap().is_empty());

    // `two` registered at t0 + 1 s: a link issued 61 s or more before is for an older account.
    let at = t0() + secs(5.0);
    let outcomes = store
        .confirm_many(
            vec![
                (email("new.one@example.com"), t0() + secs(1.0)),
                (email("nobody@example.com"), t0()),
                (email("NEW.ONE@example.com"), t0() + secs(2.0)),
                (email("two@example.com"), t0() - secs(61.0)),
                (email("old@example.com"), t0()),
            ],
            at,
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            ConfirmOutcome::Confirmed,
            ConfirmOutcome::NotFound,
            ConfirmOutcome::AlreadyConfirmed,
            ConfirmOutcome::Stale,
            ConfirmOutcome::Confirmed,
        ]
    );
    let confirmed = store
        .find_by_email(&email("old@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert!(confirmed.confirmed);
    assert_eq!(confirmed.confirmed_on, Some(at));
    assert!(
        !store
            .find_by_email(&email("two@example.com"))
            .await
            .unwrap()
            .unwrap()
            .confirmed
    );
    assert_eq!(
        store
            .confirm_many(vec![(email("old@example.com"), t0())], at)
            .await
            .unwrap(),
        vec![ConfirmOutcome::AlreadyConfirmed]
    );
}

/// Through `BatchedUsers`, concurrent calls share batches and each still gets its own answer:
/// 60 registrations of 20 accounts (each in three letter cases) create 20, and 60 clicks on
/// their links confirm each account exactly once.
async fn batched_users_answer_each_concurrent_call(store: &SeaStore) {
    let batched = std::sync::Arc::new(store::batch::BatchedUsers::new(
        std::sync::Arc::new(store.clone()),
        16,
    ));
    let address = |i: usize| match i % 3 {
        0 => format!("batched-{}@example.com", i / 3),
        1 => format!("BATCHED-{}@example.com", i / 3),
        _ => format!("Batched-{}@Example.com", i / 3),
    };
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let batched = std::sync::Arc::clone(&batched);
            let a = address(i);
            tokio::spawn(
                async move { batched.register(&email(&a), domain::Locale::En, t0()).await },
            )
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        if let Registration::Created { .. } = task.await.unwrap().unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 20);
    assert_eq!(common::count(store, "users").await, 20);
    assert_eq!(common::count(store, "email_messages").await, 20);

    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let batched = std::sync::Arc::clone(&batched);
            let a = address(i);
            tokio::spawn(async move { batched.confirm(&email(&a), t0(), t0() + secs(1.0)).await })
        })
        .collect();
    let mut confirmed = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            ConfirmOutcome::Confirmed => confirmed += 1,
            ConfirmOutcome::AlreadyConfirmed => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(confirmed, 20, "each account confirmed exactly once");
}

/// A confirmation's redirect: recorded per account (looked up by key), replaced by a second
/// one, refused for an unknown address, and gone with its user.
async fn confirm_redirects_are_per_account(store: &SeaStore) {
    let (user, _) = register(store, "Redirect.Me@example.com", t0()).await;
    register(store, "other@example.com", t0()).await;
    assert_eq!(
        store
            .confirm_redirect(&email("redirect.me@example.com"))
            .await
            .unwrap(),
        None
    );
    let first = "https://app.example.com/a?email_confirmed=1";
    let second = "https://app.example.com/b?email_confirmed=1";
    assert!(
        store
            .set_confirm_redirect(&email("Redirect.Me@example.com"), first)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .confirm_redirect(&email("REDIRECT.ME@example.com"))
            .await
            .unwrap()
            .as_deref(),
        Some(first)
    );
    assert!(
        store
            .set_confirm_redirect(&email("redirect.me@example.com"), second)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .confirm_redirect(&email("redirect.me@example.com"))
            .await
            .unwrap()
            .as_deref(),
        Some(second)
    );
    assert_eq!(common::count(store, "confirm_redirects").await, 1);
    assert_eq!(
        store
            .confirm_redirect(&email("other@example.com"))
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .set_confirm_redirect(&email("nobody@example.com"), first)
            .await
            .unwrap()
    );
    assert_eq!(common::count(store, "confirm_redirects").await, 1);

    // Deleting the user deletes its redirect (ON DELETE CASCADE).
    use sea_orm::ConnectionTrait as _;
    let db = store.connection();
    db.execute_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        format!("DELETE FROM users WHERE id = {}", user.id.0),
    ))
    .await
    .unwrap();
    assert_eq!(common::count(store, "confirm_redirects").await, 0);
}

/// The language given at registration is the account's: every email claimed for it carries
/// it (a resend too, whoever asks), alone or in a batch; and the dashboard's records show it.
async fn the_account_keeps_its_language(store: &SeaStore) {
    use domain::Locale;
    let Registration::Created { message, .. } = store
        .register(&email("zh@example.com"), Locale::ZhCn, t0())
        .await
        .unwrap()
    else {
        panic!("expected an owed email")
    };
    let answers = store
        .register_many(
            vec![
                (email("batch-zh@example.com"), Locale::ZhCn),
                (email("batch-en@example.com"), Locale::En),
            ],
            t0(),
        )
        .await
        .unwrap();
    let ids: Vec<_> = answers
        .iter()
        .map(|a| match a {
            Registration::Created { message, .. } => *message,
            other => panic!("{other:?}"),
        })
        .collect();
    let claimed = store
        .claim_many(vec![message, ids[0], ids[1]], t0(), common::lease())
        .await
        .unwrap();
    let locales: Vec<_> = claimed
        .into_iter()
        .map(|c| match c.unwrap() {
            store::Claim::Claimed(m) => m.locale,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(locales, [Locale::ZhCn, Locale::ZhCn, Locale::En]);
    store
        .mark_sent(message, None, t0() + secs(1.0))
        .await
        .unwrap();
    let Resend::Queued(again) = store
        .resend(
            &email("zh@example.com"),
            ResendPolicy::UNLIMITED,
            t0() + secs(120.0),
        )
        .await
        .unwrap()
    else {
        panic!("expected a queued resend")
    };
    let claimed = common::claim_ok(store, again, t0() + secs(121.0)).await;
    assert_eq!(claimed.locale, Locale::ZhCn);
    let record = store.get(again).await.unwrap().unwrap();
    assert_eq!(record.message.locale, Locale::ZhCn);
}

backend_tests!(
    the_account_keeps_its_language,
    confirm_redirects_are_per_account,
    batches_register_and_confirm_per_entry,
    batched_users_answer_each_concurrent_call,
    resend_outcomes,
    resend_daily_cap_counts_the_last_24_hours,
    concurrent_resends_queue_one,
    a_link_older_than_the_account_is_stale,
    register_creates_user_and_queued_message,
    second_registration_in_other_case_writes_nothing,
    concurrent_registrations_create_one,
    confirm_outcomes,
    concurrent_confirms_confirm_once,
    recent_users_newest_first_with_limit,
    unreadable_user_is_corrupt_without_the_address,
);
