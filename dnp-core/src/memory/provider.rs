use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::action::{ActionKind, ActionOutcome, Outcome};
use crate::capability::Capabilities;
use crate::effect::{Catalog, apply_action};
use crate::error::ProviderError;
use crate::id::ProviderId;
use crate::model::{LibrarySnapshot, Track};
use crate::normalize::normalize_name;
use crate::plan::Batch;
use crate::provider::{ArtistCandidate, Progress, ProgressSink, Provider, TokenSource};

/// A fault the [`MemoryProvider`] injects into its next `apply` calls.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The next call is refused with `RateLimited { retry_after }`.
    RateLimited(Duration),
    /// The next call fails with a transient error (nothing applied).
    Transient,
    /// The next call fails with `NeedsReauth`.
    NeedsReauth,
    /// Every action on this track, album or artist id fails with `not_found` (permanent).
    FailItem(String),
}

#[derive(Debug, Default)]
struct State {
    library: Option<LibrarySnapshot>,
    catalog: Catalog,
    faults: VecDeque<Fault>,
    failing_items: Vec<String>,
    calls: Vec<(ActionKind, usize)>,
}

/// A [`Provider`] over an in-memory library that follows the contract exactly (through
/// [`apply_action`]): for examples, executor tests and the conformance suite's own tests.
pub struct MemoryProvider {
    id: ProviderId,
    capabilities: Capabilities,
    state: Mutex<State>,
}

impl fmt::Debug for MemoryProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryProvider").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MemoryProvider {
    /// A provider holding `library`, with `capabilities`.
    pub fn new(library: LibrarySnapshot, capabilities: Capabilities) -> Self {
        let catalog = Catalog::from_snapshot(&library);
        Self {
            id: library.provider.clone(),
            capabilities,
            state: Mutex::new(State { library: Some(library), catalog, ..State::default() }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The library as it is now.
    pub fn library(&self) -> LibrarySnapshot {
        self.lock().library.clone().unwrap_or_else(|| LibrarySnapshot::empty(self.id.clone()))
    }

    /// Replaces the library (the catalog keeps everything it saw).
    pub fn set_library(&self, library: LibrarySnapshot) {
        let mut state = self.lock();
        state.catalog.absorb(&library);
        state.library = Some(library);
    }

    /// Queues a fault for the coming calls.
    pub fn inject(&self, fault: Fault) {
        let mut state = self.lock();
        match fault {
            Fault::FailItem(id) => state.failing_items.push(id),
            other => state.faults.push_back(other),
        }
    }

    /// Every `apply` call so far: the kind and how many actions it carried.
    pub fn calls(&self) -> Vec<(ActionKind, usize)> {
        self.lock().calls.clone()
    }
}

#[async_trait]
impl Provider for MemoryProvider {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    async fn scan(
        &self,
        _auth: &dyn TokenSource,
        progress: &dyn ProgressSink,
    ) -> Result<LibrarySnapshot, ProviderError> {
        let library = self.library();
        let total = library.item_count() as u64;
        progress.report(Progress { done: total, total: Some(total), message: format!("{}: library read", self.id) });
        Ok(library)
    }

    async fn apply(&self, _auth: &dyn TokenSource, batch: &Batch) -> Result<Vec<ActionOutcome>, ProviderError> {
        let mut state = self.lock();
        state.calls.push((batch.kind, batch.actions.len()));
        match state.faults.pop_front() {
            Some(Fault::RateLimited(d)) => {
                return Err(ProviderError::RateLimited { provider: self.id.clone(), retry_after: Some(d) });
            }
            Some(Fault::Transient) => {
                return Err(ProviderError::Transient {
                    provider: self.id.clone(),
                    endpoint: "apply".into(),
                    detail: "injected failure".into(),
                });
            }
            Some(Fault::NeedsReauth) => {
                return Err(ProviderError::NeedsReauth { provider: self.id.clone(), reason: "injected".into() });
            }
            Some(Fault::FailItem(_)) | None => {}
        }
        if !self.capabilities.can(batch.kind) {
            return Err(ProviderError::Unsupported { provider: self.id.clone(), what: batch.kind.as_str().into() });
        }
        let State { library, catalog, failing_items, .. } = &mut *state;
        let library = library.get_or_insert_with(|| LibrarySnapshot::empty(self.id.clone()));
        Ok(batch
            .actions
            .iter()
            .map(|action| {
                if failing_items.iter().any(|id| id == action.target.item_id()) {
                    let err = ProviderError::NotFound {
                        provider: self.id.clone(),
                        what: format!("item {}", action.target.item_id()),
                    };
                    return ActionOutcome::failed(action.id, &err);
                }
                let outcome: Outcome = apply_action(library, catalog, action);
                ActionOutcome { action: action.id, outcome }
            })
            .collect())
    }

    async fn search_artists(
        &self,
        _auth: &dyn TokenSource,
        query: &str,
        limit: u32,
    ) -> Result<Vec<ArtistCandidate>, ProviderError> {
        let wanted = normalize_name(query);
        let library = self.library();
        let mut seen = std::collections::BTreeMap::new();
        let credits = library
            .liked_tracks
            .iter()
            .map(|l| &l.track)
            .chain(library.playlists.iter().flat_map(|p| p.items.iter().map(|i| &i.track)))
            .flat_map(|t| t.artists.iter());
        for credit in credits {
            let Some(id) = &credit.id else { continue };
            let name = normalize_name(&credit.name);
            if name.contains(&wanted) && !wanted.is_empty() {
                let confidence = if name == wanted { 1.0 } else { wanted.len() as f32 / name.len().max(1) as f32 };
                seen.entry(id.clone()).or_insert_with(|| ArtistCandidate {
                    provider: self.id.clone(),
                    id: id.clone(),
                    name: credit.name.clone(),
                    confidence,
                    detail: None,
                    url: None,
                    image_url: None,
                });
            }
        }
        let mut found: Vec<ArtistCandidate> = seen.into_values().collect();
        found.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.name.cmp(&b.name)));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn track_by_isrc(&self, _auth: &dyn TokenSource, isrc: &str) -> Result<Option<Track>, ProviderError> {
        let library = self.library();
        Ok(library
            .liked_tracks
            .iter()
            .map(|l| &l.track)
            .chain(library.playlists.iter().flat_map(|p| p.items.iter().map(|i| &i.track)))
            .find(|t| t.isrc.as_deref().is_some_and(|i| i.eq_ignore_ascii_case(isrc)))
            .cloned())
    }
}
