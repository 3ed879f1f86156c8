//! The circuit breaker of one provider.
//!
//! - **Closed**: calls pass. A failure (5xx, timeout, connection error) extends a streak;
//!   [`BreakerConfig::threshold`] consecutive failures within [`BreakerConfig::window`] of
//!   the first open the circuit. Any other answer (2xx, 4xx) ends the streak.
//! - **Open**: calls fail at once with `ProviderUnavailable`, saying when a probe will be
//!   let through; after [`BreakerConfig::open_for`] the breaker becomes half-open.
//! - **Half-open**: one call at a time is let through as a probe; the others wait for its
//!   answer. A failed probe opens the circuit again for another `open_for`;
//!   [`BreakerConfig::close_after`] successful probes in a row close it.
//!
//! A 429 counts neither way: the service is healthy, only busy.
//!
//! Metrics: the gauge `circuit_breaker_state{provider}` (0 closed, 1 half-open, 2 open)
//! and the counter `circuit_breaker_trips_total{provider}`.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use dnp_core::{ProviderError, ProviderId};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::BreakerConfig;

/// The state of a breaker, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail at once.
    Open,
    /// One probe at a time.
    HalfOpen,
}

impl BreakerState {
    /// The value of the `circuit_breaker_state` gauge.
    pub fn gauge_value(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Closed { failures: u32, first_failure: Option<Instant> },
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool, successes: u32 },
}

/// The circuit breaker of one provider.
///
/// - **Closed**: calls pass; [`BreakerConfig::threshold`] consecutive failures (5xx,
///   timeouts, connection errors) within [`BreakerConfig::window`] open it.
/// - **Open**: calls fail at once with `ProviderUnavailable` (saying when a probe will be
///   let through) for [`BreakerConfig::open_for`].
/// - **Half-open**: one probe at a time, the other calls waiting for its answer; a failed
///   probe opens it again, [`BreakerConfig::close_after`] successful probes close it.
///
/// A 429 counts neither way. Metrics: `circuit_breaker_state{provider}` (0 closed,
/// 1 half-open, 2 open) and `circuit_breaker_trips_total{provider}`.
pub struct CircuitBreaker {
    provider: ProviderId,
    config: BreakerConfig,
    phase: Mutex<Phase>,
    changed: Notify,
    trips: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("provider", &self.provider)
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

/// How a call let through by the breaker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Success,
    Failure,
    Neutral,
}

/// Permission for one call. Report how it ended with [`success`](Self::success),
/// [`failure`](Self::failure) or [`neutral`](Self::neutral); dropping it unreported
/// counts as neutral (the call was abandoned).
#[derive(Debug)]
#[must_use = "report how the call ended"]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl BreakerPermit<'_> {
    /// The service answered properly (2xx or a 4xx other than 429).
    pub fn success(mut self) {
        self.report(Verdict::Success);
    }

    /// The service failed (5xx, timeout, connection error).
    pub fn failure(mut self) {
        self.report(Verdict::Failure);
    }

    /// Neither (429, or the call was abandoned).
    pub fn neutral(mut self) {
        self.report(Verdict::Neutral);
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    fn report(&mut self, verdict: Verdict) {
        if !self.reported {
            self.reported = true;
            self.breaker.record(self.probe, verdict);
        }
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        self.report(Verdict::Neutral);
    }
}

impl CircuitBreaker {
    /// A closed breaker for `provider`.
    pub fn new(provider: ProviderId, config: BreakerConfig) -> Self {
        let breaker = Self {
            provider,
            config,
            phase: Mutex::new(Phase::Closed { failures: 0, first_failure: None }),
            changed: Notify::new(),
            trips: std::sync::atomic::AtomicU64::new(0),
        };
        breaker.publish(BreakerState::Closed);
        breaker
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, state: BreakerState) {
        metrics::gauge!("circuit_breaker_state", "provider" => self.provider.to_string()).set(state.gauge_value());
    }

    /// The current state (an open breaker whose time is up reads as half-open).
    pub fn state(&self) -> BreakerState {
        match &*self.lock() {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { until } if Instant::now() < *until => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How many times the circuit opened.
    pub fn trips(&self) -> u64 {
        self.trips.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Permission for one call.
    ///
    /// # Errors
    /// `ProviderUnavailable` at once while the circuit is open, with the time until the
    /// next probe; also when a probe this call waited for failed.
    pub async fn acquire(&self) -> Result<BreakerPermit<'_>, ProviderError> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut phase = self.lock();
                let now = Instant::now();
                match &mut *phase {
                    Phase::Closed { .. } => return Ok(BreakerPermit { breaker: self, probe: false, reported: false }),
                    Phase::Open { until } if now < *until => {
                        return Err(ProviderError::ProviderUnavailable {
                            provider: self.provider.clone(),
                            retry_after: Some(*until - now),
                        });
                    }
                    Phase::Open { .. } => {
                        *phase = Phase::HalfOpen { probe_in_flight: true, successes: 0 };
                        drop(phase);
                        self.publish(BreakerState::HalfOpen);
                        tracing::info!(provider = %self.provider, "circuit half-open: sending a probe");
                        return Ok(BreakerPermit { breaker: self, probe: true, reported: false });
                    }
                    Phase::HalfOpen { probe_in_flight, .. } if !*probe_in_flight => {
                        *probe_in_flight = true;
                        return Ok(BreakerPermit { breaker: self, probe: true, reported: false });
                    }
                    Phase::HalfOpen { .. } => {}
                }
            }
            notified.await;
        }
    }

    fn trip(&self, phase: &mut Phase, now: Instant) {
        *phase = Phase::Open { until: now + self.config.open_for };
        self.trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("circuit_breaker_trips_total", "provider" => self.provider.to_string()).increment(1);
        tracing::warn!(provider = %self.provider, open_for_s = self.config.open_for.as_secs_f64(), "circuit opened");
    }

    fn record(&self, probe: bool, verdict: Verdict) {
        let now = Instant::now();
        let mut phase = self.lock();
        let mut published = None;
        match (&mut *phase, probe, verdict) {
            (Phase::Closed { failures, first_failure }, false, Verdict::Success) => {
                *failures = 0;
                *first_failure = None;
            }
            (Phase::Closed { failures, first_failure }, false, Verdict::Failure) => {
                let in_window = first_failure.is_some_and(|t| now.duration_since(t) <= self.config.window);
                if in_window {
                    *failures += 1;
                } else {
                    *failures = 1;
                    *first_failure = Some(now);
                }
                if *failures >= self.config.threshold.max(1) {
                    self.trip(&mut phase, now);
                    published = Some(BreakerState::Open);
                }
            }
            (Phase::HalfOpen { probe_in_flight, successes }, true, Verdict::Success) => {
                *successes += 1;
                *probe_in_flight = false;
                if *successes >= self.config.close_after.max(1) {
                    *phase = Phase::Closed { failures: 0, first_failure: None };
                    published = Some(BreakerState::Closed);
                    tracing::info!(provider = %self.provider, "circuit closed");
                }
            }
            (Phase::HalfOpen { .. }, true, Verdict::Failure) => {
                self.trip(&mut phase, now);
                published = Some(BreakerState::Open);
            }
            (Phase::HalfOpen { probe_in_flight, .. }, true, Verdict::Neutral) => *probe_in_flight = false,
            // Calls let through before the circuit opened, and neutral answers while closed,
            // change nothing.
            _ => {}
        }
        drop(phase);
        if let Some(state) = published {
            self.publish(state);
        }
        if probe {
            self.changed.notify_waiters();
        }
    }

    /// How long until a probe is let through, when open.
    pub fn retry_after(&self) -> Option<Duration> {
        match &*self.lock() {
            Phase::Open { until } => Some(until.saturating_duration_since(Instant::now())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> CircuitBreaker {
        CircuitBreaker::new("spotify".parse().unwrap(), BreakerConfig { threshold, ..BreakerConfig::default() })
    }

    async fn fail(b: &CircuitBreaker) {
        b.acquire().await.unwrap().failure();
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_consecutive_failures_and_fails_fast() {
        let b = breaker(5);
        for _ in 0..4 {
            fail(&b).await;
        }
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b).await;
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.trips(), 1);
        let err = b.acquire().await.unwrap_err();
        assert!(
            matches!(err, ProviderError::ProviderUnavailable { retry_after: Some(d), .. } if d == Duration::from_secs(30))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_or_a_gap_over_the_window_resets_the_streak() {
        let b = breaker(3);
        fail(&b).await;
        fail(&b).await;
        b.acquire().await.unwrap().success();
        fail(&b).await;
        fail(&b).await;
        assert_eq!(b.state(), BreakerState::Closed, "the success ended the first streak");
        tokio::time::advance(Duration::from_secs(61)).await;
        fail(&b).await;
        assert_eq!(b.state(), BreakerState::Closed, "failures more than a minute apart do not add up");
        fail(&b).await;
        fail(&b).await;
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through_every_30_s_and_closes_after_3_successes() {
        let b = breaker(5);
        for _ in 0..5 {
            fail(&b).await;
        }
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(b.acquire().await.is_err(), "still open after 29 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);

        // A failed probe opens the circuit for another 30 s.
        let probe = b.acquire().await.unwrap();
        assert!(probe.is_probe());
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.trips(), 2);
        tokio::time::advance(Duration::from_secs(30)).await;

        for i in 0..3 {
            let probe = b.acquire().await.unwrap();
            assert!(probe.is_probe(), "call {i} is a probe");
            probe.success();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(!b.acquire().await.unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn while_a_probe_is_in_flight_other_calls_wait_for_its_answer() {
        let b = std::sync::Arc::new(breaker(1));
        fail(&b).await;
        tokio::time::advance(Duration::from_secs(30)).await;
        let probe = b.acquire().await.unwrap();
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.acquire().await.map(|p| p.is_probe()) })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the second call waits while the probe is out");
        probe.failure();
        let result = waiter.await.unwrap();
        assert!(matches!(result, Err(ProviderError::ProviderUnavailable { .. })), "{result:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_frees_the_slot() {
        let b = breaker(1);
        fail(&b).await;
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(b.acquire().await.unwrap());
        assert!(b.acquire().await.unwrap().is_probe());
    }
}
