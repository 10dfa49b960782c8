//! `confirm_redirects`: where an account's confirmation sends the visitor, when the application
//! that registered it through the JSON API asked for a page of its own (one row per user at
//! most; gone with the user).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConfirmRedirects {
    Table,
    UserId,
    Url,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

/// Longest redirect URL accepted (the API refuses longer ones).
const URL_LEN: u32 = 2048;

// `MigrationTrait` elides `SchemaManager`'s lifetime; naming it would not match the trait.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConfirmRedirects::Table)
                    .col(big_integer(ConfirmRedirects::UserId).primary_key())
                    .col(string_len(ConfirmRedirects::Url, URL_LEN))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ConfirmRedirects::Table, ConfirmRedirects::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConfirmRedirects::Table).to_owned())
            .await
    }
}
