//! Where a confirmation sends the visitor: the page an application asked for when it registered
//! the address through the API (only on an origin of `ALLOWED_REDIRECT_ORIGINS`: anything else
//! would be an open redirect), else `CONFIRMED_REDIRECT_URL`, else the home page.

use url::Url;

/// The longest redirect URL accepted, `email_confirmed=1` included.
pub const MAX_REDIRECT_LEN: usize = 2048;

/// Why a requested redirect is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedirectError {
    /// Not an absolute http(s) URL, or one with credentials or a fragment, or too long.
    Malformed,
    /// Its origin is not one of ALLOWED_REDIRECT_ORIGINS.
    OriginNotAllowed,
}

/// The URL a confirmation will send the visitor to for a requested `redirect`: the same URL with
/// `email_confirmed=1` added to its query, if it is an absolute http(s) URL without credentials
/// or fragment whose origin is one of `allowed`.
pub(crate) fn target(allowed: &[String], redirect: &str) -> Result<String, RedirectError> {
    let mut url = Url::parse(redirect).map_err(|_| RedirectError::Malformed)?;
    let well_formed = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none();
    if !well_formed {
        return Err(RedirectError::Malformed);
    }
    if !origin_allowed(allowed, &url) {
        return Err(RedirectError::OriginNotAllowed);
    }
    url.query_pairs_mut().append_pair("email_confirmed", "1");
    let url = String::from(url);
    if url.len() > MAX_REDIRECT_LEN {
        return Err(RedirectError::Malformed);
    }
    Ok(url)
}

fn origin_allowed(allowed: &[String], url: &Url) -> bool {
    let origin = url.origin().ascii_serialization();
    allowed.contains(&origin)
}

/// Whether a stored target may still be used: its origin is still allowed (an origin removed
/// from ALLOWED_REDIRECT_ORIGINS stops its redirects at once).
pub(crate) fn still_allowed(allowed: &[String], stored: &str) -> bool {
    Url::parse(stored).is_ok_and(|url| origin_allowed(allowed, &url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec![
            "https://app.example.com".to_owned(),
            "http://127.0.0.1:8080".to_owned(),
        ]
    }

    #[test]
    fn only_allowed_origins_get_a_target_with_the_marker() {
        assert_eq!(
            target(&allowed(), "https://app.example.com/welcome?x=1"),
            Ok("https://app.example.com/welcome?x=1&email_confirmed=1".to_owned())
        );
        assert_eq!(
            target(&allowed(), "http://127.0.0.1:8080/"),
            Ok("http://127.0.0.1:8080/?email_confirmed=1".to_owned())
        );
        for (redirect, error) in [
            ("https://evil.example.com/", RedirectError::OriginNotAllowed),
            (
                "https://app.example.com.evil.com/",
                RedirectError::OriginNotAllowed,
            ),
            ("http://app.example.com/", RedirectError::OriginNotAllowed),
            (
                "https://app.example.com:8443/",
                RedirectError::OriginNotAllowed,
            ),
            ("http://127.0.0.1:8081/", RedirectError::OriginNotAllowed),
            ("//app.example.com/", RedirectError::Malformed),
            ("/welcome", RedirectError::Malformed),
            ("javascript:alert(1)", RedirectError::Malformed),
            ("https://user:pw@app.example.com/", RedirectError::Malformed),
            ("https://app.example.com/#frag", RedirectError::Malformed),
        ] {
            assert_eq!(target(&allowed(), redirect), Err(error), "{redirect}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(MAX_REDIRECT_LEN));
        assert_eq!(target(&allowed(), &long), Err(RedirectError::Malformed));
        assert_eq!(
            target(&[], "https://app.example.com/"),
            Err(RedirectError::OriginNotAllowed)
        );
    }

    #[test]
    fn a_stored_target_stops_when_its_origin_is_removed() {
        let stored = "https://app.example.com/welcome?email_confirmed=1";
        assert!(still_allowed(&allowed(), stored));
        assert!(!still_allowed(
            &["https://other.example.com".to_owned()],
            stored
        ));
        assert!(!still_allowed(&allowed(), "not a url"));
    }
}
