//! The TIDAL API's JSON:API documents dnp reads and writes, following
//! `shared/specs/tidal/tidal-api-oas.json` (API 1.10.104).
//!
//! Every answer is a JSON:API document: primary `data` (resource objects, or resource
//! identifiers on relationship endpoints), `included` resources asked for with
//! `include=`, `links` (`self`, and `next` while more pages exist) and `meta`. Only the
//! members dnp uses are declared; unknown members are ignored, and resource types dnp
//! does not read (`videos`, `users`, artwork…) are kept as [`IncludedResource::Other`].
//! Deprecated attributes (`availability`, albums' `type`) are not read.
//!
//! A document that does not have this shape is a `Protocol` error naming the endpoint and
//! the path of the member that did not parse (see [`ApiResponse::json`](crate::http::ApiResponse::json)).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dnp_core::{AlbumRef, ArtistCredit, CreditRole, Track};
use serde::{Deserialize, Serialize};

/// The media type of every request and response body.
pub const JSON_API: &str = "application/vnd.api+json";

/// `Links`: `self` and, while more pages exist, `next` (with an opaque `page[cursor]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Links {
    /// This page.
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    /// The next page, absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// `{"nextCursor": …}`: the cursor part of `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<LinksMeta>,
}

/// `Links_Meta`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct LinksMeta {
    /// The cursor of the next page.
    #[serde(rename = "nextCursor", default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Links {
    /// The cursor of the next page: `links.meta.nextCursor`, else the `page[cursor]` of
    /// `links.next`. `Ok(None)` on the last page.
    ///
    /// # Errors
    /// A description when `next` is present but carries no cursor.
    pub fn next_cursor(&self) -> Result<Option<String>, String> {
        if let Some(cursor) = self.meta.as_ref().and_then(|m| m.next_cursor.clone()).filter(|c| !c.is_empty()) {
            return Ok(Some(cursor));
        }
        let Some(next) = self.next.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let query = next.split_once('?').map(|(_, q)| q).unwrap_or_default();
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "page[cursor]")
            .map(|(_, v)| Some(v.into_owned()))
            .filter(|c| c.as_deref().is_some_and(|c| !c.is_empty()))
            .ok_or_else(|| "`links.next` has no `page[cursor]`".to_owned())
    }
}

/// The `meta` of a resource identifier in a relationship: when it was added (collections,
/// playlists) and, for playlist entries, the entry's own id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct IdentifierMeta {
    /// When the item was added.
    #[serde(rename = "addedAt", default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<DateTime<Utc>>,
    /// The playlist entry's id (`meta.itemId`): what a removal names.
    #[serde(rename = "itemId", default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
}

/// A resource identifier: `{"type": "tracks", "id": "…", "meta": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ResourceIdentifier {
    /// The resource id (opaque).
    pub id: String,
    /// The resource type (`tracks`, `videos`, `albums`…).
    #[serde(rename = "type")]
    pub kind: String,
    /// Relationship meta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<IdentifierMeta>,
}

impl ResourceIdentifier {
    /// `meta.addedAt`.
    pub fn added_at(&self) -> Option<DateTime<Utc>> {
        self.meta.as_ref().and_then(|m| m.added_at)
    }

    /// `meta.itemId`.
    pub fn item_id(&self) -> Option<&str> {
        self.meta.as_ref().and_then(|m| m.item_id.as_deref())
    }
}

/// A to-many relationship of a resource. `data` is present only when the relationship
/// was named in `include`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ToMany {
    /// The related resources, in the service's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<ResourceIdentifier>>,
}

impl ToMany {
    /// The identifiers (none when the relationship was not included).
    pub fn ids(&self) -> impl Iterator<Item = &ResourceIdentifier> {
        self.data.iter().flatten()
    }
}

/// `External_Link`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ExternalLink {
    /// The link.
    pub href: String,
    /// `{"type": "TIDAL_SHARING"…}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<ExternalLinkMeta>,
}

/// `External_Link_Meta`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ExternalLinkMeta {
    /// The link's kind.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The `TIDAL_SHARING` link among `links`, the one that opens the item in TIDAL.
pub fn sharing_link(links: &[ExternalLink]) -> Option<String> {
    links.iter().find(|l| l.meta.as_ref().is_some_and(|m| m.kind == "TIDAL_SHARING")).map(|l| l.href.clone())
}

/// `Tracks_Attributes` (the members dnp reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TrackAttributes {
    /// The title.
    pub title: String,
    /// The version ("Remastered", "Radio Edit"), complementing the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The ISRC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isrc: Option<String>,
    /// ISO 8601 duration (`PT2M58S`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Links out of the API.
    #[serde(rename = "externalLinks", default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<ExternalLink>,
}

/// `Tracks_Relationships` (the ones dnp includes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TrackRelationships {
    /// The artists, main artist first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artists: Option<ToMany>,
    /// The albums the track is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub albums: Option<ToMany>,
}

/// A `tracks` resource object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TrackResource {
    /// The track id.
    pub id: String,
    /// Its attributes.
    pub attributes: TrackAttributes,
    /// Its included relationships.
    #[serde(default)]
    pub relationships: TrackRelationships,
}

/// `Albums_Attributes` (the members dnp reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AlbumAttributes {
    /// The title.
    pub title: String,
    /// Links out of the API.
    #[serde(rename = "externalLinks", default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<ExternalLink>,
}

/// `Albums_Relationships` (the ones dnp includes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct AlbumRelationships {
    /// The album's artists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artists: Option<ToMany>,
}

/// An `albums` resource object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AlbumResource {
    /// The album id.
    pub id: String,
    /// Its attributes.
    pub attributes: AlbumAttributes,
    /// Its included relationships.
    #[serde(default)]
    pub relationships: AlbumRelationships,
}

/// `Artists_Attributes` (the members dnp reads).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ArtistAttributes {
    /// The name.
    pub name: String,
    /// Popularity, 0.0 to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity: Option<f64>,
    /// Links out of the API.
    #[serde(rename = "externalLinks", default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<ExternalLink>,
}

/// An `artists` resource object.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ArtistResource {
    /// The artist id.
    pub id: String,
    /// Its attributes.
    pub attributes: ArtistAttributes,
}

/// `Playlists_Attributes` (the members dnp reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PlaylistAttributes {
    /// The name.
    pub name: String,
    /// When the playlist last changed (ISO 8601): dnp's playlist version.
    #[serde(rename = "lastModifiedAt")]
    pub last_modified_at: String,
    /// `PUBLIC`, `UNLISTED` or `PRIVATE`.
    #[serde(rename = "accessType", default, skip_serializing_if = "Option::is_none")]
    pub access_type: Option<String>,
    /// How many items the playlist holds.
    #[serde(rename = "numberOfItems", default, skip_serializing_if = "Option::is_none")]
    pub number_of_items: Option<u32>,
    /// Links out of the API.
    #[serde(rename = "externalLinks", default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<ExternalLink>,
}

/// `Playlists_Relationships` (the ones dnp includes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct PlaylistRelationships {
    /// Its owners (users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<ToMany>,
    /// Its collaborators (users who may edit it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collaborators: Option<ToMany>,
}

/// A `playlists` resource object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PlaylistResource {
    /// The playlist id.
    pub id: String,
    /// Its attributes.
    pub attributes: PlaylistAttributes,
    /// Its included relationships.
    #[serde(default)]
    pub relationships: PlaylistRelationships,
}

/// A `users` resource object (only its id is read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserResource {
    /// The user id.
    pub id: String,
}

/// `SearchResults_Relationships` (the ones dnp includes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SearchRelationships {
    /// Matching artists, best first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artists: Option<ToMany>,
}

/// A `searchResults` resource object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SearchResultsResource {
    /// The search's id.
    pub id: String,
    /// Its included relationships.
    #[serde(default)]
    pub relationships: SearchRelationships,
}

/// One member of `included`, by its `type`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type")]
pub enum IncludedResource {
    /// `tracks`.
    #[serde(rename = "tracks")]
    Track(TrackResource),
    /// `albums`.
    #[serde(rename = "albums")]
    Album(AlbumResource),
    /// `artists`.
    #[serde(rename = "artists")]
    Artist(ArtistResource),
    /// `playlists`.
    #[serde(rename = "playlists")]
    Playlist(PlaylistResource),
    /// Any other type (`videos`, `users`, artwork…), not read.
    #[serde(other)]
    Other,
}

/// A relationship document: identifiers in `data`, the related resources in `included`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RelationshipDocument {
    /// The related resources' identifiers, in order.
    #[serde(default)]
    pub data: Vec<ResourceIdentifier>,
    /// What `include` asked for.
    #[serde(default)]
    pub included: Vec<IncludedResource>,
    /// Paging links.
    pub links: Links,
}

/// A document whose primary data is one resource.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SingleDocument<T> {
    /// The resource.
    pub data: T,
    /// What `include` asked for.
    #[serde(default)]
    pub included: Vec<IncludedResource>,
}

/// A document whose primary data is several resources.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct MultiDocument<T> {
    /// The resources.
    pub data: Vec<T>,
    /// What `include` asked for.
    #[serde(default)]
    pub included: Vec<IncludedResource>,
    /// Paging links.
    #[serde(default)]
    pub links: Links,
}

/// Why an item of an add operation was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SkippedItem {
    /// Its id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `NOT_FOUND` or `ALREADY_PRESENT` (new values may appear).
    pub reason: String,
}

/// The `meta` of an add operation's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct AddMeta {
    /// The items not added.
    #[serde(default)]
    pub skipped: Vec<SkippedItem>,
}

/// The answer of `POST …/relationships/items`: the added identifiers (with `meta.itemId`
/// for playlist entries) and the skipped ones.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AddDocument {
    /// What was added, in order.
    #[serde(default)]
    pub data: Vec<ResourceIdentifier>,
    /// What was skipped.
    #[serde(default)]
    pub meta: AddMeta,
}

/// One item of a mutation's `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadItem {
    /// The resource id.
    pub id: String,
    /// The resource type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `addedAt` (adds) or `itemId` (playlist removals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<IdentifierMeta>,
}

/// The `meta` of a playlist add: the entry the new items go before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionMeta {
    /// The `itemId` of the entry the items are inserted before.
    #[serde(rename = "positionBefore")]
    pub position_before: String,
}

/// The body of a relationship mutation (`POST` / `DELETE …/relationships/items`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// 1 to 50 items.
    pub data: Vec<PayloadItem>,
    /// Where a playlist add inserts (absent: at the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<PositionMeta>,
}

/// The included resources of a document, by type and id.
#[derive(Debug, Default)]
pub struct Index<'a> {
    tracks: HashMap<&'a str, &'a TrackResource>,
    albums: HashMap<&'a str, &'a AlbumResource>,
    artists: HashMap<&'a str, &'a ArtistResource>,
    playlists: HashMap<&'a str, &'a PlaylistResource>,
}

impl<'a> Index<'a> {
    /// Indexes `included` (and any primary resources added with the `with_*` methods).
    pub fn new(included: &'a [IncludedResource]) -> Self {
        let mut index = Self::default();
        for resource in included {
            match resource {
                IncludedResource::Track(t) => {
                    index.tracks.insert(&t.id, t);
                }
                IncludedResource::Album(a) => {
                    index.albums.insert(&a.id, a);
                }
                IncludedResource::Artist(a) => {
                    index.artists.insert(&a.id, a);
                }
                IncludedResource::Playlist(p) => {
                    index.playlists.insert(&p.id, p);
                }
                IncludedResource::Other => {}
            }
        }
        index
    }

    /// An included track.
    pub fn track(&self, id: &str) -> Option<&'a TrackResource> {
        self.tracks.get(id).copied()
    }

    /// An included album.
    pub fn album(&self, id: &str) -> Option<&'a AlbumResource> {
        self.albums.get(id).copied()
    }

    /// An included artist.
    pub fn artist(&self, id: &str) -> Option<&'a ArtistResource> {
        self.artists.get(id).copied()
    }

    /// An included playlist.
    pub fn playlist(&self, id: &str) -> Option<&'a PlaylistResource> {
        self.playlists.get(id).copied()
    }

    /// Credits of the artists named by `rel`: the first primary, the others featured when
    /// `featured_after_first` (a track's artists), else all primary (an album's). An artist
    /// the document does not include keeps its id with an empty name.
    pub fn credits(&self, rel: Option<&ToMany>, featured_after_first: bool) -> Vec<ArtistCredit> {
        rel.into_iter()
            .flat_map(ToMany::ids)
            .filter(|r| r.kind == "artists")
            .enumerate()
            .map(|(i, r)| ArtistCredit {
                id: Some(r.id.clone()),
                name: self.artist(&r.id).map(|a| a.attributes.name.clone()).unwrap_or_default(),
                role: if featured_after_first && i > 0 { CreditRole::Featured } else { CreditRole::Primary },
            })
            .collect()
    }

    /// The dnp album reference of an album id.
    pub fn album_ref(&self, id: &str) -> AlbumRef {
        match self.album(id) {
            Some(album) => AlbumRef {
                id: album.id.clone(),
                title: album.attributes.title.clone(),
                artists: self.credits(album.relationships.artists.as_ref(), false),
            },
            None => AlbumRef { id: id.to_owned(), title: String::new(), artists: Vec::new() },
        }
    }

    /// The dnp track of a track resource, artists and album from this document.
    pub fn to_track(&self, track: &TrackResource) -> Track {
        let a = &track.attributes;
        let title = match a.version.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(version) if !a.title.contains(version) => format!("{} ({version})", a.title),
            _ => a.title.clone(),
        };
        let album = track
            .relationships
            .albums
            .as_ref()
            .and_then(|rel| rel.ids().find(|r| r.kind == "albums"))
            .map(|r| self.album_ref(&r.id));
        Track {
            id: track.id.clone(),
            title,
            artists: self.credits(track.relationships.artists.as_ref(), true),
            album,
            isrc: a.isrc.clone().filter(|i| !i.trim().is_empty()),
            duration_ms: a.duration.as_deref().and_then(parse_duration_ms),
            url: sharing_link(&a.external_links),
        }
    }

    /// The dnp track of a track id: from `included`, else a track known only by its id (a
    /// track the service no longer shows; it can still be removed by id).
    pub fn track_or_bare(&self, id: &str) -> Track {
        match self.track(id) {
            Some(t) => self.to_track(t),
            None => Track {
                id: id.to_owned(),
                title: String::new(),
                artists: Vec::new(),
                album: None,
                isrc: None,
                duration_ms: None,
                url: None,
            },
        }
    }
}

/// Parses an ISO 8601 duration (`PT2M58S`, `PT1H2M3.5S`, `P1DT2H`) into milliseconds.
/// Years and months (whose length varies) are refused.
///
/// ```
/// use dnp_providers::tidal::model::parse_duration_ms;
/// assert_eq!(parse_duration_ms("PT2M58S"), Some(178_000));
/// assert_eq!(parse_duration_ms("PT1H0M0.5S"), Some(3_600_500));
/// assert_eq!(parse_duration_ms("2:58"), None);
/// ```
pub fn parse_duration_ms(text: &str) -> Option<u32> {
    let rest = text.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let seconds = units.iter().find(|(u, _)| *u == c)?.1;
            let value: f64 = number.parse().ok()?;
            total += value * seconds;
            any = true;
            number.clear();
        }
        number.is_empty().then_some(())
    };
    take(date, &[('W', 604_800.0), ('D', 86_400.0)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        take(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    let ms = (total * 1000.0).round();
    (any && ms.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&ms)).then_some(ms as u32)
}

/// Formats milliseconds as an ISO 8601 duration (`PT2M58S`, `PT1M0.5S`).
///
/// ```
/// use dnp_providers::tidal::model::format_duration;
/// assert_eq!(format_duration(178_000), "PT2M58S");
/// assert_eq!(format_duration(3_600_500), "PT1H0M0.5S");
/// ```
pub fn format_duration(ms: u32) -> String {
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let (s, frac) = ((ms / 1000) % 60, ms % 1000);
    let seconds =
        if frac == 0 { format!("{s}S") } else { format!("{s}.{}S", format!("{frac:03}").trim_end_matches('0')) };
    match (h, m) {
        (0, 0) => format!("PT{seconds}"),
        (0, m) => format!("PT{m}M{seconds}"),
        (h, m) => format!("PT{h}H{m}M{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page of `GET /userCollectionTracks/me/relationships/items?include=items.artists,items.albums.artists`,
    /// shaped as the spec's `UserCollectionTracks_Items_Multi_Relationship_Data_Document`.
    const COLLECTION_PAGE: &str = r#"{
      "data": [
        {"id": "75413016", "type": "tracks", "meta": {"addedAt": "2025-05-01T12:00:00Z"}},
        {"id": "11", "type": "tracks", "meta": {"addedAt": "2025-04-01T08:30:00.250Z"}}
      ],
      "included": [
        {"id": "75413016", "type": "tracks",
         "attributes": {"title": "Kill Jay Z", "version": "Explicit", "isrc": "QMJMT1701229", "duration": "PT2M58S",
                        "explicit": true, "key": "UNKNOWN", "keyScale": "UNKNOWN", "mediaTags": ["LOSSLESS"],
                        "popularity": 0.56,
                        "externalLinks": [{"href": "https://tidal.com/browse/track/75413016", "meta": {"type": "TIDAL_SHARING"}}]},
         "relationships": {
           "artists": {"data": [{"id": "7804", "type": "artists"}, {"id": "99", "type": "artists"}],
                       "links": {"self": "/tracks/75413016/relationships/artists"}},
           "albums": {"data": [{"id": "75413011", "type": "albums"}], "links": {"self": "/tracks/75413016/relationships/albums"}}}},
        {"id": "7804", "type": "artists", "attributes": {"name": "JAY Z", "popularity": 0.9}},
        {"id": "99", "type": "artists", "attributes": {"name": "Guest", "popularity": 0.1}},
        {"id": "75413011", "type": "albums",
         "attributes": {"title": "4:44", "albumType": "ALBUM", "barcodeId": "854242007552", "duration": "PT36M5S",
                        "explicit": true, "mediaTags": [], "numberOfItems": 10, "numberOfVolumes": 1, "popularity": 0.7},
         "relationships": {"artists": {"data": [{"id": "7804", "type": "artists"}], "links": {"self": "/albums/75413011/relationships/artists"}}}},
        {"id": "u1", "type": "users", "attributes": {"username": "someone"}}
      ],
      "links": {"self": "/userCollectionTracks/me/relationships/items",
                "next": "/userCollectionTracks/me/relationships/items?page[cursor]=3nI1Esi",
                "meta": {"nextCursor": "3nI1Esi"}}
    }"#;

    #[test]
    fn a_collection_page_parses_into_tracks_with_credits_and_album() {
        let doc: RelationshipDocument = serde_json::from_str(COLLECTION_PAGE).unwrap();
        assert_eq!(doc.links.next_cursor().unwrap().as_deref(), Some("3nI1Esi"));
        let index = Index::new(&doc.included);
        let track = index.to_track(index.track(&doc.data[0].id).unwrap());
        assert_eq!(track.title, "Kill Jay Z (Explicit)");
        assert_eq!(track.isrc.as_deref(), Some("QMJMT1701229"));
        assert_eq!(track.duration_ms, Some(178_000));
        assert_eq!(track.url.as_deref(), Some("https://tidal.com/browse/track/75413016"));
        assert_eq!(track.artists.len(), 2);
        assert_eq!((track.artists[0].name.as_str(), track.artists[0].role), ("JAY Z", CreditRole::Primary));
        assert_eq!((track.artists[1].name.as_str(), track.artists[1].role), ("Guest", CreditRole::Featured));
        let album = track.album.unwrap();
        assert_eq!((album.id.as_str(), album.title.as_str()), ("75413011", "4:44"));
        assert_eq!(album.artists[0].id.as_deref(), Some("7804"));
        assert_eq!(doc.data[1].added_at().unwrap().timestamp_subsec_millis(), 250);
        // Not included: known by id only.
        assert_eq!(index.track_or_bare("11").title, "");
    }

    #[test]
    fn the_cursor_comes_from_next_when_meta_is_absent() {
        let links =
            Links { next: Some("/playlists/x/relationships/items?page[cursor]=a%2Bb".into()), ..Links::default() };
        assert_eq!(links.next_cursor().unwrap().as_deref(), Some("a+b"));
        assert_eq!(Links::default().next_cursor().unwrap(), None);
        let broken = Links { next: Some("/playlists/x/relationships/items".into()), ..Links::default() };
        assert!(broken.next_cursor().is_err());
    }

    #[test]
    fn playlist_entries_carry_their_item_ids() {
        let doc: RelationshipDocument = serde_json::from_str(
            r#"{"data": [
                 {"id": "1", "type": "tracks", "meta": {"itemId": "a1b2", "addedAt": "2024-01-01T00:00:00Z"}},
                 {"id": "2", "type": "videos", "meta": {"itemId": "c3d4", "addedAt": "2024-01-02T00:00:00Z"}}],
               "links": {"self": "/playlists/p/relationships/items"}}"#,
        )
        .unwrap();
        assert_eq!(doc.data[0].item_id(), Some("a1b2"));
        assert_eq!(doc.data[1].kind, "videos");
        assert_eq!(doc.links.next_cursor().unwrap(), None);
    }

    #[test]
    fn malformed_documents_do_not_parse() {
        // `data` must be an array of identifiers, `links` is required, a track needs a title.
        assert!(serde_json::from_str::<RelationshipDocument>(r#"{"data": {"id": "1"}, "links": {}}"#).is_err());
        assert!(serde_json::from_str::<RelationshipDocument>(r#"{"data": []}"#).is_err());
        assert!(
            serde_json::from_str::<RelationshipDocument>(
                r#"{"data": [], "included": [{"id": "1", "type": "tracks", "attributes": {"isrc": "X"}}], "links": {}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn add_answers_list_skipped_items() {
        let doc: AddDocument = serde_json::from_str(
            r#"{"data": [{"id": "1", "type": "tracks", "meta": {"addedAt": "2024-01-01T00:00:00Z", "itemId": "n1"}}],
                "links": {"self": "/playlists/p/relationships/items"},
                "meta": {"skipped": [{"id": "404404", "type": "tracks", "reason": "NOT_FOUND"}]}}"#,
        )
        .unwrap();
        assert_eq!(doc.data[0].item_id(), Some("n1"));
        assert_eq!(doc.meta.skipped[0].reason, "NOT_FOUND");
    }

    #[test]
    fn payloads_serialize_as_the_spec_gives_them() {
        let payload = Payload {
            data: vec![PayloadItem {
                id: "1".into(),
                kind: "tracks".into(),
                meta: Some(IdentifierMeta { item_id: Some("abc".into()), added_at: None }),
            }],
            meta: Some(PositionMeta { position_before: "def".into() }),
        };
        assert_eq!(
            serde_json::to_string(&payload).unwrap(),
            r#"{"data":[{"id":"1","type":"tracks","meta":{"itemId":"abc"}}],"meta":{"positionBefore":"def"}}"#
        );
    }

    #[test]
    fn durations_round_trip() {
        for ms in [0, 999, 1_000, 61_500, 178_000, 3_600_000, 7_322_250] {
            assert_eq!(parse_duration_ms(&format_duration(ms)), Some(ms), "{ms}");
        }
        assert_eq!(parse_duration_ms("P1D"), Some(86_400_000));
        assert_eq!(parse_duration_ms("PT"), None);
        assert_eq!(parse_duration_ms("P1Y"), None);
        assert_eq!(parse_duration_ms(""), None);
    }
}
