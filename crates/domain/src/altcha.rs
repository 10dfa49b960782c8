//! ALTCHA (<https://altcha.org>): a proof-of-work challenge the server makes and checks alone,
//! with no third party and nothing stored. Compatible with the ALTCHA widget and libraries.
//!
//! A challenge is a random salt (with its expiry, `?expires=<unix>&`), the SHA-256 of the salt
//! followed by a secret number in `0..=maxnumber`, and an HMAC-SHA256 signature of that hash
//! under the server's key. The browser tries numbers until the hash matches and sends back
//! `base64(JSON {algorithm, challenge, number, salt, signature})`; the server recomputes the
//! hash and the signature. A solved payload stays valid until its expiry: whoever takes it must
//! remember the salts already used (one use each).

use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::to_hex as hex;

/// The only algorithm this service issues and accepts.
pub const ALGORITHM: &str = "SHA-256";

/// What the widget fetches: the fields of the ALTCHA challenge JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Challenge {
    pub algorithm: &'static str,
    pub challenge: String,
    pub maxnumber: u64,
    pub salt: String,
    pub signature: String,
}

/// Why a payload is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AltchaError {
    #[error("the CAPTCHA answer is not readable")]
    Malformed,
    #[error("the CAPTCHA answer uses another algorithm")]
    Algorithm,
    #[error("the CAPTCHA has expired")]
    Expired,
    #[error("the CAPTCHA answer is wrong")]
    Wrong,
}

/// A verified payload: its salt, which the caller must not accept twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solved {
    pub salt: String,
    pub expires: i64,
}

#[derive(Deserialize)]
struct Payload {
    algorithm: String,
    challenge: String,
    number: u64,
    salt: String,
    signature: String,
}

/// An HMAC key that cannot be used (HMAC takes keys of any length: this does not happen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ALTCHA key cannot be used")]
pub struct InvalidAltchaKey;

/// Makes and checks challenges under one key.
#[derive(Clone)]
pub struct Altcha {
    /// HMAC-SHA256 keyed once; cloned for each signature.
    mac: Hmac<Sha256>,
    max_number: u64,
    lifetime_secs: i64,
}

impl std::fmt::Debug for Altcha {
    /// Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Altcha")
            .field("max_number", &self.max_number)
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl Altcha {
    /// Challenges under `key` (derive it from the service's secret), with numbers up to
    /// `max_number` (the work: the browser tries half of them on average) and valid for
    /// `lifetime_secs`.
    pub fn new(key: &[u8], max_number: u64, lifetime_secs: i64) -> Result<Self, InvalidAltchaKey> {
        let mac = <Hmac<Sha256>>::new_from_slice(key).map_err(|_| InvalidAltchaKey)?;
        Ok(Self {
            mac,
            max_number,
            lifetime_secs,
        })
    }

    fn sign(&self, challenge: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(challenge.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// The challenge for `salt` (random hex, from the caller) and `number` (random in
    /// `0..=max_number`, from the caller), expiring `lifetime_secs` after `now`.
    pub fn challenge(&self, salt_hex: &str, number: u64, now: i64) -> Challenge {
        let salt = format!("{salt_hex}?expires={}&", now + self.lifetime_secs);
        let challenge = hex(&Sha256::digest(format!("{salt}{number}")));
        Challenge {
            algorithm: ALGORITHM,
            signature: self.sign(&challenge),
            challenge,
            maxnumber: self.max_number,
            salt,
        }
    }

    /// Checks a payload as the widget submits it (base64 of the JSON) at `now`.
    pub fn verify(&self, payload: &str, now: i64) -> Result<Solved, AltchaError> {
        use base64::Engine as _;
        let json = base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .map_err(|_| AltchaError::Malformed)?;
        let payload: Payload = serde_json::from_slice(&json).map_err(|_| AltchaError::Malformed)?;
        if payload.algorithm != ALGORITHM {
            return Err(AltchaError::Algorithm);
        }
        let mut salt = payload.salt;
        if !salt.ends_with('&') {
            salt.push('&');
        }
        let expires = salt
            .split_once('?')
            .map(|(_, query)| query)
            .unwrap_or("")
            .split('&')
            .find_map(|pair| pair.strip_prefix("expires="))
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or(AltchaError::Malformed)?;
        if expires < now {
            return Err(AltchaError::Expired);
        }
        let challenge = hex(&Sha256::digest(format!("{salt}{}", payload.number)));
        let signature = self.sign(&challenge);
        let same = |a: &str, b: &str| {
            use subtle::ConstantTimeEq as _;
            a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
        };
        if !same(&challenge, &payload.challenge) || !same(&signature, &payload.signature) {
            return Err(AltchaError::Wrong);
        }
        Ok(Solved { salt, expires })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    const KEY: &[u8] = b"test-altcha-key";

    /// Made by the reference Python library (`altcha` on PyPI): `create_challenge` with this
    /// key, salt `00112233445566778899aabb`, number 4321, max 100000, expiry 1700000600.
    const PY_CHALLENGE: &str = "e600e522de345ed02ab642a542440594ec80978ad0702b693f834377aad12656";
    const PY_SIGNATURE: &str = "02aece5eb28a3b8a611ab5e5450c6b4731e993ce7e2254666e3306a4737517b8";
    const PY_PAYLOAD: &str = "eyJhbGdvcml0aG0iOiAiU0hBLTI1NiIsICJjaGFsbGVuZ2UiOiAiZTYwMGU1MjJkZTM0NWVkMDJhYjY0MmE1NDI0NDA1OTRlYzgwOTc4YWQwNzAyYjY5M2Y4MzQzNzdhYWQxMjY1NiIsICJudW1iZXIiOiA0MzIxLCAic2FsdCI6ICIwMDExMjIzMzQ0NTU2Njc3ODg5OWFhYmI/ZXhwaXJlcz0xNzAwMDAwNjAwJiIsICJzaWduYXR1cmUiOiAiMDJhZWNlNWViMjhhM2I4YTYxMWFiNWU1NDUwYzZiNDczMWU5OTNjZTdlMjI1NDY2NmUzMzA2YTQ3Mzc1MTdiOCJ9";

    fn altcha() -> Altcha {
        Altcha::new(KEY, 100_000, 600).unwrap()
    }

    fn payload(challenge: &Challenge, number: u64) -> String {
        base64::engine::general_purpose::STANDARD.encode(
            serde_json::json!({
                "algorithm": challenge.algorithm,
                "challenge": challenge.challenge,
                "number": number,
                "salt": challenge.salt,
                "signature": challenge.signature,
            })
            .to_string(),
        )
    }

    #[test]
    fn matches_the_reference_library() {
        let c = altcha().challenge("00112233445566778899aabb", 4321, 1_700_000_000);
        assert_eq!(c.salt, "00112233445566778899aabb?expires=1700000600&");
        assert_eq!(c.challenge, PY_CHALLENGE);
        assert_eq!(c.signature, PY_SIGNATURE);
        assert_eq!(c.maxnumber, 100_000);
        let solved = altcha().verify(PY_PAYLOAD, 1_700_000_100).unwrap();
        assert_eq!(solved.expires, 1_700_000_600);
        assert_eq!(solved.salt, "00112233445566778899aabb?expires=1700000600&");
    }

    #[test]
    fn refuses_wrong_expired_forged_and_malformed_answers() {
        let a = altcha();
        let c = a.challenge("aabbcc", 77, 1_000);
        assert!(a.verify(&payload(&c, 77), 1_000).is_ok());
        assert_eq!(a.verify(&payload(&c, 78), 1_000), Err(AltchaError::Wrong));
        assert_eq!(a.verify(&payload(&c, 77), 1_601), Err(AltchaError::Expired));
        // Another key's signature; a salt whose expiry was moved.
        let other = Altcha::new(b"another key", 100_000, 600)
            .unwrap()
            .challenge("aabbcc", 77, 1_000);
        assert_eq!(
            a.verify(&payload(&other, 77), 1_000),
            Err(AltchaError::Wrong)
        );
        let mut moved = c.clone();
        moved.salt = "aabbcc?expires=9999999999&".into();
        assert_eq!(
            a.verify(&payload(&moved, 77), 1_000),
            Err(AltchaError::Wrong)
        );
        let mut sha1 = c.clone();
        sha1.algorithm = "SHA-1";
        assert_eq!(
            a.verify(&payload(&sha1, 77), 1_000),
            Err(AltchaError::Algorithm)
        );
        for bad in ["", "not base64!", "e30=", "bnVsbA=="] {
            assert_eq!(a.verify(bad, 1_000), Err(AltchaError::Malformed), "{bad}");
        }
        assert!(!format!("{a:?}").contains("test-altcha-key"));
    }

    /// Solving as the widget does (trying numbers in order) finds the secret number.
    #[test]
    fn a_solver_finds_the_number() {
        let a = Altcha::new(KEY, 1_000, 600).unwrap();
        let c = a.challenge("0f0f", 613, 0);
        let found = (0..=c.maxnumber)
            .find(|n| hex(&Sha256::digest(format!("{}{n}", c.salt))) == c.challenge)
            .unwrap();
        assert_eq!(found, 613);
        assert!(a.verify(&payload(&c, found), 0).is_ok());
    }
}
