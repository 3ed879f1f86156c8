//! The Data API routes under `/youtube/v3`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::{SubsecRound, Utc};
use dnp_core::normalize::normalize_name;
use serde_json::{Value, json};

use super::Shared;
use super::render::{self, Parts, list_response, page_token, parse_page_token};
use super::store::{Store, SubRec, UserRec};
use crate::emulator::FaultKind;
use crate::emulator::oauth::{AccessError, AccessInfo};
use crate::youtube_music::model::channel_artist_name;
use crate::youtube_music::quota::{LIST_COST, SEARCH_COST, WRITE_COST};

type App = Arc<Shared>;

/// Scopes that allow reading the account.
pub(crate) const READ_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/youtube",
    "https://www.googleapis.com/auth/youtube.readonly",
    "https://www.googleapis.com/auth/youtube.force-ssl",
    "https://www.googleapis.com/auth/youtubepartner",
];
/// Scopes that allow changing it.
pub(crate) const WRITE_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/youtube",
    "https://www.googleapis.com/auth/youtube.force-ssl",
    "https://www.googleapis.com/auth/youtubepartner",
];

/// Most ids one `id=` filter takes, and most results a page.
const MAX_RESULTS: usize = 50;
/// `maxResults` when the request gives none.
const DEFAULT_RESULTS: usize = 5;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An error in Google's shape:
/// `{"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    reason: &'static str,
    domain: &'static str,
    message: Cow<'static, str>,
    retry_after: Option<u64>,
    www_authenticate: bool,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, reason: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        let domain = match status {
            StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => "youtube.api",
            _ => "global",
        };
        Self { status, reason, domain, message: message.into(), retry_after: None, www_authenticate: false }
    }

    fn bad_request(reason: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { domain: "youtube.parameter", ..Self::new(StatusCode::BAD_REQUEST, reason, message) }
    }

    fn not_found(reason: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason, message)
    }

    fn forbidden(reason: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason, message)
    }

    fn unauthorized(message: &'static str) -> Self {
        Self { www_authenticate: true, domain: "global", ..Self::new(StatusCode::UNAUTHORIZED, "authError", message) }
    }

    pub(crate) fn quota_exceeded() -> Self {
        Self {
            domain: "youtube.quota",
            ..Self::new(
                StatusCode::FORBIDDEN,
                "quotaExceeded",
                "The request cannot be completed because you have exceeded your \
                 <a href=\"/youtube/v3/getting-started#quota\">quota</a>.",
            )
        }
    }

    /// The answer to an injected fault.
    pub(crate) fn from_fault(kind: &FaultKind) -> Self {
        let seconds = |d: std::time::Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        match *kind {
            FaultKind::RateLimited { retry_after } => Self {
                retry_after: Some(seconds(retry_after)),
                domain: "youtube.quota",
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rateLimitExceeded",
                    "The request cannot be completed because you have exceeded your rate limit.",
                )
            },
            // Google answers a spent daily quota 403 `quotaExceeded`, without Retry-After.
            FaultKind::QuotaExceeded { .. } => Self::quota_exceeded(),
            FaultKind::ServerError { status } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Self::new(status, "backendError", "Backend Error")
            }
            FaultKind::Timeout { .. } => Self::new(StatusCode::GATEWAY_TIMEOUT, "deadlineExceeded", "Deadline expired"),
            // A slow response is handled normally; it never reaches the renderer.
            FaultKind::Slow { .. } => Self::new(StatusCode::SERVICE_UNAVAILABLE, "backendError", "Backend Error"),
        }
    }
}

fn grpc_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "code": self.status.as_u16(),
                "message": self.message,
                "errors": [{ "message": self.message, "domain": self.domain, "reason": self.reason }],
                "status": grpc_status(self.status),
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.www_authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\""),
            );
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

    fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request("required", format!("Required parameter: {name}")))
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// A comma-separated list, trimmed, empty entries dropped.
    fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }

    /// `part`: required, each one known for the resource.
    fn parts(&self, known: &[&str]) -> Result<Parts, ApiError> {
        let parts = self.list("part").unwrap_or_default();
        if parts.is_empty() {
            return Err(ApiError::bad_request("required", "Required parameter: part"));
        }
        if let Some(unknown) = parts.iter().find(|p| !known.contains(&p.as_str())) {
            return Err(ApiError::bad_request("unknownPart", format!("'{unknown}'")));
        }
        Ok(Parts(parts))
    }

    /// `maxResults` within `min..=50`, default 5.
    fn max_results(&self, min: usize) -> Result<usize, ApiError> {
        match self.get("maxResults") {
            None => Ok(DEFAULT_RESULTS),
            Some(v) => v.parse::<usize>().ok().filter(|n| (min..=MAX_RESULTS).contains(n)).ok_or_else(|| {
                ApiError::bad_request(
                    "invalidParameter",
                    format!("Invalid value '{v}'. Values must be within the range: [{min}, {MAX_RESULTS}]"),
                )
            }),
        }
    }

    /// The page of `items` a `pageToken` of list `scope` asks for.
    fn page<'a, T>(&self, scope: &str, items: &'a [T], per_page: usize) -> Result<Page<'a, T>, ApiError> {
        let offset = match self.get("pageToken") {
            None | Some("") => 0,
            Some(token) => parse_page_token(scope, token).ok_or_else(|| {
                ApiError::bad_request("invalidPageToken", "The request specifies an invalid page token.")
            })?,
        };
        let start = offset.min(items.len());
        let end = start.saturating_add(per_page).min(items.len());
        let next = (per_page > 0 && end < items.len()).then(|| page_token(scope, end));
        let prev = (start > 0 && per_page > 0).then(|| page_token(scope, start.saturating_sub(per_page)));
        Ok(Page { items: &items[start..end], offset: start, next, prev, total: items.len(), per_page })
    }
}

struct Page<'a, T> {
    items: &'a [T],
    offset: usize,
    next: Option<String>,
    prev: Option<String>,
    total: usize,
    per_page: usize,
}

impl<T> Page<'_, T> {
    fn respond(&self, kind: &str, items: Vec<Value>) -> Response {
        json_ok(list_response(kind, items, self.next.clone(), self.prev.clone(), self.total, self.per_page))
    }
}

fn json_ok(value: Value) -> Response {
    (StatusCode::OK, Json(value)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Checks the bearer token and the scope, then charges `cost` quota units.
fn begin(app: &Shared, headers: &HeaderMap, scopes: &[&str], cost: u64) -> Result<AccessInfo, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let result = lock(&app.auth).validate(token);
    let info = result.map_err(|e| match e {
        AccessError::Missing => ApiError::unauthorized(
            "Request is missing required authentication credential. Expected OAuth 2 access token.",
        ),
        AccessError::Invalid | AccessError::Expired => {
            ApiError::unauthorized("Request had invalid authentication credentials. Expected OAuth 2 access token.")
        }
    })?;
    if !scopes.iter().any(|s| info.has_scope(s)) {
        return Err(ApiError::forbidden("insufficientPermissions", "Request had insufficient authentication scopes."));
    }
    let mut store = lock(&app.store);
    if !store.quota.charge(cost) {
        return Err(ApiError::quota_exceeded());
    }
    store.user_mut(&info.user_id);
    Ok(info)
}

fn user<'a>(store: &'a Store, info: &AccessInfo) -> Result<&'a UserRec, ApiError> {
    store
        .users
        .get(&info.user_id)
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "backendError", "Backend Error"))
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::bad_request("parseError", "Parse Error"))
}

/// The Data API routes, to be nested under `/youtube/v3`.
pub(crate) fn routes() -> Router<App> {
    use axum::routing::{get, post};
    Router::new()
        .route("/videos", get(list_videos))
        .route("/videos/rate", post(rate_video))
        .route("/playlists", get(list_playlists))
        .route("/playlistItems", get(list_playlist_items).post(insert_playlist_item).delete(delete_playlist_item))
        .route("/subscriptions", get(list_subscriptions).post(insert_subscription).delete(delete_subscription))
        .route("/search", get(search))
}

const VIDEO_PARTS: &[&str] = &[
    "id",
    "snippet",
    "contentDetails",
    "fileDetails",
    "liveStreamingDetails",
    "localizations",
    "player",
    "processingDetails",
    "recordingDetails",
    "statistics",
    "status",
    "suggestions",
    "topicDetails",
];

async fn list_videos(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = begin(&app, &headers, READ_SCOPES, LIST_COST)?;
    let params = Params::parse(q);
    let parts = params.parts(VIDEO_PARTS)?;
    let store = lock(&app.store);
    if let Some(ids) = params.list("id") {
        if ids.len() > MAX_RESULTS {
            return Err(ApiError::bad_request("invalidParameter", "Too many ids: at most 50."));
        }
        let items: Vec<Value> = ids.iter().filter_map(|id| render::video(&store, id, &parts)).collect();
        let n = items.len();
        return Ok(json_ok(list_response("youtube#videoListResponse", items, None, None, n, n)));
    }
    let rated = match params.get("myRating") {
        Some("like") => &user(&store, &info)?.liked,
        Some("dislike") => &user(&store, &info)?.disliked,
        Some(_) => return Err(ApiError::bad_request("invalidParameter", "Invalid value for myRating.")),
        None if params.get("chart").is_some() => {
            return Err(ApiError::bad_request("unsupportedChart", "Charts are not emulated."));
        }
        None => {
            return Err(ApiError::bad_request(
                "missingRequiredParameter",
                "No filter selected. Expected one of: myRating, chart, id",
            ));
        }
    };
    let scope = format!("videos:{}:{}", params.get("myRating").unwrap_or_default(), info.user_id);
    let page = params.page(&scope, rated, params.max_results(1)?)?;
    let items = page.items.iter().filter_map(|id| render::video(&store, id, &parts)).collect();
    Ok(page.respond("youtube#videoListResponse", items))
}

async fn rate_video(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = begin(&app, &headers, WRITE_SCOPES, WRITE_COST)?;
    let params = Params::parse(q);
    let id = params.required("id")?.to_owned();
    let rating = params.required("rating")?.to_owned();
    if !matches!(rating.as_str(), "like" | "dislike" | "none") {
        return Err(ApiError::bad_request(
            "invalidRating",
            "The request contained an unexpected value for the rating parameter.",
        ));
    }
    let mut store = lock(&app.store);
    if !store.videos.contains_key(&id) {
        return Err(ApiError::not_found("videoNotFound", "The video that you are trying to rate cannot be found."));
    }
    let user = store.user_mut(&info.user_id);
    match rating.as_str() {
        "like" => {
            user.disliked.retain(|v| *v != id);
            if !user.liked.contains(&id) {
                user.liked.insert(0, id);
            }
        }
        "dislike" => {
            user.liked.retain(|v| *v != id);
            if !user.disliked.contains(&id) {
                user.disliked.insert(0, id);
            }
        }
        _ => {
            user.liked.retain(|v| *v != id);
            user.disliked.retain(|v| *v != id);
        }
    }
    Ok(no_content())
}

const PLAYLIST_PARTS: &[&str] = &["id", "snippet", "contentDetails", "status", "player", "localizations"];

async fn list_playlists(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = begin(&app, &headers, READ_SCOPES, LIST_COST)?;
    let params = Params::parse(q);
    let parts = params.parts(PLAYLIST_PARTS)?;
    let store = lock(&app.store);
    let me = user(&store, &info)?;
    let (ids, scope): (Vec<String>, String) = if params.flag("mine") {
        (me.playlists.clone(), format!("playlists:mine:{}", info.user_id))
    } else if let Some(ids) = params.list("id") {
        if ids.len() > MAX_RESULTS {
            return Err(ApiError::bad_request("invalidParameter", "Too many ids: at most 50."));
        }
        let found = ids.into_iter().filter(|id| store.playlists.contains_key(id)).collect();
        (found, format!("playlists:id:{}", params.get("id").unwrap_or_default()))
    } else if let Some(channel) = params.get("channelId") {
        let mut found: Vec<String> =
            store.playlists.iter().filter(|(_, p)| p.channel_id == channel).map(|(id, _)| id.clone()).collect();
        found.sort();
        (found, format!("playlists:channel:{channel}"))
    } else {
        return Err(ApiError::bad_request(
            "missingRequiredParameter",
            "No filter selected. Expected one of: channelId, id, mine",
        ));
    };
    // Another user's private playlist is not listed.
    let visible: Vec<String> = ids
        .into_iter()
        .filter(|id| store.playlists.get(id).is_some_and(|p| p.channel_id == me.channel_id || !is_private(&store, p)))
        .collect();
    let page = params.page(&scope, &visible, params.max_results(0)?)?;
    let items = page
        .items
        .iter()
        .filter_map(|id| {
            let rec = store.playlists.get(id)?;
            Some(render::playlist(&store, id, rec, &parts, rec.channel_id == me.channel_id))
        })
        .collect();
    Ok(page.respond("youtube#playlistListResponse", items))
}

/// Whether a playlist is private: those of users (dnp's test users keep theirs private);
/// the made-up curators' playlists are public.
fn is_private(store: &Store, playlist: &super::store::PlaylistRec) -> bool {
    store.users.values().any(|u| u.channel_id == playlist.channel_id)
}

const ITEM_PARTS: &[&str] = &["id", "snippet", "contentDetails", "status"];

async fn list_playlist_items(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = begin(&app, &headers, READ_SCOPES, LIST_COST)?;
    let params = Params::parse(q);
    let parts = params.parts(ITEM_PARTS)?;
    let store = lock(&app.store);
    let me = user(&store, &info)?;
    if let Some(ids) = params.list("id") {
        let mut items = Vec::new();
        for id in ids.iter().take(MAX_RESULTS) {
            if let Some((pid, at)) = store.find_item(id)
                && let Some(rec) = store.playlists.get(&pid)
                && (rec.channel_id == me.channel_id || !is_private(&store, rec))
            {
                items.push(render::playlist_item(&store, &pid, rec, &rec.items[at], at, &parts));
            }
        }
        let n = items.len();
        return Ok(json_ok(list_response("youtube#playlistItemListResponse", items, None, None, n, n)));
    }
    let Some(playlist_id) = params.get("playlistId").filter(|p| !p.is_empty()) else {
        return Err(ApiError::bad_request(
            "playlistIdRequired",
            "The request does not specify a value for the required playlistId property.",
        ));
    };
    let Some(rec) = store.playlists.get(playlist_id) else {
        return Err(ApiError::not_found(
            "playlistNotFound",
            "The playlist identified with the request's <code>playlistId</code> parameter cannot be found.",
        ));
    };
    if rec.channel_id != me.channel_id && is_private(&store, rec) {
        return Err(ApiError::forbidden(
            "playlistItemsNotAccessible",
            "The request is not properly authorized to retrieve the specified playlist.",
        ));
    }
    let page = params.page(&format!("items:{playlist_id}"), &rec.items, params.max_results(0)?)?;
    let items = page
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| render::playlist_item(&store, playlist_id, rec, item, page.offset + i, &parts))
        .collect();
    Ok(page.respond("youtube#playlistItemListResponse", items))
}

async fn insert_playlist_item(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let info = begin(&app, &headers, WRITE_SCOPES, WRITE_COST)?;
    let params = Params::parse(q);
    let parts = params.parts(ITEM_PARTS)?;
    let body = body_json(&body)?;
    let snippet = &body["snippet"];
    let Some(playlist_id) = snippet["playlistId"].as_str().filter(|p| !p.is_empty()) else {
        return Err(ApiError::bad_request(
            "playlistIdRequired",
            "The request does not specify a value for the required playlistId property.",
        ));
    };
    let resource = &snippet["resourceId"];
    let (Some("youtube#video"), Some(video_id)) = (resource["kind"].as_str(), resource["videoId"].as_str()) else {
        return Err(ApiError::bad_request("invalidResourceId", "The resource ID specified in the request is invalid."));
    };
    let position = match &snippet["position"] {
        Value::Null => None,
        v => Some(v.as_u64().ok_or_else(|| {
            ApiError::bad_request("invalidPlaylistItemPosition", "The request attempts to set an invalid position.")
        })? as usize),
    };
    let mut store = lock(&app.store);
    let channel = store.user_mut(&info.user_id).channel_id.clone();
    let Some(rec) = store.playlists.get(playlist_id) else {
        return Err(ApiError::not_found(
            "playlistNotFound",
            "Playlist not found: the request's snippet.playlistId cannot be found.",
        ));
    };
    if rec.channel_id != channel {
        return Err(ApiError::forbidden(
            "playlistItemsNotAccessible",
            "The request is not properly authorized to insert the specified playlist item.",
        ));
    }
    if position.is_some_and(|p| p > rec.items.len()) {
        return Err(ApiError::bad_request(
            "invalidPlaylistItemPosition",
            "The request attempts to set the playlist item's position to an invalid or unsupported value.",
        ));
    }
    if !store.videos.contains_key(video_id) {
        return Err(ApiError::not_found("videoNotFound", "The video that you are trying to add cannot be found."));
    }
    let Some(item) = store.insert_item(playlist_id, video_id, position) else {
        return Err(ApiError::not_found("playlistNotFound", "Playlist not found."));
    };
    let Some(rec) = store.playlists.get(playlist_id) else {
        return Err(ApiError::not_found("playlistNotFound", "Playlist not found."));
    };
    let at = rec.items.iter().position(|i| i.id == item.id).unwrap_or(0);
    Ok(json_ok(render::playlist_item(&store, playlist_id, rec, &item, at, &parts)))
}

async fn delete_playlist_item(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = begin(&app, &headers, WRITE_SCOPES, WRITE_COST)?;
    let params = Params::parse(q);
    let id = params.required("id")?.to_owned();
    let mut store = lock(&app.store);
    let channel = store.user_mut(&info.user_id).channel_id.clone();
    let Some((playlist_id, at)) = store.find_item(&id) else {
        return Err(ApiError::not_found(
            "playlistItemNotFound",
            "The playlist item identified with the request's id parameter cannot be found.",
        ));
    };
    let Some(rec) = store.playlists.get_mut(&playlist_id) else {
        return Err(ApiError::not_found("playlistItemNotFound", "Playlist item not found."));
    };
    if rec.channel_id != channel {
        return Err(ApiError::forbidden(
            "playlistItemsNotAccessible",
            "The request is not properly authorized to delete the specified playlist item.",
        ));
    }
    rec.items.remove(at);
    rec.revision += 1;
    Ok(no_content())
}

const SUBSCRIPTION_PARTS: &[&str] = &["id", "snippet", "contentDetails", "subscriberSnippet"];

async fn list_subscriptions(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = begin(&app, &headers, READ_SCOPES, LIST_COST)?;
    let params = Params::parse(q);
    let parts = params.parts(SUBSCRIPTION_PARTS)?;
    let store = lock(&app.store);
    let me = user(&store, &info)?;
    let (subscriber, mut subs, scope): (String, Vec<SubRec>, String) = if params.flag("mine") {
        (me.channel_id.clone(), me.subscriptions.clone(), format!("subs:mine:{}", info.user_id))
    } else if let Some(ids) = params.list("id") {
        let subs = me.subscriptions.iter().filter(|s| ids.contains(&s.id)).cloned().collect();
        (me.channel_id.clone(), subs, format!("subs:id:{}", params.get("id").unwrap_or_default()))
    } else if let Some(channel) = params.get("channelId") {
        // Another channel's subscriptions: those of the user owning it (kept private by
        // dnp's test users, so only the caller's own are listed).
        let subs = if channel == me.channel_id { me.subscriptions.clone() } else { Vec::new() };
        (channel.to_owned(), subs, format!("subs:channel:{channel}"))
    } else {
        return Err(ApiError::bad_request(
            "missingRequiredParameter",
            "No filter selected. Expected one of: mine, id, channelId, mySubscribers",
        ));
    };
    if let Some(channels) = params.list("forChannelId") {
        subs.retain(|s| channels.contains(&s.channel_id));
    }
    let order = params.get("order").unwrap_or("relevance");
    match order {
        "alphabetical" => subs.sort_by_cached_key(|s| {
            let title = store.channels.get(&s.channel_id).map(|c| c.title.to_lowercase()).unwrap_or_default();
            (title, s.id.clone())
        }),
        "relevance" | "unread" | "subscriptionOrderUnspecified" => {}
        _ => return Err(ApiError::bad_request("invalidParameter", "Invalid value for order.")),
    }
    let scope = format!("{scope}:{order}:{}", params.get("forChannelId").unwrap_or_default());
    let page = params.page(&scope, &subs, params.max_results(0)?)?;
    let items = page.items.iter().map(|s| render::subscription(&store, &subscriber, s, &parts)).collect();
    Ok(page.respond("youtube#subscriptionListResponse", items))
}

async fn insert_subscription(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let info = begin(&app, &headers, WRITE_SCOPES, WRITE_COST)?;
    let params = Params::parse(q);
    let parts = params.parts(SUBSCRIPTION_PARTS)?;
    let body = body_json(&body)?;
    let resource = &body["snippet"]["resourceId"];
    let Some(channel_id) = resource["channelId"].as_str().filter(|c| !c.is_empty()) else {
        return Err(ApiError::bad_request(
            "subscriptionWithoutChannel",
            "The subscription resource specified in the request must use the snippet.resourceId.channelId property.",
        ));
    };
    let mut store = lock(&app.store);
    if !store.channels.contains_key(channel_id) {
        return Err(ApiError::not_found(
            "publisherNotFound",
            "The resource specified by the request's snippet.resourceId property cannot be found.",
        ));
    }
    let id = store.new_id("", 43);
    let user = store.user_mut(&info.user_id);
    if user.channel_id == channel_id {
        return Err(ApiError::bad_request("subscriptionForbidden", "You cannot subscribe to your own channel."));
    }
    if user.subscriptions.iter().any(|s| s.channel_id == channel_id) {
        return Err(ApiError::bad_request(
            "subscriptionDuplicate",
            "The subscription that you are trying to create already exists.",
        ));
    }
    let sub = SubRec { id, channel_id: channel_id.to_owned(), published_at: Utc::now().trunc_subsecs(0) };
    user.subscriptions.insert(0, sub.clone());
    let subscriber = user.channel_id.clone();
    Ok(json_ok(render::subscription(&store, &subscriber, &sub, &parts)))
}

async fn delete_subscription(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let info = begin(&app, &headers, WRITE_SCOPES, WRITE_COST)?;
    let params = Params::parse(q);
    let id = params.required("id")?.to_owned();
    let mut store = lock(&app.store);
    let user = store.user_mut(&info.user_id);
    let before = user.subscriptions.len();
    user.subscriptions.retain(|s| s.id != id);
    if user.subscriptions.len() == before {
        return Err(ApiError::not_found(
            "subscriptionNotFound",
            "The subscription that you are trying to delete cannot be found.",
        ));
    }
    Ok(no_content())
}

async fn search(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let _info = begin(&app, &headers, READ_SCOPES, SEARCH_COST)?;
    let params = Params::parse(q);
    params.parts(&["snippet", "id"])?;
    let query = normalize_name(params.get("q").unwrap_or_default());
    let types = params.list("type").unwrap_or_else(|| vec!["video".into(), "channel".into(), "playlist".into()]);
    if let Some(bad) = types.iter().find(|t| !matches!(t.as_str(), "video" | "channel" | "playlist")) {
        return Err(ApiError::bad_request("invalidSearchFilter", format!("Invalid type '{bad}'.")));
    }
    let store = lock(&app.store);
    // (rank, kind, id): an exact artist name first, YouTube Music's "- Topic" channels
    // before others, then names containing the query.
    let mut hits: Vec<(u8, bool, String)> = Vec::new();
    if types.iter().any(|t| t == "channel") {
        for (id, channel) in &store.channels {
            let name = normalize_name(channel_artist_name(&channel.title));
            let topic = channel.title.ends_with(crate::youtube_music::model::TOPIC_SUFFIX);
            let rank = if query.is_empty() || name == query {
                0
            } else if name.contains(&query) || query.contains(&name) {
                2
            } else {
                continue;
            };
            hits.push((rank + u8::from(!topic), true, id.clone()));
        }
    }
    if types.iter().any(|t| t == "video") && !query.is_empty() {
        for (id, video) in &store.videos {
            if normalize_name(&video.title).contains(&query) {
                hits.push((4, false, id.clone()));
            }
        }
    }
    hits.sort();
    let scope = format!("search:{query}:{}", types.join(","));
    let page = params.page(&scope, &hits, params.max_results(0)?)?;
    let items =
        page.items
            .iter()
            .filter_map(|(_, channel, id)| {
                if *channel { Some(render::channel_result(&store, id)) } else { render::video_result(&store, id) }
            })
            .collect();
    Ok(page.respond("youtube#searchListResponse", items))
}
