//! SeaORM entities for the tables created by the `migration` crate. Private to this crate: the
//! rest of the service sees only domain types.

pub(crate) mod confirm_redirect;
pub(crate) mod credential;
pub(crate) mod email_attempt;
pub(crate) mod email_feedback;
pub(crate) mod email_message;
pub(crate) mod mailbox;
pub(crate) mod recovery_code;
pub(crate) mod session;
pub(crate) mod suppression;
pub(crate) mod user;
pub(crate) mod webhook_delivery;
