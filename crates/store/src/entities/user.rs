//! The `users` table.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The address as typed (local part) with its domain normalised.
    pub email: String,
    /// The lower-cased address: the account's identity.
    #[sea_orm(unique)]
    pub email_key: String,
    /// The canonical inbox the address delivers to (`domain::MailboxKey`): the resend limits
    /// and the suppression list count on it. Indexed, not unique.
    pub mailbox_key: String,
    pub confirmed: bool,
    pub email_sent: bool,
    pub registered_on: DateTimeUtc,
    pub confirmed_on: Option<DateTimeUtc>,
    #[sea_orm(has_many)]
    pub email_messages: HasMany<super::email_message::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
