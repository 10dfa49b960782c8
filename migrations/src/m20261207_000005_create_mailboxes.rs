//! `mailboxes`: one row per mailbox (`users.mailbox_key`) ever owed a confirmation email, with
//! the allowance its resend limits count: when the newest was owed, and how many were owed in
//! the current 24-hour window and since when. A registration or a resend takes one email of it
//! with a single `INSERT ... ON CONFLICT (mailbox_key) DO UPDATE ... WHERE` on the primary key:
//! no lookup whose plan depends on the tables' statistics, and the row's lock orders concurrent
//! aliases of one mailbox.
//!
//! Filled in from the confirmation messages already in `email_messages`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Mailboxes {
    Table,
    MailboxKey,
    LastOwedAt,
    WindowStartedAt,
    OwedInWindow,
}

/// Longest address SMTP can carry.
const ADDRESS_LEN: u32 = 254;

/// The backfill: per mailbox, the newest confirmation message, and the window of the messages
/// of the last 24 hours (from the oldest of them; none: an empty window from the newest).
/// `$1` is the start of those 24 hours (sqlx binds `$N` on SQLite too).
const BACKFILL: &str = "INSERT INTO mailboxes \
     (mailbox_key, last_owed_at, window_started_at, owed_in_window) \
     SELECT u.mailbox_key, max(e.created_at), \
     coalesce(min(CASE WHEN e.created_at > $1 THEN e.created_at END), max(e.created_at)), \
     count(CASE WHEN e.created_at > $1 THEN 1 END) \
     FROM email_messages e JOIN users u ON u.id = e.user_id \
     WHERE e.kind = 'confirm' GROUP BY u.mailbox_key";

// `MigrationTrait` elides `SchemaManager`'s lifetime; naming it would not match the trait.
#[expect(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Mailboxes::Table)
                    .col(string_len(Mailboxes::MailboxKey, ADDRESS_LEN).primary_key())
                    .col(timestamp_with_time_zone(Mailboxes::LastOwedAt))
                    .col(timestamp_with_time_zone(Mailboxes::WindowStartedAt))
                    .col(integer(Mailboxes::OwedInWindow))
                    .to_owned(),
            )
            .await?;
        let day_ago = chrono::Utc::now() - chrono::TimeDelta::days(1);
        manager
            .get_connection()
            .execute_raw(Statement::from_sql_and_values(
                manager.get_database_backend(),
                BACKFILL,
                [day_ago.into()],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Mailboxes::Table).to_owned())
            .await
    }
}
