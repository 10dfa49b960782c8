//! The `credentials` table: an account's password hash and second factor.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    /// An Argon2id PHC string; `None`: no password set.
    pub password_hash: Option<String>,
    pub password_changed_at: Option<DateTimeUtc>,
    /// The TOTP secret in base32; `None`: no second factor.
    pub totp_secret: Option<String>,
    /// The last time step a code was accepted for.
    pub totp_last_step: Option<i64>,
}

impl ActiveModelBehavior for ActiveModel {}
