//! `email_messages.code_failures`: wrong tries of the six-digit code printed in a confirmation
//! email (the code itself is derived from the message id under the secret key and never
//! stored). At `ConfirmationCodes::MAX_FAILURES` the code stops working.
//!
//! Adding a column with a constant default rewrites nothing on PostgreSQL 11+ or SQLite.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmailMessages {
    Table,
    CodeFailures,
}

// `MigrationTrait` elides `SchemaManager`'s lifetime; naming it would not match the trait.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EmailMessages::Table)
                    .add_column(
                        ColumnDef::new(EmailMessages::CodeFailures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EmailMessages::Table)
                    .drop_column(EmailMessages::CodeFailures)
                    .to_owned(),
            )
            .await
    }
}
