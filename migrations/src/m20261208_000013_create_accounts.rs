//! Accounts a person signs in to (issue 24): `credentials` (the password hash and second factor
//! of an account, one row per user that has either), `sessions` (signed-in browsers, by the
//! SHA-256 of their cookie) and `recovery_codes` (the hashed one-time codes of the second
//! factor). All three go with their user.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Credentials {
    Table,
    UserId,
    PasswordHash,
    PasswordChangedAt,
    TotpSecret,
    TotpLastStep,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

const SESSIONS_USER: &str = "idx_sessions_user_id";
const SESSIONS_EXPIRES: &str = "idx_sessions_expires_at";
const RECOVERY_UNIQUE: &str = "idx_recovery_codes_user_id_code_hash";

fn to_user(table: impl IntoIden, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .on_update(ForeignKeyAction::Cascade)
        .to_owned()
}

// `MigrationTrait` elides `SchemaManager`'s lifetime; naming it would not match the trait.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Credentials::Table)
                    .col(big_integer(Credentials::UserId).primary_key())
                    .col(string_len_null(Credentials::PasswordHash, 255))
                    .col(timestamp_with_time_zone_null(
                        Credentials::PasswordChangedAt,
                    ))
                    .col(string_len_null(Credentials::TotpSecret, 64))
                    .col(big_integer_null(Credentials::TotpLastStep))
                    .foreign_key(&mut to_user(Credentials::Table, Credentials::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string_len(Sessions::Id, 64).primary_key())
                    .col(big_integer(Sessions::UserId))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .foreign_key(&mut to_user(Sessions::Table, Sessions::UserId))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            (SESSIONS_USER, Sessions::UserId),
            (SESSIONS_EXPIRES, Sessions::ExpiresAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Sessions::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(big_pk_auto(RecoveryCodes::Id))
                    .col(big_integer(RecoveryCodes::UserId))
                    .col(string_len(RecoveryCodes::CodeHash, 64))
                    .col(timestamp_with_time_zone_null(RecoveryCodes::UsedAt))
                    .foreign_key(&mut to_user(RecoveryCodes::Table, RecoveryCodes::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(RECOVERY_UNIQUE)
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .col(RecoveryCodes::CodeHash)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RecoveryCodes::Table.into_iden(),
            Sessions::Table.into_iden(),
            Credentials::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
