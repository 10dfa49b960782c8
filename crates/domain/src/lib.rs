#![doc = include_str!("../README.md")]

pub mod clock;
pub mod email;
pub mod message;
pub mod request_id;
pub mod token;
pub mod user;

pub use clock::{Clock, ManualClock, SystemClock};
pub use email::{EmailAddress, EmailError, MAX_ADDRESS_LEN, MAX_LOCAL_LEN};
pub use message::{MessageId, MessageKind, MessageRecord, MessageStatus, OwedMessage};
pub use request_id::RequestId;
pub use token::{ConfirmationTokens, NoSecretKey, TimedSerializer, TokenError, Verified};
pub use user::{User, UserId, UserSummary};
