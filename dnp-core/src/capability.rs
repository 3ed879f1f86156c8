//! What a provider's API can do: graded support per action kind, batch and page sizes,
//! quotas. Checked in one place (the planner), so adapters never re-check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::action::ActionKind;

/// What to offer the user where the API cannot do an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alternative {
    /// Rate the track "dislike" instead (Apple Music), planned as [`ActionKind::DislikeTrack`].
    Dislike,
    /// A checklist of items for the user to remove by hand, with links.
    ManualChecklist,
    /// Publish a cleaned copy of the playlist beside the original.
    CleanedPlaylistCopy,
}

/// How well an action kind is supported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum Support {
    /// Documented and reliable.
    Supported,
    /// Works, with a caveat the user should know (an undocumented endpoint, a quota).
    Limited {
        /// The caveat, in words a user can read.
        reason: String,
    },
    /// The API cannot do it.
    Unsupported {
        /// Why.
        reason: String,
        /// What to do instead.
        alternative: Option<Alternative>,
    },
}

impl Support {
    /// Whether the action can be sent at all (supported or limited).
    pub fn is_available(&self) -> bool {
        !matches!(self, Self::Unsupported { .. })
    }
}

/// How a provider removes playlist entries, which decides how removals are batched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaylistRemoval {
    /// By track: every occurrence of the track goes at once (Spotify). A batch's size
    /// counts distinct tracks.
    #[default]
    AllOccurrencesOfTrack,
    /// By the entry's own id (TIDAL `itemId`, YouTube `playlistItemId`).
    ByItemId,
}

/// One action kind's support and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCapability {
    /// Support level.
    pub support: Support,
    /// Most items one API call takes (at least 1).
    pub max_batch: u32,
    /// Quota units one call costs, for providers with a quota (YouTube: 50).
    #[serde(default)]
    pub quota_cost: u32,
}

/// A daily API quota (YouTube Data API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Units a day.
    pub daily_units: u64,
    /// Units left today, as the adapter counts them.
    pub remaining_today: u64,
}

/// Page sizes the adapter uses for each part of a scan (the service's maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageSizes {
    /// Liked tracks.
    pub liked_tracks: u32,
    /// Saved albums.
    pub saved_albums: u32,
    /// Followed artists.
    pub followed_artists: u32,
    /// The playlist list.
    pub playlists: u32,
    /// Items of one playlist.
    pub playlist_items: u32,
}

/// Everything the planner and the UI need to know about a provider's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Support and limits per action kind; a kind not listed is unsupported.
    pub actions: BTreeMap<ActionKind, ActionCapability>,
    /// How playlist entries are removed.
    pub playlist_removal: PlaylistRemoval,
    /// Whether playlist items can be inserted at a position (else only appended).
    pub playlist_insert_at_position: bool,
    /// Page sizes.
    pub page_sizes: PageSizes,
    /// A daily quota, if the service has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

impl Capabilities {
    /// The capability of `kind`, if listed.
    pub fn action(&self, kind: ActionKind) -> Option<&ActionCapability> {
        self.actions.get(&kind)
    }

    /// The support of `kind`; unlisted kinds are unsupported with no alternative.
    pub fn support(&self, kind: ActionKind) -> Support {
        self.action(kind).map(|a| a.support.clone()).unwrap_or(Support::Unsupported {
            reason: "the service's API offers no way to do this".into(),
            alternative: None,
        })
    }

    /// Whether `kind` can be sent.
    pub fn can(&self, kind: ActionKind) -> bool {
        self.action(kind).is_some_and(|a| a.support.is_available())
    }

    /// The batch size for `kind` (1 when unlisted).
    pub fn max_batch(&self, kind: ActionKind) -> u32 {
        self.action(kind).map_or(1, |a| a.max_batch.max(1))
    }

    /// Whether the provider can remove anything at all from a library.
    pub fn removal_possible(&self) -> bool {
        ActionKind::ALL.iter().filter(|k| k.is_removal()).any(|k| self.can(*k))
    }

    /// A convenience for adapters: every action kind with the same batch size.
    pub fn builder(page_sizes: PageSizes) -> CapabilitiesBuilder {
        CapabilitiesBuilder(Self {
            actions: BTreeMap::new(),
            playlist_removal: PlaylistRemoval::default(),
            playlist_insert_at_position: true,
            page_sizes,
            quota: None,
        })
    }
}

/// Builds [`Capabilities`] kind by kind.
#[derive(Debug, Clone)]
pub struct CapabilitiesBuilder(Capabilities);

impl CapabilitiesBuilder {
    /// Declares `kind` supported with `max_batch` items a call.
    pub fn supported(mut self, kind: ActionKind, max_batch: u32) -> Self {
        self.0.actions.insert(kind, ActionCapability { support: Support::Supported, max_batch, quota_cost: 0 });
        self
    }

    /// Declares `kind` limited, with the reason.
    pub fn limited(mut self, kind: ActionKind, max_batch: u32, reason: &str) -> Self {
        self.0.actions.insert(
            kind,
            ActionCapability { support: Support::Limited { reason: reason.into() }, max_batch, quota_cost: 0 },
        );
        self
    }

    /// Declares `kind` unsupported, with the reason and the alternative.
    pub fn unsupported(mut self, kind: ActionKind, reason: &str, alternative: Option<Alternative>) -> Self {
        self.0.actions.insert(
            kind,
            ActionCapability {
                support: Support::Unsupported { reason: reason.into(), alternative },
                max_batch: 1,
                quota_cost: 0,
            },
        );
        self
    }

    /// Sets the quota cost of one call of `kind`.
    pub fn quota_cost(mut self, kind: ActionKind, units: u32) -> Self {
        if let Some(a) = self.0.actions.get_mut(&kind) {
            a.quota_cost = units;
        }
        self
    }

    /// Sets how playlist entries are removed.
    pub fn playlist_removal(mut self, removal: PlaylistRemoval) -> Self {
        self.0.playlist_removal = removal;
        self
    }

    /// Sets whether playlist inserts take a position.
    pub fn playlist_insert_at_position(mut self, yes: bool) -> Self {
        self.0.playlist_insert_at_position = yes;
        self
    }

    /// Sets a daily quota.
    pub fn quota(mut self, quota: Quota) -> Self {
        self.0.quota = Some(quota);
        self
    }

    /// The capabilities.
    pub fn build(self) -> Capabilities {
        self.0
    }
}
