//! What an operator asks of delivery, from the `worker` and `server` commands: counts, dead
//! letters (list, requeue, purge), the suppression list (list, add, lift), one account's
//! history, a test email, and the DKIM DNS record. Each returns the
//! text to print; the binaries only parse arguments and print.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use domain::{
    EmailAddress, MessageId, MessageRecord, Suppression, SuppressionId, SuppressionSource,
};
use mailer::{DkimSigner, MailError, Mailer, Message};
use queue::{Job, JobQueue};
use store::{MessageQuery, MessageStore, StoreError, SuppressionStore, UserStore};

/// Why an operator command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error("message {0} is not dead (see `worker dead list`)")]
    NotDead(MessageId),
    #[error("{0:?} is too long a duration")]
    TooLong(Duration),
    #[error("there is no suppression {0} (see `worker suppressions list`)")]
    NoSuchSuppression(SuppressionId),
}

/// The subject of `worker send-test-email`.
pub const TEST_EMAIL_SUBJECT: &str = "Test email from the confirmation service";

/// Most dead messages `worker dead list` shows by default.
pub const DEAD_LIST_LIMIT: u64 = 50;

/// What `worker stats` prints: one `name value` line each for the message counts by state
/// (`queued`, `sending`, `retrying`, `sent`, `dead`, `cancelled`), the
/// age in whole seconds of the oldest owed message (0 when none is owed) and, when `queue` is
/// given, the number of jobs waiting in it.
pub async fn stats_report(
    messages: &dyn MessageStore,
    queue: Option<&dyn JobQueue>,
    now: DateTime<Utc>,
) -> Result<String, OperatorError> {
    let stats = messages.stats().await?;
    let age = stats
        .oldest_owed
        .map(|oldest| (now - oldest).num_seconds().max(0))
        .unwrap_or(0);
    let mut out = format!(
        "queued {}\nsending {}\nretrying {}\nsent {}\nsent_is_estimate {}\ndead {}\ncancelled {}\nbounced {}\ncomplained {}\noldest_owed_age_seconds {age}\n",
        stats.queued,
        stats.sending,
        stats.retrying,
        stats.sent,
        stats.sent_is_estimate,
        stats.dead,
        stats.cancelled,
        stats.bounced,
        stats.complained
    );
    if let Some(queue) = queue {
        let _ = writeln!(out, "queue_depth {}", queue.depth().await?);
    }
    Ok(out)
}

/// `worker dead list`: the dead messages, most recent failure first, as a table (id, masked
/// recipient, attempts, time, the last error on one line with the recipient masked, cut to 120
/// characters), or `no dead messages`.
pub async fn dead_list(messages: &dyn MessageStore, limit: u64) -> Result<String, OperatorError> {
    Ok(dead_table(&messages.dead(limit).await?))
}

/// The table of [`dead_list`].
pub fn dead_table(messages: &[MessageRecord]) -> String {
    if messages.is_empty() {
        return "no dead messages\n".to_owned();
    }
    let mut out = format!(
        "{:>8}  {:<32}  {:>8}  {:<20}  LAST ERROR\n",
        "ID", "RECIPIENT", "ATTEMPTS", "FAILED AT (UTC)"
    );
    for m in messages {
        // Provider errors are masked before they are stored; a row from an older version may
        // still quote the recipient.
        let error = m
            .last_error
            .as_deref()
            .map_or_else(|| "-".to_owned(), |e| m.message.recipient.mask_in(e));
        let error: String = error
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(120)
            .collect();
        let _ = writeln!(
            out,
            "{:>8}  {:<32}  {:>8}  {:<20}  {error}",
            m.message.id,
            m.message.recipient.masked(),
            m.message.attempts,
            m.updated_at.format("%Y-%m-%d %H:%M:%S"),
        );
    }
    out
}

/// `worker dead requeue`: gives one dead message (`Some(id)`) or all of them a fresh start
/// (attempts from zero) and publishes them to `queue`; with `None` (the embedded queue, inside
/// `server`) the server's own delivery loop finds them. A publish that fails is not lost: the
/// row is queued and the sweeper publishes it. Returns the line to print.
pub async fn requeue_dead(
    messages: &dyn MessageStore,
    queue: Option<&dyn JobQueue>,
    id: Option<MessageId>,
    now: DateTime<Utc>,
) -> Result<String, OperatorError> {
    let requeued = messages.requeue_dead(id, now).await?;
    if let (Some(id), true) = (id, requeued.is_empty()) {
        return Err(OperatorError::NotDead(id));
    }
    let Some(queue) = queue else {
        return Ok(format!(
            "requeued {} message(s); the server's delivery loop will send them\n",
            requeued.len()
        ));
    };
    let mut published = 0;
    for message_id in &requeued {
        if queue.publish(Job::new(*message_id)).await.is_ok() {
            published += 1;
        }
    }
    Ok(format!(
        "requeued {} message(s), {published} published to the queue (the sweeper picks up the rest)\n",
        requeued.len()
    ))
}

/// `worker dead purge --older-than`: deletes the dead messages last changed more than
/// `older_than` before `now`. Returns the line to print.
pub async fn purge_dead(
    messages: &dyn MessageStore,
    older_than: Duration,
    now: DateTime<Utc>,
) -> Result<String, OperatorError> {
    let cutoff = TimeDelta::from_std(older_than)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .ok_or(OperatorError::TooLong(older_than))?;
    let purged = messages.purge_dead(cutoff).await?;
    Ok(format!(
        "purged {purged} dead message(s) last changed before {}\n",
        cutoff.format("%Y-%m-%d %H:%M:%S UTC")
    ))
}

/// Most suppressions `worker suppressions list` shows by default.
pub const SUPPRESSION_LIST_LIMIT: u64 = 100;

/// `worker suppressions list`: the suppression list, newest first, as a table (id, masked
/// mailbox key, source, time), or `no suppressions`.
pub async fn suppression_list(
    suppressions: &dyn SuppressionStore,
    limit: u64,
) -> Result<String, OperatorError> {
    Ok(suppression_table(&suppressions.list(limit).await?))
}

/// The table of [`suppression_list`]. The mailbox keys are masked: the table may be pasted into
/// a ticket or a chat.
pub fn suppression_table(suppressions: &[Suppression]) -> String {
    if suppressions.is_empty() {
        return "no suppressions\n".to_owned();
    }
    let mut out = format!(
        "{:>8}  {:<32}  {:<10}  CREATED AT (UTC)\n",
        "ID", "MAILBOX", "SOURCE"
    );
    for s in suppressions {
        let _ = writeln!(
            out,
            "{:>8}  {:<32}  {:<10}  {}",
            s.id,
            s.mailbox_key.masked(),
            s.source.as_str(),
            s.created_at.format("%Y-%m-%d %H:%M:%S"),
        );
    }
    out
}

/// `worker suppressions add ADDRESS`: puts the address's mailbox on the suppression list
/// (source `operator`), which also cancels what is still owed to it. Returns the line to print
/// (the mailbox masked).
pub async fn suppress_address(
    suppressions: &dyn SuppressionStore,
    address: &EmailAddress,
    now: DateTime<Utc>,
) -> Result<String, OperatorError> {
    let mailbox = address.mailbox_key();
    let added = suppressions
        .suppress(&mailbox, SuppressionSource::Operator, now)
        .await?;
    Ok(if added {
        format!(
            "suppressed the mailbox {}: nothing more is sent to it\n",
            mailbox.masked()
        )
    } else {
        format!("the mailbox {} was already suppressed\n", mailbox.masked())
    })
}

/// `worker suppressions lift ID`: takes a suppression off the list, or
/// [`OperatorError::NoSuchSuppression`]. Returns the line to print.
pub async fn lift_suppression(
    suppressions: &dyn SuppressionStore,
    id: SuppressionId,
) -> Result<String, OperatorError> {
    if !suppressions.lift(id).await? {
        return Err(OperatorError::NoSuchSuppression(id));
    }
    Ok(format!(
        "lifted suppression {id}: confirmation emails may be sent to that mailbox again\n"
    ))
}

/// What `server users show` prints, and whether the user exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserReport {
    pub found: bool,
    pub text: String,
}

/// One user's state and their messages (newest first, at most 50), as `key: value` lines; for
/// the operator who typed the address, so it is shown in full (this is not a log).
pub async fn user_report(
    users: &dyn UserStore,
    messages: &dyn MessageStore,
    email: &EmailAddress,
) -> Result<UserReport, StoreError> {
    let Some(user) = users.find_by_email(email).await? else {
        return Ok(UserReport {
            found: false,
            text: format!("no user with the address {email}\n"),
        });
    };
    let when = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut text = String::new();
    let _ = writeln!(text, "user: {}", user.id);
    let _ = writeln!(text, "email: {}", user.email);
    let _ = writeln!(text, "confirmed: {}", user.confirmed);
    let _ = writeln!(text, "email_sent: {}", user.email_sent);
    let _ = writeln!(text, "registered_on: {}", when(user.registered_on));
    if let Some(at) = user.confirmed_on {
        let _ = writeln!(text, "confirmed_on: {}", when(at));
    }
    let records = messages
        .list(MessageQuery {
            recipient: Some(email.clone()),
            before: None,
            kind: None,
            limit: 50,
        })
        .await?;
    let _ = writeln!(text, "messages: {}", records.len());
    for r in records {
        let m = &r.message;
        let _ = write!(
            text,
            "- message {} {} {} attempts={} created={}",
            m.id,
            m.kind.as_str(),
            m.status,
            m.attempts,
            when(m.created_at)
        );
        if let Some(at) = r.sent_at {
            let _ = write!(text, " sent={}", when(at));
        }
        if let Some(id) = &r.provider_message_id {
            let _ = write!(text, " provider_id={id}");
        }
        if let Some(error) = &r.last_error {
            let _ = write!(text, " last_error={error:?}");
        }
        text.push('\n');
    }
    Ok(UserReport { found: true, text })
}

/// The message `worker send-test-email` sends: a subject, text and HTML, no link, no token.
pub fn test_message(to: &EmailAddress, provider: &str, now: DateTime<Utc>) -> Message {
    let when = now.format("%Y-%m-%d %H:%M:%S UTC");
    Message {
        to: to.clone(),
        subject: TEST_EMAIL_SUBJECT.to_owned(),
        text: format!(
            "This is a test email from the email-confirmation service, sent with `worker send-test-email` \
             through the {provider} transport at {when}.\n\nIf you can read it, sending works. No action is needed.\n"
        ),
        html: Some(format!(
            "<p>This is a test email from the email-confirmation service, sent with \
             <code>worker send-test-email</code> through the {provider} transport at {when}.</p>\n\
             <p>If you can read it, sending works. No action is needed.</p>\n"
        )),
        action_url: None,
    }
}

/// Sends [`test_message`] to `to` through `mailer`; on success, the line to print:
/// `sent: provider=<p> message_id=<id>` (`-` when the provider returned no id).
pub async fn send_test_email(
    mailer: &dyn Mailer,
    to: &EmailAddress,
    now: DateTime<Utc>,
) -> Result<String, MailError> {
    let provider = mailer.provider();
    let sent = mailer.send(&test_message(to, provider, now)).await?;
    tracing::info!(to = %to.masked(), provider, "test email sent");
    Ok(format!(
        "sent: provider={provider} message_id={}",
        sent.provider_message_id.as_deref().unwrap_or("-")
    ))
}

/// What `worker dkim-record` prints for the DKIM signer in use: the TXT record's name, its
/// value, and the same as a zone-file line (the value cut into the 255-character strings DNS
/// TXT records are made of). `None` when messages are not signed.
pub fn dkim_record(signer: Option<&DkimSigner>) -> Option<String> {
    let (name, value) = signer?.dns_record();
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    Some(format!(
        "name: {name}\nvalue: {value}\nzone: {name}. IN TXT ( {} )\n",
        strings.join(" ")
    ))
}
