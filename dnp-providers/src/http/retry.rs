//! Exponential backoff with jitter for transient failures.

use std::time::Duration;

use super::config::HttpConfig;

/// How long to wait before retrying a transient failure.
///
/// The ceiling doubles each attempt from `base` up to `max`; the wait is "equal jitter":
/// half the ceiling plus a random part of the other half, so concurrent clients spread
/// out and a retry never comes back at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries of a transient failure.
    pub max_retries: u32,
    /// The first ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub max: Duration,
}

impl RetryPolicy {
    /// The policy of `config`.
    pub fn from_config(config: &HttpConfig) -> Self {
        Self { max_retries: config.max_retries, base: config.backoff_base, max: config.backoff_max }
    }

    /// The ceiling of the wait before retry number `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base.saturating_mul(1u32 << attempt.min(20)).min(self.max)
    }

    /// The wait before retry number `attempt`, for a random `unit` in `[0, 1)`.
    pub fn backoff_with(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before retry number `attempt`, jittered.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff_with(attempt, rand::random_range(0.0..1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stays_within_jitter_bounds() {
        let p = RetryPolicy { max_retries: 5, base: Duration::from_millis(100), max: Duration::from_millis(700) };
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(1), Duration::from_millis(200));
        assert_eq!(p.ceiling(2), Duration::from_millis(400));
        assert_eq!(p.ceiling(3), Duration::from_millis(700));
        assert_eq!(p.ceiling(40), Duration::from_millis(700));
        assert_eq!(p.backoff_with(1, 0.0), Duration::from_millis(100));
        assert_eq!(p.backoff_with(1, 1.0), Duration::from_millis(200));
        for attempt in 0..6 {
            let d = p.backoff(attempt);
            assert!(d >= p.ceiling(attempt) / 2 && d <= p.ceiling(attempt), "{d:?}");
        }
    }
}
