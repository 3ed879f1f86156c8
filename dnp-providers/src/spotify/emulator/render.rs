//! Spotify Web API objects (as the 2026 spec gives them) built from the emulator's state.
//! Deprecated fields (`track` beside `item`, `tracks` beside `items`, `popularity`,
//! `available_markets`, `genres`, `followers`…) are left out, so an adapter that still
//! reads them fails here rather than in production.

use chrono::{DateTime, SecondsFormat, Utc};
use dnp_core::{AlbumRef, ArtistCredit, Track};
use serde_json::{Value, json};

use super::store::{PlaylistRec, Store};

/// Renders objects with links under one API base URL.
pub(crate) struct Render<'a> {
    pub(crate) api: &'a str,
    pub(crate) store: &'a Store,
}

pub(crate) fn timestamp(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |at| Value::String(at.to_rfc3339_opts(SecondsFormat::Secs, true)))
}

fn open_url(kind: &str, id: &str) -> String {
    format!("https://open.spotify.com/{kind}/{id}")
}

/// A stable year for an album (the model has no release date): 1970 to 2025.
fn release_year(album_id: &str) -> u32 {
    let hash = album_id.bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
    1970 + hash % 56
}

impl Render<'_> {
    pub(crate) fn simplified_artist(&self, credit: &ArtistCredit) -> Value {
        match &credit.id {
            Some(id) => json!({
                "external_urls": { "spotify": self.artist_url(id) },
                "href": format!("{}/artists/{id}", self.api),
                "id": id,
                "name": credit.name,
                "type": "artist",
                "uri": format!("spotify:artist:{id}"),
            }),
            None => json!({
                "external_urls": {},
                "href": null,
                "id": null,
                "name": credit.name,
                "type": "artist",
                "uri": null,
            }),
        }
    }

    fn artist_url(&self, id: &str) -> String {
        self.store.artists.get(id).and_then(|a| a.url.clone()).unwrap_or_else(|| open_url("artist", id))
    }

    /// ArtistObject (without the deprecated followers, genres and popularity).
    pub(crate) fn artist(&self, id: &str) -> Value {
        let name = self.store.artists.get(id).map(|a| a.name.as_str()).unwrap_or_default();
        json!({
            "external_urls": { "spotify": self.artist_url(id) },
            "href": format!("{}/artists/{id}", self.api),
            "id": id,
            "images": [],
            "name": name,
            "type": "artist",
            "uri": format!("spotify:artist:{id}"),
        })
    }

    fn album_base(&self, id: &str, title: &str, artists: &[ArtistCredit]) -> Value {
        let rec = self.store.albums.get(id);
        let total = rec.map_or(1, |a| a.tracks.len().max(1));
        let url = rec.and_then(|a| a.url.clone()).unwrap_or_else(|| open_url("album", id));
        json!({
            "album_type": if total >= 4 { "album" } else { "single" },
            "total_tracks": total,
            "external_urls": { "spotify": url },
            "href": format!("{}/albums/{id}", self.api),
            "id": id,
            "images": [],
            "name": title,
            "release_date": release_year(id).to_string(),
            "release_date_precision": "year",
            "type": "album",
            "uri": format!("spotify:album:{id}"),
            "artists": artists.iter().map(|a| self.simplified_artist(a)).collect::<Vec<_>>(),
        })
    }

    /// SimplifiedAlbumObject of a track's album.
    pub(crate) fn simplified_album(&self, album: &AlbumRef) -> Value {
        self.album_base(&album.id, &album.title, &album.artists)
    }

    /// AlbumObject (with its first 50 tracks as SimplifiedTrackObjects).
    pub(crate) fn album(&self, id: &str) -> Value {
        let Some(rec) = self.store.albums.get(id) else {
            return Value::Null;
        };
        let mut album = self.album_base(id, &rec.title, &rec.artists);
        let tracks: Vec<Value> = rec
            .tracks
            .iter()
            .take(50)
            .filter_map(|t| self.store.tracks.get(t))
            .map(|t| self.simplified_track(t))
            .collect();
        let total = rec.tracks.len();
        let next = (total > 50).then(|| format!("{}/albums/{id}/tracks?offset=50&limit=50", self.api));
        if let Some(object) = album.as_object_mut() {
            object.insert(
                "tracks".into(),
                json!({
                    "href": format!("{}/albums/{id}/tracks?offset=0&limit=50", self.api),
                    "limit": 50,
                    "next": next,
                    "offset": 0,
                    "previous": null,
                    "total": total,
                    "items": tracks,
                }),
            );
            object.insert("copyrights".into(), json!([]));
            object.insert("external_ids".into(), json!({}));
        }
        album
    }

    fn track_number(&self, track: &Track) -> usize {
        track
            .album
            .as_ref()
            .and_then(|a| self.store.albums.get(&a.id))
            .and_then(|a| a.tracks.iter().position(|t| *t == track.id))
            .map_or(1, |i| i + 1)
    }

    fn track_common(&self, track: &Track) -> serde_json::Map<String, Value> {
        let url = track.url.clone().unwrap_or_else(|| open_url("track", &track.id));
        let mut object = serde_json::Map::new();
        object.insert("artists".into(), track.artists.iter().map(|a| self.simplified_artist(a)).collect());
        object.insert("disc_number".into(), json!(1));
        // `null` when the seeded track has no duration (the real API always has one).
        object.insert("duration_ms".into(), json!(track.duration_ms));
        object.insert("explicit".into(), json!(false));
        object.insert("external_urls".into(), json!({ "spotify": url }));
        object.insert("href".into(), json!(format!("{}/tracks/{}", self.api, track.id)));
        object.insert("id".into(), json!(track.id));
        object.insert("is_local".into(), json!(false));
        object.insert("name".into(), json!(track.title));
        object.insert("track_number".into(), json!(self.track_number(track)));
        object.insert("type".into(), json!("track"));
        object.insert("uri".into(), json!(format!("spotify:track:{}", track.id)));
        object
    }

    /// TrackObject: the full track, with `external_ids.isrc` and the album.
    pub(crate) fn track(&self, track: &Track) -> Value {
        let mut object = self.track_common(track);
        let album = track.album.as_ref().map_or(Value::Null, |a| self.simplified_album(a));
        object.insert("album".into(), album);
        let external_ids = match &track.isrc {
            Some(isrc) => json!({ "isrc": isrc }),
            None => json!({}),
        };
        object.insert("external_ids".into(), external_ids);
        Value::Object(object)
    }

    /// SimplifiedTrackObject: no album, no ISRC.
    pub(crate) fn simplified_track(&self, track: &Track) -> Value {
        Value::Object(self.track_common(track))
    }

    /// PlaylistUserObject (`display_name` included: PlaylistOwnerObject).
    pub(crate) fn user(&self, user_id: &str) -> Value {
        let display_name = self.store.users.get(user_id).map(|u| u.display_name.clone());
        json!({
            "external_urls": { "spotify": open_url("user", user_id) },
            "href": format!("{}/users/{user_id}", self.api),
            "id": user_id,
            "type": "user",
            "uri": format!("spotify:user:{user_id}"),
            "display_name": display_name,
        })
    }

    fn playlist_base(&self, id: &str, rec: &PlaylistRec) -> serde_json::Map<String, Value> {
        let url = rec.url.clone().unwrap_or_else(|| open_url("playlist", id));
        let mut object = serde_json::Map::new();
        object.insert("collaborative".into(), json!(rec.collaborative));
        object.insert("description".into(), json!(""));
        object.insert("external_urls".into(), json!({ "spotify": url }));
        object.insert("href".into(), json!(format!("{}/playlists/{id}", self.api)));
        object.insert("id".into(), json!(id));
        object.insert("images".into(), json!([]));
        object.insert("name".into(), json!(rec.name));
        object.insert("owner".into(), self.user(&rec.owner));
        object.insert("public".into(), json!(rec.public));
        object.insert("snapshot_id".into(), json!(rec.snapshot_id));
        object.insert("type".into(), json!("playlist"));
        object.insert("uri".into(), json!(format!("spotify:playlist:{id}")));
        object
    }

    /// SimplifiedPlaylistObject, with `items: {href, total}`.
    pub(crate) fn simplified_playlist(&self, id: &str, rec: &PlaylistRec) -> Value {
        let mut object = self.playlist_base(id, rec);
        object.insert(
            "items".into(),
            json!({ "href": format!("{}/playlists/{id}/items", self.api), "total": rec.items.len() }),
        );
        Value::Object(object)
    }

    /// PlaylistObject; `items` (a first page) only when `with_items` (owner or collaborator).
    pub(crate) fn playlist(&self, id: &str, rec: &PlaylistRec, with_items: Option<Value>) -> Value {
        let mut object = self.playlist_base(id, rec);
        if let Some(items) = with_items {
            object.insert("items".into(), items);
        }
        Value::Object(object)
    }

    /// PlaylistTrackObject: `added_at`, `added_by`, `is_local`, `item`.
    pub(crate) fn playlist_item(&self, item: &super::store::ItemRec) -> Value {
        let track = self.store.tracks.get(&item.track_id).map_or(Value::Null, |t| self.track(t));
        json!({
            "added_at": timestamp(item.added_at),
            "added_by": self.user(&item.added_by),
            "is_local": false,
            "item": track,
        })
    }
}

/// A PagingObject: `href`, `items`, `limit`, `next`, `offset`, `previous`, `total`.
/// `path` is the endpoint under the API base, `extra` more query (`&type=track`).
pub(crate) fn paging(
    api: &str,
    path: &str,
    extra: &str,
    offset: usize,
    limit: usize,
    total: usize,
    items: Vec<Value>,
) -> Value {
    let link = |offset: usize| format!("{api}{path}?offset={offset}&limit={limit}{extra}");
    let next = (offset + limit < total).then(|| link(offset + limit));
    let previous = (offset > 0).then(|| link(offset.saturating_sub(limit)));
    json!({
        "href": link(offset),
        "items": items,
        "limit": limit,
        "next": next,
        "offset": offset,
        "previous": previous,
        "total": total,
    })
}
