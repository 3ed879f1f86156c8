//! A stateful local emulator of the Apple Music API and of MusicKit JS's `authorize()`
//! (feature `emulator`), for the adapter's tests and the server's demo mode.
//!
//! ```no_run
//! use std::time::Duration;
//! use dnp_core::ProviderId;
//! use dnp_providers::apple_music::emulator::AppleMusicEmulator;
//! use dnp_providers::apple_music::AppleMusicProvider;
//! use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
//!
//! let emulator = AppleMusicEmulator::start(EmulatorConfig::default())?;
//! let apple = ProviderId::new(ProviderId::APPLE_MUSIC)?;
//! emulator.seed_user("alice", &generate_library(&apple, LibraryShape::DEMO, 1));
//! // The adapter signs developer tokens with the emulator's own MusicKit key:
//! let provider = AppleMusicProvider::new(emulator.adapter_config()?)?;
//! let music_user_token = emulator.issue_user_token("alice", Duration::from_secs(3600));
//! emulator.faults().rate_limit_next(3, Duration::from_secs(1));
//! # let _ = (provider, music_user_token);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Endpoints emulated
//! At [`AppleMusicEmulator::api_base_url`] (every `/v1` route checks the developer token:
//! an ES256 JWT whose `kid` is the key id, `iss` the team id, signed by the configured key,
//! not expired, `exp - iat` at most 15,777,000 s; else `401`. Routes under `/v1/me` also
//! need a valid `Music-User-Token` header; else `403`):
//! - `GET /v1/me/storefront`.
//! - `GET /v1/me/library/songs|albums|artists|playlists`: offset paging, `limit` 1-100
//!   (default 25, else `400`), `next` (`…?offset=N`) and `meta.total`; `include=catalog`
//!   embeds the catalog resource in `relationships.catalog.data`, `include[songs]=artists,albums`
//!   and `include[albums]=artists` embed the catalog song's artists and album. Songs are
//!   listed alphabetically by title (as Apple documents), albums newest first.
//! - `GET /v1/me/library/playlists/{id}/tracks` (library songs, same paging and includes;
//!   `404` for an empty playlist, as Apple answers), `POST …/tracks` with
//!   `{"data": [{"id", "type": "songs"|"library-songs"}]}` (1-100, appended at the end,
//!   `204`; `403` when `canEdit` is false).
//! - `POST /v1/me/library?ids[songs]=…&ids[albums]=…` (at most 100 each; `202`).
//! - `GET /v1/me/ratings/songs|library-songs?ids=` (1-100 ids; rated ones listed),
//!   `PUT /v1/me/ratings/songs|library-songs/{id}` with `{"type":"rating","attributes":{"value":-1|1}}`
//!   (`200`), `DELETE` (`204`, also when there was no rating); unknown songs `404`.
//! - `GET /v1/catalog/{storefront}/search?term=&types=artists&limit=` (1-25) and
//!   `GET /v1/catalog/{storefront}/songs?filter[isrc]=`.
//! - Errors are `{"errors": [{"id", "title", "detail", "status", "code"}]}`.
//!
//! `GET /musickit/authorize?redirect_uri=…&state=…` stands in for MusicKit JS: it issues a
//! Music User Token for the signed-in user ([`AppleMusicEmulator::sign_in_as`], else the
//! user seeded last) and redirects (`302`) to `redirect_uri` with `code` (the token) and
//! `state`, so the demo's connect flow works without Apple.
//!
//! Faults come from the shared [`FaultInjector`] (scoped to `/v1`): `429` with
//! `Retry-After`, `5xx`, timeouts. Its [`expire_access_tokens_now`](FaultInjector::expire_access_tokens_now)
//! expires every **developer token** seen so far (the token the adapter renews by itself);
//! [`revoke_all_tokens`](FaultInjector::revoke_all_tokens) revokes every **Music User
//! Token** issued so far (the user must connect again).
//!
//! # Seeding (Apple's data model)
//! A seeded library becomes Apple-shaped: a track's guests are appended to its title as
//! `(feat. …)` when it does not name them, `artistName` is its primary artists joined
//! (`A, B & C`); playlists not owned become catalog playlists (`hasCatalog`), `canEdit`
//! is `editable`, there are no collaborative playlists, the version is `lastModifiedDate`;
//! library songs and playlist entries carry no date added (Apple's API gives none).
//! [`AppleMusicEmulator::library`] returns the state in that form.
//!
//! # Simplified (honestly)
//! - Catalog ids are the seeded ids (Apple's are digits); library ids are `i.`, `l.`, `r.`
//!   plus the catalog id (Apple's are opaque and per user); playlist ids get `p.`.
//! - Library artists are the seeded followed artists (Apple derives them from the songs).
//! - Not emulated: the undocumented playlist-track `DELETE`, album and playlist ratings,
//!   recommendations, recently played, catalog resources other than ISRC lookups and
//!   artist search, storefront-specific catalogs, the `l` (language) parameter.

mod api;
mod store;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use dnp_core::{LibrarySnapshot, ProviderId};
use jsonwebtoken::DecodingKey;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rand::RngExt;
use secrecy::SecretString;

use self::api::{ApiError, lock};
use self::store::{Store, UserRec, UserToken};
use super::AppleMusicConfig;
use crate::emulator::oauth::random_token;
use crate::emulator::{
    EmulatorConfig, EmulatorError, FaultInjector, FaultRenderer, Instrumentation, Latency, LoggedRequest, RequestLog,
    ServerHandle, instrument, serve_with,
};
use crate::http::ConfigError;

const DEFAULT_USER: &str = "emulator_user";

/// State shared by the routes and the control API.
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) faults: FaultInjector,
    pub(crate) team_id: String,
    pub(crate) key_id: String,
    pub(crate) public_key: DecodingKey,
    pub(crate) user_token_ttl: Duration,
    signed_in: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn authorizing_user(&self) -> String {
        if let Some(user) = lock(&self.signed_in).clone() {
            return user;
        }
        lock(&self.store).last_seeded.clone().unwrap_or_else(|| DEFAULT_USER.to_owned())
    }

    pub(crate) fn issue_user_token(&self, user_id: &str, ttl: Duration) -> String {
        let token = random_token("Am");
        let mut store = lock(&self.store);
        store.users.entry(user_id.to_owned()).or_default();
        let now = Instant::now();
        if store.user_tokens.len() > 4096 {
            store.user_tokens.retain(|_, t| t.expires_at > now);
        }
        store.user_tokens.insert(
            token.clone(),
            UserToken {
                user_id: user_id.to_owned(),
                expires_at: now + ttl,
                revocation_generation: self.faults.revocation_generation(),
            },
        );
        token
    }
}

/// A running Apple Music emulator. Dropping it stops the server.
///
/// See the [module documentation](self) for what it emulates.
pub struct AppleMusicEmulator {
    shared: Arc<Shared>,
    instrumentation: Instrumentation,
    private_key: Option<SecretString>,
    base: String,
    server: ServerHandle,
}

impl fmt::Debug for AppleMusicEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppleMusicEmulator")
            .field("api_base_url", &self.base)
            .field("team_id", &self.shared.team_id)
            .field("key_id", &self.shared.key_id)
            .finish_non_exhaustive()
    }
}

/// A fresh P-256 key pair: (PKCS#8 private PEM, SPKI public PEM).
fn generate_key() -> io::Result<(SecretString, String)> {
    loop {
        let bytes: [u8; 32] = rand::random();
        // Almost every 32-byte string is a valid scalar; draw again otherwise.
        let Ok(secret) = p256::SecretKey::from_slice(&bytes) else { continue };
        let private = secret.to_pkcs8_pem(LineEnding::LF).map_err(io::Error::other)?;
        let public = secret.public_key().to_public_key_pem(LineEnding::LF).map_err(io::Error::other)?;
        return Ok((SecretString::from(private.to_string()), public));
    }
}

impl AppleMusicEmulator {
    /// Starts an emulator with a MusicKit key of its own (see
    /// [`private_key_pem`](Self::private_key_pem) and [`adapter_config`](Self::adapter_config)).
    ///
    /// # Errors
    /// When the key cannot be made or the server cannot start.
    pub fn start(config: EmulatorConfig) -> io::Result<Self> {
        let (private, public) = generate_key()?;
        let mut rng = <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(config.seed);
        let mut id = |n: usize| -> String {
            (0..n).map(|_| char::from(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[rng.random_range(0..32)])).collect()
        };
        let (team, key) = (id(10), id(10));
        let mut emulator = Self::start_with_public_key(config, &team, &key, &public)?;
        emulator.private_key = Some(private);
        Ok(emulator)
    }

    /// Starts an emulator that accepts developer tokens of `team_id` and `key_id` signed by
    /// the private key of `public_key_pem` (an SPKI `-----BEGIN PUBLIC KEY-----` PEM).
    ///
    /// # Errors
    /// When the public key does not parse or the server cannot start.
    pub fn start_with_public_key(
        config: EmulatorConfig,
        team_id: &str,
        key_id: &str,
        public_key_pem: &str,
    ) -> io::Result<Self> {
        let provider = ProviderId::new(ProviderId::APPLE_MUSIC).map_err(io::Error::other)?;
        let public_key = DecodingKey::from_ec_pem(public_key_pem.as_bytes()).map_err(io::Error::other)?;
        let faults = FaultInjector::new(config.seed, Some("/v1".to_owned()));
        let renderer: FaultRenderer = Arc::new(|kind| ApiError::from_fault(kind).into_response());
        let instrumentation = Instrumentation {
            faults: faults.clone(),
            latency: Latency::new(config.latency),
            log: RequestLog::new(),
            renderer,
        };
        let mut store = Store::new(provider, config.seed);
        store.users.insert(DEFAULT_USER.to_owned(), UserRec::default());
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            faults,
            team_id: team_id.to_owned(),
            key_id: key_id.to_owned(),
            public_key,
            user_token_ttl: config.access_token_ttl.max(Duration::from_secs(1)),
            signed_in: Mutex::new(None),
        });
        let layer = instrumentation.clone();
        let routes_state = shared.clone();
        let server = serve_with(move |_: SocketAddr| {
            let router = api::routes()
                .fallback(|| async { ApiError::not_found("The requested resource does not exist") })
                .method_not_allowed_fallback(|| async {
                    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "40500", "Method Not Allowed", "Method not allowed")
                })
                .with_state(routes_state);
            instrument(router, layer)
        })?;
        let base = format!("http://{}", server.addr());
        Ok(Self { shared, instrumentation, private_key: None, base, server })
    }

    /// The API base URL, `http://127.0.0.1:PORT` (for `APPLE_MUSIC_API_BASE_URL`; paths
    /// below it start with `/v1`).
    pub fn api_base_url(&self) -> &str {
        &self.base
    }

    /// The MusicKit stand-in, `http://127.0.0.1:PORT/musickit/authorize` (for
    /// `APPLE_MUSIC_CONNECT_URL` in the demo).
    pub fn connect_url(&self) -> String {
        format!("{}/musickit/authorize", self.base)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The team id developer tokens must carry as `iss`.
    pub fn team_id(&self) -> &str {
        &self.shared.team_id
    }

    /// The key id developer tokens must carry as `kid`.
    pub fn key_id(&self) -> &str {
        &self.shared.key_id
    }

    /// The emulator's own MusicKit private key (PKCS#8 PEM), when it made one
    /// ([`start`](Self::start)); `None` with [`start_with_public_key`](Self::start_with_public_key).
    pub fn private_key_pem(&self) -> Option<SecretString> {
        self.private_key.clone()
    }

    /// An adapter configuration pointing at this emulator and signing with its key.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when the emulator was started with someone else's key.
    pub fn adapter_config(&self) -> Result<AppleMusicConfig, ConfigError> {
        let key = self.private_key.clone().ok_or(ConfigError::Missing { name: "APPLE_MUSIC_PRIVATE_KEY" })?;
        AppleMusicConfig::new(self.team_id(), self.key_id(), key, self.connect_url())?
            .with_base_urls(self.api_base_url(), self.connect_url())
    }

    /// Makes `user_id` the user whom the MusicKit stand-in authorizes.
    pub fn sign_in_as(&self, user_id: &str) {
        *lock(&self.shared.signed_in) = Some(user_id.to_owned());
    }

    /// Replaces `user_id`'s library with `library` (creating the user), in Apple's data
    /// model (see the [module docs](self)).
    pub fn seed_user(&self, user_id: &str, library: &LibrarySnapshot) {
        lock(&self.shared.store).seed(user_id, library);
    }

    /// `user_id`'s library as the emulator holds it (an empty snapshot for an unknown user).
    pub fn library(&self, user_id: &str) -> LibrarySnapshot {
        lock(&self.shared.store).library(user_id)
    }

    /// Issues a Music User Token for `user_id` without MusicKit, valid for `ttl`.
    pub fn issue_user_token(&self, user_id: &str, ttl: Duration) -> String {
        self.shared.issue_user_token(user_id, ttl)
    }

    /// Revokes one Music User Token (the user removed the app's access). Returns whether it
    /// was known.
    pub fn revoke_user_token(&self, token: &str) -> bool {
        lock(&self.shared.store).user_tokens.remove(token).is_some()
    }

    /// The fault injector (its convenience methods act on `/v1` only).
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

    /// Someone else edits `playlist_id` (one of `user_id`'s playlists): a catalog song not
    /// in it is put first, and its `lastModifiedDate` (dnp's version) changes, which is
    /// returned.
    ///
    /// # Errors
    /// [`EmulatorError::UnknownUser`], [`EmulatorError::UnknownPlaylist`],
    /// [`EmulatorError::EmptyCatalog`].
    pub fn change_playlist(&self, user_id: &str, playlist_id: &str) -> Result<String, EmulatorError> {
        let mut store = lock(&self.shared.store);
        let user = store.users.get(user_id).ok_or_else(|| EmulatorError::UnknownUser { user_id: user_id.into() })?;
        let unknown = || EmulatorError::UnknownPlaylist { user_id: user_id.into(), playlist_id: playlist_id.into() };
        if !user.playlists.iter().any(|p| p == playlist_id) {
            return Err(unknown());
        }
        let present: std::collections::HashSet<String> =
            store.playlists.get(playlist_id).ok_or_else(unknown)?.tracks.iter().cloned().collect();
        let mut pool: Vec<String> = store.songs.keys().filter(|s| !present.contains(*s)).cloned().collect();
        if pool.is_empty() {
            pool = store.songs.keys().cloned().collect();
        }
        if pool.is_empty() {
            return Err(EmulatorError::EmptyCatalog);
        }
        pool.sort();
        let song = pool[store.rng.random_range(0..pool.len())].clone();
        let playlist = store.playlists.get_mut(playlist_id).ok_or_else(unknown)?;
        playlist.tracks.insert(0, song);
        playlist.last_modified = chrono::Utc::now().max(playlist.last_modified + chrono::Duration::seconds(1));
        Ok(api::timestamp(playlist.last_modified))
    }

    /// Stops the server (dropping the emulator does the same).
    pub fn shutdown(mut self) {
        self.server.shutdown();
    }
}
