//! The six-digit codes' store side: which confirmation emails of an account may still take a
//! code, and wrong tries counted until a code is spent.

use store::{CodeCandidate, MessageStore, SeaStore, UserStore};

use crate::common::{backend_tests, claim_ok, email, message_column, register, secs, t0};

/// Only sent confirmation emails of this account, sent since the cut-off, with fewer than five
/// wrong tries, newest first; a wrong try counts once per call and stops at five.
async fn live_codes_are_sent_recent_and_not_spent(store: &SeaStore) {
    let address = email("code@example.com");
    let (_, first) = register(store, "code@example.com", t0()).await;
    // Not sent yet: no code to try.
    assert_eq!(store.code_candidates(&address, t0()).await.unwrap(), vec![]);
    claim_ok(store, first, t0()).await;
    store
        .mark_sent(first, None, t0() + secs(1.0))
        .await
        .unwrap();
    let resent = store
        .resend(
            &address,
            domain::ResendPolicy::default(),
            t0() + secs(600.0),
        )
        .await
        .unwrap();
    let store::Resend::Queued(second) = resent else {
        panic!("{resent:?}");
    };
    claim_ok(store, second, t0() + secs(600.0)).await;
    store
        .mark_sent(second, None, t0() + secs(601.0))
        .await
        .unwrap();
    // Another account's email is never a candidate.
    let (_, other) = register(store, "other@example.com", t0()).await;
    claim_ok(store, other, t0()).await;
    store
        .mark_sent(other, None, t0() + secs(1.0))
        .await
        .unwrap();

    let all = store.code_candidates(&address, t0()).await.unwrap();
    let ids: Vec<_> = all.iter().map(|c: &CodeCandidate| c.message).collect();
    assert_eq!(ids, vec![second, first], "newest first");
    assert_eq!(all[0].sent_at, t0() + secs(601.0));
    // Sent before the cut-off: too old.
    let recent = store
        .code_candidates(&address, t0() + secs(300.0))
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].message, second);
    assert!(
        store
            .code_candidates(&email("nobody@example.com"), t0())
            .await
            .unwrap()
            .is_empty()
    );

    // Five wrong tries spend the newest email's code; the older one had four.
    for _ in 0..4 {
        store.code_failed(&[first, second]).await.unwrap();
    }
    store.code_failed(&[second]).await.unwrap();
    assert_eq!(
        message_column::<i32>(store, second, "code_failures").await,
        5
    );
    assert_eq!(
        message_column::<i32>(store, first, "code_failures").await,
        4
    );
    let left = store.code_candidates(&address, t0()).await.unwrap();
    assert_eq!(
        left.iter().map(|c| c.message).collect::<Vec<_>>(),
        vec![first]
    );
    // Counting stops at the limit.
    store.code_failed(&[first, second]).await.unwrap();
    assert_eq!(
        message_column::<i32>(store, second, "code_failures").await,
        5
    );
    assert!(
        store
            .code_candidates(&address, t0())
            .await
            .unwrap()
            .is_empty()
    );
    store.code_failed(&[]).await.unwrap();
}

backend_tests!(live_codes_are_sent_recent_and_not_spent,);
