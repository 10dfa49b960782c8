//! The one error type of the web layer: logged once, shown to the visitor as a generic page.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The generic pages are fixed text, not templates (a template may be what failed): one per
/// language.
const GENERIC_PAGE_ZH: &str = "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>出错了</title>\
<link rel=\"stylesheet\" href=\"/static/main.css\"></head><body><main class=\"container\"><h1>出错了</h1>\
<p>我们这边出了点问题。请稍后再试。</p><p><a href=\"/\">返回首页</a></p>\
</main></body></html>";

const UNAVAILABLE_PAGE_ZH: &str = "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>暂时无法使用</title>\
<link rel=\"stylesheet\" href=\"/static/main.css\"></head><body><main class=\"container\"><h1>暂时无法使用</h1>\
<p>我们暂时无法接受注册。没有保存任何内容；请几秒钟后重试。</p>\
<p><a href=\"/\">返回首页</a></p></main></body></html>";

/// The generic error page and the unavailable page in the request's language.
fn pages() -> (&'static str, &'static str) {
    match crate::i18n::current() {
        domain::Locale::En => (GENERIC_PAGE, UNAVAILABLE_PAGE),
        domain::Locale::ZhCn => (GENERIC_PAGE_ZH, UNAVAILABLE_PAGE_ZH),
    }
}

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
    /// Anything else that should not happen (a hashing task that died, a QR code too large).
    #[error("{0}")]
    Internal(String),
}

const UNAVAILABLE_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Temporarily unavailable</title>\
<link rel=\"stylesheet\" href=\"/static/main.css\"></head><body><main class=\"container\"><h1>Temporarily unavailable</h1>\
<p>We cannot take registrations for a moment. Nothing was saved; please try again in a few seconds.</p>\
<p><a href=\"/\">Back to the home page</a></p></main></body></html>";

/// Seconds a client is asked to wait when the database is unreachable.
const RETRY_AFTER_SECONDS: &str = "5";

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (generic_page, unavailable_page) = pages();
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
                unavailable_page,
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
                unavailable_page,
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
            generic_page,
        )
            .into_response()
    }
}
