//! The two forms of the home page: `POST /` (register) and `POST /resend`.

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use domain::{EmailAddress, MAX_ADDRESS_LEN, RequestId};
use queue::Job;
use serde::Deserialize;
use store::{Registration, Resend};

use crate::pages::{FormKind, FormProblem, message_page, redirect_home, render_home};
use crate::{AppError, AppState, Flash, i18n};

/// The registration and resend forms: an `email` field (and the registration's optional
/// `password`), the CSRF token, and the honeypot
/// (`website`, hidden from people; bots that fill it in are ignored). Missing fields are empty.
#[derive(Debug, Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
    /// The registration's optional password (with accounts on).
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    website: String,
}

/// A button's form (the emailed links' pages, the dashboard's buttons): the CSRF token only.
#[derive(Debug, Deserialize)]
pub struct ButtonForm {
    #[serde(default)]
    pub(crate) csrf_token: String,
}

/// Publishes the job of a committed message, tagged with the id of the request that owed it (so
/// the worker's log lines carry it), bounded by the publish timeout. After a failure the queue
/// is left alone for a few seconds (registrations stay fast during a Redis outage; the sweeper
/// sends what was not published).
pub(crate) async fn publish_job(
    state: &AppState,
    message: domain::MessageId,
    request_id: Option<RequestId>,
) {
    if state.queue_gate.is_closed() {
        tracing::debug!(message_id = %message, "queue recently failed; leaving this one to the sweeper");
        return;
    }
    let publish = state
        .queue
        .publish(Job::new(message).with_request_id(request_id));
    let failure = match tokio::time::timeout(state.config.publish_timeout, publish).await {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {:?}", state.config.publish_timeout),
    };
    state.queue_gate.close_for(state.config.publish_backoff);
    metrics::counter!("publish_failures_total").increment(1);
    tracing::warn!(message_id = %message, error = %failure, "publish failed; the sweeper will send this message");
}

/// Refuses (403, nothing done) a form post that did not come from this site's own page: one a
/// browser marks `Sec-Fetch-Site: cross-site`, one whose `Origin` names another site, or one
/// without a valid CSRF token for its cookie. `Ok(None)`: the post may go on.
///
/// `Sec-Fetch-Site`, set by the browser itself, decides when present. Without it (older
/// browsers) the `Origin` is compared with BASE_URL's; `Origin: null` is not evidence either
/// way (browsers send it for same-site posts under `Referrer-Policy: no-referrer`), so the
/// CSRF token decides then.
pub(crate) fn refuse_foreign_post(
    state: &AppState,
    headers: &HeaderMap,
    csrf_token: &str,
    form: &'static str,
) -> Result<Option<Response>, AppError> {
    let cross_site =
        match headers.get("sec-fetch-site") {
            Some(site) => site.as_bytes().eq_ignore_ascii_case(b"cross-site"),
            None => headers.get(header::ORIGIN).is_some_and(|origin| {
                origin.as_bytes() != b"null"
                    && state.config.public_origin.as_deref().is_some_and(|ours| {
                        !origin.as_bytes().eq_ignore_ascii_case(ours.as_bytes())
                    })
            }),
        };
    let reason = if cross_site {
        "cross-site"
    } else if !state
        .csrf
        .verify(headers, csrf_token, state.clock.now().timestamp())
    {
        "csrf"
    } else {
        return Ok(None);
    };
    tracing::info!(form, reason, "form post refused");
    metrics::counter!("csrf_rejected_total").increment(1);
    message_page(
        state,
        StatusCode::FORBIDDEN,
        "form-expired-title",
        "form-expired",
    )
    .map(Some)
}

/// The checks every form post goes through before its own work: a readable body (413 when too
/// large, 400 otherwise), a valid CSRF token (403), the honeypot (filled in: answered like a
/// success, nothing done) and a valid address (422). `Ok(None)` means "answer as if done".
async fn accept(
    state: &AppState,
    headers: &HeaderMap,
    which: FormKind,
    form: Result<Form<EmailForm>, FormRejection>,
) -> Result<Result<Option<(EmailAddress, String)>, Response>, AppError> {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            let status = rejection.status();
            let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "form-too-large"
            } else {
                "form-unreadable"
            };
            let problem = FormProblem {
                form: which,
                input: String::new(),
                error: i18n::text(state, error),
            };
            return render_home(state, headers, status, None, Some(problem))
                .await
                .map(Err);
        }
    };
    if let Some(refused) = refuse_foreign_post(state, headers, &form.csrf_token, which.name())? {
        return Ok(Err(refused));
    }
    if !form.website.is_empty() {
        tracing::info!(form = ?which, "honeypot field filled in: ignoring the post");
        metrics::counter!("honeypot_total").increment(1);
        return Ok(Ok(None));
    }
    match EmailAddress::parse(&form.email) {
        Ok(email) => Ok(Ok(Some((email, form.password)))),
        Err(error) => {
            let input = echoable(&form.email).to_owned();
            let problem = FormProblem {
                form: which,
                input,
                error: i18n::text(state, i18n::email_error(&error)),
            };
            render_home(
                state,
                headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(problem),
            )
            .await
            .map(Err)
        }
    }
}

/// What a form shows back of a rejected address: the input trimmed, when it is of sane size
/// and printable; else nothing.
pub(crate) fn echoable(input: &str) -> &str {
    if input.len() <= MAX_ADDRESS_LEN && !input.chars().any(char::is_control) {
        input.trim()
    } else {
        ""
    }
}

/// Owes a fresh confirmation email to an unconfirmed account, within the resend limits; the
/// message to publish, if one is owed. Every outcome is logged (masked) and none is visible to
/// the visitor.
async fn owe_again(
    state: &AppState,
    email: &EmailAddress,
) -> Result<Option<domain::MessageId>, AppError> {
    Ok(match resend_address(state, email).await? {
        Resend::Queued(message) => Some(message),
        _ => None,
    })
}

/// Asks the store for a fresh confirmation email to `email` within the resend limits, and
/// counts and logs (masked) the outcome. Publishing is the caller's.
pub(crate) async fn resend_address(
    state: &AppState,
    email: &EmailAddress,
) -> Result<Resend, AppError> {
    let outcome = state
        .users
        .resend(email, state.config.resend, state.clock.now())
        .await?;
    let label = match outcome {
        Resend::Queued(_) => "queued",
        Resend::NotRegistered => "not_registered",
        Resend::AlreadyConfirmed => "already_confirmed",
        Resend::Pending => "pending",
        Resend::CoolingDown => "cooling_down",
        Resend::DailyCapReached => "daily_cap",
        Resend::Suppressed => "suppressed",
    };
    metrics::counter!("resends_total", "outcome" => label).increment(1);
    let to = email.masked();
    match outcome {
        Resend::Queued(message) => {
            tracing::info!(message_id = %message, %to, "confirmation email owed again");
        }
        Resend::NotRegistered => tracing::info!(%to, "resend for an address with no account"),
        Resend::AlreadyConfirmed => {
            tracing::info!(%to, "resend for a confirmed account: nothing sent")
        }
        Resend::Pending => {
            tracing::info!(%to, "resend while a confirmation email is still on its way: nothing new")
        }
        Resend::CoolingDown => {
            tracing::info!(%to, limit = "cooldown", "resend limited: nothing sent")
        }
        Resend::DailyCapReached => {
            tracing::info!(%to, limit = "daily-cap", "resend limited: nothing sent")
        }
        Resend::Suppressed => {
            tracing::info!(%to, "resend for a suppressed mailbox: nothing sent")
        }
    }
    Ok(outcome)
}

/// Publishes `message` after the answer (see [`crate::Background`]).
pub(crate) fn publish_later(
    state: &AppState,
    message: domain::MessageId,
    request_id: Option<RequestId>,
) {
    let later = state.clone();
    state.background.spawn(async move {
        publish_job(&later, message, request_id).await;
    });
}

/// Registers `email` in `locale` (the language of every email to it): commits the user and the email owed, counts and logs the outcome, and
/// publishes the job of a new message (awaited, bounded by the publish timeout). An existing
/// address is left to the caller (`AlreadyRegistered`: nothing was written).
pub(crate) async fn register_address(
    state: &AppState,
    email: &EmailAddress,
    locale: domain::Locale,
    request_id: Option<RequestId>,
) -> Result<Registration, AppError> {
    let registration = state
        .users
        .register(email, locale, state.clock.now())
        .await?;
    match &registration {
        Registration::Created { user, message } => {
            metrics::counter!("registrations_total", "outcome" => "created").increment(1);
            tracing::info!(user_id = %user.id, message_id = %message, to = %email.masked(), "user registered");
            // The promise is already committed; the queue is only the fast path. If it is slow or
            // down, the sweeper republishes the message later.
            publish_job(state, *message, request_id).await;
        }
        Registration::CreatedWithoutEmail { user } => {
            metrics::counter!("registrations_total", "outcome" => "created").increment(1);
            tracing::info!(user_id = %user.id, to = %email.masked(), "user registered; mailbox limited or suppressed: no email owed");
        }
        Registration::AlreadyRegistered => {
            metrics::counter!("registrations_total", "outcome" => "existing").increment(1);
        }
    }
    Ok(registration)
}

/// `POST /`: register, then redirect with the same flash whether or not the address was new. An
/// existing unconfirmed address is treated as a resend.
pub async fn register(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    form: Result<Form<EmailForm>, FormRejection>,
) -> Result<Response, AppError> {
    let (email, password) = match accept(&state, &headers, FormKind::Register, form).await? {
        Ok(Some(accepted)) => accepted,
        Ok(None) => return Ok(redirect_home(&state, Flash::Registered)),
        Err(response) => return Ok(response),
    };
    // The optional password: checked and hashed before anything is stored (a bad one is a
    // 422 with the form again, nothing stored), and hashed whether or not the address is new.
    let hash = match (&state.accounts, password.is_empty()) {
        (Some(accounts), false) => match domain::Password::new(&password) {
            Ok(password) => Some(crate::account::hash_password(accounts, password).await?),
            Err(error) => {
                let problem = FormProblem {
                    form: FormKind::RegisterPassword,
                    input: email.as_str().to_owned(),
                    error: i18n::text(&state, crate::account::password_error(error)),
                };
                return render_home(
                    &state,
                    &headers,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    Some(problem),
                )
                .await;
            }
        },
        _ => None,
    };
    let request_id = request_id.map(|Extension(id)| id);
    // A correction of the address this browser registered just before (see the home page):
    // the mistyped one gets no reminder. After the answer: it is not the visitor's wait.
    if let Some(mistyped) = crate::code::pending_address(&state, &headers)
        .filter(|previous| previous.key() != email.key())
    {
        let later = state.clone();
        state.background.spawn(async move {
            let now = later.clock.now();
            match later.users.skip_reminder(&mistyped, now).await {
                Ok(true) => {
                    tracing::info!(to = %mistyped.masked(), "address corrected: no reminder to the mistyped one")
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not skip the mistyped address's reminder")
                }
            }
        });
    }
    // The code page asks only for the code on this browser (set whatever the outcome: the
    // answer is the same for every address).
    let pending = crate::code::pending_cookie(&state, &email);
    let registration = register_address(&state, &email, i18n::current(), request_id).await?;
    if let (Some(hash), Some(accounts), Registration::Created { user, .. })
    | (Some(hash), Some(accounts), Registration::CreatedWithoutEmail { user }) =
        (&hash, &state.accounts, &registration)
    {
        // A new account only: an existing address's password is never set by a registration.
        accounts
            .store
            .set_initial_password(user.id, hash, state.clock.now())
            .await?;
    }
    if let Registration::AlreadyRegistered = registration {
        tracing::info!(to = %email.masked(), "registration for an existing address: treated as a resend");
        // After the answer, so that it comes as fast as for a new address (the answer is
        // the same; nothing new needed committing before it).
        let later = state.clone();
        state.background.spawn(async move {
            match owe_again(&later, &email).await {
                Ok(Some(message)) => publish_job(&later, message, request_id).await,
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "resend behind a registration failed: nothing sent")
                }
            }
        });
    }
    let mut response = redirect_home(&state, Flash::Registered);
    if let Some(cookie) = pending {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `POST /resend`: a fresh confirmation email for an unconfirmed account (within the limits),
/// and the same answer whatever the address.
pub async fn resend(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    form: Result<Form<EmailForm>, FormRejection>,
) -> Result<Response, AppError> {
    let request_id = request_id.map(|Extension(id)| id);
    match accept(&state, &headers, FormKind::Resend, form).await? {
        Ok(Some((email, _))) => {
            if let Some(message) = owe_again(&state, &email).await? {
                publish_later(&state, message, request_id);
            }
        }
        Ok(None) => {}
        Err(response) => return Ok(response),
    }
    Ok(redirect_home(&state, Flash::Resent))
}
