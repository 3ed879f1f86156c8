//! Actions: what enforcement does to one library item, why, and its inverse.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{ActionId, EntryId};

/// The kinds of change dnp makes. Each has an inverse ([`ActionKind::inverse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Remove a track from liked / saved tracks.
    UnlikeTrack,
    /// Add a track to liked / saved tracks (inverse of `UnlikeTrack`).
    LikeTrack,
    /// Remove a saved album.
    RemoveAlbum,
    /// Save an album (inverse of `RemoveAlbum`).
    SaveAlbum,
    /// Unfollow an artist.
    UnfollowArtist,
    /// Follow an artist (inverse of `UnfollowArtist`).
    FollowArtist,
    /// Remove an entry from a playlist.
    RemovePlaylistItem,
    /// Insert an entry into a playlist at a position (inverse of `RemovePlaylistItem`).
    InsertPlaylistItem,
    /// Rate a track "dislike" (where removal is impossible).
    DislikeTrack,
    /// Clear a track's rating (inverse of `DislikeTrack`).
    ClearTrackRating,
}

impl ActionKind {
    /// Every kind, in a fixed order.
    pub const ALL: [Self; 10] = [
        Self::UnlikeTrack,
        Self::LikeTrack,
        Self::RemoveAlbum,
        Self::SaveAlbum,
        Self::UnfollowArtist,
        Self::FollowArtist,
        Self::RemovePlaylistItem,
        Self::InsertPlaylistItem,
        Self::DislikeTrack,
        Self::ClearTrackRating,
    ];

    /// The kind that undoes this one.
    pub fn inverse(self) -> Self {
        match self {
            Self::UnlikeTrack => Self::LikeTrack,
            Self::LikeTrack => Self::UnlikeTrack,
            Self::RemoveAlbum => Self::SaveAlbum,
            Self::SaveAlbum => Self::RemoveAlbum,
            Self::UnfollowArtist => Self::FollowArtist,
            Self::FollowArtist => Self::UnfollowArtist,
            Self::RemovePlaylistItem => Self::InsertPlaylistItem,
            Self::InsertPlaylistItem => Self::RemovePlaylistItem,
            Self::DislikeTrack => Self::ClearTrackRating,
            Self::ClearTrackRating => Self::DislikeTrack,
        }
    }

    /// Whether this kind takes something out of the library (what enforcement plans).
    pub fn is_removal(self) -> bool {
        matches!(self, Self::UnlikeTrack | Self::RemoveAlbum | Self::UnfollowArtist | Self::RemovePlaylistItem)
    }

    /// Whether sending the same action twice has the same effect as once. Inserting a
    /// playlist item is not: the executor never re-sends a non-idempotent action whose
    /// outcome a crash left unknown.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Self::InsertPlaylistItem)
    }

    /// The snake_case name used in JSON, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnlikeTrack => "unlike_track",
            Self::LikeTrack => "like_track",
            Self::RemoveAlbum => "remove_album",
            Self::SaveAlbum => "save_album",
            Self::UnfollowArtist => "unfollow_artist",
            Self::FollowArtist => "follow_artist",
            Self::RemovePlaylistItem => "remove_playlist_item",
            Self::InsertPlaylistItem => "insert_playlist_item",
            Self::DislikeTrack => "dislike_track",
            Self::ClearTrackRating => "clear_track_rating",
        }
    }
}

/// The library item an action changes, with the state it had before (enough to undo it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// A track (liked track, or a track to rate).
    Track {
        /// The track id.
        track_id: String,
        /// The library entry id, where the service has one apart from the track id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry_id: Option<String>,
        /// When it was liked (restored on rollback where the service allows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        added_at: Option<DateTime<Utc>>,
        /// Whether the track was rated "dislike" before the action: a rollback that likes
        /// it again rates it "dislike" again, and undoing a dislike of a track that was
        /// already disliked leaves the rating.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        disliked: bool,
    },
    /// A saved album.
    Album {
        /// The album id.
        album_id: String,
        /// When it was saved.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        added_at: Option<DateTime<Utc>>,
    },
    /// A followed artist.
    Artist {
        /// The artist id.
        artist_id: String,
        /// The follow's own id, where the service has one (YouTube subscription id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry_id: Option<String>,
    },
    /// One entry of a playlist.
    PlaylistItem {
        /// The playlist.
        playlist_id: String,
        /// The playlist's version when the plan was made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playlist_version: Option<String>,
        /// The track.
        track_id: String,
        /// Its 0-based position when the plan was made.
        position: u32,
        /// The entry's own id, where the service has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item_id: Option<String>,
        /// When it was added.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        added_at: Option<DateTime<Utc>>,
    },
}

impl Target {
    /// The playlist this target lives in, if any.
    pub fn playlist_id(&self) -> Option<&str> {
        match self {
            Self::PlaylistItem { playlist_id, .. } => Some(playlist_id),
            _ => None,
        }
    }

    /// The id of the track, album or artist targeted.
    pub fn item_id(&self) -> &str {
        match self {
            Self::Track { track_id, .. } | Self::PlaylistItem { track_id, .. } => track_id,
            Self::Album { album_id, .. } => album_id,
            Self::Artist { artist_id, .. } => artist_id,
        }
    }
}

/// How a library item was tied to a blocked artist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The artist is a primary credit (by id).
    PrimaryCredit,
    /// The artist is a featured credit (by id).
    FeaturedCredit,
    /// The artist is the album's artist.
    AlbumArtist,
    /// A credit with no id (or no id known for this provider) has the artist's name.
    CreditName,
    /// The title names the artist after "feat." / "ft." / "(with …)".
    TitleFeature,
    /// A credit's name matches though its id differs (aggressive).
    NameOnly,
    /// The followed artist is the blocked artist.
    FollowedArtist,
}

impl MatchKind {
    /// The confidence dnp gives a match of this kind, 0.0 to 1.0.
    pub fn confidence(self) -> f32 {
        match self {
            Self::PrimaryCredit | Self::FollowedArtist => 1.0,
            Self::FeaturedCredit => 0.95,
            Self::AlbumArtist => 0.9,
            Self::CreditName => 0.85,
            Self::TitleFeature => 0.8,
            Self::NameOnly => 0.7,
        }
    }
}

/// Why an action is in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The DNP entry that matched.
    pub entry_id: EntryId,
    /// The blocked artist's name (for display).
    pub artist_name: String,
    /// How it matched.
    pub matched: MatchKind,
    /// The credit that matched: the artist id, or the name as credited.
    pub credit: String,
    /// Confidence, 0.0 to 1.0.
    pub confidence: f32,
}

/// One change to one library item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Its id in the plan.
    pub id: ActionId,
    /// What to do.
    pub kind: ActionKind,
    /// To what, with its before-state.
    pub target: Target,
    /// Why.
    pub reason: Reason,
    /// A label for people: "Title — Artist" or the album / artist name.
    pub label: String,
    /// For an inverse action, the action it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inverse_of: Option<ActionId>,
}

impl Action {
    /// The action that undoes this one: the inverse kind on the same target, with the
    /// same reason, numbered `id`.
    pub fn inverse(&self, id: ActionId) -> Self {
        Self {
            id,
            kind: self.kind.inverse(),
            target: self.target.clone(),
            reason: self.reason.clone(),
            label: self.label.clone(),
            inverse_of: Some(self.id),
        }
    }
}

/// What became of one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Done, or already in the wanted state (removing an item that is gone is a success).
    Confirmed {
        /// A note for the user, e.g. "playlist changed: inserted at 12 instead of 14".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Not done.
    Failed(ActionFailure),
}

/// Why an action failed: a stable code, a message, whether a new attempt may succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionFailure {
    /// A machine-readable code (`not_found`, `conflict`, `rate_limited`…).
    pub code: String,
    /// A message a person can read (no secrets).
    pub message: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
}

impl From<&crate::ProviderError> for ActionFailure {
    fn from(err: &crate::ProviderError) -> Self {
        Self { code: err.code().to_owned(), message: err.to_string(), retryable: err.is_retryable() }
    }
}

/// The outcome of one action of a batch sent to a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// The action.
    pub action: ActionId,
    /// What became of it.
    pub outcome: Outcome,
}

impl ActionOutcome {
    /// A confirmed outcome.
    pub fn confirmed(action: ActionId) -> Self {
        Self { action, outcome: Outcome::Confirmed { note: None } }
    }

    /// A failed outcome.
    pub fn failed(action: ActionId, err: &crate::ProviderError) -> Self {
        Self { action, outcome: Outcome::Failed(err.into()) }
    }
}
