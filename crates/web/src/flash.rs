//! One-shot messages shown after a redirect, like Flask's `flash()`.
//!
//! The cookie carries only a code naming one of the fixed messages below, so tampering with it
//! can at most show another of these texts; it is `HttpOnly`, `SameSite=Lax` and removed as soon
//! as it is shown.

use axum::http::{HeaderMap, HeaderValue};
use axum_extra::extract::cookie::CookieJar;

/// The messages the tutorial flashes, word for word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flash {
    Registered,
    Confirmed,
    AlreadyConfirmed,
    InvalidLink,
    /// After `POST /resend`, whatever the address.
    Resent,
}

impl Flash {
    const ALL: [Self; 5] = [
        Self::Resent,
        Self::Registered,
        Self::Confirmed,
        Self::AlreadyConfirmed,
        Self::InvalidLink,
    ];

    /// The id of its message (`templates/locales/<locale>/web.ftl`; in English, the tutorial's
    /// words).
    pub fn message_id(self) -> &'static str {
        match self {
            Self::Registered => "flash-registered",
            Self::Confirmed => "flash-confirmed",
            Self::AlreadyConfirmed => "flash-already-confirmed",
            Self::InvalidLink => "flash-invalid-link",
            Self::Resent => "flash-resent",
        }
    }

    /// The Bootstrap-style category of the tutorial: `success` or `danger`.
    pub fn category(self) -> &'static str {
        match self {
            Self::InvalidLink => "danger",
            _ => "success",
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Confirmed => "confirmed",
            Self::AlreadyConfirmed => "already-confirmed",
            Self::InvalidLink => "invalid-link",
            Self::Resent => "resent",
        }
    }

    /// The flash carried by the request's cookies, if any.
    pub fn from_request(headers: &HeaderMap) -> Option<Self> {
        let jar = CookieJar::from_headers(headers);
        let code = jar.get("flash")?.value();
        Self::ALL.into_iter().find(|f| f.code() == code)
    }

    /// `Set-Cookie` value that carries this flash to the next page.
    pub fn set_cookie(self, secure: bool) -> HeaderValue {
        HeaderValue::from_static(match (self, secure) {
            (Self::Registered, false) => {
                "flash=registered; Path=/; HttpOnly; SameSite=Lax; Max-Age=300"
            }
            (Self::Confirmed, false) => {
                "flash=confirmed; Path=/; HttpOnly; SameSite=Lax; Max-Age=300"
            }
            (Self::AlreadyConfirmed, false) => {
                "flash=already-confirmed; Path=/; HttpOnly; SameSite=Lax; Max-Age=300"
            }
            (Self::InvalidLink, false) => {
                "flash=invalid-link; Path=/; HttpOnly; SameSite=Lax; Max-Age=300"
            }
            (Self::Resent, false) => "flash=resent; Path=/; HttpOnly; SameSite=Lax; Max-Age=300",
            (Self::Resent, true) => {
                "flash=resent; Path=/; HttpOnly; SameSite=Lax; Max-Age=300; Secure"
            }
            (Self::Registered, true) => {
                "flash=registered; Path=/; HttpOnly; SameSite=Lax; Max-Age=300; Secure"
            }
            (Self::Confirmed, true) => {
                "flash=confirmed; Path=/; HttpOnly; SameSite=Lax; Max-Age=300; Secure"
            }
            (Self::AlreadyConfirmed, true) => {
                "flash=already-confirmed; Path=/; HttpOnly; SameSite=Lax; Max-Age=300; Secure"
            }
            (Self::InvalidLink, true) => {
                "flash=invalid-link; Path=/; HttpOnly; SameSite=Lax; Max-Age=300; Secure"
            }
        })
    }

    /// `Set-Cookie` value that removes a shown flash.
    pub fn clear_cookie() -> HeaderValue {
        HeaderValue::from_static("flash=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    #[test]
    fn reads_its_own_cookie_among_others_and_ignores_unknown_codes() {
        for flash in Flash::ALL {
            let mut headers = HeaderMap::new();
            let set = flash.set_cookie(false);
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("a=b; {pair}; c=d")).unwrap(),
            );
            assert_eq!(Flash::from_request(&headers), Some(flash));
            assert!(
                flash
                    .set_cookie(true)
                    .to_str()
                    .unwrap()
                    .ends_with("; Secure")
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("flash=<script>"));
        assert_eq!(Flash::from_request(&headers), None);
    }
}
