//! [`UserStore`] on the SeaORM connection.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use domain::{
    ConfirmationCodes, EmailAddress, Locale, MessageId, MessageKind, MessageStatus, ResendPolicy,
    UserSummary, WebhookEvent,
};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, NotSet,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
};

use super::mailbox::{self, Limit};
use super::rows::{
    OWED, SummaryColumns, is_unique_violation, queued_message, summary_from_columns, ts,
    user_from_model,
};
use super::webhooks::{self, Event, rfc3339};
use super::{Db as _, Ending, SeaStore, detached, postgres};
use crate::entities::{confirm_redirect, email_message, user};
use crate::{
    CodeCandidate, ConfirmOutcome, MAX_CODE_CANDIDATES, Registration, Resend, StoreError, UserStore,
};

/// How far the clock of the process that issued a confirmation token may lag behind the clock
/// of the one that registered the account (see [`UserStore::confirm`]).
pub const CLOCK_SKEW_TOLERANCE: TimeDelta = TimeDelta::seconds(60);

/// A link issued at `issued_at` (whole seconds) is for an account registered before this: tokens
/// carry whole seconds, and the worker that issued the token may run on a host whose clock is a
/// little behind the server's that registered the account, so a link is for this account if it
/// was issued no earlier than [`CLOCK_SKEW_TOLERANCE`] before it.
pub(super) fn registered_before(issued_at: DateTime<Utc>) -> DateTime<Utc> {
    ts(issued_at + TimeDelta::seconds(1) + CLOCK_SKEW_TOLERANCE)
}

/// Inserts a `queued` confirmation message for `user_id`, due at `now`.
async fn owe_confirmation(
    txn: &DatabaseTransaction,
    user_id: i64,
    recipient: &str,
    now: DateTime<Utc>,
) -> Result<MessageId, StoreError> {
    let message = queued_message(user_id, MessageKind::Confirm, recipient, now)
        .insert(txn)
        .await
        .db()?;
    Ok(MessageId(message.id))
}

/// [`UserStore::register`] through SeaORM (the SQLite path), in its write transaction: the
/// user, then the message if the mailbox's limits allow it.
async fn register_in(
    txn: &DatabaseTransaction,
    email: &EmailAddress,
    locale: Locale,
    policy: ResendPolicy,
    now: DateTime<Utc>,
) -> Result<Ending<Registration>, StoreError> {
    let key = email.key();
    let mailbox_key = email.mailbox_key();
    let existing = user::Entity::find()
        .filter(user::Column::EmailKey.eq(key.as_str()))
        .one(txn)
        .await
        .db()?;
    if existing.is_some() {
        return Ok(Ending::Rollback(Registration::AlreadyRegistered));
    }
    let inserted = user::ActiveModel {
        id: NotSet,
        email: Set(email.as_str().to_owned()),
        email_key: Set(key),
        mailbox_key: Set(mailbox_key.as_str().to_owned()),
        confirmed: Set(false),
        email_sent: Set(false),
        registered_on: Set(now),
        confirmed_on: Set(None),
    }
    .insert(txn)
    .await;
    let user_row = match inserted {
        Ok(row) => row,
        // Someone registered the same address between our check and our insert.
        Err(e) if is_unique_violation(&e) => {
            return Ok(Ending::Rollback(Registration::AlreadyRegistered));
        }
        Err(e) => return Err(StoreError::from_db(e)),
    };
    let user_id = user_row.id;
    user::Entity::update_many()
        .col_expr(locale_column(), Expr::value(locale.as_str()))
        .filter(user::Column::Id.eq(user_id))
        .exec(txn)
        .await
        .db()?;
    let user = user_from_model(user_row)?;
    if let Some(limit) = mailbox::take(txn, mailbox_key.as_str(), policy, now).await? {
        tracing::debug!(user_id = %user.id, to = %email.masked(), ?limit, "registered; no email owed");
        return Ok(Ending::Commit(Registration::CreatedWithoutEmail { user }));
    }
    let message = owe_confirmation(txn, user_id, email.as_str(), now).await?;
    tracing::debug!(user_id = %user.id, message_id = %message, to = %email.masked(), "registered");
    Ok(Ending::Commit(Registration::Created { user, message }))
}

/// The body of [`UserStore::resend`], inside its write transaction. On PostgreSQL the user's row
/// is locked (`FOR UPDATE`), so concurrent resends for one account run one after the other, and
/// the mailbox's allowance row orders them with registrations and resends of its other accounts
/// (see [`mailbox::take`]); SQLite's `BEGIN IMMEDIATE` already serialises writers. Only a queued
/// email is committed.
async fn resend_in(
    txn: &DatabaseTransaction,
    email: &EmailAddress,
    policy: ResendPolicy,
    now: DateTime<Utc>,
    sqlite: bool,
) -> Result<Ending<Resend>, StoreError> {
    use email_message::Column;
    let mut find = user::Entity::find().filter(user::Column::EmailKey.eq(email.key()));
    if !sqlite {
        find = find.lock_exclusive();
    }
    let Some(account) = find.one(txn).await.db()? else {
        return Ok(Ending::Rollback(Resend::NotRegistered));
    };
    if account.confirmed {
        return Ok(Ending::Rollback(Resend::AlreadyConfirmed));
    }
    let pending = email_message::Entity::find()
        .filter(Column::UserId.eq(account.id))
        .filter(Column::Kind.eq(MessageKind::Confirm.as_str()))
        .filter(Column::Status.is_in(OWED))
        .count(txn)
        .await
        .db()?;
    if pending > 0 {
        return Ok(Ending::Rollback(Resend::Pending));
    }
    // The limits of the mailbox the account's address delivers to (the key of the address as
    // stored is the key of the one given: they differ at most in case).
    match mailbox::take(txn, &account.mailbox_key, policy, now).await? {
        Some(Limit::Suppressed) => return Ok(Ending::Rollback(Resend::Suppressed)),
        Some(Limit::CoolingDown) => return Ok(Ending::Rollback(Resend::CoolingDown)),
        Some(Limit::DailyCap) => return Ok(Ending::Rollback(Resend::DailyCapReached)),
        None => {}
    }
    // To the address as the account has it, whatever case the form used.
    let message = owe_confirmation(txn, account.id, &account.email, now).await?;
    Ok(Ending::Commit(Resend::Queued(message)))
}

/// The `account.registered` events of the accounts `answers` created.
fn registered_events(answers: &[Registration], now: DateTime<Utc>) -> Vec<Event> {
    answers
        .iter()
        .filter_map(|answer| match answer {
            Registration::Created { user, .. } | Registration::CreatedWithoutEmail { user } => {
                Some(Event::new(
                    user.id.0,
                    user.email.as_str(),
                    WebhookEvent::AccountRegistered,
                    [("registered_at", rfc3339(now).into())],
                ))
            }
            Registration::AlreadyRegistered => None,
        })
        .collect()
}

/// The `account.confirmed` events of the accounts with these keys (those just confirmed).
async fn confirmed_events(
    db: &impl ConnectionTrait,
    keys: Vec<String>,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let accounts = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::Email)
        .filter(user::Column::EmailKey.is_in(keys))
        .into_tuple::<(i64, String)>()
        .all(db)
        .await
        .db()?;
    Ok(accounts
        .into_iter()
        .map(|(id, email)| {
            Event::new(
                id,
                &email,
                WebhookEvent::AccountConfirmed,
                [("confirmed_at", rfc3339(now).into())],
            )
        })
        .collect())
}

/// [`UserStore::confirm`] on `db` (a connection, or a transaction that also owes its event).
async fn confirm_on(
    db: &impl ConnectionTrait,
    email: &EmailAddress,
    issued_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<ConfirmOutcome, StoreError> {
    let key = email.key();
    let result = user::Entity::update_many()
        .col_expr(user::Column::Confirmed, Expr::value(true))
        .col_expr(user::Column::ConfirmedOn, Expr::value(ts(now)))
        .filter(user::Column::EmailKey.eq(key.as_str()))
        .filter(user::Column::Confirmed.eq(false))
        .filter(user::Column::RegisteredOn.lt(registered_before(issued_at)))
        .exec(db)
        .await
        .db()?;
    if result.rows_affected > 0 {
        return Ok(ConfirmOutcome::Confirmed);
    }
    let existing = user::Entity::find()
        .select_only()
        .column(user::Column::Confirmed)
        .filter(user::Column::EmailKey.eq(key))
        .into_tuple::<bool>()
        .one(db)
        .await
        .db()?;
    Ok(match existing {
        None => ConfirmOutcome::NotFound,
        Some(true) => ConfirmOutcome::AlreadyConfirmed,
        Some(false) => ConfirmOutcome::Stale,
    })
}

impl SeaStore {
    /// [`postgres::register_distinct`] as a statement of its own (no transaction around it: it
    /// is atomic alone), on a task of its own so that a caller who stops waiting cannot cut it
    /// off.
    async fn register_distinct(
        &self,
        emails: Vec<(EmailAddress, Locale)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Registration>, StoreError> {
        let policy = self.registration_policy;
        if self.has_webhooks() {
            let endpoints = self.webhooks.endpoints.clone();
            let (answers, ids) = self
                .write(move |txn| {
                    Box::pin(async move {
                        let answers =
                            postgres::register_distinct(txn, &emails, policy, now).await?;
                        let events = registered_events(&answers, now);
                        let ids = webhooks::enqueue(txn, &endpoints, &events, now).await?;
                        Ok(Ending::Commit((answers, ids)))
                    })
                })
                .await?;
            self.notify_webhooks(ids);
            return Ok(answers);
        }
        let db = self.db.clone();
        detached(async move { postgres::register_distinct(&db, &emails, policy, now).await }).await
    }

    /// [`postgres::confirm_distinct`], with the `account.confirmed` events in its transaction
    /// when webhooks are on.
    async fn confirm_distinct(
        &self,
        links: &[(&EmailAddress, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, ConfirmOutcome>, StoreError> {
        if !self.has_webhooks() {
            return postgres::confirm_distinct(&self.db, links, now).await;
        }
        let links: Vec<(EmailAddress, DateTime<Utc>)> =
            links.iter().map(|(e, t)| ((*e).clone(), *t)).collect();
        let endpoints = self.webhooks.endpoints.clone();
        let (answers, ids) = self
            .write(move |txn| {
                Box::pin(async move {
                    let links: Vec<(&EmailAddress, DateTime<Utc>)> =
                        links.iter().map(|(e, t)| (e, *t)).collect();
                    let answers = postgres::confirm_distinct(txn, &links, now).await?;
                    let confirmed = answers
                        .iter()
                        .filter(|(_, outcome)| **outcome == ConfirmOutcome::Confirmed)
                        .map(|(key, _)| key.clone())
                        .collect();
                    let events = confirmed_events(txn, confirmed, now).await?;
                    let ids = webhooks::enqueue(txn, &endpoints, &events, now).await?;
                    Ok(Ending::Commit((answers, ids)))
                })
            })
            .await?;
        self.notify_webhooks(ids);
        Ok(answers)
    }

    /// [`UserStore::register_many`] on PostgreSQL: one statement for the first entry of each
    /// key and each mailbox (see [`postgres::register_distinct`]); a later entry of a key
    /// already in the batch is `AlreadyRegistered`, and a later alias of a mailbox already in
    /// the batch is registered on its own afterwards, so it sees the first one's email.
    async fn register_many_postgres(
        &self,
        accounts: Vec<(EmailAddress, Locale)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Registration>, StoreError> {
        let mut keys = HashSet::new();
        let mut mailboxes = HashSet::new();
        // For each entry: Some(true) in the statement, Some(false) on its own, None a repeat.
        let plan: Vec<Option<bool>> = accounts
            .iter()
            .map(|(e, _)| {
                keys.insert(e.key())
                    .then(|| mailboxes.insert(e.mailbox_key()))
            })
            .collect();
        let distinct: Vec<(EmailAddress, Locale)> = accounts
            .iter()
            .zip(&plan)
            .filter(|(_, plan)| **plan == Some(true))
            .map(|(account, _)| account.clone())
            .collect();
        let mut answers = self.register_distinct(distinct, now).await?.into_iter();
        let mut out = Vec::with_capacity(accounts.len());
        for ((email, locale), plan) in accounts.iter().zip(plan) {
            out.push(match plan {
                Some(true) => answers.next().ok_or_else(|| {
                    StoreError::Corrupt("a registration batch lost an answer".into())
                })?,
                Some(false) => self.register(email, *locale, now).await?,
                None => Registration::AlreadyRegistered,
            });
        }
        Ok(out)
    }
}

/// `email_messages.code_failures` (migration 9): wrong tries of the email's code. Only the two
/// code queries touch it, by name: it is not in the entity, so the outbox's other statements
/// (and their `RETURNING` lists) stay as they were.
fn code_failures() -> sea_orm::sea_query::Alias {
    sea_orm::sea_query::Alias::new("code_failures")
}

/// `users.reminded_at` (migration 10): when the account's reminder was claimed. Out of the
/// entity for the same reason as [`code_failures`].
fn reminded_at() -> sea_orm::sea_query::Alias {
    sea_orm::sea_query::Alias::new("reminded_at")
}

/// `users.locale` (migration 12): the account's language tag, `NULL` for English. Out of the
/// entity for the same reason as [`code_failures`].
fn locale_column() -> sea_orm::sea_query::Alias {
    sea_orm::sea_query::Alias::new("locale")
}

/// The languages of the accounts `user_ids` (English for one without, or gone).
pub(super) async fn locales_of(
    db: &impl ConnectionTrait,
    user_ids: Vec<i64>,
) -> Result<HashMap<i64, Locale>, StoreError> {
    if user_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, Option<String>)> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .expr_as(Expr::col(locale_column()), "locale")
        .filter(user::Column::Id.is_in(user_ids))
        .into_tuple()
        .all(db)
        .await
        .db()?;
    Ok(rows
        .into_iter()
        .map(|(id, tag)| {
            let locale = tag
                .as_deref()
                .and_then(Locale::from_tag)
                .unwrap_or_default();
            (id, locale)
        })
        .collect())
}

/// Marks unconfirmed accounts never reminded as reminded at `now`; the caller narrows which.
fn mark_reminded(now: DateTime<Utc>) -> sea_orm::UpdateMany<user::Entity> {
    user::Entity::update_many()
        .col_expr(reminded_at(), Expr::value(ts(now)))
        .filter(user::Column::Confirmed.eq(false))
        .filter(Expr::col(reminded_at()).is_null())
}

#[async_trait]
impl UserStore for SeaStore {
    async fn register(
        &self,
        email: &EmailAddress,
        locale: Locale,
        now: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        let email = email.clone();
        let now = ts(now);
        let policy = self.registration_policy;
        if self.is_postgres() {
            return self
                .register_distinct(vec![(email, locale)], now)
                .await?
                .pop()
                .ok_or_else(|| StoreError::Corrupt("a registration gave no answer".into()));
        }
        let endpoints = self.webhooks.endpoints.clone();
        let (answer, ids) = self
            .write(move |txn| {
                Box::pin(async move {
                    Ok(match register_in(txn, &email, locale, policy, now).await? {
                        Ending::Commit(answer) => {
                            let events = registered_events(std::slice::from_ref(&answer), now);
                            let ids = webhooks::enqueue(txn, &endpoints, &events, now).await?;
                            Ending::Commit((answer, ids))
                        }
                        Ending::Rollback(answer) => Ending::Rollback((answer, Vec::new())),
                    })
                })
            })
            .await?;
        self.notify_webhooks(ids);
        Ok(answer)
    }

    async fn register_many(
        &self,
        accounts: Vec<(EmailAddress, Locale)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Registration>, StoreError> {
        if self.is_postgres() {
            return self.register_many_postgres(accounts, ts(now)).await;
        }
        // SQLite writes one transaction at a time anyway.
        let mut out = Vec::with_capacity(accounts.len());
        for (email, locale) in &accounts {
            out.push(self.register(email, *locale, now).await?);
        }
        Ok(out)
    }

    async fn confirm_many(
        &self,
        links: Vec<(EmailAddress, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ConfirmOutcome>, StoreError> {
        // Several links of one account in a batch: the first goes in the statement, the others
        // are confirmed one by one afterwards, as if they had come later.
        let mut seen = HashSet::new();
        let first: Vec<bool> = links.iter().map(|(e, _)| seen.insert(e.key())).collect();
        let mut answers = if self.is_postgres() {
            let distinct: Vec<(&EmailAddress, DateTime<Utc>)> = links
                .iter()
                .zip(&first)
                .filter(|(_, first)| **first)
                .map(|((email, issued_at), _)| (email, *issued_at))
                .collect();
            self.confirm_distinct(&distinct, ts(now)).await?
        } else {
            Default::default()
        };
        let mut out = Vec::with_capacity(links.len());
        for ((email, issued_at), first) in links.iter().zip(first) {
            let answer = if first {
                answers.remove(&email.key())
            } else {
                None
            };
            out.push(match answer {
                Some(outcome) => outcome,
                None => self.confirm(email, *issued_at, now).await?,
            });
        }
        Ok(out)
    }

    async fn find_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<domain::User>, StoreError> {
        user::Entity::find()
            .filter(user::Column::EmailKey.eq(email.key()))
            .one(&self.db)
            .await
            .db()?
            .map(user_from_model)
            .transpose()
    }

    async fn set_confirm_redirect(
        &self,
        email: &EmailAddress,
        url: &str,
    ) -> Result<bool, StoreError> {
        let Some(user_id) = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::EmailKey.eq(email.key()))
            .into_tuple::<i64>()
            .one(&self.db)
            .await
            .db()?
        else {
            return Ok(false);
        };
        confirm_redirect::Entity::insert(confirm_redirect::ActiveModel {
            user_id: Set(user_id),
            url: Set(url.to_owned()),
        })
        .on_conflict(
            OnConflict::column(confirm_redirect::Column::UserId)
                .update_column(confirm_redirect::Column::Url)
                .to_owned(),
        )
        .exec(&self.db)
        .await
        .db()?;
        Ok(true)
    }

    async fn confirm_redirect(&self, email: &EmailAddress) -> Result<Option<String>, StoreError> {
        confirm_redirect::Entity::find()
            .select_only()
            .column(confirm_redirect::Column::Url)
            .inner_join(user::Entity)
            .filter(user::Column::EmailKey.eq(email.key()))
            .into_tuple::<String>()
            .one(&self.db)
            .await
            .db()
    }

    async fn code_candidates(
        &self,
        email: &EmailAddress,
        sent_since: DateTime<Utc>,
    ) -> Result<Vec<CodeCandidate>, StoreError> {
        // One statement whether or not the address has an account: the account by a subquery.
        let account = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::EmailKey.eq(email.key().as_str()))
            .into_query();
        let rows: Vec<(i64, Option<DateTime<Utc>>)> = email_message::Entity::find()
            .select_only()
            .column(email_message::Column::Id)
            .column(email_message::Column::SentAt)
            .filter(email_message::Column::UserId.in_subquery(account))
            .filter(email_message::Column::Kind.eq(MessageKind::Confirm.as_str()))
            .filter(email_message::Column::Status.eq(MessageStatus::Sent.as_str()))
            .filter(email_message::Column::SentAt.gte(ts(sent_since)))
            .filter(Expr::col(code_failures()).lt(ConfirmationCodes::MAX_FAILURES))
            .order_by_desc(email_message::Column::Id)
            .limit(MAX_CODE_CANDIDATES)
            .into_tuple()
            .all(&self.db)
            .await
            .db()?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, sent_at)| {
                sent_at.map(|sent_at| CodeCandidate {
                    message: MessageId(id),
                    sent_at,
                })
            })
            .collect())
    }

    async fn claim_reminders(
        &self,
        registered_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<EmailAddress>, StoreError> {
        let due: Vec<i64> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Confirmed.eq(false))
            .filter(user::Column::RegisteredOn.lt(ts(registered_before)))
            .filter(Expr::col(reminded_at()).is_null())
            .order_by_asc(user::Column::RegisteredOn)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await
            .db()?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // Only the rows this statement changed come back: a sweeper that got there first
        // keeps its own.
        let claimed = mark_reminded(now)
            .filter(user::Column::Id.is_in(due))
            .exec_with_returning(&self.db)
            .await
            .db()?;
        Ok(claimed
            .into_iter()
            .filter_map(|user| EmailAddress::parse(&user.email).ok())
            .collect())
    }

    async fn skip_reminder(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = mark_reminded(now)
            .filter(user::Column::EmailKey.eq(email.key().as_str()))
            .exec(&self.db)
            .await
            .db()?;
        Ok(result.rows_affected > 0)
    }

    async fn code_failed(&self, messages: &[MessageId]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        email_message::Entity::update_many()
            .col_expr(code_failures(), Expr::col(code_failures()).add(1))
            .filter(email_message::Column::Id.is_in(messages.iter().map(|id| id.0)))
            .filter(Expr::col(code_failures()).lt(ConfirmationCodes::MAX_FAILURES))
            .exec(&self.db)
            .await
            .db()?;
        Ok(())
    }

    async fn confirm(
        &self,
        email: &EmailAddress,
        issued_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome, StoreError> {
        if !self.has_webhooks() {
            return confirm_on(&self.db, email, issued_at, now).await;
        }
        let email = email.clone();
        let endpoints = self.webhooks.endpoints.clone();
        let (outcome, ids) = self
            .write(move |txn| {
                Box::pin(async move {
                    let outcome = confirm_on(txn, &email, issued_at, now).await?;
                    if outcome != ConfirmOutcome::Confirmed {
                        return Ok(Ending::Rollback((outcome, Vec::new())));
                    }
                    let events = confirmed_events(txn, vec![email.key()], ts(now)).await?;
                    let ids = webhooks::enqueue(txn, &endpoints, &events, ts(now)).await?;
                    Ok(Ending::Commit((outcome, ids)))
                })
            })
            .await?;
        self.notify_webhooks(ids);
        Ok(outcome)
    }

    async fn resend(
        &self,
        email: &EmailAddress,
        policy: ResendPolicy,
        now: DateTime<Utc>,
    ) -> Result<Resend, StoreError> {
        let email = email.clone();
        let now = ts(now);
        let sqlite = self.is_sqlite();
        self.write(move |txn| {
            Box::pin(async move { resend_in(txn, &email, policy, now, sqlite).await })
        })
        .await
    }

    async fn purge_unconfirmed(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, StoreError> {
        use user::Column as C;
        if limit == 0 {
            return Ok(0);
        }
        let owed = email_message::Entity::find()
            .select_only()
            .column(email_message::Column::UserId)
            .filter(email_message::Column::Status.is_in(OWED))
            .filter(
                Expr::col((email_message::Entity, email_message::Column::UserId))
                    .equals((user::Entity, C::Id)),
            )
            .into_query();
        let expired = user::Entity::find()
            .select_only()
            .column(C::Id)
            .filter(C::Confirmed.eq(false))
            .filter(C::RegisteredOn.lt(ts(before)))
            .filter(Expr::exists(owed).not())
            .limit(limit)
            .into_query();
        let deleted = user::Entity::delete_many()
            .filter(C::Id.in_subquery(expired))
            .exec(&self.db)
            .await
            .db()?;
        if deleted.rows_affected > 0 {
            tracing::info!(
                accounts = deleted.rows_affected,
                "unconfirmed accounts expired"
            );
        }
        Ok(deleted.rows_affected)
    }

    async fn recent_users(&self, limit: u64) -> Result<Vec<UserSummary>, StoreError> {
        // Only the columns a summary shows, read by position: this feeds the home page's users
        // table, every row read is decoded, and reading a `Model` looks each column up by name
        // in each row.
        use user::Column as C;
        user::Entity::find()
            .select_only()
            .columns([C::Id, C::Email, C::Confirmed, C::EmailSent])
            .order_by_desc(C::Id)
            .limit(limit)
            .into_tuple::<SummaryColumns>()
            .all(&self.db)
            .await
            .db()?
            .into_iter()
            .map(summary_from_columns)
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The inherent method (callers holding a `SeaStore` use it directly).
        SeaStore::ping(self).await
    }
}
