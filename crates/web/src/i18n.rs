//! The visitor's language: chosen per request from `Accept-Language` (English when it names
//! none of ours), kept for the request in a task-local, and used for every page and message the
//! request shows. The page texts are Fluent messages (`templates/locales/<locale>/web.ftl`).
//!
//! The delivery dashboard and the JSON API's error texts are for operators and developers: they
//! stay in English.

use std::path::PathBuf;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use domain::{EmailError, Locale};
use mailer::Templates;
use mailer::i18n::{Catalog, CatalogError, MessageFile};
use serde::Serialize;

use crate::{AppState, PAGE_TEMPLATES};

tokio::task_local! {
    static LOCALE: Locale;
}

/// The pages' texts per language, English first (the default). A directory can override any
/// message (`locales/<locale>/web.ftl` under it).
pub const PAGE_MESSAGES: &[MessageFile] = &[
    MessageFile {
        locale: "en",
        file: "web.ftl",
        source: include_str!("../../../templates/locales/en/web.ftl"),
    },
    MessageFile {
        locale: "zh-CN",
        file: "web.ftl",
        source: include_str!("../../../templates/locales/zh-CN/web.ftl"),
    },
];

/// The page templates with their messages, each overridable from `override_dir` (a page for one
/// language as `<locale>/web/home.html`). An override message file that does not parse is an
/// error.
pub fn page_templates(override_dir: Option<PathBuf>) -> Result<Templates, CatalogError> {
    let catalog = Catalog::new(PAGE_MESSAGES, override_dir.as_deref())?;
    Ok(Templates::localized(PAGE_TEMPLATES, catalog, override_dir))
}

/// The language of the request being handled (English outside one).
pub fn current() -> Locale {
    LOCALE.try_with(|locale| *locale).unwrap_or_default()
}

/// The language an `Accept-Language` header asks for, English by default.
pub fn from_headers(headers: &axum::http::HeaderMap) -> Locale {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok())
        .and_then(Locale::negotiate)
        .unwrap_or_default()
}

/// Middleware: runs the request in the language its `Accept-Language` asks for, and says so
/// (`Content-Language`; `Vary: Accept-Language` for caches).
pub(crate) async fn negotiate(request: Request, next: Next) -> Response {
    let locale = from_headers(request.headers());
    let mut response = LOCALE.scope(locale, next.run(request)).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_LANGUAGE) {
        headers.insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(locale.as_str()),
        );
    }
    headers.append(header::VARY, HeaderValue::from_static("accept-language"));
    response
}

/// Message `id` in the request's language.
pub(crate) fn text(state: &AppState, id: &str) -> String {
    state.pages.message(current().as_str(), id, &[])
}

/// Renders a page in the request's language.
pub(crate) fn render(
    state: &AppState,
    name: &str,
    ctx: &impl Serialize,
) -> Result<String, mailer::TemplateError> {
    state.pages.render_in(current().as_str(), name, ctx)
}

/// Renders an operator's page (the dashboard): always English.
pub(crate) fn render_english(
    state: &AppState,
    name: &str,
    ctx: &impl Serialize,
) -> Result<String, mailer::TemplateError> {
    state.pages.render_in(Locale::En.as_str(), name, ctx)
}

/// The message id of an address's error (the form shows it under the field).
pub(crate) fn email_error(error: &EmailError) -> &'static str {
    match error {
        EmailError::Empty => "email-error-empty",
        EmailError::TooLong => "email-error-too-long",
        EmailError::LocalPartTooLong => "email-error-local-too-long",
        EmailError::ControlCharacter => "email-error-control",
        EmailError::DisplayName => "email-error-display-name",
        EmailError::BadAt => "email-error-at",
        EmailError::InvalidLocalPart => "email-error-local",
        EmailError::InvalidDomain => "email-error-domain",
    }
}

/// The ids of the messages the server's code uses (the templates name theirs with `t("…")`):
/// each must exist in every locale.
pub const CODE_MESSAGE_IDS: &[&str] = &[
    "flash-registered",
    "flash-confirmed",
    "flash-already-confirmed",
    "flash-invalid-link",
    "flash-resent",
    "form-expired-title",
    "form-expired",
    "form-too-large",
    "form-unreadable",
    "email-error-empty",
    "email-error-too-long",
    "email-error-local-too-long",
    "email-error-control",
    "email-error-display-name",
    "email-error-at",
    "email-error-local",
    "email-error-domain",
    "too-many-title",
    "too-many",
    "not-found-title",
    "not-found",
    "code-digits",
    "code-email-missing",
    "code-wrong",
    "link-invalid-title",
    "stop-link-invalid",
    "stop-done-title",
    "stop-done",
    "password-too-short",
    "password-too-long",
    "signin-wrong",
    "signin-unconfirmed",
    "signin-step-expired",
    "signin-code-wrong",
    "account-current-wrong",
    "totp-setup-expired",
    "totp-disabled",
    "reset-link-invalid",
    "reset-done-title",
    "reset-done",
];
