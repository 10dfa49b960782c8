#![doc = include_str!("../README.md")]

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_users_and_email_messages;
mod m20261121_000002_create_email_attempts;
mod m20261201_000003_add_users_mailbox_key;
mod m20261201_000004_create_suppressions;
mod m20261207_000005_create_mailboxes;
mod m20261207_000006_create_confirm_redirects;
mod m20261207_000007_create_webhook_deliveries;
mod m20261207_000008_add_retention_indexes;
mod m20261207_000009_add_code_failures;
mod m20261207_000010_add_users_reminded_at;
mod m20261207_000011_create_email_feedback;
mod m20261207_000012_add_users_locale;
mod m20261208_000013_create_accounts;

/// Every migration of the service, oldest first. Append new ones at the end; never edit, reorder
/// or remove one that has been released.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_users_and_email_messages::Migration),
            Box::new(m20261121_000002_create_email_attempts::Migration),
            Box::new(m20261201_000003_add_users_mailbox_key::Migration),
            Box::new(m20261201_000004_create_suppressions::Migration),
            Box::new(m20261207_000005_create_mailboxes::Migration),
            Box::new(m20261207_000006_create_confirm_redirects::Migration),
            Box::new(m20261207_000007_create_webhook_deliveries::Migration),
            Box::new(m20261207_000008_add_retention_indexes::Migration),
            Box::new(m20261207_000009_add_code_failures::Migration),
            Box::new(m20261207_000010_add_users_reminded_at::Migration),
            Box::new(m20261207_000011_create_email_feedback::Migration),
            Box::new(m20261207_000012_add_users_locale::Migration),
            Box::new(m20261208_000013_create_accounts::Migration),
        ]
    }
}
