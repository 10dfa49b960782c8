//! The six-digit code printed beside the confirmation link, for people who read their mail on
//! another device than the one they registered on.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::MessageId;

type HmacSha256 = Hmac<Sha256>;

/// The codes of confirmation emails. A code is derived from its message's id under the secret
/// keys (HMAC-SHA256, truncated as HOTP does, RFC 4226 section 5.3), so it is the same on every
/// retry of one email and different for every email, and nothing about it is stored: the
/// database holds neither the code nor anything from which it could be found without the key.
/// Every key checks (rotation); the last one issues.
#[derive(Clone)]
pub struct ConfirmationCodes {
    /// One per secret key, oldest first: SHA-256 of a label and the key, so a code key is never
    /// a token key.
    keys: Vec<[u8; 32]>,
}

impl fmt::Debug for ConfirmationCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfirmationCodes")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Why a typed code cannot be a code at all (before any comparison).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a code is {} digits", ConfirmationCodes::DIGITS)]
pub struct MalformedCode;

impl ConfirmationCodes {
    /// Digits in a code.
    pub const DIGITS: usize = 6;
    /// Wrong tries after which a code stops working.
    pub const MAX_FAILURES: i32 = 5;

    pub(crate) fn new<K: AsRef<[u8]>>(secret_keys: &[K]) -> Self {
        let keys = secret_keys
            .iter()
            .map(|key| {
                let mut hash = Sha256::new();
                hash.update(b"confirmation-code\0");
                hash.update(key.as_ref());
                hash.finalize().into()
            })
            .collect();
        Self { keys }
    }

    /// The code of message `id`, under the newest key: six digits, leading zeros kept.
    pub fn code(&self, id: MessageId) -> String {
        self.keys
            .last()
            .map_or_else(String::new, |key| derive(key, id))
    }

    /// Whether `code` (already [`normalize`]d) is message `id`'s under any key, compared in
    /// constant time.
    pub fn matches(&self, id: MessageId, code: &str) -> bool {
        self.keys.iter().fold(false, |found, key| {
            found | bool::from(derive(key, id).as_bytes().ct_eq(code.as_bytes()))
        })
    }
}

/// A code as people type it: spaces and dashes dropped (`123 456`, `123-456`); anything but
/// exactly six ASCII digits then is [`MalformedCode`].
pub fn normalize(typed: &str) -> Result<String, MalformedCode> {
    let digits: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if digits.len() == ConfirmationCodes::DIGITS && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits)
    } else {
        Err(MalformedCode)
    }
}

fn derive(key: &[u8; 32], id: MessageId) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        // HMAC takes a key of any length.
        return String::new();
    };
    mac.update(&id.0.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // RFC 4226 dynamic truncation: 31 bits from the offset the last nibble names.
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let bits = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", bits % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(keys: &[&str]) -> ConfirmationCodes {
        ConfirmationCodes::new(keys)
    }

    #[test]
    fn a_code_is_six_digits_stable_per_message_and_differs_between_messages() {
        let c = codes(&["k1"]);
        let one = c.code(MessageId(1));
        assert_eq!(one.len(), 6);
        assert!(one.bytes().all(|b| b.is_ascii_digit()), "{one}");
        assert_eq!(c.code(MessageId(1)), one, "the same on every retry");
        let distinct: std::collections::HashSet<String> =
            (1..=1000).map(|i| c.code(MessageId(i))).collect();
        assert!(
            distinct.len() > 990,
            "{} distinct codes of 1000",
            distinct.len()
        );
        assert!(c.matches(MessageId(1), &one));
        assert!(!c.matches(MessageId(2), &one));
    }

    #[test]
    fn another_key_gives_other_codes_and_an_old_key_still_checks() {
        let old = codes(&["old"]);
        let other = codes(&["other"]);
        let rotated = codes(&["old", "new"]);
        let id = MessageId(42);
        assert_ne!(old.code(id), other.code(id));
        assert!(!other.matches(id, &old.code(id)));
        assert!(rotated.matches(id, &old.code(id)), "a fallback key checks");
        assert_eq!(
            rotated.code(id),
            codes(&["new"]).code(id),
            "the newest issues"
        );
    }

    #[test]
    fn codes_spread_over_all_digits() {
        let c = codes(&["spread"]);
        let small = (1..=2000)
            .filter(|&i| c.code(MessageId(i)).starts_with('0'))
            .count();
        // About a tenth start with 0 (leading zeros are kept, not dropped).
        assert!((120..=280).contains(&small), "{small} of 2000 start with 0");
    }

    #[test]
    fn typed_codes_are_normalized_or_refused() {
        assert_eq!(normalize(" 123 456 ").as_deref(), Ok("123456"));
        assert_eq!(normalize("123-456").as_deref(), Ok("123456"));
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６", "12 34 5"] {
            assert_eq!(normalize(bad), Err(MalformedCode), "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_no_key() {
        let text = format!("{:?}", codes(&["secret-key-material"]));
        assert!(!text.contains("secret"), "{text}");
    }
}
