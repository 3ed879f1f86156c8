//! # dnp-core
//!
//! The engine of dnp ("No Drake in the House"): one Do-Not-Play list, enforced on a
//! person's music libraries with a preview before and an undo after.
//!
//! This crate holds the domain model, the SDK traits adapters and backends implement, the
//! pure planner, and the executor. It performs no I/O of its own: providers, key
//! management, token storage and job queues come in through traits.
//!
//! ## Quick start
//!
//! ```
//! use dnp_core::*;
//!
//! # tokio_test_block(async {
//! let spotify: ProviderId = "spotify".parse().unwrap();
//! let snapshot = json::snapshot_from_json(r#"{
//!   "provider": "spotify",
//!   "liked_tracks": [
//!     {"track": {"id": "t1", "title": "Song", "artists": [{"id": "a1", "name": "Blocked", "role": "primary"}]}},
//!     {"track": {"id": "t2", "title": "Other", "artists": [{"id": "a2", "name": "Fine", "role": "primary"}]}}
//!   ]
//! }"#).unwrap();
//! let list = DnpList { entries: vec![DnpEntry {
//!     id: EntryId::new_random(),
//!     artist: ArtistIdentity::named("Blocked").with_id(spotify.clone(), "a1"),
//!     note: None, tags: vec![], added_at: chrono::Utc::now(), source: EntrySource::Personal,
//! }]};
//! let caps = Capabilities::builder(PageSizes { liked_tracks: 50, saved_albums: 50, followed_artists: 50, playlists: 50, playlist_items: 50 })
//!     .supported(ActionKind::UnlikeTrack, 40)
//!     .supported(ActionKind::LikeTrack, 40)
//!     .build();
//! let blocked = BlockedSet::for_provider(&list, &spotify);
//! let plan = plan(&snapshot, &blocked, &EnforcementPolicy::default(), &caps);
//! assert_eq!(plan.summary.total_actions, 1);
//!
//! // Execute it against an in-memory provider, with a write-ahead log.
//! let provider = memory::MemoryProvider::new(snapshot, caps);
//! let log = memory::MemoryActionLog::new();
//! let token = StaticToken::new(spotify, "token".to_owned().into());
//! let report = Executor::new(&provider, &token, &log)
//!     .execute(BatchId::new_random(), &plan, &NoProgress, &CancelFlag::new())
//!     .await
//!     .unwrap();
//! assert_eq!(report.confirmed, 1);
//! assert_eq!(provider.library().liked_tracks.len(), 1);
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! ## The traits
//!
//! | trait | implemented by |
//! |---|---|
//! | [`Provider`], [`ProviderAuth`] | `dnp-providers` (Spotify, Apple Music, YouTube Music, TIDAL), third-party adapters |
//! | [`KmsProvider`] | `dnp-vault` (local key file, Vault/OpenBao Transit) |
//! | [`TokenStore`] | `dnp-vault` (encrypted, SQLite and PostgreSQL), [`memory::MemoryTokenStore`] |
//! | [`JobQueue`] | the server (SQL, Redis), [`memory::MemoryJobQueue`] |
//! | [`ActionLog`] | the server (SQL), [`memory::MemoryActionLog`] |
//!
//! Every trait is object-safe (`Arc<dyn Provider>`…) and documents its contract.
//!
//! ## Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `conformance` | [`conformance`](crate::conformance): the checks every provider adapter must pass |
//!
//! ## Why this design
//! The planner is a pure function so a preview is exactly what will run, and so it can be
//! property-tested: nothing outside the blocked set is ever touched, a plan followed by its
//! inverse restores the library, and planning twice changes nothing. The executor writes
//! ahead so a crash never loses a change or repeats one that must not be repeated.

pub mod action;
pub mod capability;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod diff;
pub mod dnp;
pub mod effect;
pub mod error;
pub mod executor;
pub mod id;
pub mod json;
pub mod kms;
pub mod memory;
pub mod model;
pub mod normalize;
pub mod plan;
pub mod policy;
pub mod provider;
pub mod queue;
pub mod token;

pub use action::{Action, ActionFailure, ActionKind, ActionOutcome, MatchKind, Outcome, Reason, Target};
pub use capability::{ActionCapability, Alternative, Capabilities, PageSizes, PlaylistRemoval, Quota, Support};
pub use diff::{SnapshotDiff, diff};
pub use dnp::{ArtistIdentity, BlockedSet, DnpEntry, DnpList, EntrySource};
pub use error::{InputError, KmsError, ProviderError, Retry, StoreError};
pub use executor::{
    ActionLog, CancelFlag, Completion, ExecutionReport, Executor, ExecutorConfig, ItemState, LoggedAction, StateUpdate,
    confirmed_actions,
};
pub use id::{ActionId, BatchId, ConnectionId, EntryId, JobId, ProviderId, UserId};
pub use kms::{DataKey, DataKeyBytes, KmsProvider, WrappedKey};
pub use model::{
    Album, AlbumRef, Artist, ArtistCredit, CreditRole, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist,
    PlaylistItem, SavedAlbum, Track,
};
pub use plan::{Batch, Plan, PlanSummary, SkipReason, Skipped, plan, rollback_plan};
pub use policy::{AllowRule, EnforcementPolicy, PolicyOverride, Strictness, Targets};
pub use provider::{
    ArtistCandidate, AuthorizationRequest, NoProgress, Progress, ProgressSink, Provider, ProviderAuth,
    ProviderRegistry, StaticToken, TokenSet, TokenSource,
};
pub use queue::{Backoff, Heartbeat, Job, JobProgress, JobQueue, JobStatus, Lease, NewJob, QueueDepth};
pub use token::{Connection, ConnectionStatus, StoredTokenSource, TokenStore};

/// Compile-time checks that every SDK trait is object-safe.
#[allow(dead_code)]
fn _object_safety(
    _: &std::sync::Arc<dyn Provider>,
    _: &std::sync::Arc<dyn ProviderAuth>,
    _: &std::sync::Arc<dyn KmsProvider>,
    _: &std::sync::Arc<dyn TokenStore>,
    _: &std::sync::Arc<dyn JobQueue>,
    _: &std::sync::Arc<dyn ActionLog>,
    _: &std::sync::Arc<dyn TokenSource>,
) {
}
