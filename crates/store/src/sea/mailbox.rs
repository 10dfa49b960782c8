//! The limits of one mailbox (every account whose address has the same
//! [`MailboxKey`](domain::MailboxKey)): the suppression list, the resend cooldown and the daily
//! cap, checked inside the transaction that would owe it an email.

use chrono::{DateTime, TimeDelta, Utc};
use domain::{MessageKind, ResendPolicy};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect, QueryTrait, Statement,
};

use super::Db as _;
use crate::StoreError;
use crate::entities::{email_message, suppression, user};

/// Why a mailbox is owed no email now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    Suppressed,
    CoolingDown,
    DailyCap,
}

/// What limits the mailbox `key` at `now` under `policy`, if anything: it is suppressed, the
/// newest confirmation message to any of its accounts is younger than the cooldown, or as many
/// as the daily cap were created in the last 24 hours. (Three indexed lookups.)
pub(super) async fn limit(
    txn: &DatabaseTransaction,
    key: &str,
    policy: ResendPolicy,
    now: DateTime<Utc>,
) -> Result<Option<Limit>, StoreError> {
    use email_message::Column;
    let suppressed = suppression::Entity::find()
        .filter(suppression::Column::MailboxKey.eq(key))
        .count(txn)
        .await
        .db()?;
    if suppressed > 0 {
        return Ok(Some(Limit::Suppressed));
    }
    let accounts = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::MailboxKey.eq(key))
        .into_query();
    let confirmations = || {
        email_message::Entity::find()
            .filter(Column::UserId.in_subquery(accounts.clone()))
            .filter(Column::Kind.eq(MessageKind::Confirm.as_str()))
    };
    let newest = confirmations()
        .select_only()
        .column_as(Column::CreatedAt.max(), "newest")
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(txn)
        .await
        .db()?
        .flatten();
    if newest.is_some_and(|at| now < at + policy.cooldown) {
        return Ok(Some(Limit::CoolingDown));
    }
    let today = confirmations()
        .filter(Column::CreatedAt.gt(now - TimeDelta::days(1)))
        .count(txn)
        .await
        .db()?;
    if today >= u64::from(policy.daily_cap) {
        return Ok(Some(Limit::DailyCap));
    }
    Ok(None)
}

/// On PostgreSQL, takes the transaction-scoped advisory locks of these mailbox keys (one each,
/// by `hashtext`, in ascending order so that two transactions never wait for each other in a
/// cycle). Every transaction that checks a mailbox's limits and then owes it an email, or
/// suppresses it, holds its lock first, so two registrations of two aliases of one mailbox
/// cannot both pass the check. Taken in a statement of its own, before the statements that
/// read: under READ COMMITTED each statement sees what was committed before it started. SQLite
/// needs none (`BEGIN IMMEDIATE` serialises writers).
pub(super) async fn lock(txn: &DatabaseTransaction, keys: &[&str]) -> Result<(), StoreError> {
    if keys.is_empty() || txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let keys = serde_json::Value::from(keys.to_vec()).to_string();
    // PostgreSQL evaluates a volatile function of the select list after ORDER BY.
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtext(k) AS h \
         FROM jsonb_array_elements_text($1::text::jsonb) AS k) AS locks ORDER BY h",
        [keys.into()],
    ))
    .await
    .db()?;
    Ok(())
}
