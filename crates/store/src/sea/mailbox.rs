//! The limits of one mailbox (every account whose address has the same
//! [`MailboxKey`](domain::MailboxKey)): the suppression list, the resend cooldown and the daily
//! cap, checked inside the transaction that would owe it an email.
//!
//! The cooldown and the cap count on the mailbox's row in `mailboxes` (migration 5): when its
//! newest email was owed, and how many were owed in its current 24-hour window (a window starts
//! with the first email owed after the previous one ended). Taking an email of that allowance
//! is one `INSERT ... ON CONFLICT (mailbox_key) DO UPDATE ... WHERE` ([`TAKE`]):
//!
//! - it goes through the primary key whatever the planner knows: a lookup over the mailbox's
//!   accounts and messages is planned from statistics, and a prepared statement's generic plan
//!   made while the tables were nearly empty (a new deployment, the benchmark) scanned both
//!   tables for every registration until the next ANALYZE (registrations fell from 6,971/s to
//!   1,091/s at 8 connections and from 12,903/s to 509/s at 32 in `bench/run`; see
//!   BENCHMARKS.md);
//! - it orders concurrent aliases of one mailbox without any other lock: the second waits on
//!   the row the first inserted or updated, then evaluates the `WHERE` against the committed
//!   row (PostgreSQL's `ON CONFLICT` reads the newest version; SQLite's writers are serial).

use chrono::{DateTime, TimeDelta, Utc};
use domain::ResendPolicy;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    Statement,
};

use super::Db as _;
use crate::StoreError;
use crate::entities::{mailbox, suppression};

/// Why a mailbox is owed no email now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    Suppressed,
    CoolingDown,
    DailyCap,
}

/// The `ON CONFLICT` clause that takes one email of a mailbox's allowance, after an `INSERT
/// INTO mailboxes AS b (mailbox_key, last_owed_at, window_started_at, owed_in_window)` of
/// `(key, $2, $2, 1)` rows: `$2` is now, `$3` the start of the 24 hours before it, `$4` now less
/// the cooldown, `$5` the daily cap. An existing row is updated only if the cooldown has passed
/// and the window has ended or is under the cap; `RETURNING mailbox_key` then lists the
/// mailboxes that took one. Also used inside the PostgreSQL registration statement.
pub(super) const TAKE: &str = "ON CONFLICT (mailbox_key) DO UPDATE SET last_owed_at = $2, \
     window_started_at = CASE WHEN b.window_started_at <= $3 THEN $2 \
     ELSE b.window_started_at END, \
     owed_in_window = CASE WHEN b.window_started_at <= $3 THEN 1 \
     ELSE b.owed_in_window + 1 END \
     WHERE b.last_owed_at <= $4 AND (b.window_started_at <= $3 OR b.owed_in_window < $5) \
     RETURNING mailbox_key";

/// The values of [`TAKE`]'s `$2` to `$5`, after the statement's own `$1`.
pub(super) fn take_values(policy: ResendPolicy, now: DateTime<Utc>) -> [sea_orm::Value; 4] {
    [
        now.into(),
        (now - TimeDelta::days(1)).into(),
        (now - policy.cooldown).into(),
        i64::from(policy.daily_cap).into(),
    ]
}

/// Whether mailbox `key` is on the suppression list.
pub(super) async fn is_suppressed(
    txn: &DatabaseTransaction,
    key: &str,
) -> Result<bool, StoreError> {
    let suppressed = suppression::Entity::find()
        .filter(suppression::Column::MailboxKey.eq(key))
        .count(txn)
        .await
        .db()?;
    Ok(suppressed > 0)
}

/// Takes one email of the allowance of mailbox `key` at `now` under `policy`, unless something
/// limits it: it is suppressed, its newest email is younger than the cooldown, or its window
/// already holds the daily cap. Two statements on the primary keys (the suppression list, the
/// allowance); a third only to tell which limit when it took none.
pub(super) async fn take(
    txn: &DatabaseTransaction,
    key: &str,
    policy: ResendPolicy,
    now: DateTime<Utc>,
) -> Result<Option<Limit>, StoreError> {
    if is_suppressed(txn, key).await? {
        return Ok(Some(Limit::Suppressed));
    }
    let [now_v, day_ago, cooled, cap] = take_values(policy, now);
    let taken = txn
        .query_all_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            format!(
                "INSERT INTO mailboxes AS b \
                 (mailbox_key, last_owed_at, window_started_at, owed_in_window) \
                 VALUES ($1, $2, $2, 1) {TAKE}"
            ),
            [key.into(), now_v, day_ago, cooled, cap],
        ))
        .await
        .db()?;
    if !taken.is_empty() {
        return Ok(None);
    }
    let row = mailbox::Entity::find_by_id(key).one(txn).await.db()?;
    Ok(Some(match row {
        Some(row) if now < row.last_owed_at + policy.cooldown => Limit::CoolingDown,
        _ => Limit::DailyCap,
    }))
}
