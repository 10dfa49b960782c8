//! Indexes for retention (the sweeper's deletes read through them, never the whole table):
//! `email_messages (status, updated_at)` finds the oldest sent, dead or cancelled messages, and
//! `users (confirmed, registered_on)` the oldest unconfirmed accounts.
//!
//! On PostgreSQL, `CREATE INDEX` blocks writes to its table while it builds (a few seconds per
//! million rows): apply it in a quiet moment on a large database.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmailMessages {
    Table,
    Status,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Confirmed,
    RegisteredOn,
}

const MESSAGES_INDEX: &str = "idx_email_messages_status_updated_at";
const USERS_INDEX: &str = "idx_users_confirmed_registered_on";

// `MigrationTrait` elides `SchemaManager`'s lifetime; naming it would not match the trait.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(MESSAGES_INDEX)
                    .table(EmailMessages::Table)
                    .col(EmailMessages::Status)
                    .col(EmailMessages::UpdatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(USERS_INDEX)
                    .table(Users::Table)
                    .col(Users::Confirmed)
                    .col(Users::RegisteredOn)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(USERS_INDEX)
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(MESSAGES_INDEX)
                    .table(EmailMessages::Table)
                    .to_owned(),
            )
            .await
    }
}
