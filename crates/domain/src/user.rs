//! A registered user.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::EmailAddress;

/// The database id of a user (the tutorial's integer `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A registered user, as the tutorial's `users` table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: EmailAddress,
    pub confirmed: bool,
    /// Set once a confirmation email has actually been handed to the provider.
    pub email_sent: bool,
    pub registered_on: DateTime<Utc>,
    pub confirmed_on: Option<DateTime<Utc>>,
}

/// A user as a list of users shows one: the columns of the tutorial's "Registered Users" table,
/// without the timestamps a [`User`] carries (a list reads many rows, so it reads no more of
/// each than it shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub id: UserId,
    pub email: EmailAddress,
    pub confirmed: bool,
    pub email_sent: bool,
}

impl From<User> for UserSummary {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            confirmed: user.confirmed,
            email_sent: user.email_sent,
        }
    }
}
