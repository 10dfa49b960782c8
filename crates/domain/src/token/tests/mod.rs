use serde_json::json;

use super::*;

const README_TOKEN: &str = "InRlc3RAdGVzdC5jb20i.ZVPxAA.csFMigfTbSNDX2OTE_5JJyR5gp8";

#[test]
fn requires_a_key() {
    let none: [&str; 0] = [];
    assert_eq!(ConfirmationTokens::new(&none).unwrap_err(), NoSecretKey);
    assert_eq!(StopTokens::new(&none).unwrap_err(), NoSecretKey);
}

#[test]
fn debug_of_confirmation_tokens_shows_no_key() {
    let confirm = format!(
        "{:?}",
        ConfirmationTokens::new(&["super-secret-key"]).unwrap()
    );
    assert!(!confirm.contains("super-secret"), "{confirm}");
    assert!(confirm.contains("keys: 1"), "{confirm}");
}

#[test]
fn confirmation_tokens() {
    let tokens = ConfirmationTokens::new(&["my_precious"]).unwrap();
    let email = crate::EmailAddress::parse("test@test.com").unwrap();
    let token = tokens.issue(&email, 1_700_000_000);
    assert_eq!(token, README_TOKEN);
    let verified = tokens.check(&token, Some(3600), 1_700_003_600).unwrap();
    assert_eq!(
        verified,
        Verified {
            payload: "test@test.com".to_owned(),
            issued_at: 1_700_000_000
        }
    );
    assert_eq!(
        tokens.check(&token, Some(3600), 1_700_003_601),
        Err(TokenError::Expired)
    );
    // A negative time is signed as 0.
    let early = tokens.issue(&email, -40);
    assert_eq!(tokens.check(&early, None, 0).unwrap().issued_at, 0);
    // A validly signed payload that is not a string.
    let number = TimedSerializer::new(&["my_precious"], ConfirmationTokens::SALT)
        .unwrap()
        .sign(&json!(42), 5);
    assert_eq!(tokens.check(&number, None, 5), Err(TokenError::Malformed));
    assert_eq!(tokens.check("nope", None, 5), Err(TokenError::BadSignature));
    // Keys given as owned strings or bytes work too.
    let owned =
        ConfirmationTokens::new(&[String::from("old"), String::from("my_precious")]).unwrap();
    assert_eq!(owned.issue(&email, 1_700_000_000), README_TOKEN);
    let bytes = ConfirmationTokens::new(&[b"my_precious".to_vec()]).unwrap();
    assert!(bytes.check(README_TOKEN, None, 0).is_ok());
}

#[test]
fn stop_tokens_and_confirmation_tokens_do_not_verify_as_each_other() {
    let confirm = ConfirmationTokens::new(&["old-key", "k"]).unwrap();
    let stop = StopTokens::new(&["old-key", "k"]).unwrap();
    let email = crate::EmailAddress::parse("Victim+1@gmail.com").unwrap();
    let now = 1_700_000_000;
    let stop_token = stop.issue(&email, now);
    let confirm_token = confirm.issue(&email, now);
    assert_ne!(stop_token, confirm_token);
    assert_eq!(
        stop.check(&stop_token, now + 10),
        Ok(Verified {
            payload: "Victim+1@gmail.com".to_owned(),
            issued_at: 1_700_000_000
        })
    );
    assert_eq!(
        stop.check(&confirm_token, now),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        confirm.check(&stop_token, None, now),
        Err(TokenError::BadSignature)
    );
    // The confirmation tokens' keys make the same stop tokens.
    assert_eq!(confirm.stop_tokens().issue(&email, now), stop_token);
    // Signed with the stop salt, as itsdangerous would with `salt="email-stop-salt"`.
    let python_like = TimedSerializer::new(&["old-key", "k"], "email-stop-salt").unwrap();
    assert_eq!(
        python_like.sign(&json!("Victim+1@gmail.com"), 1_700_000_000),
        stop_token
    );
}

#[test]
fn stop_tokens_last_thirty_days() {
    let stop = StopTokens::new(&["k"]).unwrap();
    let email = crate::EmailAddress::parse("a@example.com").unwrap();
    let issued = 1_700_000_000;
    let token = stop.issue(&email, issued);
    let max_age = i64::try_from(StopTokens::MAX_AGE.as_secs()).unwrap();
    assert_eq!(max_age, 30 * 24 * 3600);
    assert!(stop.check(&token, issued + max_age).is_ok());
    assert_eq!(
        stop.check(&token, issued + max_age + 1),
        Err(TokenError::Expired)
    );
    assert_eq!(stop.check(&token, issued - 1), Err(TokenError::Expired));
    // A genuine stop-salt signature over a payload that is not an address.
    let array = TimedSerializer::new(&["k"], StopTokens::SALT)
        .unwrap()
        .sign(&json!([1]), 1);
    assert_eq!(stop.check(&array, 1), Err(TokenError::Malformed));
}

#[test]
fn debug_of_stop_tokens_shows_no_key() {
    let stop = StopTokens::new(&["very-secret-key"]).unwrap();
    let confirm = ConfirmationTokens::new(&["very-secret-key"]).unwrap();
    assert!(!format!("{stop:?}{confirm:?}").contains("very-secret"));
}
