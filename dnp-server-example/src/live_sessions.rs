//! A short memory of session families this server has just seen live, so that the
//! [`AuthUser`](crate::auth::AuthUser) extractor does not ask the database on every request.
//!
//! An access token is a signed JWT; what the database adds is the answer to "was this
//! session signed out?" (`sessions.revoked_at`). Asking it costs one round trip per
//! request, half of the work of a typical `GET`. This cache remembers a *live* answer for
//! `SESSION_CHECK_CACHE_SECONDS` (default 5; 0 turns it off):
//!
//! - a revoked or unknown family is never cached: the next request asks again;
//! - signing out on this server forgets the family at once ([`LiveSessions::forget`]), so
//!   the token stops working here immediately;
//! - another server that saw the family live within the window keeps accepting the token
//!   until its entry ages out: sign-out reaches every server within that many seconds.
//!
//! The cache is bounded (least recently used entries go first), and only families of
//! tokens whose signature was verified are ever put in it.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// The most families remembered at once; beyond this the least recently used is dropped
/// (and simply checked in the database again on its next request).
const CAPACITY: usize = 100_000;

/// Session families recently found live in the database, each with when it was checked.
pub(crate) struct LiveSessions {
    ttl: Duration,
    seen: Mutex<LruCache<String, Instant>>,
}

impl LiveSessions {
    /// A cache that trusts a live answer for `ttl` (`Duration::ZERO`: never).
    pub(crate) fn new(ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN);
        Self { ttl, seen: Mutex::new(LruCache::new(capacity)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Instant>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `family` was found live less than the TTL ago.
    pub(crate) fn is_fresh(&self, family: &str) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let mut seen = self.lock();
        match seen.get(family) {
            Some(checked) if checked.elapsed() < self.ttl => true,
            Some(_) => {
                seen.pop(family);
                false
            }
            None => false,
        }
    }

    /// Records that the database just said `family` is live.
    pub(crate) fn remember(&self, family: &str) {
        if !self.ttl.is_zero() {
            self.lock().put(family.to_owned(), Instant::now());
        }
    }

    /// Forgets `family` (it was just signed out or revoked on this server).
    pub(crate) fn forget(&self, family: &str) {
        self.lock().pop(family);
    }

    /// How many families are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_family_is_fresh_until_the_ttl_passes() {
        let live = LiveSessions::new(Duration::from_millis(50));
        assert!(!live.is_fresh("f1"), "nothing is fresh before it was checked");
        live.remember("f1");
        assert!(live.is_fresh("f1"));
        assert!(!live.is_fresh("f2"), "only the remembered family");
        std::thread::sleep(Duration::from_millis(60));
        assert!(!live.is_fresh("f1"), "an entry older than the TTL is not trusted");
        assert_eq!(live.len(), 0, "the stale entry is dropped when found");
    }

    #[test]
    fn forgetting_takes_effect_at_once() {
        let live = LiveSessions::new(Duration::from_secs(60));
        live.remember("f1");
        live.forget("f1");
        assert!(!live.is_fresh("f1"));
    }

    #[test]
    fn a_zero_ttl_never_caches() {
        let live = LiveSessions::new(Duration::ZERO);
        live.remember("f1");
        assert!(!live.is_fresh("f1"));
        assert_eq!(live.len(), 0);
    }
}
