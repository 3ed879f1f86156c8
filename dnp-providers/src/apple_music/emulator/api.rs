//! The routes: `/v1/...` (the API) and `/musickit/authorize` (MusicKit's stand-in).

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use dnp_core::normalize::normalize_name;
use serde_json::{Value, json};

use super::Shared;
use super::store::{Store, library_id};
use crate::emulator::FaultKind;
use crate::emulator::oauth::{random_token, with_query};

type App = Arc<Shared>;

/// Most resources a library page holds (`limit` 1-100, default 25).
const MAX_LIMIT: usize = 100;
const DEFAULT_LIMIT: usize = 25;
/// Most ids one ratings read or library add takes.
const MAX_IDS: usize = 100;
/// Most tracks one playlist append takes.
const MAX_TRACKS: usize = 100;
/// Apple's limit on a developer token's validity.
const MAX_TOKEN_TTL: i64 = 15_777_000;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn slug(text: &str) -> String {
    let words: Vec<String> = normalize_name(text).split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect();
    if words.is_empty() { "item".into() } else { words.join("-") }
}

/// A catalog item's page at music.apple.com (storefront `us`).
pub(crate) fn catalog_url(kind: &str, id: &str, name: &str) -> String {
    format!("https://music.apple.com/us/{kind}/{}/{id}", slug(name))
}

pub(crate) fn song_url(id: &str, title: &str) -> String {
    catalog_url("song", id, title)
}

/// An error in Apple's shape: `{"errors": [{"id", "title", "detail", "status", "code"}]}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: Cow<'static, str>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self { status, code, title, detail: detail.into(), retry_after: None }
    }

    fn bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "40005", "Invalid Parameter Value", detail)
    }

    pub(crate) fn not_found(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "40400", "Resource Not Found", detail)
    }

    fn unauthorized(detail: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "40100", "Unauthorized", detail)
    }

    fn forbidden(detail: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "40300", "Forbidden", detail)
    }

    pub(crate) fn from_fault(kind: &FaultKind) -> Self {
        let seconds = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        match *kind {
            FaultKind::RateLimited { retry_after } | FaultKind::QuotaExceeded { retry_after } => Self {
                retry_after: Some(seconds(retry_after)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "42900", "Too Many Requests", "Rate limit exceeded")
            },
            FaultKind::ServerError { status } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Self::new(status, "50000", "Upstream Service Error", "An unexpected error occurred")
            }
            FaultKind::Timeout { .. } => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "50400", "Gateway Timeout", "Timed out")
            }
            FaultKind::Slow { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "50300", "Service Unavailable", "Busy")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let id: String =
            random_token("").chars().filter(char::is_ascii_alphanumeric).take(26).collect::<String>().to_uppercase();
        let body = json!({ "errors": [{
            "id": id,
            "title": self.title,
            "detail": self.detail,
            "status": self.status.as_u16().to_string(),
            "code": self.code,
        }]});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

type ApiResult = Result<Response, ApiError>;

struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Self {
        Self(url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn includes(&self, name: &str, what: &str) -> bool {
        self.list(name).iter().any(|i| i == what)
    }

    fn paging(&self) -> Result<(usize, usize), ApiError> {
        let limit = match self.get("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| ApiError::bad_request("Value of 'limit' must be an integer between 1 and 100"))?,
        };
        let offset = match self.get("offset") {
            None => 0,
            Some(v) => v.parse::<usize>().map_err(|_| ApiError::bad_request("Value of 'offset' must be an integer"))?,
        };
        Ok((limit, offset))
    }
}

/// Checks the developer token: `401` when missing, malformed, not signed by the
/// configured key, with another `kid` or `iss`, expired, valid longer than Apple allows,
/// or expired by the fault injector after it was first seen.
fn check_developer_token(app: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("Missing developer token"))?;
    let generation = app.faults.expiry_generation();
    let now = Utc::now().timestamp();
    if let Some(&(seen_at, exp)) = lock(&app.store).developer_tokens.get(token) {
        if seen_at < generation || exp <= now {
            return Err(ApiError::unauthorized("The developer token expired"));
        }
        return Ok(());
    }
    let invalid = || ApiError::unauthorized("Invalid developer token");
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
    if header.alg != jsonwebtoken::Algorithm::ES256 || header.kid.as_deref() != Some(app.key_id.as_str()) {
        return Err(invalid());
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[app.team_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "iat"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(token, &app.public_key, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::unauthorized("The developer token expired"),
        _ => invalid(),
    })?;
    let (iat, exp) = (claims.claims["iat"].as_i64().unwrap_or(i64::MAX), claims.claims["exp"].as_i64().unwrap_or(0));
    if iat > now + 60 || exp - iat > MAX_TOKEN_TTL {
        return Err(invalid());
    }
    let mut store = lock(&app.store);
    if store.developer_tokens.len() > 4096 {
        store.developer_tokens.retain(|_, (_, exp)| *exp > now);
    }
    store.developer_tokens.insert(token.to_owned(), (generation, exp));
    Ok(())
}

/// Checks the developer token, then the Music User Token: `403` when missing, unknown,
/// expired or revoked. Returns the user.
fn check_user(app: &Shared, headers: &HeaderMap) -> Result<String, ApiError> {
    check_developer_token(app, headers)?;
    let token = headers
        .get("music-user-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| ApiError::forbidden("Missing Music User Token"))?;
    let store = lock(&app.store);
    let record = store.user_tokens.get(token).ok_or_else(|| ApiError::forbidden("Invalid authentication"))?;
    if record.revocation_generation < app.faults.revocation_generation() {
        return Err(ApiError::forbidden("Invalid authentication"));
    }
    if Instant::now() >= record.expires_at {
        return Err(ApiError::forbidden("The Music User Token expired"));
    }
    if !store.users.contains_key(&record.user_id) {
        return Err(ApiError::forbidden("Invalid authentication"));
    }
    Ok(record.user_id.clone())
}

fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// What a request asked to include.
struct Include {
    catalog: bool,
    song_artists: bool,
    song_albums: bool,
    album_artists: bool,
}

impl Include {
    fn of(params: &Params) -> Self {
        Self {
            catalog: params.includes("include", "catalog"),
            song_artists: params.includes("include[songs]", "artists") || params.includes("include", "artists"),
            song_albums: params.includes("include[songs]", "albums") || params.includes("include", "albums"),
            album_artists: params.includes("include[albums]", "artists"),
        }
    }
}

struct Render<'a> {
    store: &'a Store,
}

impl Render<'_> {
    fn artist(&self, id: &str) -> Value {
        let name = self.store.artists.get(id).cloned().unwrap_or_default();
        json!({
            "id": id, "type": "artists", "href": format!("/v1/catalog/us/artists/{id}"),
            "attributes": { "name": name, "url": catalog_url("artist", id, &name), "genreNames": [] },
        })
    }

    fn catalog_album(&self, id: &str, with_artists: bool) -> Value {
        let Some(rec) = self.store.albums.get(id) else {
            return json!({ "id": id, "type": "albums", "href": format!("/v1/catalog/us/albums/{id}") });
        };
        let names: Vec<&str> = rec.artists.iter().map(|c| c.name.as_str()).collect();
        let mut album = json!({
            "id": id, "type": "albums", "href": format!("/v1/catalog/us/albums/{id}"),
            "attributes": {
                "name": rec.title, "artistName": super::store::join_names(&names),
                "url": catalog_url("album", id, &rec.title), "trackCount": 1, "genreNames": [],
                "playParams": { "id": id, "kind": "album" },
            },
        });
        if with_artists {
            let artists: Vec<Value> =
                rec.artists.iter().filter_map(|c| c.id.as_deref()).map(|a| self.artist(a)).collect();
            album["relationships"] =
                json!({ "artists": { "href": format!("/v1/catalog/us/albums/{id}/artists"), "data": artists } });
        }
        album
    }

    fn catalog_song(&self, id: &str, include: &Include) -> Value {
        let Some(song) = self.store.songs.get(id) else {
            return json!({ "id": id, "type": "songs", "href": format!("/v1/catalog/us/songs/{id}") });
        };
        let mut value = json!({
            "id": id, "type": "songs", "href": format!("/v1/catalog/us/songs/{id}"),
            "attributes": {
                "name": song.title, "artistName": song.artist_name,
                "albumName": song.album.as_ref().and_then(|a| self.store.albums.get(a)).map(|a| a.title.clone()),
                "isrc": song.isrc, "durationInMillis": song.duration_ms, "url": song_url(id, &song.title),
                "trackNumber": 1, "discNumber": 1, "genreNames": [], "hasLyrics": false,
                "playParams": { "id": id, "kind": "song" },
            },
        });
        let mut relationships = serde_json::Map::new();
        if include.song_artists {
            let artists: Vec<Value> =
                song.credits.iter().filter_map(|c| c.id.as_deref()).map(|a| self.artist(a)).collect();
            relationships.insert(
                "artists".into(),
                json!({ "href": format!("/v1/catalog/us/songs/{id}/artists"), "data": artists }),
            );
        }
        if include.song_albums {
            let albums: Vec<Value> = song.album.iter().map(|a| self.catalog_album(a, true)).collect();
            relationships.insert(
                "albums".into(),
                json!({ "href": format!("/v1/catalog/us/songs/{id}/albums"), "data": albums }),
            );
        }
        if !relationships.is_empty() {
            value["relationships"] = Value::Object(relationships);
        }
        value
    }

    fn library_song(&self, catalog_id: &str, include: &Include) -> Value {
        let lid = library_id("i", catalog_id);
        let song = self.store.songs.get(catalog_id);
        let mut value = json!({
            "id": lid, "type": "library-songs", "href": format!("/v1/me/library/songs/{lid}"),
            "attributes": {
                "name": song.map(|s| s.title.clone()), "artistName": song.map(|s| s.artist_name.clone()),
                "albumName": song.and_then(|s| s.album.as_ref()).and_then(|a| self.store.albums.get(a)).map(|a| a.title.clone()),
                "durationInMillis": song.and_then(|s| s.duration_ms), "trackNumber": 1, "discNumber": 1,
                "genreNames": [], "hasLyrics": false,
                "playParams": { "id": lid, "kind": "song", "isLibrary": true, "reporting": true, "catalogId": catalog_id },
            },
        });
        if include.catalog {
            value["relationships"] = json!({ "catalog": {
                "href": format!("/v1/me/library/songs/{lid}/catalog"),
                "data": [self.catalog_song(catalog_id, include)],
            }});
        }
        value
    }

    fn library_album(&self, catalog_id: &str, added: Option<DateTime<Utc>>, include: &Include) -> Value {
        let lid = library_id("l", catalog_id);
        let catalog = self.catalog_album(catalog_id, include.album_artists);
        let mut value = json!({
            "id": lid, "type": "library-albums", "href": format!("/v1/me/library/albums/{lid}"),
            "attributes": {
                "name": catalog["attributes"]["name"], "artistName": catalog["attributes"]["artistName"],
                "dateAdded": added.map(timestamp), "trackCount": 1, "genreNames": [],
                "playParams": { "id": lid, "kind": "album", "isLibrary": true },
            },
        });
        if include.catalog {
            value["relationships"] =
                json!({ "catalog": { "href": format!("/v1/me/library/albums/{lid}/catalog"), "data": [catalog] } });
        }
        value
    }

    fn library_artist(&self, catalog_id: &str, include: &Include) -> Value {
        let lid = library_id("r", catalog_id);
        let name = self.store.artists.get(catalog_id).cloned().unwrap_or_default();
        let mut value = json!({
            "id": lid, "type": "library-artists", "href": format!("/v1/me/library/artists/{lid}"),
            "attributes": { "name": name },
        });
        if include.catalog {
            value["relationships"] = json!({ "catalog": {
                "href": format!("/v1/me/library/artists/{lid}/catalog"), "data": [self.artist(catalog_id)],
            }});
        }
        value
    }

    fn library_playlist(&self, id: &str) -> Value {
        let Some(rec) = self.store.playlists.get(id) else {
            return json!({ "id": id, "type": "library-playlists" });
        };
        let mut play = json!({ "id": id, "kind": "playlist", "isLibrary": true });
        if rec.has_catalog {
            play["globalId"] = json!(format!("pl.{}", id.trim_start_matches("p.")));
        }
        json!({
            "id": id, "type": "library-playlists", "href": format!("/v1/me/library/playlists/{id}"),
            "attributes": {
                "name": rec.name, "canEdit": rec.can_edit, "hasCatalog": rec.has_catalog, "isPublic": false,
                "dateAdded": timestamp(rec.date_added), "lastModifiedDate": timestamp(rec.last_modified),
                "description": { "standard": "" }, "playParams": play,
            },
        })
    }
}

/// A page of `items` (already rendered lazily by `render`), with `next` and `meta.total`.
fn page<T>(path: &str, params: &Params, items: &[T], render: impl Fn(&T) -> Value) -> Result<Value, ApiError> {
    let (limit, offset) = params.paging()?;
    let data: Vec<Value> = items.iter().skip(offset).take(limit).map(render).collect();
    let mut body = json!({ "data": data, "meta": { "total": items.len() } });
    if offset + limit < items.len() {
        body["next"] = json!(format!("{path}?offset={}", offset + limit));
    }
    Ok(body)
}

pub(crate) fn routes() -> Router<App> {
    use axum::routing::{get, post, put};
    Router::new()
        .route("/musickit/authorize", get(musickit_authorize))
        .route("/v1/me/storefront", get(storefront))
        .route("/v1/me/library", post(library_add))
        .route("/v1/me/library/songs", get(library_songs))
        .route("/v1/me/library/albums", get(library_albums))
        .route("/v1/me/library/artists", get(library_artists))
        .route("/v1/me/library/playlists", get(library_playlists))
        .route("/v1/me/library/playlists/{id}/tracks", get(playlist_tracks).post(playlist_append))
        .route("/v1/me/ratings/{kind}", get(ratings))
        .route("/v1/me/ratings/{kind}/{id}", put(rate).delete(unrate))
        .route("/v1/catalog/{storefront}/search", get(search))
        .route("/v1/catalog/{storefront}/songs", get(catalog_songs))
}

/// MusicKit JS's `authorize()`, emulated: issues a Music User Token for the signed-in user
/// (else the user seeded last) and sends the browser back to `redirect_uri` with `code`
/// (the token) and `state`.
async fn musickit_authorize(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q);
    let Some(redirect) =
        params.get("redirect_uri").filter(|r| url::Url::parse(r).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
    else {
        return (StatusCode::BAD_REQUEST, "MusicKit emulator: redirect_uri (an http(s) URL) is required")
            .into_response();
    };
    let Some(state) = params.get("state").filter(|s| !s.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "MusicKit emulator: state is required").into_response();
    };
    let user = app.authorizing_user();
    let token = app.issue_user_token(&user, app.user_token_ttl);
    let location = with_query(redirect, &[("code", &token), ("state", state)]);
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn storefront(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    check_user(&app, &headers)?;
    Ok(ok(json!({ "data": [{
        "id": "us", "type": "storefronts", "href": "/v1/storefronts/us",
        "attributes": { "name": "United States", "defaultLanguageTag": "en-US", "supportedLanguageTags": ["en-US", "es-MX"] },
    }]})))
}

async fn library_songs(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let user = check_user(&app, &headers)?;
    let params = Params::parse(q);
    let include = Include::of(&params);
    let store = lock(&app.store);
    let render = Render { store: &store };
    let songs = store.users.get(&user).map(|u| u.songs.clone()).unwrap_or_default();
    Ok(ok(page("/v1/me/library/songs", &params, &songs, |id| render.library_song(id, &include))?))
}

async fn library_albums(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let user = check_user(&app, &headers)?;
    let params = Params::parse(q);
    let include = Include::of(&params);
    let store = lock(&app.store);
    let render = Render { store: &store };
    let albums = store.users.get(&user).map(|u| u.albums.clone()).unwrap_or_default();
    Ok(ok(page("/v1/me/library/albums", &params, &albums, |(id, added)| render.library_album(id, *added, &include))?))
}

async fn library_artists(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let user = check_user(&app, &headers)?;
    let params = Params::parse(q);
    let include = Include::of(&params);
    let store = lock(&app.store);
    let render = Render { store: &store };
    let artists = store.users.get(&user).map(|u| u.artists.clone()).unwrap_or_default();
    Ok(ok(page("/v1/me/library/artists", &params, &artists, |id| render.library_artist(id, &include))?))
}

async fn library_playlists(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let user = check_user(&app, &headers)?;
    let params = Params::parse(q);
    let store = lock(&app.store);
    let render = Render { store: &store };
    let playlists = store.users.get(&user).map(|u| u.playlists.clone()).unwrap_or_default();
    Ok(ok(page("/v1/me/library/playlists", &params, &playlists, |id| render.library_playlist(id))?))
}

fn user_playlist<'a>(store: &'a Store, user: &str, id: &str) -> Result<&'a super::store::PlaylistRec, ApiError> {
    let in_library = store.users.get(user).is_some_and(|u| u.playlists.iter().any(|p| p == id));
    store.playlists.get(id).filter(|_| in_library).ok_or_else(|| ApiError::not_found("No related resources found"))
}

async fn playlist_tracks(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let user = check_user(&app, &headers)?;
    let params = Params::parse(q);
    let include = Include::of(&params);
    let store = lock(&app.store);
    let tracks = user_playlist(&store, &user, &id)?.tracks.clone();
    if tracks.is_empty() {
        // Apple answers 404 for the tracks of an empty playlist.
        return Err(ApiError::not_found("No related resources found for tracks"));
    }
    let render = Render { store: &store };
    let path = format!("/v1/me/library/playlists/{id}/tracks");
    Ok(ok(page(&path, &params, &tracks, |t| render.library_song(t, &include))?))
}

async fn playlist_append(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let user = check_user(&app, &headers)?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("The request body is not valid JSON"))?;
    let data = body.get("data").and_then(Value::as_array).ok_or_else(|| ApiError::bad_request("`data` is required"))?;
    if data.is_empty() || data.len() > MAX_TRACKS {
        return Err(ApiError::bad_request("`data` must hold 1 to 100 tracks"));
    }
    let mut store = lock(&app.store);
    let rec = user_playlist(&store, &user, &id)?;
    if !rec.can_edit {
        return Err(ApiError::forbidden("This playlist cannot be edited"));
    }
    let mut ids = Vec::with_capacity(data.len());
    for item in data {
        let (Some(tid), Some(kind)) =
            (item.get("id").and_then(Value::as_str), item.get("type").and_then(Value::as_str))
        else {
            return Err(ApiError::bad_request("each track needs `id` and `type`"));
        };
        let catalog = match kind {
            "songs" => tid.to_owned(),
            "library-songs" => tid.strip_prefix("i.").unwrap_or(tid).to_owned(),
            _ => return Err(ApiError::bad_request(format!("unsupported track type `{kind}`"))),
        };
        if !store.songs.contains_key(&catalog) {
            return Err(ApiError::bad_request(format!("unknown song `{tid}`")));
        }
        ids.push(catalog);
    }
    if let Some(rec) = store.playlists.get_mut(&id) {
        rec.tracks.extend(ids);
        rec.last_modified = Utc::now().max(rec.last_modified + chrono::Duration::seconds(1));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn library_add(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let user = check_user(&app, &headers)?;
    let params = Params::parse(q);
    let (songs, albums) = (params.list("ids[songs]"), params.list("ids[albums]"));
    if songs.is_empty() && albums.is_empty() {
        return Err(ApiError::bad_request("at least one of ids[songs] or ids[albums] is required"));
    }
    if songs.len() > MAX_IDS || albums.len() > MAX_IDS {
        return Err(ApiError::bad_request("at most 100 ids of each type"));
    }
    let mut store = lock(&app.store);
    if let Some(bad) = songs
        .iter()
        .find(|s| !store.songs.contains_key(*s))
        .or_else(|| albums.iter().find(|a| !store.albums.contains_key(*a)))
    {
        return Err(ApiError::bad_request(format!("unknown id `{bad}`")));
    }
    store.add_songs(&user, &songs);
    if let Some(u) = store.users.get_mut(&user) {
        for album in albums {
            if !u.albums.iter().any(|(a, _)| *a == album) {
                u.albums.insert(0, (album, Some(Utc::now())));
            }
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The catalog id a rating path or id list names: `songs` take catalog ids,
/// `library-songs` library ids of songs in the user's library.
fn rated_song(store: &Store, user: &str, kind: &str, id: &str) -> Result<Option<String>, ApiError> {
    match kind {
        "songs" => Ok(store.songs.contains_key(id).then(|| id.to_owned())),
        "library-songs" => {
            let catalog = id.strip_prefix("i.").unwrap_or("");
            Ok(store.users.get(user).filter(|u| u.songs.iter().any(|s| s == catalog)).map(|_| catalog.to_owned()))
        }
        _ => Err(ApiError::not_found(format!("ratings of `{kind}` are not emulated"))),
    }
}

fn rating_json(kind: &str, id: &str, value: i8) -> Value {
    json!({ "id": id, "type": "ratings", "href": format!("/v1/me/ratings/{kind}/{id}"), "attributes": { "value": value } })
}

async fn ratings(
    State(app): State<App>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let user = check_user(&app, &headers)?;
    let ids = Params::parse(q).list("ids");
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(ApiError::bad_request("`ids` must name 1 to 100 resources"));
    }
    let store = lock(&app.store);
    let mut data = Vec::new();
    for id in &ids {
        if let Some(catalog) = rated_song(&store, &user, &kind, id)?
            && let Some(value) = store.users.get(&user).and_then(|u| u.ratings.get(&catalog))
        {
            data.push(rating_json(&kind, id, *value));
        }
    }
    Ok(ok(json!({ "data": data })))
}

async fn rate(
    State(app): State<App>,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let user = check_user(&app, &headers)?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("The request body is not valid JSON"))?;
    let value = body.pointer("/attributes/value").and_then(Value::as_i64).filter(|v| *v == 1 || *v == -1);
    let (Some(value), Some("rating")) = (value, body.get("type").and_then(Value::as_str)) else {
        return Err(ApiError::bad_request("a rating is {\"type\": \"rating\", \"attributes\": {\"value\": 1 or -1}}"));
    };
    let mut store = lock(&app.store);
    let catalog =
        rated_song(&store, &user, &kind, &id)?.ok_or_else(|| ApiError::not_found(format!("no {kind} `{id}`")))?;
    if let Some(u) = store.users.get_mut(&user) {
        u.ratings.insert(catalog, value as i8);
    }
    Ok(ok(json!({ "data": [rating_json(&kind, &id, value as i8)] })))
}

async fn unrate(State(app): State<App>, headers: HeaderMap, Path((kind, id)): Path<(String, String)>) -> ApiResult {
    let user = check_user(&app, &headers)?;
    let mut store = lock(&app.store);
    let catalog =
        rated_song(&store, &user, &kind, &id)?.ok_or_else(|| ApiError::not_found(format!("no {kind} `{id}`")))?;
    if let Some(u) = store.users.get_mut(&user) {
        u.ratings.remove(&catalog);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn search(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    check_developer_token(&app, &headers)?;
    let params = Params::parse(q);
    let term = normalize_name(params.get("term").unwrap_or(""));
    if term.is_empty() {
        return Err(ApiError::bad_request("`term` is required"));
    }
    let limit = match params.get("limit") {
        None => 5,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=25).contains(l))
            .ok_or_else(|| ApiError::bad_request("Value of 'limit' must be between 1 and 25"))?,
    };
    let store = lock(&app.store);
    let render = Render { store: &store };
    let mut hits: Vec<(&String, &String)> =
        store.artists.iter().filter(|(_, name)| normalize_name(name).contains(&term)).collect();
    hits.sort_by_key(|(id, name)| (normalize_name(name) != term, name.len(), (*id).clone()));
    if !params.includes("types", "artists") || hits.is_empty() {
        return Ok(ok(json!({ "results": {} })));
    }
    let data: Vec<Value> = hits.iter().take(limit).map(|(id, _)| render.artist(id)).collect();
    Ok(ok(json!({ "results": { "artists": { "href": "/v1/catalog/us/search?types=artists", "data": data } } })))
}

async fn catalog_songs(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    check_developer_token(&app, &headers)?;
    let params = Params::parse(q);
    let isrcs = params.list("filter[isrc]");
    if isrcs.is_empty() {
        return Err(ApiError::bad_request("`filter[isrc]` is required (only ISRC lookups are emulated)"));
    }
    let include = Include::of(&params);
    let store = lock(&app.store);
    let render = Render { store: &store };
    let mut ids: Vec<&String> = store
        .songs
        .iter()
        .filter(|(_, s)| s.isrc.as_deref().is_some_and(|i| isrcs.iter().any(|w| w.eq_ignore_ascii_case(i))))
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    let data: Vec<Value> = ids.into_iter().map(|id| render.catalog_song(id, &include)).collect();
    Ok(ok(json!({ "data": data })))
}
