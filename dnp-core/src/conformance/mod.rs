//! The provider conformance suite (feature `conformance`): plain async checks that tell an
//! adapter author when their [`Provider`] keeps the contract.
//!
//! An adapter author implements [`Harness`] for their service's emulator (seed a library,
//! read the service's state back directly, inject faults) and calls [`run_all`], or the
//! `check_*` functions one by one from their own tests:
//!
//! ```no_run
//! # async fn run(harness: &dyn dnp_core::conformance::Harness) {
//! let report = dnp_core::conformance::run_all(harness).await;
//! println!("{report}");
//! assert!(report.all_passed(), "{report}");
//! # }
//! ```
//!
//! | check | what it shows |
//! |---|---|
//! | [`check_full_scan`] | a scan across page boundaries equals the service's state |
//! | [`check_removal_exact`] | enforcement removes exactly the planned items, nothing else |
//! | [`check_rollback`] | rolling back restores the library (playlist order included) |
//! | [`check_idempotent`] | re-applying a plan changes nothing and fails nothing; re-planning plans nothing |
//! | [`check_capabilities`] | every kind the capabilities list works at its full batch size; unsupported ones are skipped and reported |
//! | [`check_playlist_changed`] | a playlist changed under us loses no unplanned entry; outcomes are per item |
//! | [`check_rate_limited`] | 429 with `Retry-After` is waited out and the work completes |
//! | [`check_server_errors`] | 5xx and timeouts are retried and the work completes |
//! | [`check_expired_token`] | an access token expiring before and during a scan is refreshed |
//! | [`check_breaker`] | an outage opens the circuit (calls then fail at once) and it recovers |
//!
//! A check is skipped, with the reason, only when the capabilities say an action kind is
//! unsupported or the harness cannot inject a fault; both show in the [`Report`].
//!
//! # Comparing libraries
//! Scans are compared with the service's state on what dnp relies on: ids, titles, artist
//! credits with their roles, album ids, ISRCs, `added_at` where the service keeps it, the
//! order of liked tracks and saved albums, playlist flags and versions, and every item of
//! editable playlists with its position. Links, durations and the order of followed
//! artists and of playlists are not compared. Items of playlists the user cannot edit may
//! be missing from a scan (Spotify refuses to list them) but must be right when present.

mod checks;
mod generate;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::LibrarySnapshot;
use crate::provider::{Provider, TokenSource};

pub use checks::{
    Passed, check_breaker, check_capabilities, check_expired_token, check_full_scan, check_idempotent,
    check_playlist_changed, check_rate_limited, check_removal_exact, check_rollback, check_server_errors,
    compare_libraries,
};
pub use generate::{LibraryShape, generate_library, subject_artist};

/// A failure the harness makes the service produce.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HarnessFault {
    /// The next `calls` requests are answered 429 with this `Retry-After`.
    RateLimit {
        /// How many requests.
        calls: u32,
        /// The `Retry-After` they carry.
        retry_after: Duration,
    },
    /// The next `calls` requests fail with a 5xx.
    ServerError {
        /// How many requests.
        calls: u32,
    },
    /// The next `calls` requests time out (the service holds them longer than the
    /// adapter's request timeout, as the harness configured it).
    Timeout {
        /// How many requests.
        calls: u32,
    },
    /// Every request fails with a 5xx until [`HarnessFault::ClearFaults`].
    Outage,
    /// Removes every pending fault.
    ClearFaults,
    /// The current access token stops working now (expired); the refresh token still works.
    ExpireAccessToken,
    /// Someone else changes the playlist now: its version changes and at least one of its
    /// entries moves, appears or disappears.
    ChangePlaylist {
        /// The playlist.
        playlist_id: String,
    },
}

impl HarnessFault {
    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RateLimit { .. } => "rate limit",
            Self::ServerError { .. } => "server error",
            Self::Timeout { .. } => "timeout",
            Self::Outage => "outage",
            Self::ClearFaults => "clear faults",
            Self::ExpireAccessToken => "expire access token",
            Self::ChangePlaylist { .. } => "change playlist",
        }
    }
}

/// An error of the harness itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The harness cannot do this (a fault its service cannot produce): the check that
    /// needs it is skipped with this reason.
    #[error("the harness cannot do this: {0}")]
    Unsupported(String),
    /// The harness failed (the emulator is down, the seed was refused…).
    #[error("harness failure: {0}")]
    Failed(String),
}

/// What an adapter author implements over their emulator to run the suite.
///
/// # Contract
/// - `provider` and `token_source` return the adapter under test, configured against the
///   emulator, and a token source for the test user (which can refresh).
/// - `seed` replaces the test user's whole library with `library` (whose provider id is
///   the adapter's); the service may assign its own playlist versions.
/// - `state` reads the service's state directly, not through the adapter: playlists with
///   every item, `owned` and `editable` as seen by the test user.
/// - `inject` arranges a fault, or says `Unsupported`.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The adapter under test.
    fn provider(&self) -> Arc<dyn Provider>;
    /// Tokens of the test user.
    fn token_source(&self) -> Arc<dyn TokenSource>;
    /// Replaces the test user's library.
    async fn seed(&self, library: &LibrarySnapshot) -> Result<(), HarnessError>;
    /// The service's state of the test user's library.
    async fn state(&self) -> Result<LibrarySnapshot, HarnessError>;
    /// Arranges a fault.
    async fn inject(&self, fault: HarnessFault) -> Result<(), HarnessError>;
}

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The adapter broke the contract; the message says how.
    #[error("{0}")]
    Failed(String),
    /// The check does not apply (unsupported capability or fault); the message says why.
    #[error("skipped: {0}")]
    Skipped(String),
}

impl From<HarnessError> for CheckError {
    fn from(err: HarnessError) -> Self {
        match err {
            HarnessError::Unsupported(why) => Self::Skipped(why),
            HarnessError::Failed(why) => Self::Failed(format!("harness: {why}")),
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckStatus {
    /// Passed, with an optional note.
    Passed(Option<String>),
    /// Failed: how.
    Failed(String),
    /// Skipped: why.
    Skipped(String),
}

/// One line of a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The check (`full_scan`, `capabilities/unlike_track`…).
    pub name: String,
    /// Its result.
    pub status: CheckStatus,
}

/// What [`run_all`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One entry per check, in the order run.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// Adds the result of a check.
    pub fn push(&mut self, name: impl Into<String>, result: Result<Passed, CheckError>) {
        let status = match result {
            Ok(passed) => CheckStatus::Passed(passed.note),
            Err(CheckError::Failed(e)) => CheckStatus::Failed(e),
            Err(CheckError::Skipped(e)) => CheckStatus::Skipped(e),
        };
        self.checks.push(CheckResult { name: name.into(), status });
    }

    /// Whether no check failed.
    pub fn all_passed(&self) -> bool {
        !self.checks.iter().any(|c| matches!(c.status, CheckStatus::Failed(_)))
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| matches!(c.status, CheckStatus::Failed(_)))
    }

    /// The result of the check named `name`.
    pub fn get(&self, name: &str) -> Option<&CheckStatus> {
        self.checks.iter().find(|c| c.name == name).map(|c| &c.status)
    }

    /// (passed, failed, skipped).
    pub fn counts(&self) -> (usize, usize, usize) {
        self.checks.iter().fold((0, 0, 0), |(p, f, s), c| match c.status {
            CheckStatus::Passed(_) => (p + 1, f, s),
            CheckStatus::Failed(_) => (p, f + 1, s),
            CheckStatus::Skipped(_) => (p, f, s + 1),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            match &c.status {
                CheckStatus::Passed(None) => writeln!(f, "passed   {}", c.name)?,
                CheckStatus::Passed(Some(note)) => writeln!(f, "passed   {} ({note})", c.name)?,
                CheckStatus::Failed(e) => writeln!(f, "FAILED   {}: {e}", c.name)?,
                CheckStatus::Skipped(why) => writeln!(f, "skipped  {}: {why}", c.name)?,
            }
        }
        let (p, fl, s) = self.counts();
        write!(f, "conformance: {p} passed, {fl} failed, {s} skipped")
    }
}

/// Runs every check in turn, each on a freshly seeded library, and reports each: passed,
/// failed (with how), or skipped (with why). The breaker check runs last, since it
/// leaves the service's faults cleared but the breaker freshly recovered.
pub async fn run_all(harness: &dyn Harness) -> Report {
    let mut report = Report::default();
    report.push("full_scan", check_full_scan(harness).await);
    report.push("removal_exact", check_removal_exact(harness).await);
    report.push("rollback", check_rollback(harness).await);
    report.push("idempotent", check_idempotent(harness).await);
    for (kind, result) in check_capabilities(harness).await {
        report.push(format!("capabilities/{}", kind.as_str()), result);
    }
    report.push("playlist_changed", check_playlist_changed(harness).await);
    report.push("rate_limited", check_rate_limited(harness).await);
    report.push("server_errors", check_server_errors(harness).await);
    report.push("expired_token", check_expired_token(harness).await);
    report.push("breaker", check_breaker(harness).await);
    let _ = harness.inject(HarnessFault::ClearFaults).await;
    report
}
