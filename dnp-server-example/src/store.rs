//! Persistence shared by the API and the jobs: the SQL [`ActionLog`], library snapshots,
//! batches and notifications.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use dnp_core::{
    Action, ActionFailure, ActionKind, ActionLog, BatchId, ItemState, LibrarySnapshot, LoggedAction, Plan, ProviderId,
    StateUpdate, StoreError, UserId,
};
use serde_json::{Value, json};

use crate::db::{Database, now_ms};
use crate::error::ApiError;
use crate::with_pool;

/// The write-ahead [`ActionLog`] of enforcement batches, in the `batch_items` table of the
/// server's database. Each action's row holds its state, the action (with its target's
/// before-state) and the before-state as JSON.
#[derive(Clone)]
pub struct SqlActionLog {
    db: Database,
}

impl fmt::Debug for SqlActionLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlActionLog").field("db", &self.db.kind()).finish()
    }
}

impl SqlActionLog {
    /// A log over `db` (migrated).
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::backend(e)
}

/// The library state of an action's item before the action.
pub(crate) fn before_state(action: &Action) -> Value {
    match action.kind {
        ActionKind::DislikeTrack => json!({"disliked": false, "target": action.target}),
        ActionKind::ClearTrackRating => json!({"disliked": true, "target": action.target}),
        kind => json!({"in_library": kind.is_removal(), "target": action.target}),
    }
}

/// The state after: the action's effect when confirmed, unknown when indeterminate, else
/// the before-state.
pub(crate) fn after_state(kind: ActionKind, state: ItemState, before: &Value) -> Value {
    match state {
        ItemState::Confirmed => match kind {
            ActionKind::DislikeTrack => json!({"disliked": true}),
            ActionKind::ClearTrackRating => json!({"disliked": false}),
            k => json!({"in_library": !k.is_removal()}),
        },
        ItemState::Indeterminate => json!({"unknown": true}),
        _ => {
            let mut b = before.clone();
            if let Some(o) = b.as_object_mut() {
                o.remove("target");
            }
            b
        }
    }
}

fn parse_state(s: &str) -> ItemState {
    match s {
        "planned" => ItemState::Planned,
        "sent" => ItemState::Sent,
        "confirmed" => ItemState::Confirmed,
        "failed" => ItemState::Failed,
        "indeterminate" => ItemState::Indeterminate,
        _ => ItemState::Cancelled,
    }
}

pub(crate) fn parse_item_state(s: &str) -> ItemState {
    parse_state(s)
}

#[async_trait]
impl ActionLog for SqlActionLog {
    async fn record(&self, batch: BatchId, actions: &[Action]) -> Result<(), StoreError> {
        let now = now_ms();
        let batch_id = batch.to_string();
        let rows: Vec<(i64, String, String, String, String)> = actions
            .iter()
            .map(|a| {
                Ok((
                    i64::from(a.id.0),
                    a.kind.as_str().to_owned(),
                    a.label.clone(),
                    serde_json::to_string(a)?,
                    before_state(a).to_string(),
                ))
            })
            .collect::<Result<_, serde_json::Error>>()
            .map_err(json_err)?;
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(backend)?;
            let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM batch_items WHERE batch_id = $1")
                .bind(&batch_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            if existing == 0 {
                for (id, kind, label, action, before) in &rows {
                    sqlx::query(
                        "INSERT INTO batch_items (batch_id, action_id, kind, state, label, action_json, before_json, updated_at) \
                         VALUES ($1, $2, $3, 'planned', $4, $5, $6, $7) ON CONFLICT (batch_id, action_id) DO NOTHING",
                    )
                    .bind(&batch_id)
                    .bind(id)
                    .bind(kind)
                    .bind(label)
                    .bind(action)
                    .bind(before)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
            }
            tx.commit().await.map_err(backend)?;
        });
        Ok(())
    }

    async fn update(&self, batch: BatchId, updates: &[StateUpdate]) -> Result<(), StoreError> {
        let now = now_ms();
        let batch_id = batch.to_string();
        let rows: Vec<(i64, &'static str, Option<String>, Option<String>)> = updates
            .iter()
            .map(|u| {
                Ok((
                    i64::from(u.action.0),
                    u.state.as_str(),
                    u.failure.as_ref().map(serde_json::to_string).transpose()?,
                    u.note.clone(),
                ))
            })
            .collect::<Result<_, serde_json::Error>>()
            .map_err(json_err)?;
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(backend)?;
            for (id, state, failure, note) in &rows {
                let n = sqlx::query(
                    "UPDATE batch_items SET state = $1, failure_json = $2, note = COALESCE($3, note), updated_at = $4 \
                     WHERE batch_id = $5 AND action_id = $6",
                )
                .bind(*state)
                .bind(failure)
                .bind(note)
                .bind(now)
                .bind(&batch_id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected();
                if n != 1 {
                    // Dropping the transaction rolls every update of this call back.
                    return Err(StoreError::NotFound { what: format!("action a{id} of batch {batch_id}") });
                }
            }
            tx.commit().await.map_err(backend)?;
        });
        Ok(())
    }

    async fn actions(&self, batch: BatchId) -> Result<Vec<LoggedAction>, StoreError> {
        let rows: Vec<(String, String, Option<String>, Option<String>)> = with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT action_json, state, failure_json, note FROM batch_items WHERE batch_id = $1 ORDER BY action_id",
            )
            .bind(batch.to_string())
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        rows.into_iter()
            .map(|(action, state, failure, note)| {
                Ok(LoggedAction {
                    action: serde_json::from_str(&action).map_err(json_err)?,
                    state: parse_state(&state),
                    failure: failure
                        .map(|f| serde_json::from_str::<ActionFailure>(&f))
                        .transpose()
                        .map_err(json_err)?,
                    note,
                })
            })
            .collect()
    }
}

/// Saves the latest snapshot of `user`'s library at `provider` (replacing the previous).
pub(crate) async fn save_snapshot(db: &Database, user: UserId, snapshot: &LibrarySnapshot) -> Result<(), ApiError> {
    let json = serde_json::to_string(snapshot)?;
    let taken = snapshot.taken_at.map(crate::db::ms).unwrap_or_else(now_ms);
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO snapshots (id, user_id, provider, taken_at, item_count, snapshot_json) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_id, provider) DO UPDATE SET id = excluded.id, taken_at = excluded.taken_at, \
             item_count = excluded.item_count, snapshot_json = excluded.snapshot_json",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(user.to_string())
        .bind(snapshot.provider.as_str())
        .bind(taken)
        .bind(snapshot.item_count() as i64)
        .bind(json)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// The latest snapshot of `user`'s library at `provider`.
pub(crate) async fn load_snapshot(
    db: &Database,
    user: UserId,
    provider: &ProviderId,
) -> Result<Option<LibrarySnapshot>, ApiError> {
    let json: Option<String> = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT snapshot_json FROM snapshots WHERE user_id = $1 AND provider = $2")
            .bind(user.to_string())
            .bind(provider.as_str())
            .fetch_optional(pool)
            .await?
    });
    Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
}

/// A batch row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct BatchRow {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) provider: String,
    pub(crate) kind: String,
    pub(crate) plan_id: Option<String>,
    pub(crate) rollback_of: Option<String>,
    pub(crate) status: String,
    pub(crate) status_reason: Option<String>,
    pub(crate) job_id: Option<String>,
    pub(crate) total_actions: i64,
    pub(crate) created_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
}

pub(crate) const BATCH_COLUMNS: &str = "id, user_id, provider, kind, plan_id, rollback_of, status, status_reason, job_id, \
     total_actions, created_at, started_at, finished_at";

/// Batch statuses after which nothing more happens.
pub(crate) fn batch_is_terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "completed_with_failures" | "cancelled" | "needs_reauth" | "failed" | "skipped")
}

impl BatchRow {
    pub(crate) fn batch_id(&self) -> Result<BatchId, ApiError> {
        BatchId::from_str(&self.id).map_err(ApiError::internal)
    }

    pub(crate) fn user(&self) -> Result<UserId, ApiError> {
        UserId::from_str(&self.user_id).map_err(ApiError::internal)
    }
}

/// Creates a queued batch executing `plan`.
pub(crate) async fn insert_batch(
    db: &Database,
    id: BatchId,
    user: UserId,
    kind: &str,
    plan_id: Option<&str>,
    rollback_of: Option<BatchId>,
    plan: &Plan,
) -> Result<(), ApiError> {
    let now = now_ms();
    let total = plan.actions().count() as i64;
    let result = with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO batches (id, user_id, provider, kind, plan_id, rollback_of, status, plan_json, total_actions, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $9)",
        )
        .bind(id.to_string())
        .bind(user.to_string())
        .bind(plan.provider.as_str())
        .bind(kind)
        .bind(plan_id)
        .bind(rollback_of.map(|b| b.to_string()))
        .bind(serde_json::to_string(plan)?)
        .bind(total)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    });
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(ApiError::conflict("batch_exists", "this plan is already being executed"))
        }
        Err(e) => Err(e.into()),
    }
}

/// A batch by id (any user's: callers check the owner).
pub(crate) async fn get_batch(db: &Database, id: &str) -> Result<Option<BatchRow>, ApiError> {
    let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1");
    Ok(with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
    }))
}

/// The plan a batch executes.
pub(crate) async fn batch_plan(db: &Database, id: &str) -> Result<Plan, ApiError> {
    let json: String = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT plan_json FROM batches WHERE id = $1").bind(id).fetch_one(pool).await?
    });
    Ok(serde_json::from_str(&json)?)
}

/// Sets a batch's status (and its start or finish time).
pub(crate) async fn set_batch_status(
    db: &Database,
    id: &str,
    status: &str,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let now = now_ms();
    let finished = batch_is_terminal(status).then_some(now);
    let started = (status == "running").then_some(now);
    with_pool!(db, pool => {
        sqlx::query(
            "UPDATE batches SET status = $1, status_reason = $2, finished_at = COALESCE($3, finished_at), \
             started_at = COALESCE(started_at, $4), updated_at = $5 WHERE id = $6",
        )
        .bind(status)
        .bind(reason)
        .bind(finished)
        .bind(started)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// Counts of a batch's items per state.
pub(crate) async fn batch_counts(db: &Database, id: &str) -> Result<BTreeMap<String, i64>, ApiError> {
    let rows: Vec<(String, i64)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT state, COUNT(*) FROM batch_items WHERE batch_id = $1 GROUP BY state")
            .bind(id)
            .fetch_all(pool)
            .await?
    });
    let mut counts: BTreeMap<String, i64> = ["planned", "sent", "confirmed", "failed", "indeterminate", "cancelled"]
        .iter()
        .map(|s| ((*s).to_owned(), 0))
        .collect();
    for (state, n) in rows {
        counts.insert(state, n);
    }
    Ok(counts)
}

/// Adds an in-app notification for `user`.
pub(crate) async fn notify(db: &Database, user: UserId, kind: &str, title: &str, body: &str) -> Result<(), ApiError> {
    with_pool!(db, pool => {
        sqlx::query("INSERT INTO notifications (id, user_id, kind, title, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(user.to_string())
            .bind(kind)
            .bind(title)
            .bind(body)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(())
}
