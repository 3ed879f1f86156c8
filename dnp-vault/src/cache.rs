//! The bounded LRU cache of unwrapped data keys.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dnp_core::{KmsError, KmsProvider, WrappedKey};
use lru::LruCache;
use uuid::Uuid;

use crate::envelope::DataKeyCipher;

/// Metric name of the hit counter.
pub const METRIC_HITS: &str = "data_key_cache_hits";
/// Metric name of the miss counter.
pub const METRIC_MISSES: &str = "data_key_cache_misses";

/// Unwrapped data keys, most recently used first, at most `capacity` of them, keyed by
/// data key id.
///
/// A hit saves a KMS round trip (a Vault `decrypt` call, or an AES unwrap for the local
/// KMS) and the AES key expansion. Hits and misses are counted in
/// [`data_key_cache_hits`](METRIC_HITS) / [`data_key_cache_misses`](METRIC_MISSES)
/// through the `metrics` facade (the server installs the exporter) and in
/// [`stats`](Self::stats). Evicted keys are zeroized when the last user drops them.
/// A capacity of 0 disables caching: every lookup is a miss.
pub struct DataKeyCache {
    entries: Option<Mutex<LruCache<Uuid, Arc<DataKeyCipher>>>>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters of a [`DataKeyCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to unwrap.
    pub misses: u64,
    /// Keys held now.
    pub len: usize,
    /// The most keys held.
    pub capacity: usize,
}

impl fmt::Debug for DataKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeyCache").field("stats", &self.stats()).finish()
    }
}

impl Default for DataKeyCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl DataKeyCache {
    /// The default capacity (`DATA_KEY_CACHE_SIZE` unset).
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// A cache of at most `capacity` keys (0: no caching).
    pub fn new(capacity: usize) -> Self {
        metrics::describe_counter!(METRIC_HITS, "Data key lookups answered from the in-memory cache");
        metrics::describe_counter!(METRIC_MISSES, "Data key lookups that had to ask the KMS to unwrap");
        Self {
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, LruCache<Uuid, Arc<DataKeyCipher>>>> {
        self.entries.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The cipher of data key `id`, if cached; counts a hit or a miss.
    pub fn get(&self, id: Uuid) -> Option<Arc<DataKeyCipher>> {
        let found = self.lock().and_then(|mut entries| entries.get(&id).cloned());
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(METRIC_HITS).increment(1);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(METRIC_MISSES).increment(1);
        }
        found
    }

    /// Caches the cipher of data key `id`, evicting the least recently used beyond capacity.
    pub fn insert(&self, id: Uuid, cipher: Arc<DataKeyCipher>) {
        if let Some(mut entries) = self.lock() {
            entries.put(id, cipher);
        }
    }

    /// Forgets data key `id` (after its connection is deleted).
    pub fn remove(&self, id: Uuid) {
        if let Some(mut entries) = self.lock() {
            entries.pop(&id);
        }
    }

    /// The cipher of data key `id`: from the cache, or unwrapped by `kms` and cached.
    ///
    /// Two tasks missing the same key at once both unwrap it; the result is the same.
    ///
    /// # Errors
    /// Whatever [`KmsProvider::decrypt_data_key`] returns.
    pub async fn get_or_unwrap(
        &self,
        id: Uuid,
        wrapped: &WrappedKey,
        kms: &dyn KmsProvider,
    ) -> Result<Arc<DataKeyCipher>, KmsError> {
        if let Some(cipher) = self.get(id) {
            return Ok(cipher);
        }
        let key = kms.decrypt_data_key(wrapped).await?;
        let cipher = Arc::new(DataKeyCipher::new(&key));
        self.insert(id, cipher.clone());
        Ok(cipher)
    }

    /// Hit and miss counts, size and capacity.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            len: self.lock().map_or(0, |e| e.len()),
            capacity: self.capacity,
        }
    }
}
