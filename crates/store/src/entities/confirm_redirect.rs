//! The `confirm_redirects` table: where an account's confirmation sends the visitor.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "confirm_redirects")]
pub struct Model {
    /// The user (`users.id`); deleted with it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    /// The URL, `email_confirmed=1` already in its query.
    pub url: String,
    #[sea_orm(
        belongs_to,
        from = "user_id",
        to = "id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    pub user: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
