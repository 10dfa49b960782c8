//! Passwords: Argon2id hashes in PHC strings, with OWASP's recommended parameters, and a check
//! that costs the same whether or not there is an account to check against.

use std::fmt;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most characters a password may have (a bound on the work one sign-in can cause).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// OWASP's Password Storage Cheat Sheet, Argon2id: 19 MiB of memory, 2 iterations, 1 lane.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// See [`ARGON2_MEMORY_KIB`].
pub const ARGON2_ITERATIONS: u32 = 2;
/// See [`ARGON2_MEMORY_KIB`].
pub const ARGON2_LANES: u32 = 1;

/// A password that cannot be used, with a text safe to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("The password must have at least {MIN_PASSWORD_CHARS} characters.")]
    TooShort,
    #[error("The password must have at most {MAX_PASSWORD_CHARS} characters.")]
    TooLong,
}

/// Hashing failed (not the password's fault: the hasher's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// A password as typed, checked for length. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    /// `text` as a password: 8 to 128 characters (counted as Unicode scalar values, as typed;
    /// nothing is trimmed).
    pub fn new(text: &str) -> Result<Self, PasswordError> {
        match text.chars().count() {
            n if n < MIN_PASSWORD_CHARS => Err(PasswordError::TooShort),
            n if n > MAX_PASSWORD_CHARS => Err(PasswordError::TooLong),
            _ => Ok(Self(text.to_owned())),
        }
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A stored password hash: an Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHashString(String);

impl fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHashString(…)")
    }
}

impl PasswordHashString {
    /// A stored string, taken as it is (checked when verified).
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What a password-reset link is bound to (see `PasswordResetTokens`): 16 hex digits of the
    /// SHA-256 of the stored hash, or of nothing for an account without a password. Every new
    /// hash has a new salt, so every password change (even to the same password) changes it.
    pub fn binding(stored: Option<&Self>) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(stored.map_or("", |s| s.as_str()).as_bytes());
        let mut hex = crate::to_hex(&digest);
        hex.truncate(16);
        hex
    }
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    argon2: Argon2<'static>,
    /// Verified against when there is no account, so the answer takes as long.
    dummy: PasswordHashString,
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passwords")
            .field("memory_kib", &ARGON2_MEMORY_KIB)
            .field("iterations", &ARGON2_ITERATIONS)
            .field("lanes", &ARGON2_LANES)
            .finish()
    }
}

impl Passwords {
    /// Argon2id v19 with OWASP's parameters. Hashes a dummy password once (the stand-in for
    /// accounts that do not exist).
    pub fn new() -> Result<Self, HashError> {
        let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
            .map_err(|e| HashError(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut passwords = Self {
            argon2,
            dummy: PasswordHashString(String::new()),
        };
        let dummy = Password::new("not-a-real-password-for-timing")
            .map_err(|e| HashError(e.to_string()))?;
        passwords.dummy = passwords.hash(&dummy)?;
        Ok(passwords)
    }

    /// A fresh hash of `password` with a random salt.
    pub fn hash(&self, password: &Password) -> Result<PasswordHashString, HashError> {
        self.argon2
            .hash_password(password.bytes())
            .map(|hash| PasswordHashString(hash.to_string()))
            .map_err(|e| HashError(e.to_string()))
    }

    /// Whether `password` matches `stored`. Without a stored hash (no account, or none with a
    /// password) it verifies against the dummy hash and answers `false`, so both cost one
    /// Argon2id computation. A stored string that is not a PHC string answers `false`.
    pub fn verify(&self, password: &str, stored: Option<&PasswordHashString>) -> bool {
        let (hash, real) = match stored {
            Some(stored) => (stored, true),
            None => (&self.dummy, false),
        };
        let Ok(parsed) = PasswordHash::new(hash.as_str()) else {
            // Still spend the work, so a broken row does not answer faster.
            let _ = self.verify(password, None);
            return false;
        };
        let matched = self
            .argon2
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        matched && real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(Password::new("short").unwrap_err(), PasswordError::TooShort);
        assert_eq!(
            Password::new("1234567").unwrap_err(),
            PasswordError::TooShort
        );
        assert!(Password::new("12345678").is_ok());
        assert!(Password::new(&"x".repeat(128)).is_ok());
        assert_eq!(
            Password::new(&"x".repeat(129)).unwrap_err(),
            PasswordError::TooLong
        );
        // Characters, not bytes: eight Chinese characters are a valid password.
        assert!(Password::new("密码密码密码密码").is_ok());
        assert_eq!(
            PasswordError::TooShort.to_string(),
            "The password must have at least 8 characters."
        );
        assert!(!format!("{:?}", Password::new("hunter2hunter2").unwrap()).contains("hunter"));
    }

    #[test]
    fn hashes_verify_and_carry_the_owasp_parameters() {
        let passwords = Passwords::new().unwrap();
        let password = Password::new("correct horse battery").unwrap();
        let hash = passwords.hash(&password).unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_str()
        );
        assert!(passwords.verify("correct horse battery", Some(&hash)));
        assert!(!passwords.verify("correct horse batterx", Some(&hash)));
        // Two hashes of one password differ (random salts); both verify.
        let again = passwords.hash(&password).unwrap();
        assert_ne!(hash, again);
        assert!(passwords.verify("correct horse battery", Some(&again)));
        // No account: false, even for the dummy's own password.
        assert!(!passwords.verify("not-a-real-password-for-timing", None));
        // A broken stored string: false, not a panic.
        let broken = PasswordHashString::from_stored("$argon2id$garbage".into());
        assert!(!passwords.verify("correct horse battery", Some(&broken)));
        assert!(!format!("{hash:?}").contains("argon2id"));
    }
}
