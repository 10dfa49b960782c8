//! `users.mailbox_key`: the canonical inbox an address delivers to (see
//! `domain::EmailAddress::mailbox_key`), which the resend limits and the suppression list count
//! on, with an index. Existing rows are filled in from `email_key` by the same rule, in SQL.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    MailboxKey,
}

/// Longest address SMTP can carry.
const ADDRESS_LEN: u32 = 254;

/// The backfill: `email_key` (already lower case) with the `+tag` cut from the local part (not
/// when it starts with `+`; a dot left at the end goes too), and for `gmail.com` and
/// `googlemail.com` the local part's dots removed and the domain `gmail.com`. `{pos}` is the
/// backend's substring-position function.
const BACKFILL: &str = "UPDATE users SET mailbox_key = (\
     SELECT CASE WHEN d IN ('gmail.com', 'googlemail.com') \
     THEN replace(l, '.', '') || '@gmail.com' ELSE l || '@' || d END \
     FROM (SELECT CASE WHEN {pos}(lp, '+') > 1 \
     THEN rtrim(substr(lp, 1, {pos}(lp, '+') - 1), '.') ELSE lp END AS l, d \
     FROM (SELECT substr(users.email_key, 1, {pos}(users.email_key, '@') - 1) AS lp, \
     substr(users.email_key, {pos}(users.email_key, '@') + 1) AS d) AS parts) AS cut)";

// `MigrationTrait` elides `SchemaManager`'s lifetime; naming it would not match the trait.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // NOT NULL needs a default to be added to a table with rows (SQLite cannot add the
        // constraint later); every row then gets its real key, and PostgreSQL drops the default
        // so that an insert without a key fails.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(
                        ColumnDef::new(Users::MailboxKey)
                            .string_len(ADDRESS_LEN)
                            .not_null()
                            .default(""),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let pos = if backend == DbBackend::Sqlite {
            "instr"
        } else {
            "strpos"
        };
        db.execute_unprepared(&BACKFILL.replace("{pos}", pos))
            .await?;
        if backend == DbBackend::Postgres {
            db.execute_unprepared("ALTER TABLE users ALTER COLUMN mailbox_key DROP DEFAULT")
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_users_mailbox_key")
                    .table(Users::Table)
                    .col(Users::MailboxKey)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_users_mailbox_key")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::MailboxKey)
                    .to_owned(),
            )
            .await
    }
}
