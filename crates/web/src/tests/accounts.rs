//! Sign-in, sessions, the account page, two-factor sign-in and the password reset, over mocked
//! stores (the real Argon2id hashing).

use std::sync::Arc;

use domain::{
    Account, Password, PasswordHashString, Passwords, Session, SessionToken, Totp, TotpSecret,
    TotpState,
};
use store::{MockAccountStore, PasswordChanged, ResetRequest};

use super::*;

const PASSWORD: &str = "correct horse battery";

fn passwords() -> Passwords {
    Passwords::new().unwrap()
}

fn hash_of(password: &str) -> PasswordHashString {
    passwords().hash(&Password::new(password).unwrap()).unwrap()
}

fn account(confirmed: bool, password: Option<PasswordHashString>) -> Account {
    Account {
        user: user(7, "me@example.com", confirmed),
        password,
        totp: None,
    }
}

fn with_accounts(store: MockAccountStore) -> AppState {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_unix(NOW));
    let accounts = Accounts::new(Arc::new(store), passwords(), &[KEY], clock).unwrap();
    state(no_users(), idle_queue(), false).with_accounts(accounts)
}

fn session_of(reply: &Reply) -> Option<String> {
    reply.cookies().iter().find_map(|c| {
        c.strip_prefix("session=")
            .and_then(|rest| rest.split(';').next())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    })
}

/// A form post carrying the CSRF cookie and token and a session cookie.
fn signed_post(uri: &str, session: &str, body: &str) -> Request<Body> {
    let token = csrf().token(NONCE, NOW);
    let body = if body.is_empty() {
        format!("csrf_token={token}")
    } else {
        format!("{body}&csrf_token={token}")
    };
    raw_post(uri, Some(&format!("csrf={NONCE}; session={session}")), body)
}

fn signed_get(uri: &str, session: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::COOKIE, format!("session={session}"))
        .body(Body::empty())
        .unwrap()
}

/// A store whose one account (`me@example.com`, id 7) is `account`, and whose session
/// `token` is that account's.
fn store_with(account: Account, token: Option<&SessionToken>) -> MockAccountStore {
    let mut store = MockAccountStore::new();
    let by_email = account.clone();
    store.expect_account().returning(move |email| {
        Ok((email.key() == by_email.user.email.key()).then(|| by_email.clone()))
    });
    let by_id = account.clone();
    store
        .expect_account_by_id()
        .returning(move |id| Ok((id == by_id.user.id).then(|| by_id.clone())));
    let fingerprint = token.map(SessionToken::fingerprint);
    store.expect_session().returning(move |f, now| {
        Ok((Some(f.to_owned()) == fingerprint).then_some(Session {
            user_id: UserId(7),
            created_at: now,
            expires_at: now + chrono::TimeDelta::days(1),
        }))
    });
    store
}

#[tokio::test]
async fn signing_in_starts_a_new_session_and_shows_the_account() {
    let mut store = store_with(account(true, Some(hash_of(PASSWORD))), None);
    store
        .expect_create_session()
        .withf(|user, fingerprint, _, expires| {
            *user == UserId(7)
                && fingerprint.len() == 64
                && *expires == DateTime::from_timestamp(NOW + 7 * 24 * 3600, 0).unwrap()
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let reply = send(
        with_accounts(store),
        post_to(
            "/signin",
            format!(
                "email=ME%40example.com&password={}",
                PASSWORD.replace(' ', "+")
            ),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), Some("/account"));
    let cookie = reply
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(SessionToken::parse(&session_of(&reply).unwrap()).is_some());
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_address_get_the_same_answer() {
    let mut store = store_with(account(true, Some(hash_of(PASSWORD))), None);
    store.expect_create_session().never();
    let state = with_accounts(store);
    let wrong = send(
        state.clone(),
        post_to("/signin", "email=me%40example.com&password=wrong+password"),
    )
    .await;
    let unknown = send(
        state.clone(),
        post_to(
            "/signin",
            "email=nobody%40example.com&password=wrong+password",
        ),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .body
            .contains("That address and password do not match an account.")
    );
    assert_eq!(
        wrong.body.replace("me@example.com", "X"),
        unknown.body.replace("nobody@example.com", "X")
    );
    assert_eq!(session_of(&wrong), None);
}

#[tokio::test]
async fn an_unconfirmed_account_cannot_sign_in() {
    let mut store = store_with(account(false, Some(hash_of(PASSWORD))), None);
    store.expect_create_session().never();
    let reply = send(
        with_accounts(store),
        post_to(
            "/signin",
            format!(
                "email=me%40example.com&password={}",
                PASSWORD.replace(' ', "+")
            ),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.body.contains("Confirm your address first"));
}

#[tokio::test]
async fn failures_are_throttled_per_account() {
    let mut store = store_with(account(true, Some(hash_of(PASSWORD))), None);
    store.expect_create_session().never();
    let state = with_accounts(store);
    for _ in 0..SIGN_IN_FAILURES_PER_ACCOUNT - 1 {
        let reply = send(
            state.clone(),
            post_to("/signin", "email=me%40example.com&password=wrong+password"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = send(
        state.clone(),
        post_to("/signin", "email=me%40example.com&password=wrong+password"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    // The right password now gets the same refusal.
    let reply = send(
        state,
        post_to(
            "/signin",
            format!(
                "email=me%40example.com&password={}",
                PASSWORD.replace(' ', "+")
            ),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn a_sign_in_without_the_csrf_token_is_refused() {
    let mut store = MockAccountStore::new();
    store.expect_account().never();
    let reply = send(
        with_accounts(store),
        raw_post("/signin", None, "email=me%40example.com&password=x"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_account_page_needs_a_session_and_shows_the_account() {
    let token = SessionToken::generate();
    let state = with_accounts(store_with(
        account(true, Some(hash_of(PASSWORD))),
        Some(&token),
    ));
    let reply = send(state.clone(), get("/account")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), Some("/signin"));
    let other = SessionToken::generate();
    let reply = send(state.clone(), signed_get("/account", other.as_str())).await;
    assert_eq!(reply.location(), Some("/signin"));
    let reply = send(state, signed_get("/account", token.as_str())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("me@example.com"));
    for form in [
        "/account/password",
        "/account/2fa",
        "/account/signout-everywhere",
        "/signout",
    ] {
        assert!(reply.body.contains(&format!("action=\"{form}\"")), "{form}");
    }
}

#[tokio::test]
async fn changing_the_password_checks_the_current_one_and_ends_every_session() {
    let token = SessionToken::generate();
    let mut store = store_with(account(true, Some(hash_of(PASSWORD))), Some(&token));
    store
        .expect_change_password()
        .withf(|user, expected, hash, _| {
            *user == UserId(7)
                && expected.is_none()
                && passwords().verify("a new password", Some(hash))
        })
        .times(1)
        .returning(|_, _, _, _| {
            Ok(Some(PasswordChanged {
                sessions_ended: 2,
                notice: None,
            }))
        });
    let state = with_accounts(store);
    let reply = send(
        state.clone(),
        signed_post(
            "/account/password",
            token.as_str(),
            "current_password=nope+nope&password=a+new+password",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("The current password is not right."));
    let reply = send(
        state.clone(),
        signed_post(
            "/account/password",
            token.as_str(),
            "current_password=x&password=short",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("at least 8 characters"));
    let reply = send(
        state,
        signed_post(
            "/account/password",
            token.as_str(),
            &format!(
                "current_password={}&password=a+new+password",
                PASSWORD.replace(' ', "+")
            ),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), Some("/signin"));
    assert!(
        reply
            .cookies()
            .iter()
            .any(|c| c.starts_with("session=;") && c.contains("Max-Age=0"))
    );
}

#[tokio::test]
async fn two_factor_sign_in_takes_a_code_once_or_a_recovery_code() {
    let secret = TotpSecret::generate();
    let totp = Totp::new(&secret, "Confirm Email", "me@example.com").unwrap();
    let mut with_totp = account(true, Some(hash_of(PASSWORD)));
    let codes = domain::generate_recovery_codes();
    with_totp.totp = Some(TotpState {
        secret: secret.clone(),
        last_step: None,
        recovery_codes_left: 10,
    });
    let mut store = store_with(with_totp, None);
    let step = NOW / 30;
    store
        .expect_use_totp_step()
        .withf(move |user, s| *user == UserId(7) && *s == step)
        .times(1)
        .returning(|_, _| Ok(true));
    let recovery = domain::recovery_code_hash(&codes[3]).unwrap();
    store
        .expect_use_recovery_code()
        .returning(move |_, hash, _| Ok(hash == recovery));
    store
        .expect_create_session()
        .times(2)
        .returning(|_, _, _, _| Ok(()));
    let state = with_accounts(store);
    let reply = send(
        state.clone(),
        post_to(
            "/signin",
            format!(
                "email=me%40example.com&password={}",
                PASSWORD.replace(' ', "+")
            ),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(session_of(&reply), None, "no session before the code");
    let step_token = reply
        .body
        .split("name=\"step\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let wrong = send(
        state.clone(),
        post_to("/signin/code", format!("step={step_token}&code=000000")),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("That code does not work."));
    let right = send(
        state.clone(),
        post_to(
            "/signin/code",
            format!("step={step_token}&code={}", totp.code_at(NOW)),
        ),
    )
    .await;
    assert_eq!(right.status, StatusCode::SEE_OTHER, "{}", right.body);
    assert!(session_of(&right).is_some());
    let recovered = send(
        state.clone(),
        post_to(
            "/signin/code",
            format!("step={step_token}&code={}", codes[3].to_uppercase()),
        ),
    )
    .await;
    assert_eq!(recovered.status, StatusCode::SEE_OTHER);
    // A forged or stale step token: back to the sign-in form.
    let forged = send(
        state,
        post_to("/signin/code", "step=abc.def.ghi&code=123456"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(forged.body.contains("Please sign in again."));
}

#[tokio::test]
async fn forgot_answers_alike_and_owes_the_email_after_the_answer() {
    let mut store = MockAccountStore::new();
    store
        .expect_owe_password_reset()
        .times(2)
        .returning(|email, _| {
            Ok(if email.as_str() == "me@example.com" {
                ResetRequest::NotConfirmed
            } else {
                ResetRequest::NotRegistered
            })
        });
    let state = with_accounts(store);
    let a = send(state.clone(), post_to("/forgot", "email=me%40example.com")).await;
    let b = send(
        state.clone(),
        post_to("/forgot", "email=other%40example.com"),
    )
    .await;
    state.background.wait().await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, b.body);
    assert!(a.body.contains("If that address has a confirmed account"));
    let bad = send(state, post_to("/forgot", "email=not-an-address")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_reset_link_shows_a_form_and_works_only_with_its_binding() {
    let hash = hash_of(PASSWORD);
    let binding = PasswordHashString::binding(Some(&hash));
    let mut store = store_with(account(true, Some(hash.clone())), None);
    let expected = binding.clone();
    let mut used = false;
    store
        .expect_change_password()
        .returning(move |_, given, _, _| {
            // Works once: the first call changes the binding.
            if given == Some(expected.as_str()) && !used {
                used = true;
                Ok(Some(PasswordChanged {
                    sessions_ended: 1,
                    notice: None,
                }))
            } else {
                Ok(None)
            }
        });
    let state = with_accounts(store);
    let email = EmailAddress::parse("me@example.com").unwrap();
    let token = tokens().reset_tokens().issue(&email, &binding, NOW - 60);
    let page = send(state.clone(), get(&format!("/reset/{token}"))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("action=\"/reset/{token}\"")));
    let short = send(
        state.clone(),
        post_to(&format!("/reset/{token}"), "password=short"),
    )
    .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let done = send(
        state.clone(),
        post_to(&format!("/reset/{token}"), "password=a+brand+new+one"),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Your password is changed."));
    let again = send(
        state.clone(),
        post_to(&format!("/reset/{token}"), "password=another+new+one"),
    )
    .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("already used"));
    let expired = tokens().reset_tokens().issue(&email, &binding, NOW - 1801);
    let reply = send(state.clone(), get(&format!("/reset/{expired}"))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let confirm = tokens().issue(&email, NOW);
    let reply = send(state, get(&format!("/reset/{confirm}"))).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "a confirmation token is not a reset token"
    );
}

#[tokio::test]
async fn registering_with_a_bad_password_stores_nothing() {
    let store = MockAccountStore::new();
    let reply = send(
        with_accounts(store),
        post_form("email=me%40example.com&password=short"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("at least 8 characters"));
    assert!(reply.body.contains("value=\"me@example.com\""));
}

#[tokio::test]
async fn registering_with_a_password_sets_it_on_the_new_account_only() {
    let mut users = MockUserStore::new();
    users.expect_register().times(1).returning(|email, _, _| {
        Ok(Registration::CreatedWithoutEmail {
            user: user(7, email.as_str(), false),
        })
    });
    let mut store = MockAccountStore::new();
    store
        .expect_set_initial_password()
        .withf(|user, hash, _| *user == UserId(7) && passwords().verify(PASSWORD, Some(hash)))
        .times(1)
        .returning(|_, _, _| Ok(true));
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_unix(NOW));
    let accounts = Accounts::new(Arc::new(store), passwords(), &[KEY], clock).unwrap();
    let state = state(users, idle_queue(), false).with_accounts(accounts);
    let home = send(state.clone(), get("/")).await;
    assert!(home.body.contains("name=\"password\""));
    assert!(home.body.contains("href=\"/signin\""));
    let reply = send(
        state,
        post_form(format!(
            "email=me%40example.com&password={}",
            PASSWORD.replace(' ', "+")
        )),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
}

#[tokio::test]
async fn without_accounts_there_are_no_account_pages_and_no_password_field() {
    let state = state(no_users(), idle_queue(), false);
    let home = send(state.clone(), get("/")).await;
    assert!(!home.body.contains("name=\"password\""));
    for path in ["/signin", "/account", "/forgot"] {
        assert_eq!(
            send(state.clone(), get(path)).await.status,
            StatusCode::NOT_FOUND
        );
    }
}
