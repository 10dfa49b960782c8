//! The delivery dashboard at `/admin`: counts by state, the queue, recent messages (paged,
//! searchable by exact address), one message's attempt history, and buttons to requeue a dead
//! message or resend a confirmation. Mounted only when `ADMIN_TOKEN` is set (otherwise `/admin`
//! is the ordinary 404); every request must carry the token, as `Authorization: Bearer <token>`
//! or as the password of HTTP Basic authentication (any user name). The buttons are forms with
//! the site's CSRF token. Recipients are shown masked; a searched address is only a lookup key.
//!
//! One concern a file: access (the token) and the routes here, what the pages show in `views`,
//! the pages in `pages`, the buttons in `actions`.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::headers::authorization::{Basic, Bearer};
use axum_extra::headers::{Authorization, HeaderMapExt as _};
use domain::AdminToken;

use crate::AppState;
use crate::pages::message_page_english;

mod actions;
mod pages;
mod views;

/// Messages per dashboard page.
pub const PAGE_SIZE: u64 = 50;

/// Whether the request's `Authorization` header carries the admin token: as a Bearer token, or
/// as the password of HTTP Basic authentication (any user name). Read with the `headers`
/// crate's typed `Authorization`; the token is compared in constant time.
fn admits(token: &AdminToken, headers: &HeaderMap) -> bool {
    if let Some(Authorization(bearer)) = headers.typed_get::<Authorization<Bearer>>() {
        return token.matches(bearer.token().trim_end().as_bytes());
    }
    if let Some(Authorization(basic)) = headers.typed_get::<Authorization<Basic>>() {
        return token.matches(basic.password().as_bytes());
    }
    false
}

/// The dashboard's routes, behind the token check.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin", get(pages::dashboard))
        .route("/admin/messages/{id}", get(pages::message))
        .route("/admin/messages/{id}/requeue", post(actions::requeue))
        .route("/admin/messages/{id}/resend", post(actions::resend))
        .route("/admin/suppressions", get(pages::suppressions))
        .route("/admin/suppressions/{id}/lift", post(actions::lift))
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = crate::limits::request_ip(&state, &request);
    if let Some(wait) = ip.and_then(|ip| state.credential_throttle.blocked(ip)) {
        tracing::info!("admin request refused: too many wrong credentials from this client");
        return crate::pages::too_many_requests(&state, wait);
    }
    let admitted = state
        .config
        .admin_token
        .as_ref()
        .is_some_and(|token| admits(token, request.headers()));
    if admitted {
        return next.run(request).await;
    }
    tracing::info!("admin request without a valid token refused");
    if let Some(wait) = ip.and_then(|ip| state.credential_throttle.failed(ip)) {
        return crate::pages::too_many_requests(&state, wait);
    }
    let mut response = message_page_english(
        &state,
        StatusCode::UNAUTHORIZED,
        "Sign in required",
        "The delivery dashboard needs the admin token.",
    )
    .unwrap_or_else(IntoResponse::into_response);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"admin\", charset=\"UTF-8\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    #[test]
    fn the_token_is_accepted_as_bearer_or_basic_password_only() {
        let token = AdminToken::new("0123456789abcdef-admin").unwrap();
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            admits(&token, &headers)
        };
        assert!(with("Bearer 0123456789abcdef-admin"));
        assert!(with("bearer   0123456789abcdef-admin "));
        let basic = STANDARD.encode("ops:0123456789abcdef-admin");
        assert!(with(&format!("Basic {basic}")));
        assert!(!with("Bearer 0123456789abcdef-admiN"));
        assert!(!with("Bearer 0123456789abcdef-admin-and-more"));
        assert!(!with("Bearer "));
        assert!(!with(&format!(
            "Basic {}",
            STANDARD.encode("0123456789abcdef-admin")
        )));
        assert!(!with("Basic !!!"));
        assert!(!with("Digest 0123456789abcdef-admin"));
        assert!(!admits(&token, &HeaderMap::new()));
    }
}
