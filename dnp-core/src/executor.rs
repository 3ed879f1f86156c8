//! The enforcement executor: runs a [`Plan`] through a [`Provider`] batch by batch, with
//! a write-ahead [`ActionLog`] so a crash at any point resumes without repeating a call.
//!
//! # Write-ahead protocol
//! 1. `record` writes every action with its before-state as `planned` (once per batch id;
//!    a resumed run finds the rows already there).
//! 2. Before a batch is sent, its actions are marked `sent`.
//! 3. After the provider answers, each is marked `confirmed` or `failed`.
//!
//! On resume, `planned` actions run; `sent` actions whose outcome was lost are sent again
//! only when their kind is idempotent, else marked `indeterminate` for the user to check
//! (a playlist insert is never repeated). `confirmed`, `failed`, `indeterminate` and
//! `cancelled` are final.
//!
//! When the provider stops a run (the connection needs re-authorization, or the service
//! stays unavailable past the retry budget) the actions not yet sent stay `planned`: run
//! the same batch id again to resume. A transient failure of a non-idempotent batch (a
//! playlist insert that timed out) is not retried: its actions become `indeterminate`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionFailure, Outcome};
use crate::error::{ProviderError, Retry, StoreError};
use crate::id::{ActionId, BatchId};
use crate::plan::{Batch, Plan};
use crate::provider::{Progress, ProgressSink, Provider, TokenSource};

/// Where an action is in the write-ahead protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Recorded with its before-state, not sent.
    Planned,
    /// Sent; the outcome is not yet recorded.
    Sent,
    /// Done.
    Confirmed,
    /// Not done.
    Failed,
    /// Sent before a crash, not idempotent, outcome unknown: check by hand.
    Indeterminate,
    /// Not run: the user cancelled the batch. (A run the provider stopped, e.g. for
    /// re-authorization, leaves its unsent actions `planned` instead.)
    Cancelled,
}

impl ItemState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Sent => "sent",
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::Indeterminate => "indeterminate",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One action as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedAction {
    /// The action (with its before-state in `target`).
    pub action: Action,
    /// Its state.
    pub state: ItemState,
    /// The failure, for `failed`.
    pub failure: Option<ActionFailure>,
    /// A note from the provider (e.g. where a rollback insert landed).
    pub note: Option<String>,
}

/// A state change of one action.
#[derive(Debug, Clone, PartialEq)]
pub struct StateUpdate {
    /// The action.
    pub action: ActionId,
    /// The new state.
    pub state: ItemState,
    /// The failure, for `failed`.
    pub failure: Option<ActionFailure>,
    /// A note.
    pub note: Option<String>,
}

/// The durable record of a batch's actions.
///
/// # Contract
/// - `record` is idempotent per batch: when rows for `batch` exist it changes nothing.
/// - `update` applies all updates atomically, durably before it returns.
/// - `actions` returns the batch's rows in action id order; an unknown batch gives none.
#[async_trait]
pub trait ActionLog: Send + Sync + fmt::Debug {
    /// Records `actions` as `planned`.
    async fn record(&self, batch: BatchId, actions: &[Action]) -> Result<(), StoreError>;
    /// Changes states.
    async fn update(&self, batch: BatchId, updates: &[StateUpdate]) -> Result<(), StoreError>;
    /// The batch's actions.
    async fn actions(&self, batch: BatchId) -> Result<Vec<LoggedAction>, StoreError>;
}

/// A flag to stop an execution between two provider calls.
#[derive(Debug, Default)]
pub struct CancelFlag(AtomicBool);

impl CancelFlag {
    /// A flag not set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the execution to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether stopping was asked.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    /// Every batch due today ran (actions may still have failed individually).
    Finished,
    /// Cancelled between two calls.
    Cancelled,
    /// Stopped: the connection needs re-authorization.
    NeedsReauth,
    /// Stopped: the provider stayed unavailable or rate limited past the retry budget.
    ProviderUnavailable,
}

/// Counts of an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionReport {
    /// How it ended.
    pub completion: Completion,
    /// Actions confirmed (in all runs of this batch id).
    pub confirmed: u64,
    /// Actions failed.
    pub failed: u64,
    /// Actions whose outcome a crash left unknown.
    pub indeterminate: u64,
    /// Actions not run (cancelled, stopped, or deferred to a later day by a quota).
    pub not_run: u64,
    /// Provider calls made in this run.
    pub calls: u64,
    /// Distinct failures, with how many actions each hit.
    pub failures: Vec<(ActionFailure, u64)>,
}

/// Settings of the executor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExecutorConfig {
    /// Whole-batch retries on rate limits and transient errors before giving up.
    pub max_batch_retries: u32,
    /// Backoff between retries when the provider gives no `Retry-After`.
    pub retry_base: Duration,
    /// The longest single wait.
    pub max_wait: Duration,
    /// Run only batches scheduled for this day or earlier (quota scheduling).
    pub through_day: u32,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            max_batch_retries: 5,
            retry_base: Duration::from_millis(500),
            max_wait: Duration::from_secs(120),
            through_day: 0,
        }
    }
}

/// Runs plans. Generic over the SDK traits; holds no state between runs.
pub struct Executor<'a> {
    provider: &'a dyn Provider,
    tokens: &'a dyn TokenSource,
    log: &'a dyn ActionLog,
    config: ExecutorConfig,
}

impl fmt::Debug for Executor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor").field("provider", self.provider.id()).field("config", &self.config).finish()
    }
}

impl<'a> Executor<'a> {
    /// An executor over `provider`, authenticated by `tokens`, logging to `log`.
    pub fn new(provider: &'a dyn Provider, tokens: &'a dyn TokenSource, log: &'a dyn ActionLog) -> Self {
        Self { provider, tokens, log, config: ExecutorConfig::default() }
    }

    /// Replaces the settings.
    pub fn with_config(mut self, config: ExecutorConfig) -> Self {
        self.config = config;
        self
    }

    /// Executes (or resumes) `plan` as batch `batch_id`.
    ///
    /// # Behavior
    /// Failures of single actions are collected, never fatal. Rate limits are waited out
    /// (`Retry-After` exactly). Progress is reported after every call. Re-running with the
    /// same `batch_id` after a crash continues where the log says it stopped.
    ///
    /// # Errors
    /// Only when the action log itself fails; the log then tells where to resume.
    pub async fn execute(
        &self,
        batch_id: BatchId,
        plan: &Plan,
        progress: &dyn ProgressSink,
        cancel: &CancelFlag,
    ) -> Result<ExecutionReport, StoreError> {
        let all: Vec<Action> = plan.actions().cloned().collect();
        self.log.record(batch_id, &all).await?;
        let logged = self.log.actions(batch_id).await?;
        let states: rustc_hash::FxHashMap<ActionId, ItemState> =
            logged.iter().map(|l| (l.action.id, l.state)).collect();

        // Resolve actions a crash left `sent`.
        let mut resend = rustc_hash::FxHashSet::default();
        let mut indeterminate = Vec::new();
        for l in &logged {
            if l.state == ItemState::Sent {
                if l.action.kind.is_idempotent() {
                    resend.insert(l.action.id);
                } else {
                    indeterminate.push(StateUpdate {
                        action: l.action.id,
                        state: ItemState::Indeterminate,
                        failure: None,
                        note: Some("sent before an interruption; check the playlist".into()),
                    });
                }
            }
        }
        if !indeterminate.is_empty() {
            self.log.update(batch_id, &indeterminate).await?;
        }

        let total = all.len() as u64;
        let mut calls = 0u64;
        let mut completion = Completion::Finished;
        // Settled rows (including those just marked indeterminate) count as done.
        let mut done_so_far =
            logged.iter().filter(|l| l.state != ItemState::Planned && !resend.contains(&l.action.id)).count() as u64;
        for batch in &plan.batches {
            let pending: Vec<Action> = batch
                .actions
                .iter()
                .filter(|a| states.get(&a.id) == Some(&ItemState::Planned) || resend.contains(&a.id))
                .cloned()
                .collect();
            if pending.is_empty() || batch.day > self.config.through_day {
                continue;
            }
            if completion == Completion::Finished && cancel.is_cancelled() {
                completion = Completion::Cancelled;
            }
            match completion {
                Completion::Finished => {}
                // The user asked to stop: what did not run is final.
                Completion::Cancelled => {
                    self.mark(batch_id, &pending, ItemState::Cancelled, None).await?;
                    continue;
                }
                // Stopped by the provider (re-authorization, outage): the rest stays
                // `planned`, so running the same batch id again resumes it.
                Completion::NeedsReauth | Completion::ProviderUnavailable => continue,
            }
            let sub = Batch { actions: pending, ..batch.clone() };
            self.mark(batch_id, &sub.actions, ItemState::Sent, None).await?;
            match self.send(&sub, &mut calls).await {
                Ok(outcomes) => {
                    let updates: Vec<StateUpdate> = sub
                        .actions
                        .iter()
                        .map(|a| match outcomes.iter().find(|o| o.action == a.id).map(|o| &o.outcome) {
                            Some(Outcome::Confirmed { note }) => StateUpdate {
                                action: a.id,
                                state: ItemState::Confirmed,
                                failure: None,
                                note: note.clone(),
                            },
                            Some(Outcome::Failed(f)) => StateUpdate {
                                action: a.id,
                                state: ItemState::Failed,
                                failure: Some(f.clone()),
                                note: None,
                            },
                            None => StateUpdate {
                                action: a.id,
                                state: ItemState::Failed,
                                failure: Some(ActionFailure {
                                    code: "protocol".into(),
                                    message: "the adapter returned no outcome for this action".into(),
                                    retryable: false,
                                }),
                                note: None,
                            },
                        })
                        .collect();
                    self.log.update(batch_id, &updates).await?;
                }
                Err(err) => {
                    completion = match err {
                        ProviderError::NeedsReauth { .. } => Completion::NeedsReauth,
                        ref e if e.is_retryable() => Completion::ProviderUnavailable,
                        _ => Completion::Finished,
                    };
                    let failure = ActionFailure::from(&err);
                    if completion == Completion::Finished {
                        // A permanent error for the whole batch: its actions failed.
                        self.mark(batch_id, &sub.actions, ItemState::Failed, Some(failure)).await?;
                    } else if may_have_applied(&sub, &err) {
                        // A non-idempotent call that failed in transit may have been
                        // applied: never send it again, let the user check.
                        let note = "the call failed in transit and may have been applied; check the playlist";
                        let updates: Vec<StateUpdate> = sub
                            .actions
                            .iter()
                            .map(|a| StateUpdate {
                                action: a.id,
                                state: ItemState::Indeterminate,
                                failure: Some(failure.clone()),
                                note: Some(note.into()),
                            })
                            .collect();
                        self.log.update(batch_id, &updates).await?;
                    } else {
                        // Nothing was applied: leave them planned so a resume sends them.
                        self.mark(batch_id, &sub.actions, ItemState::Planned, None).await?;
                        continue;
                    }
                }
            }
            done_so_far += sub.actions.len() as u64;
            progress.report(Progress {
                done: done_so_far.min(total),
                total: Some(total),
                message: format!("{}: {} of {} actions", self.provider.id(), done_so_far.min(total), total),
            });
        }
        if completion == Completion::Finished && cancel.is_cancelled() {
            completion = Completion::Cancelled;
        }

        let final_rows = self.log.actions(batch_id).await?;
        let mut report = ExecutionReport {
            completion,
            confirmed: 0,
            failed: 0,
            indeterminate: 0,
            not_run: 0,
            calls,
            failures: Vec::new(),
        };
        for row in &final_rows {
            match row.state {
                ItemState::Confirmed => report.confirmed += 1,
                ItemState::Failed => {
                    report.failed += 1;
                    if let Some(f) = &row.failure {
                        match report.failures.iter_mut().find(|(g, _)| g == f) {
                            Some((_, n)) => *n += 1,
                            None => report.failures.push((f.clone(), 1)),
                        }
                    }
                }
                ItemState::Indeterminate => report.indeterminate += 1,
                ItemState::Planned | ItemState::Sent | ItemState::Cancelled => report.not_run += 1,
            }
        }
        Ok(report)
    }

    async fn mark(
        &self,
        batch: BatchId,
        actions: &[Action],
        state: ItemState,
        failure: Option<ActionFailure>,
    ) -> Result<(), StoreError> {
        let updates: Vec<StateUpdate> =
            actions.iter().map(|a| StateUpdate { action: a.id, state, failure: failure.clone(), note: None }).collect();
        self.log.update(batch, &updates).await
    }

    /// Sends a batch, waiting out rate limits and retrying transient whole-batch errors.
    async fn send(&self, batch: &Batch, calls: &mut u64) -> Result<Vec<crate::ActionOutcome>, ProviderError> {
        let mut attempt = 0u32;
        loop {
            *calls += 1;
            match self.provider.apply(self.tokens, batch).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(err) => {
                    let wait = match err.retry() {
                        Retry::Never => return Err(err),
                        _ if may_have_applied(batch, &err) => return Err(err),
                        _ if attempt >= self.config.max_batch_retries => return Err(err),
                        Retry::After(d) => d,
                        Retry::Backoff => self.config.retry_base.saturating_mul(1 << attempt.min(10)),
                    };
                    if wait > self.config.max_wait {
                        return Err(err);
                    }
                    tracing::warn!(provider = %self.provider.id(), kind = batch.kind.as_str(), attempt, wait_ms = wait.as_millis() as u64, error = err.code(), "batch not applied; retrying");
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Whether a failed call of `batch` may have been applied all the same: a transient
/// failure (timeout, reset connection, 5xx) of a non-idempotent kind. Rate limits, an open
/// breaker and refused credentials mean the call was not carried out.
fn may_have_applied(batch: &Batch, err: &ProviderError) -> bool {
    !batch.kind.is_idempotent() && matches!(err, ProviderError::Transient { .. })
}

/// The confirmed actions of a logged batch, ready for [`rollback_plan`](crate::rollback_plan).
pub fn confirmed_actions(logged: &[LoggedAction]) -> Vec<Action> {
    logged.iter().filter(|l| l.state == ItemState::Confirmed).map(|l| l.action.clone()).collect()
}
