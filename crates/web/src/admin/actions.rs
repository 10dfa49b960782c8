//! The dashboard's buttons: requeue a dead message, resend a confirmation. Forms with a CSRF
//! token bound to the admin credential (not to the public forms' cookie).

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use domain::{MessageId, RequestId, ResendPolicy};
use store::Resend;

use crate::forms::ButtonForm;
use crate::pages::{message_page_english, not_found};
use crate::{AppError, AppState};

/// The CSRF check of a button; `Some` is the 403 (or 4xx) page to answer instead.
pub(super) fn check_button(
    state: &AppState,
    form: Result<Form<ButtonForm>, FormRejection>,
) -> Option<Response> {
    let token = match form {
        Ok(Form(form)) => form.csrf_token,
        Err(rejection) => {
            let page = message_page_english(
                state,
                rejection.status(),
                "Bad request",
                "The form could not be read.",
            );
            return Some(page.unwrap_or_else(IntoResponse::into_response));
        }
    };
    let bound = state.config.admin_token.as_ref().is_some_and(|admin| {
        state
            .csrf
            .verify_admin(&admin.binding(), &token, state.clock.now().timestamp())
    });
    if bound {
        return None;
    }
    tracing::info!("admin form without a valid CSRF token refused");
    let page = message_page_english(
        state,
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form has expired or did not come from this site. Please reload the page and try again.",
    );
    Some(page.unwrap_or_else(IntoResponse::into_response))
}

/// A pressed button: the message id in its URL and the request's id, once its form's CSRF token
/// is checked. A form that cannot be read, or a bad token, is answered by the rejection (a 4xx
/// page).
pub(super) struct Pressed {
    pub(super) id: MessageId,
    request_id: Option<RequestId>,
}

impl FromRequest<AppState> for Pressed {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Path(id) = Path::<i64>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let request_id = parts.extensions.get::<RequestId>().copied();
        let form = Form::<ButtonForm>::from_request(Request::from_parts(parts, body), state).await;
        match check_button(state, form) {
            Some(refused) => Err(refused),
            None => Ok(Self {
                id: MessageId(id),
                request_id,
            }),
        }
    }
}

pub(super) fn back_to(id: i64, done: &str) -> Response {
    Redirect::to(&format!("/admin/messages/{id}?done={done}")).into_response()
}

/// `POST /admin/messages/{id}/requeue`: a dead message gets a fresh start and is published.
pub(super) async fn requeue(
    State(state): State<AppState>,
    pressed: Pressed,
) -> Result<Response, AppError> {
    let Pressed { id, request_id } = pressed;
    let requeued = state
        .messages
        .requeue_dead(Some(id), state.clock.now())
        .await?;
    if requeued.is_empty() {
        return Ok(back_to(id.0, "not-dead"));
    }
    tracing::info!(message_id = %id, "dead message requeued from the dashboard");
    crate::forms::publish_job(&state, id, request_id).await;
    Ok(back_to(id.0, "requeued"))
}

/// `POST /admin/messages/{id}/resend`: a fresh confirmation email to this message's account,
/// without the visitor-facing cooldown and cap (an operator decided), but never while one is
/// still on its way.
pub(super) async fn resend(
    State(state): State<AppState>,
    pressed: Pressed,
) -> Result<Response, AppError> {
    let Pressed { id, request_id } = pressed;
    let Some(record) = state.messages.get(id).await? else {
        return not_found(State(state)).await;
    };
    let outcome = state
        .users
        .resend(
            &record.message.recipient,
            ResendPolicy::UNLIMITED,
            state.clock.now(),
        )
        .await?;
    let done = match outcome {
        Resend::Queued(new) => {
            tracing::info!(message_id = %new, "confirmation resent from the dashboard");
            crate::forms::publish_job(&state, new, request_id).await;
            return Ok(back_to(new.0, "resent"));
        }
        Resend::Pending => "pending",
        Resend::AlreadyConfirmed => "confirmed",
        Resend::NotRegistered => "no-account",
        Resend::CoolingDown | Resend::DailyCapReached | Resend::Suppressed => "pending",
    };
    Ok(back_to(id.0, done))
}

/// `POST /admin/suppressions/{id}/lift`: the mailbox can be emailed again.
pub(super) async fn lift(
    State(state): State<AppState>,
    pressed: Pressed,
) -> Result<Response, AppError> {
    let Some(store) = &state.suppressions else {
        return not_found(State(state)).await;
    };
    let id = domain::SuppressionId(pressed.id.0);
    let done = if store.lift(id).await? {
        tracing::info!(
            suppression_id = id.0,
            "suppression lifted from the dashboard"
        );
        "lifted"
    } else {
        "gone"
    };
    Ok(Redirect::to(&format!("/admin/suppressions?done={done}")).into_response())
}
