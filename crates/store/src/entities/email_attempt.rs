//! The `email_attempts` table: finished attempts to send a message.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub message_id: i64,
    pub attempt: i32,
    pub outcome: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub provider_message_id: Option<String>,
    pub finished_at: DateTimeUtc,
    #[sea_orm(
        belongs_to,
        from = "message_id",
        to = "id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    pub message: BelongsTo<super::email_message::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
