//! The TIDAL adapter: [`TidalProvider`] ([`Provider`]) and [`TidalAuth`]
//! ([`ProviderAuth`](dnp_core::ProviderAuth)) over the TIDAL API (`openapi.tidal.com/v2`,
//! JSON:API).
//!
//! | file | what |
//! |---|---|
//! | [`config`] | [`TidalConfig`]: client id (and optional secret), redirect URI, base URLs |
//! | [`auth`] | OAuth 2.1 authorization code with PKCE and state; refresh keeps the refresh token |
//! | [`client`] | the API calls, typed, over the shared [`http`](crate::http) stack, with idempotency keys |
//! | [`model`] | the JSON:API documents dnp reads and writes |
//! | `scan` | the library scan: cursor paging, everything about a page's items in one call with `include=` |
//! | `apply` | batches of 50 removals and re-additions; playlist entries by `itemId`, re-inserted with `positionBefore` |
//! | `emulator` | a stateful local emulator of the API (feature `emulator`) |
//! | `harness` | the conformance suite's harness over the emulator (feature `emulator`) |
//!
//! What the adapter can and cannot do, batch sizes and limits: `docs/providers/tidal.md`.
//!
//! ```no_run
//! use dnp_core::{NoProgress, Provider, StaticToken};
//! use dnp_providers::tidal::{TidalConfig, TidalProvider};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = TidalConfig::new("client-id", None, "https://dnp.example/callback/tidal")?;
//! let tidal = TidalProvider::new(config)?;
//! let token = StaticToken::new(tidal.id().clone(), "access token".to_owned().into());
//! let library = tidal.scan(&token, &NoProgress).await?;
//! let artists = tidal.search_artists(&token, "Daft Punk", 5).await?;
//! # Ok(()) }
//! ```

mod apply;
pub mod auth;
pub mod client;
pub mod config;
pub mod model;
mod scan;

#[cfg(feature = "emulator")]
pub mod emulator;

#[cfg(feature = "emulator")]
mod harness;
#[cfg(feature = "emulator")]
pub use harness::{TidalHarness, test_http_config};

use std::fmt;

use async_trait::async_trait;
use dnp_core::normalize::{is_isrc, name_confidence};
use dnp_core::{
    ActionKind, ActionOutcome, ArtistCandidate, Batch, Capabilities, LibrarySnapshot, PageSizes, PlaylistRemoval,
    ProgressSink, Provider, ProviderError, ProviderId, TokenSource, Track,
};

pub use auth::{SCOPES, TidalAuth};
pub use client::TidalClient;
pub use config::TidalConfig;

use crate::http::{AuthSession, ConfigError};

/// The TIDAL adapter.
///
/// Holds one [`TidalClient`] (and with it the provider's rate limits, circuit breaker and
/// idempotency keys): make one per process and share it (`Arc<dyn Provider>`).
#[derive(Clone)]
pub struct TidalProvider {
    id: ProviderId,
    client: TidalClient,
}

impl fmt::Debug for TidalProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TidalProvider").field("client", &self.client).finish()
    }
}

/// What TIDAL's API can do, with the real batch and page sizes.
pub fn capabilities() -> Capabilities {
    let page = client::PAGE_SIZE;
    let batch = client::MUTATION_BATCH as u32;
    let no_ratings = "TIDAL's API has no track ratings";
    Capabilities::builder(PageSizes {
        liked_tracks: page,
        saved_albums: page,
        followed_artists: page,
        playlists: page,
        playlist_items: page,
    })
    .supported(ActionKind::UnlikeTrack, batch)
    .supported(ActionKind::LikeTrack, batch)
    .supported(ActionKind::RemoveAlbum, batch)
    .supported(ActionKind::SaveAlbum, batch)
    .supported(ActionKind::UnfollowArtist, batch)
    .supported(ActionKind::FollowArtist, batch)
    .supported(ActionKind::RemovePlaylistItem, batch)
    .supported(ActionKind::InsertPlaylistItem, batch)
    .unsupported(ActionKind::DislikeTrack, no_ratings, None)
    .unsupported(ActionKind::ClearTrackRating, no_ratings, None)
    .playlist_removal(PlaylistRemoval::ByItemId)
    .playlist_insert_at_position(true)
    .build()
}

impl TidalProvider {
    /// An adapter for the API at `config.api_base_url`.
    ///
    /// # Errors
    /// [`ConfigError`] when the base URL is unusable or TLS cannot be set up.
    pub fn new(config: TidalConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::with_client(TidalClient::new(&config)?))
    }

    /// An adapter over an existing client.
    pub fn with_client(client: TidalClient) -> Self {
        Self { id: client.api().provider().clone(), client }
    }

    /// The API client (its stats, its breaker).
    pub fn client(&self) -> &TidalClient {
        &self.client
    }
}

#[async_trait]
impl Provider for TidalProvider {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    async fn scan(
        &self,
        auth: &dyn TokenSource,
        progress: &dyn ProgressSink,
    ) -> Result<LibrarySnapshot, ProviderError> {
        let session = AuthSession::new(auth);
        scan::scan(&self.id, &self.client, &session, progress).await
    }

    async fn apply(&self, auth: &dyn TokenSource, batch: &Batch) -> Result<Vec<ActionOutcome>, ProviderError> {
        let session = AuthSession::new(auth);
        apply::apply(&self.id, &self.client, &session, batch).await
    }

    async fn search_artists(
        &self,
        auth: &dyn TokenSource,
        query: &str,
        limit: u32,
    ) -> Result<Vec<ArtistCandidate>, ProviderError> {
        let query = query.trim();
        if query.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let session = AuthSession::new(auth);
        let doc = self.client.search_artists(&session, query).await?;
        let index = model::Index::new(&doc.included);
        let mut candidates: Vec<ArtistCandidate> = doc
            .data
            .iter()
            .flat_map(|result| result.relationships.artists.iter().flat_map(|a| a.ids()))
            .filter(|r| r.kind == "artists")
            .filter_map(|r| index.artist(&r.id))
            .map(|artist| ArtistCandidate {
                provider: self.id.clone(),
                id: artist.id.clone(),
                name: artist.attributes.name.clone(),
                confidence: name_confidence(query, &artist.attributes.name),
                detail: artist.attributes.popularity.map(|p| format!("popularity {:.0} %", p * 100.0)),
                url: model::sharing_link(&artist.attributes.external_links),
                image_url: None,
            })
            .collect();
        // Stable: equal confidences keep the service's ranking.
        candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        candidates.truncate(limit as usize);
        Ok(candidates)
    }

    async fn track_by_isrc(&self, auth: &dyn TokenSource, isrc: &str) -> Result<Option<Track>, ProviderError> {
        let isrc = isrc.trim();
        if !is_isrc(isrc) {
            return Err(ProviderError::InvalidInput {
                provider: self.id.clone(),
                endpoint: client::endpoints::TRACKS.into(),
                detail: "an ISRC is 12 letters and digits".into(),
            });
        }
        let session = AuthSession::new(auth);
        let doc = self.client.tracks_by_isrc(&session, isrc).await?;
        let index = model::Index::new(&doc.included);
        Ok(doc
            .data
            .iter()
            .map(|t| index.to_track(t))
            .find(|t| t.isrc.as_deref().is_some_and(|i| i.eq_ignore_ascii_case(isrc))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_one_for_the_same_normalized_name() {
        assert_eq!(name_confidence("Beyonce", "Beyoncé"), 1.0);
        assert!(name_confidence("Drake", "Drake Bell") > 0.5 && name_confidence("Drake", "Drake Bell") < 1.0);
        assert_eq!(name_confidence("Drake", "Nothing Alike"), 0.3);
    }

    #[test]
    fn capabilities_carry_the_real_batch_and_page_sizes() {
        let caps = capabilities();
        for kind in [
            ActionKind::UnlikeTrack,
            ActionKind::LikeTrack,
            ActionKind::RemoveAlbum,
            ActionKind::SaveAlbum,
            ActionKind::UnfollowArtist,
            ActionKind::FollowArtist,
            ActionKind::RemovePlaylistItem,
            ActionKind::InsertPlaylistItem,
        ] {
            assert_eq!(caps.max_batch(kind), 50, "{kind:?}");
        }
        assert_eq!(caps.page_sizes.liked_tracks, 20);
        assert_eq!(caps.page_sizes.playlist_items, 20);
        assert!(!caps.can(ActionKind::DislikeTrack));
        assert_eq!(caps.playlist_removal, PlaylistRemoval::ByItemId);
        assert!(caps.playlist_insert_at_position);
    }
}
