//! `email_attempts`: one row per finished attempt to send a message (its outcome, error and the
//! provider's message id), for the delivery dashboard's history.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmailMessages {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum EmailAttempts {
    Table,
    Id,
    MessageId,
    Attempt,
    Outcome,
    Error,
    ProviderMessageId,
    FinishedAt,
}

// `MigrationTrait` elides `SchemaManager`'s lifetime; naming it would not match the trait.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EmailAttempts::Table)
                    .col(big_pk_auto(EmailAttempts::Id))
                    .col(big_integer(EmailAttempts::MessageId))
                    .col(integer(EmailAttempts::Attempt))
                    .col(string_len(EmailAttempts::Outcome, 16))
                    .col(text_null(EmailAttempts::Error))
                    .col(string_len_null(EmailAttempts::ProviderMessageId, 255))
                    .col(timestamp_with_time_zone(EmailAttempts::FinishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_email_attempts_message_id")
                            .from(EmailAttempts::Table, EmailAttempts::MessageId)
                            .to(EmailMessages::Table, EmailMessages::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_email_attempts_message_id")
                    .table(EmailAttempts::Table)
                    .col(EmailAttempts::MessageId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EmailAttempts::Table).to_owned())
            .await
    }
}
