//! The API routes under `/v2`: JSON:API documents, cursor paging, includes, errors,
//! idempotency keys.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use chrono::{DateTime, Utc};
use dnp_core::normalize::normalize_name;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::store::{Entry, IdempotentAnswer, ItemRec, Kind, PlaylistRec, Store, insert_sorted, millis};
use crate::emulator::FaultKind;
use crate::emulator::oauth::{AccessError, AccessInfo};
use crate::tidal::client::{MAX_IDEMPOTENCY_KEY, MUTATION_BATCH, PAGE_SIZE, timestamp};
use crate::tidal::model::{JSON_API, format_duration};

type App = Arc<Shared>;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An error as a JSON:API error document: `{"errors": [{"status": "400", "detail": …}]}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    detail: Cow<'static, str>,
    code: Option<&'static str>,
    retry_after: Option<u64>,
    www_authenticate: bool,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Self { status, detail: detail.into(), code: None, retry_after: None, www_authenticate: false }
    }

    fn bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Resource not found")
    }

    fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    fn unauthorized(detail: &'static str) -> Self {
        Self { www_authenticate: true, ..Self::new(StatusCode::UNAUTHORIZED, detail) }
    }

    /// The answer to an injected fault.
    pub(crate) fn from_fault(kind: &FaultKind) -> Self {
        let seconds = |d: std::time::Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        match *kind {
            // TIDAL has no quota: a spent quota is an ordinary rate limit there.
            FaultKind::RateLimited { retry_after } | FaultKind::QuotaExceeded { retry_after } => Self {
                retry_after: Some(seconds(retry_after)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded")
            },
            FaultKind::ServerError { status } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Self::new(status, status.canonical_reason().unwrap_or("Server error"))
            }
            FaultKind::Timeout { .. } => Self::new(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout"),
            // A slow response is handled normally; it never reaches the renderer.
            FaultKind::Slow { .. } => Self::new(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
        }
    }

    fn body(&self) -> Value {
        let mut error = json!({ "status": self.status.as_u16().to_string(), "detail": self.detail });
        if let (Some(code), Some(object)) = (self.code, error.as_object_mut()) {
            object.insert("code".into(), json!(code));
        }
        json!({ "errors": [error] })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = document(self.status, &self.body());
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            // TIDAL's token bucket, as its gateway reports it.
            headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            headers.insert("x-ratelimit-replenish-rate", HeaderValue::from_static("10"));
            headers.insert("x-ratelimit-burst-capacity", HeaderValue::from_static("20"));
            headers.insert("x-ratelimit-requested-tokens", HeaderValue::from_static("1"));
        }
        if self.www_authenticate {
            let value =
                format!("Bearer realm=\"tidal\", error=\"invalid_token\", error_description=\"{}\"", self.detail);
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

type ApiResult = Result<Response, ApiError>;

/// A JSON:API document response.
fn document(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    raw_document(status, body)
}

fn raw_document(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    response
}

/// The decoded query string (array parameters may repeat or be comma-separated).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<&str>) -> Self {
        Self(url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Refuses parameters the endpoint does not know (the API answers 400).
    fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(ApiError::bad_request(format!(
                "Unknown parameter '{}'. Available parameters: {}",
                k.chars().take(40).collect::<String>(),
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// The 0-based offset a `page[cursor]` stands for.
    fn offset(&self) -> Result<usize, ApiError> {
        match self.get("page[cursor]") {
            None => Ok(0),
            Some(cursor) => decode_cursor(cursor).ok_or_else(|| ApiError::bad_request("Invalid page cursor")),
        }
    }
}

/// The emulator's cursors are opaque to clients: an offset, mixed and hex-encoded.
fn encode_cursor(offset: usize) -> String {
    format!("c{:x}", (offset as u64) ^ 0x7d1a_5eed)
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let value = u64::from_str_radix(cursor.strip_prefix('c')?, 16).ok()?;
    usize::try_from(value ^ 0x7d1a_5eed).ok()
}

/// The include tree of a request: `items.albums.artists` → items → albums → artists.
#[derive(Debug, Default, Clone)]
struct Include(BTreeMap<String, Self>);

impl Include {
    /// Parses `include` against the paths the endpoint allows.
    fn parse(params: &Params, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut tree = Self::default();
        for path in params.list("include") {
            if !allowed.contains(&path.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Invalid include path '{}'. Available: {}",
                    path.chars().take(60).collect::<String>(),
                    allowed.join(", ")
                )));
            }
            let mut node = &mut tree;
            for segment in path.split('.') {
                node = node.0.entry(segment.to_owned()).or_default();
            }
        }
        Ok(tree)
    }

    fn get(&self, name: &str) -> Option<&Self> {
        self.0.get(name)
    }
}

/// Builds `included`, each resource once.
struct Included<'a> {
    store: &'a Store,
    seen: HashSet<(&'static str, String)>,
    values: Vec<Value>,
}

fn to_many(kind: &str, ids: &[String], self_link: String) -> Value {
    json!({
        "data": ids.iter().map(|id| json!({ "id": id, "type": kind })).collect::<Vec<_>>(),
        "links": { "self": self_link },
    })
}

impl<'a> Included<'a> {
    fn new(store: &'a Store) -> Self {
        Self { store, seen: HashSet::new(), values: Vec::new() }
    }

    fn first_time(&mut self, kind: &'static str, id: &str) -> bool {
        self.seen.insert((kind, id.to_owned()))
    }

    fn track_object(&self, id: &str, include: &Include) -> Option<Value> {
        let rec = self.store.tracks.get(id)?;
        let mut relationships = serde_json::Map::new();
        if include.get("artists").is_some() {
            relationships.insert(
                "artists".into(),
                to_many("artists", &rec.artists, format!("/tracks/{id}/relationships/artists")),
            );
        }
        if include.get("albums").is_some() {
            let albums: Vec<String> = rec.album.iter().cloned().collect();
            relationships
                .insert("albums".into(), to_many("albums", &albums, format!("/tracks/{id}/relationships/albums")));
        }
        let mut object = json!({
            "id": id,
            "type": "tracks",
            "attributes": {
                "title": rec.title,
                "isrc": rec.isrc.clone().unwrap_or_default(),
                "duration": format_duration(rec.duration_ms.unwrap_or(0)),
                "explicit": false,
                "key": "UNKNOWN",
                "keyScale": "UNKNOWN",
                "mediaTags": ["LOSSLESS"],
                "popularity": 0.5,
                "accessType": "PUBLIC",
                "externalLinks": [{ "href": format!("https://tidal.com/browse/track/{id}"), "meta": { "type": "TIDAL_SHARING" } }],
            },
        });
        if !relationships.is_empty() {
            object["relationships"] = Value::Object(relationships);
        }
        Some(object)
    }

    /// Includes track `id` and, per `include`, its artists and albums.
    fn track(&mut self, id: &str, include: &Include) {
        if !self.first_time("tracks", id) {
            return;
        }
        let Some(object) = self.track_object(id, include) else {
            return;
        };
        self.values.push(object);
        let Some(rec) = self.store.tracks.get(id) else {
            return;
        };
        if let Some(sub) = include.get("artists") {
            for artist in &rec.artists {
                self.artist(artist, sub);
            }
        }
        if let (Some(sub), Some(album)) = (include.get("albums"), &rec.album) {
            self.album(album, sub);
        }
    }

    fn album(&mut self, id: &str, include: &Include) {
        if !self.first_time("albums", id) {
            return;
        }
        let Some(rec) = self.store.albums.get(id) else {
            return;
        };
        let mut object = json!({
            "id": id,
            "type": "albums",
            "attributes": {
                "title": rec.title,
                "albumType": if rec.tracks.len() < 4 { "SINGLE" } else { "ALBUM" },
                "barcodeId": format!("{:012}", id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 1_000_000_000_000),
                "duration": format_duration(0),
                "explicit": false,
                "mediaTags": ["LOSSLESS"],
                "numberOfItems": rec.tracks.len(),
                "numberOfVolumes": 1,
                "popularity": 0.5,
                "externalLinks": [{ "href": format!("https://tidal.com/browse/album/{id}"), "meta": { "type": "TIDAL_SHARING" } }],
            },
        });
        if include.get("artists").is_some() {
            object["relationships"] =
                json!({ "artists": to_many("artists", &rec.artists, format!("/albums/{id}/relationships/artists")) });
        }
        self.values.push(object);
        if let Some(sub) = include.get("artists") {
            for artist in &rec.artists {
                self.artist(artist, sub);
            }
        }
    }

    fn artist(&mut self, id: &str, _include: &Include) {
        if !self.first_time("artists", id) {
            return;
        }
        if let Some(object) = artist_object(self.store, id) {
            self.values.push(object);
        }
    }

    fn user(&mut self, id: &str) {
        if self.first_time("users", id) {
            self.values.push(user_object(self.store, id));
        }
    }

    fn playlist(&mut self, id: &str, include: &Include) {
        if !self.first_time("playlists", id) {
            return;
        }
        let Some(rec) = self.store.playlists.get(id) else {
            return;
        };
        let mut object = json!({
            "id": id,
            "type": "playlists",
            "attributes": {
                "name": rec.name,
                "accessType": "PUBLIC",
                "bounded": true,
                "createdAt": timestamp(rec.created_at),
                "lastModifiedAt": rec.version(),
                "externalLinks": [{ "href": format!("https://tidal.com/browse/playlist/{id}"), "meta": { "type": "TIDAL_SHARING" } }],
                "numberOfFollowers": 0,
                "numberOfItems": rec.items.len(),
                "numberOfTrackItems": rec.items.len(),
                "numberOfVideoItems": 0,
                "playlistType": "USER",
            },
        });
        let mut relationships = serde_json::Map::new();
        let owners = vec![rec.owner.clone()];
        let collaborators: Vec<String> = rec.collaborators.iter().cloned().collect();
        if include.get("owners").is_some() {
            relationships
                .insert("owners".into(), to_many("users", &owners, format!("/playlists/{id}/relationships/owners")));
        }
        if include.get("collaborators").is_some() {
            relationships.insert(
                "collaborators".into(),
                to_many("users", &collaborators, format!("/playlists/{id}/relationships/collaborators")),
            );
        }
        if !relationships.is_empty() {
            object["relationships"] = Value::Object(relationships);
        }
        self.values.push(object);
        if include.get("owners").is_some() {
            self.user(&rec.owner);
        }
        if include.get("collaborators").is_some() {
            for c in &collaborators {
                self.user(c);
            }
        }
    }
}

fn artist_object(store: &Store, id: &str) -> Option<Value> {
    let rec = store.artists.get(id)?;
    Some(json!({
        "id": id,
        "type": "artists",
        "attributes": {
            "name": rec.name,
            "popularity": rec.popularity,
            "externalLinks": [{ "href": format!("https://tidal.com/browse/artist/{id}"), "meta": { "type": "TIDAL_SHARING" } }],
        },
    }))
}

fn user_object(store: &Store, id: &str) -> Value {
    let username = store.users.get(id).map_or_else(|| id.to_owned(), |u| u.username.clone());
    json!({ "id": id, "type": "users", "attributes": { "username": username, "country": "US", "developerAccessTier": "THIRD_PARTY" } })
}

fn authenticate(app: &Shared, headers: &HeaderMap) -> Result<AccessInfo, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let result = lock(&app.auth).validate(token);
    let info = result.map_err(|e| match e {
        AccessError::Missing => ApiError::unauthorized("Missing access token"),
        AccessError::Invalid => ApiError::unauthorized("Invalid access token"),
        AccessError::Expired => ApiError::unauthorized("The access token has expired"),
    })?;
    lock(&app.store)
        .users
        .entry(info.user_id.clone())
        .or_insert_with(|| super::store::UserRec { username: info.user_id.clone(), ..Default::default() });
    Ok(info)
}

fn require_scope(info: &AccessInfo, scope: &'static str) -> Result<(), ApiError> {
    if info.has_scope(scope) { Ok(()) } else { Err(ApiError::forbidden(format!("Missing required scope: {scope}"))) }
}

/// The path's user id must be `me` or the caller's own id.
fn own_collection(info: &AccessInfo, id: &str) -> Result<(), ApiError> {
    if id == "me" || id == info.user_id { Ok(()) } else { Err(ApiError::not_found()) }
}

/// The API routes, to be nested under `/v2`.
pub(crate) fn routes() -> Router<App> {
    use axum::routing::get;
    let mut router = Router::new().route("/users/{id}", get(get_user));
    for kind in [Kind::Tracks, Kind::Albums, Kind::Artists, Kind::Playlists] {
        router = router
            .route(&format!("/{}/{{id}}/relationships/items", collection_resource(kind)), collection_routes(kind));
    }
    router
        .route(
            "/playlists/{id}/relationships/items",
            get(playlist_items_get).post(playlist_items_post).delete(playlist_items_delete),
        )
        .route("/tracks", get(get_tracks))
        .route("/searchResults", get(search))
}

/// `GET`, `POST` and `DELETE` on the items of the user's `kind` collection.
fn collection_routes(kind: Kind) -> MethodRouter<App> {
    axum::routing::get(move |s, p, h, q| collection_get(s, p, h, q, kind))
        .post(move |s, p, h, u, b| collection_post(s, p, h, u, b, kind))
        .delete(move |s, p, h, u, b| collection_delete(s, p, h, u, b, kind))
}

async fn get_user(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, "user.read")?;
    own_collection(&info, &id)?;
    let store = lock(&app.store);
    Ok(document(
        StatusCode::OK,
        &json!({ "data": user_object(&store, &info.user_id), "links": { "self": format!("/users/{id}") } }),
    ))
}

/// Links of a page at `offset` of `total` items: `self`, and `next` with its cursor while
/// more pages exist, keeping the request's other parameters.
fn page_links(path: &str, params: &Params, offset: usize, total: usize) -> Value {
    let others: Vec<(String, String)> = params.0.iter().filter(|(k, _)| k != "page[cursor]").cloned().collect();
    let query = |cursor: Option<String>| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &others {
            q.append_pair(k, v);
        }
        if let Some(c) = cursor {
            q.append_pair("page[cursor]", &c);
        }
        let q = q.finish();
        if q.is_empty() { path.to_owned() } else { format!("{path}?{q}") }
    };
    let self_cursor = (offset > 0).then(|| encode_cursor(offset));
    let mut links = json!({ "self": query(self_cursor) });
    if offset + (PAGE_SIZE as usize) < total {
        let next = encode_cursor(offset + PAGE_SIZE as usize);
        links["next"] = json!(query(Some(next.clone())));
        links["meta"] = json!({ "nextCursor": next });
    }
    links
}

fn check_sort(params: &Params, allowed: &[&str]) -> Result<bool, ApiError> {
    let sort = params.list("sort");
    match sort.as_slice() {
        [] => Ok(false),
        [one] if one == "-addedAt" && allowed.contains(&"-addedAt") => Ok(false),
        [one] if one == "addedAt" && allowed.contains(&"addedAt") => Ok(true),
        _ => Err(ApiError::bad_request(format!(
            "Unsupported sort '{}' (the emulator sorts by addedAt only)",
            sort.join(",").chars().take(60).collect::<String>()
        ))),
    }
}

async fn collection_get(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    kind: Kind,
) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, "collection.read")?;
    own_collection(&info, &id)?;
    let params = Params::parse(q.as_deref());
    let allowed: &[&str] = match kind {
        Kind::Tracks => &["items", "items.artists", "items.albums", "items.albums.artists"],
        Kind::Albums => &["items", "items.artists"],
        Kind::Artists => &["items"],
        Kind::Playlists => &["items", "items.owners", "items.collaborators"],
    };
    let mut known = vec!["page[cursor]", "sort", "include", "locale", "replaceMedia"];
    if kind == Kind::Playlists {
        known.push("collectionView");
        if params.get("collectionView").is_some_and(|v| v != "FLAT" && v != "FOLDERS") {
            return Err(ApiError::bad_request("Invalid collectionView: FLAT or FOLDERS"));
        }
    }
    params.only(&known)?;
    let include = Include::parse(&params, allowed)?;
    let ascending = check_sort(&params, &["addedAt", "-addedAt"])?;
    let offset = params.offset()?;
    let store = lock(&app.store);
    let mut list: Vec<&Entry> =
        store.users.get(&info.user_id).map(|u| u.collection(kind).iter().collect()).unwrap_or_default();
    if ascending {
        list.reverse();
    }
    if offset > list.len() {
        return Err(ApiError::bad_request("Invalid page cursor"));
    }
    let page: Vec<&Entry> = list.iter().skip(offset).take(PAGE_SIZE as usize).copied().collect();
    let data: Vec<Value> = page
        .iter()
        .map(|e| json!({ "id": e.id, "type": kind.item_type(), "meta": { "addedAt": timestamp(e.added_at) } }))
        .collect();
    let mut included = Included::new(&store);
    if let Some(items) = include.get("items") {
        for e in &page {
            match kind {
                Kind::Tracks => included.track(&e.id, items),
                Kind::Albums => included.album(&e.id, items),
                Kind::Artists => included.artist(&e.id, items),
                Kind::Playlists => included.playlist(&e.id, items),
            }
        }
    }
    let path = format!("/{}/{id}/relationships/items", collection_resource(kind));
    let mut doc = json!({ "data": data, "links": page_links(&path, &params, offset, list.len()) });
    if include.get("items").is_some() {
        doc["included"] = Value::Array(included.values);
    }
    Ok(document(StatusCode::OK, &doc))
}

fn collection_resource(kind: Kind) -> &'static str {
    match kind {
        Kind::Tracks => "userCollectionTracks",
        Kind::Albums => "userCollectionAlbums",
        Kind::Artists => "userCollectionArtists",
        Kind::Playlists => "userCollectionPlaylists",
    }
}

#[derive(Debug, Deserialize)]
struct RawItem {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    meta: Option<RawItemMeta>,
}

#[derive(Debug, Default, Deserialize)]
struct RawItemMeta {
    #[serde(rename = "addedAt", default)]
    added_at: Option<DateTime<Utc>>,
    #[serde(rename = "itemId", default)]
    item_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawPayload {
    data: Vec<RawItem>,
    #[serde(default)]
    meta: Option<RawPayloadMeta>,
}

#[derive(Debug, Default, Deserialize)]
struct RawPayloadMeta {
    #[serde(rename = "positionBefore", default)]
    position_before: Option<String>,
}

/// Checks the media type and reads a mutation payload of 1 to 50 items of `types`.
fn payload(headers: &HeaderMap, body: &[u8], types: &[&str]) -> Result<RawPayload, ApiError> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if media.split(';').next().map(str::trim) != Some(JSON_API) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type: send application/vnd.api+json",
        ));
    }
    let payload: RawPayload = serde_json::from_slice(body).map_err(|e| {
        let message: String = e.to_string().chars().take(120).collect();
        ApiError::bad_request(format!("Invalid request body: {message}"))
    })?;
    if payload.data.is_empty() || payload.data.len() > MUTATION_BATCH {
        return Err(ApiError::bad_request(format!("data: size must be between 1 and {MUTATION_BATCH}")));
    }
    if let Some(bad) = payload.data.iter().find(|i| !types.contains(&i.kind.as_str())) {
        return Err(ApiError::bad_request(format!(
            "data.type '{}' is not allowed here: {}",
            bad.kind.chars().take(40).collect::<String>(),
            types.join(", ")
        )));
    }
    Ok(payload)
}

/// Runs a mutation under the `Idempotency-Key` rules: the same key with the same payload
/// within an hour gets the first answer again (marked `Idempotent-Replayed: true`)
/// without applying; with another payload, `422`. `apply` runs under the store's lock,
/// so a mutation is never seen half done and "in progress" (`409`) cannot arise.
fn idempotent(
    app: &Shared,
    info: &AccessInfo,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    body: &[u8],
    apply: impl FnOnce(&mut Store) -> Result<(StatusCode, Value), ApiError>,
) -> ApiResult {
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => Some(k.to_owned()),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
            )));
        }
    };
    let fingerprint = {
        let mut h = DefaultHasher::new();
        method.as_str().hash(&mut h);
        path.hash(&mut h);
        body.hash(&mut h);
        h.finish()
    };
    let mut store = lock(&app.store);
    store.expire_idempotency();
    if let Some(key) = &key
        && let Some(answer) = store.idempotency.get(&(info.user_id.clone(), key.clone()))
    {
        if answer.fingerprint != fingerprint {
            return Err(ApiError {
                code: Some("IDEMPOTENT_REQUEST_PAYLOAD_MISMATCH"),
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Idempotency key reused with a different payload")
            });
        }
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
        let mut response = raw_document(status, answer.body.clone());
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(response);
    }
    let (status, body) = match apply(&mut store) {
        Ok((status, value)) => (status, serde_json::to_vec(&value).unwrap_or_default()),
        Err(err) => (err.status, serde_json::to_vec(&err.body()).unwrap_or_default()),
    };
    if let Some(key) = key {
        store.idempotency.insert(
            (info.user_id.clone(), key),
            IdempotentAnswer { fingerprint, status: status.as_u16(), body: body.clone(), at: Instant::now() },
        );
    }
    Ok(raw_document(status, body))
}

fn catalog_has(store: &Store, kind: Kind, id: &str) -> bool {
    match kind {
        Kind::Tracks => store.tracks.contains_key(id),
        Kind::Albums => store.albums.contains_key(id),
        Kind::Artists => store.artists.contains_key(id),
        Kind::Playlists => store.playlists.contains_key(id),
    }
}

async fn collection_post(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
    kind: Kind,
) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, "collection.write")?;
    own_collection(&info, &id)?;
    let payload = payload(&headers, &body, &[kind.item_type()])?;
    let path = uri.path().to_owned();
    idempotent(&app, &info, &headers, &Method::POST, &path, &body, |store| {
        let now = store.tick();
        let mut added = Vec::new();
        let mut skipped = Vec::new();
        for item in &payload.data {
            let present =
                store.users.get(&info.user_id).is_some_and(|u| u.collection(kind).iter().any(|e| e.id == item.id));
            if !catalog_has(store, kind, &item.id) {
                skipped.push(json!({ "id": item.id, "type": item.kind, "reason": "NOT_FOUND" }));
            } else if present {
                skipped.push(json!({ "id": item.id, "type": item.kind, "reason": "ALREADY_PRESENT" }));
            } else {
                let added_at = item.meta.as_ref().and_then(|m| m.added_at).map(millis).unwrap_or(now);
                if let Some(user) = store.users.get_mut(&info.user_id) {
                    insert_sorted(user.collection_mut(kind), Entry { id: item.id.clone(), added_at });
                }
                added.push(json!({ "id": item.id, "type": item.kind, "meta": { "addedAt": timestamp(added_at) } }));
            }
        }
        Ok(added_document(&path, added, skipped))
    })
}

async fn collection_delete(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
    kind: Kind,
) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, "collection.write")?;
    own_collection(&info, &id)?;
    let payload = payload(&headers, &body, &[kind.item_type()])?;
    let path = uri.path().to_owned();
    idempotent(&app, &info, &headers, &Method::DELETE, &path, &body, |store| {
        let ids: HashSet<&str> = payload.data.iter().map(|i| i.id.as_str()).collect();
        if let Some(user) = store.users.get_mut(&info.user_id) {
            // Members already missing are not an error (JSON:API).
            user.collection_mut(kind).retain(|e| !ids.contains(e.id.as_str()));
        }
        Ok((StatusCode::OK, json!({ "links": { "self": path.trim_start_matches("/v2") } })))
    })
}

async fn playlist_items_get(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let _info = authenticate(&app, &headers)?;
    let params = Params::parse(q.as_deref());
    params.only(&["page[cursor]", "sort", "countryCode", "include", "filter[query]", "replaceMedia"])?;
    let include = Include::parse(&params, &["items", "items.artists", "items.albums", "items.albums.artists"])?;
    match params.list("sort").as_slice() {
        [] => {}
        [one] if one == "itemIndex" => {}
        _ => return Err(ApiError::bad_request("Unsupported sort (the emulator sorts by itemIndex only)")),
    }
    if params.get("filter[query]").is_some() {
        return Err(ApiError::bad_request("filter[query] is not emulated"));
    }
    let offset = params.offset()?;
    let store = lock(&app.store);
    // Every emulated playlist is PUBLIC: anyone may read its items.
    let playlist = store.playlists.get(&id).ok_or_else(ApiError::not_found)?;
    if offset > playlist.items.len() {
        return Err(ApiError::bad_request("Invalid page cursor"));
    }
    let page: Vec<&ItemRec> = playlist.items.iter().skip(offset).take(PAGE_SIZE as usize).collect();
    let data: Vec<Value> = page
        .iter()
        .map(|i| {
            json!({
                "id": i.track_id,
                "type": "tracks",
                "meta": { "itemId": i.item_id, "addedAt": timestamp(i.added_at) },
            })
        })
        .collect();
    let mut included = Included::new(&store);
    if let Some(items) = include.get("items") {
        for i in &page {
            included.track(&i.track_id, items);
        }
    }
    let path = format!("/playlists/{id}/relationships/items");
    let mut doc = json!({ "data": data, "links": page_links(&path, &params, offset, playlist.items.len()) });
    if include.get("items").is_some() {
        doc["included"] = Value::Array(included.values);
    }
    Ok(document(StatusCode::OK, &doc))
}

/// Playlist `id`, which `user_id` may edit: `404` when there is none, `403` when it is
/// someone else's and not collaborative.
fn editable_playlist<'a>(store: &'a Store, id: &str, user_id: &str) -> Result<&'a PlaylistRec, ApiError> {
    let playlist = store.playlists.get(id).ok_or_else(ApiError::not_found)?;
    if playlist.can_edit(user_id) {
        Ok(playlist)
    } else {
        Err(ApiError::forbidden("The user may not edit this playlist"))
    }
}

/// The answer to a `POST` adding to a collection or a playlist at `path`: the members
/// `added`, and those `skipped` with the reason.
fn added_document(path: &str, added: Vec<Value>, skipped: Vec<Value>) -> (StatusCode, Value) {
    (
        StatusCode::OK,
        json!({ "data": added, "links": { "self": path.trim_start_matches("/v2") }, "meta": { "skipped": skipped } }),
    )
}

async fn playlist_items_post(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, "playlists.write")?;
    let payload = payload(&headers, &body, &["tracks", "videos"])?;
    let path = uri.path().to_owned();
    idempotent(&app, &info, &headers, &Method::POST, &path, &body, |store| {
        let playlist = editable_playlist(store, &id, &info.user_id)?;
        let at = match payload.meta.as_ref().and_then(|m| m.position_before.as_deref()) {
            None => playlist.items.len(),
            Some(before) => playlist
                .items
                .iter()
                .position(|i| i.item_id == before)
                .ok_or_else(|| ApiError::bad_request("meta.positionBefore names no item of this playlist"))?,
        };
        let now = store.tick();
        let mut new_items = Vec::new();
        let mut added = Vec::new();
        let mut skipped = Vec::new();
        for item in &payload.data {
            // The emulated catalog has no videos.
            if item.kind != "tracks" || !store.tracks.contains_key(&item.id) {
                skipped.push(json!({ "id": item.id, "type": item.kind, "reason": "NOT_FOUND" }));
                continue;
            }
            let added_at = item.meta.as_ref().and_then(|m| m.added_at).map(millis).unwrap_or(now);
            let item_id = store.new_item_id();
            added.push(json!({ "id": item.id, "type": "tracks", "meta": { "addedAt": timestamp(added_at), "itemId": item_id } }));
            new_items.push(ItemRec { item_id, track_id: item.id.clone(), added_at });
        }
        if let Some(playlist) = store.playlists.get_mut(&id)
            && !new_items.is_empty()
        {
            playlist.items.splice(at..at, new_items);
            playlist.last_modified_at = now;
        }
        Ok(added_document(&path, added, skipped))
    })
}

async fn playlist_items_delete(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> ApiResult {
    let info = authenticate(&app, &headers)?;
    require_scope(&info, "playlists.write")?;
    let payload = payload(&headers, &body, &["tracks", "videos"])?;
    let path = uri.path().to_owned();
    idempotent(&app, &info, &headers, &Method::DELETE, &path, &body, |store| {
        let playlist = editable_playlist(store, &id, &info.user_id)?;
        let mut remove = HashSet::new();
        for item in &payload.data {
            let Some(item_id) = item.meta.as_ref().and_then(|m| m.item_id.as_deref()) else {
                return Err(ApiError::bad_request("data[].meta.itemId is required"));
            };
            if let Some(entry) = playlist.items.iter().find(|i| i.item_id == item_id)
                && entry.track_id != item.id
            {
                return Err(ApiError::bad_request(format!(
                    "item {} does not hold {} {}",
                    item_id.chars().take(40).collect::<String>(),
                    item.kind,
                    item.id.chars().take(40).collect::<String>()
                )));
            }
            // An item id no longer in the playlist is already removed: not an error.
            remove.insert(item_id.to_owned());
        }
        let now = store.tick();
        if let Some(playlist) = store.playlists.get_mut(&id) {
            let before = playlist.items.len();
            playlist.items.retain(|i| !remove.contains(&i.item_id));
            if playlist.items.len() != before {
                playlist.last_modified_at = now;
            }
        }
        Ok((StatusCode::OK, json!({ "links": { "self": path.trim_start_matches("/v2") } })))
    })
}

async fn get_tracks(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let _info = authenticate(&app, &headers)?;
    let params = Params::parse(q.as_deref());
    params.only(&[
        "page[cursor]",
        "sort",
        "countryCode",
        "include",
        "filter[id]",
        "filter[isrc]",
        "filter[owners.id]",
        "replaceMedia",
        "shareCode",
    ])?;
    let include = Include::parse(&params, &["artists", "albums", "albums.artists"])?;
    let (ids, isrcs) = (params.list("filter[id]"), params.list("filter[isrc]"));
    if ids.is_empty() && isrcs.is_empty() {
        return Err(ApiError::bad_request("At least one filter is required: filter[id], filter[isrc]"));
    }
    if ids.len() + isrcs.len() > MUTATION_BATCH {
        return Err(ApiError::bad_request("Too many filter values"));
    }
    let store = lock(&app.store);
    let mut found: Vec<String> = ids.iter().filter(|id| store.tracks.contains_key(*id)).cloned().collect();
    for isrc in &isrcs {
        let matching = store
            .tracks
            .iter()
            .filter(|(_, t)| t.isrc.as_deref().is_some_and(|i| i.eq_ignore_ascii_case(isrc)))
            .map(|(id, _)| id.clone());
        // Several ISRCs: one track each, without paging.
        if isrcs.len() > 1 {
            found.extend(matching.take(1));
        } else {
            found.extend(matching);
        }
    }
    found.dedup();
    let offset = params.offset()?;
    let mut included = Included::new(&store);
    let page: Vec<&String> = found.iter().skip(offset).take(PAGE_SIZE as usize).collect();
    let data: Vec<Value> = page.iter().filter_map(|id| included.track_object(id, &include)).collect();
    for id in &page {
        if let Some(rec) = store.tracks.get(*id) {
            if let Some(sub) = include.get("artists") {
                for a in &rec.artists {
                    included.artist(a, sub);
                }
            }
            if let (Some(sub), Some(album)) = (include.get("albums"), &rec.album) {
                included.album(album, sub);
            }
        }
    }
    let links = page_links("/tracks", &params, offset, found.len());
    Ok(document(StatusCode::OK, &json!({ "data": data, "included": included.values, "links": links })))
}

async fn search(State(app): State<App>, headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult {
    let _info = authenticate(&app, &headers)?;
    let params = Params::parse(q.as_deref());
    params.only(&[
        "filter[query]",
        "explicitFilter",
        "countryCode",
        "deviceType",
        "systemType",
        "clientVersion",
        "include",
        "replaceMedia",
    ])?;
    let include = Include::parse(&params, &["artists", "tracks"])?;
    let query = params
        .get("filter[query]")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| ApiError::bad_request("filter[query] is required"))?;
    let wanted = normalize_name(query);
    let store = lock(&app.store);
    // Exact normalized names first, then names containing the query, by popularity.
    let mut artists: Vec<(u8, f64, &String)> = store
        .artists
        .iter()
        .filter_map(|(id, a)| {
            let name = normalize_name(&a.name);
            let rank = if name == wanted {
                0
            } else if name.contains(&wanted) || wanted.contains(&name) && !name.is_empty() {
                1
            } else {
                return None;
            };
            Some((rank, -a.popularity, id))
        })
        .collect();
    artists.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(b.2)));
    let artist_ids: Vec<String> = artists.iter().take(PAGE_SIZE as usize).map(|(_, _, id)| (*id).clone()).collect();
    let track_ids: Vec<String> = store
        .tracks
        .iter()
        .filter(|(_, t)| normalize_name(&t.title).contains(&wanted))
        .take(PAGE_SIZE as usize)
        .map(|(id, _)| id.clone())
        .collect();
    let mut relationships = serde_json::Map::new();
    let search_id = query.to_owned();
    let encoded: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let mut included = Included::new(&store);
    if include.get("artists").is_some() {
        relationships.insert(
            "artists".into(),
            to_many("artists", &artist_ids, format!("/searchResults/{encoded}/relationships/artists")),
        );
        for id in &artist_ids {
            included.artist(id, &Include::default());
        }
    }
    if include.get("tracks").is_some() {
        relationships.insert(
            "tracks".into(),
            to_many("tracks", &track_ids, format!("/searchResults/{encoded}/relationships/tracks")),
        );
        for id in &track_ids {
            included.track(id, &Include::default());
        }
    }
    let mut resource = json!({
        "id": search_id,
        "type": "searchResults",
        "attributes": { "query": query, "trackingId": format!("{:016x}", { let mut h = DefaultHasher::new(); query.hash(&mut h); h.finish() }) },
    });
    if !relationships.is_empty() {
        resource["relationships"] = Value::Object(relationships);
    }
    let self_link = page_links("/searchResults", &params, 0, 0);
    Ok(document(StatusCode::OK, &json!({ "data": [resource], "included": included.values, "links": self_link })))
}
