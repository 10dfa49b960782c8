//! `webhook_deliveries`: what a webhook message of the outbox (`email_messages` with kind
//! `webhook`) carries besides its state: the endpoint, the event and the JSON body fixed when the
//! event happened (one row per message; gone with it).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    MessageId,
    Endpoint,
    EventType,
    Payload,
}

#[derive(DeriveIden)]
enum EmailMessages {
    Table,
    Id,
}

/// Longest endpoint URL (the settings refuse longer ones).
const URL_LEN: u32 = 2048;

// `MigrationTrait` elides `SchemaManager`'s lifetime; naming it would not match the trait.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(big_integer(WebhookDeliveries::MessageId).primary_key())
                    .col(string_len(WebhookDeliveries::Endpoint, URL_LEN))
                    .col(string_len(WebhookDeliveries::EventType, 64))
                    .col(text(WebhookDeliveries::Payload))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::MessageId)
                            .to(EmailMessages::Table, EmailMessages::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await
    }
}
