//! The accounts service: `GET /authorize` and `POST /api/token`.

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

/// Every scope the Web API defines (the spec's `oauth_2_0` scheme).
pub(crate) const SCOPES: &[&str] = &[
    "app-remote-control",
    "playlist-read-private",
    "playlist-read-collaborative",
    "playlist-modify-public",
    "playlist-modify-private",
    "user-library-read",
    "user-library-modify",
    "user-read-private",
    "user-read-email",
    "user-follow-read",
    "user-follow-modify",
    "user-top-read",
    "user-read-playback-position",
    "user-read-playback-state",
    "user-read-recently-played",
    "user-read-currently-playing",
    "user-modify-playback-state",
    "ugc-image-upload",
    "streaming",
];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/authorize", get(authorize)).route("/api/token", post(token))
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn field(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

async fn authorize(State(app): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let q = pairs(q.unwrap_or_default().as_bytes());
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
            Err(_) => (StatusCode::BAD_REQUEST, "INVALID_CLIENT: Invalid redirect URI").into_response(),
        },
        AuthorizeOutcome::ErrorPage(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

fn grant_error(error: GrantError) -> Response {
    let body = json!({ "error": error.error, "error_description": error.description });
    let mut response = (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn token_response(pair: TokenPair) -> Response {
    let body = json!({
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "scope": pair.scopes.join(" "),
        "expires_in": pair.expires_in.as_secs(),
        "refresh_token": pair.refresh_token,
    });
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn token(State(app): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return grant_error(GrantError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let form = pairs(&body);
    let client = match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(value) => match parse_basic_auth(value) {
            Some((client_id, client_secret)) => ClientAuth::Basic { client_id, client_secret },
            None => return grant_error(GrantError::invalid_request("malformed Authorization header")),
        },
        None => field(&form, "client_id").map_or(ClientAuth::None, ClientAuth::PublicId),
    };
    let result = match field(&form, "grant_type").as_deref() {
        Some("authorization_code") => {
            let Some(code) = field(&form, "code") else {
                return grant_error(GrantError::invalid_request("code must be provided"));
            };
            let redirect_uri = field(&form, "redirect_uri");
            let verifier = field(&form, "code_verifier");
            lock(&app.auth).exchange_code(&code, redirect_uri.as_deref(), &client, verifier.as_deref())
        }
        Some("refresh_token") => {
            let Some(refresh_token) = field(&form, "refresh_token") else {
                return grant_error(GrantError::invalid_request("refresh_token must be provided"));
            };
            lock(&app.auth).refresh(&refresh_token, &client)
        }
        Some(_) => Err(GrantError::unsupported_grant_type()),
        None => Err(GrantError::invalid_request("grant_type must be provided")),
    };
    match result {
        Ok(pair) => token_response(pair),
        Err(error) => grant_error(error),
    }
}
