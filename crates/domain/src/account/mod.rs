//! What turns a confirmed address into an account a person signs in to: the account's
//! credentials, its sessions, and its second factor (RFC 6238 codes and one-time recovery
//! codes).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use totp_rs::{Algorithm, TOTP};

use crate::{PasswordHashString, User};

/// An account as signing in sees it: the user, its password hash (none until one is set) and
/// its second factor (none until enabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    pub password: Option<PasswordHashString>,
    pub totp: Option<TotpState>,
}

/// An enabled second factor: the shared secret, the last time step a code was accepted for
/// (a code is never accepted twice), and how many recovery codes are left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpState {
    pub secret: TotpSecret,
    pub last_step: Option<i64>,
    pub recovery_codes_left: u32,
}

/// A signed-in browser's session: the account, and until when it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user_id: crate::UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The random value of a session cookie (32 bytes, base64url). Only its
/// [`fingerprint`](Self::fingerprint) is stored, so a copy of the database signs nobody in.
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

/// Length of a session token's text.
const SESSION_TOKEN_LEN: usize = 43;

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(…)")
    }
}

impl SessionToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A cookie's value, if it has a token's shape.
    pub fn parse(text: &str) -> Option<Self> {
        let well_formed = text.len() == SESSION_TOKEN_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the database keeps: the SHA-256 of the token, in hex.
    pub fn fingerprint(&self) -> String {
        crate::to_hex(&Sha256::digest(self.0.as_bytes()))
    }
}

/// The secret an authenticator app shares with the service: 20 random bytes (160 bits, RFC
/// 4226's recommendation), written in base32 as the apps take it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

/// A TOTP secret or account name the authenticator format cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot make an authenticator entry: {0}")]
pub struct TotpError(String);

/// Seconds one code lasts (RFC 6238's default, and every app's).
pub const TOTP_STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const TOTP_DIGITS: usize = 6;

impl TotpSecret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; 20];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A secret written in base32 (as [`Self::base32`] writes it), if it is one of at least 128
    /// bits.
    pub fn from_base32(text: &str) -> Option<Self> {
        let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, text)?;
        (bytes.len() >= 16).then_some(Self(bytes))
    }

    /// The secret in base32 without padding (what apps take when typed in).
    pub fn base32(&self) -> String {
        base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &self.0)
    }
}

/// RFC 6238 codes for one account: SHA-1, six digits, 30-second steps (what authenticator apps
/// support), accepting the step before and after the current one for clocks a little off.
#[derive(Debug, Clone)]
pub struct Totp(TOTP);

impl Totp {
    /// The codes of `secret`, for `account` (the address, shown in the app) at `issuer`.
    pub fn new(secret: &TotpSecret, issuer: &str, account: &str) -> Result<Self, TotpError> {
        TOTP::new(
            Algorithm::SHA1,
            TOTP_DIGITS,
            1,
            TOTP_STEP_SECONDS.unsigned_abs(),
            secret.0.clone(),
            Some(issuer.replace(':', " ")),
            account.replace(':', " "),
        )
        .map(Self)
        .map_err(|e| TotpError(e.to_string()))
    }

    /// The `otpauth://totp/…` URL an app scans from a QR code.
    pub fn url(&self) -> String {
        self.0.get_url()
    }

    /// The code for the step holding `unix` (seconds).
    pub fn code_at(&self, unix: i64) -> String {
        self.0.generate(unix.max(0).unsigned_abs())
    }

    /// The time step `typed` is the code of, among the current step and the one on either side
    /// of it, if that step is later than `after` (the last accepted one): a code is never
    /// accepted twice, nor an older one after a newer. Spaces in `typed` are ignored.
    pub fn verify(&self, typed: &str, now_unix: i64, after: Option<i64>) -> Option<i64> {
        let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
        if typed.len() != TOTP_DIGITS || !typed.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = now_unix.div_euclid(TOTP_STEP_SECONDS);
        let mut found = None;
        // Every candidate is compared, in constant time, whatever matched before.
        for step in [current - 1, current, current + 1] {
            let code = self.code_at(step * TOTP_STEP_SECONDS);
            if bool::from(code.as_bytes().ct_eq(typed.as_bytes())) && after.is_none_or(|a| step > a)
            {
                found = Some(step);
            }
        }
        found
    }
}

/// How many recovery codes an account gets when it enables its second factor.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (without its dash): 10 from a 31-letter alphabet, 49 bits.
const RECOVERY_CODE_CHARS: usize = 10;
/// Letters and digits that cannot be mistaken for one another (no 0/o, 1/l/i).
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Ten fresh recovery codes, as shown to the person once (`xxxxx-xxxxx`).
pub fn generate_recovery_codes() -> Vec<String> {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut code = String::with_capacity(RECOVERY_CODE_CHARS + 1);
            for i in 0..RECOVERY_CODE_CHARS {
                if i == RECOVERY_CODE_CHARS / 2 {
                    code.push('-');
                }
                let index = rng.random_range(0..RECOVERY_ALPHABET.len());
                code.push(char::from(RECOVERY_ALPHABET[index]));
            }
            code
        })
        .collect()
}

/// What the database keeps of a recovery code as typed (any case, with or without its dash and
/// spaces): the SHA-256 of its letters, in hex; `None` when it cannot be a recovery code.
pub fn recovery_code_hash(typed: &str) -> Option<String> {
    let letters: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = letters.len() == RECOVERY_CODE_CHARS
        && letters.bytes().all(|b| RECOVERY_ALPHABET.contains(&b));
    valid.then(|| crate::to_hex(&Sha256::digest(letters.as_bytes())))
}

#[cfg(test)]
mod tests;
