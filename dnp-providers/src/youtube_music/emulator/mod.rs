//! A stateful local emulator of the YouTube Data API v3 and Google's OAuth 2.0 endpoints
//! (feature `emulator`), for the adapter's tests, the benchmarks and the server's demo
//! mode.
//!
//! It follows the Data API as given in `shared/specs/youtube/youtube-v3-openapi.yaml` and
//! `PROVIDER-FACTS.md`: the same paths, parameters, limits, resource shapes (`kind`,
//! `etag`, `nextPageToken`, `pageInfo`, `items` with `snippet` and `contentDetails`),
//! Google's error bodies and the quota, with the live API's `204 No Content` (not the
//! spec's 200) for `playlistItems.delete`, `subscriptions.delete` and `videos.rate`.
//!
//! ```no_run
//! use std::time::Duration;
//! use dnp_core::ProviderId;
//! use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
//! use dnp_providers::youtube_music::emulator::YouTubeMusicEmulator;
//!
//! let emulator = YouTubeMusicEmulator::start(EmulatorConfig::default())?;
//! let youtube = ProviderId::new(ProviderId::YOUTUBE_MUSIC)?;
//! emulator.seed_user("alice", &generate_library(&youtube, LibraryShape::DEMO, 1));
//! emulator.register_redirect_uri("http://127.0.0.1:8080/callback")?;
//! emulator.set_daily_quota(2_000);
//! // Point YOUTUBE_API_BASE_URL at emulator.api_base_url(), GOOGLE_AUTH_BASE_URL at
//! // emulator.auth_base_url(), and use emulator.client_id() / client_secret().
//! let (access, _refresh) = emulator.issue_tokens("alice", Duration::from_secs(3600));
//! # let _ = access;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Endpoints emulated
//!
//! Google OAuth (at [`YouTubeMusicEmulator::auth_base_url`]):
//! - `GET /o/oauth2/v2/auth`: approves at once as the signed-in user
//!   ([`YouTubeMusicEmulator::sign_in_as`], else the user seeded last), with the shared
//!   [`AuthorizationServer`]'s checks (client id, the exact registered redirect URI, `state`,
//!   known scopes, PKCE S256). `access_type`, `prompt` and `include_granted_scopes` are
//!   accepted. Redirects `302` with `code` and `state`.
//! - `POST /token` (form-encoded; client credentials in the body or as Basic):
//!   `authorization_code` answers `access_token`, `expires_in`, `scope`, `token_type` and
//!   `refresh_token`; `refresh_token` answers the same without `refresh_token`: Google does
//!   not rotate refresh tokens, so the presented one stays valid. Errors are RFC 6749
//!   bodies (`invalid_grant`, `invalid_client` with 401).
//! - `POST /revoke` (`token` in the form or the query): revokes the grant of an access or
//!   refresh token (`200 {}`); an unknown or already revoked token is `400 invalid_token`.
//!
//! Data API (at [`YouTubeMusicEmulator::api_base_url`], `/youtube/v3`); every call needs
//! a bearer token (`401 authError` otherwise) with a YouTube scope (reads: any of
//! `youtube`, `youtube.readonly`, `youtube.force-ssl`; writes: `youtube` or
//! `youtube.force-ssl`; else `403 insufficientPermissions`), and is charged to the quota:
//! - `GET /videos?myRating=like|dislike` (paged) or `?id=a,b` (at most 50), `part` of
//!   `snippet`, `contentDetails` (`duration` in ISO 8601).
//! - `POST /videos/rate?id=&rating=like|dislike|none`: `204`; `404 videoNotFound`.
//! - `GET /playlists?mine=true` (the user's own playlists), `?id=`, `?channelId=`.
//! - `GET /playlistItems?playlistId=` (or `?id=`): `snippet.position`, `resourceId`,
//!   `videoOwnerChannelId`/`Title`; `404 playlistNotFound`, `403
//!   playlistItemsNotAccessible` for another user's (private) playlist.
//! - `POST /playlistItems?part=snippet` with `snippet.playlistId`, `resourceId` and an
//!   optional `position` (`400 invalidPlaylistItemPosition` past the end); `200` with the
//!   new item (a new id). `DELETE /playlistItems?id=`: `204`; `404 playlistItemNotFound`.
//! - `GET /subscriptions?mine=true` (optional `forChannelId=`, `order=alphabetical|relevance`)
//!   or `?id=`; `POST /subscriptions?part=snippet` with `snippet.resourceId.channelId`
//!   (`400 subscriptionDuplicate`, `404 publisherNotFound`, `400 subscriptionForbidden`
//!   for one's own channel); `DELETE /subscriptions?id=`: `204`; `404 subscriptionNotFound`.
//! - `GET /search?type=channel,video&q=`: channels whose artist name is the query first
//!   (`"- Topic"` channels before others), then names containing it, then videos.
//! - Lists: `maxResults` 0 to 50 (1 to 50 for `myRating`), default 5, else `400
//!   invalidParameter`; `pageToken` from `nextPageToken` (a token of another list is `400
//!   invalidPageToken`); `pageInfo.totalResults`; `part` required (`400 required`) and
//!   checked (`400 unknownPart`).
//! - Anything else: `404`.
//!
//! # The quota
//! One project (this emulator) has [`set_daily_quota`](YouTubeMusicEmulator::set_daily_quota)
//! units a day (10,000 by default), shared by every user, reset at midnight Pacific time.
//! Costs are the real ones: 1 unit a list call, 50 a write (`videos.rate`, inserts,
//! deletes), 100 a search. A call the quota cannot pay is refused `403 quotaExceeded`
//! (domain `youtube.quota`) and changes nothing; invalid requests are charged too, as
//! Google does. The day is read from a [`QuotaClock`], the system clock unless a test fixes
//! it with [`set_quota_clock`](YouTubeMusicEmulator::set_quota_clock).
//!
//! # Faults
//! Every request passes the shared [instrumentation](crate::emulator::instrument): the
//! [`FaultInjector`] (scoped to `/youtube/v3`: `429 rateLimitExceeded` with `Retry-After`,
//! `403 quotaExceeded`, `5xx backendError`, timeouts), the latency, the request log.
//! Access tokens expire after [`EmulatorConfig::access_token_ttl`].
//!
//! # Seeding, and what is simplified (honestly)
//! - A seeded track becomes a video of its first artist's `"Artist - Topic"` channel (the
//!   artist's id is the channel id), titled as the track; credits YouTube cannot carry go
//!   into the title as YouTube Music's titles do: `"(feat. B)"` for featured artists the
//!   title does not name, `"(with C)"` for further primary artists. Albums and ISRCs are
//!   dropped (the Data API has neither); durations are kept to the second.
//! - Liked tracks become videos rated "like" in the seeded order (newest first); when
//!   they were liked is not kept (the API does not tell). `disliked` ones are rated
//!   "dislike". Saved albums are dropped: the Data API has no albums.
//! - Followed artists become subscriptions to their `"Artist - Topic"` channels (the
//!   `entry_id`, when given, is the subscription id).
//! - Owned playlists become the user's own (private) playlists with their items (an
//!   item's `item_id`, when given, is kept as its playlist item id). Playlists the user
//!   does not own (followed or collaborative elsewhere) become public playlists of a
//!   made-up channel: the Data API does not list playlists a user saved or collaborates
//!   on, so they are not in [`library`](YouTubeMusicEmulator::library) either.
//! - Playlist versions are the playlist resource's `etag`, which changes with every edit.
//! - Resources carry the fields dnp's model has; thumbnails are empty, descriptions
//!   blank, `categoryId` 10 (Music). Parts like `statistics` are accepted and left out.
//! - The shared OAuth server's redirect URI rules are Spotify's (no `localhost`), stricter
//!   than Google's: register `http://127.0.0.1:PORT/…`.
//! - Not emulated: uploads, comments, channels, captions, live streaming, charts,
//!   `onBehalfOfContentOwner`, `playlistItems.update`, ETag `If-None-Match` requests.

mod accounts;
mod api;
mod render;
mod store;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dnp_core::{LibrarySnapshot, ProviderId};
use rand::RngExt;

use self::api::{ApiError, lock};
use self::store::Store;
use crate::emulator::oauth::AuthorizationServer;
use crate::emulator::{
    EmulatorConfig, EmulatorError, FaultInjector, FaultRenderer, Instrumentation, Latency, LoggedRequest, RequestLog,
    ServerHandle, instrument, serve_with,
};
use crate::youtube_music::quota::QuotaClock;

/// The user an authorization approves as when nobody signed in and nothing was seeded.
const DEFAULT_USER: &str = "emulator_user";

/// State shared by the routes and the control API.
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) auth: Mutex<AuthorizationServer>,
    signed_in: Mutex<Option<String>>,
}

impl Shared {
    /// Who approves an authorization: the signed-in user, else the user seeded last, else
    /// `emulator_user`.
    pub(crate) fn authorizing_user(&self) -> String {
        if let Some(user) = lock(&self.signed_in).clone() {
            return user;
        }
        lock(&self.store).last_seeded.clone().unwrap_or_else(|| DEFAULT_USER.to_owned())
    }
}

/// A running YouTube Data API emulator. Dropping it stops the server.
///
/// See the [module documentation](self) for what it emulates.
pub struct YouTubeMusicEmulator {
    shared: Arc<Shared>,
    instrumentation: Instrumentation,
    api_base: String,
    auth_base: String,
    server: ServerHandle,
}

impl fmt::Debug for YouTubeMusicEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YouTubeMusicEmulator")
            .field("api_base_url", &self.api_base)
            .field("auth_base_url", &self.auth_base)
            .field("client_id", &lock(&self.shared.auth).client_id())
            .finish_non_exhaustive()
    }
}

impl YouTubeMusicEmulator {
    /// Starts an emulator on `127.0.0.1` at a free port, on a thread of its own (usable
    /// from synchronous code and from any tokio runtime), with a quota of 10,000 units.
    ///
    /// # Errors
    /// When the port cannot be bound or the server thread cannot start.
    pub fn start(config: EmulatorConfig) -> io::Result<Self> {
        let provider = ProviderId::new(ProviderId::YOUTUBE_MUSIC).map_err(io::Error::other)?;
        let faults = FaultInjector::new(config.seed, Some("/youtube/v3".to_owned()));
        let client_id: String = {
            let mut rng = <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(config.seed);
            let digits: String = (0..12).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
            let tail: String = (0..32)
                .map(|_| char::from(b"0123456789abcdefghijklmnopqrstuv"[rng.random_range(0..32usize)]))
                .collect();
            format!("{digits}-{tail}.apps.googleusercontent.com")
        };
        let client_secret = crate::emulator::oauth::random_token("GOCSPX-");
        let mut auth = AuthorizationServer::new(client_id, client_secret, "ya29.", &config, faults.clone());
        auth.set_rotate_refresh_tokens(false);
        let renderer: FaultRenderer = Arc::new(|kind| ApiError::from_fault(kind).into_response());
        let instrumentation =
            Instrumentation { faults, latency: Latency::new(config.latency), log: RequestLog::new(), renderer };
        let store = Mutex::new(Store::new(provider, config.seed));
        let auth = Mutex::new(auth);
        let shared = Arc::new(Shared { store, auth, signed_in: Mutex::new(None) });
        let layer = instrumentation.clone();
        let routes_state = shared.clone();
        let server = serve_with(move |_addr: SocketAddr| {
            let router = Router::new()
                .merge(accounts::routes())
                .nest("/youtube/v3", api::routes())
                .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "notFound", "Not Found") })
                .method_not_allowed_fallback(|| async {
                    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "methodNotAllowed", "Method Not Allowed")
                })
                .with_state(routes_state);
            instrument(router, layer)
        })?;
        let auth_base = format!("http://{}", server.addr());
        Ok(Self { shared, instrumentation, api_base: format!("{auth_base}/youtube/v3"), auth_base, server })
    }

    /// The Data API base URL, `http://127.0.0.1:PORT/youtube/v3` (for `YOUTUBE_API_BASE_URL`).
    pub fn api_base_url(&self) -> &str {
        &self.api_base
    }

    /// The OAuth base URL, `http://127.0.0.1:PORT` (for `GOOGLE_AUTH_BASE_URL`):
    /// `/o/oauth2/v2/auth`, `/token` and `/revoke` live under it.
    pub fn auth_base_url(&self) -> &str {
        &self.auth_base
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The OAuth client's id (`…apps.googleusercontent.com`, derived from the seed).
    pub fn client_id(&self) -> String {
        lock(&self.shared.auth).client_id().to_owned()
    }

    /// The OAuth client's secret (`GOCSPX-…`, random for each emulator).
    pub fn client_secret(&self) -> String {
        lock(&self.shared.auth).client_secret().to_owned()
    }

    /// Registers a redirect URI of the client, as in the Google Cloud console.
    ///
    /// # Errors
    /// [`EmulatorError::InvalidRedirectUri`] for a URI the shared rules refuse (see the
    /// module docs: use `http://127.0.0.1:PORT/…` rather than `localhost`).
    pub fn register_redirect_uri(&self, uri: &str) -> Result<(), EmulatorError> {
        lock(&self.shared.auth).register_redirect_uri(uri)
    }

    /// Makes `user_id` the user who approves the next authorizations.
    pub fn sign_in_as(&self, user_id: &str) {
        *lock(&self.shared.signed_in) = Some(user_id.to_owned());
    }

    /// Replaces `user_id`'s library with `library` (creating the user); see the module
    /// docs for how dnp's model maps onto YouTube's.
    pub fn seed_user(&self, user_id: &str, library: &LibrarySnapshot) {
        lock(&self.shared.store).seed(user_id, library);
    }

    /// `user_id`'s library as the Data API exposes it, in dnp-core types with the
    /// adapter's credit rules ([`video_track`](crate::youtube_music::model::video_track)):
    /// liked videos (no `added_at`), subscriptions (with their ids) and the user's own
    /// playlists (with item ids, versions = etags). An empty snapshot for an unknown user.
    pub fn library(&self, user_id: &str) -> LibrarySnapshot {
        lock(&self.shared.store).library(user_id)
    }

    /// The channel id of `user_id` (`UC…`, derived from the user id).
    pub fn user_channel_id(&self, user_id: &str) -> String {
        store::user_channel_id(user_id)
    }

    /// Issues an access and a refresh token for `user_id` without the OAuth flow (every
    /// YouTube scope granted; the access token lasts `ttl`).
    pub fn issue_tokens(&self, user_id: &str, ttl: Duration) -> (String, String) {
        self.issue_tokens_with_scopes(user_id, accounts::SCOPES, ttl)
    }

    /// As [`issue_tokens`](Self::issue_tokens), granting only `scopes`.
    pub fn issue_tokens_with_scopes(&self, user_id: &str, scopes: &[&str], ttl: Duration) -> (String, String) {
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        let pair = lock(&self.shared.auth).issue(user_id, scopes, ttl);
        (pair.access_token, pair.refresh_token)
    }

    /// Sets the project's units a day (counted today's spending stays).
    pub fn set_daily_quota(&self, units: u64) {
        lock(&self.shared.store).quota.daily = units;
    }

    /// Units spent today (Pacific time).
    pub fn quota_used(&self) -> u64 {
        lock(&self.shared.store).quota.used_now()
    }

    /// Makes the quota read the time from `clock` (the system clock by default): a test
    /// that fixes it runs on the same quota day however close to midnight Pacific it runs.
    /// Give the adapter's [`QuotaMeter`](crate::youtube_music::quota::QuotaMeter) the same
    /// clock.
    pub fn set_quota_clock(&self, clock: QuotaClock) {
        lock(&self.shared.store).quota.clock = clock;
    }

    /// Forgets today's spending, as midnight Pacific time does.
    pub fn reset_quota(&self) {
        lock(&self.shared.store).quota.used = 0;
    }

    /// The fault injector (its convenience methods act on `/youtube/v3` only, so OAuth
    /// keeps working).
    pub fn faults(&self) -> &FaultInjector {
        &self.instrumentation.faults
    }

    /// Sets the latency added to every request from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.instrumentation.latency.set(latency);
    }

    /// Every request answered so far, in the order they finished.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.instrumentation.log.entries()
    }

    /// The request log itself (to count or clear it).
    pub fn log(&self) -> &RequestLog {
        &self.instrumentation.log
    }

    /// Someone else edits `playlist_id` (one of `user_id`'s own playlists): a catalog
    /// video not in it is inserted at the front, and the playlist's etag changes; the new
    /// etag is returned.
    ///
    /// # Errors
    /// [`EmulatorError::UnknownUser`], [`EmulatorError::UnknownPlaylist`] (not one of the
    /// user's playlists), [`EmulatorError::EmptyCatalog`].
    pub fn change_playlist(&self, user_id: &str, playlist_id: &str) -> Result<String, EmulatorError> {
        let mut store = lock(&self.shared.store);
        let user = store.users.get(user_id).ok_or_else(|| EmulatorError::UnknownUser { user_id: user_id.into() })?;
        let unknown = || EmulatorError::UnknownPlaylist { user_id: user_id.into(), playlist_id: playlist_id.into() };
        if !user.playlists.iter().any(|p| p == playlist_id) {
            return Err(unknown());
        }
        let playlist = store.playlists.get(playlist_id).ok_or_else(unknown)?;
        let present: std::collections::HashSet<&String> = playlist.items.iter().map(|i| &i.video_id).collect();
        let candidates: Vec<String> = store.videos.keys().filter(|v| !present.contains(v)).cloned().collect();
        let pool: Vec<String> = if candidates.is_empty() { store.videos.keys().cloned().collect() } else { candidates };
        if pool.is_empty() {
            return Err(EmulatorError::EmptyCatalog);
        }
        let video_id = pool[store.rng.random_range(0..pool.len())].clone();
        store.insert_item(playlist_id, &video_id, Some(0)).ok_or_else(unknown)?;
        let playlist = store.playlists.get(playlist_id).ok_or_else(unknown)?;
        Ok(Store::playlist_etag(playlist_id, playlist))
    }

    /// Stops the server (dropping the emulator does the same).
    pub fn shutdown(mut self) {
        self.server.shutdown();
    }
}
