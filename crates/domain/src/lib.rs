#![doc = include_str!("../README.md")]

pub mod account;
pub mod admin_token;
pub mod altcha;
pub mod api_key;
pub mod clock;
pub mod feedback;
pub mod locale;
pub mod message;
pub mod password;
pub mod policy;
pub mod request_id;
pub mod suppression;
pub mod token;
pub mod user;
pub mod webhook;

/// Lower-case hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub use account::{
    Account, RECOVERY_CODES, Session, SessionToken, TOTP_DIGITS, TOTP_STEP_SECONDS, Totp,
    TotpError, TotpSecret, TotpState, generate_recovery_codes, recovery_code_hash,
};
pub use admin_token::{AdminToken, AdminTokenTooShort, MIN_ADMIN_TOKEN_LEN};
pub use api_key::{ApiKeyError, ApiKeys, MIN_API_KEY_LEN};
pub use clock::{Clock, ManualClock, SystemClock};
pub use confirm_email_address::{
    EmailAddress, EmailError, MAX_ADDRESS_LEN, MAX_LOCAL_LEN, MailboxKey,
};
pub use feedback::{Feedback, FeedbackKind, FeedbackOutcome, FeedbackRecord, UnknownFeedback};
pub use locale::{Locale, UnsupportedLocale};
pub use message::{MessageId, MessageKind, MessageRecord, MessageStatus, OwedMessage};
pub use password::{
    ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB, HashError, MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS, Password, PasswordError, PasswordHashString, Passwords,
};
pub use policy::{ResendPolicy, RetryPolicy};
pub use request_id::RequestId;
pub use suppression::{Suppression, SuppressionId, SuppressionSource, UnknownSource};
pub use token::{
    ConfirmationCodes, ConfirmationTokens, MalformedCode, NoSecretKey, PasswordReset,
    PasswordResetTokens, PendingTokens, StopTokens, TimedSerializer, TokenError, Verified,
    normalize_code,
};
pub use user::{User, UserId, UserSummary};
pub use webhook::{UnknownEvent, WebhookDelivery, WebhookEvent};
