//! A stateful local emulator of the Spotify Web API and accounts service (feature
//! `emulator`), for the adapter's tests, the benchmarks and the server's demo mode.
//!
//! It follows the 2026 Web API as given in `shared/specs/spotify/fixed-spotify-open-api.yml`
//! and `PROVIDER-FACTS.md`: the same paths, parameters, limits, response objects, error
//! bodies (`{"error": {"status": …, "message": …}}`) and status codes.
//!
//! ```no_run
//! use std::time::Duration;
//! use dnp_core::ProviderId;
//! use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
//! use dnp_providers::spotify::emulator::SpotifyEmulator;
//!
//! let emulator = SpotifyEmulator::start(EmulatorConfig::default())?;
//! let spotify = ProviderId::new(ProviderId::SPOTIFY)?;
//! emulator.seed_user("alice", &generate_library(&spotify, LibraryShape::DEMO, 1));
//! emulator.register_redirect_uri("http://127.0.0.1:8080/callback")?;
//! // Point SPOTIFY_API_BASE_URL at emulator.api_base_url(), SPOTIFY_ACCOUNTS_BASE_URL at
//! // emulator.accounts_base_url(), and use emulator.client_id() / client_secret().
//! let (access, _refresh) = emulator.issue_tokens("alice", Duration::from_secs(3600));
//! emulator.faults().rate_limit_next(3, Duration::from_secs(1));
//! # let _ = access;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Endpoints emulated
//!
//! Accounts (at [`SpotifyEmulator::accounts_base_url`]):
//! - `GET /authorize`: approves at once as the signed-in user ([`SpotifyEmulator::sign_in_as`],
//!   else the user seeded last). Checks `client_id` and the exact registered
//!   `redirect_uri` (else a 400 page, no redirect), then `response_type=code`, a non-empty
//!   `state`, known scopes, and `code_challenge_method=S256` with a well-formed challenge
//!   when PKCE is used (else a redirect with `error=` and `state`). Redirects `302` with
//!   `code` and `state`.
//! - `POST /api/token` (form-encoded): `authorization_code` (the code is single-use, expires
//!   after 10 minutes, must come with the same `redirect_uri`; with PKCE the
//!   `code_verifier` must hash to the challenge; client authentication by `Authorization:
//!   Basic`, or `client_id` alone for PKCE) and `refresh_token` (every refresh returns a
//!   new refresh token and spends the old one: reusing it answers `400
//!   {"error":"invalid_grant"}`; refresh tokens stop working 182 days after the original
//!   authorization). Errors are RFC 6749 bodies `{"error", "error_description"}`.
//!
//! Web API (at [`SpotifyEmulator::api_base_url`], `/v1`), each with its scope checked
//! (`403 Insufficient client scope`):
//! - `GET /me`.
//! - `GET /me/tracks`, `GET /me/albums`, `GET /me/playlists`: offset paging, `limit` 1-50
//!   (default 20, else `400 Invalid limit`), `href`, `next`, `previous`, `total`.
//! - `GET /me/following?type=artist`: cursor paging (`after` = the last artist id).
//! - `PUT` / `DELETE /me/library?uris=`: at most 40 URIs (else 400); track, album,
//!   playlist and user URIs (artist URIs refused with 400, as the spec lists none, unless
//!   [`SpotifyEmulator::set_library_accepts_artist_uris`]); `GET /me/library/contains`.
//! - `GET /playlists/{id}` (its first 50 items embedded for the owner or a collaborator
//!   only), `GET /playlists/{id}/items` (at most 50 a page, entries under `items[].item`,
//!   403 unless owner or collaborator), `POST /playlists/{id}/items` (`uris` in the query
//!   or body, at most 100, optional `position`; `201 {"snapshot_id"}`), `DELETE
//!   /playlists/{id}/items` (body `items[].uri`, at most 100, optional `snapshot_id`;
//!   removes every occurrence of each URI; `200 {"snapshot_id"}`).
//! - `GET /search?type=artist,track&q=`: `limit` 1-10 (default 5), `offset` at most 1000;
//!   free words match names and titles, `isrc:`, `artist:`, `track:`, `album:` filters.
//! - `GET /tracks/{id}`, `/artists/{id}`, `/albums/{id}` (the `href`s of other objects).
//! - Deprecated, kept because adapters may fall back to them: `PUT`/`DELETE /me/tracks`
//!   (`ids`, or `timestamped_ids` which restore a save order), `PUT`/`DELETE /me/albums`,
//!   `PUT`/`DELETE /me/following?type=artist|user&ids=` (at most 50, `204`).
//! - Anything else: `404 {"error":{"status":404,"message":"Service not found"}}`.
//!
//! Every request passes the shared [instrumentation](crate::emulator::instrument): the
//! [`FaultInjector`] (scoped to `/v1`: `429` with `Retry-After` and `API rate limit
//! exceeded`, `429` with reason `QUOTA_EXCEEDED`, `5xx`, timeouts), the latency, the
//! request log. Access tokens expire after [`EmulatorConfig::access_token_ttl`]; an
//! expired, revoked or unknown token answers `401` with `The access token expired` or
//! `Invalid access token`.
//!
//! # Simplified (honestly)
//! - Objects carry the fields dnp's model has; fields it lacks are filled plainly:
//!   no images, empty descriptions, `disc_number` 1, `explicit` false, `duration_ms`
//!   `null` for a seeded track without a duration, release dates are
//!   a year derived from the album id, `album_type` is `single` under four known tracks.
//!   Deprecated fields are left out (`track` beside `item`, `tracks` beside `items`,
//!   `popularity`, `genres`, `followers`, `available_markets`).
//! - `market`, `fields`, `additional_types` and `locale` are accepted and ignored.
//! - The catalog is what was seeded: no podcasts or audiobooks (their URIs are
//!   "non-existing ids"); search covers artists and tracks only (other types answer empty
//!   pages), ranks exact names first and ignores `year:` and `genre:` filters.
//! - A stale but once-valid `snapshot_id` is accepted (as Spotify documents); an unknown
//!   one is `400`. A removal that removes nothing keeps the snapshot id.
//! - Saving puts the items of one call first, in the call's order, dated now; already
//!   saved items keep their place. Followed artists are listed in follow order (newest
//!   first), so an `after` cursor naming an artist no longer followed is `400`.
//! - Every playlist is public unless collaborative; anyone may read a playlist's details,
//!   only its owner and collaborators its items. Playlists not owned by the seeded user
//!   belong to a made-up `curator_…` user.
//! - Not emulated: playback, player, recommendations, browse, shows, audiobooks,
//!   playlist creation and details changes, `PUT /playlists/{id}/items` (reorder or
//!   replace), images, Development-Mode user limits.

mod accounts;
mod api;
mod render;
mod store;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dnp_core::{LibrarySnapshot, ProviderId};
use rand::RngExt;

use self::api::{ApiError, lock};
use self::store::{ItemRec, Store, UserRec};
use crate::emulator::oauth::AuthorizationServer;
use crate::emulator::{
    EmulatorConfig, EmulatorError, FaultInjector, FaultRenderer, Instrumentation, Latency, LoggedRequest, RequestLog,
    ServerHandle, instrument, serve_with,
};

/// The user an authorization approves as when nobody signed in and nothing was seeded.
const DEFAULT_USER: &str = "emulator_user";

/// State shared by the routes and the control API.
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) auth: Mutex<AuthorizationServer>,
    pub(crate) api_base: String,
    pub(crate) library_accepts_artist_uris: AtomicBool,
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

/// A running Spotify emulator. Dropping it stops the server.
///
/// See the [module documentation](self) for what it emulates.
pub struct SpotifyEmulator {
    shared: Arc<Shared>,
    instrumentation: Instrumentation,
    accounts_base: String,
    server: ServerHandle,
}

impl fmt::Debug for SpotifyEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpotifyEmulator")
            .field("api_base_url", &self.shared.api_base)
            .field("accounts_base_url", &self.accounts_base)
            .field("client_id", &lock(&self.shared.auth).client_id())
            .finish_non_exhaustive()
    }
}

impl SpotifyEmulator {
    /// Starts an emulator on `127.0.0.1` at a free port, on a thread of its own (usable
    /// from synchronous code and from any tokio runtime).
    ///
    /// # Errors
    /// When the port cannot be bound or the server thread cannot start.
    pub fn start(config: EmulatorConfig) -> io::Result<Self> {
        let provider = ProviderId::new(ProviderId::SPOTIFY).map_err(io::Error::other)?;
        let faults = FaultInjector::new(config.seed, Some("/v1".to_owned()));
        let client_id: String = {
            let mut rng = <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(config.seed);
            (0..32).map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)])).collect()
        };
        let client_secret: String = {
            let bytes: [u8; 16] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        let auth = AuthorizationServer::new(client_id, client_secret, "BQ", &config, faults.clone());
        let renderer: FaultRenderer = Arc::new(|kind| ApiError::from_fault(kind).into_response());
        let instrumentation =
            Instrumentation { faults, latency: Latency::new(config.latency), log: RequestLog::new(), renderer };
        let mut store = Store::new(provider, config.seed);
        store
            .users
            .insert(DEFAULT_USER.to_owned(), UserRec { display_name: "Emulator User".into(), ..UserRec::default() });
        let store = Mutex::new(store);
        let auth = Mutex::new(auth);
        let mut shared_slot = None;
        let layer = instrumentation.clone();
        let server = serve_with(|addr: SocketAddr| {
            let shared = Arc::new(Shared {
                store,
                auth,
                api_base: format!("http://{addr}/v1"),
                library_accepts_artist_uris: AtomicBool::new(false),
                signed_in: Mutex::new(None),
            });
            shared_slot = Some(shared.clone());
            let router = Router::new()
                .merge(accounts::routes())
                .nest("/v1", api::routes())
                .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Service not found") })
                .method_not_allowed_fallback(|| async {
                    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
                })
                .with_state(shared);
            instrument(router, layer)
        })?;
        let shared = shared_slot.ok_or_else(|| io::Error::other("the emulator's router was not built"))?;
        let accounts_base = format!("http://{}", server.addr());
        Ok(Self { shared, instrumentation, accounts_base, server })
    }

    /// The Web API base URL, `http://127.0.0.1:PORT/v1` (for `SPOTIFY_API_BASE_URL`).
    pub fn api_base_url(&self) -> &str {
        &self.shared.api_base
    }

    /// The accounts service base URL, `http://127.0.0.1:PORT` (for
    /// `SPOTIFY_ACCOUNTS_BASE_URL`): `/authorize` and `/api/token` live under it.
    pub fn accounts_base_url(&self) -> &str {
        &self.accounts_base
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The registered client's id (32 hex characters, derived from the seed).
    pub fn client_id(&self) -> String {
        lock(&self.shared.auth).client_id().to_owned()
    }

    /// The registered client's secret (random for each emulator).
    pub fn client_secret(&self) -> String {
        lock(&self.shared.auth).client_secret().to_owned()
    }

    /// Registers a redirect URI of the client, as in Spotify's dashboard.
    ///
    /// # Errors
    /// [`EmulatorError::InvalidRedirectUri`] for a URI Spotify refuses: not `https://` and
    /// not `http://` to a loopback IP literal (`localhost` is refused).
    pub fn register_redirect_uri(&self, uri: &str) -> Result<(), EmulatorError> {
        lock(&self.shared.auth).register_redirect_uri(uri)
    }

    /// Makes `user_id` the user who approves the next authorizations.
    pub fn sign_in_as(&self, user_id: &str) {
        *lock(&self.shared.signed_in) = Some(user_id.to_owned());
    }

    /// Replaces `user_id`'s library with `library` (creating the user).
    ///
    /// Tracks, albums and artists join the catalog (a later seed's version of the same id
    /// replaces it). Liked tracks, saved albums and followed artists keep their order and
    /// dates. Each playlist is created or replaced: `owned` makes the user its owner, else
    /// it belongs to another (made-up) user; `editable` on a playlist not owned makes the
    /// user a collaborator; `editable == false && owned == false` means followed only (its
    /// items answer 403). `collaborative` is kept as given; `version` becomes the
    /// `snapshot_id` (a new one when absent). An owned playlist is always editable.
    pub fn seed_user(&self, user_id: &str, library: &LibrarySnapshot) {
        lock(&self.shared.store).seed(user_id, library);
    }

    /// `user_id`'s library as the emulator holds it now, in dnp-core types, playlist
    /// positions renumbered `0..n` (an empty snapshot for an unknown user).
    pub fn library(&self, user_id: &str) -> LibrarySnapshot {
        lock(&self.shared.store).library(user_id)
    }

    /// Issues an access and a refresh token for `user_id` without the OAuth flow (every
    /// scope granted; the access token lasts `ttl`). The refresh token works with the
    /// client id alone (as after PKCE) or with Basic authentication.
    pub fn issue_tokens(&self, user_id: &str, ttl: Duration) -> (String, String) {
        let scopes = accounts::SCOPES.iter().map(|s| (*s).to_owned()).collect();
        let pair = lock(&self.shared.auth).issue(user_id, scopes, ttl);
        (pair.access_token, pair.refresh_token)
    }

    /// The fault injector (its convenience methods act on `/v1` only, so OAuth keeps working).
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

    /// Makes `PUT`/`DELETE /me/library` accept `spotify:artist:` URIs (default: refused
    /// with 400, as the 2026 spec lists no artist URIs there).
    pub fn set_library_accepts_artist_uris(&self, accept: bool) {
        self.shared.library_accepts_artist_uris.store(accept, Ordering::SeqCst);
    }

    /// Someone else edits `playlist_id` (one of `user_id`'s playlists): a catalog track not
    /// in it is inserted at the front, added by another user, and the playlist gets a new
    /// snapshot id, which is returned.
    ///
    /// # Errors
    /// [`EmulatorError::UnknownUser`], [`EmulatorError::UnknownPlaylist`] (not in the user's
    /// library), [`EmulatorError::EmptyCatalog`].
    pub fn change_playlist(&self, user_id: &str, playlist_id: &str) -> Result<String, EmulatorError> {
        let mut store = lock(&self.shared.store);
        let user = store.users.get(user_id).ok_or_else(|| EmulatorError::UnknownUser { user_id: user_id.into() })?;
        if !user.playlists.iter().any(|p| p == playlist_id) || !store.playlists.contains_key(playlist_id) {
            return Err(EmulatorError::UnknownPlaylist { user_id: user_id.into(), playlist_id: playlist_id.into() });
        }
        let in_playlist: std::collections::HashSet<String> =
            store.playlists[playlist_id].items.iter().map(|i| i.track_id.clone()).collect();
        let candidates: Vec<String> = store.tracks.keys().filter(|t| !in_playlist.contains(*t)).cloned().collect();
        let pool = if candidates.is_empty() { store.tracks.keys().cloned().collect() } else { candidates };
        if pool.is_empty() {
            return Err(EmulatorError::EmptyCatalog);
        }
        let track_id = pool[store.rng.random_range(0..pool.len())].clone();
        let owner = store.playlists[playlist_id].owner.clone();
        let editor = if owner == user_id { format!("friend_of_{user_id}") } else { owner };
        store
            .users
            .entry(editor.clone())
            .or_insert_with(|| UserRec { display_name: store::display_name(&editor), ..UserRec::default() });
        if let Some(playlist) = store.playlists.get_mut(playlist_id) {
            playlist
                .items
                .insert(0, ItemRec { track_id, added_at: Some(chrono::Utc::now()), added_by: editor, item_id: None });
        }
        store
            .bump_snapshot(playlist_id)
            .ok_or_else(|| EmulatorError::UnknownPlaylist { user_id: user_id.into(), playlist_id: playlist_id.into() })
    }

    /// Stops the server (dropping the emulator does the same).
    pub fn shutdown(mut self) {
        self.server.shutdown();
    }
}
