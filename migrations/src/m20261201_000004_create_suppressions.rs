//! `suppressions`: the mailboxes nothing is sent to any more (one row per mailbox key), with why
//! (`stop_link`, `operator`) and since when.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Suppressions {
    Table,
    Id,
    MailboxKey,
    Source,
    CreatedAt,
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
                    .table(Suppressions::Table)
                    .col(big_pk_auto(Suppressions::Id))
                    .col(string_len_uniq(Suppressions::MailboxKey, ADDRESS_LEN))
                    .col(string_len(Suppressions::Source, 32))
                    .col(timestamp_with_time_zone(Suppressions::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Suppressions::Table).to_owned())
            .await
    }
}
