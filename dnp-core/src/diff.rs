//! `diff(before, after)`: what changed between two snapshots of one library. Used to
//! verify an enforcement and by sync.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::model::LibrarySnapshot;

/// The changes in one playlist. Items are compared as a multiset of track ids: a track
/// present twice before and once after counts one removal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaylistDiff {
    /// The playlist.
    pub playlist_id: String,
    /// Tracks added, with their position in `after`.
    pub added: Vec<(u32, String)>,
    /// Tracks removed, with their position in `before`.
    pub removed: Vec<(u32, String)>,
}

/// What changed between two snapshots. Lists are in the order the items appear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDiff {
    /// Liked track ids added.
    pub liked_added: Vec<String>,
    /// Liked track ids removed.
    pub liked_removed: Vec<String>,
    /// Saved album ids added.
    pub albums_added: Vec<String>,
    /// Saved album ids removed.
    pub albums_removed: Vec<String>,
    /// Artist ids followed.
    pub artists_followed: Vec<String>,
    /// Artist ids unfollowed.
    pub artists_unfollowed: Vec<String>,
    /// Playlists that appeared.
    pub playlists_added: Vec<String>,
    /// Playlists that disappeared.
    pub playlists_removed: Vec<String>,
    /// Item changes of playlists present in both.
    pub playlists_changed: Vec<PlaylistDiff>,
}

impl SnapshotDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Compares two snapshots of the same library.
pub fn diff(before: &LibrarySnapshot, after: &LibrarySnapshot) -> SnapshotDiff {
    let (liked_removed, liked_added) = set_diff(
        before.liked_tracks.iter().map(|l| l.track.id.as_str()),
        after.liked_tracks.iter().map(|l| l.track.id.as_str()),
    );
    let (albums_removed, albums_added) = set_diff(
        before.saved_albums.iter().map(|a| a.album.id.as_str()),
        after.saved_albums.iter().map(|a| a.album.id.as_str()),
    );
    let (artists_unfollowed, artists_followed) = set_diff(
        before.followed_artists.iter().map(|a| a.artist.id.as_str()),
        after.followed_artists.iter().map(|a| a.artist.id.as_str()),
    );
    let (playlists_removed, playlists_added) =
        set_diff(before.playlists.iter().map(|p| p.id.as_str()), after.playlists.iter().map(|p| p.id.as_str()));
    let after_by_id: FxHashMap<&str, _> = after.playlists.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut playlists_changed = Vec::new();
    for b in &before.playlists {
        let Some(a) = after_by_id.get(b.id.as_str()) else {
            continue;
        };
        let (removed, added) = multiset_diff(
            b.items.iter().map(|i| (i.position, i.track.id.as_str())),
            a.items.iter().map(|i| (i.position, i.track.id.as_str())),
        );
        if !removed.is_empty() || !added.is_empty() {
            playlists_changed.push(PlaylistDiff { playlist_id: b.id.clone(), added, removed });
        }
    }
    SnapshotDiff {
        liked_added,
        liked_removed,
        albums_added,
        albums_removed,
        artists_followed,
        artists_unfollowed,
        playlists_added,
        playlists_removed,
        playlists_changed,
    }
}

/// (in before but not after, in after but not before), each in its list's order.
fn set_diff<'a>(
    before: impl Iterator<Item = &'a str> + Clone,
    after: impl Iterator<Item = &'a str> + Clone,
) -> (Vec<String>, Vec<String>) {
    let (removed, added) = multiset_diff(before.map(|id| (0, id)), after.map(|id| (0, id)));
    (removed.into_iter().map(|(_, id)| id).collect(), added.into_iter().map(|(_, id)| id).collect())
}

/// Items with their positions.
type Positioned = Vec<(u32, String)>;

fn multiset_diff<'a>(
    before: impl Iterator<Item = (u32, &'a str)> + Clone,
    after: impl Iterator<Item = (u32, &'a str)> + Clone,
) -> (Positioned, Positioned) {
    let mut counts: FxHashMap<&str, i64> = FxHashMap::default();
    for (_, id) in after.clone() {
        *counts.entry(id).or_default() += 1;
    }
    let mut removed = Vec::new();
    for (pos, id) in before.clone() {
        let c = counts.entry(id).or_default();
        if *c > 0 {
            *c -= 1;
        } else {
            removed.push((pos, id.to_owned()));
        }
    }
    let mut counts: FxHashMap<&str, i64> = FxHashMap::default();
    for (_, id) in before {
        *counts.entry(id).or_default() += 1;
    }
    let mut added = Vec::new();
    for (pos, id) in after {
        let c = counts.entry(id).or_default();
        if *c > 0 {
            *c -= 1;
        } else {
            added.push((pos, id.to_owned()));
        }
    }
    (removed, added)
}
