//! The Apple Music adapter: [`AppleMusicProvider`] ([`Provider`]) and [`AppleMusicAuth`]
//! ([`ProviderAuth`](dnp_core::ProviderAuth)) over the Apple Music API
//! (`api.music.apple.com`).
//!
//! | file | what |
//! |---|---|
//! | [`config`] | [`AppleMusicConfig`]: team id, key id and MusicKit private key, the MusicKit page, base URL, storefront |
//! | [`auth`] | the ES256 developer token ([`DeveloperTokenSigner`]), the Music User Token flow ([`AppleMusicAuth`]) |
//! | [`client`] | the API calls, typed, over the shared [`http`](crate::http) stack, with both tokens |
//! | [`model`] | the JSON dnp reads and writes, and its mapping to dnp's model (ids, credits) |
//! | `scan` | library songs, albums, artists, playlists and their tracks; dislike ratings |
//! | `apply` | dislike ratings and their removal, re-adding to the library, appending to playlists |
//! | `emulator` | a stateful local emulator of the API and of MusicKit's authorize (feature `emulator`) |
//!
//! # What Apple Music's API can and cannot do
//! Apple documents adding to a library, appending to library playlists and rating songs,
//! but **no removal** of library songs, albums or artists, nor of playlist tracks. So:
//! - a blocked artist's library songs are rated **dislike** (`PUT /v1/me/ratings/songs/{id}`,
//!   value `-1`): the planner turns the unsupported "unlike" into [`ActionKind::DislikeTrack`]
//!   (alternative [`Alternative::Dislike`]); rollback deletes the rating;
//! - library albums, library artists and playlist tracks go on the plan's **manual
//!   checklist**, each with its music.apple.com link ([`Alternative::ManualChecklist`]);
//! - an undocumented `DELETE /v1/me/library/playlists/{id}/tracks/{id}` exists. dnp does not
//!   use it: it may stop working at any time, and since Apple can only append to a
//!   playlist, a removed track could not be put back at its position on rollback;
//! - appending to a playlist is [`Support::Limited`](dnp_core::Support::Limited):
//!   always at the end (`playlist_insert_at_position` is false).
//!
//! The user-facing page is `docs/providers/apple-music.md`.
//!
//! # Tokens
//! See [`auth`]: the developer token is signed here and renewed a margin before expiry
//! (or at once after a `401`); the Music User Token comes from MusicKit JS on the server's
//! MusicKit page and cannot be refreshed (a refused one means the user connects again).
//!
//! ```no_run
//! use dnp_core::{NoProgress, Provider, ProviderAuth, StaticToken};
//! use dnp_providers::apple_music::{AppleMusicAuth, AppleMusicConfig, AppleMusicProvider};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // APPLE_MUSIC_TEAM_ID, APPLE_MUSIC_KEY_ID, APPLE_MUSIC_PRIVATE_KEY(_FILE), PUBLIC_BASE_URL.
//! let config = AppleMusicConfig::from_env()?;
//! let auth = AppleMusicAuth::new(config.clone())?;
//! let request = auth.authorization_request()?; // send the browser to request.url (the MusicKit page)
//! # let music_user_token = "posted back by the MusicKit page";
//! let tokens = auth.exchange_code(music_user_token, None).await?;
//!
//! let apple = AppleMusicProvider::new(config)?;
//! let token = StaticToken::new(apple.id().clone(), tokens.access_token);
//! let library = apple.scan(&token, &NoProgress).await?;
//! println!("{} library songs", library.liked_tracks.len());
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
pub use harness::{AppleMusicHarness, test_http_config};

use std::fmt;

use async_trait::async_trait;
use dnp_core::normalize::{is_isrc, name_confidence};
use dnp_core::{
    ActionKind, ActionOutcome, Alternative, ArtistCandidate, Batch, Capabilities, LibrarySnapshot, PageSizes,
    PlaylistRemoval, ProgressSink, Provider, ProviderError, ProviderId, TokenSource, Track,
};

pub use auth::{AppleMusicAuth, DeveloperTokenSigner};
pub use client::AppleMusicClient;
pub use config::AppleMusicConfig;

use crate::http::ConfigError;

/// The Apple Music adapter.
///
/// Holds one [`AppleMusicClient`] (its developer token cache, rate limits and circuit
/// breaker): make one per process and share it (`Arc<dyn Provider>`).
#[derive(Clone)]
pub struct AppleMusicProvider {
    id: ProviderId,
    client: AppleMusicClient,
}

impl fmt::Debug for AppleMusicProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppleMusicProvider").field("client", &self.client).finish()
    }
}

/// What Apple Music's API can do, with its page and batch sizes (see the [module
/// docs](self)).
pub fn capabilities() -> Capabilities {
    let page = client::PAGE_SIZE;
    let unsupported = |kind| apply::unsupported_reason(kind).unwrap_or("not offered by Apple Music's API");
    Capabilities::builder(PageSizes {
        liked_tracks: page,
        saved_albums: page,
        followed_artists: page,
        playlists: page,
        playlist_items: page,
    })
    .unsupported(ActionKind::UnlikeTrack, unsupported(ActionKind::UnlikeTrack), Some(Alternative::Dislike))
    .supported(ActionKind::LikeTrack, client::LIBRARY_ADD_BATCH as u32)
    .supported(ActionKind::DislikeTrack, 1)
    .supported(ActionKind::ClearTrackRating, 1)
    .unsupported(ActionKind::RemoveAlbum, unsupported(ActionKind::RemoveAlbum), Some(Alternative::ManualChecklist))
    .supported(ActionKind::SaveAlbum, client::LIBRARY_ADD_BATCH as u32)
    .unsupported(
        ActionKind::UnfollowArtist,
        unsupported(ActionKind::UnfollowArtist),
        Some(Alternative::ManualChecklist),
    )
    .unsupported(ActionKind::FollowArtist, unsupported(ActionKind::FollowArtist), None)
    .unsupported(
        ActionKind::RemovePlaylistItem,
        unsupported(ActionKind::RemovePlaylistItem),
        Some(Alternative::ManualChecklist),
    )
    .limited(
        ActionKind::InsertPlaylistItem,
        client::PLAYLIST_ADD_BATCH as u32,
        "Apple Music's API only appends to the end of a playlist, and only to playlists it may edit",
    )
    .playlist_removal(PlaylistRemoval::ByItemId)
    .playlist_insert_at_position(false)
    .build()
}

impl AppleMusicProvider {
    /// An adapter for the API at `config.api_base_url`.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration is unusable.
    pub fn new(config: AppleMusicConfig) -> Result<Self, ConfigError> {
        Ok(Self::with_client(AppleMusicClient::new(&config)?))
    }

    /// An adapter over an existing client (shared with [`AppleMusicAuth::with_client`]).
    pub fn with_client(client: AppleMusicClient) -> Self {
        Self { id: client.api().provider().clone(), client }
    }

    /// The API client (its stats, its breaker, its developer token signer).
    pub fn client(&self) -> &AppleMusicClient {
        &self.client
    }
}

#[async_trait]
impl Provider for AppleMusicProvider {
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
        let session = self.client.session(auth);
        scan::scan(&self.id, &self.client, &session, progress).await
    }

    async fn apply(&self, auth: &dyn TokenSource, batch: &Batch) -> Result<Vec<ActionOutcome>, ProviderError> {
        let session = self.client.session(auth);
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
        let session = self.client.session(auth);
        let response = self.client.search_artists(&session, query, limit).await?;
        let storefront = self.client.storefront();
        let mut candidates: Vec<ArtistCandidate> = response
            .results
            .artists
            .map(|r| r.data)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|artist| {
                let attrs = artist.attributes?;
                Some(ArtistCandidate {
                    provider: self.id.clone(),
                    confidence: name_confidence(query, &attrs.name),
                    url: Some(attrs.url.unwrap_or_else(|| model::catalog_link(storefront, "artist", &artist.id))),
                    image_url: None,
                    detail: None,
                    id: artist.id,
                    name: attrs.name,
                })
            })
            .collect();
        candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        candidates.truncate(limit as usize);
        Ok(candidates)
    }

    async fn track_by_isrc(&self, auth: &dyn TokenSource, isrc: &str) -> Result<Option<Track>, ProviderError> {
        let isrc = isrc.trim();
        if !is_isrc(isrc) {
            return Err(ProviderError::InvalidInput {
                provider: self.id.clone(),
                endpoint: client::endpoints::SONGS_BY_ISRC.into(),
                detail: "an ISRC is 12 letters and digits".into(),
            });
        }
        let session = self.client.session(auth);
        let page = self.client.songs_by_isrc(&session, isrc).await?;
        let storefront = self.client.storefront().to_owned();
        Ok(page.data.into_iter().find_map(|song| {
            let attrs = song.attributes.as_ref()?;
            if !attrs.isrc.as_deref().is_some_and(|i| i.eq_ignore_ascii_case(isrc)) {
                return None;
            }
            // Read it as a library song whose catalog song is this one.
            let wrapped = model::LibrarySong {
                id: song.id.clone(),
                kind: "songs".into(),
                attributes: Some(model::LibrarySongAttributes {
                    name: attrs.name.clone(),
                    artist_name: attrs.artist_name.clone(),
                    album_name: attrs.album_name.clone(),
                    duration_in_millis: attrs.duration_in_millis,
                    play_params: None,
                }),
                relationships: model::LibrarySongRelationships {
                    catalog: Some(model::Relationship { data: vec![song.clone()] }),
                },
            };
            wrapped.to_track(&storefront)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_say_what_apple_cannot_do_and_offer_alternatives() {
        let caps = capabilities();
        assert!(!caps.can(ActionKind::UnlikeTrack));
        assert!(matches!(
            caps.support(ActionKind::UnlikeTrack),
            dnp_core::Support::Unsupported { alternative: Some(Alternative::Dislike), .. }
        ));
        assert!(caps.can(ActionKind::DislikeTrack) && caps.can(ActionKind::ClearTrackRating));
        for kind in [ActionKind::RemoveAlbum, ActionKind::UnfollowArtist, ActionKind::RemovePlaylistItem] {
            assert!(matches!(
                caps.support(kind),
                dnp_core::Support::Unsupported { alternative: Some(Alternative::ManualChecklist), .. }
            ));
        }
        assert!(matches!(caps.support(ActionKind::InsertPlaylistItem), dnp_core::Support::Limited { .. }));
        assert!(!caps.playlist_insert_at_position);
        assert!(!caps.removal_possible(), "Apple documents no removal at all");
        assert_eq!(caps.page_sizes.liked_tracks, 100);
    }

    #[test]
    fn confidence_is_one_for_the_same_normalized_name() {
        assert_eq!(name_confidence("Beyonce", "Beyoncé"), 1.0);
        assert_eq!(name_confidence("Drake", "Nothing Alike"), 0.3);
    }
}
