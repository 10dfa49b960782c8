//! Request ids: every request gets one, every log line it causes carries it (in the `request`
//! span), its response echoes it in `X-Request-Id`, and a job it publishes takes it along to
//! the worker.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use domain::RequestId;
use tracing::Instrument;

/// The request and response header holding the request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The route of a request that matched none (the 404 page).
const NO_ROUTE: &str = "<fallback>";

/// The id of a request with these headers: its `X-Request-Id` when that is 1 to 64 characters
/// of `[A-Za-z0-9._-]` (set by a proxy or a client to follow a request across systems), else a
/// fresh random one (a UUID v4 as 32 hex digits).
pub fn request_id_from(headers: &HeaderMap) -> RequestId {
    headers
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(|| RequestId::from_u128(uuid::Uuid::new_v4().as_u128()))
}

/// Middleware: gives the request its id (a [`RequestId`] request extension), runs it in a
/// `request` span with the id, the method and the route template (`/confirm/{token}`, never the
/// path itself, which holds the confirmation token, nor the query), logs one INFO line when it
/// completes (status, latency) and echoes the id in the response's `X-Request-Id`.
pub async fn track(mut request: Request, next: Next) -> Response {
    let id = request_id_from(request.headers());
    request.extensions_mut().insert(id);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(NO_ROUTE, MatchedPath::as_str)
        .to_owned();
    // At ERROR level so that the span (and the id on every line) stays on whatever RUST_LOG
    // lets through: a warning or an error is where the id matters most.
    let span = tracing::error_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        route = %route,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = (latency_ms * 1000.0).round() / 1000.0,
            "request completed"
        );
    });
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_well_formed_incoming_id_is_kept_and_anything_else_replaced() {
        assert_eq!(
            request_id_from(&with("edge-42.a_b")).as_str(),
            "edge-42.a_b"
        );
        let long = "a".repeat(64);
        assert_eq!(request_id_from(&with(&long)).as_str(), long);
        for bad in [
            "",
            "a".repeat(65).as_str(),
            "has space",
            "x@example.com",
            "a/b",
        ] {
            let id = request_id_from(&with(bad));
            assert_eq!(id.as_str().len(), 32, "{bad:?} -> {id}");
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let fresh = request_id_from(&HeaderMap::new());
        assert_ne!(fresh, request_id_from(&HeaderMap::new()));
        assert_eq!(fresh.as_str().len(), 32);
    }
}
