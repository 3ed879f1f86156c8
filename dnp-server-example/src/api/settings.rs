//! The user's settings: the enforcement policy and scheduled re-enforcement.

use axum::Json;
use axum::extract::State;
use dnp_core::{EnforcementPolicy, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::db::{from_ms, now_ms};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::ApiJson;
use crate::state::AppState;
use crate::with_pool;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, put_settings))
}

/// The longest re-enforcement interval, in hours (30 days).
const MAX_REENFORCE_HOURS: u32 = 720;

/// The user's settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    /// The enforcement policy (dnp-core's JSON form; missing fields take their defaults).
    #[schema(value_type = Object)]
    pub policy: EnforcementPolicy,
    /// Enforce the list again every this many hours (1 to 720); `null` turns it off.
    pub reenforce_every_hours: Option<u32>,
    /// When the next scheduled enforcement runs.
    #[serde(default, skip_deserializing)]
    pub next_reenforce_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The user's policy, or the default.
pub(crate) async fn load_policy(state: &AppState, user: UserId) -> Result<EnforcementPolicy, ApiError> {
    Ok(load(state, user).await?.policy)
}

async fn load(state: &AppState, user: UserId) -> Result<Settings, ApiError> {
    let row: Option<(Option<String>, Option<i64>, Option<i64>)> = with_pool!(state.db(), pool => {
        sqlx::query_as("SELECT policy_json, reenforce_hours, next_reenforce_at FROM users WHERE id = $1")
            .bind(user.to_string())
            .fetch_optional(pool)
            .await?
    });
    let (policy, hours, next) =
        row.ok_or_else(|| ApiError::unauthorized("unauthenticated", "the account no longer exists"))?;
    let policy = match policy {
        Some(p) => serde_json::from_str(&p)?,
        None => EnforcementPolicy::default(),
    };
    Ok(Settings {
        policy,
        reenforce_every_hours: hours.and_then(|h| u32::try_from(h).ok()),
        next_reenforce_at: next.map(from_ms),
    })
}

/// The user's settings.
#[utoipa::path(get, path = "/settings", tag = "settings", responses((status = 200, body = Settings)))]
async fn get_settings(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Settings>> {
    Ok(Json(load(&state, user.user_id).await?))
}

/// Replaces the user's settings.
#[utoipa::path(put, path = "/settings", tag = "settings", request_body = Settings,
    responses((status = 200, body = Settings), (status = 400, body = ErrorBody)))]
async fn put_settings(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<Settings>,
) -> ApiResult<Json<Settings>> {
    if let Some(h) = body.reenforce_every_hours
        && !(1..=MAX_REENFORCE_HOURS).contains(&h)
    {
        return Err(ApiError::bad_request(
            "invalid_interval",
            format!("reenforce_every_hours must be 1 to {MAX_REENFORCE_HOURS}"),
        ));
    }
    if !(0.0..=1.0).contains(&body.policy.min_confidence) {
        return Err(ApiError::bad_request("invalid_policy", "min_confidence must be from 0 to 1"));
    }
    let hours = body.reenforce_every_hours.map(i64::from);
    let next = hours.map(|h| now_ms() + h * 3_600_000);
    with_pool!(state.db(), pool => {
        sqlx::query("UPDATE users SET policy_json = $1, reenforce_hours = $2, next_reenforce_at = $3, updated_at = $4 WHERE id = $5")
            .bind(serde_json::to_string(&body.policy)?)
            .bind(hours)
            .bind(next)
            .bind(now_ms())
            .bind(user.user_id.to_string())
            .execute(pool)
            .await?
            .rows_affected()
    });
    state.invalidate_summary(user.user_id);
    Ok(Json(load(&state, user.user_id).await?))
}
