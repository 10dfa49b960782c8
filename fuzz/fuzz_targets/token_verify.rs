//! Arbitrary bytes against the itsdangerous-compatible token codec.
//!
//! The input is used three ways:
//!
//! 1. as a token (UTF-8, lossily): it is never valid, and verifying it never panics;
//! 2. as the signed value of a token with a genuine signature (made here, independently of
//!    the codec), so that the timestamp, base64, zlib and JSON decoders see it: no panic, a
//!    verdict consistent with its shape, and a payload that verifies re-signs to a token that
//!    verifies to the same payload;
//! 3. when it is valid UTF-8, as a string payload: signing and verifying gives it back.
#![no_main]

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::{ConfirmationTokens, TimedSerializer, TokenError, Verified};
use hmac::{Hmac, KeyInit, Mac as _};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sha1::{Digest as _, Sha1};

const KEY: &[u8] = b"fuzzing-secret-key";
const FALLBACK: &[u8] = b"older-fuzzing-key";
const SALT: &str = ConfirmationTokens::SALT;
const NOW: i64 = 1_700_000_000;

static CODEC: LazyLock<TimedSerializer> = LazyLock::new(|| {
    TimedSerializer::new(&[FALLBACK, KEY], SALT).unwrap_or_else(|_| unreachable!("two keys"))
});
static TOKENS: LazyLock<ConfirmationTokens> = LazyLock::new(|| {
    ConfirmationTokens::new(&[FALLBACK, KEY]).unwrap_or_else(|_| unreachable!("two keys"))
});

/// `value.signature` with itsdangerous' HMAC-SHA1 (django-concat key derivation).
fn sign_raw(secret: &[u8], value: &str) -> String {
    let derived = Sha1::new()
        .chain_update(SALT)
        .chain_update("signer")
        .chain_update(secret)
        .finalize();
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&derived)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(value.as_bytes());
    format!(
        "{value}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    // 1. Not a token (forging HMAC-SHA1 is out of the fuzzer's reach).
    assert_eq!(
        CODEC.verify(&text, Some(3600), NOW),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        TOKENS.check(&text, None, NOW),
        Err(TokenError::BadSignature)
    );

    // 2. A genuine signature over arbitrary `payload.timestamp`, by either key.
    let secret = if data.first().is_some_and(|b| b & 1 == 1) {
        FALLBACK
    } else {
        KEY
    };
    let token = sign_raw(secret, &text);
    match CODEC.verify(&token, None, NOW) {
        Ok(verified) => {
            let again = CODEC.sign(&verified.payload, verified.issued_at);
            assert_eq!(CODEC.verify(&again, None, NOW), Ok(verified));
        }
        Err(TokenError::Expired) => panic!("expired without a max_age"),
        Err(TokenError::BadSignature) => {
            // Only a missing or undecodable timestamp is a bad signature here: one made of
            // base64 characters decodes unless its length is 1 mod 4 or it holds more than
            // 8 bytes (11 characters).
            let timestamp_ok = text.rsplit_once('.').is_some_and(|(_, timestamp)| {
                timestamp
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_+/".contains(&b))
                    && timestamp.len() % 4 != 1
                    && timestamp.len() <= 11
            });
            assert!(!timestamp_ok, "canonical timestamp refused: {text:?}");
        }
        Err(TokenError::Malformed) => {}
    }
    let _ = TOKENS.check(&token, Some(3600), NOW);

    // 3. The input as a payload round-trips.
    if let Ok(payload) = std::str::from_utf8(data) {
        let issued_at = u64::from(
            data.iter()
                .fold(0u32, |acc, &b| acc.rotate_left(5) ^ u32::from(b)),
        );
        let token = CODEC.sign(&Value::String(payload.to_owned()), issued_at);
        assert_eq!(
            CODEC.verify(&token, None, NOW),
            Ok(Verified {
                payload: Value::String(payload.to_owned()),
                issued_at
            })
        );
    }
});
