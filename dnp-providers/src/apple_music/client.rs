//! [`AppleMusicClient`]: the Apple Music API calls dnp makes, over the shared
//! [`ApiClient`], with both of Apple's tokens.
//!
//! Every request carries the developer token as `Authorization: Bearer` (through the
//! shared stack's [`AuthSession`], which renews it once after a `401`) and the user's
//! Music User Token as the `Music-User-Token` header (a secret header: never printed).
//! Apple answers `403` when it refuses the Music User Token; since a `403` may also refuse
//! one resource (a playlist the API may not edit), the client then checks the token with
//! `GET /v1/me/storefront`: if that is refused too, the user's [`TokenSource`] is asked for
//! a newer token once (another request may have stored one) and the call is retried, else
//! the answer is `NeedsReauth`.

use std::fmt;
use std::sync::Arc;

use dnp_core::{ProviderError, ProviderId, TokenSource};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::auth::{DeveloperTokenSigner, SharedSigner};
use super::config::AppleMusicConfig;
use super::model::{
    LibraryAlbum, LibraryArtist, LibraryPlaylist, LibrarySong, Page, Rating, RatingRequest, SearchResponse,
    StorefrontResponse, TrackReference, TracksRequest, is_safe_id,
};
use crate::http::{ApiClient, ApiRequest, ApiResponse, AuthSession, ConfigError};

/// The endpoint templates, as reported in metrics and errors.
pub mod endpoints {
    /// The user's storefront (checks a Music User Token).
    pub const STOREFRONT: &str = "GET /v1/me/storefront";
    /// Library songs.
    pub const LIBRARY_SONGS: &str = "GET /v1/me/library/songs";
    /// Library albums.
    pub const LIBRARY_ALBUMS: &str = "GET /v1/me/library/albums";
    /// Library artists.
    pub const LIBRARY_ARTISTS: &str = "GET /v1/me/library/artists";
    /// Library playlists.
    pub const LIBRARY_PLAYLISTS: &str = "GET /v1/me/library/playlists";
    /// A library playlist's tracks.
    pub const PLAYLIST_TRACKS: &str = "GET /v1/me/library/playlists/{id}/tracks";
    /// Ratings of catalog songs.
    pub const SONG_RATINGS: &str = "GET /v1/me/ratings/songs";
    /// Ratings of library songs.
    pub const LIBRARY_SONG_RATINGS: &str = "GET /v1/me/ratings/library-songs";
    /// Rate a song.
    pub const RATE: &str = "PUT /v1/me/ratings/{type}/{id}";
    /// Remove a rating.
    pub const UNRATE: &str = "DELETE /v1/me/ratings/{type}/{id}";
    /// Add catalog resources to the library.
    pub const LIBRARY_ADD: &str = "POST /v1/me/library";
    /// Append tracks to a library playlist.
    pub const PLAYLIST_ADD: &str = "POST /v1/me/library/playlists/{id}/tracks";
    /// Catalog search.
    pub const SEARCH: &str = "GET /v1/catalog/{storefront}/search";
    /// Catalog songs by ISRC.
    pub const SONGS_BY_ISRC: &str = "GET /v1/catalog/{storefront}/songs?filter[isrc]";
}

/// The largest page of the library endpoints (`limit` at most 100).
pub const PAGE_SIZE: u32 = 100;
/// Ids per ratings read (`GET /v1/me/ratings/songs?ids=`).
pub const RATINGS_BATCH: usize = 100;
/// Ids per `POST /v1/me/library?ids[songs]=`.
pub const LIBRARY_ADD_BATCH: usize = 100;
/// Tracks per `POST /v1/me/library/playlists/{id}/tracks`.
pub const PLAYLIST_ADD_BATCH: usize = 100;
/// Results of one artist search (`limit` at most 25).
pub const SEARCH_LIMIT: u32 = 25;

/// The Apple Music API calls dnp makes.
#[derive(Clone)]
pub struct AppleMusicClient {
    api: ApiClient,
    signer: SharedSigner,
    storefront: String,
}

impl fmt::Debug for AppleMusicClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppleMusicClient")
            .field("api", &self.api)
            .field("signer", &self.signer)
            .field("storefront", &self.storefront)
            .finish()
    }
}

/// One operation's tokens: the developer token (through the shared [`AuthSession`]) and
/// the connection's Music User Token, read once and shared by concurrent requests.
pub struct UserSession<'a> {
    developer: AuthSession<'a>,
    user: &'a dyn TokenSource,
    current: tokio::sync::Mutex<Option<SecretString>>,
}

impl fmt::Debug for UserSession<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSession").finish_non_exhaustive()
    }
}

impl UserSession<'_> {
    async fn user_token(&self) -> Result<SecretString, ProviderError> {
        let mut current = self.current.lock().await;
        if let Some(token) = &*current {
            return Ok(token.clone());
        }
        let token = self.user.access_token().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// A newer Music User Token after `rejected` was refused (single-flight).
    async fn renew_user_token(&self, rejected: &SecretString) -> Result<SecretString, ProviderError> {
        let mut current = self.current.lock().await;
        if let Some(token) = &*current
            && token.expose_secret() != rejected.expose_secret()
        {
            return Ok(token.clone());
        }
        let token = self.user.refresh_after_unauthorized(rejected).await?;
        *current = Some(token.clone());
        Ok(token)
    }
}

fn is_forbidden(err: &ProviderError) -> bool {
    // The shared stack maps a 403 to `InvalidInput` with a detail starting "forbidden".
    matches!(err, ProviderError::InvalidInput { detail, .. } if detail.starts_with("forbidden"))
}

impl AppleMusicClient {
    /// A client of the API at `config.api_base_url`, with its own developer token signer.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration is unusable.
    pub fn new(config: &AppleMusicConfig) -> Result<Self, ConfigError> {
        let provider = ProviderId::new(ProviderId::APPLE_MUSIC)
            .map_err(|e| ConfigError::Invalid { name: "provider id", reason: e.to_string() })?;
        let signer = Arc::new(DeveloperTokenSigner::new(config)?);
        Ok(Self {
            api: ApiClient::new(provider, &config.api_base_url, config.http.clone())?,
            signer,
            storefront: config.storefront.clone(),
        })
    }

    /// The HTTP client (its stats, its breaker).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The developer token signer.
    pub fn signer(&self) -> &DeveloperTokenSigner {
        &self.signer
    }

    /// The storefront of catalog requests and links.
    pub fn storefront(&self) -> &str {
        &self.storefront
    }

    /// A session for one operation of the connection whose Music User Token `user` gives.
    pub fn session<'a>(&'a self, user: &'a dyn TokenSource) -> UserSession<'a> {
        UserSession { developer: AuthSession::new(&*self.signer), user, current: tokio::sync::Mutex::new(None) }
    }

    fn provider(&self) -> &ProviderId {
        self.api.provider()
    }

    fn check_id(&self, endpoint: &str, id: &str) -> Result<(), ProviderError> {
        if is_safe_id(id) {
            Ok(())
        } else {
            Err(ProviderError::InvalidInput {
                provider: self.provider().clone(),
                endpoint: endpoint.to_owned(),
                detail: format!("{:?} is not an Apple Music id", id.chars().take(64).collect::<String>()),
            })
        }
    }

    async fn send_once(
        &self,
        session: &UserSession<'_>,
        request: &ApiRequest,
        token: SecretString,
    ) -> Result<ApiResponse, ProviderError> {
        let request = request.clone().secret_header("Music-User-Token", token);
        self.api.send(Some(&session.developer), &request).await.map_err(|err| match err {
            // The shared stack gives NeedsReauth after a 401 that a renewed developer
            // token did not cure: the app's key is wrong, not the user's connection.
            ProviderError::NeedsReauth { provider, .. } => ProviderError::InvalidInput {
                provider,
                endpoint: request.endpoint().to_owned(),
                detail: "Apple Music refused the developer token (check APPLE_MUSIC_TEAM_ID, APPLE_MUSIC_KEY_ID and \
                         the private key)"
                    .into(),
            },
            other => other,
        })
    }

    /// Sends `request` with both tokens; see the [module docs](self) for a `403`.
    ///
    /// # Errors
    /// The shared stack's errors; `NeedsReauth` when Apple refuses the Music User Token
    /// and no newer one is available.
    pub async fn send(&self, session: &UserSession<'_>, request: &ApiRequest) -> Result<ApiResponse, ProviderError> {
        let token = session.user_token().await?;
        match self.send_once(session, request, token.clone()).await {
            Err(err) if is_forbidden(&err) => {
                if self.user_token_works(session, &token).await? {
                    return Err(err);
                }
                let fresh = session.renew_user_token(&token).await?;
                self.send_once(session, request, fresh)
                    .await
                    .map_err(|err| if is_forbidden(&err) { self.needs_reauth() } else { err })
            }
            other => other,
        }
    }

    fn needs_reauth(&self) -> ProviderError {
        ProviderError::NeedsReauth {
            provider: self.provider().clone(),
            reason: "Apple Music refused the Music User Token (expired or access removed): connect again".into(),
        }
    }

    async fn user_token_works(&self, session: &UserSession<'_>, token: &SecretString) -> Result<bool, ProviderError> {
        let probe = ApiRequest::get(endpoints::STOREFRONT, "/v1/me/storefront");
        match self.send_once(session, &probe, token.clone()).await {
            Ok(_) => Ok(true),
            Err(err) if is_forbidden(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        session: &UserSession<'_>,
        request: &ApiRequest,
    ) -> Result<T, ProviderError> {
        self.send(session, request).await?.json()
    }

    /// `GET /v1/me/storefront` with `user`'s token alone: checks a new Music User Token.
    ///
    /// # Errors
    /// `NeedsReauth` when Apple refuses it; the shared stack's errors.
    pub async fn check_user_token(&self, user: &dyn TokenSource) -> Result<String, ProviderError> {
        let session = self.session(user);
        let request = ApiRequest::get(endpoints::STOREFRONT, "/v1/me/storefront");
        let response: StorefrontResponse = match self.send_once(&session, &request, user.access_token().await?).await {
            Err(err) if is_forbidden(&err) => return Err(self.needs_reauth()),
            other => other?.json()?,
        };
        response.data.into_iter().next().map(|s| s.id).ok_or_else(|| ProviderError::Protocol {
            provider: self.provider().clone(),
            endpoint: endpoints::STOREFRONT.into(),
            detail: "no storefront in the answer".into(),
        })
    }

    fn library_page(endpoint: &'static str, path: &str, offset: u32, include_catalog: bool) -> ApiRequest {
        let mut request = ApiRequest::get(endpoint, path).query("limit", PAGE_SIZE).query("offset", offset);
        if include_catalog {
            request = request.query("include", "catalog");
        }
        request
    }

    /// One page of `GET /v1/me/library/songs?include=catalog&include[songs]=artists,albums`.
    ///
    /// # Errors
    /// The shared stack's errors; `Protocol` for a body that does not parse.
    pub async fn library_songs(
        &self,
        session: &UserSession<'_>,
        offset: u32,
    ) -> Result<Page<LibrarySong>, ProviderError> {
        let request = Self::library_page(endpoints::LIBRARY_SONGS, "/v1/me/library/songs", offset, true)
            .query("include[songs]", "artists,albums");
        self.json(session, &request).await
    }

    /// One page of `GET /v1/me/library/albums?include=catalog&include[albums]=artists`.
    ///
    /// # Errors
    /// As [`library_songs`](Self::library_songs).
    pub async fn library_albums(
        &self,
        session: &UserSession<'_>,
        offset: u32,
    ) -> Result<Page<LibraryAlbum>, ProviderError> {
        let request = Self::library_page(endpoints::LIBRARY_ALBUMS, "/v1/me/library/albums", offset, true)
            .query("include[albums]", "artists");
        self.json(session, &request).await
    }

    /// One page of `GET /v1/me/library/artists?include=catalog`.
    ///
    /// # Errors
    /// As [`library_songs`](Self::library_songs).
    pub async fn library_artists(
        &self,
        session: &UserSession<'_>,
        offset: u32,
    ) -> Result<Page<LibraryArtist>, ProviderError> {
        let request = Self::library_page(endpoints::LIBRARY_ARTISTS, "/v1/me/library/artists", offset, true);
        self.json(session, &request).await
    }

    /// One page of `GET /v1/me/library/playlists`.
    ///
    /// # Errors
    /// As [`library_songs`](Self::library_songs).
    pub async fn library_playlists(
        &self,
        session: &UserSession<'_>,
        offset: u32,
    ) -> Result<Page<LibraryPlaylist>, ProviderError> {
        let request = Self::library_page(endpoints::LIBRARY_PLAYLISTS, "/v1/me/library/playlists", offset, false);
        self.json(session, &request).await
    }

    /// One page of `GET /v1/me/library/playlists/{id}/tracks?include=catalog…`.
    ///
    /// # Errors
    /// As [`library_songs`](Self::library_songs); `InvalidInput` for a malformed id.
    pub async fn playlist_tracks(
        &self,
        session: &UserSession<'_>,
        playlist_id: &str,
        offset: u32,
    ) -> Result<Page<LibrarySong>, ProviderError> {
        self.check_id(endpoints::PLAYLIST_TRACKS, playlist_id)?;
        let request = Self::library_page(
            endpoints::PLAYLIST_TRACKS,
            &format!("/v1/me/library/playlists/{playlist_id}/tracks"),
            offset,
            true,
        )
        .query("include[songs]", "artists,albums");
        match self.json(session, &request).await {
            // Apple answers 404 for the tracks of an empty playlist.
            Err(ProviderError::NotFound { .. }) if offset == 0 => Ok(Page { data: Vec::new(), next: None, meta: None }),
            other => other,
        }
    }

    /// The ratings of up to [`RATINGS_BATCH`] songs: `GET /v1/me/ratings/songs?ids=` for
    /// catalog ids, `/library-songs` for library ids. Unrated songs are absent.
    ///
    /// # Errors
    /// As [`library_songs`](Self::library_songs).
    pub async fn song_ratings(
        &self,
        session: &UserSession<'_>,
        ids: &[String],
        library: bool,
    ) -> Result<Vec<Rating>, ProviderError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (endpoint, path) = if library {
            (endpoints::LIBRARY_SONG_RATINGS, "/v1/me/ratings/library-songs")
        } else {
            (endpoints::SONG_RATINGS, "/v1/me/ratings/songs")
        };
        let request = ApiRequest::get(endpoint, path).query("ids", ids.join(","));
        match self.json::<Page<Rating>>(session, &request).await {
            Ok(page) => Ok(page.data),
            // Apple answers 404 when none of the ids has a rating.
            Err(ProviderError::NotFound { .. }) => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    fn rating_path(&self, endpoint: &str, song_id: &str) -> Result<String, ProviderError> {
        self.check_id(endpoint, song_id)?;
        let kind = if super::model::is_library_id(song_id) { "library-songs" } else { "songs" };
        Ok(format!("/v1/me/ratings/{kind}/{song_id}"))
    }

    /// `PUT /v1/me/ratings/songs/{id}` with value `-1` (a library id goes to
    /// `/library-songs/{id}`).
    ///
    /// # Errors
    /// `NotFound` for an unknown song; the shared stack's errors.
    pub async fn dislike(&self, session: &UserSession<'_>, song_id: &str) -> Result<(), ProviderError> {
        let path = self.rating_path(endpoints::RATE, song_id)?;
        let request = ApiRequest::new(Method::PUT, endpoints::RATE, path).json(&RatingRequest::dislike());
        self.send(session, &request).await.map(drop)
    }

    /// `DELETE /v1/me/ratings/songs/{id}`.
    ///
    /// # Errors
    /// As [`dislike`](Self::dislike).
    pub async fn clear_rating(&self, session: &UserSession<'_>, song_id: &str) -> Result<(), ProviderError> {
        let path = self.rating_path(endpoints::UNRATE, song_id)?;
        let request = ApiRequest::new(Method::DELETE, endpoints::UNRATE, path);
        self.send(session, &request).await.map(drop)
    }

    /// `POST /v1/me/library?ids[songs]=…` (at most [`LIBRARY_ADD_BATCH`] catalog ids).
    ///
    /// # Errors
    /// The shared stack's errors.
    pub async fn add_songs_to_library(&self, session: &UserSession<'_>, ids: &[String]) -> Result<(), ProviderError> {
        for id in ids {
            self.check_id(endpoints::LIBRARY_ADD, id)?;
        }
        let request =
            ApiRequest::new(Method::POST, endpoints::LIBRARY_ADD, "/v1/me/library").query("ids[songs]", ids.join(","));
        self.send(session, &request).await.map(drop)
    }

    /// `POST /v1/me/library/playlists/{id}/tracks`: appends `song_ids` (catalog or library
    /// ids) at the end, in order.
    ///
    /// # Errors
    /// `InvalidInput` (`forbidden`) for a playlist the API may not edit; the stack's errors.
    pub async fn append_to_playlist(
        &self,
        session: &UserSession<'_>,
        playlist_id: &str,
        song_ids: &[String],
    ) -> Result<(), ProviderError> {
        self.check_id(endpoints::PLAYLIST_ADD, playlist_id)?;
        let mut data = Vec::with_capacity(song_ids.len());
        for id in song_ids {
            self.check_id(endpoints::PLAYLIST_ADD, id)?;
            let kind = if super::model::is_library_id(id) { "library-songs" } else { "songs" };
            data.push(TrackReference { id: id.clone(), kind });
        }
        let request = ApiRequest::new(
            Method::POST,
            endpoints::PLAYLIST_ADD,
            format!("/v1/me/library/playlists/{playlist_id}/tracks"),
        )
        .json(&TracksRequest { data })
        .not_idempotent();
        self.send(session, &request).await.map(drop)
    }

    /// `GET /v1/catalog/{storefront}/search?types=artists&term=`.
    ///
    /// # Errors
    /// The shared stack's errors.
    pub async fn search_artists(
        &self,
        session: &UserSession<'_>,
        term: &str,
        limit: u32,
    ) -> Result<SearchResponse, ProviderError> {
        let request = ApiRequest::get(endpoints::SEARCH, format!("/v1/catalog/{}/search", self.storefront))
            .query("term", term)
            .query("types", "artists")
            .query("limit", limit.clamp(1, SEARCH_LIMIT));
        self.json(session, &request).await
    }

    /// `GET /v1/catalog/{storefront}/songs?filter[isrc]=…&include=artists,albums`.
    ///
    /// # Errors
    /// The shared stack's errors.
    pub async fn songs_by_isrc(
        &self,
        session: &UserSession<'_>,
        isrc: &str,
    ) -> Result<Page<super::model::CatalogSong>, ProviderError> {
        let request = ApiRequest::get(endpoints::SONGS_BY_ISRC, format!("/v1/catalog/{}/songs", self.storefront))
            .query("filter[isrc]", isrc)
            .query("include", "artists,albums");
        self.json(session, &request).await
    }
}
