//! [`TidalClient`]: the TIDAL API calls dnp makes, typed, over the shared [`ApiClient`].
//!
//! # Idempotency keys
//! Every mutation carries an `Idempotency-Key` (TIDAL replays the first answer to a key
//! sent again with the same payload within one hour, without applying it again). The key
//! is derived from what is sent: the endpoint, the path, the action ids of the batch and
//! the payload (ids, item ids, dates), plus a counter of how many times that same request
//! already completed in this process. So:
//! - a request resent after it failed or timed out (by the HTTP stack's retries, or by the
//!   executor resending the batch) carries the same key: if TIDAL did apply it, the
//!   answer is replayed and nothing is applied twice;
//! - the same request sent again on purpose after it completed (enforce, roll back,
//!   enforce again within the hour) carries a new key and is applied.
//!
//! A `409` "request already in progress for this key" is waited out (up to five times,
//! with backoff); a `422` (the same key with another payload) cannot happen with derived
//! keys and is reported as `InvalidInput`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use dnp_core::{ProviderError, ProviderId};
use reqwest::Method;

use super::config::TidalConfig;
use super::model::{
    AddDocument, IdentifierMeta, JSON_API, MultiDocument, Payload, PayloadItem, PositionMeta, RelationshipDocument,
    SearchResultsResource, SingleDocument, TrackResource, UserResource,
};
use crate::http::{ApiClient, ApiRequest, AuthSession, ConfigError};

/// The endpoint templates, as reported in metrics and errors.
pub mod endpoints {
    /// The current user.
    pub const ME: &str = "GET /users/me";
    /// Collection tracks.
    pub const COLLECTION_TRACKS: &str = "GET /userCollectionTracks/me/relationships/items";
    /// Add collection tracks.
    pub const COLLECTION_TRACKS_ADD: &str = "POST /userCollectionTracks/me/relationships/items";
    /// Remove collection tracks.
    pub const COLLECTION_TRACKS_REMOVE: &str = "DELETE /userCollectionTracks/me/relationships/items";
    /// Collection albums.
    pub const COLLECTION_ALBUMS: &str = "GET /userCollectionAlbums/me/relationships/items";
    /// Add collection albums.
    pub const COLLECTION_ALBUMS_ADD: &str = "POST /userCollectionAlbums/me/relationships/items";
    /// Remove collection albums.
    pub const COLLECTION_ALBUMS_REMOVE: &str = "DELETE /userCollectionAlbums/me/relationships/items";
    /// Collection artists (followed artists).
    pub const COLLECTION_ARTISTS: &str = "GET /userCollectionArtists/me/relationships/items";
    /// Add collection artists.
    pub const COLLECTION_ARTISTS_ADD: &str = "POST /userCollectionArtists/me/relationships/items";
    /// Remove collection artists.
    pub const COLLECTION_ARTISTS_REMOVE: &str = "DELETE /userCollectionArtists/me/relationships/items";
    /// Collection playlists.
    pub const COLLECTION_PLAYLISTS: &str = "GET /userCollectionPlaylists/me/relationships/items";
    /// A playlist's items.
    pub const PLAYLIST_ITEMS: &str = "GET /playlists/{id}/relationships/items";
    /// Add playlist items.
    pub const PLAYLIST_ITEMS_ADD: &str = "POST /playlists/{id}/relationships/items";
    /// Remove playlist items.
    pub const PLAYLIST_ITEMS_REMOVE: &str = "DELETE /playlists/{id}/relationships/items";
    /// Tracks by filter (ISRC).
    pub const TRACKS: &str = "GET /tracks";
    /// Search.
    pub const SEARCH: &str = "GET /searchResults";
}

/// The page size of every relationship list. The API has no page-size parameter: each
/// page holds 20 items and `links.next` leads to the next.
pub const PAGE_SIZE: u32 = 20;
/// The most items one add or remove call takes (`maxItems` of every items payload).
pub const MUTATION_BATCH: usize = 50;
/// The longest `Idempotency-Key` TIDAL accepts.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;
/// How often a `409` "request in progress" is waited out before giving up.
const IN_PROGRESS_RETRIES: u32 = 5;

/// What a collection relationship holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    /// `userCollectionTracks`: liked tracks.
    Tracks,
    /// `userCollectionAlbums`: saved albums.
    Albums,
    /// `userCollectionArtists`: followed artists.
    Artists,
    /// `userCollectionPlaylists`: the playlists in "My Collection".
    Playlists,
}

impl Collection {
    /// The path of the relationship for the current user.
    pub fn path(self) -> &'static str {
        match self {
            Self::Tracks => "/userCollectionTracks/me/relationships/items",
            Self::Albums => "/userCollectionAlbums/me/relationships/items",
            Self::Artists => "/userCollectionArtists/me/relationships/items",
            Self::Playlists => "/userCollectionPlaylists/me/relationships/items",
        }
    }

    /// The JSON:API type of its items.
    pub fn item_type(self) -> &'static str {
        match self {
            Self::Tracks => "tracks",
            Self::Albums => "albums",
            Self::Artists => "artists",
            Self::Playlists => "playlists",
        }
    }

    /// What the scan includes with each page: the tracks with their artists and albums
    /// (and the albums' artists), the albums with their artists, the artists, the
    /// playlists with their owners and collaborators.
    pub fn include(self) -> &'static str {
        match self {
            Self::Tracks => "items.artists,items.albums.artists",
            Self::Albums => "items.artists",
            Self::Artists => "items",
            Self::Playlists => "items.owners,items.collaborators",
        }
    }

    fn endpoints(self) -> (&'static str, &'static str, &'static str) {
        use endpoints::*;
        match self {
            Self::Tracks => (COLLECTION_TRACKS, COLLECTION_TRACKS_ADD, COLLECTION_TRACKS_REMOVE),
            Self::Albums => (COLLECTION_ALBUMS, COLLECTION_ALBUMS_ADD, COLLECTION_ALBUMS_REMOVE),
            Self::Artists => (COLLECTION_ARTISTS, COLLECTION_ARTISTS_ADD, COLLECTION_ARTISTS_REMOVE),
            Self::Playlists => (
                COLLECTION_PLAYLISTS,
                "POST /userCollectionPlaylists/me/relationships/items",
                "DELETE /userCollectionPlaylists/me/relationships/items",
            ),
        }
    }

    /// The endpoint template of a page read.
    pub fn list_endpoint(self) -> &'static str {
        self.endpoints().0
    }

    /// The endpoint template of an add.
    pub fn add_endpoint(self) -> &'static str {
        self.endpoints().1
    }

    /// The endpoint template of a removal.
    pub fn remove_endpoint(self) -> &'static str {
        self.endpoints().2
    }
}

/// What playlist items a page read includes: each entry's track (or video) with its
/// artists, its albums and their artists.
pub const PLAYLIST_ITEMS_INCLUDE: &str = "items.artists,items.albums.artists";

/// Whether `id` can be a TIDAL id: ids are opaque, but never empty, at most 128
/// characters of letters, digits and `-_.:`. Anything else is refused before it reaches a
/// URL or a payload.
pub fn is_tidal_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// An RFC 3339 timestamp in UTC with milliseconds, as TIDAL writes them.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Idempotency keys derived from requests (see the [module docs](self)).
#[derive(Debug, Default)]
struct IdempotencyKeys {
    /// How many times each request (by its hash) completed.
    completed: Mutex<HashMap<u128, u32>>,
}

impl IdempotencyKeys {
    /// Requests remembered at most; past it the oldest knowledge is dropped at once (a
    /// repeat of a forgotten request then reuses an old key, which only matters within
    /// the hour TIDAL keeps keys).
    const CAPACITY: usize = 100_000;

    fn hash_of(endpoint: &str, path: &str, actions: &[u32], body: &[u8]) -> u128 {
        let part = |salt: u64| {
            let mut h = DefaultHasher::new();
            salt.hash(&mut h);
            endpoint.hash(&mut h);
            path.hash(&mut h);
            actions.hash(&mut h);
            body.hash(&mut h);
            h.finish()
        };
        (u128::from(part(0x7da1)) << 64) | u128::from(part(0x1d3a))
    }

    fn key(&self, hash: u128) -> String {
        let done = self.completed.lock().unwrap_or_else(|e| e.into_inner()).get(&hash).copied().unwrap_or(0);
        format!("dnp-{hash:032x}-{done}")
    }

    fn complete(&self, hash: u128) {
        let mut completed = self.completed.lock().unwrap_or_else(|e| e.into_inner());
        if completed.len() >= Self::CAPACITY {
            completed.clear();
        }
        *completed.entry(hash).or_insert(0) += 1;
    }
}

/// The TIDAL API calls dnp makes.
#[derive(Debug, Clone)]
pub struct TidalClient {
    api: ApiClient,
    keys: Arc<IdempotencyKeys>,
}

impl TidalClient {
    /// A client of the API at `config.api_base_url`.
    ///
    /// # Errors
    /// [`ConfigError`] when the base URL is unusable.
    pub fn new(config: &TidalConfig) -> Result<Self, ConfigError> {
        let provider = ProviderId::new(ProviderId::TIDAL)
            .map_err(|e| ConfigError::Invalid { name: "provider id", reason: e.to_string() })?;
        Ok(Self::with_api(ApiClient::new(provider, &config.api_base_url, config.http.clone())?))
    }

    /// A client over an existing [`ApiClient`] (a scripted transport, shared limits).
    pub fn with_api(api: ApiClient) -> Self {
        Self { api, keys: Arc::new(IdempotencyKeys::default()) }
    }

    /// The HTTP client.
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    fn provider(&self) -> &ProviderId {
        self.api.provider()
    }

    fn check_id(&self, endpoint: &str, id: &str) -> Result<(), ProviderError> {
        if is_tidal_id(id) {
            Ok(())
        } else {
            Err(ProviderError::InvalidInput {
                provider: self.provider().clone(),
                endpoint: endpoint.to_owned(),
                detail: format!("{:?} is not a TIDAL id", id.chars().take(64).collect::<String>()),
            })
        }
    }

    fn get(endpoint: &'static str, path: impl Into<String>) -> ApiRequest {
        ApiRequest::get(endpoint, path).header("Accept", JSON_API)
    }

    /// `GET /users/me`: the current user's id.
    pub async fn me(&self, auth: &AuthSession<'_>) -> Result<String, ProviderError> {
        let doc: SingleDocument<UserResource> =
            self.api.json(Some(auth), &Self::get(endpoints::ME, "/users/me")).await?;
        Ok(doc.data.id)
    }

    /// One page of a collection relationship (`cursor` from the previous page's links),
    /// with [`Collection::include`].
    pub async fn collection_page(
        &self,
        auth: &AuthSession<'_>,
        collection: Collection,
        cursor: Option<&str>,
    ) -> Result<RelationshipDocument, ProviderError> {
        let mut request =
            Self::get(collection.list_endpoint(), collection.path()).query("include", collection.include());
        if collection == Collection::Playlists {
            // Every playlist, also those the user keeps in folders.
            request = request.query("collectionView", "FLAT");
        }
        if let Some(cursor) = cursor {
            request = request.query("page[cursor]", cursor);
        }
        self.api.json(Some(auth), &request).await
    }

    /// One page of a playlist's items, in playlist order; with their tracks, artists and
    /// albums when `with_tracks`, identifiers only (`meta.itemId`) otherwise.
    pub async fn playlist_items_page(
        &self,
        auth: &AuthSession<'_>,
        playlist_id: &str,
        cursor: Option<&str>,
        with_tracks: bool,
    ) -> Result<RelationshipDocument, ProviderError> {
        self.check_id(endpoints::PLAYLIST_ITEMS, playlist_id)?;
        let mut request = Self::get(endpoints::PLAYLIST_ITEMS, format!("/playlists/{playlist_id}/relationships/items"));
        if with_tracks {
            request = request.query("include", PLAYLIST_ITEMS_INCLUDE);
        }
        if let Some(cursor) = cursor {
            request = request.query("page[cursor]", cursor);
        }
        self.api.json(Some(auth), &request).await
    }

    /// `GET /tracks?filter[isrc]=…` with the tracks' artists and albums.
    pub async fn tracks_by_isrc(
        &self,
        auth: &AuthSession<'_>,
        isrc: &str,
    ) -> Result<MultiDocument<TrackResource>, ProviderError> {
        let request = Self::get(endpoints::TRACKS, "/tracks")
            .query("filter[isrc]", isrc)
            .query("include", "artists,albums.artists");
        self.api.json(Some(auth), &request).await
    }

    /// `GET /searchResults?filter[query]=…&include=artists`.
    pub async fn search_artists(
        &self,
        auth: &AuthSession<'_>,
        query: &str,
    ) -> Result<MultiDocument<SearchResultsResource>, ProviderError> {
        let request =
            Self::get(endpoints::SEARCH, "/searchResults").query("filter[query]", query).query("include", "artists");
        self.api.json(Some(auth), &request).await
    }

    /// Sends one mutation with its idempotency key, waiting out `409` "in progress".
    async fn mutate(
        &self,
        auth: &AuthSession<'_>,
        method: Method,
        endpoint: &'static str,
        path: String,
        actions: &[u32],
        payload: &Payload,
    ) -> Result<crate::http::ApiResponse, ProviderError> {
        let body = serde_json::to_vec(payload).map_err(|e| ProviderError::Protocol {
            provider: self.provider().clone(),
            endpoint: endpoint.to_owned(),
            detail: format!("the payload does not serialize: {e}"),
        })?;
        let hash = IdempotencyKeys::hash_of(endpoint, &path, actions, &body);
        let key = self.keys.key(hash);
        debug_assert!(key.len() <= MAX_IDEMPOTENCY_KEY);
        let request = ApiRequest::new(method, endpoint, path)
            .header("Accept", JSON_API)
            .header("Content-Type", JSON_API)
            .header("Idempotency-Key", key)
            .json(payload);
        let mut waited = 0;
        loop {
            match self.api.send(Some(auth), &request).await {
                Ok(response) => {
                    self.keys.complete(hash);
                    return Ok(response);
                }
                Err(ProviderError::Conflict { what, .. })
                    if what.contains("IDEMPOTENT_REQUEST_IN_PROGRESS") && waited < IN_PROGRESS_RETRIES =>
                {
                    let wait = self.api.config().backoff_base.max(Duration::from_millis(50)) * 2u32.pow(waited);
                    waited += 1;
                    tracing::info!(
                        endpoint,
                        wait_ms = wait.as_millis() as u64,
                        "idempotent request in progress; waiting"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(ProviderError::Conflict { provider, what }) if what.contains("IDEMPOTENT_REQUEST_IN_PROGRESS") => {
                    return Err(ProviderError::Transient { provider, endpoint: endpoint.to_owned(), detail: what });
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// `POST` to a collection: adds `items` (id, the date to record), at most
    /// [`MUTATION_BATCH`]; `actions` are the batch's action ids (for the idempotency key).
    /// `Ok(None)`: the items were added but the answer could not be read.
    pub async fn collection_add(
        &self,
        auth: &AuthSession<'_>,
        collection: Collection,
        items: &[(String, Option<DateTime<Utc>>)],
        actions: &[u32],
    ) -> Result<Option<AddDocument>, ProviderError> {
        let payload = Payload {
            data: items
                .iter()
                .map(|(id, added_at)| PayloadItem {
                    id: id.clone(),
                    kind: collection.item_type().to_owned(),
                    meta: added_at.map(|at| IdentifierMeta { added_at: Some(at), item_id: None }),
                })
                .collect(),
            meta: None,
        };
        let endpoint = collection.add_endpoint();
        let response =
            self.mutate(auth, Method::POST, endpoint, collection.path().to_owned(), actions, &payload).await?;
        Ok(read_answer(&response))
    }

    /// `DELETE` from a collection: removes `ids`, at most [`MUTATION_BATCH`]. Ids not in
    /// the collection are ignored by the service (JSON:API).
    pub async fn collection_remove(
        &self,
        auth: &AuthSession<'_>,
        collection: Collection,
        ids: &[String],
        actions: &[u32],
    ) -> Result<(), ProviderError> {
        let payload = Payload {
            data: ids
                .iter()
                .map(|id| PayloadItem { id: id.clone(), kind: collection.item_type().to_owned(), meta: None })
                .collect(),
            meta: None,
        };
        let endpoint = collection.remove_endpoint();
        self.mutate(auth, Method::DELETE, endpoint, collection.path().to_owned(), actions, &payload).await.map(drop)
    }

    /// `DELETE /playlists/{id}/relationships/items`: removes the entries `items` (track id,
    /// the entry's `itemId`), at most [`MUTATION_BATCH`].
    pub async fn playlist_remove(
        &self,
        auth: &AuthSession<'_>,
        playlist_id: &str,
        items: &[(String, String)],
        actions: &[u32],
    ) -> Result<(), ProviderError> {
        self.check_id(endpoints::PLAYLIST_ITEMS_REMOVE, playlist_id)?;
        let payload = Payload {
            data: items
                .iter()
                .map(|(track, item)| PayloadItem {
                    id: track.clone(),
                    kind: "tracks".into(),
                    meta: Some(IdentifierMeta { item_id: Some(item.clone()), added_at: None }),
                })
                .collect(),
            meta: None,
        };
        let path = format!("/playlists/{playlist_id}/relationships/items");
        self.mutate(auth, Method::DELETE, endpoints::PLAYLIST_ITEMS_REMOVE, path, actions, &payload).await.map(drop)
    }

    /// `POST /playlists/{id}/relationships/items`: inserts `tracks` (id, the date to
    /// record) in order before the entry `position_before` (at the end when `None`), at
    /// most [`MUTATION_BATCH`]. `Ok(None)`: the items were added but the answer could not
    /// be read.
    pub async fn playlist_add(
        &self,
        auth: &AuthSession<'_>,
        playlist_id: &str,
        tracks: &[(String, Option<DateTime<Utc>>)],
        position_before: Option<&str>,
        actions: &[u32],
    ) -> Result<Option<AddDocument>, ProviderError> {
        self.check_id(endpoints::PLAYLIST_ITEMS_ADD, playlist_id)?;
        let payload = Payload {
            data: tracks
                .iter()
                .map(|(id, added_at)| PayloadItem {
                    id: id.clone(),
                    kind: "tracks".into(),
                    meta: added_at.map(|at| IdentifierMeta { added_at: Some(at), item_id: None }),
                })
                .collect(),
            meta: position_before.map(|p| PositionMeta { position_before: p.to_owned() }),
        };
        let path = format!("/playlists/{playlist_id}/relationships/items");
        let response = self.mutate(auth, Method::POST, endpoints::PLAYLIST_ITEMS_ADD, path, actions, &payload).await?;
        Ok(read_answer(&response))
    }
}

/// The answer of an applied add. One that does not parse is logged, not returned as an
/// error: the add was applied, and an error would invite sending it again.
fn read_answer(response: &crate::http::ApiResponse) -> Option<AddDocument> {
    match response.json::<AddDocument>() {
        Ok(doc) => Some(doc),
        Err(err) => {
            tracing::warn!(error = %err, "an add was applied but its answer does not parse");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_until_the_request_completes() {
        let keys = IdempotencyKeys::default();
        let a = IdempotencyKeys::hash_of("DELETE /x", "/x", &[0, 1], b"{}");
        let b = IdempotencyKeys::hash_of("DELETE /x", "/x", &[0, 2], b"{}");
        assert_ne!(a, b, "action ids are part of the key");
        let first = keys.key(a);
        assert_eq!(first, keys.key(a), "a resend before completion reuses the key");
        assert!(first.len() <= MAX_IDEMPOTENCY_KEY && first.starts_with("dnp-"));
        keys.complete(a);
        assert_ne!(first, keys.key(a), "a deliberate repeat after completion gets a new key");
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_url() {
        assert!(is_tidal_id("75413016"));
        assert!(is_tidal_id("550e8400-e29b-41d4-a716-446655440000"));
        assert!(!is_tidal_id(""));
        assert!(!is_tidal_id("../users/me"));
        assert!(!is_tidal_id("a b"));
        assert!(!is_tidal_id(&"x".repeat(129)));
    }
}
