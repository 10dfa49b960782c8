//! Retention: finished messages and unconfirmed accounts deleted in bounded batches, with what
//! hangs off them; nothing owed is ever deleted.

use domain::{MessageStatus, SuppressionSource};
use store::{ConfirmOutcome, MessageStore, Registration, SeaStore, SuppressionStore, UserStore};

use crate::common::{self, backend_tests, claim_ok, email, secs, t0};

/// Sent and dead messages older than the cut-off go, at most `limit` a call, attempts included;
/// newer ones and owed ones stay.
async fn finished_messages_expire_in_batches(store: &SeaStore) {
    let mut sent = Vec::new();
    for i in 0..5 {
        let (_, id) = common::register(store, &format!("sent{i}@example.com"), t0()).await;
        claim_ok(store, id, t0()).await;
        store
            .mark_sent(id, None, t0() + secs(i as f64))
            .await
            .unwrap();
        sent.push(id);
    }
    let (_, dead) = common::register(store, "dead@example.com", t0()).await;
    claim_ok(store, dead, t0()).await;
    store.mark_dead(dead, "550".into(), t0()).await.unwrap();
    let (_, owed) = common::register(store, "owed@example.com", t0()).await;
    assert_eq!(common::count(store, "email_attempts").await, 6);

    // Cut-off after the first three sends: two per call, then the third, then none.
    let before = t0() + secs(2.5);
    let purge = |limit| store.purge_finished(MessageStatus::Sent, before, limit);
    assert_eq!(purge(2).await.unwrap(), 2);
    assert_eq!(purge(2).await.unwrap(), 1);
    assert_eq!(purge(2).await.unwrap(), 0);
    for (i, id) in sent.iter().enumerate() {
        assert_eq!(
            store.get(*id).await.unwrap().is_some(),
            i >= 3,
            "message {i}"
        );
    }
    assert_eq!(
        common::count(store, "email_attempts").await,
        3,
        "attempts went with them"
    );
    // The user and its `email_sent` stay.
    let user = store
        .find_by_email(&email("sent0@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert!(user.email_sent);

    // Dead: its own status and cut-off; owed messages never, whatever the cut-off.
    let later = t0() + secs(3600.0);
    assert_eq!(
        store
            .purge_finished(MessageStatus::Dead, later, 10)
            .await
            .unwrap(),
        1
    );
    assert!(store.get(dead).await.unwrap().is_none());
    for status in [
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Retrying,
    ] {
        assert_eq!(store.purge_finished(status, later, 10).await.unwrap(), 0);
    }
    assert!(store.get(owed).await.unwrap().is_some());
    assert_eq!(
        store
            .purge_finished(MessageStatus::Sent, later, 0)
            .await
            .unwrap(),
        0
    );
}

/// An unconfirmed account past its time goes with its messages, and the address can be
/// registered again; confirmed accounts and accounts still owed an email stay.
async fn unconfirmed_accounts_expire_and_the_address_is_free_again(store: &SeaStore) {
    let (_, squatted) = common::register(store, "squatted@example.com", t0()).await;
    claim_ok(store, squatted, t0()).await;
    store.mark_sent(squatted, None, t0()).await.unwrap();
    let (_, kept) = common::register(store, "kept@example.com", t0()).await;
    claim_ok(store, kept, t0()).await;
    store.mark_sent(kept, None, t0()).await.unwrap();
    assert_eq!(
        store
            .confirm(&email("kept@example.com"), t0(), t0() + secs(1.0))
            .await
            .unwrap(),
        ConfirmOutcome::Confirmed
    );
    // Still owed its email (queued): kept until the email has its outcome.
    let (_, waiting) = common::register(store, "waiting@example.com", t0()).await;
    let (_, young) = common::register(store, "young@example.com", t0() + secs(7200.0)).await;

    let ttl_cutoff = t0() + secs(3600.0);
    assert_eq!(store.purge_unconfirmed(ttl_cutoff, 10).await.unwrap(), 1);
    assert!(
        store
            .find_by_email(&email("squatted@example.com"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store.get(squatted).await.unwrap().is_none(),
        "its messages went with it"
    );
    for (address, id) in [("kept", kept), ("waiting", waiting), ("young", young)] {
        let account = format!("{address}@example.com");
        assert!(
            store
                .find_by_email(&email(&account))
                .await
                .unwrap()
                .is_some(),
            "{address}"
        );
        assert!(store.get(id).await.unwrap().is_some(), "{address}");
    }
    assert_eq!(store.purge_unconfirmed(ttl_cutoff, 10).await.unwrap(), 0);

    // Its owner registers it again: a new account, a new email.
    let again = store
        .register(
            &email("Squatted@example.com"),
            domain::Locale::En,
            t0() + secs(7300.0),
        )
        .await
        .unwrap();
    assert!(matches!(again, Registration::Created { .. }), "{again:?}");
}

/// A suppression outlives the accounts of its mailbox: retention deletes accounts, never the
/// list (a suppressed address stays suppressed when registered again).
async fn retention_keeps_the_suppression_list(store: &SeaStore) {
    let (user, id) = common::register(store, "stop@example.com", t0()).await;
    store
        .suppress(&user.email.mailbox_key(), SuppressionSource::StopLink, t0())
        .await
        .unwrap();
    // Cancelled by the suppression: finished, so expired with the sent ones.
    assert_eq!(
        store
            .purge_finished(MessageStatus::Cancelled, t0() + secs(1.0), 10)
            .await
            .unwrap(),
        1
    );
    assert!(store.get(id).await.unwrap().is_none());
    assert_eq!(
        store.purge_unconfirmed(t0() + secs(1.0), 10).await.unwrap(),
        1
    );
    assert!(
        store
            .is_suppressed(&user.email.mailbox_key())
            .await
            .unwrap()
    );
    let again = store
        .register(
            &email("stop@example.com"),
            domain::Locale::En,
            t0() + secs(2.0),
        )
        .await
        .unwrap();
    assert!(
        matches!(again, Registration::CreatedWithoutEmail { .. }),
        "{again:?}"
    );
}

backend_tests!(
    finished_messages_expire_in_batches,
    unconfirmed_accounts_expire_and_the_address_is_free_again,
    retention_keeps_the_suppression_list,
);
