//! CSRF protection for the forms: a signed double-submit cookie.
//!
//! The first page a visitor opens sets a `csrf` cookie holding a random nonce (`HttpOnly`,
//! `SameSite=Lax`, so a cross-site POST does not carry it). Every form carries a hidden
//! `csrf_token`: the nonce signed with SECRET_KEY (the itsdangerous codec of the confirmation
//! links, with a salt of its own) and the time the page was rendered. A POST is accepted only if
//! the token's signature is valid, it is at most [`CSRF_MAX_AGE`] old, and it signs the nonce of
//! the request's own cookie. Another site can neither read the cookie nor forge a token for it.
//! Tokens are signed and checked with the current SECRET_KEY only: a form rendered before a key
//! rotation is simply rendered again (SECRET_KEY_FALLBACKS are for the emailed links, which live
//! longer). Over https the cookie is `__Host-csrf` (`Secure`, `Path=/`, no `Domain`), so a
//! sibling subdomain cannot plant one.

use axum::http::{HeaderMap, HeaderValue};
use axum_extra::extract::cookie::CookieJar;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::{NoSecretKey, TimedSerializer};

use rand::RngCore as _;
use serde_json::Value;
use subtle::ConstantTimeEq as _;

/// The cookie holding the nonce over plain http.
pub const CSRF_COOKIE: &str = "csrf";
/// The cookie holding the nonce over https.
pub const CSRF_COOKIE_HTTPS: &str = "__Host-csrf";
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
    /// Served over https: the cookie is `__Host-csrf` and `Secure`.
    secure: bool,
}

impl Csrf {
    /// A guard signing with the current key, the last of `secret_keys` (the list of the link
    /// tokens, oldest first), for a site served over plain http.
    pub fn new<K: AsRef<[u8]>>(secret_keys: &[K]) -> Result<Self, NoSecretKey> {
        let current = secret_keys.len().saturating_sub(1);
        Ok(Self {
            serializer: TimedSerializer::new(&secret_keys[current..], SALT)?,
            secure: false,
        })
    }

    /// The same guard for a site served over https (`secure`): the `__Host-csrf` cookie.
    #[must_use]
    pub fn over_https(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The name of the nonce's cookie.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            CSRF_COOKIE_HTTPS
        } else {
            CSRF_COOKIE
        }
    }

    /// The nonce of the request's cookie, if it has a well-formed one.
    pub fn nonce_from(&self, headers: &HeaderMap) -> Option<String> {
        let jar = CookieJar::from_headers(headers);
        let nonce = jar.get(self.cookie_name())?.value();
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
        let Some(nonce) = self.nonce_from(headers) else {
            return false;
        };
        self.verify_payload(&nonce, token, now)
    }

    fn verify_payload(&self, expected: &str, token: &str, now: i64) -> bool {
        if token.len() > 512 {
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
            Value::String(signed) => bool::from(signed.as_bytes().ct_eq(expected.as_bytes())),
            _ => false,
        }
    }

    /// A dashboard form's token: bound to the admin credential (`binding`, see
    /// `AdminToken::binding`) instead of a cookie, so the public forms' tokens are no good there.
    pub fn admin_token(&self, binding: &str, now: i64) -> String {
        self.token(&format!("admin:{binding}"), now)
    }

    /// Whether `token` is a genuine, unexpired dashboard token for `binding`.
    pub fn verify_admin(&self, binding: &str, token: &str, now: i64) -> bool {
        self.verify_payload(&format!("admin:{binding}"), token, now)
    }

    /// `Set-Cookie` value for a new nonce.
    pub fn cookie(&self, nonce: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let name = self.cookie_name();
        HeaderValue::from_str(&format!(
            "{name}={nonce}; Path=/; HttpOnly; SameSite=Lax; Max-Age={CSRF_MAX_AGE}{secure}"
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
        // After a key rotation, the old key (now a fallback) no longer verifies forms: only
        // the current key does.
        assert!(
            !Csrf::new(&["key", "new key"])
                .unwrap()
                .verify(&mine, &token, 1_000_000)
        );
        assert!(
            Csrf::new(&["old key", "key"])
                .unwrap()
                .verify(&mine, &token, 1_000_000)
        );
    }

    #[test]
    fn admin_tokens_are_bound_to_the_credential_not_the_cookie() {
        let csrf = Csrf::new(&["key"]).unwrap();
        let token = csrf.admin_token("binding-a", 1_000_000);
        assert!(csrf.verify_admin("binding-a", &token, 1_000_000));
        assert!(!csrf.verify_admin("binding-b", &token, 1_000_000));
        assert!(!csrf.verify_admin("binding-a", &token, 1_000_000 + CSRF_MAX_AGE + 1));
        // A public form's token (a nonce) is no dashboard token, and the other way round.
        let nonce = Csrf::new_nonce();
        let public = csrf.token(&nonce, 1_000_000);
        assert!(!csrf.verify_admin("binding-a", &public, 1_000_000));
        assert!(!csrf.verify(&headers_with(&format!("csrf={nonce}")), &token, 1_000_000));
    }

    #[test]
    fn over_https_the_cookie_is_host_prefixed_and_secure() {
        let csrf = Csrf::new(&["key"]).unwrap().over_https(true);
        let nonce = Csrf::new_nonce();
        let cookie = csrf.cookie(&nonce);
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.starts_with("__Host-csrf="), "{cookie}");
        assert!(
            cookie.contains("; Path=/;") && cookie.ends_with("; Secure"),
            "{cookie}"
        );
        assert!(!cookie.contains("Domain"), "{cookie}");
        let token = csrf.token(&nonce, 1_000_000);
        // The plain `csrf` cookie (which a sibling subdomain could set) is not read.
        assert!(!csrf.verify(&headers_with(&format!("csrf={nonce}")), &token, 1_000_000));
        assert!(csrf.verify(
            &headers_with(&format!("__Host-csrf={nonce}")),
            &token,
            1_000_000
        ));
    }

    #[test]
    fn malformed_cookies_are_ignored() {
        let csrf = Csrf::new(&["key"]).unwrap();
        for cookie in [
            "csrf=short",
            "csrf=<script>alert(1)</script>xxxxxxx",
            "csrf=",
            "xcsrf=AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(csrf.nonce_from(&headers_with(cookie)), None, "{cookie}");
        }
        assert_eq!(
            csrf.nonce_from(&headers_with("csrf=AAAAAAAAAAAAAAAAAAAA-_"))
                .as_deref(),
            Some("AAAAAAAAAAAAAAAAAAAA-_")
        );
        assert!(
            !csrf
                .cookie("AAAAAAAAAAAAAAAAAAAA-_")
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
