//! The DNP list: list, add, delete, import, export; and artist search for resolution.
//!
//! # CSV form (`GET /dnp/export?format=csv`, `POST /dnp/import` with `text/csv`)
//! RFC 4180, UTF-8, one header line then one line per entry:
//!
//! | column | content |
//! |---|---|
//! | `name` | the artist's display name (required) |
//! | `aliases` | other names, separated by `|` |
//! | `provider_ids` | `provider:id` pairs separated by `|`, e.g. `spotify:3TVXtAsR1Inumwj472S9r4|tidal:1566` |
//! | `musicbrainz_id` | the MusicBrainz artist id |
//! | `isni` | the ISNI |
//! | `note` | the user's note |
//! | `tags` | tags separated by `|` |
//! | `added_at` | RFC 3339 instant (empty: the time of import) |
//!
//! The JSON form is dnp-core's serde form of [`DnpList`].

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use dnp_core::normalize::normalize_name;
use dnp_core::{ArtistIdentity, DnpEntry, DnpList, EntryId, EntrySource, ProviderId, StoredTokenSource, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::page::{Page, PageQuery};
use crate::auth::AuthUser;
use crate::db::ms;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::with_pool;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_entries, add_entry))
        .routes(routes!(delete_entry))
        .routes(routes!(import))
        .routes(routes!(export))
        .routes(routes!(search_artists))
}

/// The most entries one list may hold.
pub(crate) const MAX_ENTRIES: i64 = 10_000;

/// A DNP entry in dnp-core's JSON form.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct EntryView(pub DnpEntry);

/// A new entry: the artist and the user's note and tags.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewEntry {
    /// Who: a name, optional aliases, provider ids (`{"spotify": ["3TVX…"]}`), MusicBrainz id, ISNI.
    #[schema(value_type = Object)]
    pub artist: ArtistIdentity,
    /// A note.
    #[serde(default)]
    pub note: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: String,
    entry_json: String,
    added_at: i64,
}

/// Checks an entry's fields.
fn validate(entry: &DnpEntry) -> Result<(), ApiError> {
    let name = entry.artist.name.trim();
    if name.is_empty() || normalize_name(name).is_empty() {
        return Err(ApiError::bad_request("invalid_artist", "the artist needs a name"));
    }
    if name.chars().count() > 200 || entry.artist.aliases.iter().any(|a| a.chars().count() > 200) {
        return Err(ApiError::bad_request("invalid_artist", "names and aliases may be at most 200 characters"));
    }
    if entry.artist.aliases.len() > 50 {
        return Err(ApiError::bad_request("invalid_artist", "at most 50 aliases"));
    }
    let ids: usize = entry.artist.provider_ids.values().map(Vec::len).sum();
    if ids > 100 || entry.artist.provider_ids.values().flatten().any(|id| id.is_empty() || id.len() > 200) {
        return Err(ApiError::bad_request("invalid_artist", "at most 100 provider ids, each 1 to 200 characters"));
    }
    if entry.note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::bad_request("invalid_note", "a note may be at most 2000 characters"));
    }
    if entry.tags.len() > 20 || entry.tags.iter().any(|t| t.trim().is_empty() || t.chars().count() > 50) {
        return Err(ApiError::bad_request("invalid_tags", "at most 20 tags of 1 to 50 characters"));
    }
    Ok(())
}

/// Loads a user's whole list (for planning and export).
pub(crate) async fn load_list(state: &AppState, user: UserId) -> Result<DnpList, ApiError> {
    let rows: Vec<EntryRow> = with_pool!(state.db(), pool => {
        sqlx::query_as("SELECT id, entry_json, added_at FROM dnp_entries WHERE user_id = $1 ORDER BY added_at, id")
            .bind(user.to_string())
            .fetch_all(pool)
            .await?
    });
    let entries = rows.iter().map(|r| serde_json::from_str(&r.entry_json)).collect::<Result<_, _>>()?;
    Ok(DnpList { entries })
}

async fn count_entries(state: &AppState, user: UserId) -> Result<i64, ApiError> {
    Ok(with_pool!(state.db(), pool => {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM dnp_entries WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_one(pool)
            .await?
    }))
}

/// Inserts an entry; `Ok(false)` when the user already has an entry of the same name.
pub(crate) async fn insert_entry(state: &AppState, user: UserId, entry: &DnpEntry) -> Result<bool, ApiError> {
    let json = serde_json::to_string(entry)?;
    let result = with_pool!(state.db(), pool => {
        sqlx::query(
            "INSERT INTO dnp_entries (id, user_id, name_key, entry_json, added_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id, name_key) DO NOTHING",
        )
        .bind(entry.id.to_string())
        .bind(user.to_string())
        .bind(normalize_name(&entry.artist.name))
        .bind(json)
        .bind(ms(entry.added_at))
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(result == 1)
}

/// The user's DNP list, newest first.
#[utoipa::path(get, path = "/dnp", tag = "dnp", params(PageQuery),
    responses((status = 200, body = Page<EntryView>), (status = 401, body = ErrorBody)))]
async fn list_entries(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<EntryView>>> {
    let limit = q.limit()?;
    let cursor = q.cursor()?;
    let (c_at, c_id) = cursor.unwrap_or((i64::MAX, String::new()));
    let has_cursor = q.cursor.is_some();
    let rows: Vec<EntryRow> = with_pool!(state.db(), pool => {
        sqlx::query_as(
            "SELECT id, entry_json, added_at FROM dnp_entries WHERE user_id = $1 \
             AND ($2 = FALSE OR added_at < $3 OR (added_at = $3 AND id < $4)) \
             ORDER BY added_at DESC, id DESC LIMIT $5",
        )
        .bind(user.user_id.to_string())
        .bind(has_cursor)
        .bind(c_at)
        .bind(&c_id)
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await?
    });
    let page = super::page::paginate(
        rows,
        limit,
        |r| (r.added_at, r.id.clone()),
        |r| Ok(EntryView(serde_json::from_str(&r.entry_json)?)),
    )?;
    Ok(Json(page))
}

/// Adds an artist to the list.
#[utoipa::path(post, path = "/dnp", tag = "dnp", request_body = NewEntry,
    responses((status = 201, body = EntryView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_entry(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<NewEntry>,
) -> ApiResult<(StatusCode, Json<EntryView>)> {
    let mut artist = body.artist;
    artist.name = artist.name.trim().to_owned();
    let entry = DnpEntry {
        id: EntryId::new_random(),
        artist,
        note: body.note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
        tags: body.tags.into_iter().map(|t| t.trim().to_owned()).collect(),
        added_at: Utc::now(),
        source: EntrySource::Personal,
    };
    validate(&entry)?;
    if count_entries(&state, user.user_id).await? >= MAX_ENTRIES {
        return Err(ApiError::conflict("dnp_list_full", format!("a DNP list holds at most {MAX_ENTRIES} artists")));
    }
    if !insert_entry(&state, user.user_id, &entry).await? {
        return Err(ApiError::conflict("duplicate_entry", format!("{} is already on your list", entry.artist.name)));
    }
    state.invalidate_summary(user.user_id);
    Ok((StatusCode::CREATED, Json(EntryView(entry))))
}

/// Removes an entry.
#[utoipa::path(delete, path = "/dnp/{id}", tag = "dnp", params(("id" = String, Path, description = "The entry id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_entry(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let id = EntryId::from_str(&id)?;
    let n = with_pool!(state.db(), pool => {
        sqlx::query("DELETE FROM dnp_entries WHERE id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user.user_id.to_string())
            .execute(pool)
            .await?
            .rows_affected()
    });
    if n == 0 {
        return Err(ApiError::not_found("entry_not_found", "no such entry on your list"));
    }
    state.invalidate_summary(user.user_id);
    Ok(StatusCode::NO_CONTENT)
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReport {
    /// Entries added.
    pub imported: u64,
    /// Entries skipped because the list already had the artist.
    pub skipped_duplicates: u64,
    /// Entries in the document.
    pub total: u64,
}

/// Imports a list: dnp-core's JSON form (`application/json`) or the CSV form (`text/csv`).
/// Artists already on the list are skipped; imported entries get new ids.
#[utoipa::path(post, path = "/dnp/import", tag = "dnp",
    request_body(content = Object, description = "A DNP list as JSON, or CSV with Content-Type text/csv"),
    responses((status = 200, body = ImportReport), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn import(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ImportReport>> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("invalid_encoding", "the body must be UTF-8"))?;
    let list = if content_type.starts_with("application/json") {
        dnp_core::json::dnp_list_from_json(text)?
    } else if content_type.starts_with("text/csv") {
        csv_to_list(text)?
    } else {
        return Err(ApiError::UnsupportedMediaType("send application/json (a DNP list) or text/csv".into()));
    };
    let total = list.entries.len() as u64;
    let existing = count_entries(&state, user.user_id).await?;
    if existing + total as i64 > MAX_ENTRIES {
        return Err(ApiError::conflict("dnp_list_full", format!("a DNP list holds at most {MAX_ENTRIES} artists")));
    }
    for entry in &list.entries {
        validate(entry).map_err(|e| match e {
            ApiError::BadRequest { code, message } => {
                ApiError::bad_request(code, format!("entry {:?}: {message}", entry.artist.name))
            }
            other => other,
        })?;
    }
    let mut imported = 0;
    for mut entry in list.entries {
        entry.id = EntryId::new_random();
        entry.artist.name = entry.artist.name.trim().to_owned();
        if insert_entry(&state, user.user_id, &entry).await? {
            imported += 1;
        }
    }
    state.invalidate_summary(user.user_id);
    Ok(Json(ImportReport { imported, skipped_duplicates: total - imported, total }))
}

/// `?format=json|csv`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// Exports the whole list as JSON (dnp-core's form) or CSV.
#[utoipa::path(get, path = "/dnp/export", tag = "dnp", params(ExportQuery),
    responses((status = 200, description = "The list as JSON or CSV"), (status = 400, body = ErrorBody)))]
async fn export(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let list = load_list(&state, user.user_id).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok((
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"dnp-list.json\""),
            ],
            serde_json::to_string_pretty(&list)?,
        )
            .into_response()),
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"dnp-list.csv\""),
            ],
            list_to_csv(&list),
        )
            .into_response()),
        other => Err(ApiError::bad_request("invalid_format", format!("format {other:?} is neither json nor csv"))),
    }
}

const CSV_HEADER: [&str; 8] = ["name", "aliases", "provider_ids", "musicbrainz_id", "isni", "note", "tags", "added_at"];

fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// The CSV form of a list.
pub(crate) fn list_to_csv(list: &DnpList) -> String {
    let mut out = CSV_HEADER.join(",");
    out.push_str("\r\n");
    for e in &list.entries {
        let ids: Vec<String> =
            e.artist.provider_ids.iter().flat_map(|(p, ids)| ids.iter().map(move |id| format!("{p}:{id}"))).collect();
        let fields = [
            e.artist.name.clone(),
            e.artist.aliases.join("|"),
            ids.join("|"),
            e.artist.musicbrainz_id.clone().unwrap_or_default(),
            e.artist.isni.clone().unwrap_or_default(),
            e.note.clone().unwrap_or_default(),
            e.tags.join("|"),
            e.added_at.to_rfc3339(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, f);
        }
        out.push_str("\r\n");
    }
    out
}

/// Splits CSV text into records (RFC 4180: quoted fields may hold commas, quotes and newlines).
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, ApiError> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    let mut in_quotes = false;
    let mut line = 1;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_quotes = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                line += 1;
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(ApiError::bad_request("invalid_csv", format!("a quoted field is not closed (line {line})")));
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records.retain(|r| !(r.len() == 1 && r[0].trim().is_empty()));
    Ok(records)
}

/// Reads the CSV form.
pub(crate) fn csv_to_list(text: &str) -> Result<DnpList, ApiError> {
    let mut records = parse_csv(text)?.into_iter();
    let header = records.next().ok_or_else(|| ApiError::bad_request("invalid_csv", "the CSV is empty"))?;
    let col = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let name_col = col("name").ok_or_else(|| ApiError::bad_request("invalid_csv", "the header needs a name column"))?;
    let cols: BTreeMap<&str, Option<usize>> = CSV_HEADER.iter().map(|h| (*h, col(h))).collect();
    let split =
        |v: &str| -> Vec<String> { v.split('|').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect() };
    let mut entries = Vec::new();
    for (i, rec) in records.enumerate() {
        let line = i + 2;
        let get =
            |name: &str| cols.get(name).copied().flatten().and_then(|c| rec.get(c)).map(|s| s.trim()).unwrap_or("");
        let name = rec.get(name_col).map(|s| s.trim()).unwrap_or("");
        if name.is_empty() {
            return Err(ApiError::bad_request("invalid_csv", format!("line {line}: the name is empty")));
        }
        let mut artist = ArtistIdentity::named(name);
        artist.aliases = split(get("aliases"));
        for pair in split(get("provider_ids")) {
            let (p, id) = pair.split_once(':').ok_or_else(|| {
                ApiError::bad_request("invalid_csv", format!("line {line}: provider id {pair:?} is not provider:id"))
            })?;
            let provider = ProviderId::from_str(p.trim())
                .map_err(|e| ApiError::bad_request("invalid_csv", format!("line {line}: {e}")))?;
            artist.provider_ids.entry(provider).or_default().push(id.trim().to_owned());
        }
        artist.musicbrainz_id = Some(get("musicbrainz_id").to_owned()).filter(|s| !s.is_empty());
        artist.isni = Some(get("isni").to_owned()).filter(|s| !s.is_empty());
        let added_at = match get("added_at") {
            "" => Utc::now(),
            s => DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    ApiError::bad_request("invalid_csv", format!("line {line}: added_at {s:?} is not RFC 3339"))
                })?
                .with_timezone(&Utc),
        };
        entries.push(DnpEntry {
            id: EntryId::new_random(),
            artist,
            note: Some(get("note").to_owned()).filter(|s| !s.is_empty()),
            tags: split(get("tags")),
            added_at,
            source: EntrySource::Personal,
        });
    }
    Ok(DnpList { entries })
}

/// `?q=&provider=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The artist's name.
    pub q: String,
    /// Search only this provider (default: every connected provider).
    pub provider: Option<String>,
}

/// An artist candidate in dnp-core's form: provider, id, name, confidence 0–1, details.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct CandidateView(pub dnp_core::ArtistCandidate);

/// A provider a search could not ask, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchFailure {
    /// The provider.
    pub provider: String,
    /// A code (`needs_reauth`, `rate_limited`, `transient`…).
    pub code: String,
    /// What happened.
    pub message: String,
}

/// Search results across providers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// Candidates, best first.
    pub candidates: Vec<CandidateView>,
    /// Providers that could not be searched.
    pub errors: Vec<SearchFailure>,
}

/// Finds artists by name at the user's connected providers, with a confidence for each.
#[utoipa::path(get, path = "/artists/search", tag = "dnp", params(SearchQuery),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn search_artists(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<SearchResults>> {
    let query = q.q.trim();
    if query.is_empty() || query.chars().count() > 200 {
        return Err(ApiError::bad_request("invalid_query", "q must be 1 to 200 characters"));
    }
    let connections = state.tokens().list(user.user_id).await?;
    let targets: Vec<_> = match q.provider.as_deref() {
        Some(p) => {
            let entry = state.providers().get(p)?;
            let conn = connections
                .iter()
                .find(|c| c.provider.as_str() == p)
                .ok_or_else(|| ApiError::conflict("not_connected", format!("connect {} first", entry.display_name)))?;
            vec![(entry.clone(), conn.id)]
        }
        None => connections
            .iter()
            .filter_map(|c| state.providers().get(c.provider.as_str()).ok().map(|e| (e.clone(), c.id)))
            .collect(),
    };
    let searches = targets.into_iter().map(|(entry, conn)| {
        let tokens = StoredTokenSource::new(state.tokens().clone(), entry.auth.clone(), conn);
        let query = query.to_owned();
        async move {
            let result = entry.provider.search_artists(&tokens, &query, 10).await;
            (entry.provider.id().clone(), result)
        }
    });
    let mut candidates = Vec::new();
    let mut errors = Vec::new();
    for (provider, result) in futures::future::join_all(searches).await {
        match result {
            Ok(found) => candidates.extend(found),
            Err(e) => errors.push(SearchFailure {
                provider: provider.to_string(),
                code: e.code().to_owned(),
                message: e.to_string(),
            }),
        }
    }
    candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then_with(|| a.name.cmp(&b.name)));
    Ok(Json(SearchResults { candidates: candidates.into_iter().map(CandidateView).collect(), errors }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::from_ms;

    #[test]
    fn csv_round_trips_with_quotes_commas_and_ids() {
        let spotify: ProviderId = "spotify".parse().unwrap();
        let mut artist = ArtistIdentity::named("Smith, \"The\" Band").with_id(spotify, "abc");
        artist.aliases = vec!["TSB".into()];
        let list = DnpList {
            entries: vec![DnpEntry {
                id: EntryId::new_random(),
                artist,
                note: Some("line one\nline two".into()),
                tags: vec!["a".into(), "b".into()],
                added_at: from_ms(1_700_000_000_000),
                source: EntrySource::Personal,
            }],
        };
        let csv = list_to_csv(&list);
        let back = csv_to_list(&csv).unwrap();
        assert_eq!(back.entries.len(), 1);
        let (a, b) = (&list.entries[0], &back.entries[0]);
        assert_eq!(a.artist, b.artist);
        assert_eq!(a.note, b.note);
        assert_eq!(a.tags, b.tags);
        assert_eq!(a.added_at, b.added_at);
    }

    #[test]
    fn bad_csv_names_the_line() {
        let err = csv_to_list("name,provider_ids\nOk,spotify:1\nBad,nocolon\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        assert_eq!(csv_to_list("aliases\nx\n").unwrap_err().code(), "invalid_csv");
        assert_eq!(csv_to_list("name\n\"open\n").unwrap_err().code(), "invalid_csv");
        assert_eq!(csv_to_list("name\n,\n").unwrap_err().code(), "invalid_csv");
        assert_eq!(csv_to_list("name\r\nA\r\n\r\nB").unwrap().entries.len(), 2);
    }

    #[test]
    fn entries_are_validated() {
        let mut e = DnpEntry {
            id: EntryId::new_random(),
            artist: ArtistIdentity::named("  "),
            note: None,
            tags: vec![],
            added_at: Utc::now(),
            source: EntrySource::Personal,
        };
        assert_eq!(validate(&e).unwrap_err().code(), "invalid_artist");
        e.artist.name = "Fine".into();
        assert!(validate(&e).is_ok());
        e.tags = vec!["x".repeat(51)];
        assert_eq!(validate(&e).unwrap_err().code(), "invalid_tags");
    }
}
