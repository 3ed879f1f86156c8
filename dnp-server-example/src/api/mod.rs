//! The JSON API under `/api/v1`, and the operational endpoints (`/health`, `/ready`,
//! `/metrics`). The OpenAPI document is generated from these handlers.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

pub mod accounts;
pub mod analytics;
pub mod connections;
pub mod dnp;
pub mod enforcement;
pub mod library;
pub mod ops;
pub mod page;
pub mod settings;
pub mod social;

#[derive(OpenApi)]
#[openapi(
    info(title = "dnp API", description = "The dnp reference server: one Do-Not-Play list, enforced on your music libraries with a preview before and an undo after."),
    servers((url = "/api/v1")),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// The `/api/v1` routes and their OpenAPI document.
pub(crate) fn api_v1() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(accounts::router())
        .merge(dnp::router())
        .merge(connections::router())
        .merge(library::router())
        .merge(enforcement::router())
        .merge(settings::router())
        .merge(analytics::router())
        .merge(social::router())
        .split_for_parts()
}

/// The whole HTTP application over `state`.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_v1();
    let openapi_json = std::sync::Arc::new(openapi.to_json().unwrap_or_else(|_| "{}".to_owned()));
    let api = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = openapi_json.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], doc.as_str().to_owned()) }
            }),
        )
        .fallback(not_found);
    let max_body = state.config().max_body_bytes;
    Router::new()
        .nest("/api/v1", api)
        .merge(ops::router())
        .merge(crate::web::router())
        .layer(axum::middleware::from_fn(crate::web::browser_landing))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn(crate::http::route_template))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("a handler panicked").into_response()))
        .layer(axum::middleware::from_fn(crate::http::observe))
        .with_state(state)
}

/// Parses an optional JSON body: empty means the default.
pub(crate) fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))
}

async fn not_found() -> Response {
    ApiError::not_found("route_not_found", "no such route; the API is under /api/v1 (see /api/v1/openapi.json)")
        .into_response()
}

async fn method_not_allowed() -> Response {
    let mut r = ApiError::bad_request("method_not_allowed", "this route does not accept that method").into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}
