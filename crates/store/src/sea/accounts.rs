//! [`AccountStore`] on the SeaORM connection: `credentials`, `sessions` and `recovery_codes`
//! (migration 13).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    Account, EmailAddress, MessageId, MessageKind, PasswordHashString, Session, TotpSecret,
    TotpState, UserId,
};
use sea_orm::sea_query::{Expr, ExprTrait as _, OnConflict};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait as _, QueryFilter, QuerySelect, Set,
};

use super::mailbox::{self, Limit};
use super::rows::{OWED, queued_message, ts, user_from_model};
use super::{Db as _, Ending, SeaStore};
use crate::entities::{credential, email_message, recovery_code, session, user};
use crate::{AccountStore, PasswordChanged, ResetRequest, StoreError};

/// The account of a user row: its credentials and how many recovery codes it has left.
async fn account_of(db: &impl ConnectionTrait, row: user::Model) -> Result<Account, StoreError> {
    let id = row.id;
    let user = user_from_model(row)?;
    let Some(credentials) = credential::Entity::find_by_id(id).one(db).await.db()? else {
        return Ok(Account {
            user,
            password: None,
            totp: None,
        });
    };
    let totp = match credentials.totp_secret.as_deref() {
        None => None,
        Some(text) => {
            let secret = TotpSecret::from_base32(text).ok_or_else(|| {
                StoreError::Corrupt(format!("user {id}: a TOTP secret that is not base32"))
            })?;
            let left = recovery_code::Entity::find()
                .filter(recovery_code::Column::UserId.eq(id))
                .filter(recovery_code::Column::UsedAt.is_null())
                .count(db)
                .await
                .db()?;
            Some(TotpState {
                secret,
                last_step: credentials.totp_last_step,
                recovery_codes_left: u32::try_from(left).unwrap_or(u32::MAX),
            })
        }
    };
    Ok(Account {
        user,
        password: credentials
            .password_hash
            .map(PasswordHashString::from_stored),
        totp,
    })
}

/// Ends every session of `user`, inside a transaction; how many.
async fn end_sessions_in(db: &impl ConnectionTrait, user: i64) -> Result<u64, StoreError> {
    Ok(session::Entity::delete_many()
        .filter(session::Column::UserId.eq(user))
        .exec(db)
        .await
        .db()?
        .rows_affected)
}

/// Sets `columns` of the credentials of `user`, creating its row (the other columns empty) if
/// it has none.
async fn upsert_credentials(
    txn: &DatabaseTransaction,
    user: i64,
    columns: [(credential::Column, sea_orm::Value); 2],
) -> Result<(), StoreError> {
    let mut row = credential::ActiveModel {
        user_id: Set(user),
        password_hash: Set(None),
        password_changed_at: Set(None),
        totp_secret: Set(None),
        totp_last_step: Set(None),
    };
    for (column, value) in &columns {
        row.set(*column, value.clone());
    }
    credential::Entity::insert(row)
        .on_conflict(
            OnConflict::column(credential::Column::UserId)
                .update_columns(columns.map(|(column, _)| column))
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .db()?;
    Ok(())
}

/// [`AccountStore::change_password`] in its write transaction.
async fn change_password_in(
    txn: &DatabaseTransaction,
    sqlite: bool,
    user_id: i64,
    expected: Option<String>,
    hash: String,
    now: DateTime<Utc>,
) -> Result<Ending<Option<PasswordChanged>>, StoreError> {
    let Some(account) = user::Entity::find_by_id(user_id).one(txn).await.db()? else {
        return Ok(Ending::Rollback(None));
    };
    let mut find = credential::Entity::find_by_id(user_id);
    if !sqlite {
        // Two resets with one link, at once: the second waits, then sees the new binding.
        find = find.lock_exclusive();
    }
    let current = find.one(txn).await.db()?;
    if let Some(expected) = expected {
        let stored = current
            .as_ref()
            .and_then(|c| c.password_hash.clone())
            .map(PasswordHashString::from_stored);
        if PasswordHashString::binding(stored.as_ref()) != expected {
            return Ok(Ending::Rollback(None));
        }
    }
    upsert_credentials(
        txn,
        user_id,
        [
            (credential::Column::PasswordHash, Some(hash).into()),
            (credential::Column::PasswordChangedAt, Some(now).into()),
        ],
    )
    .await?;
    let sessions_ended = end_sessions_in(txn, user_id).await?;
    let notice = if mailbox::is_suppressed(txn, &account.mailbox_key).await? {
        None
    } else {
        let row = queued_message(user_id, MessageKind::PasswordChanged, &account.email, now)
            .insert(txn)
            .await
            .db()?;
        Some(MessageId(row.id))
    };
    Ok(Ending::Commit(Some(PasswordChanged {
        sessions_ended,
        notice,
    })))
}

/// [`AccountStore::owe_password_reset`] in its write transaction.
async fn owe_reset_in(
    txn: &DatabaseTransaction,
    email: &EmailAddress,
    policy: domain::ResendPolicy,
    now: DateTime<Utc>,
) -> Result<Ending<ResetRequest>, StoreError> {
    let Some(account) = user::Entity::find()
        .filter(user::Column::EmailKey.eq(email.key()))
        .one(txn)
        .await
        .db()?
    else {
        return Ok(Ending::Rollback(ResetRequest::NotRegistered));
    };
    if !account.confirmed {
        return Ok(Ending::Rollback(ResetRequest::NotConfirmed));
    }
    let pending = email_message::Entity::find()
        .filter(email_message::Column::UserId.eq(account.id))
        .filter(email_message::Column::Kind.eq(MessageKind::PasswordReset.as_str()))
        .filter(email_message::Column::Status.is_in(OWED))
        .count(txn)
        .await
        .db()?;
    if pending > 0 {
        return Ok(Ending::Rollback(ResetRequest::Pending));
    }
    match mailbox::take(txn, &account.mailbox_key, policy, now).await? {
        Some(Limit::Suppressed) => return Ok(Ending::Rollback(ResetRequest::Suppressed)),
        Some(Limit::CoolingDown | Limit::DailyCap) => {
            return Ok(Ending::Rollback(ResetRequest::Limited));
        }
        None => {}
    }
    let row = queued_message(account.id, MessageKind::PasswordReset, &account.email, now)
        .insert(txn)
        .await
        .db()?;
    Ok(Ending::Commit(ResetRequest::Queued(MessageId(row.id))))
}

/// The password bindings of the accounts `user_ids` (see `PasswordHashString::binding`; an
/// account without a password has the binding of none), for the password-reset emails a claim
/// hands out.
pub(super) async fn bindings_of(
    db: &impl ConnectionTrait,
    user_ids: Vec<i64>,
) -> Result<std::collections::HashMap<i64, String>, StoreError> {
    if user_ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<(i64, Option<String>)> = credential::Entity::find()
        .select_only()
        .column(credential::Column::UserId)
        .column(credential::Column::PasswordHash)
        .filter(credential::Column::UserId.is_in(user_ids.clone()))
        .into_tuple()
        .all(db)
        .await
        .db()?;
    let mut bindings: std::collections::HashMap<i64, String> = rows
        .into_iter()
        .map(|(id, hash)| {
            let hash = hash.map(PasswordHashString::from_stored);
            (id, PasswordHashString::binding(hash.as_ref()))
        })
        .collect();
    for id in user_ids {
        bindings
            .entry(id)
            .or_insert_with(|| PasswordHashString::binding(None));
    }
    Ok(bindings)
}

#[async_trait]
impl AccountStore for SeaStore {
    async fn account(&self, email: &EmailAddress) -> Result<Option<Account>, StoreError> {
        let row = user::Entity::find()
            .filter(user::Column::EmailKey.eq(email.key()))
            .one(&self.db)
            .await
            .db()?;
        match row {
            Some(row) => account_of(&self.db, row).await.map(Some),
            None => Ok(None),
        }
    }

    async fn account_by_id(&self, user: UserId) -> Result<Option<Account>, StoreError> {
        match user::Entity::find_by_id(user.0).one(&self.db).await.db()? {
            Some(row) => account_of(&self.db, row).await.map(Some),
            None => Ok(None),
        }
    }

    async fn set_initial_password(
        &self,
        user: UserId,
        hash: &PasswordHashString,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let inserted = credential::Entity::insert(credential::ActiveModel {
            user_id: Set(user.0),
            password_hash: Set(Some(hash.as_str().to_owned())),
            password_changed_at: Set(Some(ts(now))),
            totp_secret: Set(None),
            totp_last_step: Set(None),
        })
        .on_conflict(
            OnConflict::column(credential::Column::UserId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .db()?;
        Ok(inserted == 1)
    }

    async fn change_password<'a>(
        &self,
        user: UserId,
        expected: Option<&'a str>,
        hash: &PasswordHashString,
        now: DateTime<Utc>,
    ) -> Result<Option<PasswordChanged>, StoreError> {
        let sqlite = !self.is_postgres();
        let expected = expected.map(str::to_owned);
        let hash = hash.as_str().to_owned();
        let now = ts(now);
        self.write(move |txn| {
            Box::pin(
                async move { change_password_in(txn, sqlite, user.0, expected, hash, now).await },
            )
        })
        .await
    }

    async fn owe_password_reset(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<ResetRequest, StoreError> {
        let email = email.clone();
        let policy = self.registration_policy;
        let now = ts(now);
        self.write(move |txn| Box::pin(async move { owe_reset_in(txn, &email, policy, now).await }))
            .await
    }

    async fn create_session(
        &self,
        user: UserId,
        fingerprint: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        session::Entity::insert(session::ActiveModel {
            id: Set(fingerprint.to_owned()),
            user_id: Set(user.0),
            created_at: Set(ts(now)),
            expires_at: Set(ts(expires_at)),
        })
        .exec_without_returning(&self.db)
        .await
        .db()?;
        Ok(())
    }

    async fn session(
        &self,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let row = session::Entity::find_by_id(fingerprint.to_owned())
            .filter(session::Column::ExpiresAt.gt(ts(now)))
            .one(&self.db)
            .await
            .db()?;
        Ok(row.map(|row| Session {
            user_id: UserId(row.user_id),
            created_at: row.created_at,
            expires_at: row.expires_at,
        }))
    }

    async fn end_session(&self, fingerprint: &str) -> Result<(), StoreError> {
        session::Entity::delete_by_id(fingerprint.to_owned())
            .exec(&self.db)
            .await
            .db()?;
        Ok(())
    }

    async fn end_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        end_sessions_in(&self.db, user.0).await
    }

    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lt(ts(before)))
            .exec(&self.db)
            .await
            .db()?
            .rows_affected)
    }

    async fn enable_totp(
        &self,
        user: UserId,
        secret: &TotpSecret,
        recovery_hashes: Vec<String>,
    ) -> Result<(), StoreError> {
        let secret = secret.base32();
        self.write(move |txn| {
            Box::pin(async move {
                upsert_credentials(
                    txn,
                    user.0,
                    [
                        (credential::Column::TotpSecret, Some(secret).into()),
                        (credential::Column::TotpLastStep, None::<i64>.into()),
                    ],
                )
                .await?;
                recovery_code::Entity::delete_many()
                    .filter(recovery_code::Column::UserId.eq(user.0))
                    .exec(txn)
                    .await
                    .db()?;
                if !recovery_hashes.is_empty() {
                    recovery_code::Entity::insert_many(recovery_hashes.into_iter().map(|hash| {
                        recovery_code::ActiveModel {
                            user_id: Set(user.0),
                            code_hash: Set(hash),
                            used_at: Set(None),
                            ..Default::default()
                        }
                    }))
                    .exec_without_returning(txn)
                    .await
                    .db()?;
                }
                Ok(Ending::Commit(()))
            })
        })
        .await
    }

    async fn disable_totp(&self, user: UserId) -> Result<(), StoreError> {
        self.write(move |txn| {
            Box::pin(async move {
                credential::Entity::update_many()
                    .col_expr(credential::Column::TotpSecret, Expr::value(None::<String>))
                    .col_expr(credential::Column::TotpLastStep, Expr::value(None::<i64>))
                    .filter(credential::Column::UserId.eq(user.0))
                    .exec(txn)
                    .await
                    .db()?;
                recovery_code::Entity::delete_many()
                    .filter(recovery_code::Column::UserId.eq(user.0))
                    .exec(txn)
                    .await
                    .db()?;
                Ok(Ending::Commit(()))
            })
        })
        .await
    }

    async fn use_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError> {
        // One statement: of two sign-ins with the same code at once, one updates the row.
        let updated = credential::Entity::update_many()
            .col_expr(credential::Column::TotpLastStep, Expr::value(step))
            .filter(credential::Column::UserId.eq(user.0))
            .filter(credential::Column::TotpSecret.is_not_null())
            .filter(
                Expr::col(credential::Column::TotpLastStep)
                    .is_null()
                    .or(Expr::col(credential::Column::TotpLastStep).lt(step)),
            )
            .exec(&self.db)
            .await
            .db()?;
        Ok(updated.rows_affected == 1)
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let updated = recovery_code::Entity::update_many()
            .col_expr(recovery_code::Column::UsedAt, Expr::value(ts(now)))
            .filter(recovery_code::Column::UserId.eq(user.0))
            .filter(recovery_code::Column::CodeHash.eq(hash))
            .filter(recovery_code::Column::UsedAt.is_null())
            .exec(&self.db)
            .await
            .db()?;
        Ok(updated.rows_affected == 1)
    }
}
