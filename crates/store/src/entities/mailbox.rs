//! The `mailboxes` table: the confirmation-email allowance of each mailbox ever owed one (see
//! `sea::mailbox`).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mailboxes")]
pub struct Model {
    /// The canonical mailbox key (`domain::MailboxKey`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub mailbox_key: String,
    /// When the newest confirmation email to the mailbox was owed.
    pub last_owed_at: DateTimeUtc,
    /// When the current 24-hour window of the daily cap began.
    pub window_started_at: DateTimeUtc,
    /// How many were owed in that window.
    pub owed_in_window: i32,
}

impl ActiveModelBehavior for ActiveModel {}
