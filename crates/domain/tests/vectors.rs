//! Test vectors produced by Python itsdangerous 2.2.0 (`tests/data/itsdangerous.json`).
//!
//! For every case: signing reproduces Python's token byte for byte (uncompressed tokens) or
//! round-trips (compressed ones, where zlib builds may differ), Python's token verifies, and
//! every check and every garbage token gets Python's verdict.

// Marks the helpers below as test code, so clippy's test allowances (unwrap, panic) apply.
#![cfg(test)]

use domain::{ConfirmationTokens, TimedSerializer, TokenError, Verified};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/itsdangerous.json");

fn load() -> Value {
    let text =
        std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("reading {VECTORS}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn keys(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

fn str_field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing in {value}"))
}

/// The vectors' error names.
fn kind(error: TokenError) -> &'static str {
    match error {
        TokenError::Expired => "expired",
        TokenError::BadSignature => "bad_signature",
        TokenError::Malformed => "malformed",
    }
}

/// The result that `expect` (`{"ok": payload}` or `{"err": kind}`) describes.
fn expected(expect: &Value) -> Result<Value, String> {
    match (expect.get("ok"), expect.get("err")) {
        (Some(ok), None) => Ok(ok.clone()),
        (None, Some(err)) => Err(err.as_str().unwrap().to_owned()),
        _ => panic!("bad expect {expect}"),
    }
}

/// Verifies with `TimedSerializer` and, when the salt is the confirmation salt and the payload
/// a string, checks that `ConfirmationTokens` agrees.
fn verify(
    keys: &[String],
    salt: &str,
    token: &str,
    max_age: Option<u64>,
    now: i64,
) -> Result<Verified<Value>, TokenError> {
    let result = TimedSerializer::new(keys, salt)
        .unwrap()
        .verify(token, max_age, now);
    if salt == ConfirmationTokens::SALT {
        let confirm = ConfirmationTokens::new(keys)
            .unwrap()
            .check(token, max_age, now);
        match &result {
            Ok(Verified {
                payload: Value::String(email),
                issued_at,
            }) => {
                assert_eq!(
                    confirm,
                    Ok(Verified {
                        payload: email.clone(),
                        issued_at: *issued_at
                    })
                );
            }
            Ok(_) => assert_eq!(confirm, Err(TokenError::Malformed)),
            Err(error) => assert_eq!(confirm, Err(*error)),
        }
    }
    result
}

#[test]
fn vectors_file_is_the_expected_one() {
    let vectors = load();
    assert_eq!(vectors["library"], "itsdangerous 2.2.0");
    assert!(vectors["cases"].as_array().unwrap().len() >= 6);
    assert!(vectors["garbage"].as_array().unwrap().len() >= 9);
}

#[test]
fn signing_matches_python() {
    let vectors = load();
    let mut exact = 0;
    let mut compressed = 0;
    for case in vectors["cases"].as_array().unwrap() {
        let keys = keys(&case["secret_keys"]);
        let salt = str_field(case, "salt");
        let timestamp = case["timestamp"].as_u64().unwrap();
        let python = str_field(case, "token");
        let serializer = TimedSerializer::new(&keys, salt).unwrap();
        let ours = serializer.sign(&case["payload"], timestamp);
        let want = Ok(Verified {
            payload: case["payload"].clone(),
            issued_at: timestamp,
        });

        assert_eq!(
            ours.starts_with('.'),
            python.starts_with('.'),
            "compression decision for {python}"
        );
        if python.starts_with('.') {
            compressed += 1;
            assert_eq!(serializer.verify(&ours, None, 0), want, "our token {ours}");
            assert_eq!(
                serializer.verify(python, None, 0),
                want,
                "python token {python}"
            );
        } else {
            exact += 1;
            assert_eq!(ours, python);
        }
        // Python's token verifies at the moment it was made.
        let now = i64::try_from(timestamp).unwrap();
        assert_eq!(serializer.verify(python, Some(0), now), want, "{python}");
    }
    assert!(exact >= 5, "{exact} uncompressed cases");
    assert!(compressed >= 1, "{compressed} compressed cases");
}

#[test]
fn checks_match_python() {
    let vectors = load();
    let mut count = 0;
    for case in vectors["cases"].as_array().unwrap() {
        for check in case["checks"].as_array().unwrap() {
            let token = check
                .get("token")
                .unwrap_or(&case["token"])
                .as_str()
                .unwrap();
            let salt = check.get("salt").unwrap_or(&case["salt"]).as_str().unwrap();
            let keys = keys(check.get("secret_keys").unwrap_or(&case["secret_keys"]));
            let max_age = match &check["max_age"] {
                Value::Null => None,
                age => Some(age.as_u64().unwrap()),
            };
            let now = check["now"].as_i64().unwrap();

            let got = verify(&keys, salt, token, max_age, now);
            let context = format!("case {token} with {check}");
            match expected(&check["expect"]) {
                Ok(payload) => {
                    let verified = got.unwrap_or_else(|e| panic!("{context}: got {e:?}"));
                    assert_eq!(verified.payload, payload, "{context}");
                    if check.get("token").is_none() {
                        assert_eq!(
                            Some(verified.issued_at),
                            case["timestamp"].as_u64(),
                            "{context}"
                        );
                    }
                }
                Err(want) => {
                    let error = got.err().unwrap_or_else(|| panic!("{context}: verified"));
                    assert_eq!(kind(error), want, "{context}");
                }
            }
            count += 1;
        }
    }
    assert!(count >= 40, "{count} checks");
}

#[test]
fn garbage_matches_python() {
    let vectors = load();
    for entry in vectors["garbage"].as_array().unwrap() {
        let token = str_field(entry, "token");
        let keys = keys(&entry["secret_keys"]);
        let salt = str_field(entry, "salt");
        let want = expected(&entry["expect"]).unwrap_err();
        for (max_age, now) in [(None, 0), (Some(3600), 1_700_000_000)] {
            let got = verify(&keys, salt, token, max_age, now);
            let error = got.err().unwrap_or_else(|| panic!("{token:?} verified"));
            assert_eq!(kind(error), want, "{token:?}");
        }
    }
}
