//! Accounts: passwords bound to reset links, sessions, the second factor and its recovery codes.

use domain::{
    MailboxKey, MessageKind, PasswordHashString, SuppressionSource, TotpSecret, recovery_code_hash,
};
use store::{
    AccountStore, Claim, MessageStore, PasswordChanged, ResetRequest, SeaStore, SuppressionStore,
    UserStore,
};

use crate::common::{self, backend_tests, claim_ok, email, secs, t0};

fn hash(n: u8) -> PasswordHashString {
    PasswordHashString::from_stored(format!("$argon2id$v=19$m=19456,t=2,p=1$salt{n}$hash{n}"))
}

/// Registers and confirms `address`; its user id.
async fn confirmed(store: &SeaStore, address: &str) -> domain::UserId {
    let (user, _) = common::register(store, address, t0()).await;
    store
        .confirm(&email(address), t0(), t0() + secs(1.0))
        .await
        .unwrap();
    user.id
}

async fn a_new_account_gets_its_first_password_once(store: &SeaStore) {
    let (user, _) = common::register(store, "first@example.com", t0()).await;
    let account = store
        .account(&email("First@Example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.user.id, user.id);
    assert_eq!(account.password, None);
    assert_eq!(account.totp, None);
    assert!(
        store
            .set_initial_password(user.id, &hash(1), t0())
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_initial_password(user.id, &hash(2), t0())
            .await
            .unwrap()
    );
    let account = store.account_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(account.password, Some(hash(1)));
    assert_eq!(
        store.account(&email("nobody@example.com")).await.unwrap(),
        None
    );
}

async fn a_reset_binding_works_once_and_ends_every_session(store: &SeaStore) {
    let user = confirmed(store, "reset@example.com").await;
    store
        .set_initial_password(user, &hash(1), t0())
        .await
        .unwrap();
    let now = t0() + secs(120.0);
    for n in 0..2 {
        let fingerprint = format!("{n:064}");
        store
            .create_session(user, &fingerprint, now, now + secs(3600.0))
            .await
            .unwrap();
    }
    assert!(
        store
            .session(&format!("{:064}", 0), now)
            .await
            .unwrap()
            .is_some()
    );
    let binding = PasswordHashString::binding(Some(&hash(1)));
    let changed = store
        .change_password(user, Some(&binding), &hash(2), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.sessions_ended, 2);
    let notice = changed.notice.unwrap();
    assert!(
        store
            .session(&format!("{:064}", 0), now)
            .await
            .unwrap()
            .is_none()
    );
    // The same link again: its binding is gone.
    assert_eq!(
        store
            .change_password(user, Some(&binding), &hash(3), now)
            .await
            .unwrap(),
        None
    );
    let account = store.account_by_id(user).await.unwrap().unwrap();
    assert_eq!(account.password, Some(hash(2)));
    // The notice is a password_changed email to the account.
    let message = claim_ok(store, notice, now).await;
    assert_eq!(message.kind, MessageKind::PasswordChanged);
    assert_eq!(message.recipient, email("reset@example.com"));
    assert_eq!(message.password_binding, None);
    // Changing without a binding check (the account page, after the current password).
    assert!(matches!(
        store
            .change_password(user, None, &hash(4), now)
            .await
            .unwrap(),
        Some(PasswordChanged { .. })
    ));
    assert_eq!(
        store
            .change_password(domain::UserId(999_999), None, &hash(4), now)
            .await
            .unwrap(),
        None
    );
}

async fn an_account_without_a_password_sets_one_through_a_reset(store: &SeaStore) {
    let user = confirmed(store, "nopass@example.com").await;
    let binding = PasswordHashString::binding(None);
    assert!(
        store
            .change_password(user, Some(&binding), &hash(1), t0() + secs(2.0))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.account_by_id(user).await.unwrap().unwrap().password,
        Some(hash(1))
    );
}

async fn reset_emails_go_to_confirmed_accounts_within_the_allowance(store: &SeaStore) {
    let now = t0() + secs(120.0);
    assert_eq!(
        store
            .owe_password_reset(&email("none@example.com"), now)
            .await
            .unwrap(),
        ResetRequest::NotRegistered
    );
    common::register(store, "unconfirmed@example.com", t0()).await;
    assert_eq!(
        store
            .owe_password_reset(&email("unconfirmed@example.com"), now)
            .await
            .unwrap(),
        ResetRequest::NotConfirmed
    );
    let user = confirmed(store, "forgot@example.com").await;
    store
        .set_initial_password(user, &hash(1), t0())
        .await
        .unwrap();
    let ResetRequest::Queued(id) = store
        .owe_password_reset(&email("FORGOT@example.com"), now)
        .await
        .unwrap()
    else {
        panic!("expected a reset email");
    };
    assert_eq!(
        store
            .owe_password_reset(&email("forgot@example.com"), now)
            .await
            .unwrap(),
        ResetRequest::Pending
    );
    // Claimed, it carries the binding of the password as it is now.
    let message = claim_ok(store, id, now).await;
    assert_eq!(message.kind, MessageKind::PasswordReset);
    assert_eq!(
        message.password_binding,
        Some(PasswordHashString::binding(Some(&hash(1))))
    );
    store.mark_sent(id, None, now + secs(1.0)).await.unwrap();
    // Sent: the next one waits for the mailbox's cooldown.
    assert_eq!(
        store
            .owe_password_reset(&email("forgot@example.com"), now + secs(2.0))
            .await
            .unwrap(),
        ResetRequest::Limited
    );
    assert!(matches!(
        store
            .owe_password_reset(&email("forgot@example.com"), now + secs(200.0))
            .await
            .unwrap(),
        ResetRequest::Queued(_)
    ));
    // A suppressed mailbox gets neither a reset email nor a notice (and what was owed to it is
    // cancelled).
    let mailbox: MailboxKey = email("forgot@example.com").mailbox_key();
    store
        .suppress(&mailbox, SuppressionSource::Operator, now)
        .await
        .unwrap();
    assert_eq!(
        store
            .owe_password_reset(&email("forgot@example.com"), now + secs(400.0))
            .await
            .unwrap(),
        ResetRequest::Suppressed
    );
    let changed = store
        .change_password(user, None, &hash(2), now + secs(400.0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.notice, None);
}

async fn sessions_expire_and_end(store: &SeaStore) {
    let user = confirmed(store, "sessions@example.com").await;
    let now = t0() + secs(10.0);
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    store
        .create_session(user, &a, now, now + secs(60.0))
        .await
        .unwrap();
    store
        .create_session(user, &b, now, now + secs(600.0))
        .await
        .unwrap();
    let session = store.session(&a, now).await.unwrap().unwrap();
    assert_eq!(session.user_id, user);
    assert!(
        store.session(&a, now + secs(61.0)).await.unwrap().is_none(),
        "expired"
    );
    assert_eq!(store.purge_sessions(now + secs(61.0)).await.unwrap(), 1);
    store.end_session(&b).await.unwrap();
    assert!(store.session(&b, now).await.unwrap().is_none());
    store
        .create_session(user, &a, now, now + secs(60.0))
        .await
        .unwrap();
    assert_eq!(store.end_sessions(user).await.unwrap(), 1);
}

async fn a_code_step_and_a_recovery_code_are_used_once(store: &SeaStore) {
    let user = confirmed(store, "totp@example.com").await;
    let secret = TotpSecret::generate();
    let codes = domain::generate_recovery_codes();
    let hashes = codes
        .iter()
        .map(|c| recovery_code_hash(c).unwrap())
        .collect();
    // No second factor yet: no step is recorded.
    assert!(!store.use_totp_step(user, 10).await.unwrap());
    store.enable_totp(user, &secret, hashes).await.unwrap();
    let totp = store
        .account_by_id(user)
        .await
        .unwrap()
        .unwrap()
        .totp
        .unwrap();
    assert_eq!(totp.secret, secret);
    assert_eq!(totp.last_step, None);
    assert_eq!(totp.recovery_codes_left, 10);
    assert!(store.use_totp_step(user, 10).await.unwrap());
    assert!(
        !store.use_totp_step(user, 10).await.unwrap(),
        "same step twice"
    );
    assert!(
        !store.use_totp_step(user, 9).await.unwrap(),
        "an older step"
    );
    assert!(store.use_totp_step(user, 11).await.unwrap());
    let first = recovery_code_hash(&codes[0]).unwrap();
    assert!(store.use_recovery_code(user, &first, t0()).await.unwrap());
    assert!(!store.use_recovery_code(user, &first, t0()).await.unwrap());
    assert!(
        !store
            .use_recovery_code(user, &"0".repeat(64), t0())
            .await
            .unwrap()
    );
    let totp = store
        .account_by_id(user)
        .await
        .unwrap()
        .unwrap()
        .totp
        .unwrap();
    assert_eq!(totp.last_step, Some(11));
    assert_eq!(totp.recovery_codes_left, 9);
    // Enabled again (a new secret): fresh codes, no step.
    store
        .enable_totp(user, &TotpSecret::generate(), vec![first.clone()])
        .await
        .unwrap();
    let totp = store
        .account_by_id(user)
        .await
        .unwrap()
        .unwrap()
        .totp
        .unwrap();
    assert_eq!((totp.last_step, totp.recovery_codes_left), (None, 1));
    store.disable_totp(user).await.unwrap();
    assert_eq!(store.account_by_id(user).await.unwrap().unwrap().totp, None);
    assert!(!store.use_recovery_code(user, &first, t0()).await.unwrap());
}

async fn a_claim_cancels_a_reset_email_to_a_suppressed_mailbox(store: &SeaStore) {
    let user = confirmed(store, "late@example.com").await;
    let now = t0() + secs(120.0);
    let ResetRequest::Queued(id) = store
        .owe_password_reset(&email("late@example.com"), now)
        .await
        .unwrap()
    else {
        panic!("expected a reset email");
    };
    store
        .suppress(
            &email("late@example.com").mailbox_key(),
            SuppressionSource::Operator,
            now,
        )
        .await
        .unwrap();
    let _ = user;
    assert!(matches!(
        store.claim(id, now, common::lease()).await.unwrap(),
        Claim::Cancelled
    ));
}

backend_tests!(
    a_new_account_gets_its_first_password_once,
    a_reset_binding_works_once_and_ends_every_session,
    an_account_without_a_password_sets_one_through_a_reset,
    reset_emails_go_to_confirmed_accounts_within_the_allowance,
    sessions_expire_and_end,
    a_code_step_and_a_recovery_code_are_used_once,
    a_claim_cancels_a_reset_email_to_a_suppressed_mailbox,
);
