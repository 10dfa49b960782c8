//! The `email_feedback` table: bounces and complaints the provider reported, one row per report
//! and recipient mailbox.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_feedback")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The provider's report id (SES `feedbackId`); unique with `mailbox_key`.
    pub feedback_id: String,
    /// The canonical mailbox key of the recipient (`domain::MailboxKey`).
    pub mailbox_key: String,
    /// The message it is about, when this service sent it; deleted with it.
    pub message_id: Option<i64>,
    pub provider_message_id: String,
    pub kind: String,
    pub detail: String,
    pub occurred_at: DateTimeUtc,
    pub received_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
