//! The library model: artists, tracks, albums, playlists and a connection's
//! [`LibrarySnapshot`].
//!
//! # JSON form
//! Every type here serializes with serde to a stable JSON form (field names in
//! `snake_case`, enums as `snake_case` strings, timestamps RFC 3339, optional fields
//! omitted when empty). It is also dnp's export format: fields are only ever added, with
//! defaults, never renamed or removed within a major version. See `docs/formats.md`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::ProviderId;

/// The role of an artist on a track or album.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditRole {
    /// A main artist (several on a collaboration).
    Primary,
    /// A featured / guest artist.
    Featured,
}

/// One artist credit on a track or album.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtistCredit {
    /// The artist's id at the provider of the snapshot (`3TVXtAsR1Inumwj472S9r4`), when the
    /// service gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The display name as the service gives it.
    pub name: String,
    /// Primary or featured.
    pub role: CreditRole,
}

/// A reference to an album, as carried by a track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbumRef {
    /// The album's id at the provider.
    pub id: String,
    /// The album's title.
    pub title: String,
    /// The album's artists (the "album artist").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artists: Vec<ArtistCredit>,
}

/// A track at one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// The track's id at the provider (for YouTube, the video id).
    pub id: String,
    /// The title.
    pub title: String,
    /// Artist credits in the service's order.
    pub artists: Vec<ArtistCredit>,
    /// The album, when the service gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album: Option<AlbumRef>,
    /// The ISRC, when the service gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isrc: Option<String>,
    /// Duration in milliseconds, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u32>,
    /// A link that opens the track in the service (for manual checklists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// An album at one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Album {
    /// The album's id at the provider.
    pub id: String,
    /// The title.
    pub title: String,
    /// The album's artists.
    pub artists: Vec<ArtistCredit>,
    /// A link that opens the album in the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// An artist at one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artist {
    /// The artist's id at the provider.
    pub id: String,
    /// The display name.
    pub name: String,
    /// A link that opens the artist in the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A liked / saved track in the user's library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LikedTrack {
    /// The track.
    pub track: Track,
    /// When the user saved it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<DateTime<Utc>>,
    /// The service's id of the library entry when it differs from the track id (Apple
    /// Music library ids, YouTube playlist item ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<String>,
    /// Whether the user has rated it "dislike" (services that rate rather than remove).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disliked: bool,
}

/// A saved album in the user's library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAlbum {
    /// The album.
    pub album: Album,
    /// When the user saved it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<DateTime<Utc>>,
}

/// An artist the user follows (for YouTube, a channel subscription).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowedArtist {
    /// The artist.
    pub artist: Artist,
    /// The service's id of the follow itself when it differs (YouTube subscription id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<String>,
}

/// One entry of a playlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaylistItem {
    /// 0-based position in the playlist.
    pub position: u32,
    /// The track.
    pub track: Track,
    /// When it was added, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<DateTime<Utc>>,
    /// The service's id of this entry, for services that remove by entry (TIDAL
    /// `meta.itemId`, YouTube `playlistItemId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
}

/// A playlist the user owns, collaborates on, or follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Playlist {
    /// The playlist's id at the provider.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether the user owns it.
    pub owned: bool,
    /// Whether it is collaborative.
    #[serde(default)]
    pub collaborative: bool,
    /// Whether the user may edit its items (owner or collaborator, and the API allows it).
    pub editable: bool,
    /// The service's version of the playlist (Spotify `snapshot_id`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The items, in position order.
    pub items: Vec<PlaylistItem>,
    /// A link that opens the playlist in the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Everything dnp read of one connection's library at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibrarySnapshot {
    /// The provider.
    pub provider: ProviderId,
    /// When the scan finished, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<DateTime<Utc>>,
    /// Liked / saved tracks, newest first as the service lists them.
    #[serde(default)]
    pub liked_tracks: Vec<LikedTrack>,
    /// Saved albums.
    #[serde(default)]
    pub saved_albums: Vec<SavedAlbum>,
    /// Followed artists.
    #[serde(default)]
    pub followed_artists: Vec<FollowedArtist>,
    /// Playlists with their items.
    #[serde(default)]
    pub playlists: Vec<Playlist>,
}

impl LibrarySnapshot {
    /// An empty snapshot of `provider`.
    pub fn empty(provider: ProviderId) -> Self {
        Self {
            provider,
            taken_at: None,
            liked_tracks: Vec::new(),
            saved_albums: Vec::new(),
            followed_artists: Vec::new(),
            playlists: Vec::new(),
        }
    }

    /// The number of items: liked tracks, saved albums, followed artists and playlist items.
    pub fn item_count(&self) -> usize {
        self.liked_tracks.len()
            + self.saved_albums.len()
            + self.followed_artists.len()
            + self.playlists.iter().map(|p| p.items.len()).sum::<usize>()
    }

    /// Renumbers every playlist's items `0..n` in their current order.
    pub fn renumber_playlists(&mut self) {
        for playlist in &mut self.playlists {
            for (i, item) in playlist.items.iter_mut().enumerate() {
                item.position = i as u32;
            }
        }
    }
}
