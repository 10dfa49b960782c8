//! The delivery dashboard's shared secret (`ADMIN_TOKEN`).

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq as _;

/// The shortest `ADMIN_TOKEN` accepted, in characters.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The dashboard's token: at least [`MIN_ADMIN_TOKEN_LEN`] characters, compared in constant
/// time. `Debug` never shows it.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8]>);

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
        Ok(Self(token.as_bytes().into()))
    }

    /// Whether `candidate` is the token (constant time in the candidate's content).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        bool::from(self.0.as_ref().ct_eq(candidate))
    }
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
    }
}
