//! Token-bucket rate limiting with [`governor`]: one bucket for the provider, one per
//! connection, both on [`tokio::time`]'s clock (so a paused test clock drives them).

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota};

use super::config::RateLimit;

/// Governor's clock over [`tokio::time::Instant`]: readings are the time since the clock
/// was made, so they follow a paused (test) clock.
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    fn new() -> Self {
        Self { origin: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
    }
}

type Direct = governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;
type Keyed = governor::RateLimiter<u64, HashMapStateStore<u64>, TokioClock, NoOpMiddleware<Duration>>;

fn quota(rate: RateLimit) -> Quota {
    let per_second = NonZeroU32::new(rate.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per_second).allow_burst(burst)
}

/// The rate limits of one provider: a bucket for the whole provider and one per
/// connection (keyed by a [`AuthSession`](super::AuthSession)).
pub struct RateLimiter {
    provider: Direct,
    connections: Keyed,
    clock: TokioClock,
    calls: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Buckets of `provider` and of each connection.
    pub fn new(provider: RateLimit, connection: RateLimit) -> Self {
        let clock = TokioClock::new();
        Self {
            provider: governor::RateLimiter::new(quota(provider), InMemoryState::default(), clock.clone()),
            connections: governor::RateLimiter::new(quota(connection), HashMapStateStore::default(), clock.clone()),
            clock,
            calls: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn wait_of(&self, not_until: &NotUntil<Duration>) -> Duration {
        not_until.wait_time_from(self.clock.now())
    }

    /// Waits until both the connection's bucket (when `connection` is given) and the
    /// provider's allow one more request, and takes a token from each.
    pub async fn until_ready(&self, connection: Option<u64>) {
        if let Some(key) = connection {
            loop {
                match self.connections.check_key(&key) {
                    Ok(()) => break,
                    Err(not_until) => tokio::time::sleep(self.wait_of(&not_until)).await,
                }
            }
            // Forget idle connections now and then, so the map stays small.
            if self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1024 == 1023 {
                self.connections.retain_recent();
            }
        }
        loop {
            match self.provider.check() {
                Ok(()) => break,
                Err(not_until) => tokio::time::sleep(self.wait_of(&not_until)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn the_provider_bucket_spaces_requests_after_the_burst() {
        let limiter =
            RateLimiter::new(RateLimit { per_second: 10, burst: 2 }, RateLimit { per_second: 1000, burst: 1000 });
        let start = Instant::now();
        for _ in 0..12 {
            limiter.until_ready(None).await;
        }
        // 2 at once, then one every 100 ms: the 12th at 1 s.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn each_connection_has_its_own_bucket() {
        let limiter =
            RateLimiter::new(RateLimit { per_second: 1000, burst: 1000 }, RateLimit { per_second: 2, burst: 1 });
        let start = Instant::now();
        limiter.until_ready(Some(1)).await;
        limiter.until_ready(Some(2)).await;
        limiter.until_ready(Some(3)).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "distinct connections do not wait for each other");
        limiter.until_ready(Some(1)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(500), "the same connection waits for its bucket");
    }
}
