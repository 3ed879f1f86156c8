//! The example adapter: a [`Provider`] and a [`ProviderAuth`] for a Deezer-like API,
//! written against `dnp-core`'s public API only.
//!
//! It brings its own small HTTP layer ([`Http`]): a third-party adapter does not depend on
//! `dnp-providers`, so it must itself honour what the [`Provider`] contract asks of every
//! adapter: wait out `429 Retry-After`, retry 5xx and timeouts with backoff, refresh the
//! access token once after a `401`, and stop calling an unavailable service (a circuit
//! breaker that answers `ProviderUnavailable` with a `retry_after`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dnp_core::normalize::normalize_name;
use dnp_core::{
    Action, ActionKind, ActionOutcome, Album, AlbumRef, Artist, ArtistCandidate, ArtistCredit, AuthorizationRequest,
    Batch, Capabilities, CreditRole, FollowedArtist, LibrarySnapshot, LikedTrack, PageSizes, Playlist, PlaylistItem,
    PlaylistRemoval, Progress, ProgressSink, Provider, ProviderAuth, ProviderError, ProviderId, SavedAlbum, Target,
    TokenSet, TokenSource, Track,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Items per page of every list (the API's maximum).
pub(crate) const PAGE: u32 = 50;

/// What the Deezer-like API can do. Library changes take one id a call; playlist entries
/// are removed by their own id, 50 a call, and inserted at a position.
pub(crate) fn capabilities() -> Capabilities {
    Capabilities::builder(PageSizes {
        liked_tracks: PAGE,
        saved_albums: PAGE,
        followed_artists: PAGE,
        playlists: PAGE,
        playlist_items: PAGE,
    })
    .supported(ActionKind::UnlikeTrack, 1)
    .supported(ActionKind::LikeTrack, 1)
    .supported(ActionKind::RemoveAlbum, 1)
    .supported(ActionKind::SaveAlbum, 1)
    .supported(ActionKind::UnfollowArtist, 1)
    .supported(ActionKind::FollowArtist, 1)
    .supported(ActionKind::RemovePlaylistItem, PAGE)
    .supported(ActionKind::InsertPlaylistItem, PAGE)
    .unsupported(ActionKind::DislikeTrack, "the API has no ratings", None)
    .unsupported(ActionKind::ClearTrackRating, "the API has no ratings", None)
    .playlist_removal(PlaylistRemoval::ByItemId)
    .playlist_insert_at_position(true)
    .build()
}

// ---- the HTTP layer ---------------------------------------------------------------------

/// A circuit breaker: opens after `threshold` consecutive failures, lets calls through
/// again `open_for` later, closes on the first success.
#[derive(Debug)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// Retries, `Retry-After`, token refresh and the breaker, over reqwest.
#[derive(Debug)]
pub(crate) struct Http {
    provider: ProviderId,
    base: String,
    client: reqwest::Client,
    breaker: Mutex<Breaker>,
    threshold: u32,
    open_for: Duration,
}

impl Http {
    pub(crate) fn new(provider: ProviderId, base: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            provider,
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().timeout(timeout).build()?,
            breaker: Mutex::new(Breaker { failures: 0, open_until: None }),
            threshold: 5,
            open_for: Duration::from_secs(1),
        })
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn transient(&self, endpoint: &str, detail: String) -> ProviderError {
        ProviderError::Transient { provider: self.provider.clone(), endpoint: endpoint.to_owned(), detail }
    }

    /// Sends `method path?query` with the connection's token; parses the JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        auth: &dyn TokenSource,
        method: reqwest::Method,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        self.call_with(auth, method, endpoint, path, query, true).await
    }

    /// As [`call`](Self::call); a call that is not `idempotent` (a playlist insert) is never
    /// sent twice after a 5xx or a timeout, since it may have been applied: the failure is
    /// returned and the executor marks the action indeterminate.
    pub(crate) async fn call_with<T: DeserializeOwned>(
        &self,
        auth: &dyn TokenSource,
        method: reqwest::Method,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
        idempotent: bool,
    ) -> Result<T, ProviderError> {
        let mut token = auth.access_token().await?;
        let (mut refreshed, mut transient, mut limited) = (false, 0u32, 0u32);
        loop {
            if let Some(until) = self.breaker().open_until {
                let now = Instant::now();
                if now < until {
                    return Err(ProviderError::ProviderUnavailable {
                        provider: self.provider.clone(),
                        retry_after: Some(until - now),
                    });
                }
            }
            let sent = self
                .client
                .request(method.clone(), format!("{}{path}", self.base))
                .query(query)
                .bearer_auth(token.expose_secret())
                .send()
                .await;
            let failure = match sent {
                Ok(r) if r.status().is_success() => {
                    *self.breaker() = Breaker { failures: 0, open_until: None };
                    let body = r.bytes().await.map_err(|e| self.transient(endpoint, e.without_url().to_string()))?;
                    return serde_json::from_slice(&body).map_err(|e| ProviderError::Protocol {
                        provider: self.provider.clone(),
                        endpoint: endpoint.to_owned(),
                        detail: e.to_string(),
                    });
                }
                Ok(r) if r.status() == 429 && limited < 10 => {
                    limited += 1;
                    let wait = r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                    tokio::time::sleep(Duration::from_secs(wait.unwrap_or(1))).await;
                    continue;
                }
                Ok(r) if r.status() == 401 && !refreshed => {
                    refreshed = true;
                    token = auth.refresh_after_unauthorized(&token).await?;
                    continue;
                }
                Ok(r) if r.status().is_server_error() => format!("HTTP {}", r.status().as_u16()),
                Ok(r) => return Err(self.refused(endpoint, r.status().as_u16())),
                Err(e) => e.without_url().to_string(),
            };
            let opened = {
                let mut b = self.breaker();
                b.failures += 1;
                if b.failures >= self.threshold {
                    b.open_until = Some(Instant::now() + self.open_for);
                }
                b.open_until.is_some()
            };
            if opened || transient >= 3 || !idempotent {
                return Err(self.transient(endpoint, failure));
            }
            transient += 1;
            tokio::time::sleep(Duration::from_millis(50 << transient)).await;
        }
    }

    fn refused(&self, endpoint: &str, status: u16) -> ProviderError {
        let provider = self.provider.clone();
        match status {
            401 => {
                ProviderError::NeedsReauth { provider, reason: "the access token was refused after a refresh".into() }
            }
            404 => ProviderError::NotFound { provider, what: endpoint.to_owned() },
            429 => ProviderError::RateLimited { provider, retry_after: None },
            _ => ProviderError::InvalidInput {
                provider,
                endpoint: endpoint.to_owned(),
                detail: format!("HTTP {status}"),
            },
        }
    }
}

// ---- the API's JSON ---------------------------------------------------------------------

#[derive(Deserialize)]
struct Page<T> {
    data: Vec<T>,
    total: u32,
}

#[derive(Deserialize)]
struct Named {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct Contributor {
    id: Option<String>,
    name: String,
    role: String,
}

#[derive(Deserialize)]
struct AlbumJson {
    id: String,
    title: String,
    artist: Option<Named>,
}

#[derive(Deserialize)]
struct TrackJson {
    id: String,
    title: String,
    isrc: Option<String>,
    duration: Option<u32>,
    link: Option<String>,
    contributors: Vec<Contributor>,
    album: Option<AlbumJson>,
    time_add: Option<i64>,
    item_id: Option<String>,
}

#[derive(Deserialize)]
struct SavedAlbumJson {
    id: String,
    title: String,
    contributors: Vec<Named>,
    time_add: Option<i64>,
}

#[derive(Deserialize)]
struct PlaylistJson {
    id: String,
    title: String,
    collaborative: bool,
    checksum: String,
    creator: Named2,
}

#[derive(Deserialize)]
struct Named2 {
    id: String,
}

fn date(t: Option<i64>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
}

impl TrackJson {
    fn to_track(&self) -> Track {
        Track {
            id: self.id.clone(),
            title: self.title.clone(),
            artists: self
                .contributors
                .iter()
                .map(|c| ArtistCredit {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    role: if c.role == "Main" { CreditRole::Primary } else { CreditRole::Featured },
                })
                .collect(),
            album: self.album.as_ref().map(|a| AlbumRef {
                id: a.id.clone(),
                title: a.title.clone(),
                artists: a
                    .artist
                    .iter()
                    .map(|n| ArtistCredit { id: Some(n.id.clone()), name: n.name.clone(), role: CreditRole::Primary })
                    .collect(),
            }),
            isrc: self.isrc.clone(),
            duration_ms: self.duration.map(|s| s * 1000),
            url: self.link.clone(),
        }
    }
}

// ---- the Provider -----------------------------------------------------------------------

/// The example adapter.
#[derive(Debug)]
pub(crate) struct DeezerProvider {
    id: ProviderId,
    http: Http,
}

impl DeezerProvider {
    /// An adapter for the API at `base` (requests time out after `timeout`).
    pub(crate) fn new(base: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let id = ProviderId::new("deezer").unwrap_or_else(|_| unreachable!("a valid id"));
        Ok(Self { http: Http::new(id.clone(), base, timeout)?, id })
    }

    /// Every item of a list, page after page (the first page gives the total).
    async fn list<T: DeserializeOwned>(
        &self,
        auth: &dyn TokenSource,
        endpoint: &'static str,
        path: &str,
        progress: &dyn ProgressSink,
    ) -> Result<Vec<T>, ProviderError> {
        let mut items = Vec::new();
        loop {
            let page: Page<T> = self
                .http
                .call(
                    auth,
                    reqwest::Method::GET,
                    endpoint,
                    path,
                    &[("index", items.len().to_string()), ("limit", PAGE.to_string())],
                )
                .await?;
            let (got, total) = (page.data.len(), page.total);
            items.extend(page.data);
            progress.report(Progress {
                done: items.len() as u64,
                total: Some(u64::from(total).max(items.len() as u64)),
                message: format!("deezer: {path}"),
            });
            if got == 0 || items.len() as u32 >= total {
                return Ok(items);
            }
        }
    }

    /// One call per action for the library endpoints (the API takes one id a call).
    async fn one_by_one(&self, auth: &dyn TokenSource, batch: &Batch) -> Result<Vec<ActionOutcome>, ProviderError> {
        let (method, endpoint, path, param) = match batch.kind {
            ActionKind::UnlikeTrack => {
                (reqwest::Method::DELETE, "DELETE /user/me/tracks", "/user/me/tracks", "track_id")
            }
            ActionKind::LikeTrack => (reqwest::Method::POST, "POST /user/me/tracks", "/user/me/tracks", "track_id"),
            ActionKind::RemoveAlbum => {
                (reqwest::Method::DELETE, "DELETE /user/me/albums", "/user/me/albums", "album_id")
            }
            ActionKind::SaveAlbum => (reqwest::Method::POST, "POST /user/me/albums", "/user/me/albums", "album_id"),
            ActionKind::UnfollowArtist => {
                (reqwest::Method::DELETE, "DELETE /user/me/artists", "/user/me/artists", "artist_id")
            }
            _ => (reqwest::Method::POST, "POST /user/me/artists", "/user/me/artists", "artist_id"),
        };
        let mut outcomes = Vec::with_capacity(batch.actions.len());
        for action in &batch.actions {
            let result: Result<bool, ProviderError> = self
                .http
                .call(auth, method.clone(), endpoint, path, &[(param, action.target.item_id().to_owned())])
                .await;
            match result {
                Ok(_) => outcomes.push(ActionOutcome::confirmed(action.id)),
                // Nothing applied yet and the failure is temporary: the whole batch fails,
                // the executor retries it later.
                Err(e)
                    if outcomes.is_empty() && (e.is_retryable() || matches!(e, ProviderError::NeedsReauth { .. })) =>
                {
                    return Err(e);
                }
                Err(e) => outcomes.push(ActionOutcome::failed(action.id, &e)),
            }
        }
        Ok(outcomes)
    }

    async fn playlist_items(&self, auth: &dyn TokenSource, batch: &Batch) -> Result<Vec<ActionOutcome>, ProviderError> {
        let Some(playlist) = batch.playlist_id.as_deref() else {
            let e = ProviderError::InvalidInput {
                provider: self.id.clone(),
                endpoint: "playlist".into(),
                detail: "no playlist".into(),
            };
            return Ok(batch.actions.iter().map(|a| ActionOutcome::failed(a.id, &e)).collect());
        };
        let path = format!("/playlist/{playlist}/tracks");
        if batch.kind == ActionKind::RemovePlaylistItem {
            let items: Vec<String> = batch
                .actions
                .iter()
                .filter_map(|a| match &a.target {
                    Target::PlaylistItem { item_id, .. } => item_id.clone(),
                    _ => None,
                })
                .collect();
            let _: bool = self
                .http
                .call(
                    auth,
                    reqwest::Method::DELETE,
                    "DELETE /playlist/{id}/tracks",
                    &path,
                    &[("items", items.join(","))],
                )
                .await?;
            return Ok(batch.actions.iter().map(|a| ActionOutcome::confirmed(a.id)).collect());
        }
        // Inserts: one call per action, ascending positions, so each lands where it was.
        let mut ordered: Vec<&Action> = batch.actions.iter().collect();
        ordered.sort_by_key(|a| match &a.target {
            Target::PlaylistItem { position, .. } => *position,
            _ => u32::MAX,
        });
        let mut outcomes = Vec::new();
        for action in ordered {
            let Target::PlaylistItem { track_id, position, .. } = &action.target else { continue };
            let query = [("songs", track_id.clone()), ("position", position.to_string())];
            match self
                .http
                .call_with::<serde_json::Value>(
                    auth,
                    reqwest::Method::POST,
                    "POST /playlist/{id}/tracks",
                    &path,
                    &query,
                    false,
                )
                .await
            {
                Ok(_) => outcomes.push(ActionOutcome::confirmed(action.id)),
                Err(e) if outcomes.is_empty() && e.is_retryable() => return Err(e),
                Err(e) => outcomes.push(ActionOutcome::failed(action.id, &e)),
            }
        }
        // One outcome per action, in the batch's order.
        outcomes.sort_by_key(|o| batch.actions.iter().position(|a| a.id == o.action));
        Ok(outcomes)
    }
}

#[async_trait]
impl Provider for DeezerProvider {
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
        let me: Named2 = self.http.call(auth, reqwest::Method::GET, "GET /user/me", "/user/me", &[]).await?;
        let liked: Vec<TrackJson> = self.list(auth, "GET /user/me/tracks", "/user/me/tracks", progress).await?;
        let albums: Vec<SavedAlbumJson> = self.list(auth, "GET /user/me/albums", "/user/me/albums", progress).await?;
        let artists: Vec<Named> = self.list(auth, "GET /user/me/artists", "/user/me/artists", progress).await?;
        let lists: Vec<PlaylistJson> =
            self.list(auth, "GET /user/me/playlists", "/user/me/playlists", progress).await?;
        let mut playlists = Vec::with_capacity(lists.len());
        for p in lists {
            let path = format!("/playlist/{}/tracks", p.id);
            let tracks: Vec<TrackJson> = self.list(auth, "GET /playlist/{id}/tracks", &path, progress).await?;
            let owned = p.creator.id == me.id;
            playlists.push(Playlist {
                editable: owned || p.collaborative,
                owned,
                collaborative: p.collaborative,
                version: Some(p.checksum),
                items: tracks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| PlaylistItem {
                        position: i as u32,
                        track: t.to_track(),
                        added_at: date(t.time_add),
                        item_id: t.item_id.clone(),
                    })
                    .collect(),
                url: Some(format!("https://www.deezer.example/playlist/{}", p.id)),
                name: p.title,
                id: p.id,
            });
        }
        Ok(LibrarySnapshot {
            provider: self.id.clone(),
            taken_at: Some(chrono::Utc::now()),
            liked_tracks: liked
                .iter()
                .map(|t| LikedTrack {
                    track: t.to_track(),
                    added_at: date(t.time_add),
                    entry_id: None,
                    disliked: false,
                })
                .collect(),
            saved_albums: albums
                .into_iter()
                .map(|a| SavedAlbum {
                    added_at: date(a.time_add),
                    album: Album {
                        url: Some(format!("https://www.deezer.example/album/{}", a.id)),
                        artists: a
                            .contributors
                            .into_iter()
                            .map(|c| ArtistCredit { id: Some(c.id), name: c.name, role: CreditRole::Primary })
                            .collect(),
                        id: a.id,
                        title: a.title,
                    },
                })
                .collect(),
            followed_artists: artists
                .into_iter()
                .map(|a| FollowedArtist {
                    artist: Artist {
                        url: Some(format!("https://www.deezer.example/artist/{}", a.id)),
                        id: a.id,
                        name: a.name,
                    },
                    entry_id: None,
                })
                .collect(),
            playlists,
        })
    }

    async fn apply(&self, auth: &dyn TokenSource, batch: &Batch) -> Result<Vec<ActionOutcome>, ProviderError> {
        match batch.kind {
            ActionKind::RemovePlaylistItem | ActionKind::InsertPlaylistItem => self.playlist_items(auth, batch).await,
            ActionKind::DislikeTrack | ActionKind::ClearTrackRating => {
                Err(ProviderError::Unsupported { provider: self.id.clone(), what: batch.kind.as_str().into() })
            }
            _ => self.one_by_one(auth, batch).await,
        }
    }

    async fn search_artists(
        &self,
        auth: &dyn TokenSource,
        query: &str,
        limit: u32,
    ) -> Result<Vec<ArtistCandidate>, ProviderError> {
        let page: Page<Named> = self
            .http
            .call(
                auth,
                reqwest::Method::GET,
                "GET /search/artist",
                "/search/artist",
                &[("q", query.to_owned()), ("limit", limit.clamp(1, PAGE).to_string())],
            )
            .await?;
        let wanted = normalize_name(query);
        Ok(page
            .data
            .into_iter()
            .map(|a| ArtistCandidate {
                provider: self.id.clone(),
                confidence: if normalize_name(&a.name) == wanted { 1.0 } else { 0.5 },
                detail: None,
                url: Some(format!("https://www.deezer.example/artist/{}", a.id)),
                image_url: None,
                id: a.id,
                name: a.name,
            })
            .collect())
    }

    async fn track_by_isrc(&self, auth: &dyn TokenSource, isrc: &str) -> Result<Option<Track>, ProviderError> {
        let path = format!("/track/isrc:{isrc}");
        match self.http.call::<TrackJson>(auth, reqwest::Method::GET, "GET /track/isrc:{isrc}", &path, &[]).await {
            Ok(t) => Ok(Some(t.to_track())),
            Err(ProviderError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

// ---- OAuth ------------------------------------------------------------------------------

/// The adapter's OAuth: authorization code (no PKCE: the API has none) and refresh.
#[derive(Debug)]
pub(crate) struct DeezerAuth {
    id: ProviderId,
    base: String,
    client: reqwest::Client,
}

impl DeezerAuth {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            id: ProviderId::new("deezer").unwrap_or_else(|_| unreachable!("a valid id")),
            base: base.to_owned(),
            client: reqwest::Client::new(),
        }
    }
}

#[derive(Deserialize)]
struct TokenJson {
    access_token: String,
    refresh_token: Option<String>,
    expires: i64,
}

impl DeezerAuth {
    /// `POST /oauth/token` with `form`; a refused grant means the user must connect again.
    async fn token(&self, form: &[(&str, &str)]) -> Result<TokenSet, ProviderError> {
        let endpoint = "POST /oauth/token";
        let failed =
            |detail: String| ProviderError::Transient { provider: self.id.clone(), endpoint: endpoint.into(), detail };
        let response = self
            .client
            .post(format!("{}/oauth/token", self.base))
            .query(form)
            .send()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        if response.status().is_server_error() {
            return Err(failed(format!("HTTP {}", response.status().as_u16())));
        }
        if !response.status().is_success() {
            return Err(ProviderError::NeedsReauth {
                provider: self.id.clone(),
                reason: "the grant was refused".into(),
            });
        }
        let token: TokenJson = response.json().await.map_err(|e| ProviderError::Protocol {
            provider: self.id.clone(),
            endpoint: endpoint.into(),
            detail: e.without_url().to_string(),
        })?;
        Ok(TokenSet {
            access_token: SecretString::from(token.access_token),
            refresh_token: token.refresh_token.map(SecretString::from),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::seconds(token.expires)),
            scopes: vec!["manage_library".into()],
        })
    }
}

#[async_trait]
impl ProviderAuth for DeezerAuth {
    fn provider(&self) -> &ProviderId {
        &self.id
    }

    fn authorization_request(&self) -> Result<AuthorizationRequest, ProviderError> {
        let state = uuid::Uuid::new_v4().simple().to_string();
        let url = format!("{}/oauth/auth.php?app_id=example&perms=manage_library&state={state}", self.base);
        Ok(AuthorizationRequest { url, state, pkce_verifier: None })
    }

    async fn exchange_code(&self, code: &str, _: Option<&SecretString>) -> Result<TokenSet, ProviderError> {
        self.token(&[("grant_type", "authorization_code"), ("code", code)]).await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())]).await
    }

    async fn revoke(&self, _: &TokenSet) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported { provider: self.id.clone(), what: "token revocation".into() })
    }
}
