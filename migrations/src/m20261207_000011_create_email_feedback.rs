//! `email_feedback`: the bounces and complaints the provider reported (SES feedback), one row per
//! report and recipient mailbox, unique by both so a report received twice is recorded once;
//! tied to the message it is about when this service sent it (and gone with it). Plus an index
//! on `email_messages (provider_message_id)`, by which a report finds its message.
//!
//! On PostgreSQL, `CREATE INDEX` blocks writes to `email_messages` while it builds (a few
//! seconds per million rows): apply it in a quiet moment on a large database.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmailFeedback {
    Table,
    Id,
    FeedbackId,
    MailboxKey,
    MessageId,
    ProviderMessageId,
    Kind,
    Detail,
    OccurredAt,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum EmailMessages {
    Table,
    Id,
    ProviderMessageId,
}

/// Longest address SMTP can carry.
const ADDRESS_LEN: u32 = 254;
const FEEDBACK_UNIQUE: &str = "idx_email_feedback_feedback_id_mailbox_key";
const FEEDBACK_MESSAGE: &str = "idx_email_feedback_message_id";
const PROVIDER_ID: &str = "idx_email_messages_provider_message_id";

// `MigrationTrait` elides `SchemaManager`'s lifetime; naming it would not match the trait.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EmailFeedback::Table)
                    .col(big_pk_auto(EmailFeedback::Id))
                    .col(string_len(EmailFeedback::FeedbackId, 255))
                    .col(string_len(EmailFeedback::MailboxKey, ADDRESS_LEN))
                    .col(big_integer_null(EmailFeedback::MessageId))
                    .col(string_len(EmailFeedback::ProviderMessageId, 255))
                    .col(string_len(EmailFeedback::Kind, 32))
                    .col(string_len(EmailFeedback::Detail, 255))
                    .col(timestamp_with_time_zone(EmailFeedback::OccurredAt))
                    .col(timestamp_with_time_zone(EmailFeedback::ReceivedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(EmailFeedback::Table, EmailFeedback::MessageId)
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
                    .name(FEEDBACK_UNIQUE)
                    .table(EmailFeedback::Table)
                    .col(EmailFeedback::FeedbackId)
                    .col(EmailFeedback::MailboxKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(FEEDBACK_MESSAGE)
                    .table(EmailFeedback::Table)
                    .col(EmailFeedback::MessageId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(PROVIDER_ID)
                    .table(EmailMessages::Table)
                    .col(EmailMessages::ProviderMessageId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(PROVIDER_ID)
                    .table(EmailMessages::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(EmailFeedback::Table).to_owned())
            .await
    }
}
