//! The `suppressions` table: mailboxes nothing is sent to.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "suppressions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The canonical mailbox key (`domain::MailboxKey`).
    #[sea_orm(unique)]
    pub mailbox_key: String,
    pub source: String,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
