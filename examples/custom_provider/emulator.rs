//! A tiny in-process emulator of the "Deezer-like" API the example adapter talks to: an
//! axum server on `127.0.0.1:0` holding one user's library in memory, with OAuth tokens
//! that expire and the faults the conformance suite asks for (429, 5xx, timeouts, an
//! outage, a playlist changed by someone else).
//!
//! The API (`/user/me/...`, `/playlist/{id}/tracks`, `{"data", "total", "next"}` pages,
//! `{"error": {"type", "message", "code"}}` errors) follows Deezer's public API shape,
//! with three departures that keep the example short: errors use HTTP statuses (Deezer
//! answers 200 with an error body), the token goes in `Authorization: Bearer` (Deezer
//! takes `access_token=` in the query), and playlist entries are removed by their own id
//! and inserted at a position (Deezer removes by song id and only appends).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use dnp_core::{ArtistCredit, CreditRole, LibrarySnapshot, Playlist, PlaylistItem, Track};
use serde_json::{Value, json};

/// The user the emulator serves.
pub(crate) const USER_ID: &str = "1001";
const PAGE_MAX: usize = 50;

#[derive(Default)]
struct Faults {
    rate_limited: u32,
    retry_after: u64,
    server_errors: u32,
    timeouts: u32,
    timeout_hold: Duration,
    outage: bool,
}

#[derive(Clone)]
struct Entry {
    item_id: String,
    track: String,
    added_at: Option<DateTime<Utc>>,
}

struct PlaylistRec {
    id: String,
    title: String,
    owned: bool,
    collaborative: bool,
    checksum: u64,
    entries: Vec<Entry>,
}

#[derive(Default)]
struct State0 {
    tracks: HashMap<String, Track>,
    albums: HashMap<String, dnp_core::Album>,
    artists: HashMap<String, dnp_core::Artist>,
    liked: Vec<(String, Option<DateTime<Utc>>)>,
    albums_saved: Vec<(String, Option<DateTime<Utc>>)>,
    followed: Vec<String>,
    playlists: Vec<PlaylistRec>,
    /// Access token -> (expires at, refresh token it came with).
    access: HashMap<String, Instant>,
    refresh: HashMap<String, ()>,
    codes: Vec<String>,
    next_id: u64,
    faults: Faults,
}

impl State0 {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }
}

/// A running emulator. Dropping it stops the server.
pub(crate) struct Emulator {
    state: Arc<Mutex<State0>>,
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn lock(state: &Mutex<State0>) -> MutexGuard<'_, State0> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let code = status.as_u16();
    (status, axum::Json(json!({ "error": { "type": kind, "message": message, "code": code } }))).into_response()
}

type App = Arc<Mutex<State0>>;

/// An error answer, kept small until it becomes a response.
struct Failure(StatusCode, &'static str, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error(self.0, self.1, &self.2)
    }
}

impl Emulator {
    /// Starts the server on a free port of `127.0.0.1`, in the current tokio runtime.
    pub(crate) async fn start() -> std::io::Result<Self> {
        let state: App = Arc::new(Mutex::new(State0::default()));
        let router = Router::new()
            .route("/oauth/auth.php", get(authorize))
            .route("/oauth/token", post(token))
            .route("/user/me", get(me))
            .route("/user/me/tracks", get(liked).post(like).delete(unlike))
            .route("/user/me/albums", get(albums).post(save_album).delete(remove_album))
            .route("/user/me/artists", get(artists).post(follow).delete(unfollow))
            .route("/user/me/playlists", get(playlists))
            .route("/playlist/{id}/tracks", get(playlist_tracks).post(insert).delete(remove))
            .route("/search/artist", get(search))
            .route("/track/isrc:{isrc}", get(by_isrc))
            .layer(axum::middleware::from_fn_with_state(state.clone(), faults))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(async { drop(stopped.await) }).await;
        });
        Ok(Self { state, base, _stop: stop })
    }

    /// The API's base URL.
    pub(crate) fn base_url(&self) -> &str {
        &self.base
    }

    /// Issues an access token valid for `ttl` and a refresh token (as the OAuth flow would).
    pub(crate) fn issue_tokens(&self, ttl: Duration) -> (String, String) {
        let mut s = lock(&self.state);
        let access = s.id("acc-");
        let refresh = s.id("ref-");
        s.access.insert(access.clone(), Instant::now() + ttl);
        s.refresh.insert(refresh.clone(), ());
        (access, refresh)
    }

    /// Replaces the user's library (`owned` playlists belong to the user; the others to
    /// someone else, editable when `collaborative` or `editable`).
    pub(crate) fn seed(&self, library: &LibrarySnapshot) {
        let mut s = lock(&self.state);
        let add = |s: &mut State0, t: &Track| {
            for c in t.artists.iter().chain(t.album.iter().flat_map(|a| a.artists.iter())) {
                if let Some(id) = &c.id {
                    s.artists.insert(id.clone(), dnp_core::Artist { id: id.clone(), name: c.name.clone(), url: None });
                }
            }
            s.tracks.insert(t.id.clone(), t.clone());
        };
        for l in &library.liked_tracks {
            add(&mut s, &l.track);
        }
        s.liked = library.liked_tracks.iter().map(|l| (l.track.id.clone(), l.added_at)).collect();
        for a in &library.saved_albums {
            s.albums.insert(a.album.id.clone(), a.album.clone());
        }
        s.albums_saved = library.saved_albums.iter().map(|a| (a.album.id.clone(), a.added_at)).collect();
        for f in &library.followed_artists {
            s.artists.insert(f.artist.id.clone(), f.artist.clone());
        }
        s.followed = library.followed_artists.iter().map(|f| f.artist.id.clone()).collect();
        let mut playlists = Vec::new();
        for p in &library.playlists {
            let mut entries = Vec::new();
            for item in &p.items {
                add(&mut s, &item.track);
                let item_id = s.id("it");
                entries.push(Entry { item_id, track: item.track.id.clone(), added_at: item.added_at });
            }
            let checksum = s.next_id;
            playlists.push(PlaylistRec {
                id: p.id.clone(),
                title: p.name.clone(),
                owned: p.owned,
                // Someone else's playlist the user may edit is collaborative here.
                collaborative: p.collaborative || (p.editable && !p.owned),
                checksum,
                entries,
            });
        }
        s.playlists = playlists;
    }

    /// The user's library as the emulator holds it.
    pub(crate) fn state(&self, provider: &dnp_core::ProviderId) -> LibrarySnapshot {
        let s = lock(&self.state);
        let mut snapshot = LibrarySnapshot::empty(provider.clone());
        snapshot.liked_tracks = s
            .liked
            .iter()
            .filter_map(|(id, at)| {
                Some(dnp_core::LikedTrack {
                    track: s.tracks.get(id)?.clone(),
                    added_at: *at,
                    entry_id: None,
                    disliked: false,
                })
            })
            .collect();
        snapshot.saved_albums = s
            .albums_saved
            .iter()
            .filter_map(|(id, at)| Some(dnp_core::SavedAlbum { album: s.albums.get(id)?.clone(), added_at: *at }))
            .collect();
        snapshot.followed_artists = s
            .followed
            .iter()
            .filter_map(|id| Some(dnp_core::FollowedArtist { artist: s.artists.get(id)?.clone(), entry_id: None }))
            .collect();
        snapshot.playlists = s
            .playlists
            .iter()
            .map(|p| Playlist {
                id: p.id.clone(),
                name: p.title.clone(),
                owned: p.owned,
                collaborative: p.collaborative,
                editable: p.owned || p.collaborative,
                version: Some(p.checksum.to_string()),
                items: p
                    .entries
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| {
                        Some(PlaylistItem {
                            position: i as u32,
                            track: s.tracks.get(&e.track)?.clone(),
                            added_at: e.added_at,
                            item_id: Some(e.item_id.clone()),
                        })
                    })
                    .collect(),
                url: None,
            })
            .collect();
        snapshot
    }

    /// The next `calls` requests answer 429 with `Retry-After: retry_after` seconds.
    pub(crate) fn rate_limit(&self, calls: u32, retry_after: u64) {
        let mut s = lock(&self.state);
        (s.faults.rate_limited, s.faults.retry_after) = (calls, retry_after);
    }

    /// The next `calls` requests answer 503.
    pub(crate) fn server_errors(&self, calls: u32) {
        lock(&self.state).faults.server_errors = calls;
    }

    /// The next `calls` requests are held for `hold`, then answered 504 unapplied.
    pub(crate) fn timeouts(&self, calls: u32, hold: Duration) {
        let mut s = lock(&self.state);
        (s.faults.timeouts, s.faults.timeout_hold) = (calls, hold);
    }

    /// Every request answers 503 until [`clear_faults`](Self::clear_faults).
    pub(crate) fn outage(&self) {
        lock(&self.state).faults.outage = true;
    }

    /// Removes every pending fault.
    pub(crate) fn clear_faults(&self) {
        lock(&self.state).faults = Faults::default();
    }

    /// Every access token issued so far expires now (refresh tokens keep working).
    pub(crate) fn expire_access_tokens(&self) {
        lock(&self.state).access.clear();
    }

    /// Someone else puts a track at the front of `playlist_id`; its checksum changes.
    pub(crate) fn change_playlist(&self, playlist_id: &str) -> Result<(), String> {
        let mut s = lock(&self.state);
        let mut candidates: Vec<String> = s.tracks.keys().cloned().collect();
        candidates.sort();
        let index = s.playlists.iter().position(|p| p.id == playlist_id).ok_or("no such playlist")?;
        let present: Vec<String> = s.playlists[index].entries.iter().map(|e| e.track.clone()).collect();
        let track = candidates.into_iter().find(|t| !present.contains(t)).ok_or("no track to insert")?;
        let item_id = s.id("it");
        let checksum = s.next_id;
        let p = &mut s.playlists[index];
        p.entries.insert(0, Entry { item_id, track, added_at: Some(Utc::now()) });
        p.checksum = checksum;
        Ok(())
    }
}

async fn faults(State(app): State<App>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let hold = {
        let mut s = lock(&app);
        let f = &mut s.faults;
        if f.outage {
            return error(StatusCode::SERVICE_UNAVAILABLE, "Exception", "service unavailable");
        }
        if f.rate_limited > 0 {
            f.rate_limited -= 1;
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Exception", "Quota limit exceeded");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(f.retry_after));
            return response;
        }
        if f.server_errors > 0 {
            f.server_errors -= 1;
            return error(StatusCode::SERVICE_UNAVAILABLE, "Exception", "service unavailable");
        }
        if f.timeouts > 0 {
            f.timeouts -= 1;
            Some(f.timeout_hold)
        } else {
            None
        }
    };
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
        return error(StatusCode::GATEWAY_TIMEOUT, "Exception", "timed out");
    }
    next.run(request).await
}

fn authorized(app: &App, headers: &HeaderMap) -> Result<(), Failure> {
    let token =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let valid = token.and_then(|t| lock(app).access.get(t).copied()).is_some_and(|exp| Instant::now() < exp);
    if valid {
        Ok(())
    } else {
        Err(Failure(StatusCode::UNAUTHORIZED, "OAuthException", "Invalid OAuth access token.".into()))
    }
}

type Q = Query<HashMap<String, String>>;

fn page(path: &str, q: &Q, items: Vec<Value>) -> Result<Value, Failure> {
    let wrong = |what: &str| Failure(StatusCode::BAD_REQUEST, "ParameterException", format!("Wrong parameter: {what}"));
    let index: usize = q.get("index").map_or(Ok(0), |v| v.parse()).map_err(|_| wrong("index"))?;
    let limit: usize = q.get("limit").map_or(Ok(25), |v| v.parse()).map_err(|_| wrong("limit"))?;
    if limit == 0 || limit > PAGE_MAX {
        return Err(wrong("limit"));
    }
    let total = items.len();
    let data: Vec<Value> = items.into_iter().skip(index).take(limit).collect();
    let mut body = json!({ "data": data, "total": total });
    if index + limit < total {
        body["next"] = json!(format!("{path}?index={}&limit={limit}", index + limit));
    }
    Ok(body)
}

fn bad(what: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "ParameterException", &format!("Wrong parameter: {what}"))
}

fn track_json(t: &Track) -> Value {
    let contributors: Vec<Value> = t
        .artists
        .iter()
        .map(|c| json!({ "id": c.id, "name": c.name, "role": if c.role == CreditRole::Primary { "Main" } else { "Featured" } }))
        .collect();
    json!({
        "id": t.id, "title": t.title, "isrc": t.isrc, "duration": t.duration_ms.map(|d| d / 1000),
        "link": format!("https://www.deezer.example/track/{}", t.id),
        "contributors": contributors,
        "album": t.album.as_ref().map(|a| json!({
            "id": a.id, "title": a.title,
            "artist": a.artists.first().map(|c| json!({ "id": c.id, "name": c.name })),
        })),
    })
}

fn credits_of(album: &dnp_core::Album) -> Value {
    json!(album.artists.iter().map(|c: &ArtistCredit| json!({ "id": c.id, "name": c.name })).collect::<Vec<_>>())
}

/// `GET /oauth/auth.php?state=…&redirect_uri=…`: the user approves at once; back to
/// `redirect_uri` with a single-use `code`.
async fn authorize(State(app): State<App>, Query(q): Q) -> Response {
    let (Some(redirect), Some(state)) = (q.get("redirect_uri"), q.get("state")) else {
        return bad("redirect_uri and state");
    };
    let code = {
        let mut s = lock(&app);
        let code = s.id("code-");
        s.codes.push(code.clone());
        code
    };
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("{redirect}?code={code}&state={state}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `POST /oauth/token`: `grant_type=authorization_code&code=` or
/// `grant_type=refresh_token&refresh_token=`; access tokens last an hour.
async fn token(State(app): State<App>, Query(q): Q) -> Response {
    let mut s = lock(&app);
    let valid = match q.get("grant_type").map(String::as_str) {
        Some("authorization_code") => match q.get("code").and_then(|c| s.codes.iter().position(|k| k == c)) {
            Some(i) => {
                s.codes.remove(i);
                true
            }
            None => false,
        },
        Some("refresh_token") => q.get("refresh_token").is_some_and(|r| s.refresh.contains_key(r)),
        _ => false,
    };
    if !valid {
        return error(StatusCode::BAD_REQUEST, "OAuthException", "invalid_grant");
    }
    let access = s.id("acc-");
    s.access.insert(access.clone(), Instant::now() + Duration::from_secs(3600));
    let refresh = if q.get("grant_type").map(String::as_str) == Some("authorization_code") {
        let refresh = s.id("ref-");
        s.refresh.insert(refresh.clone(), ());
        Some(refresh)
    } else {
        None
    };
    axum::Json(json!({ "access_token": access, "refresh_token": refresh, "expires": 3600 })).into_response()
}

async fn me(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Err(e) = authorized(&app, &headers) {
        return e.into_response();
    }
    axum::Json(json!({ "id": USER_ID, "name": "Example User" })).into_response()
}

fn stamp(at: &Option<DateTime<Utc>>) -> Value {
    json!(at.map(|t| t.timestamp()))
}

async fn liked(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    if let Err(e) = authorized(&app, &headers) {
        return e.into_response();
    }
    let s = lock(&app);
    let items = s
        .liked
        .iter()
        .filter_map(|(id, at)| {
            let mut t = track_json(s.tracks.get(id)?);
            t["time_add"] = stamp(at);
            Some(t)
        })
        .collect();
    page("/user/me/tracks", &q, items).map_or_else(IntoResponse::into_response, |b| axum::Json(b).into_response())
}

async fn albums(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    if let Err(e) = authorized(&app, &headers) {
        return e.into_response();
    }
    let s = lock(&app);
    let items = s
        .albums_saved
        .iter()
        .filter_map(|(id, at)| {
            let a = s.albums.get(id)?;
            Some(json!({ "id": a.id, "title": a.title, "contributors": credits_of(a), "time_add": stamp(at) }))
        })
        .collect();
    page("/user/me/albums", &q, items).map_or_else(IntoResponse::into_response, |b| axum::Json(b).into_response())
}

async fn artists(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    if let Err(e) = authorized(&app, &headers) {
        return e.into_response();
    }
    let s = lock(&app);
    let items =
        s.followed.iter().filter_map(|id| s.artists.get(id)).map(|a| json!({ "id": a.id, "name": a.name })).collect();
    page("/user/me/artists", &q, items).map_or_else(IntoResponse::into_response, |b| axum::Json(b).into_response())
}

async fn playlists(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    if let Err(e) = authorized(&app, &headers) {
        return e.into_response();
    }
    let s = lock(&app);
    let items = s
        .playlists
        .iter()
        .map(|p| {
            json!({
                "id": p.id, "title": p.title, "collaborative": p.collaborative, "checksum": p.checksum.to_string(),
                "nb_tracks": p.entries.len(), "creator": { "id": if p.owned { USER_ID } else { "2002" } },
            })
        })
        .collect();
    page("/user/me/playlists", &q, items).map_or_else(IntoResponse::into_response, |b| axum::Json(b).into_response())
}

async fn playlist_tracks(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>, q: Q) -> Response {
    if let Err(e) = authorized(&app, &headers) {
        return e.into_response();
    }
    let s = lock(&app);
    let Some(p) = s.playlists.iter().find(|p| p.id == id) else {
        return error(StatusCode::NOT_FOUND, "DataException", "no data");
    };
    let items = p
        .entries
        .iter()
        .filter_map(|e| {
            let mut t = track_json(s.tracks.get(&e.track)?);
            t["time_add"] = stamp(&e.added_at);
            t["item_id"] = json!(e.item_id);
            Some(t)
        })
        .collect();
    page(&format!("/playlist/{id}/tracks"), &q, items)
        .map_or_else(IntoResponse::into_response, |b| axum::Json(b).into_response())
}

/// Adds or removes one id of a user list; `true` as Deezer answers.
fn edit(
    app: &App,
    headers: &HeaderMap,
    q: &Q,
    param: &str,
    apply: impl FnOnce(&mut State0, String) -> bool,
) -> Response {
    if let Err(e) = authorized(app, headers) {
        return e.into_response();
    }
    let Some(id) = q.get(param).cloned() else {
        return bad(param);
    };
    let mut s = lock(app);
    if apply(&mut s, id) {
        axum::Json(json!(true)).into_response()
    } else {
        error(StatusCode::NOT_FOUND, "DataException", "no data")
    }
}

async fn like(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    edit(&app, &headers, &q, "track_id", |s, id| {
        if !s.tracks.contains_key(&id) {
            return false;
        }
        if !s.liked.iter().any(|(t, _)| *t == id) {
            s.liked.insert(0, (id, Some(Utc::now())));
        }
        true
    })
}

async fn unlike(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    edit(&app, &headers, &q, "track_id", |s, id| {
        s.liked.retain(|(t, _)| *t != id);
        true
    })
}

async fn save_album(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    edit(&app, &headers, &q, "album_id", |s, id| {
        if !s.albums.contains_key(&id) {
            return false;
        }
        if !s.albums_saved.iter().any(|(a, _)| *a == id) {
            s.albums_saved.insert(0, (id, Some(Utc::now())));
        }
        true
    })
}

async fn remove_album(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    edit(&app, &headers, &q, "album_id", |s, id| {
        s.albums_saved.retain(|(a, _)| *a != id);
        true
    })
}

async fn follow(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    edit(&app, &headers, &q, "artist_id", |s, id| {
        if !s.artists.contains_key(&id) {
            return false;
        }
        if !s.followed.contains(&id) {
            s.followed.push(id);
        }
        true
    })
}

async fn unfollow(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    edit(&app, &headers, &q, "artist_id", |s, id| {
        s.followed.retain(|a| *a != id);
        true
    })
}

/// `DELETE /playlist/{id}/tracks?items=it1,it2`: removes those entries (missing ones are
/// ignored); a new checksum when something changed.
async fn remove(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>, q: Q) -> Response {
    if let Err(e) = authorized(&app, &headers) {
        return e.into_response();
    }
    let items: Vec<String> = q.get("items").map(|v| v.split(',').map(str::to_owned).collect()).unwrap_or_default();
    if items.is_empty() || items.len() > PAGE_MAX {
        return bad("items");
    }
    let mut s = lock(&app);
    let checksum = s.next_id + 1;
    let Some(p) = s.playlists.iter_mut().find(|p| p.id == id && (p.owned || p.collaborative)) else {
        return error(StatusCode::FORBIDDEN, "PermissionException", "not allowed");
    };
    let before = p.entries.len();
    p.entries.retain(|e| !items.contains(&e.item_id));
    if p.entries.len() != before {
        p.checksum = checksum;
        s.next_id = checksum;
    }
    axum::Json(json!(true)).into_response()
}

/// `POST /playlist/{id}/tracks?songs=t1,t2&position=N`: inserts at `position` (clamped to
/// the end), answers the new entries' ids.
async fn insert(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>, q: Q) -> Response {
    if let Err(e) = authorized(&app, &headers) {
        return e.into_response();
    }
    let songs: Vec<String> = q.get("songs").map(|v| v.split(',').map(str::to_owned).collect()).unwrap_or_default();
    if songs.is_empty() || songs.len() > PAGE_MAX {
        return bad("songs");
    }
    let position: usize = match q.get("position").map(|v| v.parse()) {
        Some(Ok(p)) => p,
        None => usize::MAX,
        Some(Err(_)) => return bad("position"),
    };
    let mut s = lock(&app);
    if songs.iter().any(|t| !s.tracks.contains_key(t)) {
        return error(StatusCode::NOT_FOUND, "DataException", "no data");
    }
    let ids: Vec<String> = songs.iter().map(|_| s.id("it")).collect();
    let checksum = s.next_id;
    let Some(p) = s.playlists.iter_mut().find(|p| p.id == id && (p.owned || p.collaborative)) else {
        return error(StatusCode::FORBIDDEN, "PermissionException", "not allowed");
    };
    let at = position.min(p.entries.len());
    for (k, (song, item_id)) in songs.into_iter().zip(ids.iter()).enumerate() {
        p.entries.insert(at + k, Entry { item_id: item_id.clone(), track: song, added_at: Some(Utc::now()) });
    }
    p.checksum = checksum;
    axum::Json(json!({ "item_ids": ids, "position": at })).into_response()
}

async fn search(State(app): State<App>, headers: HeaderMap, q: Q) -> Response {
    if let Err(e) = authorized(&app, &headers) {
        return e.into_response();
    }
    let wanted = dnp_core::normalize::normalize_name(q.get("q").map_or("", String::as_str));
    let s = lock(&app);
    let mut hits: Vec<&dnp_core::Artist> =
        s.artists.values().filter(|a| dnp_core::normalize::normalize_name(&a.name).contains(&wanted)).collect();
    hits.sort_by(|a, b| a.name.len().cmp(&b.name.len()).then(a.id.cmp(&b.id)));
    let items = hits.into_iter().map(|a| json!({ "id": a.id, "name": a.name })).collect();
    page("/search/artist", &q, items).map_or_else(IntoResponse::into_response, |b| axum::Json(b).into_response())
}

async fn by_isrc(State(app): State<App>, headers: HeaderMap, Path(isrc): Path<String>) -> Response {
    if let Err(e) = authorized(&app, &headers) {
        return e.into_response();
    }
    let s = lock(&app);
    let mut found: Vec<&Track> = s.tracks.values().filter(|t| t.isrc.as_deref() == Some(isrc.as_str())).collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    match found.first() {
        Some(t) => axum::Json(track_json(t)).into_response(),
        None => error(StatusCode::NOT_FOUND, "DataException", "no data"),
    }
}
