//! The Spotify adapter: [`SpotifyProvider`] ([`Provider`]) and [`SpotifyAuth`]
//! ([`ProviderAuth`](dnp_core::ProviderAuth)) over the Spotify Web API.
//!
//! | file | what |
//! |---|---|
//! | [`config`] | [`SpotifyConfig`]: client id and secret, redirect URI, base URLs |
//! | [`auth`] | OAuth 2.0 authorization code with PKCE and state, refresh with rotation |
//! | [`client`] | the Web API calls, typed, over the shared [`http`](crate::http) stack |
//! | [`model`] | the JSON of the Web API dnp reads |
//! | `scan` | the library scan, pages fetched concurrently |
//! | `apply` | batches of removals and re-additions at the endpoints' maximum sizes |
//! | `emulator` | a stateful local emulator of the API (feature `emulator`) |
//!
//! What the adapter can and cannot do, batch sizes and limits: `docs/providers/spotify.md`.
//!
//! ```no_run
//! use dnp_core::{NoProgress, Provider, StaticToken};
//! use dnp_providers::spotify::{SpotifyConfig, SpotifyProvider};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SpotifyConfig::new("client-id", None, "http://127.0.0.1:8888/callback")?;
//! let spotify = SpotifyProvider::new(config)?;
//! let token = StaticToken::new(spotify.id().clone(), "access token".to_owned().into());
//! let library = spotify.scan(&token, &NoProgress).await?;
//! let artists = spotify.search_artists(&token, "Daft Punk", 5).await?;
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
pub use harness::{SpotifyHarness, test_http_config};

use std::fmt;

use async_trait::async_trait;
use dnp_core::normalize::{is_isrc, name_confidence};
use dnp_core::{
    ActionKind, ActionOutcome, ArtistCandidate, Batch, Capabilities, LibrarySnapshot, PageSizes, PlaylistRemoval,
    ProgressSink, Provider, ProviderError, ProviderId, TokenSource, Track,
};

pub use auth::{SCOPES, SpotifyAuth};
pub use client::SpotifyClient;
pub use config::SpotifyConfig;

use crate::http::{AuthSession, ConfigError};

/// The Spotify adapter.
///
/// Holds one [`SpotifyClient`] (and with it the provider's rate limits and circuit
/// breaker): make one per process and share it (`Arc<dyn Provider>`).
#[derive(Clone)]
pub struct SpotifyProvider {
    id: ProviderId,
    client: SpotifyClient,
    own_writes: std::sync::Arc<apply::OwnWrites>,
}

impl fmt::Debug for SpotifyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpotifyProvider").field("client", &self.client).finish()
    }
}

/// What Spotify's API can do, with the real batch and page sizes.
pub fn capabilities() -> Capabilities {
    let page = client::PAGE_SIZE;
    let library = client::LIBRARY_BATCH as u32;
    let follows = client::FOLLOW_BATCH as u32;
    let playlist = client::PLAYLIST_BATCH as u32;
    Capabilities::builder(PageSizes {
        liked_tracks: page,
        saved_albums: page,
        followed_artists: page,
        playlists: page,
        playlist_items: page,
    })
    .supported(ActionKind::UnlikeTrack, library)
    .supported(ActionKind::LikeTrack, library)
    .supported(ActionKind::RemoveAlbum, library)
    .supported(ActionKind::SaveAlbum, library)
    .supported(ActionKind::UnfollowArtist, follows)
    .supported(ActionKind::FollowArtist, follows)
    .supported(ActionKind::RemovePlaylistItem, playlist)
    .supported(ActionKind::InsertPlaylistItem, playlist)
    .unsupported(ActionKind::DislikeTrack, "Spotify has no rating API", None)
    .unsupported(ActionKind::ClearTrackRating, "Spotify has no rating API", None)
    .playlist_removal(PlaylistRemoval::AllOccurrencesOfTrack)
    .playlist_insert_at_position(true)
    .build()
}

impl SpotifyProvider {
    /// An adapter for the Web API at `config.api_base_url`.
    ///
    /// # Errors
    /// [`ConfigError`] when the base URL is unusable or TLS cannot be set up.
    pub fn new(config: SpotifyConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::with_client(SpotifyClient::new(&config)?))
    }

    /// An adapter over an existing client.
    pub fn with_client(client: SpotifyClient) -> Self {
        Self { id: client.api().provider().clone(), client, own_writes: Default::default() }
    }

    /// The Web API client (its stats, its breaker).
    pub fn client(&self) -> &SpotifyClient {
        &self.client
    }
}

#[async_trait]
impl Provider for SpotifyProvider {
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
        apply::apply(&self.id, &self.client, &session, &self.own_writes, batch).await
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
        let response = self.client.search(&session, query, "artist", limit).await?;
        let mut candidates: Vec<ArtistCandidate> = response
            .artists
            .map(|page| page.items)
            .unwrap_or_default()
            .into_iter()
            .map(|artist| ArtistCandidate {
                provider: self.id.clone(),
                confidence: name_confidence(query, &artist.name),
                url: artist.external_urls.and_then(|u| u.spotify),
                image_url: artist.images.into_iter().next().map(|i| i.url),
                detail: None,
                id: artist.id,
                name: artist.name,
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
                endpoint: client::endpoints::SEARCH.into(),
                detail: "an ISRC is 12 letters and digits".into(),
            });
        }
        let session = AuthSession::new(auth);
        let response = self.client.search(&session, &format!("isrc:{isrc}"), "track", 5).await?;
        Ok(response
            .tracks
            .map(|page| page.items)
            .unwrap_or_default()
            .iter()
            .filter_map(model::TrackObject::to_track)
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
    fn capabilities_carry_the_real_batch_sizes() {
        let caps = capabilities();
        assert_eq!(caps.max_batch(ActionKind::UnlikeTrack), 40);
        assert_eq!(caps.max_batch(ActionKind::RemoveAlbum), 40);
        assert_eq!(caps.max_batch(ActionKind::UnfollowArtist), 50);
        assert_eq!(caps.max_batch(ActionKind::RemovePlaylistItem), 100);
        assert_eq!(caps.page_sizes.playlist_items, 50);
        assert!(!caps.can(ActionKind::DislikeTrack));
        assert_eq!(caps.playlist_removal, PlaylistRemoval::AllOccurrencesOfTrack);
    }
}
