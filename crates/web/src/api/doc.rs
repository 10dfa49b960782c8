//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and answer types, served at `GET /api/v1/openapi.json`.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Email confirmation service API",
        description = "For applications' servers: register an address, ask for a fresh email, confirm with a token or a code, read an account. Every call but this document needs `Authorization: Bearer <key>` with a key from `API_KEYS`. Errors are `{\"error\": code, \"message\": text}`."
    ),
    paths(handlers::register, handlers::resend, handlers::confirm, handlers::account),
    components(schemas(
        handlers::EmailRequest,
        handlers::RegistrationRequest,
        handlers::ConfirmationRequest,
        handlers::TokenConfirmation,
        handlers::CodeConfirmation,
        handlers::RegistrationAccepted,
        handlers::ResendAccepted,
        handlers::Account,
        handlers::EmailState,
        super::ApiError,
        super::ErrorCode
    )),
    modifiers(&BearerKey),
    tags((name = "accounts", description = "Registration and confirmation"))
)]
struct ApiDoc;

/// Declares the `api_key` scheme the paths' `security` names: HTTP Bearer.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as JSON (built once).
pub fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi().to_pretty_json().unwrap_or_else(|error| {
            format!("{{\"error\": \"internal\", \"message\": \"{error}\"}}")
        })
    })
}

/// `GET /api/v1/openapi.json`.
pub(super) async fn serve() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi_json(),
    )
        .into_response()
}
