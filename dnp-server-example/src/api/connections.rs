//! Connections to music services: list, OAuth authorize and callback, disconnect.

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use dnp_core::{Connection, ConnectionStatus, ProviderError, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::crypto::sha256_hex;
use crate::db::{ms, now_ms};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::with_pool;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections))
        .routes(routes!(authorize))
        .routes(routes!(callback))
        .routes(routes!(disconnect))
}

/// How long an authorization `state` stays valid.
const STATE_TTL_MINUTES: i64 = 10;

/// A connection as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// The provider id.
    pub provider: String,
    /// The provider's name.
    pub display_name: String,
    /// `active`, `expiring_soon`, `needs_reauth` or `error`.
    pub status: String,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the tokens were last used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// When it was connected.
    pub connected_at: DateTime<Utc>,
}

/// A provider this server offers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    /// The id.
    pub id: String,
    /// The name.
    pub display_name: String,
    /// Whether the user is connected to it.
    pub connected: bool,
}

/// The user's connections and the providers on offer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    /// Connections, by provider.
    pub items: Vec<ConnectionView>,
    /// Every provider this server offers.
    pub available: Vec<ProviderView>,
}

/// The status shown for a connection: the stored one, except that an active connection
/// whose access token is expired or expires within 10 minutes is `expiring_soon`.
pub(crate) fn effective_status(c: &Connection) -> ConnectionStatus {
    match (c.status, c.expires_at) {
        (ConnectionStatus::Active, Some(at)) if at <= Utc::now() + Duration::minutes(10) => {
            ConnectionStatus::ExpiringSoon
        }
        (s, _) => s,
    }
}

pub(crate) fn view(state: &AppState, c: &Connection) -> ConnectionView {
    let display_name = state
        .providers()
        .get(c.provider.as_str())
        .map(|e| e.display_name.clone())
        .unwrap_or_else(|_| c.provider.to_string());
    ConnectionView {
        provider: c.provider.to_string(),
        display_name,
        status: effective_status(c).as_str().to_owned(),
        expires_at: c.expires_at,
        last_used_at: c.last_used_at,
        scopes: c.scopes.clone(),
        connected_at: c.created_at,
    }
}

/// The user's connections, with their health.
#[utoipa::path(get, path = "/connections", tag = "connections",
    responses((status = 200, body = ConnectionList), (status = 401, body = ErrorBody)))]
async fn list_connections(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<ConnectionList>> {
    let connections = state.tokens().list(user.user_id).await?;
    let items = connections.iter().map(|c| view(&state, c)).collect();
    let available = state
        .providers()
        .iter()
        .map(|(id, e)| ProviderView {
            id: id.to_string(),
            display_name: e.display_name.clone(),
            connected: connections.iter().any(|c| &c.provider == id),
        })
        .collect();
    Ok(Json(ConnectionList { items, available }))
}

/// `?redirect=true` answers 302 to the provider instead of JSON.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery {
    /// Redirect the browser to the provider (default false: JSON).
    #[serde(default)]
    pub redirect: bool,
}

/// Where to send the user to grant access.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizeResponse {
    /// The provider's authorization URL (with `state` and, where supported, PKCE).
    pub authorize_url: String,
    /// Until when the callback accepts this request.
    pub expires_at: DateTime<Utc>,
}

/// Starts connecting a provider: a single-use, expiring `state` bound to the user, with
/// the PKCE verifier kept (sealed) on the server.
#[utoipa::path(get, path = "/connections/{provider}/authorize", tag = "connections",
    params(("provider" = String, Path, description = "The provider id"), AuthorizeQuery),
    responses((status = 200, body = AuthorizeResponse), (status = 302, description = "Redirect to the provider"), (status = 404, body = ErrorBody)))]
async fn authorize(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(provider): ApiPath<String>,
    ApiQuery(q): ApiQuery<AuthorizeQuery>,
) -> ApiResult<Response> {
    let entry = state.providers().get(&provider)?;
    let request = entry.auth.authorization_request()?;
    let state_hash = sha256_hex(&request.state);
    let verifier = request
        .pkce_verifier
        .as_ref()
        .map(|v| state.0.sealer.seal(secrecy::ExposeSecret::expose_secret(v), &format!("pkce:{state_hash}")));
    let now = Utc::now();
    let expires_at = now + Duration::minutes(STATE_TTL_MINUTES);
    with_pool!(state.db(), pool => {
        // Expired states of anyone are swept on the way.
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1").bind(ms(now)).execute(pool).await?;
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, purpose, user_id, provider, verifier_sealed, expires_at, created_at) \
             VALUES ($1, 'connect', $2, $3, $4, $5, $6)",
        )
        .bind(&state_hash)
        .bind(user.user_id.to_string())
        .bind(entry.provider.id().as_str())
        .bind(&verifier)
        .bind(ms(expires_at))
        .bind(ms(now))
        .execute(pool)
        .await?
        .rows_affected()
    });
    if q.redirect {
        return Ok((StatusCode::FOUND, [(header::LOCATION, request.url)]).into_response());
    }
    Ok(Json(AuthorizeResponse { authorize_url: request.url, expires_at }).into_response())
}

/// The provider's redirect back: `?code=&state=` or `?error=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The state from the authorize step.
    pub state: Option<String>,
    /// The provider's error (`access_denied`…).
    pub error: Option<String>,
}

impl std::fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackQuery").field("error", &self.error).finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct StateRow {
    purpose: String,
    user_id: Option<String>,
    provider: String,
    verifier_sealed: Option<String>,
    expires_at: i64,
}

/// Takes (deletes and returns) the state row of `state`: each state is used at most once.
async fn take_state(state: &AppState, raw_state: &str) -> Result<Option<(String, StateRow)>, ApiError> {
    let hash = sha256_hex(raw_state);
    let row: Option<StateRow> = with_pool!(state.db(), pool => {
        sqlx::query_as(
            "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING purpose, user_id, provider, verifier_sealed, expires_at",
        )
        .bind(&hash)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|r| (hash, r)))
}

/// Completes connecting a provider: checks the state, exchanges the code, stores the
/// tokens (encrypted) and returns the connection.
#[utoipa::path(get, path = "/connections/{provider}/callback", tag = "connections",
    params(("provider" = String, Path, description = "The provider id"), CallbackQuery),
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn callback(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(provider): ApiPath<String>,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> ApiResult<Json<ConnectionView>> {
    let entry = state.providers().get(&provider)?;
    if let Some(error) = q.error {
        let error: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
        return Err(ApiError::bad_request(
            "authorization_denied",
            format!("{} did not grant access: {error}", entry.display_name),
        ));
    }
    let (Some(code), Some(raw_state)) = (q.code, q.state) else {
        return Err(ApiError::bad_request("invalid_callback", "the callback needs code and state"));
    };
    let invalid_state = || {
        ApiError::bad_request("invalid_state", "this authorization request is unknown, used or expired; start again")
    };
    let (hash, row) = take_state(&state, &raw_state).await?.ok_or_else(invalid_state)?;
    let owner = row.user_id.as_deref().and_then(|u| UserId::from_str(u).ok());
    if row.purpose != "connect"
        || row.provider != entry.provider.id().as_str()
        || owner != Some(user.user_id)
        || row.expires_at < now_ms()
    {
        return Err(invalid_state());
    }
    let verifier = match &row.verifier_sealed {
        Some(sealed) => Some(
            state
                .0
                .sealer
                .open(sealed, &format!("pkce:{hash}"))
                .ok_or_else(|| ApiError::internal("the PKCE verifier does not open"))?,
        ),
        None => None,
    };
    let tokens = entry.auth.exchange_code(&code, verifier.as_ref()).await.map_err(|e| match e {
        ProviderError::NeedsReauth { .. } | ProviderError::InvalidInput { .. } => {
            ApiError::bad_request("invalid_code", "the provider refused the authorization code; start again")
        }
        other => ApiError::from(other),
    })?;
    let connection = state.tokens().save(user.user_id, entry.provider.id(), &tokens).await?;
    tracing::info!(user_id = %user.user_id, provider = %provider, "provider connected");
    state.invalidate_summary(user.user_id);
    Ok(Json(view(&state, &connection)))
}

/// Disconnects a provider: revokes the grant at the service where it can, deletes the
/// tokens and the stored library snapshot.
#[utoipa::path(delete, path = "/connections/{provider}", tag = "connections",
    params(("provider" = String, Path, description = "The provider id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn disconnect(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(provider): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let entry = state.providers().get(&provider)?;
    let connection = state
        .tokens()
        .find(user.user_id, entry.provider.id())
        .await?
        .ok_or_else(|| ApiError::not_found("not_connected", format!("{} is not connected", entry.display_name)))?;
    match state.tokens().tokens(connection.id).await {
        Ok(tokens) => match entry.auth.revoke(&tokens).await {
            Ok(()) | Err(ProviderError::Unsupported { .. }) => {}
            Err(e) => {
                tracing::warn!(provider = %provider, error = %e, "revocation at the provider failed; deleting the tokens anyway")
            }
        },
        Err(e) => tracing::warn!(provider = %provider, error = %e, "tokens unreadable; deleting them"),
    }
    state.tokens().delete(connection.id).await?;
    with_pool!(state.db(), pool => {
        sqlx::query("DELETE FROM snapshots WHERE user_id = $1 AND provider = $2")
            .bind(user.user_id.to_string())
            .bind(entry.provider.id().as_str())
            .execute(pool)
            .await?
            .rows_affected()
    });
    tracing::info!(user_id = %user.user_id, provider = %provider, "provider disconnected");
    state.invalidate_summary(user.user_id);
    Ok(StatusCode::NO_CONTENT)
}
