//! The one error type of the web layer: logged once, shown to the visitor as a generic page.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const GENERIC_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title>\
<link rel=\"stylesheet\" href=\"/static/main.css\"></head><body><main class=\"container\"><h1>Something went wrong</h1>\
<p>Something went wrong on our side. Please try again in a moment.</p><p><a href=\"/\">Back to the home page</a></p>\
</main></body></html>";

/// An internal failure while handling a request. The details go to the log, never to the client.
/// `Clone`, so one failed read can answer every request that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("template: {0}")]
    Template(#[from] mailer::TemplateError),
}

const UNAVAILABLE_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Temporarily unavailable</title>\
<link rel=\"stylesheet\" href=\"/static/main.css\"></head><body><main class=\"container\"><h1>Temporarily unavailable</h1>\
<p>We cannot take registrations for a moment. Nothing was saved; please try again in a few seconds.</p>\
<p><a href=\"/\">Back to the home page</a></p></main></body></html>";

/// Seconds a client is asked to wait when the database is unreachable.
const RETRY_AFTER_SECONDS: &str = "5";

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::Store(error) = &self
            && error.is_busy()
        {
            metrics::counter!("store_busy_total").increment(1);
            tracing::warn!("too many requests waiting for the database: answering 503");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                    (header::RETRY_AFTER, "1"),
                ],
                UNAVAILABLE_PAGE,
            )
                .into_response();
        }
        if let Self::Store(error) = &self
            && error.is_unavailable()
        {
            tracing::warn!(%error, "database unavailable: answering 503");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                    (header::RETRY_AFTER, RETRY_AFTER_SECONDS),
                ],
                UNAVAILABLE_PAGE,
            )
                .into_response();
        }
        tracing::error!(error = %self, "request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            GENERIC_PAGE,
        )
            .into_response()
    }
}
