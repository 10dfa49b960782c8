//! The delivery dashboard's shared secret (`ADMIN_TOKEN`).

use std::fmt;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The shortest `ADMIN_TOKEN` accepted, in characters.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The dashboard's token: at least [`MIN_ADMIN_TOKEN_LEN`] characters. Only its SHA-256 digest
/// is kept, and a candidate is compared by its own digest in constant time, so neither the
/// content nor the length of the token shows in the time a comparison takes. `Debug` never
/// shows it.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8; 32]>);

/// An `ADMIN_TOKEN` shorter than [`MIN_ADMIN_TOKEN_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ADMIN_TOKEN is too short: use at least {MIN_ADMIN_TOKEN_LEN} random characters")]
pub struct AdminTokenTooShort;

impl AdminToken {
    /// The token, if it is long enough.
    pub fn new(token: &str) -> Result<Self, AdminTokenTooShort> {
        if token.chars().count() < MIN_ADMIN_TOKEN_LEN {
            return Err(AdminTokenTooShort);
        }
        Ok(Self(Arc::new(digest(token.as_bytes()))))
    }

    /// Whether `candidate` is the token (fixed-size digests compared in constant time).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        bool::from(self.0.as_slice().ct_eq(&digest(candidate)))
    }

    /// A value bound to this token that reveals nothing of it (the SHA-256 digest of the
    /// digest, in hex): what the dashboard's forms are signed for.
    pub fn binding(&self) -> String {
        crate::to_hex(&digest(self.0.as_slice()))
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_enough_tokens_match_exactly_and_never_show() {
        let token = AdminToken::new("0123456789abcdef-admin").unwrap();
        assert!(token.matches(b"0123456789abcdef-admin"));
        assert!(!token.matches(b"0123456789abcdef-admiN"));
        assert!(!token.matches(b"0123456789abcdef-admin-and-more"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
        assert_eq!(AdminToken::new("short").unwrap_err(), AdminTokenTooShort);
        assert!(AdminToken::new(&"é".repeat(MIN_ADMIN_TOKEN_LEN)).is_ok());
        // The binding names the token without revealing it.
        let binding = token.binding();
        assert_eq!(binding.len(), 64);
        assert!(!binding.contains("admin"));
        assert_eq!(
            binding,
            AdminToken::new("0123456789abcdef-admin").unwrap().binding()
        );
        assert_ne!(
            binding,
            AdminToken::new("0123456789abcdef-other").unwrap().binding()
        );
    }
}
