//! [`SpotifyClient`]: the Web API calls dnp makes, typed, over the shared [`ApiClient`].

use dnp_core::{ProviderError, ProviderId};
use reqwest::Method;

use super::config::SpotifyConfig;
use super::model::{
    AddItemsBody, FollowedArtists, Paging, PlaylistTrackObject, PlaylistVersion, PrivateUserObject, RemoveItemsBody,
    SavedAlbumObject, SavedTrackObject, SearchResponse, SimplifiedPlaylistObject, SnapshotId, UriObject,
};
use crate::http::{ApiClient, ApiRequest, AuthSession, ConfigError};

/// The endpoint templates, as reported in metrics and errors.
pub mod endpoints {
    /// The current user.
    pub const ME: &str = "GET /me";
    /// Liked tracks.
    pub const LIKED_TRACKS: &str = "GET /me/tracks";
    /// Saved albums.
    pub const SAVED_ALBUMS: &str = "GET /me/albums";
    /// Followed artists.
    pub const FOLLOWED_ARTISTS: &str = "GET /me/following";
    /// The user's playlists.
    pub const PLAYLISTS: &str = "GET /me/playlists";
    /// One playlist's version.
    pub const PLAYLIST: &str = "GET /playlists/{id}";
    /// A playlist's items.
    pub const PLAYLIST_ITEMS: &str = "GET /playlists/{id}/items";
    /// Save to the library.
    pub const LIBRARY_SAVE: &str = "PUT /me/library";
    /// Remove from the library.
    pub const LIBRARY_REMOVE: &str = "DELETE /me/library";
    /// Follow artists.
    pub const FOLLOW: &str = "PUT /me/following";
    /// Unfollow artists.
    pub const UNFOLLOW: &str = "DELETE /me/following";
    /// Remove playlist items.
    pub const PLAYLIST_REMOVE: &str = "DELETE /playlists/{id}/items";
    /// Add playlist items.
    pub const PLAYLIST_ADD: &str = "POST /playlists/{id}/items";
    /// Search.
    pub const SEARCH: &str = "GET /search";
}

/// The largest page of every list endpoint dnp reads.
pub const PAGE_SIZE: u32 = 50;
/// The most URIs one `/me/library` call takes.
pub const LIBRARY_BATCH: usize = 40;
/// The most ids one `/me/following` call takes.
pub const FOLLOW_BATCH: usize = 50;
/// The most items one playlist items call takes.
pub const PLAYLIST_BATCH: usize = 100;
/// The most results `/search` gives a page.
pub const SEARCH_LIMIT: u32 = 10;

/// Whether `id` is a Spotify id (base-62, at most 64 characters): anything else is refused
/// before it reaches a URL path.
pub fn is_spotify_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The Web API calls dnp makes.
#[derive(Debug, Clone)]
pub struct SpotifyClient {
    api: ApiClient,
}

impl SpotifyClient {
    /// A client of the Web API at `config.api_base_url`.
    ///
    /// # Errors
    /// [`ConfigError`] when the base URL is unusable.
    pub fn new(config: &SpotifyConfig) -> Result<Self, ConfigError> {
        let provider = ProviderId::new(ProviderId::SPOTIFY)
            .map_err(|e| ConfigError::Invalid { name: "provider id", reason: e.to_string() })?;
        Ok(Self { api: ApiClient::new(provider, &config.api_base_url, config.http.clone())? })
    }

    /// A client over an existing [`ApiClient`] (a scripted transport, shared limits).
    pub fn with_api(api: ApiClient) -> Self {
        Self { api }
    }

    /// The HTTP client.
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    fn provider(&self) -> &ProviderId {
        self.api.provider()
    }

    fn check_id(&self, endpoint: &str, id: &str) -> Result<(), ProviderError> {
        if is_spotify_id(id) {
            Ok(())
        } else {
            Err(ProviderError::InvalidInput {
                provider: self.provider().clone(),
                endpoint: endpoint.to_owned(),
                detail: format!("{:?} is not a Spotify id", id.chars().take(64).collect::<String>()),
            })
        }
    }

    /// `GET /me`.
    pub async fn me(&self, auth: &AuthSession<'_>) -> Result<PrivateUserObject, ProviderError> {
        self.api.json(Some(auth), &ApiRequest::get(endpoints::ME, "/me")).await
    }

    /// One page of `GET /me/tracks`.
    pub async fn liked_tracks(
        &self,
        auth: &AuthSession<'_>,
        offset: u32,
        limit: u32,
    ) -> Result<Paging<SavedTrackObject>, ProviderError> {
        let request =
            ApiRequest::get(endpoints::LIKED_TRACKS, "/me/tracks").query("limit", limit).query("offset", offset);
        self.api.json(Some(auth), &request).await
    }

    /// One page of `GET /me/albums`.
    pub async fn saved_albums(
        &self,
        auth: &AuthSession<'_>,
        offset: u32,
        limit: u32,
    ) -> Result<Paging<SavedAlbumObject>, ProviderError> {
        let request =
            ApiRequest::get(endpoints::SAVED_ALBUMS, "/me/albums").query("limit", limit).query("offset", offset);
        self.api.json(Some(auth), &request).await
    }

    /// One page of `GET /me/playlists`.
    pub async fn playlists(
        &self,
        auth: &AuthSession<'_>,
        offset: u32,
        limit: u32,
    ) -> Result<Paging<SimplifiedPlaylistObject>, ProviderError> {
        let request =
            ApiRequest::get(endpoints::PLAYLISTS, "/me/playlists").query("limit", limit).query("offset", offset);
        self.api.json(Some(auth), &request).await
    }

    /// One page of `GET /playlists/{id}/items`.
    pub async fn playlist_items(
        &self,
        auth: &AuthSession<'_>,
        playlist_id: &str,
        offset: u32,
        limit: u32,
    ) -> Result<Paging<PlaylistTrackObject>, ProviderError> {
        self.check_id(endpoints::PLAYLIST_ITEMS, playlist_id)?;
        let request = ApiRequest::get(endpoints::PLAYLIST_ITEMS, format!("/playlists/{playlist_id}/items"))
            .query("limit", limit)
            .query("offset", offset);
        self.api.json(Some(auth), &request).await
    }

    /// One page of `GET /me/following?type=artist`, after the cursor `after`.
    pub async fn followed_artists(
        &self,
        auth: &AuthSession<'_>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<FollowedArtists, ProviderError> {
        let mut request =
            ApiRequest::get(endpoints::FOLLOWED_ARTISTS, "/me/following").query("type", "artist").query("limit", limit);
        if let Some(after) = after {
            request = request.query("after", after);
        }
        self.api.json(Some(auth), &request).await
    }

    /// A playlist's current version (`GET /playlists/{id}?fields=snapshot_id`).
    pub async fn playlist_version(&self, auth: &AuthSession<'_>, playlist_id: &str) -> Result<String, ProviderError> {
        self.check_id(endpoints::PLAYLIST, playlist_id)?;
        let request =
            ApiRequest::get(endpoints::PLAYLIST, format!("/playlists/{playlist_id}")).query("fields", "snapshot_id");
        let version: PlaylistVersion = self.api.json(Some(auth), &request).await?;
        Ok(version.snapshot_id)
    }

    /// `PUT /me/library?uris=…` (at most [`LIBRARY_BATCH`]).
    pub async fn library_save(&self, auth: &AuthSession<'_>, uris: &[String]) -> Result<(), ProviderError> {
        let request =
            ApiRequest::new(Method::PUT, endpoints::LIBRARY_SAVE, "/me/library").query("uris", uris.join(","));
        self.api.send(Some(auth), &request).await.map(drop)
    }

    /// `DELETE /me/library?uris=…` (at most [`LIBRARY_BATCH`]).
    pub async fn library_remove(&self, auth: &AuthSession<'_>, uris: &[String]) -> Result<(), ProviderError> {
        let request =
            ApiRequest::new(Method::DELETE, endpoints::LIBRARY_REMOVE, "/me/library").query("uris", uris.join(","));
        self.api.send(Some(auth), &request).await.map(drop)
    }

    /// `PUT /me/following?type=artist&ids=…` (at most [`FOLLOW_BATCH`]).
    pub async fn follow_artists(&self, auth: &AuthSession<'_>, ids: &[String]) -> Result<(), ProviderError> {
        let request = ApiRequest::new(Method::PUT, endpoints::FOLLOW, "/me/following")
            .query("type", "artist")
            .query("ids", ids.join(","));
        self.api.send(Some(auth), &request).await.map(drop)
    }

    /// `DELETE /me/following?type=artist&ids=…` (at most [`FOLLOW_BATCH`]).
    pub async fn unfollow_artists(&self, auth: &AuthSession<'_>, ids: &[String]) -> Result<(), ProviderError> {
        let request = ApiRequest::new(Method::DELETE, endpoints::UNFOLLOW, "/me/following")
            .query("type", "artist")
            .query("ids", ids.join(","));
        self.api.send(Some(auth), &request).await.map(drop)
    }

    /// `DELETE /playlists/{id}/items`: every occurrence of each URI goes.
    pub async fn remove_playlist_items(
        &self,
        auth: &AuthSession<'_>,
        playlist_id: &str,
        uris: &[String],
        snapshot_id: Option<&str>,
    ) -> Result<SnapshotId, ProviderError> {
        self.check_id(endpoints::PLAYLIST_REMOVE, playlist_id)?;
        let body = RemoveItemsBody {
            items: uris.iter().map(|uri| UriObject { uri: uri.clone() }).collect(),
            snapshot_id: snapshot_id.map(str::to_owned),
        };
        let request =
            ApiRequest::new(Method::DELETE, endpoints::PLAYLIST_REMOVE, format!("/playlists/{playlist_id}/items"))
                .json(&body);
        self.api.json(Some(auth), &request).await
    }

    /// `POST /playlists/{id}/items`: inserts `uris` in order from `position`.
    pub async fn add_playlist_items(
        &self,
        auth: &AuthSession<'_>,
        playlist_id: &str,
        uris: &[String],
        position: Option<u32>,
    ) -> Result<SnapshotId, ProviderError> {
        self.check_id(endpoints::PLAYLIST_ADD, playlist_id)?;
        let body = AddItemsBody { uris: uris.to_vec(), position };
        let request = ApiRequest::new(Method::POST, endpoints::PLAYLIST_ADD, format!("/playlists/{playlist_id}/items"))
            .json(&body)
            .not_idempotent();
        self.api.json(Some(auth), &request).await
    }

    /// `GET /search` for `type` (`artist`, `track`).
    pub async fn search(
        &self,
        auth: &AuthSession<'_>,
        query: &str,
        kind: &str,
        limit: u32,
    ) -> Result<SearchResponse, ProviderError> {
        let request = ApiRequest::get(endpoints::SEARCH, "/search")
            .query("q", query)
            .query("type", kind)
            .query("limit", limit.clamp(1, SEARCH_LIMIT));
        self.api.json(Some(auth), &request).await
    }
}
