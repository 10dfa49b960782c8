//! CSRF protection for the forms: a signed double-submit cookie.
//!
//! The first page a visitor opens sets a `csrf` cookie holding a random nonce (`HttpOnly`,
//! `SameSite=Lax`, so a cross-site POST does not carry it). Every form carries a hidden
//! `csrf_token`: the nonce signed with SECRET_KEY (the itsdangerous codec of the confirmation
//! links, with a salt of its own) and the time the page was rendered. A POST is accepted only if
//! the token's signature is valid, it is at most [`CSRF_MAX_AGE`] old, and it signs the nonce of
//! the request's own cookie. Another site can neither read the cookie nor forge a token for it.
//! Keys in SECRET_KEY_FALLBACKS keep forms rendered before a key rotation working.

use axum::http::{HeaderMap, HeaderValue};
use axum_extra::extract::cookie::CookieJar;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::{NoSecretKey, TimedSerializer};

use rand::RngCore as _;
use serde_json::Value;
use subtle::ConstantTimeEq as _;

/// The cookie holding the nonce.
pub const CSRF_COOKIE: &str = "csrf";
/// How long a rendered form stays valid, in seconds (and the cookie's lifetime).
pub const CSRF_MAX_AGE: i64 = 24 * 60 * 60;
/// A token signed up to this many seconds "in the future" (by a server whose clock is a little
/// ahead of ours) is still accepted.
const CLOCK_SKEW_SECONDS: i64 = 60;
/// 16 random bytes, base64url without padding.
const NONCE_LEN: usize = 22;
const SALT: &str = "csrf-token";

/// Signs and checks form tokens.
#[derive(Debug, Clone)]
pub struct Csrf {
    serializer: TimedSerializer,
}

impl Csrf {
    /// A guard with the given secret keys, oldest first (the same list as the link tokens').
    pub fn new<K: AsRef<[u8]>>(secret_keys: &[K]) -> Result<Self, NoSecretKey> {
        Ok(Self {
            serializer: TimedSerializer::new(secret_keys, SALT)?,
        })
    }

    /// The nonce of the request's `csrf` cookie, if it has a well-formed one.
    pub fn nonce_from(headers: &HeaderMap) -> Option<String> {
        let jar = CookieJar::from_headers(headers);
        let nonce = jar.get(CSRF_COOKIE)?.value();
        let well_formed = nonce.len() == NONCE_LEN
            && nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| nonce.to_owned())
    }

    /// A fresh random nonce.
    pub fn new_nonce() -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The form token for `nonce`, rendered at `now` (Unix seconds).
    pub fn token(&self, nonce: &str, now: i64) -> String {
        self.serializer.sign(
            &Value::String(nonce.to_owned()),
            u64::try_from(now).unwrap_or(0),
        )
    }

    /// Whether `token` is a genuine, unexpired token for the nonce in the request's cookie.
    pub fn verify(&self, headers: &HeaderMap, token: &str, now: i64) -> bool {
        let Some(nonce) = Self::nonce_from(headers) else {
            return false;
        };
        if token.len() > 256 {
            return false;
        }
        let Ok(verified) = self.serializer.verify(token, None, now) else {
            return false;
        };
        let age = i128::from(now) - i128::from(verified.issued_at);
        if age > i128::from(CSRF_MAX_AGE) || age < -i128::from(CLOCK_SKEW_SECONDS) {
            return false;
        }
        match verified.payload {
            Value::String(signed) => bool::from(signed.as_bytes().ct_eq(nonce.as_bytes())),
            _ => false,
        }
    }

    /// `Set-Cookie` value for a new nonce.
    pub fn cookie(nonce: &str, secure: bool) -> HeaderValue {
        let secure = if secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{CSRF_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Lax; Max-Age={CSRF_MAX_AGE}{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("csrf=; Path=/; Max-Age=0"))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    fn headers_with(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        headers
    }

    #[test]
    fn a_token_is_valid_only_with_its_own_cookie_and_while_fresh() {
        let csrf = Csrf::new(&["key"]).unwrap();
        let nonce = Csrf::new_nonce();
        assert_eq!(nonce.len(), NONCE_LEN);
        let token = csrf.token(&nonce, 1_000_000);
        let mine = headers_with(&format!("a=b; csrf={nonce}; flash=x"));
        assert!(csrf.verify(&mine, &token, 1_000_000));
        assert!(csrf.verify(&mine, &token, 1_000_000 + CSRF_MAX_AGE));
        assert!(!csrf.verify(&mine, &token, 1_000_000 + CSRF_MAX_AGE + 1));
        assert!(csrf.verify(&mine, &token, 1_000_000 - CLOCK_SKEW_SECONDS));
        assert!(!csrf.verify(&mine, &token, 1_000_000 - CLOCK_SKEW_SECONDS - 1));
        // Another visitor's cookie, no cookie, a tampered token, another key.
        let other = headers_with(&format!("csrf={}", Csrf::new_nonce()));
        assert!(!csrf.verify(&other, &token, 1_000_000));
        assert!(!csrf.verify(&HeaderMap::new(), &token, 1_000_000));
        assert!(!csrf.verify(&mine, &format!("{token}x"), 1_000_000));
        assert!(!csrf.verify(&mine, "", 1_000_000));
        assert!(
            !Csrf::new(&["other"])
                .unwrap()
                .verify(&mine, &token, 1_000_000)
        );
        // After a key rotation, the old key (now a fallback) still verifies.
        assert!(
            Csrf::new(&["key", "new key"])
                .unwrap()
                .verify(&mine, &token, 1_000_000)
        );
    }

    #[test]
    fn malformed_cookies_are_ignored() {
        for cookie in [
            "csrf=short",
            "csrf=<script>alert(1)</script>xxxxxxx",
            "csrf=",
            "xcsrf=AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(Csrf::nonce_from(&headers_with(cookie)), None, "{cookie}");
        }
        assert_eq!(
            Csrf::nonce_from(&headers_with("csrf=AAAAAAAAAAAAAAAAAAAA-_")).as_deref(),
            Some("AAAAAAAAAAAAAAAAAAAA-_")
        );
        assert!(
            Csrf::cookie("AAAAAAAAAAAAAAAAAAAA-_", true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }
}
