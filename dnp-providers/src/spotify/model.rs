//! The Spotify Web API JSON dnp reads, following `shared/specs/spotify/fixed-spotify-open-api.yml`.
//!
//! Only fields dnp uses are declared (unknown fields are ignored); fields the spec marks
//! `deprecated: true` are not read: playlist entries come from `items[].item` (not
//! `track`), a playlist's item count from `items.total` (not `tracks.total`); popularity,
//! genres, followers and available markets are left alone.

use chrono::{DateTime, Utc};
use dnp_core::{AlbumRef, ArtistCredit, CreditRole, Track};
use serde::{Deserialize, Serialize};

/// `PagingObject`: one page of an offset-paged list.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Paging<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The total number of items.
    pub total: u32,
    /// The page size the service used.
    pub limit: u32,
    /// The offset of this page.
    pub offset: u32,
    /// The next page's URL, `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `CursorObject`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Cursors {
    /// The cursor of the next page.
    #[serde(default)]
    pub after: Option<String>,
}

/// `CursorPagingObject`: one page of a cursor-paged list (followed artists).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CursorPaging<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The next page's URL, `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
    /// The cursors.
    #[serde(default)]
    pub cursors: Option<Cursors>,
    /// The total number of items, when given.
    #[serde(default)]
    pub total: Option<u32>,
}

/// The answer of `GET /me/following?type=artist`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct FollowedArtists {
    /// The page.
    pub artists: CursorPaging<ArtistObject>,
}

/// `ExternalUrlObject`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ExternalUrls {
    /// The open.spotify.com link.
    #[serde(default)]
    pub spotify: Option<String>,
}

/// `ExternalIdObject`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ExternalIds {
    /// The ISRC.
    #[serde(default)]
    pub isrc: Option<String>,
}

/// `SimplifiedArtistObject`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SimplifiedArtistObject {
    /// The artist id (absent for local files).
    #[serde(default)]
    pub id: Option<String>,
    /// The name.
    pub name: String,
}

/// `ArtistObject` (the fields dnp reads).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ArtistObject {
    /// The artist id.
    pub id: String,
    /// The name.
    pub name: String,
    /// Links.
    #[serde(default)]
    pub external_urls: Option<ExternalUrls>,
    /// Images, widest first.
    #[serde(default)]
    pub images: Vec<ImageObject>,
}

/// `ImageObject`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ImageObject {
    /// The image URL.
    pub url: String,
}

/// `SimplifiedAlbumObject` as carried by a track.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SimplifiedAlbumObject {
    /// The album id (absent for local files).
    #[serde(default)]
    pub id: Option<String>,
    /// The name.
    pub name: String,
    /// The album's artists.
    #[serde(default)]
    pub artists: Vec<SimplifiedArtistObject>,
}

/// `AlbumObject` (the fields dnp reads).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AlbumObject {
    /// The album id.
    pub id: String,
    /// The name.
    pub name: String,
    /// The album's artists.
    pub artists: Vec<SimplifiedArtistObject>,
    /// Links.
    #[serde(default)]
    pub external_urls: Option<ExternalUrls>,
}

/// `TrackObject` (the fields dnp reads).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TrackObject {
    /// The track id (`null` for local files).
    #[serde(default)]
    pub id: Option<String>,
    /// The name.
    pub name: String,
    /// The artists: the first is the main artist, the others featured. (Absent on
    /// episodes, which share this shape in playlists.)
    #[serde(default)]
    pub artists: Vec<SimplifiedArtistObject>,
    /// The album.
    #[serde(default)]
    pub album: Option<SimplifiedAlbumObject>,
    /// External ids (ISRC).
    #[serde(default)]
    pub external_ids: Option<ExternalIds>,
    /// Length in milliseconds.
    #[serde(default)]
    pub duration_ms: Option<u32>,
    /// Links.
    #[serde(default)]
    pub external_urls: Option<ExternalUrls>,
    /// Whether this is a local file (no Spotify id).
    #[serde(default)]
    pub is_local: bool,
}

impl TrackObject {
    /// The dnp track, or `None` for a local file (no id).
    ///
    /// Artist credits: `artists[0]` is [`CreditRole::Primary`], the rest
    /// [`CreditRole::Featured`] (Spotify lists featured artists as extra entries with no
    /// role field). The album's artists are all primary.
    pub fn to_track(&self) -> Option<Track> {
        let id = self.id.clone().filter(|id| !id.is_empty() && !self.is_local)?;
        Some(Track {
            id,
            title: self.name.clone(),
            artists: credits(&self.artists, true),
            album: self.album.as_ref().and_then(|a| {
                Some(AlbumRef { id: a.id.clone()?, title: a.name.clone(), artists: credits(&a.artists, false) })
            }),
            isrc: self.external_ids.as_ref().and_then(|e| e.isrc.clone()).filter(|i| !i.is_empty()),
            duration_ms: self.duration_ms,
            url: self.external_urls.as_ref().and_then(|u| u.spotify.clone()),
        })
    }
}

/// Artist credits in the service's order; with `featured`, all but the first are featured.
pub(crate) fn credits(artists: &[SimplifiedArtistObject], featured: bool) -> Vec<ArtistCredit> {
    artists
        .iter()
        .enumerate()
        .map(|(i, a)| ArtistCredit {
            id: a.id.clone().filter(|id| !id.is_empty()),
            name: a.name.clone(),
            role: if i > 0 && featured { CreditRole::Featured } else { CreditRole::Primary },
        })
        .collect()
}

/// `SavedTrackObject`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SavedTrackObject {
    /// When the user saved it.
    #[serde(default)]
    pub added_at: Option<DateTime<Utc>>,
    /// The track.
    pub track: TrackObject,
}

/// `SavedAlbumObject`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SavedAlbumObject {
    /// When the user saved it.
    #[serde(default)]
    pub added_at: Option<DateTime<Utc>>,
    /// The album.
    pub album: AlbumObject,
}

/// `PlaylistOwnerObject`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlaylistOwnerObject {
    /// The owner's user id.
    pub id: String,
    /// The owner's display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `PlaylistTracksRefObject`: where a playlist's items are and how many.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlaylistItemsRef {
    /// The number of items.
    pub total: u32,
}

/// `SimplifiedPlaylistObject` (the fields dnp reads).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SimplifiedPlaylistObject {
    /// The playlist id.
    pub id: String,
    /// The name.
    pub name: String,
    /// Whether other users may edit it.
    #[serde(default)]
    pub collaborative: bool,
    /// The owner.
    pub owner: PlaylistOwnerObject,
    /// The version.
    pub snapshot_id: String,
    /// The item count (`items`; the deprecated `tracks` is not read).
    pub items: PlaylistItemsRef,
    /// Links.
    #[serde(default)]
    pub external_urls: Option<ExternalUrls>,
}

/// The item of a playlist entry: a track or an episode (`type` says which).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlaylistEntryItem {
    /// `track` or `episode`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The track, read from the same object (an episode reads as a track without artists).
    #[serde(flatten)]
    pub track: TrackObject,
}

/// `PlaylistTrackObject`: one entry of a playlist.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlaylistTrackObject {
    /// When it was added (`null` on very old playlists).
    #[serde(default)]
    pub added_at: Option<DateTime<Utc>>,
    /// The track or episode (`null` when no longer available).
    #[serde(default)]
    pub item: Option<PlaylistEntryItem>,
    /// Whether it is a local file.
    #[serde(default)]
    pub is_local: bool,
}

impl PlaylistTrackObject {
    /// The entry's track, when it is a Spotify track (not an episode, a local file or an
    /// unavailable item).
    pub fn to_track(&self) -> Option<Track> {
        let item = self.item.as_ref()?;
        if self.is_local || item.kind.as_deref().is_some_and(|k| k != "track") {
            return None;
        }
        item.track.to_track()
    }
}

/// `PrivateUserObject` (the fields dnp reads).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PrivateUserObject {
    /// The user id.
    pub id: String,
    /// The display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The answer of a playlist change: the new version.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SnapshotId {
    /// The playlist's new snapshot id.
    pub snapshot_id: String,
}

/// A playlist's version and item count (`GET /playlists/{id}?fields=snapshot_id,items.total`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlaylistVersion {
    /// The version.
    pub snapshot_id: String,
}

/// The answer of `GET /search`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SearchResponse {
    /// Artists, for `type=artist`.
    #[serde(default)]
    pub artists: Option<Paging<ArtistObject>>,
    /// Tracks, for `type=track`.
    #[serde(default)]
    pub tracks: Option<Paging<TrackObject>>,
}

/// A body of `DELETE /playlists/{id}/items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveItemsBody {
    /// The entries to remove, by URI (every occurrence of each goes).
    pub items: Vec<UriObject>,
    /// The version the removal is meant for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
}

/// `{"uri": "spotify:track:…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UriObject {
    /// The URI.
    pub uri: String,
}

/// A body of `POST /playlists/{id}/items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddItemsBody {
    /// The URIs, inserted in this order.
    pub uris: Vec<String>,
    /// The 0-based position of the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
}

#[cfg(test)]
mod tests {
    use dnp_core::{CreditRole, ProviderError, ProviderId};

    use super::*;
    use crate::http::decode_json;
    use crate::spotify::client::endpoints;

    fn spotify() -> ProviderId {
        ProviderId::new(ProviderId::SPOTIFY).unwrap()
    }

    #[test]
    fn saved_tracks_parse_with_featured_credits_isrc_and_local_files_left_out() {
        let page: Paging<SavedTrackObject> =
            decode_json(&spotify(), endpoints::LIKED_TRACKS, include_bytes!("testdata/saved_tracks.json")).unwrap();
        assert_eq!((page.total, page.offset, page.items.len()), (3, 0, 2));
        assert!(page.next.is_some());
        let work = page.items[0].track.to_track().unwrap();
        assert_eq!(work.id, "14WWzenpaEgQZlqPq2nk4v");
        assert_eq!(work.isrc.as_deref(), Some("QMJMT1600001"));
        assert_eq!(work.artists[0].role, CreditRole::Primary);
        assert_eq!(work.artists[1].role, CreditRole::Featured);
        assert_eq!(work.artists[1].id.as_deref(), Some("3TVXtAsR1Inumwj472S9r4"));
        assert_eq!(work.album.as_ref().unwrap().artists[0].name, "Rihanna");
        assert_eq!(work.url.as_deref(), Some("https://open.spotify.com/track/14WWzenpaEgQZlqPq2nk4v"));
        assert_eq!(page.items[0].added_at.unwrap().to_rfc3339(), "2026-05-01T10:15:00+00:00");
        assert!(page.items[1].track.to_track().is_none(), "a local file has no Spotify id");
    }

    #[test]
    fn playlist_items_read_item_not_track_and_keep_only_spotify_tracks() {
        let page: Paging<PlaylistTrackObject> =
            decode_json(&spotify(), endpoints::PLAYLIST_ITEMS, include_bytes!("testdata/playlist_items.json")).unwrap();
        assert_eq!(page.items.len(), 4);
        let tracks: Vec<Option<String>> = page.items.iter().map(|i| i.to_track().map(|t| t.id)).collect();
        assert_eq!(
            tracks,
            [Some("3BHSGgGZ8nA1HK8rNnr1eu".to_owned()), None, None, Some("3BHSGgGZ8nA1HK8rNnr1eu".to_owned())],
            "the episode and the unavailable entry are skipped, the duplicate kept"
        );
        // The deprecated `track` field is not read.
        let only_deprecated =
            br#"{"added_at":null,"is_local":false,"track":{"id":"3BHSGgGZ8nA1HK8rNnr1eu","name":"x","artists":[]}}"#;
        let entry: PlaylistTrackObject = decode_json(&spotify(), endpoints::PLAYLIST_ITEMS, only_deprecated).unwrap();
        assert!(entry.to_track().is_none());
    }

    #[test]
    fn playlists_and_followed_artists_parse() {
        let page: Paging<SimplifiedPlaylistObject> =
            decode_json(&spotify(), endpoints::PLAYLISTS, include_bytes!("testdata/playlists.json")).unwrap();
        assert_eq!(page.items[0].owner.id, "alice");
        assert_eq!(page.items[0].items.total, 4);
        assert!(page.items[1].collaborative);
        assert_eq!(page.items[1].snapshot_id, "Mjsx");
        let followed: FollowedArtists =
            decode_json(&spotify(), endpoints::FOLLOWED_ARTISTS, include_bytes!("testdata/followed_artists.json"))
                .unwrap();
        assert_eq!(followed.artists.cursors.unwrap().after.as_deref(), Some("0TnOYISbd1XYRBk9myaseg"));
        assert_eq!(followed.artists.items[0].images[0].url, "https://i.scdn.co/image/x");
    }

    #[test]
    fn malformed_json_is_a_protocol_error_naming_the_endpoint_and_the_field() {
        let err = decode_json::<Paging<SavedTrackObject>>(
            &spotify(),
            endpoints::LIKED_TRACKS,
            include_bytes!("testdata/malformed_saved_tracks.json"),
        )
        .unwrap_err();
        match &err {
            ProviderError::Protocol { endpoint, detail, .. } => {
                assert_eq!(endpoint, "GET /me/tracks");
                assert!(detail.contains("items[0].track.artists"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("GET /me/tracks"), "{err}");
        for bad in [&b"not json"[..], b"{}", br#"{"items":[],"total":-1,"limit":50,"offset":0}"#] {
            let err = decode_json::<Paging<SavedTrackObject>>(&spotify(), endpoints::LIKED_TRACKS, bad).unwrap_err();
            assert_eq!(err.code(), "protocol");
        }
    }

    #[test]
    fn request_bodies_follow_the_spec() {
        let body = RemoveItemsBody {
            items: vec![UriObject { uri: "spotify:track:a".into() }],
            snapshot_id: Some("s1".into()),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"items":[{"uri":"spotify:track:a"}],"snapshot_id":"s1"}"#
        );
        let add = AddItemsBody { uris: vec!["spotify:track:a".into()], position: Some(3) };
        assert_eq!(serde_json::to_string(&add).unwrap(), r#"{"uris":["spotify:track:a"],"position":3}"#);
    }
}
