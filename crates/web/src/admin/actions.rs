//! The dashboard's buttons: requeue a dead message, resend a confirmation. Forms with the
//! site's CSRF token.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use domain::{MessageId, RequestId, ResendPolicy};
use serde::Deserialize;
use store::Resend;

use crate::pages::{message_page, not_found};
use crate::{AppError, AppState};

/// A button's form: the CSRF token only.
#[derive(Debug, Deserialize)]
pub struct ButtonForm {
    #[serde(default)]
    pub(super) csrf_token: String,
}

/// The CSRF check of a button; `Some` is the 403 (or 4xx) page to answer instead.
pub(super) fn check_button(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<ButtonForm>, FormRejection>,
) -> Option<Response> {
    let token = match form {
        Ok(Form(form)) => form.csrf_token,
        Err(rejection) => {
            let page = message_page(
                state,
                rejection.status(),
                "Bad request",
                "The form could not be read.",
            );
            return Some(page.unwrap_or_else(IntoResponse::into_response));
        }
    };
    if state
        .csrf
        .verify(headers, &token, state.clock.now().timestamp())
    {
        return None;
    }
    tracing::info!("admin form without a valid CSRF token refused");
    let page = message_page(
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
    id: MessageId,
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
        let headers = parts.headers.clone();
        let form = Form::<ButtonForm>::from_request(Request::from_parts(parts, body), state).await;
        match check_button(state, &headers, form) {
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
