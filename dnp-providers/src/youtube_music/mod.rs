//! The YouTube Music adapter: [`YouTubeMusicProvider`] ([`Provider`]) and
//! [`YouTubeMusicAuth`] ([`ProviderAuth`](dnp_core::ProviderAuth)) over the YouTube Data
//! API v3, the only official API to a YouTube Music account.
//!
//! | file | what |
//! |---|---|
//! | [`config`] | [`YouTubeMusicConfig`]: OAuth client, redirect URI, base URLs, daily quota |
//! | [`auth`] | Google OAuth 2.0: authorization code with PKCE and state, offline access, refresh, revoke |
//! | [`client`] | the Data API calls, typed, over the shared [`http`](crate::http) stack, each counted against the quota |
//! | [`model`] | the JSON of the Data API dnp reads, and how a video becomes a track |
//! | [`quota`] | the daily quota: costs, midnight Pacific, the [`QuotaMeter`](quota::QuotaMeter) |
//! | `scan` | the library scan: liked videos, playlists and their items, subscriptions |
//! | `apply` | one write per action: `videos.rate`, `playlistItems.delete/insert`, `subscriptions.delete/insert` |
//! | `emulator` | a stateful local emulator of the Data API and Google OAuth (feature `emulator`) |
//!
//! What YouTube can and cannot do, the quota arithmetic and how to register a Google
//! Cloud project: `docs/providers/youtube-music.md`. In short: liked music, playlist items
//! and subscriptions can be removed and restored, one item per call at 50 units of a
//! 10,000-unit day (about 200 writes a day, so the planner spreads longer plans over
//! days); saved albums are not in the Data API at all and become a manual checklist.
//!
//! ```no_run
//! use dnp_core::{NoProgress, Provider, StaticToken};
//! use dnp_providers::youtube_music::{YouTubeMusicConfig, YouTubeMusicProvider};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = YouTubeMusicConfig::new("123.apps.googleusercontent.com", None, "http://localhost:8888/callback")?;
//! let youtube = YouTubeMusicProvider::new(config)?;
//! let token = StaticToken::new(youtube.id().clone(), "access token".to_owned().into());
//! let library = youtube.scan(&token, &NoProgress).await?;
//! let quota = youtube.capabilities().quota.expect("YouTube has a daily quota");
//! println!("{} liked videos; {} of {} units left today", library.liked_tracks.len(), quota.remaining_today, quota.daily_units);
//! # Ok(()) }
//! ```

mod apply;
pub mod auth;
pub mod client;
pub mod config;
pub mod model;
pub mod quota;
mod scan;

#[cfg(feature = "emulator")]
pub mod emulator;

#[cfg(feature = "emulator")]
mod harness;
#[cfg(feature = "emulator")]
pub use harness::{YouTubeMusicHarness, test_http_config};

use std::fmt;

use async_trait::async_trait;
use dnp_core::normalize::name_confidence;
use dnp_core::{
    ActionKind, ActionOutcome, Alternative, ArtistCandidate, Batch, Capabilities, LibrarySnapshot, PageSizes,
    PlaylistRemoval, ProgressSink, Provider, ProviderError, ProviderId, Quota, TokenSource, Track,
};

pub use auth::{SCOPES, YouTubeMusicAuth};
pub use client::YouTubeClient;
pub use config::YouTubeMusicConfig;

use self::model::{channel_artist_name, channel_url, is_topic_channel};
use self::quota::{WRITE_COST, until_reset};
use crate::http::{AuthSession, ConfigError};

/// The YouTube Music adapter.
///
/// Holds one [`YouTubeClient`] and with it the provider's rate limits, circuit breaker and
/// quota meter: make one per process and Google Cloud project and share it
/// (`Arc<dyn Provider>`).
#[derive(Clone)]
pub struct YouTubeMusicProvider {
    id: ProviderId,
    client: YouTubeClient,
}

impl fmt::Debug for YouTubeMusicProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YouTubeMusicProvider").field("client", &self.client).finish()
    }
}

/// What the YouTube Data API can do, with a quota of `daily_units` of which
/// `remaining_today` are left.
pub fn capabilities(daily_units: u64, remaining_today: u64) -> Capabilities {
    let page = client::PAGE_SIZE;
    let cost = WRITE_COST as u32;
    let albums = "the YouTube Data API has no saved albums (YouTube Music's library is only exported, read-only, \
                  through Google's Data Portability API): remove them by hand in YouTube Music";
    let ratings = "not offered: dnp removes the like itself (videos.rate rating=none); a disliked video is in no \
                   list dnp reads back";
    Capabilities::builder(PageSizes {
        liked_tracks: page,
        saved_albums: page,
        followed_artists: page,
        playlists: page,
        playlist_items: page,
    })
    .supported(ActionKind::UnlikeTrack, 1)
    .supported(ActionKind::LikeTrack, 1)
    .supported(ActionKind::UnfollowArtist, 1)
    .supported(ActionKind::FollowArtist, 1)
    .supported(ActionKind::RemovePlaylistItem, 1)
    .supported(ActionKind::InsertPlaylistItem, 1)
    .quota_cost(ActionKind::UnlikeTrack, cost)
    .quota_cost(ActionKind::LikeTrack, cost)
    .quota_cost(ActionKind::UnfollowArtist, cost)
    .quota_cost(ActionKind::FollowArtist, cost)
    .quota_cost(ActionKind::RemovePlaylistItem, cost)
    .quota_cost(ActionKind::InsertPlaylistItem, cost)
    .unsupported(ActionKind::RemoveAlbum, albums, Some(Alternative::ManualChecklist))
    .unsupported(ActionKind::SaveAlbum, albums, Some(Alternative::ManualChecklist))
    .unsupported(ActionKind::DislikeTrack, ratings, None)
    .unsupported(ActionKind::ClearTrackRating, ratings, None)
    .playlist_removal(PlaylistRemoval::ByItemId)
    .playlist_insert_at_position(true)
    .quota(Quota { daily_units, remaining_today })
    .build()
}

impl YouTubeMusicProvider {
    /// An adapter for the Data API at `config.api_base_url`, metering `config.daily_quota`.
    ///
    /// # Errors
    /// [`ConfigError`] when the base URL is unusable or TLS cannot be set up.
    pub fn new(config: YouTubeMusicConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::with_client(YouTubeClient::new(&config)?))
    }

    /// An adapter over an existing client.
    pub fn with_client(client: YouTubeClient) -> Self {
        Self { id: client.api().provider().clone(), client }
    }

    /// The Data API client (its stats, its breaker, its quota meter).
    pub fn client(&self) -> &YouTubeClient {
        &self.client
    }
}

#[async_trait]
impl Provider for YouTubeMusicProvider {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    /// The capabilities with today's quota as this process counted it.
    fn capabilities(&self) -> Capabilities {
        let quota = self.client.quota();
        capabilities(quota.daily_units(), quota.remaining())
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

    /// Channels named like `query` (`search.list?type=channel`, 100 units), best first:
    /// an `"Artist - Topic"` channel (YouTube Music's artist) before another of the same
    /// confidence.
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
        let response = self.client.search_channels(&session, query, limit).await?;
        let mut candidates: Vec<(bool, ArtistCandidate)> = response
            .items
            .into_iter()
            .filter_map(|result| {
                let channel_id = result.id.channel_id?;
                let title = result.snippet.map(|s| s.title).unwrap_or_default();
                let name = channel_artist_name(&title).to_owned();
                Some((
                    is_topic_channel(&title),
                    ArtistCandidate {
                        provider: self.id.clone(),
                        confidence: name_confidence(query, &name),
                        detail: Some(format!("YouTube channel \u{201c}{title}\u{201d}")),
                        url: Some(channel_url(&channel_id)),
                        image_url: None,
                        id: channel_id,
                        name,
                    },
                ))
            })
            .collect();
        // Stable: equal keys keep the service's ranking.
        candidates.sort_by(|(ta, a), (tb, b)| b.confidence.total_cmp(&a.confidence).then(tb.cmp(ta)));
        candidates.truncate(limit as usize);
        Ok(candidates.into_iter().map(|(_, c)| c).collect())
    }

    /// Always `Unsupported`: YouTube exposes no ISRC. Match YouTube tracks by normalized
    /// title, artist (the `"Artist - Topic"` channel) and duration instead.
    async fn track_by_isrc(&self, _auth: &dyn TokenSource, _isrc: &str) -> Result<Option<Track>, ProviderError> {
        Err(ProviderError::Unsupported {
            provider: self.id.clone(),
            what: "ISRC lookup (YouTube exposes no ISRC; match on title, artist and duration)".into(),
        })
    }
}

/// How long until the quota resets, from now (for messages and schedulers).
pub fn time_until_quota_reset() -> std::time::Duration {
    until_reset(chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_carry_the_quota_and_one_item_per_call() {
        let caps = capabilities(10_000, 9_000);
        for kind in [
            ActionKind::UnlikeTrack,
            ActionKind::LikeTrack,
            ActionKind::UnfollowArtist,
            ActionKind::FollowArtist,
            ActionKind::RemovePlaylistItem,
            ActionKind::InsertPlaylistItem,
        ] {
            assert!(caps.can(kind), "{kind:?}");
            assert_eq!(caps.max_batch(kind), 1);
            assert_eq!(caps.action(kind).map(|a| a.quota_cost), Some(50));
        }
        assert!(!caps.can(ActionKind::RemoveAlbum));
        assert!(matches!(
            caps.support(ActionKind::RemoveAlbum),
            dnp_core::Support::Unsupported { alternative: Some(Alternative::ManualChecklist), .. }
        ));
        assert_eq!(caps.playlist_removal, PlaylistRemoval::ByItemId);
        assert_eq!(caps.quota, Some(Quota { daily_units: 10_000, remaining_today: 9_000 }));
    }

    #[test]
    fn confidence_is_one_for_the_same_normalized_name() {
        assert_eq!(name_confidence("Beyonce", "Beyoncé"), 1.0);
        assert!(name_confidence("Drake", "Drake Bell") < 1.0);
        assert_eq!(name_confidence("Drake", "Nothing Alike"), 0.3);
    }
}
