//! A stateful local emulator of the TIDAL API (`openapi.tidal.com/v2`, JSON:API) and its
//! login and token services (feature `emulator`), for the adapter's tests, the benchmarks
//! and the server's demo mode.
//!
//! It follows `shared/specs/tidal/tidal-api-oas.json` (API 1.10.104) and
//! `PROVIDER-FACTS.md`: the same paths, parameters, limits, JSON:API documents
//! (`data`, `included`, `links`, `meta`), error documents (`{"errors": [{"status", "code",
//! "detail"}]}`) and status codes.
//!
//! ```no_run
//! use std::time::Duration;
//! use dnp_core::ProviderId;
//! use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
//! use dnp_providers::tidal::emulator::TidalEmulator;
//!
//! let emulator = TidalEmulator::start(EmulatorConfig::default())?;
//! let tidal = ProviderId::new(ProviderId::TIDAL)?;
//! emulator.seed_user("alice", &generate_library(&tidal, LibraryShape::DEMO, 1));
//! emulator.register_redirect_uri("http://127.0.0.1:8080/callback/tidal")?;
//! // Point TIDAL_API_BASE_URL at emulator.api_base_url(), TIDAL_AUTH_BASE_URL at
//! // emulator.auth_base_url(), TIDAL_AUTHORIZE_URL at emulator.authorize_url(), and use
//! // emulator.client_id() / client_secret().
//! let (access, _refresh) = emulator.issue_tokens("alice", Duration::from_secs(3600));
//! emulator.faults().rate_limit_next(3, Duration::from_secs(1));
//! # let _ = access;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Endpoints emulated
//!
//! Login and token services (at [`TidalEmulator::authorize_url`] and
//! [`TidalEmulator::auth_base_url`]):
//! - `GET /authorize`: approves at once as the signed-in user ([`TidalEmulator::sign_in_as`],
//!   else the user seeded last). Checks `client_id` and the exact registered
//!   `redirect_uri` (else a 400 page, no redirect), then `response_type=code`, a non-empty
//!   `state`, known third-party scopes, and `code_challenge_method=S256` with a
//!   well-formed challenge (else a redirect with `error=` and `state`).
//! - `POST /v1/oauth2/token` (form-encoded): `authorization_code` (single-use code,
//!   10 minutes, same `redirect_uri`, the PKCE `code_verifier`; client authentication by
//!   `Authorization: Basic`, or `client_id` alone for PKCE) and `refresh_token`, which
//!   answers a new access token and **no** refresh token: the refresh token stays valid
//!   (it stops working when revoked or `refresh_token_lifetime` after the authorization).
//!   Errors are RFC 6749 bodies `{"error", "error_description"}`.
//!
//! API (at [`TidalEmulator::api_base_url`], `/v2`), each with its scope checked (`403
//! Missing required scope`), answering `application/vnd.api+json`:
//! - `GET /users/me` (`user.read`).
//! - `GET /userCollection{Tracks,Albums,Artists,Playlists}/me/relationships/items`
//!   (`collection.read`): identifiers with `meta.addedAt`, newest first (`sort=-addedAt`,
//!   or `addedAt`), 20 a page, `links.next` with an opaque `page[cursor]` and
//!   `links.meta.nextCursor` while more pages exist; `include=items` and nested paths
//!   (`items.artists`, `items.albums.artists`, `items.owners`, `items.collaborators`) put
//!   the resources in `included`, and a resource carries exactly the relationships the
//!   include names. An include path the endpoint cannot resolve, a parameter it does not
//!   know, a bad cursor or sort: `400`.
//! - `POST` / `DELETE` on the same paths (`collection.write`): 1 to 50 items (else `400`),
//!   `application/vnd.api+json` only (else `415`). `POST` takes `meta.addedAt` (the
//!   collection stays sorted by it) and answers the added identifiers with `meta.skipped`
//!   (`NOT_FOUND`, `ALREADY_PRESENT`); `DELETE` ignores members already missing.
//! - `GET /playlists/{id}/relationships/items`: entries in playlist order with
//!   `meta.itemId` and `meta.addedAt`, same paging and includes.
//! - `POST /playlists/{id}/relationships/items` (`playlists.write`, owner or collaborator,
//!   else `403`): 1 to 50 tracks inserted in order before `meta.positionBefore` (an
//!   `itemId`; `400` when it names no entry) or at the end, with `meta.addedAt`; answers the
//!   new entries with their `itemId`s and `meta.skipped` (`NOT_FOUND`).
//! - `DELETE /playlists/{id}/relationships/items`: 1 to 50 entries, each with
//!   `meta.itemId` (else `400`); an item id no longer in the playlist is ignored, one that
//!   holds another track is `400`. Every change sets the playlist's `lastModifiedAt`.
//! - `GET /tracks?filter[isrc]=` / `filter[id]=` with `include=artists,albums,albums.artists`.
//! - `GET /searchResults?filter[query]=&include=artists,tracks`: artists whose normalized
//!   name equals (first) or contains the query, by popularity; tracks by title; 20 each.
//! - Anything else: `404` with a JSON:API error document.
//!
//! Every mutation honours `Idempotency-Key` (at most 128 characters, else `400`): the same
//! key with the same payload within one hour gets the first answer again, marked
//! `Idempotent-Replayed: true` (the emulator's marker; TIDAL documents none), without
//! being applied again; the same key with another payload is `422
//! IDEMPOTENT_REQUEST_PAYLOAD_MISMATCH`.
//!
//! Every request passes the shared [instrumentation](crate::emulator::instrument): the
//! [`FaultInjector`] (scoped to `/v2`: `429` with `Retry-After`, the `x-ratelimit-*`
//! headers and a JSON:API error body; `5xx`; timeouts), the latency, the request log.
//! Access tokens expire after [`EmulatorConfig::access_token_ttl`]; an expired, revoked or
//! unknown token answers `401`.
//!
//! # Simplified (honestly)
//! - Resources carry the attributes the spec marks required, filled plainly (`explicit`
//!   false, `key` `UNKNOWN`, popularity 0.5, a barcode derived from the album id); a
//!   track's artists are in credit order (the API says nothing of roles: the first is the
//!   main artist, the others featured, in both the emulator's state and the adapter).
//! - Cursors are offsets in an opaque form: a list that changes between two pages shifts.
//! - Every playlist is `PUBLIC`; playlists the seeded user does not own belong to a
//!   made-up `curator_…` user, collaborative ones have a made-up `friend_…` collaborator.
//!   A playlist's items are readable by anyone, editable by its owner and collaborators.
//! - Mutations run atomically under one lock, so `409 IDEMPOTENT_REQUEST_IN_PROGRESS`
//!   never happens here (the adapter handles it all the same).
//! - `countryCode`, `locale`, `replaceMedia` and `collectionView` are accepted and
//!   ignored; the catalog is what was seeded (no videos; folders are not emulated).
//! - Not emulated: playback, recommendations, playlist creation and editing of details,
//!   `PATCH` (reordering), folders, the deprecated `userCollections/{id}/relationships/*`
//!   (404), client credentials.

mod api;
mod store;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dnp_core::{LibrarySnapshot, ProviderId};
use rand::RngExt;
use serde_json::json;

use self::api::{ApiError, lock};
use self::store::{ItemRec, Store, UserRec};
use crate::emulator::oauth::{
    AuthorizationServer, AuthorizeOutcome, AuthorizeParams, ClientAuth, GrantError, TokenPair, parse_basic_auth,
};
use crate::emulator::{
    EmulatorConfig, EmulatorError, FaultInjector, FaultRenderer, Instrumentation, Latency, LoggedRequest, RequestLog,
    ServerHandle, instrument, serve_with,
};

/// The user an authorization approves as when nobody signed in and nothing was seeded.
const DEFAULT_USER: &str = "emulator_user";

/// The scopes a third-party app may ask for (the spec's `THIRD_PARTY` access tier).
pub(crate) const SCOPES: &[&str] = &[
    "collection.read",
    "collection.write",
    "entitlements.read",
    "playback",
    "playlists.read",
    "playlists.write",
    "recommendations.read",
    "search.read",
    "search.write",
    "user.read",
];

/// State shared by the routes and the control API.
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) auth: Mutex<AuthorizationServer>,
    signed_in: Mutex<Option<String>>,
}

impl Shared {
    /// Who approves an authorization: the signed-in user, else the user seeded last, else
    /// `emulator_user`.
    fn authorizing_user(&self) -> String {
        if let Some(user) = lock(&self.signed_in).clone() {
            return user;
        }
        lock(&self.store).last_seeded.clone().unwrap_or_else(|| DEFAULT_USER.to_owned())
    }
}

/// A running TIDAL emulator. Dropping it stops the server.
///
/// See the [module documentation](self) for what it emulates.
pub struct TidalEmulator {
    shared: Arc<Shared>,
    instrumentation: Instrumentation,
    base: String,
    server: ServerHandle,
}

impl fmt::Debug for TidalEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TidalEmulator")
            .field("api_base_url", &self.api_base_url())
            .field("client_id", &lock(&self.shared.auth).client_id())
            .finish_non_exhaustive()
    }
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn field(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

async fn authorize(State(app): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let q = pairs(q.unwrap_or_default().as_bytes());
    let params = AuthorizeParams {
        client_id: field(&q, "client_id"),
        response_type: field(&q, "response_type"),
        redirect_uri: field(&q, "redirect_uri"),
        state: field(&q, "state"),
        scope: field(&q, "scope"),
        code_challenge: field(&q, "code_challenge"),
        code_challenge_method: field(&q, "code_challenge_method"),
    };
    let user_id = app.authorizing_user();
    let outcome = lock(&app.auth).authorize(&params, &user_id, SCOPES);
    match outcome {
        AuthorizeOutcome::Redirect(location) => match HeaderValue::from_str(&location) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => (StatusCode::BAD_REQUEST, "Invalid redirect URI").into_response(),
        },
        AuthorizeOutcome::ErrorPage(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

fn grant_error(error: GrantError) -> Response {
    let body = json!({ "error": error.error, "error_description": error.description });
    let mut response = (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A token answer; a refresh answers no refresh token (the old one stays valid).
fn token_response(pair: TokenPair, user_id: &str, with_refresh: bool) -> Response {
    let mut body = json!({
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "scope": pair.scopes.join(" "),
        "expires_in": pair.expires_in.as_secs(),
        "user_id": user_id,
    });
    if with_refresh {
        body["refresh_token"] = json!(pair.refresh_token);
    }
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn token(State(app): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return grant_error(GrantError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let form = pairs(&body);
    let client = match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(value) => match parse_basic_auth(value) {
            Some((client_id, client_secret)) => ClientAuth::Basic { client_id, client_secret },
            None => return grant_error(GrantError::invalid_request("malformed Authorization header")),
        },
        None => field(&form, "client_id").map_or(ClientAuth::None, ClientAuth::PublicId),
    };
    let (result, refreshing) = match field(&form, "grant_type").as_deref() {
        Some("authorization_code") => {
            let Some(code) = field(&form, "code") else {
                return grant_error(GrantError::invalid_request("code must be provided"));
            };
            let redirect_uri = field(&form, "redirect_uri");
            let verifier = field(&form, "code_verifier");
            (lock(&app.auth).exchange_code(&code, redirect_uri.as_deref(), &client, verifier.as_deref()), false)
        }
        Some("refresh_token") => {
            let Some(refresh_token) = field(&form, "refresh_token") else {
                return grant_error(GrantError::invalid_request("refresh_token must be provided"));
            };
            (lock(&app.auth).refresh(&refresh_token, &client), true)
        }
        Some(_) => (Err(GrantError::unsupported_grant_type()), false),
        None => (Err(GrantError::invalid_request("grant_type must be provided")), false),
    };
    match result {
        Ok(pair) => {
            let user_id = lock(&app.auth).validate(Some(&pair.access_token)).map(|i| i.user_id).unwrap_or_default();
            token_response(pair, &user_id, !refreshing)
        }
        Err(error) => grant_error(error),
    }
}

impl TidalEmulator {
    /// Starts an emulator on `127.0.0.1` at a free port, on a thread of its own (usable
    /// from synchronous code and from any tokio runtime).
    ///
    /// # Errors
    /// When the port cannot be bound or the server thread cannot start.
    pub fn start(config: EmulatorConfig) -> io::Result<Self> {
        let provider = ProviderId::new(ProviderId::TIDAL).map_err(io::Error::other)?;
        let faults = FaultInjector::new(config.seed, Some("/v2".to_owned()));
        let client_id: String = {
            let mut rng = <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(config.seed ^ 0x71da1);
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            (0..16).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
        };
        let client_secret: String = {
            let bytes: [u8; 24] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        let mut auth = AuthorizationServer::new(client_id, client_secret, "eyJ", &config, faults.clone());
        // TIDAL: refreshing keeps the refresh token.
        auth.set_rotate_refresh_tokens(false);
        let renderer: FaultRenderer = Arc::new(|kind| ApiError::from_fault(kind).into_response());
        let instrumentation =
            Instrumentation { faults, latency: Latency::new(config.latency), log: RequestLog::new(), renderer };
        let mut store = Store::new(provider, config.seed);
        store.users.insert(DEFAULT_USER.to_owned(), UserRec { username: DEFAULT_USER.into(), ..UserRec::default() });
        let shared = Arc::new(Shared { store: Mutex::new(store), auth: Mutex::new(auth), signed_in: Mutex::new(None) });
        let layer = instrumentation.clone();
        let routes_state = shared.clone();
        let server = serve_with(move |_addr: SocketAddr| {
            let router = Router::new()
                .route("/authorize", get(authorize))
                .route("/v1/oauth2/token", post(token))
                .nest("/v2", api::routes())
                .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Resource not found") })
                .method_not_allowed_fallback(|| async {
                    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
                })
                .with_state(routes_state);
            instrument(router, layer)
        })?;
        let base = format!("http://{}", server.addr());
        Ok(Self { shared, instrumentation, base, server })
    }

    /// The API base URL, `http://127.0.0.1:PORT/v2` (for `TIDAL_API_BASE_URL`).
    pub fn api_base_url(&self) -> String {
        format!("{}/v2", self.base)
    }

    /// The token service base URL, `http://127.0.0.1:PORT/v1/oauth2` (for
    /// `TIDAL_AUTH_BASE_URL`): the token endpoint is `/token` below it.
    pub fn auth_base_url(&self) -> String {
        format!("{}/v1/oauth2", self.base)
    }

    /// The login page, `http://127.0.0.1:PORT/authorize` (for `TIDAL_AUTHORIZE_URL`).
    pub fn authorize_url(&self) -> String {
        format!("{}/authorize", self.base)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The registered client's id (16 characters, derived from the seed).
    pub fn client_id(&self) -> String {
        lock(&self.shared.auth).client_id().to_owned()
    }

    /// The registered client's secret (random for each emulator).
    pub fn client_secret(&self) -> String {
        lock(&self.shared.auth).client_secret().to_owned()
    }

    /// Registers a redirect URI of the client, as in TIDAL's developer dashboard.
    ///
    /// # Errors
    /// [`EmulatorError::InvalidRedirectUri`] for a URI that is not `https://` and not
    /// `http://` to a loopback IP literal.
    pub fn register_redirect_uri(&self, uri: &str) -> Result<(), EmulatorError> {
        lock(&self.shared.auth).register_redirect_uri(uri)
    }

    /// Makes `user_id` the user who approves the next authorizations.
    pub fn sign_in_as(&self, user_id: &str) {
        *lock(&self.shared.signed_in) = Some(user_id.to_owned());
    }

    /// Replaces `user_id`'s library with `library` (creating the user).
    ///
    /// Tracks, albums and artists join the catalog (artist credits are kept in order, by
    /// id). Liked tracks, saved albums and followed artists keep their order and dates
    /// (missing dates are filled in, just older than the item before). Each playlist is
    /// created or replaced: `owned` makes the user its owner, else it belongs to another
    /// (made-up) user; `editable` on a playlist not owned makes the user a collaborator;
    /// `collaborative` without that adds a made-up collaborator. Item ids are kept when
    /// given and unique, else assigned; `version` is replaced by the playlist's
    /// `lastModifiedAt`.
    pub fn seed_user(&self, user_id: &str, library: &LibrarySnapshot) {
        lock(&self.shared.store).seed(user_id, library);
    }

    /// `user_id`'s library as the emulator holds it now, in dnp-core types, as the API
    /// conveys it (credit roles, playlist versions, item ids); empty for an unknown user.
    pub fn library(&self, user_id: &str) -> LibrarySnapshot {
        lock(&self.shared.store).library(user_id)
    }

    /// Issues an access and a refresh token for `user_id` without the OAuth flow (every
    /// third-party scope granted; the access token lasts `ttl`). The refresh token works
    /// with the client id alone (as after PKCE) or with Basic authentication.
    pub fn issue_tokens(&self, user_id: &str, ttl: Duration) -> (String, String) {
        let scopes = SCOPES.iter().map(|s| (*s).to_owned()).collect();
        let pair = lock(&self.shared.auth).issue(user_id, scopes, ttl);
        (pair.access_token, pair.refresh_token)
    }

    /// Issues tokens for `user_id` with only `scopes` (to test scope checks).
    pub fn issue_tokens_with_scopes(&self, user_id: &str, scopes: &[&str], ttl: Duration) -> (String, String) {
        let pair = lock(&self.shared.auth).issue(user_id, scopes.iter().map(|s| (*s).to_owned()).collect(), ttl);
        (pair.access_token, pair.refresh_token)
    }

    /// The fault injector (its convenience methods act on `/v2` only, so OAuth keeps working).
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

    /// Someone else edits `playlist_id` (one of `user_id`'s playlists): a catalog track not
    /// in it is inserted at the front with a new item id, and the playlist's
    /// `lastModifiedAt` changes; the new version is returned.
    ///
    /// # Errors
    /// [`EmulatorError::UnknownUser`], [`EmulatorError::UnknownPlaylist`] (not in the user's
    /// collection), [`EmulatorError::EmptyCatalog`].
    pub fn change_playlist(&self, user_id: &str, playlist_id: &str) -> Result<String, EmulatorError> {
        let mut store = lock(&self.shared.store);
        let user = store.users.get(user_id).ok_or_else(|| EmulatorError::UnknownUser { user_id: user_id.into() })?;
        let unknown = || EmulatorError::UnknownPlaylist { user_id: user_id.into(), playlist_id: playlist_id.into() };
        if !user.playlists.iter().any(|e| e.id == playlist_id) {
            return Err(unknown());
        }
        let in_playlist: std::collections::HashSet<String> =
            store.playlists.get(playlist_id).ok_or_else(unknown)?.items.iter().map(|i| i.track_id.clone()).collect();
        let candidates: Vec<String> = store.tracks.keys().filter(|t| !in_playlist.contains(*t)).cloned().collect();
        let pool = if candidates.is_empty() { store.tracks.keys().cloned().collect() } else { candidates };
        if pool.is_empty() {
            return Err(EmulatorError::EmptyCatalog);
        }
        let track_id = pool[store.rng.random_range(0..pool.len())].clone();
        let item_id = store.new_item_id();
        let now = store.tick();
        let playlist = store.playlists.get_mut(playlist_id).ok_or_else(unknown)?;
        playlist.items.insert(0, ItemRec { item_id, track_id, added_at: now });
        playlist.last_modified_at = now;
        Ok(playlist.version())
    }

    /// Stops the server (dropping the emulator does the same).
    pub fn shutdown(mut self) {
        self.server.shutdown();
    }
}
