//! The suite run against [`MemoryProvider`] through a small in-memory harness, and against
//! deliberately broken providers to show each check can fail.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::memory::{Fault, MemoryProvider};
use crate::{
    ActionKind, ActionOutcome, ArtistCandidate, Batch, Capabilities, LibrarySnapshot, PageSizes, ProgressSink,
    Provider, ProviderError, ProviderId, StaticToken, Track,
};

fn caps() -> Capabilities {
    Capabilities::builder(PageSizes {
        liked_tracks: 50,
        saved_albums: 50,
        followed_artists: 50,
        playlists: 50,
        playlist_items: 50,
    })
    .supported(ActionKind::UnlikeTrack, 40)
    .supported(ActionKind::LikeTrack, 40)
    .supported(ActionKind::RemoveAlbum, 40)
    .supported(ActionKind::SaveAlbum, 40)
    .supported(ActionKind::UnfollowArtist, 50)
    .supported(ActionKind::FollowArtist, 50)
    .supported(ActionKind::RemovePlaylistItem, 100)
    .supported(ActionKind::InsertPlaylistItem, 100)
    .unsupported(ActionKind::DislikeTrack, "no rating API", None)
    .unsupported(ActionKind::ClearTrackRating, "no rating API", None)
    .build()
}

fn provider_id() -> ProviderId {
    "memtest".parse().unwrap()
}

/// How a [`Broken`] provider breaks the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breakage {
    /// Follows the contract (the reference).
    None,
    /// The scan loses the last liked track (a missed last page).
    DropsLastLikedTrack,
    /// Unliking also removes the next liked track.
    RemovesTooMuch,
    /// Re-inserted playlist items go to the end.
    AppendsInserts,
    /// A 429 becomes a permanent failure.
    GivesUpOnRateLimit,
    /// Removing an item already gone fails.
    NotIdempotent,
    /// Claims dislike ratings but cannot do them.
    ClaimsDislike,
}

#[derive(Debug)]
struct Broken {
    inner: Arc<MemoryProvider>,
    breakage: Breakage,
}

#[async_trait]
impl Provider for Broken {
    fn id(&self) -> &ProviderId {
        self.inner.id()
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = self.inner.capabilities();
        if self.breakage == Breakage::ClaimsDislike {
            caps = Capabilities { actions: caps.actions.clone(), ..caps };
            caps.actions.insert(
                ActionKind::DislikeTrack,
                crate::ActionCapability { support: crate::Support::Supported, max_batch: 10, quota_cost: 0 },
            );
        }
        caps
    }

    async fn scan(
        &self,
        auth: &dyn crate::TokenSource,
        progress: &dyn ProgressSink,
    ) -> Result<LibrarySnapshot, ProviderError> {
        let mut library = self.inner.scan(auth, progress).await?;
        if self.breakage == Breakage::DropsLastLikedTrack {
            library.liked_tracks.pop();
        }
        Ok(library)
    }

    async fn apply(&self, auth: &dyn crate::TokenSource, batch: &Batch) -> Result<Vec<ActionOutcome>, ProviderError> {
        if self.breakage == Breakage::NotIdempotent && batch.kind == ActionKind::UnlikeTrack {
            let library = self.inner.library();
            if let Some(gone) =
                batch.actions.iter().find(|a| !library.liked_tracks.iter().any(|l| l.track.id == a.target.item_id()))
            {
                let err = ProviderError::NotFound {
                    provider: self.id().clone(),
                    what: format!("track {}", gone.target.item_id()),
                };
                return Ok(batch.actions.iter().map(|a| ActionOutcome::failed(a.id, &err)).collect());
            }
        }
        let result = self.inner.apply(auth, batch).await;
        match (self.breakage, &result) {
            (Breakage::GivesUpOnRateLimit, Err(ProviderError::RateLimited { .. })) => {
                return Err(ProviderError::InvalidInput {
                    provider: self.id().clone(),
                    endpoint: "apply".into(),
                    detail: "429".into(),
                });
            }
            (Breakage::RemovesTooMuch, Ok(_)) if batch.kind == ActionKind::UnlikeTrack => {
                let mut library = self.inner.library();
                if !library.liked_tracks.is_empty() {
                    library.liked_tracks.remove(0);
                }
                self.inner.set_library(library);
            }
            (Breakage::AppendsInserts, Ok(_)) if batch.kind == ActionKind::InsertPlaylistItem => {
                let mut library = self.inner.library();
                for playlist in &mut library.playlists {
                    let inserted: Vec<String> = batch
                        .actions
                        .iter()
                        .filter(|a| a.target.playlist_id() == Some(playlist.id.as_str()))
                        .map(|a| a.target.item_id().to_owned())
                        .collect();
                    for track in inserted {
                        if let Some(at) = playlist.items.iter().position(|i| i.track.id == track) {
                            let item = playlist.items.remove(at);
                            playlist.items.push(item);
                        }
                    }
                }
                library.renumber_playlists();
                self.inner.set_library(library);
            }
            _ => {}
        }
        result
    }

    async fn search_artists(
        &self,
        auth: &dyn crate::TokenSource,
        q: &str,
        limit: u32,
    ) -> Result<Vec<ArtistCandidate>, ProviderError> {
        self.inner.search_artists(auth, q, limit).await
    }

    async fn track_by_isrc(&self, auth: &dyn crate::TokenSource, isrc: &str) -> Result<Option<Track>, ProviderError> {
        self.inner.track_by_isrc(auth, isrc).await
    }
}

/// The in-memory harness: the service is the [`MemoryProvider`]'s library.
struct MemoryHarness {
    memory: Arc<MemoryProvider>,
    provider: Arc<dyn Provider>,
}

impl MemoryHarness {
    fn new(breakage: Breakage) -> Self {
        let memory = Arc::new(MemoryProvider::new(LibrarySnapshot::empty(provider_id()), caps()));
        let provider: Arc<dyn Provider> = Arc::new(Broken { inner: memory.clone(), breakage });
        Self { memory, provider }
    }
}

#[async_trait]
impl Harness for MemoryHarness {
    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    fn token_source(&self) -> Arc<dyn crate::TokenSource> {
        Arc::new(StaticToken::new(provider_id(), "memory".to_owned().into()))
    }

    async fn seed(&self, library: &LibrarySnapshot) -> Result<(), HarnessError> {
        self.memory.set_library(library.clone());
        Ok(())
    }

    async fn state(&self) -> Result<LibrarySnapshot, HarnessError> {
        Ok(self.memory.library())
    }

    async fn inject(&self, fault: HarnessFault) -> Result<(), HarnessError> {
        match fault {
            HarnessFault::RateLimit { calls, retry_after } => {
                (0..calls).for_each(|_| self.memory.inject(Fault::RateLimited(retry_after)));
                Ok(())
            }
            HarnessFault::ServerError { calls } => {
                (0..calls).for_each(|_| self.memory.inject(Fault::Transient));
                Ok(())
            }
            // The memory provider's faults are used up by the next calls; none linger.
            HarnessFault::ClearFaults => Ok(()),
            HarnessFault::ChangePlaylist { playlist_id } => {
                let mut library = self.memory.library();
                let playlist = library
                    .playlists
                    .iter_mut()
                    .find(|p| p.id == playlist_id)
                    .ok_or_else(|| HarnessError::Failed(format!("no playlist {playlist_id}")))?;
                if let Some(last) = playlist.items.last().cloned() {
                    playlist.items.insert(0, last);
                }
                playlist.version = Some(format!("{}-changed", playlist.version.clone().unwrap_or_default()));
                library.renumber_playlists();
                self.memory.set_library(library);
                Ok(())
            }
            other => Err(HarnessError::Unsupported(format!(
                "the in-memory provider cannot simulate this fault ({})",
                other.name()
            ))),
        }
    }
}

#[tokio::test]
async fn the_memory_provider_passes_every_check_it_can_run() {
    let harness = MemoryHarness::new(Breakage::None);
    let report = run_all(&harness).await;
    println!("{report}");
    assert!(report.all_passed(), "{report}");
    let (passed, failed, skipped) = report.counts();
    assert_eq!(failed, 0);
    assert!(passed >= 12, "{report}");
    // Skipped only where the capabilities or the harness say so, with the reason.
    assert!(
        matches!(report.get("capabilities/dislike_track"), Some(CheckStatus::Skipped(r)) if r.contains("no rating API"))
    );
    assert!(matches!(report.get("breaker"), Some(CheckStatus::Skipped(r)) if r.contains("outage")));
    assert!(matches!(report.get("expired_token"), Some(CheckStatus::Skipped(_))));
    assert_eq!(skipped, 4, "{report}");
    assert!(report.to_string().ends_with(&format!("{passed} passed, 0 failed, 4 skipped")));
}

async fn fails(breakage: Breakage, check: &str) -> String {
    let harness = MemoryHarness::new(breakage);
    let result = match check {
        "full_scan" => check_full_scan(&harness).await,
        "removal_exact" => check_removal_exact(&harness).await,
        "rollback" => check_rollback(&harness).await,
        "rate_limited" => check_rate_limited(&harness).await,
        "idempotent" => check_idempotent(&harness).await,
        "capabilities/dislike_track" => check_capabilities(&harness)
            .await
            .into_iter()
            .find(|(k, _)| *k == ActionKind::DislikeTrack)
            .map(|(_, r)| r)
            .unwrap_or(Ok(Passed::default())),
        other => panic!("no check {other}"),
    };
    match result {
        Err(CheckError::Failed(message)) => message,
        other => panic!("{check} should fail for {breakage:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_scan_that_loses_an_item_fails_full_scan() {
    let message = fails(Breakage::DropsLastLikedTrack, "full_scan").await;
    assert!(message.contains("liked tracks"), "{message}");
}

#[tokio::test]
async fn removing_more_than_planned_fails_removal_exact() {
    let message = fails(Breakage::RemovesTooMuch, "removal_exact").await;
    assert!(message.contains("liked tracks removed"), "{message}");
}

#[tokio::test]
async fn inserts_at_the_wrong_position_fail_rollback() {
    let message = fails(Breakage::AppendsInserts, "rollback").await;
    assert!(message.contains("former order"), "{message}");
}

#[tokio::test]
async fn giving_up_on_a_429_fails_rate_limited() {
    let message = fails(Breakage::GivesUpOnRateLimit, "rate_limited").await;
    assert!(message.contains("invalid_input"), "{message}");
}

#[tokio::test]
async fn failing_to_remove_what_is_gone_fails_idempotent() {
    let message = fails(Breakage::NotIdempotent, "idempotent").await;
    assert!(message.contains("not_found"), "{message}");
}

#[tokio::test]
async fn claiming_an_unsupported_kind_fails_capabilities() {
    let message = fails(Breakage::ClaimsDislike, "capabilities/dislike_track").await;
    assert!(message.contains("dislike_track"), "{message}");
}

#[test]
fn a_report_lists_each_status() {
    let mut report = Report::default();
    report.push("a", Ok(Passed::default()));
    report.push("b", Err(CheckError::Failed("broke".into())));
    report.push("c", Err(CheckError::Skipped("unsupported".into())));
    assert!(!report.all_passed());
    assert_eq!(report.counts(), (1, 1, 1));
    let text = report.to_string();
    assert!(text.contains("FAILED   b: broke") && text.contains("skipped  c: unsupported"), "{text}");
    let _ = Duration::ZERO;
}
