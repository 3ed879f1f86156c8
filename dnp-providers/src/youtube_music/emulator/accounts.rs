//! Google's OAuth endpoints: `GET /o/oauth2/v2/auth`, `POST /token`, `POST /revoke`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::Shared;
use super::api::lock;
use crate::emulator::oauth::{AuthorizeOutcome, AuthorizeParams, ClientAuth, GrantError, TokenPair, parse_basic_auth};

/// The scopes the emulated Google accepts: YouTube's, and the sign-in ones.
pub(crate) const SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/youtube",
    "https://www.googleapis.com/auth/youtube.readonly",
    "https://www.googleapis.com/auth/youtube.force-ssl",
    "https://www.googleapis.com/auth/youtube.upload",
    "https://www.googleapis.com/auth/youtubepartner",
    "openid",
    "email",
    "profile",
];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/o/oauth2/v2/auth", get(authorize)).route("/token", post(token)).route("/revoke", post(revoke))
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn field(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

async fn authorize(State(app): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let q = pairs(q.unwrap_or_default().as_bytes());
    // `access_type`, `prompt` and `include_granted_scopes` are accepted: every grant here
    // is offline (comes with a refresh token) and consent is automatic.
    let params = AuthorizeParams {
        client_id: field(&q, "client_id"),
        response_type: field(&q, "response_type"),
        redirect_uri: field(&q, "redirect_uri"),
        state: field(&q, "state"),
        scope: field(&q, "scope"),
        code_challenge: field(&q, "code_challenge"),
        code_challenge_method: field(&q, "code_challenge_method"),
    };
    let user_id = app.authorizing_user();
    let outcome = lock(&app.auth).authorize(&params, &user_id, SCOPES);
    match outcome {
        AuthorizeOutcome::Redirect(location) => match HeaderValue::from_str(&location) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => (StatusCode::BAD_REQUEST, "Error 400: redirect_uri_mismatch").into_response(),
        },
        AuthorizeOutcome::ErrorPage(message) => {
            let message = if message.contains("redirect") {
                "Error 400: redirect_uri_mismatch".to_owned()
            } else {
                format!("Error 401: invalid_client ({message})")
            };
            (StatusCode::BAD_REQUEST, message).into_response()
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn grant_error(error: GrantError) -> Response {
    let status = if error.error == "invalid_client" { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
    oauth_error(status, error.error, error.description)
}

/// Google's token answer; a refresh's carries no `refresh_token` (Google does not rotate).
fn token_response(pair: TokenPair, with_refresh_token: bool) -> Response {
    let mut body = json!({
        "access_token": pair.access_token,
        "expires_in": pair.expires_in.as_secs(),
        "scope": pair.scopes.join(" "),
        "token_type": "Bearer",
    });
    if with_refresh_token && let Some(object) = body.as_object_mut() {
        object.insert("refresh_token".into(), json!(pair.refresh_token));
    }
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn form_encoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

async fn token(State(app): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !form_encoded(&headers) {
        return grant_error(GrantError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let form = pairs(&body);
    // Google takes the client's credentials in the body (client_secret_post) or as Basic.
    let client = match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(value) => match parse_basic_auth(value) {
            Some((client_id, client_secret)) => ClientAuth::Basic { client_id, client_secret },
            None => return grant_error(GrantError::invalid_request("malformed Authorization header")),
        },
        None => match (field(&form, "client_id"), field(&form, "client_secret")) {
            (Some(client_id), Some(client_secret)) => ClientAuth::Basic { client_id, client_secret },
            (Some(client_id), None) => ClientAuth::PublicId(client_id),
            (None, _) => ClientAuth::None,
        },
    };
    match field(&form, "grant_type").as_deref() {
        Some("authorization_code") => {
            let Some(code) = field(&form, "code") else {
                return grant_error(GrantError::invalid_request("Missing required parameter: code"));
            };
            let redirect_uri = field(&form, "redirect_uri");
            let verifier = field(&form, "code_verifier");
            let result = lock(&app.auth).exchange_code(&code, redirect_uri.as_deref(), &client, verifier.as_deref());
            match result {
                Ok(pair) => token_response(pair, true),
                Err(error) => grant_error(error),
            }
        }
        Some("refresh_token") => {
            let Some(refresh_token) = field(&form, "refresh_token") else {
                return grant_error(GrantError::invalid_request("Missing required parameter: refresh_token"));
            };
            let result = lock(&app.auth).refresh(&refresh_token, &client);
            match result {
                Ok(pair) => token_response(pair, false),
                Err(error) => grant_error(error),
            }
        }
        Some(_) => grant_error(GrantError::unsupported_grant_type()),
        None => grant_error(GrantError::invalid_request("Missing required parameter: grant_type")),
    }
}

async fn revoke(State(app): State<Arc<Shared>>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    // Google takes `token` in the query or in a form body.
    let mut token = field(&pairs(q.unwrap_or_default().as_bytes()), "token");
    if token.is_none() && form_encoded(&headers) {
        token = field(&pairs(&body), "token");
    }
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing required parameter: token");
    };
    if lock(&app.auth).revoke(&token) {
        (StatusCode::OK, axum::Json(json!({}))).into_response()
    } else {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "Token expired or revoked")
    }
}
