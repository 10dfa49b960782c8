//! `GET /admin` and `GET /admin/messages/{id}`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use domain::{EmailAddress, MessageId, MessageKind, MessageStatus};
use store::MessageQuery;

use super::PAGE_SIZE;
use super::views::{
    AttemptRow, Counts, DashboardQuery, DashboardView, FeedbackRow, MessageView, NoticeQuery, Row,
    SuppressionRow, SuppressionsView, WebhookView, age, form_urlencode, notice, row, when,
};
use crate::pages::{html, message_page_english, not_found};
use crate::{AppError, AppState};

/// `GET /admin`: counts, the queue, and the newest messages (or those of one address).
pub(super) async fn dashboard(
    State(state): State<AppState>,
    query: Result<Query<DashboardQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Ok(Query(query)) = query else {
        return message_page_english(
            &state,
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The dashboard's address could not be read.",
        );
    };
    let stats = state.messages.stats().await?;
    let queue_depth = match state.queue.depth().await {
        Ok(depth) => Some(depth),
        Err(error) => {
            tracing::warn!(%error, "queue depth unavailable for the dashboard");
            None
        }
    };
    let now = state.clock.now();
    let search = query
        .email
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let (recipient, search_error) = match search.map(EmailAddress::parse) {
        None => (None, None),
        Some(Ok(email)) => (Some(email), None),
        Some(Err(_)) => (None, Some("That is not an email address.")),
    };
    let rows: Vec<Row> = if search_error.is_some() {
        Vec::new()
    } else {
        state
            .messages
            .list(MessageQuery {
                recipient: recipient.clone(),
                before: query.before.map(MessageId),
                kind: None,
                limit: PAGE_SIZE,
            })
            .await?
            .into_iter()
            .map(row)
            .collect()
    };
    let next_before = (rows.len() as u64 == PAGE_SIZE)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let view = DashboardView {
        counts: Counts {
            queued: stats.queued,
            sending: stats.sending,
            retrying: stats.retrying,
            sent: stats.sent,
            sent_is_estimate: stats.sent_is_estimate,
            dead: stats.dead,
            cancelled: stats.cancelled,
            bounced: stats.bounced,
            complained: stats.complained,
        },
        queue_depth,
        oldest_owed_age: stats.oldest_owed.map(|t| age((now - t).num_seconds())),
        search_masked: recipient.as_ref().map(EmailAddress::masked),
        search_error,
        // Kept for the paging link only; the page never prints it.
        search_param: recipient
            .as_ref()
            .map(|e| form_urlencode(e.as_str()))
            .unwrap_or_default(),
        rows,
        next_before,
        paged: query.before.is_some(),
    };
    Ok(html(
        StatusCode::OK,
        crate::i18n::render_english(&state, "web/admin.html", &view)?,
    ))
}

/// `GET /admin/messages/{id}`: one message and its attempts.
pub(super) async fn message(
    State(state): State<AppState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, AppError> {
    let Ok(Path(id)) = id else {
        return not_found(State(state)).await;
    };
    let Some(record) = state.messages.get(MessageId(id)).await? else {
        return not_found(State(state)).await;
    };
    let attempts = state
        .messages
        .attempts(MessageId(id))
        .await?
        .into_iter()
        .map(|a| AttemptRow {
            attempt: a.attempt,
            outcome: a.outcome.as_str(),
            error: a
                .error
                .as_deref()
                .map(|e| record.message.recipient.mask_in(e)),
            provider_message_id: a.provider_message_id,
            finished: when(a.finished_at),
        })
        .collect();
    let feedback = match &state.feedback {
        Some(store) => store
            .feedback(MessageId(id))
            .await?
            .into_iter()
            .map(|f| FeedbackRow {
                kind: f.kind.as_str(),
                detail: record.message.recipient.mask_in(&f.detail),
                occurred: when(f.occurred_at),
                received: when(f.received_at),
            })
            .collect(),
        None => Vec::new(),
    };
    let dead = record.message.status == MessageStatus::Dead;
    let webhook = match record.message.kind {
        MessageKind::Webhook => state
            .messages
            .webhook(MessageId(id))
            .await?
            .as_ref()
            .map(WebhookView::new),
        MessageKind::Confirm | MessageKind::PasswordReset | MessageKind::PasswordChanged => None,
    };
    let csrf_token = button_token(&state);
    let view = MessageView {
        row: row(record),
        attempts,
        feedback,
        dead,
        notice: query.done.as_deref().and_then(notice),
        csrf_token,
        webhook,
    };
    Ok(html(
        StatusCode::OK,
        crate::i18n::render_english(&state, "web/admin_message.html", &view)?,
    ))
}

/// The token the dashboard's buttons carry: bound to the admin credential.
fn button_token(state: &AppState) -> String {
    state
        .config
        .admin_token
        .as_ref()
        .map(|admin| {
            state
                .csrf
                .admin_token(&admin.binding(), state.clock.now().timestamp())
        })
        .unwrap_or_default()
}

/// `GET /admin/suppressions`: the suppressed mailboxes (masked), newest first, each with a
/// button to lift it.
pub(super) async fn suppressions(
    State(state): State<AppState>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, AppError> {
    let Some(store) = &state.suppressions else {
        return not_found(State(state)).await;
    };
    let rows = store
        .list(SUPPRESSIONS_SHOWN)
        .await?
        .into_iter()
        .map(|s| SuppressionRow {
            id: s.id.0,
            mailbox: s.mailbox_key.masked(),
            source: s.source.as_str(),
            since: when(s.created_at),
        })
        .collect();
    let view = SuppressionsView {
        rows,
        notice: match query.done.as_deref() {
            Some("lifted") => Some("Lifted: the mailbox can be emailed again."),
            Some("gone") => Some("That suppression was already lifted."),
            _ => None,
        },
        csrf_token: button_token(&state),
    };
    Ok(html(
        StatusCode::OK,
        crate::i18n::render_english(&state, "web/admin_suppressions.html", &view)?,
    ))
}

/// Suppressions the page shows at most (newest first).
const SUPPRESSIONS_SHOWN: u64 = 500;
