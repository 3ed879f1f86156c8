//! [`RequestLog`]: what an emulator was asked, in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::faults::FaultKind;

/// One request an emulator answered (or was answering when the client went away).
///
/// Only the method and the path are kept: never the query string, headers or body, so no
/// token or code ends up in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The HTTP method (`GET`).
    pub method: String,
    /// The path without its query string (`/v1/me/tracks`).
    pub path: String,
    /// The status answered; `499` when the client closed the connection before the answer.
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
    /// How long it took to answer, injected latency and faults included.
    pub duration: Duration,
    /// The fault injected into it, if any.
    pub fault: Option<FaultKind>,
}

/// The requests an emulator answered, in the order they finished. Cheap to clone.
///
/// It keeps the most recent [`RequestLog::DEFAULT_CAPACITY`] entries (a long-running demo
/// does not grow without bound); [`dropped`](Self::dropped) counts the older ones let go.
#[derive(Debug, Clone)]
pub struct RequestLog {
    inner: Arc<Mutex<Entries>>,
}

#[derive(Debug)]
struct Entries {
    entries: VecDeque<LoggedRequest>,
    capacity: usize,
    dropped: u64,
}

impl Default for RequestLog {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

impl RequestLog {
    /// How many entries a log keeps by default.
    pub const DEFAULT_CAPACITY: usize = 200_000;

    /// An empty log keeping [`Self::DEFAULT_CAPACITY`] entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log keeping the most recent `capacity` entries (at least one).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use dnp_providers::emulator::{LoggedRequest, RequestLog};
    ///
    /// let log = RequestLog::with_capacity(2);
    /// for path in ["/v1/a", "/v1/b", "/v1/c"] {
    ///     let at = Instant::now();
    ///     log.push(LoggedRequest { method: "GET".into(), path: path.into(), status: 200, at, duration: Duration::ZERO, fault: None });
    /// }
    /// let paths: Vec<String> = log.entries().into_iter().map(|e| e.path).collect();
    /// assert_eq!(paths, ["/v1/b", "/v1/c"]);
    /// assert_eq!((log.dropped(), log.count("get", "/v1/")), (1, 2));
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { inner: Arc::new(Mutex::new(Entries { entries: VecDeque::new(), capacity, dropped: 0 })) }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one entry (letting the oldest go when full).
    pub fn push(&self, entry: LoggedRequest) {
        let mut log = self.lock();
        if log.entries.len() == log.capacity {
            log.entries.pop_front();
            log.dropped += 1;
        }
        log.entries.push_back(entry);
    }

    /// A copy of every entry kept.
    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.lock().entries.iter().cloned().collect()
    }

    /// How many entries were let go because the log was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    /// How many logged requests had `method` and a path starting with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.method.eq_ignore_ascii_case(method) && e.path.starts_with(path_prefix))
            .count()
    }

    /// Forgets every entry (for example between a benchmark's warm-up and its run).
    pub fn clear(&self) {
        let mut log = self.lock();
        log.entries.clear();
        log.dropped = 0;
    }
}
