//! The tutorial's `users` table, plus `email_messages`: the outbox of emails owed to users.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    EmailKey,
    Confirmed,
    EmailSent,
    RegisteredOn,
    ConfirmedOn,
}

#[derive(DeriveIden)]
enum EmailMessages {
    Table,
    Id,
    UserId,
    Kind,
    Recipient,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LastError,
    ProviderMessageId,
    CreatedAt,
    UpdatedAt,
    SentAt,
}

/// Longest address SMTP can carry.
const ADDRESS_LEN: u32 = 254;

// `MigrationTrait` elides `SchemaManager`'s lifetime; naming it would not match the trait.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(big_pk_auto(Users::Id))
                    .col(string_len(Users::Email, ADDRESS_LEN))
                    .col(string_len_uniq(Users::EmailKey, ADDRESS_LEN))
                    .col(boolean(Users::Confirmed).default(false))
                    .col(boolean(Users::EmailSent).default(false))
                    .col(timestamp_with_time_zone(Users::RegisteredOn))
                    .col(timestamp_with_time_zone_null(Users::ConfirmedOn))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(EmailMessages::Table)
                    .col(big_pk_auto(EmailMessages::Id))
                    .col(big_integer(EmailMessages::UserId))
                    .col(string_len(EmailMessages::Kind, 32))
                    .col(string_len(EmailMessages::Recipient, ADDRESS_LEN))
                    .col(string_len(EmailMessages::Status, 16))
                    .col(integer(EmailMessages::Attempts).default(0))
                    .col(timestamp_with_time_zone(EmailMessages::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(EmailMessages::LeaseUntil))
                    .col(text_null(EmailMessages::LastError))
                    .col(string_len_null(EmailMessages::ProviderMessageId, 255))
                    .col(timestamp_with_time_zone(EmailMessages::CreatedAt))
                    .col(timestamp_with_time_zone(EmailMessages::UpdatedAt))
                    .col(timestamp_with_time_zone_null(EmailMessages::SentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_email_messages_user_id")
                            .from(EmailMessages::Table, EmailMessages::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("idx_email_messages_status_next_attempt_at")
                    .table(EmailMessages::Table)
                    .col(EmailMessages::Status)
                    .col(EmailMessages::NextAttemptAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("idx_email_messages_user_id")
                    .table(EmailMessages::Table)
                    .col(EmailMessages::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EmailMessages::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
