//! REMINDER_AFTER's store side: due accounts are claimed once, oldest first, never confirmed
//! or already reminded ones; a corrected address's mistyped account is skipped.

use store::{SeaStore, UserStore};

use crate::common::{backend_tests, email, register, secs, t0};

async fn due_accounts_are_claimed_once_oldest_first(store: &SeaStore) {
    register(store, "old@example.com", t0()).await;
    register(store, "older-confirmed@example.com", t0() - secs(10.0)).await;
    register(store, "young@example.com", t0() + secs(3600.0)).await;
    register(store, "mistyped@exmaple.com", t0() + secs(1.0)).await;
    store
        .confirm(
            &email("older-confirmed@example.com"),
            t0(),
            t0() + secs(5.0),
        )
        .await
        .unwrap();
    assert!(
        store
            .skip_reminder(&email("mistyped@exmaple.com"), t0())
            .await
            .unwrap()
    );
    assert!(
        !store
            .skip_reminder(&email("mistyped@exmaple.com"), t0())
            .await
            .unwrap()
    );
    assert!(
        !store
            .skip_reminder(&email("nobody@example.com"), t0())
            .await
            .unwrap()
    );

    let now = t0() + secs(86_400.0);
    let before = t0() + secs(600.0);
    let first = store.claim_reminders(before, now, 10).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        vec!["old@example.com"]
    );
    assert!(
        store
            .claim_reminders(before, now, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Later the young one is due, alone; the limit holds.
    let later = t0() + secs(7200.0);
    assert_eq!(store.claim_reminders(later, now, 0).await.unwrap(), vec![]);
    let second = store.claim_reminders(later, now, 10).await.unwrap();
    assert_eq!(second, vec![email("young@example.com")]);
}

backend_tests!(due_accounts_are_claimed_once_oldest_first,);
