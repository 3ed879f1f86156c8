//! The Web API routes under `/v1`.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use dnp_core::normalize::normalize_name;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::render::{Render, paging, timestamp};
use super::store::{FollowRec, ItemRec, LikedRec, SavedAlbumRec, Store, UserRec};
use crate::emulator::FaultKind;
use crate::emulator::oauth::{AccessError, AccessInfo};

type App = Arc<Shared>;

/// Most items a page of any library list (`/me/tracks`, `/playlists/{id}/items`…) holds.
const MAX_PAGE: usize = 50;
/// Most URIs one `/me/library` call takes.
const MAX_LIBRARY_URIS: usize = 40;
/// Most items one playlist-items POST or DELETE takes.
const MAX_PLAYLIST_ITEMS: usize = 100;
/// Most ids one deprecated `/me/following`, `/me/tracks` or `/me/albums` write takes.
const MAX_IDS: usize = 50;
/// Search: `limit` at most 10 (default 5), `offset` at most 1000 (2026 spec).
const MAX_SEARCH_LIMIT: usize = 10;
const MAX_SEARCH_OFFSET: usize = 1000;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An error in the Web API's shape: `{"error": {"status": …, "message": …}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
    reason: Option<&'static str>,
    retry_after: Option<u64>,
    www_authenticate: bool,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, message: message.into(), reason: None, retry_after: None, www_authenticate: false }
    }

    fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Resource not found")
    }

    fn unauthorized(message: &'static str) -> Self {
        Self { www_authenticate: true, ..Self::new(StatusCode::UNAUTHORIZED, message) }
    }

    /// The answer to an injected fault.
    pub(crate) fn from_fault(kind: &FaultKind) -> Self {
        let seconds = |d: std::time::Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        match *kind {
            FaultKind::RateLimited { retry_after } => Self {
                retry_after: Some(seconds(retry_after)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded")
            },
            FaultKind::QuotaExceeded { retry_after } => Self {
                retry_after: Some(seconds(retry_after)),
                reason: Some("QUOTA_EXCEEDED"),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "Quota exceeded")
            },
            FaultKind::ServerError { status } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let message = status.canonical_reason().unwrap_or("Server error");
                Self::new(status, message)
            }
            FaultKind::Timeout { .. } => Self::new(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout"),
            // A slow response is handled normally; it never reaches the renderer.
            FaultKind::Slow { .. } => Self::new(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "status": self.status.as_u16(), "message": self.message });
        if let (Some(reason), Some(object)) = (self.reason, error.as_object_mut()) {
            object.insert("reason".into(), json!(reason));
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.www_authenticate {
            let value =
                format!("Bearer realm=\"spotify\", error=\"invalid_token\", error_description=\"{}\"", self.message);
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

type ApiResult = Result<Response, ApiError>;

/// The decoded query string.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Self {
        let raw = raw.unwrap_or_default();
        Self(url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=max).contains(l))
                .ok_or_else(|| ApiError::bad_request("Invalid limit")),
        }
    }

    fn offset(&self, max: usize) -> Result<usize, ApiError> {
        match self.get("offset") {
            None => Ok(0),
            Some(v) => {
                v.parse::<usize>().ok().filter(|o| *o <= max).ok_or_else(|| ApiError::bad_request("Invalid offset"))
            }
        }
    }

    /// A comma-separated list parameter, trimmed, empty entries dropped.
    fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }
}

fn authenticate(app: &Shared, headers: &HeaderMap) -> Result<AccessInfo, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let result = lock(&app.auth).validate(token);
    let info = result.map_err(|e| match e {
        AccessError::Missing => ApiError::unauthorized("No token provided"),
        AccessError::Invalid => ApiError::unauthorized("Invalid access token"),
        AccessError::Expired => ApiError::unauthorized("The access token expired"),
    })?;
    let mut store = lock(&app.store);
    store
        .users
        .entry(info.user_id.clone())
        .or_insert_with(|| UserRec { display_name: super::store::display_name(&info.user_id), ..UserRec::default() });
    Ok(info)
}

fn require_scope(info: &AccessInfo, any_of: &[&str]) -> Result<(), ApiError> {
    if any_of.iter().any(|s| info.has_scope(s)) {
        Ok(())
    } else {
        Err(ApiError::forbidden("Insufficient client scope"))
    }
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

fn user<'a>(store: &'a Store, user_id: &str) -> Option<&'a UserRec> {
    store.users.get(user_id)
}

/// The Web API routes, to be nested under `/v1`.
pub(crate) fn routes() -> Router<App> {
    use axum::routing::get;
    Router::new()
        .route("/me", get(get_me))
        .route("/me/tracks", get(get_saved_tracks).put(put_saved_tracks).delete(delete_saved_tracks))
        .route("/me/albums", get(get_saved_albums).put(put_saved_albums).delete(delete_saved_albums))
        .route("/me/following", get(get_following).put(put_following).delete(delete_following))
        .route("/me/playlists", get(get_my_playlists))
        .route("/me/library", axum::routing::put(put_library).delete(delete_library))
        .route("/me/library/contains", get(library_contains))
        .route("/playlists/{id}", get(get_playlist))
        .route("/playlists/{id}/items", get(get_playlist_items).post(post_playlist_items).delete(delete_playlist_items))
        .route("/search", get(search))
        .route("/tracks/{id}", get(get_track))
        .route("/artists/{id}", get(get_artist))
        .route("/albums/{id}", get(get_album))
}

async fn get_me(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    let store = lock(&app.store);
    let render = Render { api: &app.api_base, store: &store };
    let mut me = render.user(&info.user_id);
    if let Some(object) = me.as_object_mut() {
        object.insert("images".into(), json!([]));
        let account: String = info.user_id.bytes().map(|b| format!("{b:02x}")).collect();
        object.insert("account_id".into(), json!(account));
    }
    Ok(json_response(StatusCode::OK, me))
}

async fn get_saved_tracks(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["user-library-read"])?;
    let params = Params::parse(q);
    let (limit, offset) = (params.limit(20, MAX_PAGE)?, params.offset(usize::MAX)?);
    let store = lock(&app.store);
    let render = Render { api: &app.api_base, store: &store };
    let liked = user(&store, &info.user_id).map(|u| u.liked.as_slice()).unwrap_or_default();
    let items = liked
        .iter()
        .skip(offset)
        .take(limit)
        .filter_map(|rec| {
            let track = store.tracks.get(&rec.track_id)?;
            Some(json!({ "added_at": timestamp(rec.added_at), "track": render.track(track) }))
        })
        .collect();
    Ok(json_response(StatusCode::OK, paging(&app.api_base, "/me/tracks", "", offset, limit, liked.len(), items)))
}

async fn get_saved_albums(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["user-library-read"])?;
    let params = Params::parse(q);
    let (limit, offset) = (params.limit(20, MAX_PAGE)?, params.offset(usize::MAX)?);
    let store = lock(&app.store);
    let render = Render { api: &app.api_base, store: &store };
    let albums = user(&store, &info.user_id).map(|u| u.albums.as_slice()).unwrap_or_default();
    let items = albums
        .iter()
        .skip(offset)
        .take(limit)
        .map(|rec| json!({ "added_at": timestamp(rec.added_at), "album": render.album(&rec.album_id) }))
        .collect();
    Ok(json_response(StatusCode::OK, paging(&app.api_base, "/me/albums", "", offset, limit, albums.len(), items)))
}

async fn get_following(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["user-follow-read"])?;
    let params = Params::parse(q);
    match params.get("type") {
        Some("artist") => {}
        Some(_) => return Err(ApiError::bad_request("Invalid type. Only artist is supported")),
        None => return Err(ApiError::bad_request("Missing parameter type")),
    }
    let limit = params.limit(20, MAX_PAGE)?;
    let store = lock(&app.store);
    let render = Render { api: &app.api_base, store: &store };
    let following = user(&store, &info.user_id).map(|u| u.following.as_slice()).unwrap_or_default();
    let start = match params.get("after") {
        None => 0,
        Some(after) => following
            .iter()
            .position(|f| f.artist_id == after)
            .map(|i| i + 1)
            .ok_or_else(|| ApiError::bad_request("Invalid after cursor"))?,
    };
    let page: Vec<&FollowRec> = following.iter().skip(start).take(limit).collect();
    let more = start + page.len() < following.len();
    let last = page.last().map(|f| f.artist_id.clone());
    let href = match params.get("after") {
        Some(after) => format!("{}/me/following?type=artist&after={after}&limit={limit}", app.api_base),
        None => format!("{}/me/following?type=artist&limit={limit}", app.api_base),
    };
    let next = match (&last, more) {
        (Some(last), true) => Some(format!("{}/me/following?type=artist&after={last}&limit={limit}", app.api_base)),
        _ => None,
    };
    let items: Vec<Value> = page.iter().map(|f| render.artist(&f.artist_id)).collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "artists": {
            "href": href,
            "limit": limit,
            "next": next,
            "cursors": { "after": if more { last } else { None } },
            "total": following.len(),
            "items": items,
        }}),
    ))
}

/// A parsed `spotify:{type}:{id}` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UriKind {
    Track,
    Album,
    Artist,
    Playlist,
    User,
    Episode,
    Show,
    Audiobook,
}

fn is_catalog_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn parse_uri(uri: &str) -> Option<(UriKind, String)> {
    let rest = uri.strip_prefix("spotify:")?;
    let (kind, id) = rest.split_once(':')?;
    let kind = match kind {
        "track" => UriKind::Track,
        "album" => UriKind::Album,
        "artist" => UriKind::Artist,
        "playlist" => UriKind::Playlist,
        "user" => UriKind::User,
        "episode" => UriKind::Episode,
        "show" => UriKind::Show,
        "audiobook" => UriKind::Audiobook,
        _ => return None,
    };
    let valid = if kind == UriKind::User { is_user_id(id) } else { is_catalog_id(id) };
    valid.then(|| (kind, id.to_owned()))
}

fn short(uri: &str) -> String {
    uri.chars().take(80).collect()
}

/// Parses and checks the `uris` of a `/me/library` call.
fn library_uris(
    app: &Shared,
    info: &AccessInfo,
    params: &Params,
    write: bool,
) -> Result<Vec<(UriKind, String)>, ApiError> {
    let uris =
        params.list("uris").filter(|u| !u.is_empty()).ok_or_else(|| ApiError::bad_request("Missing parameter uris"))?;
    if uris.len() > MAX_LIBRARY_URIS {
        return Err(ApiError::bad_request("Too many URIs requested. Maximum is 40"));
    }
    let accept_artists = !write || app.library_accepts_artist_uris.load(Ordering::SeqCst);
    let mut parsed = Vec::with_capacity(uris.len());
    for uri in &uris {
        let (kind, id) = parse_uri(uri).ok_or_else(|| ApiError::bad_request(format!("Invalid URI: {}", short(uri))))?;
        if kind == UriKind::Artist && !accept_artists {
            return Err(ApiError::bad_request("Unsupported URI type: artist"));
        }
        let scopes: &[&str] = match (kind, write) {
            (UriKind::Artist | UriKind::User, true) => &["user-follow-modify"],
            (UriKind::Artist | UriKind::User, false) => &["user-follow-read"],
            (UriKind::Playlist, true) => &["playlist-modify-public", "playlist-modify-private"],
            (UriKind::Playlist, false) => &["playlist-read-private"],
            (_, true) => &["user-library-modify"],
            (_, false) => &["user-library-read"],
        };
        require_scope(info, scopes)?;
        parsed.push((kind, id));
    }
    Ok(parsed)
}

fn exists(store: &Store, kind: UriKind, id: &str) -> bool {
    match kind {
        UriKind::Track => store.tracks.contains_key(id),
        UriKind::Album => store.albums.contains_key(id),
        UriKind::Artist => store.artists.contains_key(id),
        UriKind::Playlist => store.playlists.contains_key(id),
        UriKind::User => store.users.contains_key(id),
        // The emulator has no podcasts or audiobooks.
        UriKind::Episode | UriKind::Show | UriKind::Audiobook => false,
    }
}

fn kind_name(kind: UriKind) -> &'static str {
    match kind {
        UriKind::Track => "track",
        UriKind::Album => "album",
        UriKind::Artist => "artist",
        UriKind::Playlist => "playlist",
        UriKind::User => "user",
        UriKind::Episode => "episode",
        UriKind::Show => "show",
        UriKind::Audiobook => "audiobook",
    }
}

/// Saves items, newest first: the items of one call go to the front, in the call's order.
/// Items already saved keep their place and date.
fn save_items(
    store: &mut Store,
    user_id: &str,
    items: &[(UriKind, String)],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if let Some((kind, id)) = items.iter().find(|(kind, id)| !exists(store, *kind, id)) {
        return Err(ApiError::bad_request(format!("Non existing id: 'spotify:{}:{}'", kind_name(*kind), short(id))));
    }
    let user = store.users.entry(user_id.to_owned()).or_default();
    let (mut tracks, mut albums, mut artists, mut playlists, mut users) = (vec![], vec![], vec![], vec![], vec![]);
    for (kind, id) in items {
        match kind {
            UriKind::Track
                if !user.liked.iter().any(|r| r.track_id == *id)
                    && !tracks.iter().any(|r: &LikedRec| r.track_id == *id) =>
            {
                tracks.push(LikedRec { track_id: id.clone(), added_at: Some(now), entry_id: None, disliked: false });
            }
            UriKind::Album
                if !user.albums.iter().any(|r| r.album_id == *id)
                    && !albums.iter().any(|r: &SavedAlbumRec| r.album_id == *id) =>
            {
                albums.push(SavedAlbumRec { album_id: id.clone(), added_at: Some(now) });
            }
            UriKind::Artist
                if !user.following.iter().any(|r| r.artist_id == *id)
                    && !artists.iter().any(|r: &FollowRec| r.artist_id == *id) =>
            {
                artists.push(FollowRec { artist_id: id.clone(), entry_id: None });
            }
            UriKind::Playlist if !user.playlists.contains(id) && !playlists.contains(id) => playlists.push(id.clone()),
            UriKind::User if !user.followed_users.contains(id) && !users.contains(id) => users.push(id.clone()),
            _ => {}
        }
    }
    user.liked.splice(0..0, tracks);
    user.albums.splice(0..0, albums);
    user.following.splice(0..0, artists);
    user.playlists.splice(0..0, playlists);
    user.followed_users.splice(0..0, users);
    Ok(())
}

/// Removes items; items not saved are ignored.
fn remove_items(store: &mut Store, user_id: &str, items: &[(UriKind, String)]) {
    let user = store.users.entry(user_id.to_owned()).or_default();
    let has = |kind: UriKind, id: &str| items.iter().any(|(k, i)| *k == kind && i == id);
    user.liked.retain(|r| !has(UriKind::Track, &r.track_id));
    user.albums.retain(|r| !has(UriKind::Album, &r.album_id));
    user.following.retain(|r| !has(UriKind::Artist, &r.artist_id));
    user.playlists.retain(|p| !has(UriKind::Playlist, p));
    user.followed_users.retain(|u| !has(UriKind::User, u));
}

fn contains(store: &Store, user_id: &str, kind: UriKind, id: &str) -> bool {
    let Some(user) = store.users.get(user_id) else {
        return false;
    };
    match kind {
        UriKind::Track => user.liked.iter().any(|r| r.track_id == id),
        UriKind::Album => user.albums.iter().any(|r| r.album_id == id),
        UriKind::Artist => user.following.iter().any(|r| r.artist_id == id),
        UriKind::Playlist => user.playlists.iter().any(|p| p == id),
        UriKind::User => user.followed_users.iter().any(|u| u == id),
        UriKind::Episode | UriKind::Show | UriKind::Audiobook => false,
    }
}

async fn put_library(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    let items = library_uris(&app, &info, &Params::parse(q), true)?;
    save_items(&mut lock(&app.store), &info.user_id, &items, Utc::now())?;
    Ok(StatusCode::OK.into_response())
}

async fn delete_library(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    let items = library_uris(&app, &info, &Params::parse(q), true)?;
    remove_items(&mut lock(&app.store), &info.user_id, &items);
    Ok(StatusCode::OK.into_response())
}

async fn library_contains(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    let items = library_uris(&app, &info, &Params::parse(q), false)?;
    let store = lock(&app.store);
    let answers: Vec<bool> = items.iter().map(|(kind, id)| contains(&store, &info.user_id, *kind, id)).collect();
    Ok(json_response(StatusCode::OK, json!(answers)))
}

#[derive(Deserialize)]
struct IdsBody {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    timestamped_ids: Vec<TimestampedId>,
}

#[derive(Deserialize)]
struct TimestampedId {
    id: String,
    added_at: DateTime<Utc>,
}

/// The ids of a deprecated per-type write: `ids` in the query, else in the JSON body.
fn ids_of(params: &Params, body: &Bytes) -> Result<(Vec<String>, Vec<TimestampedId>), ApiError> {
    let parsed: Option<IdsBody> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice(body).map_err(|_| ApiError::bad_request("Invalid JSON body"))?)
    };
    let (ids, timestamped) = match (params.list("ids"), parsed) {
        (_, Some(body)) if !body.timestamped_ids.is_empty() => (Vec::new(), body.timestamped_ids),
        (Some(ids), _) => (ids, Vec::new()),
        (None, Some(body)) => (body.ids, Vec::new()),
        (None, None) => (Vec::new(), Vec::new()),
    };
    let count = ids.len() + timestamped.len();
    if count == 0 {
        return Err(ApiError::bad_request("Missing parameter ids"));
    }
    if count > MAX_IDS {
        return Err(ApiError::bad_request("Too many ids requested"));
    }
    if let Some(bad) =
        ids.iter().map(String::as_str).chain(timestamped.iter().map(|t| t.id.as_str())).find(|id| !is_catalog_id(id))
    {
        return Err(ApiError::bad_request(format!("Invalid id: {}", short(bad))));
    }
    Ok((ids, timestamped))
}

/// Deprecated `PUT /me/tracks`: `ids`, or `timestamped_ids` which place each track by its
/// `added_at` among the saved tracks (newest first), restoring a save order.
async fn put_saved_tracks(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["user-library-modify"])?;
    let (ids, timestamped) = ids_of(&Params::parse(q), &body)?;
    let mut store = lock(&app.store);
    if timestamped.is_empty() {
        let items: Vec<(UriKind, String)> = ids.into_iter().map(|id| (UriKind::Track, id)).collect();
        save_items(&mut store, &info.user_id, &items, Utc::now())?;
        return Ok(StatusCode::OK.into_response());
    }
    if let Some(missing) = timestamped.iter().find(|t| !store.tracks.contains_key(&t.id)) {
        return Err(ApiError::bad_request(format!("Non existing id: 'spotify:track:{}'", short(&missing.id))));
    }
    let user = store.users.entry(info.user_id.clone()).or_default();
    for entry in timestamped {
        if user.liked.iter().any(|r| r.track_id == entry.id) {
            continue;
        }
        let at =
            user.liked.iter().position(|r| r.added_at.is_some_and(|t| t < entry.added_at)).unwrap_or(user.liked.len());
        user.liked.insert(
            at,
            LikedRec { track_id: entry.id, added_at: Some(entry.added_at), entry_id: None, disliked: false },
        );
    }
    Ok(StatusCode::OK.into_response())
}

async fn delete_saved_tracks(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["user-library-modify"])?;
    let (ids, timestamped) = ids_of(&Params::parse(q), &body)?;
    let items: Vec<(UriKind, String)> =
        ids.into_iter().chain(timestamped.into_iter().map(|t| t.id)).map(|id| (UriKind::Track, id)).collect();
    remove_items(&mut lock(&app.store), &info.user_id, &items);
    Ok(StatusCode::OK.into_response())
}

async fn put_saved_albums(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["user-library-modify"])?;
    let (ids, _) = ids_of(&Params::parse(q), &body)?;
    let items: Vec<(UriKind, String)> = ids.into_iter().map(|id| (UriKind::Album, id)).collect();
    save_items(&mut lock(&app.store), &info.user_id, &items, Utc::now())?;
    Ok(StatusCode::OK.into_response())
}

async fn delete_saved_albums(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["user-library-modify"])?;
    let (ids, _) = ids_of(&Params::parse(q), &body)?;
    let items: Vec<(UriKind, String)> = ids.into_iter().map(|id| (UriKind::Album, id)).collect();
    remove_items(&mut lock(&app.store), &info.user_id, &items);
    Ok(StatusCode::OK.into_response())
}

fn follow_items(params: &Params, body: &Bytes) -> Result<Vec<(UriKind, String)>, ApiError> {
    let kind = match params.get("type") {
        Some("artist") => UriKind::Artist,
        Some("user") => UriKind::User,
        Some(_) => return Err(ApiError::bad_request("Invalid type")),
        None => return Err(ApiError::bad_request("Missing parameter type")),
    };
    let ids = match params.list("ids") {
        Some(ids) => ids,
        None if body.iter().all(u8::is_ascii_whitespace) => Vec::new(),
        None => serde_json::from_slice::<IdsBody>(body).map_err(|_| ApiError::bad_request("Invalid JSON body"))?.ids,
    };
    if ids.is_empty() {
        return Err(ApiError::bad_request("Missing parameter ids"));
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::bad_request("Too many ids requested"));
    }
    let valid = if kind == UriKind::User { is_user_id } else { is_catalog_id };
    if let Some(bad) = ids.iter().find(|id| !valid(id)) {
        return Err(ApiError::bad_request(format!("Invalid id: {}", short(bad))));
    }
    Ok(ids.into_iter().map(|id| (kind, id)).collect())
}

/// Deprecated `PUT /me/following`: follow artists or users (new follows first). 204.
async fn put_following(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["user-follow-modify"])?;
    let items = follow_items(&Params::parse(q), &body)?;
    save_items(&mut lock(&app.store), &info.user_id, &items, Utc::now())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deprecated `DELETE /me/following`. 204.
async fn delete_following(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["user-follow-modify"])?;
    let items = follow_items(&Params::parse(q), &body)?;
    remove_items(&mut lock(&app.store), &info.user_id, &items);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_my_playlists(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["playlist-read-private", "playlist-read-collaborative"])?;
    let params = Params::parse(q);
    let (limit, offset) = (params.limit(20, MAX_PAGE)?, params.offset(100_000)?);
    let store = lock(&app.store);
    let render = Render { api: &app.api_base, store: &store };
    let ids = user(&store, &info.user_id).map(|u| u.playlists.as_slice()).unwrap_or_default();
    let items = ids
        .iter()
        .skip(offset)
        .take(limit)
        .filter_map(|id| Some(render.simplified_playlist(id, store.playlists.get(id)?)))
        .collect();
    Ok(json_response(StatusCode::OK, paging(&app.api_base, "/me/playlists", "", offset, limit, ids.len(), items)))
}

fn items_page(render: &Render<'_>, id: &str, items: &[ItemRec], offset: usize, limit: usize) -> Value {
    let page = items.iter().skip(offset).take(limit).map(|item| render.playlist_item(item)).collect();
    paging(render.api, &format!("/playlists/{id}/items"), "", offset, limit, items.len(), page)
}

async fn get_playlist(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    let store = lock(&app.store);
    let render = Render { api: &app.api_base, store: &store };
    let rec = store.playlists.get(&id).ok_or_else(ApiError::not_found)?;
    let items = rec.can_edit(&info.user_id).then(|| items_page(&render, &id, &rec.items, 0, MAX_PAGE));
    Ok(json_response(StatusCode::OK, render.playlist(&id, rec, items)))
}

async fn get_playlist_items(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["playlist-read-private", "playlist-read-collaborative"])?;
    let params = Params::parse(q);
    let (limit, offset) = (params.limit(20, MAX_PAGE)?, params.offset(usize::MAX)?);
    let store = lock(&app.store);
    let rec = store.playlists.get(&id).ok_or_else(ApiError::not_found)?;
    if !rec.can_edit(&info.user_id) {
        return Err(ApiError::forbidden("Forbidden"));
    }
    let render = Render { api: &app.api_base, store: &store };
    Ok(json_response(StatusCode::OK, items_page(&render, &id, &rec.items, offset, limit)))
}

#[derive(Deserialize, Default)]
struct AddItemsBody {
    #[serde(default)]
    uris: Option<Vec<String>>,
    #[serde(default)]
    position: Option<i64>,
}

fn track_ids(uris: &[String]) -> Result<Vec<String>, ApiError> {
    uris.iter()
        .map(|uri| match parse_uri(uri) {
            Some((UriKind::Track, id)) => Ok(id),
            Some((UriKind::Episode, _)) => Err(ApiError::bad_request("Payload contains a non-existing ID")),
            _ => Err(ApiError::bad_request(format!("Invalid track uri: {}", short(uri)))),
        })
        .collect()
}

async fn post_playlist_items(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["playlist-modify-public", "playlist-modify-private"])?;
    let params = Params::parse(q);
    let body: AddItemsBody = if body.iter().all(u8::is_ascii_whitespace) {
        AddItemsBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("Invalid JSON body"))?
    };
    let uris = params.list("uris").or(body.uris).unwrap_or_default();
    if uris.is_empty() {
        return Err(ApiError::bad_request("No uris provided"));
    }
    if uris.len() > MAX_PLAYLIST_ITEMS {
        return Err(ApiError::bad_request("You can add a maximum of 100 tracks per request."));
    }
    let position = match params.get("position") {
        Some(p) => Some(p.parse::<i64>().map_err(|_| ApiError::bad_request("Invalid position"))?),
        None => body.position,
    };
    let ids = track_ids(&uris)?;
    let mut store = lock(&app.store);
    if ids.iter().any(|t| !store.tracks.contains_key(t)) {
        return Err(ApiError::bad_request("Payload contains a non-existing ID"));
    }
    let rec = store.playlists.get_mut(&id).ok_or_else(ApiError::not_found)?;
    if !rec.can_edit(&info.user_id) {
        return Err(ApiError::forbidden("You cannot add tracks to a playlist you don't own."));
    }
    let at = match position {
        None => rec.items.len(),
        Some(p) => usize::try_from(p)
            .ok()
            .filter(|p| *p <= rec.items.len())
            .ok_or_else(|| ApiError::bad_request("Index out of bounds"))?,
    };
    let now = Some(Utc::now());
    let new_items = ids.into_iter().map(|track_id| ItemRec {
        track_id,
        added_at: now,
        added_by: info.user_id.clone(),
        item_id: None,
    });
    rec.items.splice(at..at, new_items);
    let snapshot = store.bump_snapshot(&id).ok_or_else(ApiError::not_found)?;
    Ok(json_response(StatusCode::CREATED, json!({ "snapshot_id": snapshot })))
}

#[derive(Deserialize)]
struct RemoveItemsBody {
    items: Option<Vec<RemoveItem>>,
    /// The deprecated name of `items`.
    tracks: Option<Vec<RemoveItem>>,
    snapshot_id: Option<String>,
}

#[derive(Deserialize)]
struct RemoveItem {
    uri: String,
}

/// `DELETE /playlists/{id}/items`: removes every occurrence of each URI.
async fn delete_playlist_items(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, &["playlist-modify-public", "playlist-modify-private"])?;
    let body: RemoveItemsBody =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("Invalid JSON body"))?;
    let items =
        body.items.or(body.tracks).filter(|i| !i.is_empty()).ok_or_else(|| ApiError::bad_request("Missing items"))?;
    if items.len() > MAX_PLAYLIST_ITEMS {
        return Err(ApiError::bad_request("You can remove a maximum of 100 tracks per request."));
    }
    let uris: Vec<String> = items.into_iter().map(|i| i.uri).collect();
    let ids = track_ids(&uris)?;
    let mut store = lock(&app.store);
    let rec = store.playlists.get_mut(&id).ok_or_else(ApiError::not_found)?;
    if !rec.can_edit(&info.user_id) {
        return Err(ApiError::forbidden("You cannot remove tracks from a playlist you don't own."));
    }
    if let Some(snapshot) = &body.snapshot_id
        && !rec.history.contains(snapshot)
    {
        return Err(ApiError::bad_request("Invalid snapshot id"));
    }
    let before = rec.items.len();
    rec.items.retain(|item| !ids.contains(&item.track_id));
    let snapshot = if rec.items.len() == before {
        rec.snapshot_id.clone()
    } else {
        store.bump_snapshot(&id).ok_or_else(ApiError::not_found)?
    };
    Ok(json_response(StatusCode::OK, json!({ "snapshot_id": snapshot })))
}

async fn get_track(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    authenticate(&app, &headers)?;
    let store = lock(&app.store);
    let track = store.tracks.get(&id).ok_or_else(ApiError::not_found)?;
    Ok(json_response(StatusCode::OK, Render { api: &app.api_base, store: &store }.track(track)))
}

async fn get_artist(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    authenticate(&app, &headers)?;
    let store = lock(&app.store);
    if !store.artists.contains_key(&id) {
        return Err(ApiError::not_found());
    }
    Ok(json_response(StatusCode::OK, Render { api: &app.api_base, store: &store }.artist(&id)))
}

async fn get_album(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    authenticate(&app, &headers)?;
    let store = lock(&app.store);
    if !store.albums.contains_key(&id) {
        return Err(ApiError::not_found());
    }
    Ok(json_response(StatusCode::OK, Render { api: &app.api_base, store: &store }.album(&id)))
}

/// A parsed search query: field filters and free words, normalized.
#[derive(Debug, Default)]
struct Query {
    words: Vec<String>,
    isrc: Option<String>,
    artist: Option<String>,
    track: Option<String>,
    album: Option<String>,
}

/// Splits `q` into tokens, keeping `field:"quoted words"` together.
fn tokens(q: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

impl Query {
    fn parse(q: &str) -> Self {
        let mut query = Self::default();
        for token in tokens(q) {
            match token.split_once(':') {
                Some(("isrc", v)) => query.isrc = Some(v.to_ascii_uppercase()),
                Some(("artist", v)) => query.artist = Some(normalize_name(v)),
                Some(("track", v)) => query.track = Some(normalize_name(v)),
                Some(("album", v)) => query.album = Some(normalize_name(v)),
                // year, genre, upc and tag filters: the model has no such data to match.
                Some(("year" | "genre" | "upc" | "tag", _)) => {}
                _ => query.words.extend(normalize_name(&token).split_whitespace().map(str::to_owned)),
            }
        }
        query
    }

    fn matches_track(&self, track: &dnp_core::Track) -> bool {
        if let Some(isrc) = &self.isrc
            && track.isrc.as_deref().map(str::to_ascii_uppercase).as_deref() != Some(isrc.as_str())
        {
            return false;
        }
        let title = normalize_name(&track.title);
        let artists: Vec<String> = track.artists.iter().map(|a| normalize_name(&a.name)).collect();
        let album = track.album.as_ref().map(|a| normalize_name(&a.title)).unwrap_or_default();
        if self.artist.as_ref().is_some_and(|f| !artists.iter().any(|a| a.contains(f.as_str()))) {
            return false;
        }
        if self.track.as_ref().is_some_and(|f| !title.contains(f.as_str())) {
            return false;
        }
        if self.album.as_ref().is_some_and(|f| !album.contains(f.as_str())) {
            return false;
        }
        self.words.iter().all(|w| {
            title.contains(w.as_str()) || album.contains(w.as_str()) || artists.iter().any(|a| a.contains(w.as_str()))
        })
    }

    /// For an artist: `None` when it does not match, else a rank (0: exact name).
    fn rank_artist(&self, name: &str) -> Option<u8> {
        if self.isrc.is_some() || self.track.is_some() || self.album.is_some() {
            return None;
        }
        let name = normalize_name(name);
        let wanted = match (&self.artist, self.words.is_empty()) {
            (Some(artist), true) => artist.clone(),
            (Some(artist), false) => format!("{artist} {}", self.words.join(" ")),
            (None, false) => self.words.join(" "),
            (None, true) => return None,
        };
        if name == wanted {
            Some(0)
        } else if name.starts_with(&wanted) {
            Some(1)
        } else if wanted.split_whitespace().all(|w| name.contains(w)) {
            Some(2)
        } else {
            None
        }
    }
}

async fn search(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> ApiResult {
    authenticate(&app, &headers)?;
    let params = Params::parse(raw);
    let q = params.get("q").filter(|q| !q.trim().is_empty()).ok_or_else(|| ApiError::bad_request("No search query"))?;
    let types =
        params.list("type").filter(|t| !t.is_empty()).ok_or_else(|| ApiError::bad_request("Missing parameter type"))?;
    const TYPES: &[&str] = &["album", "artist", "playlist", "track", "show", "episode", "audiobook"];
    if types.iter().any(|t| !TYPES.contains(&t.as_str())) {
        return Err(ApiError::bad_request("Bad search type field"));
    }
    let limit = params.limit(5, MAX_SEARCH_LIMIT)?;
    let offset = params.offset(MAX_SEARCH_OFFSET)?;
    let query = Query::parse(q);
    let store = lock(&app.store);
    let render = Render { api: &app.api_base, store: &store };
    let encoded_q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
    let mut result = serde_json::Map::new();
    for kind in &types {
        let extra = format!("&query={encoded_q}&type={kind}");
        let (key, matches): (&str, Vec<Value>) = match kind.as_str() {
            "track" => {
                let found: Vec<&dnp_core::Track> = store.tracks.values().filter(|t| query.matches_track(t)).collect();
                let page = found.iter().skip(offset).take(limit).map(|t| render.track(t)).collect::<Vec<_>>();
                result.insert(
                    "tracks".into(),
                    paging(&app.api_base, "/search", &extra, offset, limit, found.len(), page),
                );
                continue;
            }
            "artist" => {
                let mut found: Vec<(u8, &String, &String)> = store
                    .artists
                    .iter()
                    .filter_map(|(id, a)| query.rank_artist(&a.name).map(|rank| (rank, &a.name, id)))
                    .collect();
                found.sort();
                let total = found.len();
                let page =
                    found.iter().skip(offset).take(limit).map(|(_, _, id)| render.artist(id)).collect::<Vec<_>>();
                result.insert("artists".into(), paging(&app.api_base, "/search", &extra, offset, limit, total, page));
                continue;
            }
            // Albums, playlists, shows, episodes, audiobooks: not searched by the emulator.
            other => (other, Vec::new()),
        };
        result.insert(format!("{key}s"), paging(&app.api_base, "/search", &extra, offset, limit, 0, matches));
    }
    Ok(json_response(StatusCode::OK, Value::Object(result)))
}
