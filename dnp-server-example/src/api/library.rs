//! Library scans (as jobs) and the stored snapshots; the user's jobs; notifications;
//! settings.

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use dnp_core::{ConnectionStatus, Job, JobId, NewJob};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::page::{Page, PageQuery, encode_cursor};
use crate::auth::AuthUser;
use crate::db::{from_ms, ms, now_ms};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::{ApiPath, ApiQuery, RequestId};
use crate::jobs::{LIBRARY_SCAN, ScanPayload};
use crate::state::AppState;
use crate::with_pool;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_scans))
        .routes(routes!(library))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(list_notifications))
        .routes(routes!(read_notification))
}

/// A job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// The job id.
    pub id: String,
    /// The job type (`library_scan`, `enforcement`…).
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `dead` or `cancelled`.
    pub status: String,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Progress: `{done, total, message}`.
    #[schema(value_type = Object)]
    pub progress: Option<dnp_core::JobProgress>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// Whether cancellation was asked.
    pub cancel_requested: bool,
    /// The job's input.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Earliest next run.
    pub run_at: DateTime<Utc>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id.to_string(),
            kind: j.kind,
            status: j.status.as_str().to_owned(),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            progress: j.progress,
            last_error: j.last_error,
            cancel_requested: j.cancel_requested,
            payload: j.payload,
            run_at: j.run_at,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// Which providers to scan.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ScanRequest {
    /// One provider (default: every connected provider).
    #[serde(default)]
    pub provider: Option<String>,
}

/// The scan jobs started, and the providers not scanned with the reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanResponse {
    /// One job per provider.
    pub jobs: Vec<JobView>,
    /// Providers skipped (`needs_reauth`).
    pub skipped: Vec<SkippedProvider>,
}

/// A provider an operation left out, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SkippedProvider {
    /// The provider.
    pub provider: String,
    /// `needs_reauth`, `not_scanned`, `not_connected`, `nothing_to_do`.
    pub reason: String,
    /// For people.
    pub message: String,
}

/// Scans the user's libraries: one durable job per connected provider.
#[utoipa::path(post, path = "/library/scans", tag = "enforcement", request_body = ScanRequest,
    responses((status = 202, body = ScanResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_scans(
    State(state): State<AppState>,
    user: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<ScanResponse>)> {
    let body: ScanRequest = super::optional_json(&body)?;
    let connections = state.tokens().list(user.user_id).await?;
    let targets: Vec<_> = match body.provider.as_deref() {
        Some(p) => {
            let entry = state.providers().get(p)?;
            let c = connections
                .iter()
                .find(|c| c.provider.as_str() == p)
                .ok_or_else(|| ApiError::conflict("not_connected", format!("connect {} first", entry.display_name)))?;
            vec![c.clone()]
        }
        None => connections.iter().filter(|c| state.providers().get(c.provider.as_str()).is_ok()).cloned().collect(),
    };
    if targets.is_empty() {
        return Err(ApiError::conflict("not_connected", "connect a music service first"));
    }
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for c in targets {
        if c.status == ConnectionStatus::NeedsReauth {
            skipped.push(SkippedProvider {
                provider: c.provider.to_string(),
                reason: "needs_reauth".into(),
                message: format!("the {} connection needs to be authorized again", c.provider),
            });
            continue;
        }
        let payload = ScanPayload {
            user_id: user.user_id,
            provider: c.provider.clone(),
            request_id: request_id.as_ref().map(|r| r.0.0.clone()),
        };
        let job = state
            .queue()
            .enqueue(
                NewJob::new(LIBRARY_SCAN, serde_json::to_value(&payload)?).with_owner(user.user_id).with_priority(10),
            )
            .await?;
        jobs.push(JobView::from(job));
    }
    Ok((StatusCode::ACCEPTED, Json(ScanResponse { jobs, skipped })))
}

/// The latest snapshot of one provider's library, summarized.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotSummary {
    /// The provider.
    pub provider: String,
    /// When the scan finished.
    pub taken_at: DateTime<Utc>,
    /// Liked tracks, saved albums, followed artists and playlist items.
    pub item_count: i64,
}

/// The latest scan of each provider.
#[utoipa::path(get, path = "/library", tag = "enforcement", responses((status = 200, body = Vec<SnapshotSummary>)))]
async fn library(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<SnapshotSummary>>> {
    let rows: Vec<(String, i64, i64)> = with_pool!(state.db(), pool => {
        sqlx::query_as("SELECT provider, taken_at, item_count FROM snapshots WHERE user_id = $1 ORDER BY provider")
            .bind(user.user_id.to_string())
            .fetch_all(pool)
            .await?
    });
    Ok(Json(
        rows.into_iter()
            .map(|(provider, taken_at, item_count)| SnapshotSummary {
                provider,
                taken_at: from_ms(taken_at),
                item_count,
            })
            .collect(),
    ))
}

/// The user's jobs, newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(PageQuery), responses((status = 200, body = Page<JobView>)))]
async fn list_jobs(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<JobView>>> {
    let limit = q.limit()?;
    let before = q.cursor()?.map(|(at, _)| from_ms(at));
    let mut jobs = state.queue().list_by_owner(user.user_id, limit + 1, before).await?;
    let more = jobs.len() > limit as usize;
    jobs.truncate(limit as usize);
    let next_cursor = if more { jobs.last().map(|j| encode_cursor(ms(j.created_at), &j.id.to_string())) } else { None };
    Ok(Json(Page { items: jobs.into_iter().map(JobView::from).collect(), next_cursor }))
}

/// The user's job `id`.
pub(crate) async fn owned_job(state: &AppState, user: &AuthUser, id: &str) -> Result<Job, ApiError> {
    let id = JobId::from_str(id)?;
    match state.queue().get(id).await? {
        Some(job) if job.owner == Some(user.user_id) => Ok(job),
        _ => Err(ApiError::not_found("job_not_found", "no such job")),
    }
}

/// One of the user's jobs, with its progress.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "The job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
async fn get_job(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(owned_job(&state, &user, &id).await?.into()))
}

/// Asks for a job to stop: a queued job is cancelled at once, a running one at its next
/// safe point.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path, description = "The job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
async fn cancel_job(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobView>> {
    let job = owned_job(&state, &user, &id).await?;
    let job = state.queue().cancel(job.id).await?;
    if job.kind == crate::jobs::ENFORCEMENT
        && job.status.as_str() == "cancelled"
        && let Some(batch) = job.payload.get("batch_id").and_then(|b| b.as_str())
    {
        crate::store::set_batch_status(state.db(), batch, "cancelled", Some("cancelled before it started")).await?;
    }
    Ok(Json(job.into()))
}

/// An in-app notification.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct NotificationView {
    /// The id.
    pub id: String,
    /// What it is about (`enforcement_finished`, `needs_reauth`…).
    pub kind: String,
    /// A title.
    pub title: String,
    /// The text.
    pub body: String,
    /// When.
    #[sqlx(skip)]
    pub created_at: DateTime<Utc>,
    /// When it was read.
    #[sqlx(skip)]
    pub read_at: Option<DateTime<Utc>>,
}

/// `?unread=true` and the page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Only unread ones.
    #[serde(default)]
    pub unread: bool,
    /// Page size.
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// The user's notifications, newest first.
#[utoipa::path(get, path = "/notifications", tag = "notifications", params(NotificationQuery),
    responses((status = 200, body = Page<NotificationView>)))]
async fn list_notifications(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<NotificationQuery>,
) -> ApiResult<Json<Page<NotificationView>>> {
    let page = PageQuery { limit: q.limit, cursor: q.cursor };
    let limit = page.limit()?;
    let cursor = page.cursor()?;
    let has_cursor = cursor.is_some();
    let (c_at, c_id) = cursor.unwrap_or((i64::MAX, String::new()));
    let rows: Vec<(String, String, String, String, i64, Option<i64>)> = with_pool!(state.db(), pool => {
        sqlx::query_as(
            "SELECT id, kind, title, body, created_at, read_at FROM notifications WHERE user_id = $1 \
             AND ($2 = FALSE OR read_at IS NULL) \
             AND ($3 = FALSE OR created_at < $4 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6",
        )
        .bind(user.user_id.to_string())
        .bind(q.unread)
        .bind(has_cursor)
        .bind(c_at)
        .bind(&c_id)
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await?
    });
    let page = super::page::paginate(
        rows,
        limit,
        |r| (r.4, r.0.clone()),
        |(id, kind, title, body, created, read)| {
            Ok(NotificationView { id, kind, title, body, created_at: from_ms(created), read_at: read.map(from_ms) })
        },
    )?;
    Ok(Json(page))
}

/// Marks a notification read.
#[utoipa::path(post, path = "/notifications/{id}/read", tag = "notifications",
    params(("id" = String, Path, description = "The notification id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn read_notification(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::bad_request("invalid_id", "the notification id is not a UUID"));
    }
    let n = with_pool!(state.db(), pool => {
        sqlx::query("UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3")
            .bind(now_ms())
            .bind(&id)
            .bind(user.user_id.to_string())
            .execute(pool)
            .await?
            .rows_affected()
    });
    if n == 0 {
        return Err(ApiError::not_found("notification_not_found", "no such notification"));
    }
    Ok(StatusCode::NO_CONTENT)
}
