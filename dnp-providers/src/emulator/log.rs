//! [`RequestLog`]: what an emulator was asked, in order.

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
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<LoggedRequest>>>,
}

impl RequestLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<LoggedRequest>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one entry.
    pub fn push(&self, entry: LoggedRequest) {
        self.lock().push(entry);
    }

    /// A copy of every entry.
    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.lock().clone()
    }

    /// How many requests were logged.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// How many logged requests had `method` and a path starting with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.lock().iter().filter(|e| e.method.eq_ignore_ascii_case(method) && e.path.starts_with(path_prefix)).count()
    }

    /// Forgets every entry (for example between a benchmark's warm-up and its run).
    pub fn clear(&self) {
        self.lock().clear();
    }
}
