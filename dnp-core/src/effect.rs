//! The reference semantics of each action on a [`LibrarySnapshot`]: what a provider that
//! obeys the [`Provider`](crate::Provider) contract does to the library. The in-memory
//! provider and the property tests use it; adapter authors can read it as the spec.

use rustc_hash::FxHashMap;

use crate::action::{Action, ActionKind, Outcome, Target};
use crate::model::{Album, Artist, FollowedArtist, LibrarySnapshot, LikedTrack, PlaylistItem, SavedAlbum, Track};

/// The service's catalog: every track, album and artist that can be (re-)added by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tracks: FxHashMap<String, Track>,
    albums: FxHashMap<String, Album>,
    artists: FxHashMap<String, Artist>,
}

impl Catalog {
    /// A catalog holding everything `snapshot` mentions.
    pub fn from_snapshot(snapshot: &LibrarySnapshot) -> Self {
        let mut catalog = Self::default();
        catalog.absorb(snapshot);
        catalog
    }

    /// Adds everything `snapshot` mentions.
    pub fn absorb(&mut self, snapshot: &LibrarySnapshot) {
        for l in &snapshot.liked_tracks {
            self.add_track(l.track.clone());
        }
        for p in &snapshot.playlists {
            for i in &p.items {
                self.add_track(i.track.clone());
            }
        }
        for a in &snapshot.saved_albums {
            self.albums.insert(a.album.id.clone(), a.album.clone());
        }
        for a in &snapshot.followed_artists {
            self.artists.insert(a.artist.id.clone(), a.artist.clone());
        }
    }

    /// Adds a track.
    pub fn add_track(&mut self, track: Track) {
        self.tracks.insert(track.id.clone(), track);
    }

    /// A track by id.
    pub fn track(&self, id: &str) -> Option<&Track> {
        self.tracks.get(id)
    }

    /// An album by id.
    pub fn album(&self, id: &str) -> Option<&Album> {
        self.albums.get(id)
    }

    /// An artist by id.
    pub fn artist(&self, id: &str) -> Option<&Artist> {
        self.artists.get(id)
    }
}

/// Applies `action` to `library` the way the contract says a provider must.
///
/// # Behavior
/// - Removals of an item that is not there are confirmed (idempotent).
/// - Adding an item already there is confirmed and changes nothing.
/// - Playlist removal removes the entry at the recorded position when it still holds
///   the track, else the first entry with the track; inserts clamp the position to the
///   playlist's length and say so in the outcome's note.
/// - An id unknown to the catalog fails with `not_found`.
/// - Liking a track adds it unrated, whatever the target's `disliked` (that is the
///   before-state): a rating is its own action, [`ActionKind::DislikeTrack`], which a
///   rollback plans after the re-like of a track that was disliked.
pub fn apply_action(library: &mut LibrarySnapshot, catalog: &Catalog, action: &Action) -> Outcome {
    let confirmed = Outcome::Confirmed { note: None };
    let not_found = |what: &str, id: &str| {
        Outcome::Failed(crate::ActionFailure {
            code: "not_found".into(),
            message: format!("{what} {id} not found"),
            retryable: false,
        })
    };
    match (action.kind, &action.target) {
        (ActionKind::UnlikeTrack, Target::Track { track_id, .. }) => {
            library.liked_tracks.retain(|l| l.track.id != *track_id);
            confirmed
        }
        (ActionKind::LikeTrack, Target::Track { track_id, entry_id, added_at, .. }) => {
            if library.liked_tracks.iter().any(|l| l.track.id == *track_id) {
                return confirmed;
            }
            let Some(track) = catalog.track(track_id) else {
                return not_found("track", track_id);
            };
            let liked =
                LikedTrack { track: track.clone(), added_at: *added_at, entry_id: entry_id.clone(), disliked: false };
            // Keep newest-first order by added_at where known.
            let at = library
                .liked_tracks
                .iter()
                .position(|l| matches!((l.added_at, added_at), (Some(a), Some(b)) if a < *b))
                .unwrap_or(library.liked_tracks.len());
            library.liked_tracks.insert(at, liked);
            confirmed
        }
        (ActionKind::DislikeTrack | ActionKind::ClearTrackRating, Target::Track { track_id, .. }) => {
            let disliked = action.kind == ActionKind::DislikeTrack;
            if catalog.track(track_id).is_none() {
                return not_found("track", track_id);
            }
            for l in library.liked_tracks.iter_mut().filter(|l| l.track.id == *track_id) {
                l.disliked = disliked;
            }
            confirmed
        }
        (ActionKind::RemoveAlbum, Target::Album { album_id, .. }) => {
            library.saved_albums.retain(|a| a.album.id != *album_id);
            confirmed
        }
        (ActionKind::SaveAlbum, Target::Album { album_id, added_at }) => {
            if library.saved_albums.iter().any(|a| a.album.id == *album_id) {
                return confirmed;
            }
            let Some(album) = catalog.album(album_id) else {
                return not_found("album", album_id);
            };
            let at = library
                .saved_albums
                .iter()
                .position(|a| matches!((a.added_at, added_at), (Some(x), Some(y)) if x < *y))
                .unwrap_or(library.saved_albums.len());
            library.saved_albums.insert(at, SavedAlbum { album: album.clone(), added_at: *added_at });
            confirmed
        }
        (ActionKind::UnfollowArtist, Target::Artist { artist_id, .. }) => {
            library.followed_artists.retain(|a| a.artist.id != *artist_id);
            confirmed
        }
        (ActionKind::FollowArtist, Target::Artist { artist_id, entry_id }) => {
            if library.followed_artists.iter().any(|a| a.artist.id == *artist_id) {
                return confirmed;
            }
            let Some(artist) = catalog.artist(artist_id) else {
                return not_found("artist", artist_id);
            };
            library.followed_artists.push(FollowedArtist { artist: artist.clone(), entry_id: entry_id.clone() });
            confirmed
        }
        (ActionKind::RemovePlaylistItem, Target::PlaylistItem { playlist_id, track_id, position, .. }) => {
            let Some(playlist) = library.playlists.iter_mut().find(|p| p.id == *playlist_id) else {
                return not_found("playlist", playlist_id);
            };
            let at = playlist
                .items
                .iter()
                .position(|i| i.position == *position && i.track.id == *track_id)
                .or_else(|| playlist.items.iter().position(|i| i.track.id == *track_id));
            if let Some(at) = at {
                playlist.items.remove(at);
                for (i, item) in playlist.items.iter_mut().enumerate() {
                    item.position = i as u32;
                }
            }
            confirmed
        }
        (
            ActionKind::InsertPlaylistItem,
            Target::PlaylistItem { playlist_id, track_id, position, item_id, added_at, .. },
        ) => {
            let Some(track) = catalog.track(track_id) else {
                return not_found("track", track_id);
            };
            let Some(playlist) = library.playlists.iter_mut().find(|p| p.id == *playlist_id) else {
                return not_found("playlist", playlist_id);
            };
            let at = (*position as usize).min(playlist.items.len());
            playlist.items.insert(
                at,
                PlaylistItem {
                    position: at as u32,
                    track: track.clone(),
                    added_at: *added_at,
                    item_id: item_id.clone(),
                },
            );
            for (i, item) in playlist.items.iter_mut().enumerate() {
                item.position = i as u32;
            }
            let note = (at != *position as usize)
                .then(|| format!("playlist changed: inserted at position {at} instead of {position}"));
            Outcome::Confirmed { note }
        }
        (kind, _) => Outcome::Failed(crate::ActionFailure {
            code: "invalid_input".into(),
            message: format!("{} does not apply to this target", kind.as_str()),
            retryable: false,
        }),
    }
}
