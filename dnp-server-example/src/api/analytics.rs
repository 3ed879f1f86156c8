//! Analytics of the user's own enforcement, and the dashboard summary (cached 5 minutes).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::db::{from_ms, ms};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::ApiQuery;
use crate::state::AppState;
use crate::with_pool;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(enforcement)).routes(routes!(summary))
}

/// How long a summary is served from the cache.
pub(crate) const SUMMARY_TTL: Duration = Duration::from_secs(300);

const DAY_MS: i64 = 86_400_000;

/// `?provider=&days=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// Only this provider.
    pub provider: Option<String>,
    /// The window in days, 1 to 365 (default 30).
    pub days: Option<u32>,
}

/// One day of the series.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayStats {
    /// The day (UTC).
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// Enforcement batches started that day.
    pub batches: u64,
    /// Actions confirmed.
    pub confirmed: u64,
    /// Actions failed.
    pub failed: u64,
    /// Actions confirmed that day per kind (the kinds of the window's `actions_by_kind`;
    /// kinds with none that day are left out). The counts add up to `confirmed`.
    pub actions_by_kind: BTreeMap<String, u64>,
}

/// Enforcement over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnforcementAnalytics {
    /// The window's first day.
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    /// The window in days.
    pub days: u32,
    /// The provider filter, if any.
    pub provider: Option<String>,
    /// Enforcement batches (not counting rollbacks).
    pub total_batches: u64,
    /// Rollback batches.
    pub rollbacks: u64,
    /// Actions of the enforcement batches.
    pub total_actions: u64,
    /// Confirmed / (confirmed + failed + indeterminate); null when nothing ran.
    pub success_rate: Option<f64>,
    /// Confirmed actions per kind.
    pub actions_by_kind: BTreeMap<String, u64>,
    /// One entry per day of the window, oldest first.
    pub daily: Vec<DayStats>,
}

/// The user's enforcement: totals, success rate, actions by kind, a daily series.
#[utoipa::path(get, path = "/analytics/enforcement", tag = "analytics", params(AnalyticsQuery),
    responses((status = 200, body = EnforcementAnalytics), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn enforcement(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> ApiResult<Json<EnforcementAnalytics>> {
    let days = q.days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(ApiError::bad_request("invalid_days", "days must be from 1 to 365"));
    }
    let provider = match &q.provider {
        Some(p) => Some(state.providers().get(p)?.provider.id().to_string()),
        None => None,
    };
    let today = ms(Utc::now()) / DAY_MS;
    let first_day = today - i64::from(days) + 1;
    let since = first_day * DAY_MS;
    let filter = provider.clone().unwrap_or_default();
    let uid = user.user_id.to_string();
    let batches: Vec<(i64, String, i64)> = with_pool!(state.db(), pool => {
        sqlx::query_as(
            "SELECT created_at / 86400000 AS day, kind, COUNT(*) FROM batches WHERE user_id = $1 AND created_at >= $2 \
             AND ($3 = '' OR provider = $3) GROUP BY created_at / 86400000, kind",
        )
        .bind(&uid)
        .bind(since)
        .bind(&filter)
        .fetch_all(pool)
        .await?
    });
    let items: Vec<(i64, String, String, i64)> = with_pool!(state.db(), pool => {
        sqlx::query_as(
            "SELECT b.created_at / 86400000 AS day, i.kind, i.state, COUNT(*) FROM batch_items i \
             JOIN batches b ON b.id = i.batch_id \
             WHERE b.user_id = $1 AND b.kind = 'enforcement' AND b.created_at >= $2 AND ($3 = '' OR b.provider = $3) \
             GROUP BY b.created_at / 86400000, i.kind, i.state",
        )
        .bind(&uid)
        .bind(since)
        .bind(&filter)
        .fetch_all(pool)
        .await?
    });
    let date = |d: i64| from_ms(d * DAY_MS).date_naive();
    let mut daily: BTreeMap<i64, DayStats> = (first_day..=today)
        .map(|d| (d, DayStats { date: date(d), batches: 0, confirmed: 0, failed: 0, actions_by_kind: BTreeMap::new() }))
        .collect();
    let (mut total_batches, mut rollbacks) = (0u64, 0u64);
    for (day, kind, n) in batches {
        let n = n.max(0) as u64;
        if kind == "rollback" {
            rollbacks += n;
        } else {
            total_batches += n;
            if let Some(d) = daily.get_mut(&day) {
                d.batches += n;
            }
        }
    }
    let (mut total_actions, mut confirmed, mut unsuccessful) = (0u64, 0u64, 0u64);
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for (day, kind, item_state, n) in items {
        let n = n.max(0) as u64;
        total_actions += n;
        match item_state.as_str() {
            "confirmed" => {
                confirmed += n;
                if let Some(d) = daily.get_mut(&day) {
                    d.confirmed += n;
                    *d.actions_by_kind.entry(kind.clone()).or_default() += n;
                }
                *by_kind.entry(kind).or_default() += n;
            }
            "failed" | "indeterminate" => {
                unsuccessful += n;
                if let Some(d) = daily.get_mut(&day) {
                    d.failed += n;
                }
            }
            _ => {}
        }
    }
    Ok(Json(EnforcementAnalytics {
        from: date(first_day),
        days,
        provider,
        total_batches,
        rollbacks,
        total_actions,
        success_rate: (confirmed + unsuccessful > 0).then(|| confirmed as f64 / (confirmed + unsuccessful) as f64),
        actions_by_kind: by_kind,
        daily: daily.into_values().collect(),
    }))
}

/// A recent batch in the summary.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecentBatch {
    /// The batch id.
    pub id: String,
    /// The provider.
    pub provider: String,
    /// `enforcement` or `rollback`.
    pub kind: String,
    /// Its status.
    pub status: String,
    /// Actions confirmed.
    pub confirmed: i64,
    /// When it started.
    pub created_at: DateTime<Utc>,
}

/// The dashboard: list size, connections, recent enforcement, the next scheduled run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    /// Artists on the DNP list.
    pub dnp_list_size: i64,
    /// Connected providers with their status.
    pub connected_providers: Vec<ConnectedProvider>,
    /// The last 5 batches.
    pub recent_enforcements: Vec<RecentBatch>,
    /// When the last enforcement batch finished.
    pub last_enforcement_at: Option<DateTime<Utc>>,
    /// When the next scheduled re-enforcement runs, if scheduled.
    pub next_scheduled_run: Option<DateTime<Utc>>,
    /// When this summary was computed (it is cached up to 5 minutes).
    pub computed_at: DateTime<Utc>,
}

/// A connected provider in the summary.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectedProvider {
    /// The provider.
    pub provider: String,
    /// The connection status.
    pub status: String,
}

async fn compute_summary(state: &AppState, user: &AuthUser) -> Result<Summary, ApiError> {
    let uid = user.user_id.to_string();
    let size: i64 = with_pool!(state.db(), pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM dnp_entries WHERE user_id = $1").bind(&uid).fetch_one(pool).await?
    });
    let connections = state.tokens().list(user.user_id).await?;
    let recent: Vec<(String, String, String, String, i64)> = with_pool!(state.db(), pool => {
        sqlx::query_as("SELECT id, provider, kind, status, created_at FROM batches WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 5")
            .bind(&uid)
            .fetch_all(pool)
            .await?
    });
    let last: Option<i64> = with_pool!(state.db(), pool => {
        sqlx::query_scalar("SELECT MAX(finished_at) FROM batches WHERE user_id = $1 AND kind = 'enforcement'")
            .bind(&uid)
            .fetch_one(pool)
            .await?
    });
    let next: Option<i64> = with_pool!(state.db(), pool => {
        sqlx::query_scalar("SELECT next_reenforce_at FROM users WHERE id = $1").bind(&uid).fetch_one(pool).await?
    });
    let mut recent_enforcements = Vec::with_capacity(recent.len());
    for (id, provider, kind, status, created_at) in recent {
        let counts = crate::store::batch_counts(state.db(), &id).await?;
        recent_enforcements.push(RecentBatch {
            confirmed: counts.get("confirmed").copied().unwrap_or(0),
            id,
            provider,
            kind,
            status,
            created_at: from_ms(created_at),
        });
    }
    Ok(Summary {
        dnp_list_size: size,
        connected_providers: connections
            .iter()
            .map(|c| ConnectedProvider {
                provider: c.provider.to_string(),
                status: super::connections::effective_status(c).as_str().to_owned(),
            })
            .collect(),
        recent_enforcements,
        last_enforcement_at: last.map(from_ms),
        next_scheduled_run: next.map(from_ms),
        computed_at: Utc::now(),
    })
}

/// The user's dashboard summary (cached 5 minutes; changes the user makes refresh it).
#[utoipa::path(get, path = "/analytics/summary", tag = "analytics", responses((status = 200, body = Summary)))]
async fn summary(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Summary>> {
    {
        let cache = state.0.summary_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, value)) = cache.get(&user.user_id)
            && at.elapsed() < SUMMARY_TTL
        {
            return Ok(Json(serde_json::from_value(value.clone())?));
        }
    }
    let summary = compute_summary(&state, &user).await?;
    let mut cache = state.0.summary_cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() > 100_000 {
        cache.retain(|_, (at, _)| at.elapsed() < SUMMARY_TTL);
    }
    cache.insert(user.user_id, (Instant::now(), serde_json::to_value(&summary)?));
    Ok(Json(summary))
}
