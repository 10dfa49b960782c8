//! The JSON API's keys (`API_KEYS`).

use std::fmt;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

/// The shortest API key accepted, in characters.
pub const MIN_API_KEY_LEN: usize = 32;

/// The keys that open the JSON API, each at least [`MIN_API_KEY_LEN`] characters. Only their
/// SHA-256 digests are kept; a candidate's digest is compared with every key's in constant time
/// (no early exit), so neither a key's content, its length nor which key matched shows in the
/// time a check takes. `Debug` shows only how many keys there are.
#[derive(Clone)]
pub struct ApiKeys(Arc<[[u8; 32]]>);

/// A key list that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API_KEYS: each key must have at least {MIN_API_KEY_LEN} random characters")]
    TooShort,
    #[error("API_KEYS: an empty key (two commas in a row, or a comma at an end)")]
    Empty,
}

impl ApiKeys {
    /// The keys of a comma-separated list (spaces around each key are ignored); `Ok(None)` for
    /// an empty or blank list.
    pub fn parse(list: &str) -> Result<Option<Self>, ApiKeyError> {
        if list.trim().is_empty() {
            return Ok(None);
        }
        let mut digests = Vec::new();
        for key in list.split(',').map(str::trim) {
            if key.is_empty() {
                return Err(ApiKeyError::Empty);
            }
            if key.chars().count() < MIN_API_KEY_LEN {
                return Err(ApiKeyError::TooShort);
            }
            digests.push(digest(key.as_bytes()));
        }
        Ok(Some(Self(digests.into())))
    }

    /// Whether `candidate` is one of the keys.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let candidate = digest(candidate);
        let found = self
            .0
            .iter()
            .fold(Choice::from(0), |found, key| found | key.ct_eq(&candidate));
        bool::from(found)
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef-a";
    const B: &str = "0123456789abcdef0123456789abcdef-b";

    #[test]
    fn every_listed_key_matches_and_nothing_else() {
        let keys = ApiKeys::parse(&format!(" {A} , {B}")).unwrap().unwrap();
        assert!(keys.matches(A.as_bytes()));
        assert!(keys.matches(B.as_bytes()));
        assert!(!keys.matches(b"0123456789abcdef0123456789abcdef-c"));
        assert!(!keys.matches(format!(" {A}").as_bytes()));
        assert!(!keys.matches(b""));
        assert_eq!(format!("{keys:?}"), "ApiKeys(2 keys)");
    }

    #[test]
    fn refuses_short_and_empty_keys_and_reads_blank_as_none() {
        assert!(ApiKeys::parse("").unwrap().is_none());
        assert!(ApiKeys::parse("  ").unwrap().is_none());
        assert_eq!(ApiKeys::parse("short").unwrap_err(), ApiKeyError::TooShort);
        assert_eq!(
            ApiKeys::parse(&format!("{A},,{B}")).unwrap_err(),
            ApiKeyError::Empty
        );
        assert_eq!(
            ApiKeys::parse(&format!("{A},")).unwrap_err(),
            ApiKeyError::Empty
        );
    }
}
