//! Enforcement: dry-run plans, batches (executed as jobs), their progress as server-sent
//! events, and rollback.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::str::FromStr;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use dnp_core::{
    ActionLog, BatchId, BlockedSet, ConnectionStatus, EnforcementPolicy, NewJob, Plan, ProviderId, confirmed_actions,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::library::SkippedProvider;
use super::page::{Page, PageQuery};
use crate::auth::AuthUser;
use crate::db::{from_ms, ms};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::{ApiPath, ApiQuery, RequestId};
use crate::jobs::{BatchPayload, ENFORCEMENT};
use crate::state::AppState;
use crate::store::{self, BATCH_COLUMNS, BatchRow, SqlActionLog};
use crate::with_pool;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_plan))
        .routes(routes!(get_plan))
        .routes(routes!(create_batches, list_batches))
        .routes(routes!(get_batch))
        .routes(routes!(batch_events))
        .routes(routes!(rollback))
}

/// How long a stored plan may be executed after it was made.
const PLAN_TTL_HOURS: i64 = 24;

/// What to plan.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PlanRequest {
    /// Only these providers (default: every connected provider).
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    /// The policy (default: the user's saved policy).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub policy: Option<EnforcementPolicy>,
}

/// A stored dry-run preview.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    /// The plan id, to execute with `POST /enforcement/batches`.
    pub id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Until when it may be executed.
    pub expires_at: DateTime<Utc>,
    /// Totals across providers.
    pub summary: PlanTotals,
    /// Each provider's plan: every action with its reason, the skipped items, a summary.
    pub providers: Vec<ProviderPlan>,
    /// Providers not planned, and why.
    pub skipped_providers: Vec<SkippedProvider>,
}

/// Totals of a plan.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct PlanTotals {
    /// Actions in all.
    pub total_actions: u64,
    /// Actions per kind.
    pub actions_by_kind: BTreeMap<String, u64>,
    /// Items deliberately left alone.
    pub skipped_items: u64,
    /// API calls the plan takes.
    pub api_calls: u64,
}

/// One provider's part of a plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProviderPlan {
    /// The provider.
    pub provider: String,
    /// When the library snapshot it was planned from was taken.
    pub snapshot_taken_at: Option<DateTime<Utc>>,
    /// dnp-core's plan: batches of actions (each with `reason`), `skipped`, `summary`.
    #[schema(value_type = Object)]
    pub plan: Plan,
}

fn totals(plans: &[ProviderPlan]) -> PlanTotals {
    let mut t = PlanTotals::default();
    for p in plans {
        t.total_actions += p.plan.summary.total_actions;
        t.api_calls += p.plan.summary.api_calls;
        t.skipped_items += p.plan.skipped.len() as u64;
        for (kind, n) in &p.plan.summary.actions {
            *t.actions_by_kind.entry(kind.as_str().to_owned()).or_default() += n;
        }
    }
    t
}

/// Plans enforcement from each provider's latest scan: a dry run, stored for execution.
#[utoipa::path(post, path = "/enforcement/plans", tag = "enforcement", request_body = PlanRequest,
    responses((status = 201, body = PlanView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_plan(
    State(state): State<AppState>,
    user: AuthUser,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    let req: PlanRequest = super::optional_json(&body)?;
    let policy = match req.policy {
        Some(p) => p,
        None => super::settings::load_policy(&state, user.user_id).await?,
    };
    if !(0.0..=1.0).contains(&policy.min_confidence) {
        return Err(ApiError::bad_request("invalid_policy", "min_confidence must be from 0 to 1"));
    }
    let connections = state.tokens().list(user.user_id).await?;
    let wanted: Vec<ProviderId> = match req.providers {
        Some(list) => {
            let mut ids = Vec::new();
            for p in list {
                ids.push(state.providers().get(&p)?.provider.id().clone());
            }
            ids
        }
        None => connections
            .iter()
            .map(|c| c.provider.clone())
            .filter(|p| state.providers().get(p.as_str()).is_ok())
            .collect(),
    };
    if wanted.is_empty() {
        return Err(ApiError::conflict("not_connected", "connect a music service and scan it first"));
    }
    let list = super::dnp::load_list(&state, user.user_id).await?;
    let mut providers = Vec::new();
    let mut skipped = Vec::new();
    for provider in wanted {
        let entry = state.providers().get(provider.as_str())?;
        match connections.iter().find(|c| c.provider == provider) {
            None => {
                skipped.push(SkippedProvider {
                    provider: provider.to_string(),
                    reason: "not_connected".into(),
                    message: format!("{} is not connected", entry.display_name),
                });
                continue;
            }
            Some(c) if c.status == ConnectionStatus::NeedsReauth => {
                skipped.push(SkippedProvider {
                    provider: provider.to_string(),
                    reason: "needs_reauth".into(),
                    message: format!(
                        "the {} connection needs to be authorized again: connect it again",
                        entry.display_name
                    ),
                });
                continue;
            }
            Some(_) => {}
        }
        let Some(snapshot) = store::load_snapshot(state.db(), user.user_id, &provider).await? else {
            skipped.push(SkippedProvider {
                provider: provider.to_string(),
                reason: "not_scanned".into(),
                message: format!("scan your {} library first", entry.display_name),
            });
            continue;
        };
        let blocked = BlockedSet::for_provider(&list, &provider);
        let plan = dnp_core::plan(&snapshot, &blocked, &policy, &entry.provider.capabilities());
        providers.push(ProviderPlan { provider: provider.to_string(), snapshot_taken_at: snapshot.taken_at, plan });
    }
    let now = Utc::now();
    let view = PlanView {
        id: uuid::Uuid::new_v4().to_string(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(PLAN_TTL_HOURS),
        summary: totals(&providers),
        providers,
        skipped_providers: skipped,
    };
    with_pool!(state.db(), pool => {
        sqlx::query("INSERT INTO plans (id, user_id, created_at, body_json) VALUES ($1, $2, $3, $4)")
            .bind(&view.id)
            .bind(user.user_id.to_string())
            .bind(ms(now))
            .bind(serde_json::to_string(&view)?)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok((StatusCode::CREATED, Json(view)))
}

async fn load_plan(state: &AppState, user: &AuthUser, id: &str) -> Result<PlanView, ApiError> {
    let json: Option<String> = with_pool!(state.db(), pool => {
        sqlx::query_scalar("SELECT body_json FROM plans WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user.user_id.to_string())
            .fetch_optional(pool)
            .await?
    });
    let json = json.ok_or_else(|| ApiError::not_found("plan_not_found", "no such plan"))?;
    Ok(serde_json::from_str(&json)?)
}

/// A stored plan.
#[utoipa::path(get, path = "/enforcement/plans/{id}", tag = "enforcement", params(("id" = String, Path, description = "The plan id")),
    responses((status = 200, body = PlanView), (status = 404, body = ErrorBody)))]
async fn get_plan(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PlanView>> {
    Ok(Json(load_plan(&state, &user, &id).await?))
}

/// Which plan to execute.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// The plan id from `POST /enforcement/plans`.
    pub plan_id: String,
    /// Only these providers of the plan (default: all).
    #[serde(default)]
    pub providers: Option<Vec<String>>,
}

/// A batch: one execution of one provider's plan (or of a rollback).
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchSummary {
    /// The batch id.
    pub id: String,
    /// The provider.
    pub provider: String,
    /// `enforcement` or `rollback`.
    pub kind: String,
    /// `queued`, `running`, `waiting_retry`, `succeeded`, `completed_with_failures`,
    /// `cancelled`, `needs_reauth`, `skipped` or `failed`.
    pub status: String,
    /// Why it ended as it did.
    pub status_reason: Option<String>,
    /// The plan it executes.
    pub plan_id: Option<String>,
    /// For a rollback, the batch it undoes.
    pub rollback_of: Option<String>,
    /// The job running it.
    pub job_id: Option<String>,
    /// Actions in the batch.
    pub total_actions: i64,
    /// Actions per state: `planned`, `sent`, `confirmed`, `failed`, `indeterminate`, `cancelled`.
    pub counts: BTreeMap<String, i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Started.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
}

async fn summarize(state: &AppState, row: BatchRow) -> Result<BatchSummary, ApiError> {
    let counts = store::batch_counts(state.db(), &row.id).await?;
    Ok(BatchSummary {
        counts,
        id: row.id,
        provider: row.provider,
        kind: row.kind,
        status: row.status,
        status_reason: row.status_reason,
        plan_id: row.plan_id,
        rollback_of: row.rollback_of,
        job_id: row.job_id,
        total_actions: row.total_actions,
        created_at: from_ms(row.created_at),
        started_at: row.started_at.map(from_ms),
        finished_at: row.finished_at.map(from_ms),
    })
}

/// The batches started, and the providers left out with the reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchesStarted {
    /// One batch per provider (an existing one when the plan was already executed).
    pub batches: Vec<BatchSummary>,
    /// Providers not executed and why (`needs_reauth`, `nothing_to_do`).
    pub skipped: Vec<SkippedProvider>,
}

/// Enqueues a batch row's job and records the job id.
async fn enqueue_batch(
    state: &AppState,
    batch_id: BatchId,
    user: dnp_core::UserId,
    request_id: Option<String>,
) -> Result<(), ApiError> {
    let payload = BatchPayload { batch_id: batch_id.to_string(), request_id };
    let job = state
        .queue()
        .enqueue(
            NewJob::new(ENFORCEMENT, serde_json::to_value(&payload)?)
                .with_owner(user)
                .with_idempotency_key(format!("batch:{batch_id}"))
                .with_priority(5),
        )
        .await?;
    with_pool!(state.db(), pool => {
        sqlx::query("UPDATE batches SET job_id = $1 WHERE id = $2")
            .bind(job.id.to_string())
            .bind(batch_id.to_string())
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// Executes a stored plan: one batch per provider, each a durable job. Providers whose
/// connection needs re-authorization are skipped, with the reason.
#[utoipa::path(post, path = "/enforcement/batches", tag = "enforcement", request_body = BatchRequest,
    responses((status = 202, body = BatchesStarted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_batches(
    State(state): State<AppState>,
    user: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    crate::http::ApiJson(req): crate::http::ApiJson<BatchRequest>,
) -> ApiResult<(StatusCode, Json<BatchesStarted>)> {
    let plan = load_plan(&state, &user, &req.plan_id).await?;
    if plan.expires_at < Utc::now() {
        return Err(ApiError::conflict("plan_expired", "this plan is older than 24 hours; make a new one"));
    }
    let connections = state.tokens().list(user.user_id).await?;
    let mut batches = Vec::new();
    let mut skipped = plan.skipped_providers.clone();
    for pp in plan.providers {
        if let Some(only) = &req.providers
            && !only.contains(&pp.provider)
        {
            continue;
        }
        let existing = {
            let sql =
                format!("SELECT {BATCH_COLUMNS} FROM batches WHERE plan_id = $1 AND provider = $2 AND user_id = $3");
            let row: Option<BatchRow> = with_pool!(state.db(), pool => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(&plan.id)
                    .bind(&pp.provider)
                    .bind(user.user_id.to_string())
                    .fetch_optional(pool)
                    .await?
            });
            row
        };
        if let Some(row) = existing {
            batches.push(summarize(&state, row).await?);
            continue;
        }
        if pp.plan.is_empty() {
            skipped.push(SkippedProvider {
                provider: pp.provider.clone(),
                reason: "nothing_to_do".into(),
                message: "nothing on this library matches your list".into(),
            });
            continue;
        }
        let connection = connections.iter().find(|c| c.provider.as_str() == pp.provider);
        match connection {
            Some(c) if c.status != ConnectionStatus::NeedsReauth => {}
            Some(_) => {
                skipped.push(SkippedProvider {
                    provider: pp.provider.clone(),
                    reason: "needs_reauth".into(),
                    message: format!("the {} connection needs to be authorized again: connect it again", pp.provider),
                });
                continue;
            }
            None => {
                skipped.push(SkippedProvider {
                    provider: pp.provider.clone(),
                    reason: "not_connected".into(),
                    message: format!("{} is no longer connected", pp.provider),
                });
                continue;
            }
        }
        let batch_id = BatchId::new_random();
        match store::insert_batch(state.db(), batch_id, user.user_id, "enforcement", Some(&plan.id), None, &pp.plan)
            .await
        {
            Ok(()) => {}
            Err(ApiError::Conflict { .. }) => {
                // A concurrent request executed the same plan first: answer with its batch.
                let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE plan_id = $1 AND provider = $2");
                let row: Option<BatchRow> = with_pool!(state.db(), pool => {
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&plan.id).bind(&pp.provider).fetch_optional(pool).await?
                });
                if let Some(row) = row {
                    batches.push(summarize(&state, row).await?);
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        enqueue_batch(&state, batch_id, user.user_id, request_id.as_ref().map(|r| r.0.0.clone())).await?;
        let row = store::get_batch(state.db(), &batch_id.to_string())
            .await?
            .ok_or_else(|| ApiError::internal("batch vanished"))?;
        batches.push(summarize(&state, row).await?);
    }
    state.invalidate_summary(user.user_id);
    Ok((StatusCode::ACCEPTED, Json(BatchesStarted { batches, skipped })))
}

/// The user's batches, newest first.
#[utoipa::path(get, path = "/enforcement/batches", tag = "enforcement", params(PageQuery),
    responses((status = 200, body = Page<BatchSummary>)))]
async fn list_batches(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<BatchSummary>>> {
    let limit = q.limit()?;
    let cursor = q.cursor()?;
    let has_cursor = cursor.is_some();
    let (c_at, c_id) = cursor.unwrap_or((i64::MAX, String::new()));
    let sql = format!(
        "SELECT {BATCH_COLUMNS} FROM batches WHERE user_id = $1 \
         AND ($2 = FALSE OR created_at < $3 OR (created_at = $3 AND id < $4)) ORDER BY created_at DESC, id DESC LIMIT $5"
    );
    let rows: Vec<BatchRow> = with_pool!(state.db(), pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(user.user_id.to_string())
            .bind(has_cursor)
            .bind(c_at)
            .bind(&c_id)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?
    });
    let more = rows.len() > limit as usize;
    let rows: Vec<BatchRow> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more { rows.last().map(|r| super::page::encode_cursor(r.created_at, &r.id)) } else { None };
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(summarize(&state, row).await?);
    }
    Ok(Json(Page { items, next_cursor }))
}

async fn owned_batch(state: &AppState, user: &AuthUser, id: &str) -> Result<BatchRow, ApiError> {
    BatchId::from_str(id)?;
    match store::get_batch(state.db(), id).await? {
        Some(row) if row.user_id == user.user_id.to_string() => Ok(row),
        _ => Err(ApiError::not_found("batch_not_found", "no such batch")),
    }
}

/// One action of a batch with its state before and after.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// The action's id in the plan.
    pub action_id: i64,
    /// The action kind (`unlike_track`…).
    pub kind: String,
    /// A label for people.
    pub label: String,
    /// `planned`, `sent`, `confirmed`, `failed`, `indeterminate` or `cancelled`.
    pub state: String,
    /// Why the action was planned (entry, artist, match kind, confidence).
    #[schema(value_type = Object)]
    pub reason: serde_json::Value,
    /// The item before: whether it was in the library, and where (`target`).
    #[schema(value_type = Object)]
    pub before: serde_json::Value,
    /// The item after, as far as dnp knows.
    #[schema(value_type = Object)]
    pub after: serde_json::Value,
    /// Why it failed.
    #[schema(value_type = Object)]
    pub failure: Option<serde_json::Value>,
    /// A note from the provider.
    pub note: Option<String>,
}

/// A batch with every item.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchDetail {
    /// The batch.
    #[serde(flatten)]
    pub batch: BatchSummary,
    /// For a rollback: how many items were really restored (confirmed).
    pub rolled_back: Option<i64>,
    /// Rollbacks of this batch.
    pub rollbacks: Vec<String>,
    /// The items, in plan order.
    pub items: Vec<BatchItem>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    action_id: i64,
    kind: String,
    label: String,
    state: String,
    action_json: String,
    before_json: String,
    failure_json: Option<String>,
    note: Option<String>,
}

async fn detail(state: &AppState, row: BatchRow) -> Result<BatchDetail, ApiError> {
    let rows: Vec<ItemRow> = with_pool!(state.db(), pool => {
        sqlx::query_as(
            "SELECT action_id, kind, label, state, action_json, before_json, failure_json, note FROM batch_items \
             WHERE batch_id = $1 ORDER BY action_id",
        )
        .bind(&row.id)
        .fetch_all(pool)
        .await?
    });
    let rollbacks: Vec<String> = with_pool!(state.db(), pool => {
        sqlx::query_scalar("SELECT id FROM batches WHERE rollback_of = $1 ORDER BY created_at")
            .bind(&row.id)
            .fetch_all(pool)
            .await?
    });
    let mut items = Vec::with_capacity(rows.len());
    for ItemRow {
        action_id,
        kind,
        label,
        state: item_state,
        action_json: action,
        before_json: before,
        failure_json: failure,
        note,
    } in rows
    {
        let action: dnp_core::Action = serde_json::from_str(&action)?;
        let before: serde_json::Value = serde_json::from_str(&before)?;
        let parsed_kind = action.kind;
        let after = store::after_state(parsed_kind, store::parse_item_state(&item_state), &before);
        items.push(BatchItem {
            action_id,
            kind,
            label,
            state: item_state,
            reason: serde_json::to_value(&action.reason)?,
            before,
            after,
            failure: failure.map(|f| serde_json::from_str(&f)).transpose()?,
            note,
        });
    }
    let is_rollback = row.kind == "rollback";
    let batch = summarize(state, row).await?;
    let rolled_back = is_rollback.then(|| batch.counts.get("confirmed").copied().unwrap_or(0));
    Ok(BatchDetail { batch, rolled_back, rollbacks, items })
}

/// A batch: status, counts, and every item with its before and after state.
#[utoipa::path(get, path = "/enforcement/batches/{id}", tag = "enforcement", params(("id" = String, Path, description = "The batch id")),
    responses((status = 200, body = BatchDetail), (status = 404, body = ErrorBody)))]
async fn get_batch(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<BatchDetail>> {
    let row = owned_batch(&state, &user, &id).await?;
    Ok(Json(detail(&state, row).await?))
}

/// Progress of a batch as server-sent events: a `progress` event whenever its status or
/// counts change, then `done` when it ends.
#[utoipa::path(get, path = "/enforcement/batches/{id}/events", tag = "enforcement", params(("id" = String, Path, description = "The batch id")),
    responses((status = 200, description = "text/event-stream of progress and done events"), (status = 404, body = ErrorBody)))]
async fn batch_events(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let row = owned_batch(&state, &user, &id).await?;
    let start = (state, row.id, None::<String>, false);
    let stream = futures::stream::unfold(start, |(state, id, last, finished)| async move {
        if finished {
            return None;
        }
        let mut last = last;
        loop {
            let summary = match store::get_batch(state.db(), &id).await {
                Ok(Some(row)) => summarize(&state, row).await,
                Ok(None) => Err(ApiError::not_found("batch_not_found", "the batch was deleted")),
                Err(e) => Err(e),
            };
            let summary = match summary {
                Ok(s) => s,
                Err(e) => {
                    let event = Event::default().event("error").data(e.to_string());
                    return Some((Ok::<_, Infallible>(event), (state, id, last, true)));
                }
            };
            let json = serde_json::to_string(&summary).unwrap_or_default();
            let done = store::batch_is_terminal(&summary.status);
            if done {
                let event = Event::default().event("done").data(json);
                return Some((Ok(event), (state, id, last, true)));
            }
            if last.as_deref() != Some(json.as_str()) {
                let event = Event::default().event("progress").data(json.clone());
                last = Some(json);
                return Some((Ok(event), (state, id, last, false)));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Options of a rollback.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RollbackRequest {
    /// Wait up to this many seconds (at most 60) for the rollback to finish, so the answer
    /// carries the real count restored.
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// A rollback started (and, when waited for, finished).
#[derive(Debug, Serialize, ToSchema)]
pub struct RollbackResponse {
    /// The rollback batch.
    pub batch: BatchSummary,
    /// Inverse actions planned.
    pub planned: u64,
    /// Items really restored: the confirmed count once the rollback finished, else null.
    pub rolled_back: Option<i64>,
}

/// Undoes a finished enforcement batch: a new batch of the inverse actions of everything it
/// confirmed, linked to the original.
#[utoipa::path(post, path = "/enforcement/batches/{id}/rollback", tag = "enforcement", request_body = RollbackRequest,
    params(("id" = String, Path, description = "The batch to undo")),
    responses((status = 202, body = RollbackResponse), (status = 200, body = RollbackResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rollback(
    State(state): State<AppState>,
    user: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<RollbackResponse>)> {
    let req: RollbackRequest = super::optional_json(&body)?;
    let original = owned_batch(&state, &user, &id).await?;
    if original.kind != "enforcement" {
        return Err(ApiError::conflict("not_rollbackable", "only enforcement batches can be rolled back"));
    }
    if !store::batch_is_terminal(&original.status) {
        return Err(ApiError::conflict("batch_not_finished", "wait for the batch to finish (or cancel it) first"));
    }
    let previous: Vec<(String, String)> = with_pool!(state.db(), pool => {
        sqlx::query_as("SELECT id, status FROM batches WHERE rollback_of = $1")
            .bind(&original.id)
            .fetch_all(pool)
            .await?
    });
    if let Some((rb, _)) = previous.iter().find(|(_, s)| !matches!(s.as_str(), "failed" | "cancelled" | "skipped")) {
        return Err(ApiError::conflict(
            "already_rolled_back",
            format!("this batch is already rolled back by batch {rb}"),
        ));
    }
    let provider = ProviderId::from_str(&original.provider)?;
    let entry = state.providers().get(provider.as_str())?;
    let log = SqlActionLog::new(state.db().clone());
    let done = confirmed_actions(&log.actions(original.batch_id()?).await?);
    if done.is_empty() {
        return Err(ApiError::conflict("nothing_to_roll_back", "the batch changed nothing"));
    }
    let plan = dnp_core::rollback_plan(&provider, original.batch_id()?, &done, &entry.provider.capabilities());
    let planned = plan.actions().count() as u64;
    let batch_id = BatchId::new_random();
    store::insert_batch(state.db(), batch_id, user.user_id, "rollback", None, Some(original.batch_id()?), &plan)
        .await?;
    enqueue_batch(&state, batch_id, user.user_id, request_id.as_ref().map(|r| r.0.0.clone())).await?;
    let wait = Duration::from_secs(req.wait_seconds.unwrap_or(0).min(60));
    let deadline = tokio::time::Instant::now() + wait;
    let id = batch_id.to_string();
    loop {
        let row = store::get_batch(state.db(), &id).await?.ok_or_else(|| ApiError::internal("batch vanished"))?;
        let finished = store::batch_is_terminal(&row.status);
        if finished || tokio::time::Instant::now() >= deadline {
            let batch = summarize(&state, row).await?;
            let rolled_back = finished.then(|| batch.counts.get("confirmed").copied().unwrap_or(0));
            let status = if finished { StatusCode::OK } else { StatusCode::ACCEPTED };
            state.invalidate_summary(user.user_id);
            return Ok((status, Json(RollbackResponse { batch, planned, rolled_back })));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
