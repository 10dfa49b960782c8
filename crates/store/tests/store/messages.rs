//! `MessageStore` on every backend, with explicit times.

use chrono::{DateTime, TimeDelta, Utc};
use domain::{MessageId, MessageKind, MessageStatus, OwedMessage};
use store::{Claim, MessageStore, SeaStore, StoreError, UserStore};

use crate::common::{
    self, backend_tests, claim_ok, email, fresh_address, lease, register, secs, t0,
};

async fn status(store: &SeaStore, id: MessageId) -> String {
    common::message_column(store, id, "status").await
}

async fn lease_until(store: &SeaStore, id: MessageId) -> Option<DateTime<Utc>> {
    common::message_column(store, id, "lease_until").await
}

async fn last_error(store: &SeaStore, id: MessageId) -> Option<String> {
    common::message_column(store, id, "last_error").await
}

async fn claim_is(store: &SeaStore, id: MessageId, now: DateTime<Utc>) -> Claim {
    store.claim(id, now, lease()).await.unwrap()
}

async fn claim_then_lease_expiry(store: &SeaStore) {
    let (user, id) = register(store, "Lease.Me@example.com", t0()).await;
    let at = t0() + secs(1.0);
    let claimed = claim_ok(store, id, at).await;
    assert_eq!(
        claimed,
        OwedMessage {
            id,
            user_id: user.id,
            kind: MessageKind::Confirm,
            recipient: email("Lease.Me@example.com"),
            status: MessageStatus::Sending,
            attempts: 1,
            created_at: t0(),
            locale: domain::Locale::En,
            password_binding: None,
        }
    );
    assert_eq!(claimed.recipient.as_str(), "Lease.Me@example.com");
    assert_eq!(lease_until(store, id).await, Some(at + lease()));

    // Held: not claimable again until the lease has run out.
    assert_eq!(claim_is(store, id, at).await, Claim::NotClaimable);
    assert_eq!(
        claim_is(store, id, at + secs(30.0)).await,
        Claim::NotClaimable
    );
    let expiry = at + lease();
    assert_eq!(
        claim_is(store, id, expiry - TimeDelta::microseconds(1)).await,
        Claim::NotClaimable
    );
    let again = claim_ok(store, id, expiry).await;
    assert_eq!(again.attempts, 2);
    assert_eq!(lease_until(store, id).await, Some(expiry + lease()));
    let attempts: i32 = common::message_column(store, id, "attempts").await;
    assert_eq!(attempts, 2);
    let updated: DateTime<Utc> = common::message_column(store, id, "updated_at").await;
    assert_eq!(updated, expiry);
}

async fn sent_is_already_sent_and_marks_the_user(store: &SeaStore) {
    let (user, id) = register(store, "sent@example.com", t0()).await;
    claim_ok(store, id, t0()).await;
    store
        .mark_retry(
            id,
            "421 try later".to_owned(),
            t0() + secs(10.0),
            t0() + secs(1.0),
        )
        .await
        .unwrap();
    claim_ok(store, id, t0() + secs(10.0)).await;
    let sent_at = t0() + secs(11.5);
    store
        .mark_sent(id, Some("ses-0001".to_owned()), sent_at)
        .await
        .unwrap();

    assert_eq!(status(store, id).await, "sent");
    let sent: Option<DateTime<Utc>> = common::message_column(store, id, "sent_at").await;
    assert_eq!(sent, Some(sent_at));
    let provider: Option<String> = common::message_column(store, id, "provider_message_id").await;
    assert_eq!(provider.as_deref(), Some("ses-0001"));
    assert_eq!(lease_until(store, id).await, None);
    assert_eq!(
        last_error(store, id).await.as_deref(),
        Some("421 try later"),
        "last_error is kept"
    );
    let user = store.find_by_email(&user.email).await.unwrap().unwrap();
    assert!(user.email_sent);
    assert!(!user.confirmed);

    assert_eq!(claim_is(store, id, sent_at).await, Claim::AlreadySent);
    assert_eq!(
        claim_is(store, id, sent_at + secs(3600.0)).await,
        Claim::AlreadySent
    );
    assert!(
        store
            .due(sent_at + secs(3600.0), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A late failure report from a worker whose lease had expired never undoes the send.
    store
        .mark_retry(
            id,
            "timeout".to_owned(),
            sent_at + secs(60.0),
            sent_at + secs(1.0),
        )
        .await
        .unwrap();
    store
        .mark_dead(id, "gave up".to_owned(), sent_at + secs(2.0))
        .await
        .unwrap();
    assert_eq!(status(store, id).await, "sent");
    assert_eq!(
        claim_is(store, id, sent_at + secs(3600.0)).await,
        Claim::AlreadySent
    );

    // Without a provider id.
    let (_, other) = register(store, "sent2@example.com", t0()).await;
    claim_ok(store, other, t0()).await;
    store
        .mark_sent(other, None, t0() + secs(1.0))
        .await
        .unwrap();
    let provider: Option<String> =
        common::message_column(store, other, "provider_message_id").await;
    assert_eq!(provider, None);
}

async fn retrying_waits_for_its_time(store: &SeaStore) {
    let (_, id) = register(store, "retry@example.com", t0()).await;
    claim_ok(store, id, t0()).await;
    // A whole second, so that SQLite compares a timestamp without a fraction against ones with.
    let retry_at = t0() + secs(29.75);
    assert_eq!(retry_at.timestamp_subsec_micros(), 0);
    let long_error = "é".repeat(1500);
    store
        .mark_retry(id, long_error, retry_at, t0() + secs(1.0))
        .await
        .unwrap();

    assert_eq!(status(store, id).await, "retrying");
    assert_eq!(lease_until(store, id).await, None);
    let next: DateTime<Utc> = common::message_column(store, id, "next_attempt_at").await;
    assert_eq!(next, retry_at);
    let stored = last_error(store, id).await.unwrap();
    assert_eq!(stored.chars().count(), 1000);
    assert!(stored.chars().all(|c| c == 'é'));

    assert_eq!(
        claim_is(store, id, t0() + secs(2.0)).await,
        Claim::NotClaimable
    );
    assert_eq!(
        claim_is(store, id, retry_at - TimeDelta::microseconds(1)).await,
        Claim::NotClaimable
    );
    let claimed = claim_ok(store, id, retry_at).await;
    assert_eq!(claimed.attempts, 2);
    assert_eq!(claimed.status, MessageStatus::Sending);
}

async fn dead_is_never_claimable(store: &SeaStore) {
    let (_, id) = register(store, "dead@example.com", t0()).await;
    claim_ok(store, id, t0()).await;
    store
        .mark_dead(id, "550 mailbox unavailable".to_owned(), t0() + secs(1.0))
        .await
        .unwrap();
    assert_eq!(status(store, id).await, "dead");
    assert_eq!(lease_until(store, id).await, None);
    assert_eq!(
        last_error(store, id).await.as_deref(),
        Some("550 mailbox unavailable")
    );
    let far = t0() + secs(86_400.0 * 365.0);
    assert_eq!(claim_is(store, id, far).await, Claim::NotClaimable);
    assert!(store.due(far, 10).await.unwrap().is_empty());
}

async fn deleted_user_leaves_nothing_to_claim(store: &SeaStore) {
    let (user, id) = register(store, "gone@example.com", t0()).await;
    common::exec(store, &format!("DELETE FROM users WHERE id = {}", user.id)).await;
    assert_eq!(common::count(store, "email_messages").await, 0);
    assert_eq!(claim_is(store, id, t0()).await, Claim::Missing);
    assert_eq!(
        claim_is(store, MessageId(987_654_321), t0()).await,
        Claim::Missing
    );
    // Recording outcomes for a vanished message is harmless.
    store.mark_sent(id, None, t0()).await.unwrap();
    store
        .mark_retry(id, "x".to_owned(), t0(), t0())
        .await
        .unwrap();
    store.mark_dead(id, "x".to_owned(), t0()).await.unwrap();
    assert_eq!(common::count(store, "email_messages").await, 0);
}

async fn concurrent_claims_one_wins(store: &SeaStore) {
    let (_, id) = register(store, "contended@example.com", t0()).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim(id, t0() + secs(1.0), lease()).await })
        })
        .collect();
    let mut claimed = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Claim::Claimed(m) => {
                assert_eq!(m.attempts, 1);
                claimed += 1;
            }
            Claim::NotClaimable => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
    let attempts: i32 = common::message_column(store, id, "attempts").await;
    assert_eq!(attempts, 1);
}

async fn due_picks_exactly_the_right_rows(store: &SeaStore) {
    let at = |s: f64| t0() + secs(s);
    let reg = async |s: f64| register(store, &fresh_address("due"), at(s)).await.1;

    let queued = reg(0.0).await; // due from t0
    let queued_later = reg(10.0).await; // due from t0+10
    let sent = reg(0.25).await;
    claim_ok(store, sent, at(0.25)).await;
    store.mark_sent(sent, None, at(0.3)).await.unwrap();
    let leased = reg(0.5).await; // lease until t0+60.5
    claim_ok(store, leased, at(0.5)).await;
    let dead = reg(0.75).await;
    claim_ok(store, dead, at(0.75)).await;
    store
        .mark_dead(dead, "no".to_owned(), at(0.8))
        .await
        .unwrap();
    let retry_soon = reg(1.0).await; // retrying, due at t0+3.75 (a whole second)
    claim_ok(store, retry_soon, at(1.0)).await;
    store
        .mark_retry(retry_soon, "later".to_owned(), at(3.75), at(1.1))
        .await
        .unwrap();
    let retry_late = reg(2.0).await; // retrying, due at t0+7
    claim_ok(store, retry_late, at(2.0)).await;
    store
        .mark_retry(retry_late, "later".to_owned(), at(7.0), at(2.1))
        .await
        .unwrap();
    let expired = reg(2.5).await; // sending, lease until t0+4.5
    match store.claim(expired, at(2.5), secs(2.0)).await.unwrap() {
        Claim::Claimed(_) => {}
        other => panic!("expected Claimed, got {other:?}"),
    }

    assert!(store.due(at(-1.0), 100).await.unwrap().is_empty());
    assert_eq!(store.due(at(0.0), 100).await.unwrap(), vec![queued]);
    assert_eq!(
        store
            .due(at(3.75) - TimeDelta::microseconds(1), 100)
            .await
            .unwrap(),
        vec![queued]
    );
    assert_eq!(
        store.due(at(3.75), 100).await.unwrap(),
        vec![queued, retry_soon]
    );
    // Ordered by next attempt time: the expired lease's message was due at t0+2.5.
    assert_eq!(
        store.due(at(5.0), 100).await.unwrap(),
        vec![queued, expired, retry_soon]
    );
    assert_eq!(store.due(at(5.0), 2).await.unwrap(), vec![queued, expired]);
    assert_eq!(
        store.due(at(60.5), 100).await.unwrap(),
        vec![
            queued,
            leased,
            expired,
            retry_soon,
            retry_late,
            queued_later
        ]
    );
    assert!(store.due(at(60.5), 0).await.unwrap().is_empty());
}

async fn due_breaks_ties_by_id(store: &SeaStore) {
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(register(store, &fresh_address("tie"), t0()).await.1);
    }
    assert_eq!(store.due(t0(), 10).await.unwrap(), ids);
}

async fn unreadable_message_is_corrupt_without_the_address(store: &SeaStore) {
    let (_, id) = register(store, "secret.person@example.com", t0()).await;
    common::exec(
        store,
        &format!("UPDATE email_messages SET status = 'lost' WHERE id = {id}"),
    )
    .await;
    let err = store.claim(id, t0(), lease()).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");

    let (_, id) = register(store, "secret.other@example.com", t0()).await;
    common::exec(
        store,
        &format!("UPDATE email_messages SET recipient = 'secret-garbage' WHERE id = {id}"),
    )
    .await;
    let err = store.claim(id, t0(), lease()).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");
    // The claim itself happened (one statement for the whole batch): the row stays leased
    // until its lease expires, so the sweeper does not hand it out again at once.
    assert_eq!(status(store, id).await, "sending");
}

async fn dead_letters_are_listed_requeued_and_purged(store: &SeaStore) {
    let (_, a) = register(store, "Dead.A@example.com", t0()).await;
    let (_, b) = register(store, "dead.b@example.com", t0()).await;
    let (_, live) = register(store, "live@example.com", t0()).await;
    for (id, at) in [(a, 1.0), (b, 2.0)] {
        claim_ok(store, id, t0() + secs(at)).await;
        store
            .mark_dead(id, format!("550 no such user ({id})"), t0() + secs(at))
            .await
            .unwrap();
    }

    let dead = store.dead(10).await.unwrap();
    assert_eq!(
        dead.iter().map(|m| m.message.id).collect::<Vec<_>>(),
        vec![b, a],
        "newest failure first"
    );
    assert_eq!(dead[1].message.recipient, email("Dead.A@example.com"));
    assert_eq!(dead[1].message.attempts, 1);
    assert_eq!(dead[1].message.status, MessageStatus::Dead);
    assert_eq!(
        dead[1].last_error.as_deref(),
        Some(format!("550 no such user ({a})").as_str())
    );
    assert_eq!(dead[1].updated_at, t0() + secs(1.0));
    assert_eq!(store.dead(1).await.unwrap().len(), 1);

    // One by id; a message that is not dead is left alone.
    let now = t0() + secs(10.0);
    assert_eq!(store.requeue_dead(Some(a), now).await.unwrap(), vec![a]);
    assert_eq!(store.requeue_dead(Some(live), now).await.unwrap(), vec![]);
    assert_eq!(status(store, a).await, "queued");
    assert_eq!(common::message_column::<i32>(store, a, "attempts").await, 0);
    assert_eq!(store.due(now, 10).await.unwrap(), vec![live, a]);
    let again = claim_ok(store, a, now).await;
    assert_eq!(again.attempts, 1);

    // Purge only what is older than the cut-off.
    assert_eq!(store.purge_dead(t0() + secs(2.0)).await.unwrap(), 0);
    assert_eq!(store.purge_dead(t0() + secs(2.5)).await.unwrap(), 1);
    assert!(store.dead(10).await.unwrap().is_empty());
    assert_eq!(common::count(store, "email_messages").await, 2);

    // All at once.
    store.mark_dead(a, "again".into(), now).await.unwrap();
    assert_eq!(store.requeue_dead(None, now).await.unwrap(), vec![a]);
    assert_eq!(status(store, a).await, "queued");
}

async fn stats_list_and_attempt_history(store: &SeaStore) {
    assert_eq!(
        store.stats().await.unwrap(),
        store::DeliveryStats::default()
    );
    let (_, a) = register(store, "Alpha@example.com", t0()).await;
    let (_, b) = register(store, "beta@example.com", t0() + secs(1.0)).await;
    let (_, c) = register(store, "gamma@example.com", t0() + secs(2.0)).await;
    // a: retried once, then sent. b: dead. c: still queued.
    claim_ok(store, a, t0() + secs(3.0)).await;
    store
        .mark_retry(
            a,
            "451 try later".into(),
            t0() + secs(4.0),
            t0() + secs(3.5),
        )
        .await
        .unwrap();
    claim_ok(store, a, t0() + secs(4.0)).await;
    store
        .mark_sent(a, Some("provider-id-1".into()), t0() + secs(4.5))
        .await
        .unwrap();
    claim_ok(store, b, t0() + secs(5.0)).await;
    store
        .mark_dead(b, "550 no such user".into(), t0() + secs(5.5))
        .await
        .unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (
            stats.queued,
            stats.sending,
            stats.retrying,
            stats.sent,
            stats.dead
        ),
        (1, 0, 0, 1, 1)
    );
    assert_eq!(stats.oldest_owed, Some(t0() + secs(2.0)));

    let attempts = store.attempts(a).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (
            attempts[0].attempt,
            attempts[0].outcome,
            attempts[0].error.as_deref()
        ),
        (1, MessageStatus::Retrying, Some("451 try later"))
    );
    assert_eq!(attempts[0].finished_at, t0() + secs(3.5));
    assert_eq!(
        (
            attempts[1].attempt,
            attempts[1].outcome,
            attempts[1].provider_message_id.as_deref()
        ),
        (2, MessageStatus::Sent, Some("provider-id-1"))
    );
    let dead = store.attempts(b).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].outcome, MessageStatus::Dead);
    assert!(store.attempts(c).await.unwrap().is_empty());
    // A late failure report for a sent message records nothing.
    store
        .mark_retry(a, "late".into(), t0() + secs(9.0), t0() + secs(6.0))
        .await
        .unwrap();
    assert_eq!(store.attempts(a).await.unwrap().len(), 2);

    // Newest first, paged by id, filtered by the account's address (any case).
    let query = |recipient: Option<&str>, before, limit| store::MessageQuery {
        recipient: recipient.map(email),
        before,
        kind: None,
        limit,
    };
    let ids = |records: Vec<domain::MessageRecord>| -> Vec<MessageId> {
        records.into_iter().map(|r| r.message.id).collect()
    };
    assert_eq!(
        ids(store.list(query(None, None, 10)).await.unwrap()),
        [c, b, a]
    );
    assert_eq!(ids(store.list(query(None, None, 2)).await.unwrap()), [c, b]);
    assert_eq!(ids(store.list(query(None, Some(b), 2)).await.unwrap()), [a]);
    assert_eq!(
        ids(store
            .list(query(Some("alpha@EXAMPLE.com"), None, 10))
            .await
            .unwrap()),
        [a]
    );
    assert!(
        store
            .list(query(Some("nobody@example.com"), None, 10))
            .await
            .unwrap()
            .is_empty()
    );

    let record = store.get(a).await.unwrap().unwrap();
    assert_eq!(record.message.status, MessageStatus::Sent);
    assert_eq!(record.provider_message_id.as_deref(), Some("provider-id-1"));
    assert_eq!(record.message.recipient.as_str(), "Alpha@example.com");
    assert_eq!(store.get(MessageId(999_999)).await.unwrap(), None);
}

/// `claim_many` answers per id in the order given, and `mark_sent_many` records every send of
/// its batch (status, attempt, the user's `email_sent`), ignoring ids that are gone.
async fn batches_claim_and_record_per_message(store: &SeaStore) {
    let (_, a) = register(store, "batch-a@example.com", t0()).await;
    let (user_b, b) = register(store, "batch-b@example.com", t0()).await;
    let (_, sent) = register(store, "batch-sent@example.com", t0()).await;
    let (_, later) = register(store, "batch-later@example.com", t0()).await;
    // `sent` is already sent; `later` failed and is due again only at t0 + 100 s.
    claim_ok(store, sent, t0() + secs(1.0)).await;
    store.mark_sent(sent, None, t0() + secs(1.5)).await.unwrap();
    claim_ok(store, later, t0() + secs(1.0)).await;
    store
        .mark_retry(later, "451".into(), t0() + secs(100.0), t0() + secs(1.5))
        .await
        .unwrap();
    let missing = MessageId(i64::MAX - 7);

    let at = t0() + secs(2.0);
    let answers = store
        .claim_many(vec![b, missing, a, sent, later, b], at, lease())
        .await
        .unwrap();
    let answers: Vec<Claim> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(answers.len(), 6);
    match (&answers[0], &answers[2]) {
        (Claim::Claimed(mb), Claim::Claimed(ma)) => {
            assert_eq!((mb.id, mb.user_id, mb.attempts), (b, user_b.id, 1));
            assert_eq!(mb.recipient.as_str(), "batch-b@example.com");
            assert_eq!(ma.id, a);
        }
        other => panic!("a and b must be claimed: {other:?}"),
    }
    assert_eq!(answers[1], Claim::Missing);
    assert_eq!(answers[3], Claim::AlreadySent);
    assert_eq!(answers[4], Claim::NotClaimable, "a retry not yet due");
    assert_eq!(answers[5], Claim::NotClaimable, "the second entry of b");
    assert_eq!(status(store, a).await, "sending");
    assert_eq!(lease_until(store, b).await, Some(at + lease()));
    assert!(
        store
            .claim_many(vec![], at, lease())
            .await
            .unwrap()
            .is_empty()
    );

    store
        .mark_sent_many(
            vec![
                (a, Some("pid-a".into())),
                (missing, Some("pid-missing".into())),
                (b, None),
            ],
            t0() + secs(3.0),
        )
        .await
        .unwrap();
    store
        .mark_sent_many(vec![], t0() + secs(3.0))
        .await
        .unwrap();
    for id in [a, b] {
        assert_eq!(status(store, id).await, "sent");
        assert_eq!(lease_until(store, id).await, None);
        let attempts = store.attempts(id).await.unwrap();
        assert_eq!(attempts.len(), 1, "one attempt recorded for {id}");
        assert_eq!(attempts[0].outcome, MessageStatus::Sent);
        assert_eq!(attempts[0].finished_at, t0() + secs(3.0));
    }
    assert_eq!(
        store.attempts(a).await.unwrap()[0]
            .provider_message_id
            .as_deref(),
        Some("pid-a")
    );
    assert_eq!(
        common::message_column::<Option<String>>(store, b, "provider_message_id").await,
        None
    );
    let b_user = store
        .find_by_email(&email("batch-b@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert!(b_user.email_sent);
    assert_eq!(common::count(store, "email_attempts").await, 4);
}

backend_tests!(
    batches_claim_and_record_per_message,
    stats_list_and_attempt_history,
    dead_letters_are_listed_requeued_and_purged,
    claim_then_lease_expiry,
    sent_is_already_sent_and_marks_the_user,
    retrying_waits_for_its_time,
    dead_is_never_claimable,
    deleted_user_leaves_nothing_to_claim,
    concurrent_claims_one_wins,
    due_picks_exactly_the_right_rows,
    due_breaks_ties_by_id,
    unreadable_message_is_corrupt_without_the_address,
);
