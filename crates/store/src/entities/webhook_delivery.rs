//! The `webhook_deliveries` table: the endpoint, event and body of a webhook message.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// The outbox message (`email_messages.id`, kind `webhook`); deleted with it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: i64,
    pub endpoint: String,
    pub event_type: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
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
