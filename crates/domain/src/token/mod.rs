//! The service's tokens over [`itsdangerous_compat`]: the tutorial's confirmation links and the
//! stop links, whose payload is an email address.

use serde_json::Value;

mod code;

pub use code::{ConfirmationCodes, MalformedCode, normalize as normalize_code};

pub use itsdangerous_compat::{
    MAX_JSON_DEPTH, MAX_PAYLOAD_LEN, NoSecretKey, TimedSerializer, TokenError, Verified,
    python_json,
};

/// The tutorial's confirmation links: the payload is the email address as a JSON string and
/// the salt is [`ConfirmationTokens::SALT`], so Flask's
/// `URLSafeTimedSerializer(SECRET_KEY).loads(token, salt="email-confirm-salt", max_age=3600)`
/// reads them and vice versa.
#[derive(Debug, Clone)]
pub struct ConfirmationTokens {
    serializer: TimedSerializer,
    /// The same keys with the stop-link salt, for [`Self::stop_tokens`].
    stop: TimedSerializer,
    /// The same keys with the pending-address salt.
    pending: PendingTokens,
    /// The six-digit codes beside the links, from the same keys.
    codes: ConfirmationCodes,
    /// The same keys with the password-reset salt.
    reset: PasswordResetTokens,
}

impl ConfirmationTokens {
    /// The salt of the tutorial's confirmation tokens.
    pub const SALT: &'static str = "email-confirm-salt";

    /// Confirmation tokens with the given secret keys, oldest first; the last one signs.
    pub fn new<K: AsRef<[u8]>>(secret_keys: &[K]) -> Result<Self, NoSecretKey> {
        Ok(Self {
            serializer: TimedSerializer::new(secret_keys, Self::SALT)?,
            stop: TimedSerializer::new(secret_keys, StopTokens::SALT)?,
            pending: PendingTokens {
                serializer: TimedSerializer::new(secret_keys, PendingTokens::SALT)?,
            },
            codes: ConfirmationCodes::new(secret_keys),
            reset: PasswordResetTokens::new(secret_keys)?,
        })
    }

    /// A confirmation token for `email`, issued at `now_unix` (a negative time counts as 0).
    pub fn issue(&self, email: &crate::EmailAddress, now_unix: i64) -> String {
        issue_address(&self.serializer, email, now_unix)
    }

    /// Verifies a confirmation token and returns the email address it was issued for, as
    /// signed (it is not re-parsed here). A payload that is not a JSON string is
    /// [`TokenError::Malformed`].
    pub fn check(
        &self,
        token: &str,
        max_age: Option<u64>,
        now_unix: i64,
    ) -> Result<Verified<String>, TokenError> {
        check_address(&self.serializer, token, max_age, now_unix)
    }

    /// The stop-link tokens over the same secret keys (see [`StopTokens`]).
    pub fn stop_tokens(&self) -> StopTokens {
        StopTokens {
            serializer: self.stop.clone(),
        }
    }

    /// The pending-address cookies over the same secret keys (see [`PendingTokens`]).
    pub fn pending_tokens(&self) -> &PendingTokens {
        &self.pending
    }

    /// The password-reset links over the same secret keys (see [`PasswordResetTokens`]).
    pub fn reset_tokens(&self) -> &PasswordResetTokens {
        &self.reset
    }

    /// The six-digit codes of confirmation emails, from the same secret keys.
    pub fn codes(&self) -> &ConfirmationCodes {
        &self.codes
    }
}

/// The value of the cookie a registration sets so that the page for the emailed code knows
/// the address without asking: the address as a JSON string, signed with the salt
/// [`PendingTokens::SALT`] (never a confirmation or a stop token).
#[derive(Debug, Clone)]
pub struct PendingTokens {
    serializer: TimedSerializer,
}

impl PendingTokens {
    /// The salt of pending-address cookies.
    pub const SALT: &'static str = "pending-address-salt";

    /// A cookie value for `email`, issued at `now_unix`.
    pub fn issue(&self, email: &crate::EmailAddress, now_unix: i64) -> String {
        issue_address(&self.serializer, email, now_unix)
    }

    /// The address of a cookie value no older than `max_age` seconds.
    pub fn check(
        &self,
        token: &str,
        max_age: u64,
        now_unix: i64,
    ) -> Result<Verified<String>, TokenError> {
        check_address(&self.serializer, token, Some(max_age), now_unix)
    }
}

/// The "I did not sign up: stop emails to this address" links of confirmation emails: the same
/// format and keys as [`ConfirmationTokens`] (payload the address as a JSON string), with the
/// salt [`StopTokens::SALT`], so that a confirmation token is never a stop token or the other
/// way round. A stop link stays valid for [`StopTokens::MAX_AGE`].
#[derive(Debug, Clone)]
pub struct StopTokens {
    serializer: TimedSerializer,
}

impl StopTokens {
    /// The salt of stop-link tokens.
    pub const SALT: &'static str = "email-stop-salt";
    /// How long a stop link stays valid: 30 days.
    pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

    /// Stop-link tokens with the given secret keys, oldest first; the last one signs.
    /// [`ConfirmationTokens::stop_tokens`] gives the same from the confirmation tokens' keys.
    pub fn new<K: AsRef<[u8]>>(secret_keys: &[K]) -> Result<Self, NoSecretKey> {
        Ok(Self {
            serializer: TimedSerializer::new(secret_keys, Self::SALT)?,
        })
    }

    /// A stop-link token for `email`, issued at `now_unix` (a negative time counts as 0).
    pub fn issue(&self, email: &crate::EmailAddress, now_unix: i64) -> String {
        issue_address(&self.serializer, email, now_unix)
    }

    /// Verifies a stop-link token no older than [`Self::MAX_AGE`] (and not from the future)
    /// and returns the address it was issued for, as signed (not re-parsed here). A payload
    /// that is not a JSON string is [`TokenError::Malformed`].
    pub fn check(&self, token: &str, now_unix: i64) -> Result<Verified<String>, TokenError> {
        check_address(
            &self.serializer,
            token,
            Some(Self::MAX_AGE.as_secs()),
            now_unix,
        )
    }
}

/// The links of password-reset emails: the payload is `[email, binding]`, where `binding` is
/// [`crate::PasswordHashString::binding`] of the account's password when the email was made,
/// signed with the salt [`PasswordResetTokens::SALT`]. A link works for
/// [`PasswordResetTokens::MAX_AGE`], and only while the account's password is the one it was
/// made for: setting a password through it changes the binding, so it works once, and any other
/// password change ends it too.
#[derive(Debug, Clone)]
pub struct PasswordResetTokens {
    serializer: TimedSerializer,
}

/// A verified password-reset token: the address and the binding it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReset {
    pub email: String,
    pub binding: String,
}

impl PasswordResetTokens {
    /// The salt of password-reset tokens.
    pub const SALT: &'static str = "password-reset";
    /// How long a reset link stays valid: 30 minutes.
    pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

    /// Reset tokens with the given secret keys, oldest first; the last one signs.
    pub fn new<K: AsRef<[u8]>>(secret_keys: &[K]) -> Result<Self, NoSecretKey> {
        Ok(Self {
            serializer: TimedSerializer::new(secret_keys, Self::SALT)?,
        })
    }

    /// A reset token for `email` whose password now has `binding`, issued at `now_unix`.
    pub fn issue(&self, email: &crate::EmailAddress, binding: &str, now_unix: i64) -> String {
        let payload = Value::Array(vec![
            Value::String(email.as_str().to_owned()),
            Value::String(binding.to_owned()),
        ]);
        self.serializer
            .sign(&payload, u64::try_from(now_unix).unwrap_or(0))
    }

    /// The address and binding of a genuine token issued at most [`Self::MAX_AGE`] ago. (Whether
    /// the binding is still the account's is the caller's to check.)
    pub fn check(&self, token: &str, now_unix: i64) -> Result<PasswordReset, TokenError> {
        let Verified { payload, .. } =
            self.serializer
                .verify(token, Some(Self::MAX_AGE.as_secs()), now_unix)?;
        match payload {
            Value::Array(items) => match items.as_slice() {
                [Value::String(email), Value::String(binding)] => Ok(PasswordReset {
                    email: email.clone(),
                    binding: binding.clone(),
                }),
                _ => Err(TokenError::Malformed),
            },
            _ => Err(TokenError::Malformed),
        }
    }
}

/// A token whose payload is `email` as a JSON string, issued at `now_unix` (negative: 0).
fn issue_address(
    serializer: &TimedSerializer,
    email: &crate::EmailAddress,
    now_unix: i64,
) -> String {
    let timestamp = u64::try_from(now_unix).unwrap_or(0);
    serializer.sign(&Value::String(email.as_str().to_owned()), timestamp)
}

/// Verifies a token whose payload must be a JSON string, and returns the string.
fn check_address(
    serializer: &TimedSerializer,
    token: &str,
    max_age: Option<u64>,
    now_unix: i64,
) -> Result<Verified<String>, TokenError> {
    let Verified { payload, issued_at } = serializer.verify(token, max_age, now_unix)?;
    match payload {
        Value::String(email) => Ok(Verified {
            payload: email,
            issued_at,
        }),
        _ => Err(TokenError::Malformed),
    }
}

#[cfg(test)]
mod tests;
