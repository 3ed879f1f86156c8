//! The background jobs: library scan, enforcement (and rollback) batch, token refresh,
//! scheduled re-enforcement. Each is a thin job over dnp-core, run by the [`worker`](crate::worker).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dnp_core::{
    BlockedSet, CancelFlag, Completion, ConnectionId, ConnectionStatus, Executor, Job, JobProgress, NewJob, Progress,
    ProgressSink, ProviderError, ProviderId, StoredTokenSource, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::now_ms;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{self, SqlActionLog};
use crate::with_pool;

/// Job type: scan one provider's library.
pub const LIBRARY_SCAN: &str = "library_scan";
/// Job type: execute an enforcement or rollback batch.
pub const ENFORCEMENT: &str = "enforcement";
/// Job type: find connections whose tokens expire soon and enqueue their refresh.
pub const TOKEN_REFRESH_SWEEP: &str = "token_refresh_sweep";
/// Job type: refresh one connection's tokens.
pub const TOKEN_REFRESH: &str = "token_refresh";
/// Job type: find users due for scheduled re-enforcement.
pub const REENFORCE_SWEEP: &str = "reenforce_sweep";
/// Job type: scan, plan and enforce again for one user.
pub const REENFORCE: &str = "reenforce";

/// Job type: send one notification email (see [`mail`](crate::mail)).
pub const SEND_EMAIL: &str = crate::mail::SEND_EMAIL;

/// Every job type the worker runs.
pub const ALL_KINDS: [&str; 7] =
    [LIBRARY_SCAN, ENFORCEMENT, TOKEN_REFRESH_SWEEP, TOKEN_REFRESH, REENFORCE_SWEEP, REENFORCE, SEND_EMAIL];

/// How many token refresh jobs become due per minute (rate-limited batches).
pub(crate) const REFRESH_BATCH_PER_MINUTE: usize = 50;
/// Attempts of a token refresh before the connection is marked `needs_reauth`.
pub(crate) const REFRESH_ATTEMPTS: u32 = 4;

/// Input of a library scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScanPayload {
    pub(crate) user_id: UserId,
    pub(crate) provider: ProviderId,
    #[serde(default)]
    pub(crate) request_id: Option<String>,
}

/// Input of an enforcement or rollback batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BatchPayload {
    pub(crate) batch_id: String,
    #[serde(default)]
    pub(crate) request_id: Option<String>,
}

/// Input of a token refresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RefreshPayload {
    pub(crate) connection_id: ConnectionId,
    pub(crate) user_id: UserId,
    pub(crate) provider: ProviderId,
}

/// Input of a scheduled re-enforcement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReenforcePayload {
    pub(crate) user_id: UserId,
}

/// Why a job attempt failed, and whether another attempt may succeed.
#[derive(Debug)]
pub(crate) struct JobError {
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

impl JobError {
    pub(crate) fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: false }
    }

    pub(crate) fn retry(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: true }
    }
}

impl From<ApiError> for JobError {
    fn from(e: ApiError) -> Self {
        let retryable =
            matches!(e, ApiError::Internal(_) | ApiError::Unavailable { .. } | ApiError::TooManyRequests { .. });
        Self { message: e.to_string(), retryable }
    }
}

impl From<dnp_core::StoreError> for JobError {
    fn from(e: dnp_core::StoreError) -> Self {
        Self { retryable: e.retry() != dnp_core::Retry::Never, message: e.to_string() }
    }
}

impl From<ProviderError> for JobError {
    fn from(e: ProviderError) -> Self {
        Self { retryable: e.is_retryable(), message: e.to_string() }
    }
}

/// What a running job can use: the state, its cancellation flag, and a progress channel.
pub(crate) struct JobContext {
    pub(crate) state: AppState,
    pub(crate) cancel: Arc<CancelFlag>,
    pub(crate) progress: tokio::sync::watch::Sender<Option<JobProgress>>,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
}

impl JobContext {
    pub(crate) fn report(&self, done: u64, total: Option<u64>, message: impl Into<String>) {
        let _ = self.progress.send(Some(JobProgress { done, total, message: message.into() }));
    }

    fn sink(&self) -> ChannelProgress {
        ChannelProgress(self.progress.clone())
    }
}

struct ChannelProgress(tokio::sync::watch::Sender<Option<JobProgress>>);

impl ProgressSink for ChannelProgress {
    fn report(&self, p: Progress) {
        let _ = self.0.send(Some(JobProgress { done: p.done, total: p.total, message: p.message }));
    }
}

/// Runs `job`.
pub(crate) async fn run(ctx: &JobContext, job: &Job) -> Result<(), JobError> {
    let payload = job.payload.clone();
    let parse = |what: &str| JobError::permanent(format!("malformed {what} payload"));
    match job.kind.as_str() {
        LIBRARY_SCAN => scan(ctx, serde_json::from_value(payload).map_err(|_| parse(LIBRARY_SCAN))?).await,
        ENFORCEMENT => enforce(ctx, serde_json::from_value(payload).map_err(|_| parse(ENFORCEMENT))?).await,
        TOKEN_REFRESH_SWEEP => refresh_sweep(ctx).await,
        TOKEN_REFRESH => refresh(ctx, serde_json::from_value(payload).map_err(|_| parse(TOKEN_REFRESH))?).await,
        REENFORCE_SWEEP => reenforce_sweep(ctx).await,
        REENFORCE => reenforce(ctx, serde_json::from_value(payload).map_err(|_| parse(REENFORCE))?).await,
        SEND_EMAIL => {
            crate::mail::send_job(&ctx.state, serde_json::from_value(payload).map_err(|_| parse(SEND_EMAIL))?).await
        }
        other => Err(JobError::permanent(format!("unknown job type {other:?}"))),
    }
}

/// Called when a job failed its last attempt: leaves the records it governs in a final state.
pub(crate) async fn on_dead(state: &AppState, job: &Job) {
    let result: Result<(), ApiError> = async {
        match job.kind.as_str() {
            ENFORCEMENT => {
                if let Ok(p) = serde_json::from_value::<BatchPayload>(job.payload.clone()) {
                    let reason = job.last_error.clone().unwrap_or_else(|| "the job failed".into());
                    store::set_batch_status(state.db(), &p.batch_id, "failed", Some(&reason)).await?;
                    if let Some(b) = store::get_batch(state.db(), &p.batch_id).await? {
                        crate::mail::notify(
                            state,
                            b.user()?,
                            "enforcement_failed",
                            "Enforcement failed",
                            &format!("The {} batch stopped: {reason}", b.provider),
                        )
                        .await?;
                    }
                }
            }
            TOKEN_REFRESH => {
                if let Ok(p) = serde_json::from_value::<RefreshPayload>(job.payload.clone()) {
                    mark_needs_reauth(state, &p, job.last_error.as_deref().unwrap_or("refreshing failed repeatedly"))
                        .await?;
                }
            }
            LIBRARY_SCAN => {
                if let Ok(p) = serde_json::from_value::<ScanPayload>(job.payload.clone()) {
                    let reason = job.last_error.clone().unwrap_or_default();
                    store::notify(
                        state.db(),
                        p.user_id,
                        "scan_failed",
                        "Library scan failed",
                        &format!("Scanning {} failed: {reason}", p.provider),
                    )
                    .await?;
                }
            }
            SEND_EMAIL => {
                let reason = job.last_error.as_deref().unwrap_or("sending failed repeatedly");
                tracing::error!(job_id = %job.id, error = %reason, "a notification email was given up");
            }
            _ => {}
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(job_id = %job.id, error = %e, "recording a dead job's outcome failed");
    }
}

fn provider_entry(state: &AppState, provider: &ProviderId) -> Result<crate::state::ProviderEntry, JobError> {
    state
        .providers()
        .get(provider.as_str())
        .cloned()
        .map_err(|_| JobError::permanent(format!("provider {provider} is not configured on this worker")))
}

async fn scan(ctx: &JobContext, p: ScanPayload) -> Result<(), JobError> {
    let state = &ctx.state;
    let entry = provider_entry(state, &p.provider)?;
    let connection = state
        .tokens()
        .find(p.user_id, &p.provider)
        .await?
        .ok_or_else(|| JobError::permanent(format!("{} is not connected", p.provider)))?;
    if connection.status == ConnectionStatus::NeedsReauth {
        return Err(JobError::permanent(format!("the {} connection needs to be authorized again", p.provider)));
    }
    let tokens = StoredTokenSource::new(state.tokens().clone(), entry.auth.clone(), connection.id);
    ctx.report(0, None, format!("scanning {}", entry.display_name));
    let mut snapshot = match entry.provider.scan(&tokens, &ctx.sink()).await {
        Ok(s) => s,
        Err(e @ ProviderError::NeedsReauth { .. }) => {
            let _ = state.tokens().set_status(connection.id, ConnectionStatus::NeedsReauth).await;
            crate::mail::notify(
                state,
                p.user_id,
                "needs_reauth",
                &format!("Reconnect {}", entry.display_name),
                &format!("{e}"),
            )
            .await?;
            return Err(JobError::permanent(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    snapshot.taken_at = Some(Utc::now());
    let items = snapshot.item_count() as u64;
    store::save_snapshot(state.db(), p.user_id, &snapshot).await?;
    state.invalidate_summary(p.user_id);
    ctx.report(items, Some(items), format!("{}: {items} items scanned", entry.display_name));
    tracing::info!(user_id = %p.user_id, provider = %p.provider, items, "library scanned");
    Ok(())
}

async fn enforce(ctx: &JobContext, p: BatchPayload) -> Result<(), JobError> {
    let state = &ctx.state;
    let Some(batch) = store::get_batch(state.db(), &p.batch_id).await? else {
        return Err(JobError::permanent(format!("batch {} does not exist", p.batch_id)));
    };
    if store::batch_is_terminal(&batch.status) {
        return Ok(());
    }
    let user = batch.user()?;
    let provider = ProviderId::from_str(&batch.provider).map_err(|e| JobError::permanent(e.to_string()))?;
    let entry = provider_entry(state, &provider)?;
    let what = if batch.kind == "rollback" { "Rollback" } else { "Enforcement" };
    let connection = state.tokens().find(user, &provider).await?;
    let connection = match connection {
        Some(c) if c.status != ConnectionStatus::NeedsReauth => c,
        other => {
            let reason = if other.is_some() {
                format!("skipped: the {} connection needs to be authorized again", entry.display_name)
            } else {
                format!("skipped: {} is not connected", entry.display_name)
            };
            store::set_batch_status(state.db(), &batch.id, "skipped", Some(&reason)).await?;
            store::notify(
                state.db(),
                user,
                "enforcement_skipped",
                &format!("{what} on {} skipped", entry.display_name),
                &reason,
            )
            .await?;
            return Ok(());
        }
    };
    store::set_batch_status(state.db(), &batch.id, "running", None).await?;
    let plan = store::batch_plan(state.db(), &batch.id).await?;
    let tokens = StoredTokenSource::new(state.tokens().clone(), entry.auth.clone(), connection.id);
    let log = SqlActionLog::new(state.db().clone());
    let report = Executor::new(entry.provider.as_ref(), &tokens, &log)
        .execute(batch.batch_id()?, &plan, &ctx.sink(), &ctx.cancel)
        .await?;
    tracing::info!(batch_id = %batch.id, provider = %provider, confirmed = report.confirmed, failed = report.failed, not_run = report.not_run, completion = ?report.completion, "batch executed");
    let (status, reason) = match report.completion {
        Completion::Finished if report.failed > 0 || report.indeterminate > 0 => (
            "completed_with_failures",
            Some(format!("{} failed, {} to check by hand", report.failed, report.indeterminate)),
        ),
        Completion::Finished if report.not_run > 0 => {
            ("completed_with_failures", Some(format!("{} actions wait for the provider's quota", report.not_run)))
        }
        Completion::Finished => ("succeeded", None),
        Completion::Cancelled => ("cancelled", Some("cancelled by the user".to_owned())),
        Completion::NeedsReauth => {
            let _ = state.tokens().set_status(connection.id, ConnectionStatus::NeedsReauth).await;
            (
                "needs_reauth",
                Some(format!("stopped: the {} connection needs to be authorized again", entry.display_name)),
            )
        }
        Completion::ProviderUnavailable => {
            if ctx.attempt < ctx.max_attempts {
                store::set_batch_status(
                    state.db(),
                    &batch.id,
                    "waiting_retry",
                    Some("the service is unavailable; retrying"),
                )
                .await?;
                return Err(JobError::retry(format!(
                    "{} unavailable; {} actions left",
                    entry.display_name, report.not_run
                )));
            }
            ("failed", Some(format!("{} stayed unavailable", entry.display_name)))
        }
    };
    let verb = if batch.kind == "rollback" { "restored" } else { "removed" };
    let body = format!(
        "{}: {} {verb}, {} failed, {} not run{}",
        entry.display_name,
        report.confirmed,
        report.failed,
        report.not_run,
        reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    );
    // Notify first: whoever sees the batch finished must find its notification.
    store::notify(state.db(), user, &format!("{}_finished", batch.kind), &format!("{what} finished"), &body).await?;
    store::set_batch_status(state.db(), &batch.id, status, reason.as_deref()).await?;
    state.invalidate_summary(user);
    Ok(())
}

/// Jobs a sweep enqueues in one `enqueue_many` call.
const ENQUEUE_CHUNK: usize = 500;

/// Enqueues a refresh of every connection whose access token expires within 24 hours,
/// spread out in rate-limited batches.
async fn refresh_sweep(ctx: &JobContext) -> Result<(), JobError> {
    let state = &ctx.state;
    let horizon = Utc::now() + chrono::Duration::hours(24);
    let due = state.tokens().expiring_before(horizon, 10_000).await?;
    let now = Utc::now();
    let mut jobs = Vec::with_capacity(due.len());
    for (i, c) in due.iter().enumerate() {
        let Some(expires) = c.expires_at else { continue };
        let minute = (i / REFRESH_BATCH_PER_MINUTE) as i64;
        let payload = RefreshPayload { connection_id: c.id, user_id: c.user_id, provider: c.provider.clone() };
        jobs.push(
            NewJob::new(TOKEN_REFRESH, serde_json::to_value(&payload).map_err(|e| JobError::permanent(e.to_string()))?)
                .with_owner(c.user_id)
                .with_idempotency_key(format!("token_refresh:{}:{}", c.id, expires.timestamp()))
                .with_run_at(now + chrono::Duration::minutes(minute))
                .with_max_attempts(REFRESH_ATTEMPTS),
        );
    }
    // A few hundred jobs a transaction (one on the SQL queues): few commits, short locks.
    let mut queued = 0u64;
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let chunk: Vec<NewJob> = jobs.by_ref().take(ENQUEUE_CHUNK).collect();
        queued += state.queue().enqueue_many(chunk).await?.len() as u64;
    }
    ctx.report(queued, Some(queued), format!("{queued} connections to refresh"));
    Ok(())
}

async fn mark_needs_reauth(state: &AppState, p: &RefreshPayload, reason: &str) -> Result<(), ApiError> {
    match state.tokens().set_status(p.connection_id, ConnectionStatus::NeedsReauth).await {
        Ok(()) | Err(dnp_core::StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    metrics::counter!("token_refresh_failures_total", "provider" => p.provider.to_string()).increment(1);
    let name = state
        .providers()
        .get(p.provider.as_str())
        .map(|e| e.display_name.clone())
        .unwrap_or_else(|_| p.provider.to_string());
    crate::mail::notify(
        state,
        p.user_id,
        "needs_reauth",
        &format!("Reconnect {name}"),
        &format!("dnp could not renew its access to {name} ({reason}). Connect it again to keep your list enforced."),
    )
    .await
}

async fn refresh(ctx: &JobContext, p: RefreshPayload) -> Result<(), JobError> {
    let state = &ctx.state;
    let entry = provider_entry(state, &p.provider)?;
    let connection = match state.tokens().connection(p.connection_id).await {
        Ok(c) => c,
        Err(dnp_core::StoreError::NotFound { .. }) => return Ok(()), // disconnected meanwhile
        Err(e) => return Err(e.into()),
    };
    if connection.status == ConnectionStatus::NeedsReauth {
        return Ok(());
    }
    let tokens = state.tokens().tokens(connection.id).await?;
    let Some(refresh_token) = tokens.refresh_token else {
        mark_needs_reauth(state, &p, "no refresh token").await?;
        return Ok(());
    };
    match entry.auth.refresh(&refresh_token).await {
        Ok(new) => {
            state.tokens().update_tokens(connection.id, &new).await?;
            metrics::counter!("tokens_refreshed_total", "provider" => p.provider.to_string()).increment(1);
            tracing::info!(connection_id = %connection.id, provider = %p.provider, "tokens refreshed");
            Ok(())
        }
        Err(e @ ProviderError::NeedsReauth { .. }) => {
            mark_needs_reauth(state, &p, &e.to_string()).await?;
            Ok(())
        }
        Err(e) => {
            metrics::counter!("token_refresh_failures_total", "provider" => p.provider.to_string()).increment(1);
            if ctx.attempt >= ctx.max_attempts {
                mark_needs_reauth(state, &p, &e.to_string()).await?;
                return Ok(());
            }
            Err(JobError::retry(e.to_string()))
        }
    }
}

/// Enqueues a re-enforcement for every user whose schedule is due.
async fn reenforce_sweep(ctx: &JobContext) -> Result<(), JobError> {
    let state = &ctx.state;
    let now = now_ms();
    let due: Vec<(String, i64, Option<i64>)> = with_pool!(state.db(), pool => {
        sqlx::query_as(
            "SELECT id, reenforce_hours, next_reenforce_at FROM users \
             WHERE reenforce_hours IS NOT NULL AND next_reenforce_at IS NOT NULL AND next_reenforce_at <= $1 LIMIT 1000",
        )
        .bind(now)
        .fetch_all(pool)
        .await
        .map_err(ApiError::from)?
    });
    for (id, hours, next) in &due {
        let user = UserId::from_str(id).map_err(|e| JobError::permanent(e.to_string()))?;
        let slot = next.unwrap_or(now);
        let job = NewJob::new(REENFORCE, json!({"user_id": user}))
            .with_owner(user)
            .with_idempotency_key(format!("reenforce:{user}:{slot}"));
        state.queue().enqueue(job).await?;
        with_pool!(state.db(), pool => {
            sqlx::query("UPDATE users SET next_reenforce_at = $1 WHERE id = $2 AND next_reenforce_at = $3")
                .bind(now + hours * 3_600_000)
                .bind(id)
                .bind(slot)
                .execute(pool)
                .await
                .map_err(ApiError::from)?
                .rows_affected()
        });
    }
    ctx.report(due.len() as u64, Some(due.len() as u64), format!("{} users due", due.len()));
    Ok(())
}

/// Scans every connected provider of the user, plans with their policy and executes the
/// plan as batches, one provider after the other.
async fn reenforce(ctx: &JobContext, p: ReenforcePayload) -> Result<(), JobError> {
    let state = &ctx.state;
    let list = crate::api::dnp::load_list(state, p.user_id).await?;
    if list.entries.is_empty() {
        return Ok(());
    }
    let policy = crate::api::settings::load_policy(state, p.user_id).await?;
    for connection in state.tokens().list(p.user_id).await? {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let Ok(entry) = state.providers().get(connection.provider.as_str()).cloned() else { continue };
        if connection.status == ConnectionStatus::NeedsReauth {
            store::notify(
                state.db(),
                p.user_id,
                "enforcement_skipped",
                &format!("Scheduled enforcement skipped {}", entry.display_name),
                &format!("The {} connection needs to be authorized again.", entry.display_name),
            )
            .await?;
            continue;
        }
        scan(ctx, ScanPayload { user_id: p.user_id, provider: connection.provider.clone(), request_id: None }).await?;
        let Some(snapshot) = store::load_snapshot(state.db(), p.user_id, &connection.provider).await? else { continue };
        let blocked = BlockedSet::for_provider(&list, &connection.provider);
        let plan = dnp_core::plan(&snapshot, &blocked, &policy, &entry.provider.capabilities());
        if plan.is_empty() {
            continue;
        }
        let batch_id = dnp_core::BatchId::new_random();
        store::insert_batch(state.db(), batch_id, p.user_id, "enforcement", None, None, &plan).await?;
        enforce(ctx, BatchPayload { batch_id: batch_id.to_string(), request_id: None }).await?;
    }
    Ok(())
}

/// Enqueues the scheduler's periodic jobs for the current time slots (idempotent: every
/// worker may call this; each slot's job is enqueued once).
pub(crate) async fn enqueue_periodic(state: &AppState) -> Result<(), dnp_core::StoreError> {
    let now = Utc::now().timestamp();
    let interval = state.config().token_refresh_interval.as_secs().max(60) as i64;
    let slot = now / interval;
    state
        .queue()
        .enqueue(
            NewJob::new(TOKEN_REFRESH_SWEEP, json!({"slot": slot}))
                .with_idempotency_key(format!("{TOKEN_REFRESH_SWEEP}:{interval}:{slot}"))
                .with_max_attempts(3),
        )
        .await?;
    let reenforce_slot = now / REENFORCE_SWEEP_EVERY.as_secs() as i64;
    state
        .queue()
        .enqueue(
            NewJob::new(REENFORCE_SWEEP, json!({"slot": reenforce_slot}))
                .with_idempotency_key(format!("{REENFORCE_SWEEP}:{reenforce_slot}"))
                .with_max_attempts(3),
        )
        .await?;
    Ok(())
}

/// How often due re-enforcements are looked for.
pub(crate) const REENFORCE_SWEEP_EVERY: Duration = Duration::from_secs(15 * 60);
