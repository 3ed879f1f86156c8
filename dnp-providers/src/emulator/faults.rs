//! [`FaultInjector`]: scripted failures for the emulators.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// A failure the emulator answers a request with instead of handling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// `429 Too Many Requests` with `Retry-After` (whole seconds, rounded up): ordinary
    /// rate limiting.
    RateLimited {
        /// The `Retry-After` the response carries.
        retry_after: Duration,
    },
    /// `429` for a spent quota (Spotify: body reason `QUOTA_EXCEEDED`), with `Retry-After`.
    QuotaExceeded {
        /// The `Retry-After` the response carries.
        retry_after: Duration,
    },
    /// A server error with this status (500-599); nothing is applied.
    ServerError {
        /// The status, 500 to 599.
        status: u16,
    },
    /// The request is held for `hold`, then answered `504 Gateway Timeout` without being
    /// applied. A client with a shorter timeout sees a timeout; nothing changed.
    Timeout {
        /// How long the request is held.
        hold: Duration,
    },
    /// The request is held for `delay`, then handled normally: a client that gave up
    /// earlier does not know its request was applied.
    Slow {
        /// How long the request is held before it is handled.
        delay: Duration,
    },
}

impl FaultKind {
    fn validate(&self) -> Result<(), FaultError> {
        match *self {
            Self::ServerError { status } if !(500..=599).contains(&status) => Err(FaultError::InvalidStatus { status }),
            _ => Ok(()),
        }
    }
}

/// Which requests a [`FaultRule`] hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultTrigger {
    /// The next `n` matching requests; the rule is spent after them.
    Next(u32),
    /// Each matching request with this probability (0.0 to 1.0), drawn from the
    /// injector's seeded generator, until the rules are cleared.
    Ratio(f64),
}

/// One scripted fault: what, how often, and on which requests.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// The failure.
    pub kind: FaultKind,
    /// How often.
    pub trigger: FaultTrigger,
    /// Only requests whose path starts with this (`/v1/me/tracks`); `None`: every request.
    pub path_prefix: Option<String>,
    /// Only requests with this method (`DELETE`, case-insensitive); `None`: every method.
    pub method: Option<String>,
}

impl FaultRule {
    /// A rule hitting every request (narrow it with [`on_path`](Self::on_path) and
    /// [`on_method`](Self::on_method)).
    ///
    /// # Errors
    /// [`FaultError::InvalidRatio`] for a ratio outside 0.0..=1.0 (or NaN),
    /// [`FaultError::InvalidStatus`] for a server error outside 500..=599.
    pub fn new(kind: FaultKind, trigger: FaultTrigger) -> Result<Self, FaultError> {
        let rule = Self { kind, trigger, path_prefix: None, method: None };
        rule.validate()?;
        Ok(rule)
    }

    fn validate(&self) -> Result<(), FaultError> {
        self.kind.validate()?;
        match self.trigger {
            FaultTrigger::Ratio(ratio) if !(0.0..=1.0).contains(&ratio) => Err(FaultError::InvalidRatio { ratio }),
            _ => Ok(()),
        }
    }

    /// Only requests whose path starts with `prefix`.
    pub fn on_path(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only requests with `method`.
    pub fn on_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
            && self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// A fault set-up the injector refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// A ratio outside 0.0..=1.0.
    #[error("fault ratio {ratio} is outside 0.0..=1.0")]
    InvalidRatio {
        /// The ratio given.
        ratio: f64,
    },
    /// A server-error status outside 500..=599.
    #[error("server error status {status} is outside 500..=599")]
    InvalidStatus {
        /// The status given.
        status: u16,
    },
}

/// How many faults of each kind were injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// `429` rate-limit answers.
    pub rate_limited: u64,
    /// `429` quota answers.
    pub quota_exceeded: u64,
    /// `5xx` answers.
    pub server_errors: u64,
    /// Requests held then answered `504`.
    pub timeouts: u64,
    /// Requests held then handled.
    pub slow: u64,
}

impl FaultStats {
    fn count(&mut self, kind: &FaultKind) {
        match kind {
            FaultKind::RateLimited { .. } => self.rate_limited += 1,
            FaultKind::QuotaExceeded { .. } => self.quota_exceeded += 1,
            FaultKind::ServerError { .. } => self.server_errors += 1,
            FaultKind::Timeout { .. } => self.timeouts += 1,
            FaultKind::Slow { .. } => self.slow += 1,
        }
    }

    /// Every injected fault that refused a request (all but [`FaultKind::Slow`]).
    pub fn rejections(&self) -> u64 {
        self.rate_limited + self.quota_exceeded + self.server_errors + self.timeouts
    }
}

struct State {
    rules: Vec<FaultRule>,
    rng: Xoshiro256PlusPlus,
    stats: FaultStats,
}

struct Inner {
    default_scope: Option<String>,
    state: Mutex<State>,
    revocations: AtomicU64,
    expiries: AtomicU64,
}

/// Scripted failures for an emulator. Cheap to clone (the clones share their rules).
///
/// Rules are checked in the order they were added; the first that matches a request and
/// fires decides its fault. The convenience methods (`rate_limit_next`…) scope their rule
/// to the emulator's API paths (Spotify: `/v1`, so the OAuth endpoints keep working);
/// [`add_rule`](Self::add_rule) takes any scope.
///
/// ```
/// use std::time::Duration;
/// use dnp_providers::emulator::{FaultInjector, FaultKind};
///
/// let faults = FaultInjector::new(42, Some("/v1".into()));
/// faults.rate_limit_next(2, Duration::from_secs(1));
/// assert!(faults.decide("GET", "/api/token").is_none());
/// assert!(matches!(faults.decide("GET", "/v1/me/tracks"), Some(FaultKind::RateLimited { .. })));
/// assert!(faults.decide("GET", "/v1/me/tracks").is_some());
/// assert!(faults.decide("GET", "/v1/me/tracks").is_none());
/// assert_eq!(faults.stats().rate_limited, 2);
/// ```
#[derive(Clone)]
pub struct FaultInjector {
    inner: Arc<Inner>,
}

impl fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FaultInjector")
            .field("default_scope", &self.inner.default_scope)
            .field("rules", &state.rules)
            .field("stats", &state.stats)
            .finish_non_exhaustive()
    }
}

impl FaultInjector {
    /// An injector with no rules. Ratio decisions draw from a generator seeded with `seed`;
    /// the convenience methods scope their rules to paths under `default_scope`.
    pub fn new(seed: u64, default_scope: Option<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                default_scope,
                state: Mutex::new(State {
                    rules: Vec::new(),
                    rng: Xoshiro256PlusPlus::seed_from_u64(seed),
                    stats: FaultStats::default(),
                }),
                revocations: AtomicU64::new(0),
                expiries: AtomicU64::new(0),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn scoped(&self, kind: FaultKind, trigger: FaultTrigger) -> Result<FaultRule, FaultError> {
        let rule = FaultRule::new(kind, trigger)?;
        Ok(match &self.inner.default_scope {
            Some(scope) => rule.on_path(scope.clone()),
            None => rule,
        })
    }

    fn push_scoped(&self, kind: FaultKind, trigger: FaultTrigger) -> Result<(), FaultError> {
        let rule = self.scoped(kind, trigger)?;
        self.add_rule(rule)
    }

    /// Adds `rule` after the existing ones.
    ///
    /// # Errors
    /// As [`FaultRule::new`], for a rule whose public fields were set by hand.
    pub fn add_rule(&self, rule: FaultRule) -> Result<(), FaultError> {
        rule.validate()?;
        self.lock().rules.push(rule);
        Ok(())
    }

    /// Answers the next `n` API requests `429` with `Retry-After: retry_after`.
    pub fn rate_limit_next(&self, n: u32, retry_after: Duration) {
        // A rate limit has no status or ratio to validate.
        let _ = self.push_scoped(FaultKind::RateLimited { retry_after }, FaultTrigger::Next(n));
    }

    /// Answers each API request `429` with probability `ratio` (a 429 storm), until
    /// [`clear`](Self::clear).
    ///
    /// # Errors
    /// [`FaultError::InvalidRatio`] for a ratio outside 0.0..=1.0.
    pub fn rate_limit_ratio(&self, ratio: f64, retry_after: Duration) -> Result<(), FaultError> {
        self.push_scoped(FaultKind::RateLimited { retry_after }, FaultTrigger::Ratio(ratio))
    }

    /// Answers the next `n` API requests `429` for a spent quota.
    pub fn quota_exceeded_next(&self, n: u32, retry_after: Duration) {
        let _ = self.push_scoped(FaultKind::QuotaExceeded { retry_after }, FaultTrigger::Next(n));
    }

    /// Answers the next `n` API requests with `status` (500 to 599).
    ///
    /// # Errors
    /// [`FaultError::InvalidStatus`] for a status outside 500..=599.
    pub fn server_error_next(&self, n: u32, status: u16) -> Result<(), FaultError> {
        self.push_scoped(FaultKind::ServerError { status }, FaultTrigger::Next(n))
    }

    /// Answers each API request with `status` (500 to 599) with probability `ratio`, until
    /// [`clear`](Self::clear); a ratio of 1.0 is an outage.
    ///
    /// # Errors
    /// [`FaultError::InvalidRatio`], [`FaultError::InvalidStatus`].
    pub fn server_error_ratio(&self, ratio: f64, status: u16) -> Result<(), FaultError> {
        self.push_scoped(FaultKind::ServerError { status }, FaultTrigger::Ratio(ratio))
    }

    /// Holds the next `n` API requests for `hold`, then answers `504` without applying them.
    pub fn timeout_next(&self, n: u32, hold: Duration) {
        let _ = self.push_scoped(FaultKind::Timeout { hold }, FaultTrigger::Next(n));
    }

    /// Holds the next `n` API requests for `delay`, then handles them normally.
    pub fn slow_next(&self, n: u32, delay: Duration) {
        let _ = self.push_scoped(FaultKind::Slow { delay }, FaultTrigger::Next(n));
    }

    /// Removes every rule (token revocations and expiries already done stay done).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Revokes every access and refresh token issued so far: API calls answer `401` and
    /// refreshing answers `invalid_grant`. Tokens issued afterwards work.
    pub fn revoke_all_tokens(&self) {
        self.inner.revocations.fetch_add(1, Ordering::SeqCst);
    }

    /// Expires every access token issued so far (refresh tokens stay valid).
    pub fn expire_access_tokens_now(&self) {
        self.inner.expiries.fetch_add(1, Ordering::SeqCst);
    }

    /// How many times [`revoke_all_tokens`](Self::revoke_all_tokens) was called: a token
    /// issued at a lower generation is revoked.
    pub fn revocation_generation(&self) -> u64 {
        self.inner.revocations.load(Ordering::SeqCst)
    }

    /// How many times [`expire_access_tokens_now`](Self::expire_access_tokens_now) was
    /// called: an access token issued at a lower generation is expired.
    pub fn expiry_generation(&self) -> u64 {
        self.inner.expiries.load(Ordering::SeqCst)
    }

    /// The faults injected so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    /// Decides the fault of one request (and counts it). The emulators' middleware calls
    /// this once per request; call it yourself only to test a rule set.
    pub fn decide(&self, method: &str, path: &str) -> Option<FaultKind> {
        let mut state = self.lock();
        let State { rules, rng, stats } = &mut *state;
        let mut fired = None;
        for (i, rule) in rules.iter_mut().enumerate() {
            if !rule.matches(method, path) {
                continue;
            }
            match &mut rule.trigger {
                FaultTrigger::Next(0) => {}
                FaultTrigger::Next(n) => {
                    *n -= 1;
                    fired = Some((i, rule.kind, *n == 0));
                    break;
                }
                FaultTrigger::Ratio(ratio) => {
                    if rng.random_bool(*ratio) {
                        fired = Some((i, rule.kind, false));
                        break;
                    }
                }
            }
        }
        let (index, kind, spent) = fired?;
        if spent {
            rules.remove(index);
        }
        stats.count(&kind);
        Some(kind)
    }
}
