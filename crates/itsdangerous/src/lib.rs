#![doc = include_str!("../README.md")]
//!
//! # Design
//!
//! [`TimedSerializer`] is a hand-written, byte-compatible implementation of Python
//! itsdangerous 2.x `URLSafeTimedSerializer` with its defaults (JSON serializer, HMAC-SHA1,
//! `django-concat` key derivation, `.` separator). A token made here is accepted by
//! `URLSafeTimedSerializer(secret_keys, salt=salt).loads(token, max_age=...)`, and a token
//! made by Python is accepted here.
//!
//! # Format
//!
//! ```text
//! token     = value "." signature
//! value     = payload "." timestamp
//! payload   = b64(json)            when zlib does not save at least 2 bytes
//!           | "." b64(zlib(json))  otherwise
//! timestamp = b64(big-endian u64 with leading zero bytes stripped; 0 is empty)
//! signature = b64(HMAC-SHA1(key = SHA1(salt ++ "signer" ++ secret_key), value))
//! b64       = URL-safe base64 (`-`, `_`) without `=` padding
//! ```
//!
//! `json` is what Python's `json.dumps(obj, ensure_ascii=False, separators=(",", ":"))`
//! writes, encoded as UTF-8: compact, non-ASCII characters kept as they are, control
//! characters escaped, and floats written like Python's `repr(float)` (`1e+16`, `1e-05`,
//! `123.0`, `-0.0`), which is where it differs from `serde_json`. zlib is level 6 (Python's
//! `zlib.compress` default).
//!
//! Several secret keys can be given, oldest first: the newest (last) one signs, and every one
//! verifies, tried newest first. That is itsdangerous' key rotation.
//!
//! # Verification
//!
//! [`TimedSerializer::verify`] follows Python's control flow so that every token gets the
//! same verdict:
//!
//! 1. split the token at its last `.` into value and signature (no `.`: bad signature);
//! 2. decode the signature with Python's lenient base64 (see below) and compare it in
//!    constant time with the HMAC of the raw value under each key (no match: bad signature);
//! 3. split the value at its last `.` into payload and timestamp; a missing or undecodable
//!    timestamp, or one longer than 8 bytes, is a bad signature too (Python's
//!    `BadTimeSignature`);
//! 4. with a `max_age`, a token older than `max_age` seconds, or one from the future, is
//!    expired (Python's `SignatureExpired`);
//! 5. only then is the payload decoded; if that fails, the token is malformed (Python's
//!    `BadPayload`).
//!
//! Python decodes base64 leniently (`base64.urlsafe_b64decode` after padding with `=` to a
//! multiple of 4, i.e. CPython's non-strict `binascii.a2b_base64`): characters outside the
//! alphabet are skipped, `+` and `/` are accepted as well as `-` and `_`, unused low bits of
//! the last character are ignored and a complete padding sequence ends the input. So several
//! spellings of one signature verify (`...gp8`, `...gp9`, `...gp8=`); this module accepts
//! exactly the same spellings, since a stricter check would reject links Python accepts.
//!
//! # Known differences from Python
//!
//! Only tokens with a valid signature, i.e. made by a holder of the key, can reach these:
//!
//! - a timestamp after the year 9999 makes Python raise `ValueError` or `OverflowError`
//!   from `datetime.fromtimestamp`; here such a token verifies (or expires) normally;
//! - payload JSON is read by `serde_json` (with correctly rounded floats, and a repeated key
//!   keeping its first position and last value, as a Python dict does), which refuses or reads
//!   differently what a [`serde_json::Value`] cannot hold: `NaN`, `Infinity`, numbers that
//!   overflow to infinity, lone surrogate escapes (`"\ud800"`) and nesting deeper than
//!   [`MAX_JSON_DEPTH`] levels are malformed here but accepted by Python; an integer outside
//!   the `i64`/`u64` range is read as the nearest float, and `-0` as the float `-0.0` (Python
//!   reads both as integers, so `server token verify` prints them differently);
//! - a zlib payload that inflates to more than [`MAX_PAYLOAD_LEN`] bytes is malformed here
//!   (protection against zip bombs); Python has no limit.

#![warn(missing_docs)]

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha1::{Digest, Sha1};

mod base64_lenient;
mod json;
mod zlib;

use base64_lenient::lenient_b64decode;
pub use json::{MAX_JSON_DEPTH, python_json};

type HmacSha1 = Hmac<Sha1>;

/// The largest JSON payload, in bytes, that a compressed token may inflate to.
///
/// Real tokens carry an email address; this bound only stops a hostile zlib stream from
/// inflating without limit.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;

/// Verified token contents.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified<T> {
    /// The signed payload.
    pub payload: T,
    /// When the token was signed: Unix seconds, as written in the token.
    pub issued_at: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The signature is valid but the token is older than `max_age`, or it was signed in the
    /// future (only checked when a `max_age` is given). Python's `SignatureExpired`.
    #[error("expired")]
    Expired,
    /// No `.`, a signature that does not match any key or cannot be decoded, or a missing or
    /// malformed timestamp. Python's `BadSignature` / `BadTimeSignature`.
    #[error("bad-signature")]
    BadSignature,
    /// The signature is valid but the payload cannot be decoded (base64, zlib, UTF-8, JSON),
    /// or is not what the caller expects. Python's `BadPayload`.
    #[error("malformed")]
    Malformed,
}

impl TokenError {
    /// A stable machine-readable name: `"expired"`, `"bad-signature"` or `"malformed"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::BadSignature => "bad-signature",
            Self::Malformed => "malformed",
        }
    }
}

/// An empty list of secret keys was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at least one secret key is required")]
pub struct NoSecretKey;

/// Signs JSON values into URL-safe timestamped tokens and verifies them, byte-compatible with
/// Python itsdangerous' `URLSafeTimedSerializer(secret_keys, salt=salt)`.
///
/// It never reads the clock: the caller passes the signing time and the current time.
#[derive(Clone)]
pub struct TimedSerializer {
    /// The keyed HMAC of the newest secret key, which signs.
    signer: HmacSha1,
    /// One keyed HMAC per secret key, newest first: the order in which they are tried.
    verifiers: Vec<HmacSha1>,
    salt: String,
}

impl TimedSerializer {
    /// A serializer for `salt` with the given secret keys, oldest first. The last (newest) key
    /// signs; all of them verify.
    pub fn new<K: AsRef<[u8]>>(secret_keys: &[K], salt: &str) -> Result<Self, NoSecretKey> {
        let newest = secret_keys.last().ok_or(NoSecretKey)?;
        let verifiers = secret_keys
            .iter()
            .rev()
            .map(|secret| keyed_mac(salt.as_bytes(), secret.as_ref()))
            .collect();
        Ok(Self {
            signer: keyed_mac(salt.as_bytes(), newest.as_ref()),
            verifiers,
            salt: salt.to_owned(),
        })
    }

    /// Signs `payload` as issued at `timestamp` (Unix seconds) with the newest key.
    pub fn sign(&self, payload: &Value, timestamp: u64) -> String {
        let json = python_json(payload);
        let mut token = match zlib::compress(json.as_bytes()) {
            Some(compressed) if compressed.len() + 1 < json.len() => {
                format!(".{}", URL_SAFE_NO_PAD.encode(compressed))
            }
            _ => URL_SAFE_NO_PAD.encode(json.as_bytes()),
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(timestamp_bytes(timestamp)));
        let signature = self
            .signer
            .clone()
            .chain_update(token.as_bytes())
            .finalize()
            .into_bytes();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }

    /// Verifies `token` and returns its payload and signing time.
    ///
    /// With `max_age`, the token must have been signed at most `max_age` seconds before `now`
    /// (Unix seconds) and not after it; with `None` its age is not checked.
    pub fn verify(
        &self,
        token: &str,
        max_age: Option<u64>,
        now: i64,
    ) -> Result<Verified<Value>, TokenError> {
        let (value, signature) = rsplit_dot(token.as_bytes()).ok_or(TokenError::BadSignature)?;
        let signature = lenient_b64decode(signature).ok_or(TokenError::BadSignature)?;
        let genuine = self.verifiers.iter().any(|mac| {
            mac.clone()
                .chain_update(value)
                .verify_slice(&signature)
                .is_ok()
        });
        if !genuine {
            return Err(TokenError::BadSignature);
        }

        let (payload, timestamp) = rsplit_dot(value).ok_or(TokenError::BadSignature)?;
        let issued_at = decode_timestamp(timestamp).ok_or(TokenError::BadSignature)?;
        if let Some(max_age) = max_age {
            let age = i128::from(now) - i128::from(issued_at);
            if age > i128::from(max_age) || age < 0 {
                return Err(TokenError::Expired);
            }
        }

        let payload = load_payload(payload).ok_or(TokenError::Malformed)?;
        Ok(Verified { payload, issued_at })
    }
}

/// Shows the number of keys and the salt, never the keys.
impl fmt::Debug for TimedSerializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedSerializer")
            .field("keys", &self.verifiers.len())
            .field("salt", &self.salt)
            .finish()
    }
}

/// HMAC-SHA1 keyed with itsdangerous' `django-concat` derivation:
/// `SHA1(salt ++ b"signer" ++ secret)`.
fn keyed_mac(salt: &[u8], secret: &[u8]) -> HmacSha1 {
    let derived = Sha1::new()
        .chain_update(salt)
        .chain_update(b"signer")
        .chain_update(secret)
        .finalize();
    // HMAC zero-pads keys shorter than the hash block to the block size, so a block-sized key
    // holding the 20 derived bytes followed by zeros is the same key, with an infallible
    // constructor.
    let mut key = hmac::digest::Key::<HmacSha1>::default();
    key.iter_mut()
        .zip(derived.iter())
        .for_each(|(k, d)| *k = *d);
    <HmacSha1 as KeyInit>::new(&key)
}

/// Splits at the last `.`, like Python's `bytes.rsplit(b".", 1)`.
fn rsplit_dot(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let dot = bytes.iter().rposition(|&b| b == b'.')?;
    Some((&bytes[..dot], &bytes[dot + 1..]))
}

/// itsdangerous' `int_to_bytes`: big-endian, leading zero bytes stripped.
fn timestamp_bytes(timestamp: u64) -> Vec<u8> {
    let bytes = timestamp.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

/// itsdangerous' `bytes_to_int(base64_decode(..))`: at most 8 big-endian bytes.
fn decode_timestamp(encoded: &[u8]) -> Option<u64> {
    let bytes = lenient_b64decode(encoded)?;
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// The payload half of `URLSafeSerializerMixin.load_payload`: optional zlib, then JSON.
fn load_payload(payload: &[u8]) -> Option<Value> {
    let (compressed, encoded) = match payload.strip_prefix(b".") {
        Some(rest) => (true, rest),
        None => (false, payload),
    };
    let mut json = lenient_b64decode(encoded)?;
    if compressed {
        json = zlib::inflate(&json, MAX_PAYLOAD_LEN)?;
    }
    let text = std::str::from_utf8(&json).ok()?;
    json::parse(text)
}

#[cfg(test)]
mod tests;
