#![doc = include_str!("../README.md")]

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use domain::{
    Account, EmailAddress, Feedback, FeedbackOutcome, FeedbackRecord, Locale, MailboxKey,
    MessageId, MessageKind, MessageRecord, MessageStatus, OwedMessage, PasswordHashString,
    ResendPolicy, Session, Suppression, SuppressionId, SuppressionSource, TotpSecret, User, UserId,
    UserSummary, WebhookDelivery,
};

pub mod batch;
mod entities;
mod sea;

pub use sea::SeaStore;
pub use sea::users::CLOCK_SKEW_TOLERANCE;

/// What went wrong talking to the database. Never shown to visitors. It holds the text of
/// the database's error, not its type, so it can be cloned to every caller a failed batch
/// answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now (refused, timed out, connection lost): worth
    /// retrying shortly, and a web request should answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(String),
    /// A row holds something this version cannot read (an unknown status, a bad address).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Too many calls are already waiting for the database: nothing was done. A web request
    /// should answer 503 with a short `Retry-After`.
    #[error("too busy: too many calls waiting for the database")]
    Busy,
}

impl StoreError {
    /// Whether the failure is the database being unreachable (rather than a bad query or row).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Whether the call was refused because too many were waiting (nothing was done).
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy)
    }
}

/// The result of a registration attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// A new user and the confirmation email owed to them were committed together.
    Created { user: User, message: MessageId },
    /// A new user was committed, but no email is owed: the address's mailbox is suppressed, or
    /// within the resend cooldown or at the daily cap (counted over every account of the
    /// mailbox, see `domain::MailboxKey`). Answer it as `Created`; there is nothing to publish.
    CreatedWithoutEmail { user: User },
    /// An account with the same (case-insensitive) address exists; nothing was written.
    AlreadyRegistered,
}

/// The result of asking for a fresh confirmation email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// A fresh confirmation email is owed (committed as a `queued` message).
    Queued(MessageId),
    /// No account has this address.
    NotRegistered,
    /// The account is already confirmed: nothing is sent.
    AlreadyConfirmed,
    /// An earlier confirmation email is still on its way (queued, sending or retrying).
    Pending,
    /// The newest confirmation email owed to the address's mailbox (any of its accounts) is
    /// younger than the cooldown.
    CoolingDown,
    /// The daily cap of the address's mailbox (all its accounts together) is reached in its
    /// current 24-hour window.
    DailyCapReached,
    /// The address's mailbox is on the suppression list: nothing is sent.
    Suppressed,
}

/// The result of confirming an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Confirmed,
    AlreadyConfirmed,
    /// No user has this address (never registered, or deleted).
    NotFound,
    /// The link predates this account (the address was deleted and registered again).
    Stale,
}

/// A confirmation email whose six-digit code may still be used (see
/// [`UserStore::code_candidates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeCandidate {
    pub message: MessageId,
    /// When the email was sent: its code is valid as long as its link, counted from then.
    pub sent_at: DateTime<Utc>,
}

/// The most codes [`UserStore::code_candidates`] returns (the newest emails).
pub const MAX_CODE_CANDIDATES: u64 = 20;

/// Users: registration, lookup, confirmation.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait UserStore: Send + Sync + std::fmt::Debug {
    /// Stores a new user and a `queued` confirmation message for them in one transaction.
    /// If the address's key is taken, writes nothing and returns `AlreadyRegistered`. The
    /// message is owed only if the address's mailbox is not suppressed and is within the
    /// store's registration policy (`SeaStore::with_registration_policy`: the resend cooldown
    /// and daily cap, counted over the confirmation emails owed to every account sharing the
    /// mailbox key); otherwise the user alone is stored (`CreatedWithoutEmail`). The account
    /// keeps `locale`: every email to it is written in that language.
    async fn register(
        &self,
        email: &EmailAddress,
        locale: Locale,
        now: DateTime<Utc>,
    ) -> Result<Registration, StoreError>;

    /// [`Self::register`] for several accounts at once: one statement, one commit on
    /// PostgreSQL (one transaction each on SQLite). One answer per address, in order; an
    /// address whose key appears twice is registered by its first entry (the later ones are
    /// `AlreadyRegistered`).
    async fn register_many(
        &self,
        accounts: Vec<(EmailAddress, Locale)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Registration>, StoreError>;

    /// The user whose address has the same key, if any.
    async fn find_by_email(&self, email: &EmailAddress) -> Result<Option<User>, StoreError>;

    /// Records where confirming the account with this address sends the visitor (replacing an
    /// earlier one): what the application that registered it through the API asked for.
    /// `false` when no account has the address (nothing written).
    async fn set_confirm_redirect(
        &self,
        email: &EmailAddress,
        url: &str,
    ) -> Result<bool, StoreError>;

    /// Where confirming the account with this address sends the visitor, if a redirect was
    /// recorded for it.
    async fn confirm_redirect(&self, email: &EmailAddress) -> Result<Option<String>, StoreError>;

    /// Marks the user with this address confirmed (atomically: two concurrent clicks give one
    /// `Confirmed` and one `AlreadyConfirmed`), if the link was issued for this account:
    /// `issued_at` (the token's time, whole seconds) must not be before the account was
    /// registered (less a clock-skew tolerance of one minute, [`CLOCK_SKEW_TOLERANCE`]), so a
    /// link sent to an address that was later deleted and registered again does not confirm
    /// the new account.
    async fn confirm(
        &self,
        email: &EmailAddress,
        issued_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome, StoreError>;

    /// The confirmation emails of the account with this address whose code may still be
    /// used: sent at or after `sent_since`, with fewer than
    /// [`domain::ConfirmationCodes::MAX_FAILURES`] wrong tries; the newest first, at most
    /// [`MAX_CODE_CANDIDATES`]. Empty when there is no such account or email.
    async fn code_candidates(
        &self,
        email: &EmailAddress,
        sent_since: DateTime<Utc>,
    ) -> Result<Vec<CodeCandidate>, StoreError>;

    /// Counts one wrong code against each of these messages (a code that was tried and did
    /// not match any of them).
    async fn code_failed(&self, messages: &[MessageId]) -> Result<(), StoreError>;

    /// Claims the accounts due for their one reminder: unconfirmed, registered before
    /// `registered_before`, never reminded; at most `limit`, the oldest first. Each is marked
    /// reminded at `now` by this call, so two sweepers never claim the same account (the
    /// reminder itself is then owed through [`Self::resend`], within its limits). Their
    /// addresses.
    async fn claim_reminders(
        &self,
        registered_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<EmailAddress>, StoreError>;

    /// Marks the unconfirmed account with this address as reminded at `now` without a reminder
    /// (its address was mistyped and has been corrected): `false` when there was nothing to
    /// mark (no such account, confirmed, or already reminded).
    async fn skip_reminder(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// [`Self::confirm`] for several links at once (`(address, issued_at)` each): one statement
    /// on PostgreSQL. One answer per link, in order; links of the same account are answered as
    /// if they came one after the other (one `Confirmed`, then `AlreadyConfirmed`).
    async fn confirm_many(
        &self,
        links: Vec<(EmailAddress, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ConfirmOutcome>, StoreError>;

    /// Owes a fresh confirmation email to the unconfirmed account with this address, within
    /// `policy` (the cooldown and daily cap count the confirmation emails owed to every account
    /// sharing the address's mailbox key) and unless the mailbox is suppressed: nothing is
    /// written unless the answer is [`Resend::Queued`]. Concurrent calls for one mailbox are
    /// serialised, so they queue at most one message between them.
    async fn resend(
        &self,
        email: &EmailAddress,
        policy: ResendPolicy,
        now: DateTime<Utc>,
    ) -> Result<Resend, StoreError>;

    /// Retention: deletes at most `limit` accounts still unconfirmed that registered before
    /// `before` and are owed nothing (no message queued, sending or retrying), with their
    /// messages, in one short statement that reads through the `(confirmed, registered_on)`
    /// index. The address can then be registered again. Returns how many; call again while it
    /// returns `limit`.
    async fn purge_unconfirmed(&self, before: DateTime<Utc>, limit: u64)
    -> Result<u64, StoreError>;

    /// The newest users first, at most `limit`, as a list shows them (no timestamps).
    async fn recent_users(&self, limit: u64) -> Result<Vec<UserSummary>, StoreError>;

    /// Checks that the database answers (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The result of trying to claim an owed message for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the message until `now + lease` and must send it, then record the outcome.
    Claimed(OwedMessage),
    /// Already sent: acknowledge the job and do nothing.
    AlreadySent,
    /// Dead, not yet due for a retry, or leased by another worker: acknowledge and leave it to
    /// the sweeper.
    NotClaimable,
    /// The recipient's mailbox is suppressed: the message is `cancelled` (by this claim, which
    /// found the mailbox on the list, or earlier by [`SuppressionStore::suppress`]). Acknowledge
    /// the job and send nothing.
    Cancelled,
    /// No such message (its user was deleted).
    Missing,
}

/// How many messages are in each state, and how old the oldest owed one is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    pub queued: u64,
    pub sending: u64,
    pub retrying: u64,
    /// Exact while the outbox is small; on a large PostgreSQL outbox, an estimate from the
    /// planner's row count ([`Self::sent_is_estimate`]), so reading it does not count millions
    /// of rows.
    pub sent: u64,
    /// Whether [`Self::sent`] is an estimate.
    pub sent_is_estimate: bool,
    pub dead: u64,
    /// Not sent because the recipient's mailbox was suppressed.
    pub cancelled: u64,
    /// Sent, then reported as a permanent bounce.
    pub bounced: u64,
    /// Sent, then reported as spam.
    pub complained: u64,
    /// Creation time of the oldest message still owed (queued, sending or retrying).
    pub oldest_owed: Option<DateTime<Utc>>,
}

/// One finished attempt to send a message, recorded with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The message's attempt count when it finished (1 for the first; a requeued dead message
    /// counts from 1 again).
    pub attempt: u32,
    /// `Sent`, `Retrying` (a transient failure), `Dead`, or `Cancelled` (stopped: a webhook
    /// endpoint answered 410).
    pub outcome: MessageStatus,
    pub error: Option<String>,
    pub provider_message_id: Option<String>,
    pub finished_at: DateTime<Utc>,
}

/// Which messages [`MessageStore::list`] returns: newest first, optionally only those of the
/// account with this address, only those of one kind, only those older than `before` (for paging), at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageQuery {
    pub recipient: Option<EmailAddress>,
    /// Only messages of this kind (confirmation emails, webhooks); every kind with `None`.
    pub kind: Option<MessageKind>,
    pub before: Option<MessageId>,
    pub limit: u64,
}

/// Owed email messages (the outbox): the database is the record of what is owed.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait MessageStore: Send + Sync + std::fmt::Debug {
    /// Compare-and-set to `sending` with a lease, counting one more attempt. Succeeds only for a
    /// message that is `queued`, `retrying` with its next attempt time reached, or `sending`
    /// with an expired lease. In the same statement, a message whose recipient's mailbox is
    /// suppressed is set to `cancelled` instead ([`Claim::Cancelled`]), so the check costs no
    /// extra round trip right before a send.
    async fn claim(
        &self,
        id: MessageId,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> Result<Claim, StoreError>;

    /// [`Self::claim`] for several messages in one statement (one round trip). Returns one
    /// answer per id, in the order given: an id given twice is claimed once (its later entries
    /// are `NotClaimable`), and a claimed row that cannot be read is an `Err` for that id only
    /// (it stays claimed until its lease expires). The outer error means nothing was claimed.
    async fn claim_many(
        &self,
        ids: Vec<MessageId>,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> Result<Vec<Result<Claim, StoreError>>, StoreError>;

    /// Records a successful send (and, for a confirmation email, sets the user's `email_sent`),
    /// in one transaction.
    async fn mark_sent(
        &self,
        id: MessageId,
        provider_message_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// [`Self::mark_sent`] for several messages, all or none (one statement on PostgreSQL).
    async fn mark_sent_many(
        &self,
        sent: Vec<(MessageId, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records a transient failure; the message becomes due again at `retry_at`.
    async fn mark_retry(
        &self,
        id: MessageId,
        error: String,
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records a permanent failure (or exhausted retries); the message stops.
    async fn mark_dead(
        &self,
        id: MessageId,
        error: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Stops a message for good without it having failed: it becomes `cancelled` with `reason`
    /// recorded (a webhook endpoint that answered 410 Gone). A message already sent is left
    /// alone.
    async fn mark_stopped(
        &self,
        id: MessageId,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The endpoint, event and body of a webhook message; `None` for another kind or a message
    /// that no longer exists.
    async fn webhook(&self, id: MessageId) -> Result<Option<WebhookDelivery>, StoreError>;

    /// Messages that should be (re)published now, oldest due first: `queued` or `retrying` whose
    /// next attempt time has come, and `sending` whose lease has expired.
    async fn due(&self, now: DateTime<Utc>, limit: u64) -> Result<Vec<MessageId>, StoreError>;

    /// Dead messages, most recently failed first, at most `limit`.
    async fn dead(&self, limit: u64) -> Result<Vec<MessageRecord>, StoreError>;

    /// Gives dead messages a fresh start: status `queued`, attempts 0, due at `now`, error kept
    /// for the record. `None` requeues every dead message. Returns the ids requeued (a message
    /// that is not dead is left alone).
    async fn requeue_dead(
        &self,
        id: Option<MessageId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError>;

    /// Deletes dead messages whose last change is older than `before`; returns how many.
    async fn purge_dead(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Retention: deletes at most `limit` messages in the final state `status` (`Sent`, `Dead`
    /// or `Cancelled`) whose last change is older than `before`, with their attempts, in one
    /// short statement that reads through the `(status, updated_at)` index. Returns how many;
    /// call again while it returns `limit`. Any other status deletes nothing.
    async fn purge_finished(
        &self,
        status: MessageStatus,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, StoreError>;

    /// Counts by state and the age of the oldest owed message. Its cost does not grow with the
    /// history: every state but `sent` is counted through the `(status, …)` indexes (owed, dead
    /// and cancelled rows are few, and retention bounds them), and `sent` is estimated on a
    /// large outbox (see [`DeliveryStats::sent`]).
    async fn stats(&self) -> Result<DeliveryStats, StoreError>;

    /// Messages newest first (by id), filtered and paged by `query`.
    async fn list(&self, query: MessageQuery) -> Result<Vec<MessageRecord>, StoreError>;

    /// One message.
    async fn get(&self, id: MessageId) -> Result<Option<MessageRecord>, StoreError>;

    /// A message's finished attempts, oldest first. `mark_sent`, `mark_retry` and `mark_dead`
    /// record them; an attempt cut short by a crash has none (its lease expired instead).
    async fn attempts(&self, id: MessageId) -> Result<Vec<Attempt>, StoreError>;
}

/// The suppression list: mailboxes (by `domain::MailboxKey`) that nothing is sent to.
/// Registrations and resends for a suppressed mailbox are answered as usual but owe no email,
/// and a claim cancels what is still owed to it.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SuppressionStore: Send + Sync + std::fmt::Debug {
    /// Puts `mailbox` on the list (idempotent: `true` if it was newly added, `false` if it was
    /// already there, whose source and time are kept), and in the same transaction cancels the
    /// emails (of every kind) still `queued` or `retrying` to any of its accounts. (A message
    /// being sent at that moment is not stopped; one claimed later is cancelled by its claim.)
    async fn suppress(
        &self,
        mailbox: &MailboxKey,
        source: SuppressionSource,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Takes a suppression off the list; `false` if there is none with this id. Messages
    /// cancelled meanwhile stay cancelled (a resend owes a new one).
    async fn lift(&self, id: SuppressionId) -> Result<bool, StoreError>;

    /// The suppressions, newest first, at most `limit`.
    async fn list(&self, limit: u64) -> Result<Vec<Suppression>, StoreError>;

    /// Whether `mailbox` is on the list.
    async fn is_suppressed(&self, mailbox: &MailboxKey) -> Result<bool, StoreError>;
}

/// Bounces and complaints the provider reported about sent messages (SES feedback).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait FeedbackStore: Send + Sync + std::fmt::Debug {
    /// Records `feedback` once, by its feedback id and mailbox: a report received again (a queue
    /// redelivers) is [`FeedbackOutcome::Duplicate`] and changes nothing. The first time, in one
    /// transaction: the row, tied to the message whose provider message id it names (if this
    /// service sent it); and for a permanent bounce or a complaint, that message becomes
    /// `bounced` or `complained` (if it was sent; a complaint also overrides `bounced`) and the
    /// mailbox goes on the suppression list with the source `bounce` or `complaint`, exactly as
    /// [`SuppressionStore::suppress`] does (what is still owed to it is cancelled; an existing
    /// suppression keeps its source).
    async fn record_feedback(
        &self,
        feedback: &Feedback,
        now: DateTime<Utc>,
    ) -> Result<FeedbackOutcome, StoreError>;

    /// The feedback recorded about one message, oldest first.
    async fn feedback(&self, message: MessageId) -> Result<Vec<FeedbackRecord>, StoreError>;
}

/// What asking for a password-reset email did. Never shown to the visitor (the answer is the
/// same for every address); logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetRequest {
    /// A reset email is owed (committed): publish its job.
    Queued(MessageId),
    /// No account has this address.
    NotRegistered,
    /// The account is not confirmed: only confirmed accounts sign in.
    NotConfirmed,
    /// A reset email to it is still on its way: nothing new.
    Pending,
    /// The mailbox's cooldown or daily cap (the same allowance as confirmation emails).
    Limited,
    /// The mailbox is on the suppression list.
    Suppressed,
}

/// A password set through [`AccountStore::change_password`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordChanged {
    /// The sessions it ended (every one of the account's).
    pub sessions_ended: u64,
    /// The "your password was changed" notice it owes (none to a suppressed mailbox): publish
    /// its job.
    pub notice: Option<MessageId>,
}

/// Accounts a person signs in to: passwords, sessions and the second factor. Only hashes are
/// kept: the Argon2id hash of the password, the SHA-256 of each session cookie and of each
/// recovery code.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// The account whose address has `email`'s key, with its credentials.
    async fn account(&self, email: &EmailAddress) -> Result<Option<Account>, StoreError>;

    /// The account `user`, with its credentials.
    async fn account_by_id(&self, user: UserId) -> Result<Option<Account>, StoreError>;

    /// Gives a new account its first password (a registration with one); `false`, changing
    /// nothing, if it already has one.
    async fn set_initial_password(
        &self,
        user: UserId,
        hash: &PasswordHashString,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Replaces the password of `user` with `hash` if its current password's binding
    /// (`PasswordHashString::binding`) is `expected` (`None`: not checked), and in the same
    /// transaction ends every session of the account and owes the "password changed" notice.
    /// `None`, changing nothing, when the binding differs (a reset link already used, or the
    /// password changed since) or there is no such user.
    async fn change_password<'a>(
        &self,
        user: UserId,
        expected: Option<&'a str>,
        hash: &PasswordHashString,
        now: DateTime<Utc>,
    ) -> Result<Option<PasswordChanged>, StoreError>;

    /// Owes a password-reset email to the confirmed account of `email`, within its mailbox's
    /// allowance (the store's registration policy) and unless one is still on its way.
    async fn owe_password_reset(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<ResetRequest, StoreError>;

    /// Records a session of `user` by the fingerprint of its cookie, lasting until `expires_at`.
    async fn create_session(
        &self,
        user: UserId,
        fingerprint: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The unexpired session with this fingerprint.
    async fn session(
        &self,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;

    /// Ends one session (signing out); nothing if there is none.
    async fn end_session(&self, fingerprint: &str) -> Result<(), StoreError>;

    /// Ends every session of `user` ("sign out everywhere"); how many.
    async fn end_sessions(&self, user: UserId) -> Result<u64, StoreError>;

    /// Deletes sessions that expired before `before`; how many.
    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Turns the second factor on for `user` with `secret`, replacing any recovery codes with
    /// these (hashes, see `domain::recovery_code_hash`).
    async fn enable_totp(
        &self,
        user: UserId,
        secret: &TotpSecret,
        recovery_hashes: Vec<String>,
    ) -> Result<(), StoreError>;

    /// Turns the second factor off and deletes the recovery codes.
    async fn disable_totp(&self, user: UserId) -> Result<(), StoreError>;

    /// Records that a code of time step `step` was accepted for `user`, if `step` is later
    /// than the last one recorded; `false` (a code used already, by a concurrent sign-in too)
    /// otherwise.
    async fn use_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError>;

    /// Marks the unused recovery code of `user` with this hash used; `false` if there is none.
    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
