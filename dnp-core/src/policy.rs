//! Enforcement policy: what to act on, how far, and the exceptions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::ProviderId;

/// How far an association with a blocked artist reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strictness {
    /// Only where the blocked artist is a primary credit (or, for an artist the entry has
    /// no id for, a primary credit of the same normalized name).
    Conservative,
    /// Also featured credits, the album artist, and artists named after "feat." / "ft." /
    /// "(with …)" in the title. The default.
    #[default]
    Moderate,
    /// Every association: also credits whose name matches though their id differs, and
    /// names joined by "&", "x" or "," in the title.
    Aggressive,
}

/// Which kinds of library item enforcement acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// Liked / saved tracks.
    pub liked_tracks: bool,
    /// Saved albums.
    pub saved_albums: bool,
    /// Followed artists.
    pub followed_artists: bool,
    /// Items of editable playlists.
    pub playlist_items: bool,
}

impl Default for Targets {
    fn default() -> Self {
        Self { liked_tracks: true, saved_albums: true, followed_artists: true, playlist_items: true }
    }
}

/// A track that enforcement must never touch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AllowRule {
    /// A track at one provider.
    Track {
        /// The provider.
        provider: ProviderId,
        /// The track id there.
        id: String,
    },
    /// A recording by ISRC, at every provider.
    Isrc {
        /// The ISRC.
        isrc: String,
    },
}

/// Per-provider changes to the policy; `None` keeps the general setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOverride {
    /// Targets for this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Targets>,
    /// Strictness for this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strictness: Option<Strictness>,
    /// Whether the user's own playlists are touched on this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touch_own_playlists: Option<bool>,
}

/// What enforcement does. `EnforcementPolicy::default()` is the recommended setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnforcementPolicy {
    /// Which kinds of item to act on.
    pub targets: Targets,
    /// How far an association reaches.
    pub strictness: Strictness,
    /// Tracks never touched.
    pub allow: Vec<AllowRule>,
    /// Whether playlists the user owns are edited (default true).
    pub touch_own_playlists: bool,
    /// Whether collaborative playlists the user may edit are edited (default true).
    pub touch_collaborative_playlists: bool,
    /// Where a service cannot remove an item but offers an alternative (a dislike
    /// rating), use it (default true).
    pub use_alternatives: bool,
    /// Matches below this confidence (0.0–1.0) are not acted on but listed as skipped for
    /// the user to confirm (default 0.0: act on every match the strictness allows).
    pub min_confidence: f32,
    /// Per-provider overrides.
    pub overrides: BTreeMap<ProviderId, PolicyOverride>,
}

impl Default for EnforcementPolicy {
    fn default() -> Self {
        Self {
            targets: Targets::default(),
            strictness: Strictness::default(),
            allow: Vec::new(),
            touch_own_playlists: true,
            touch_collaborative_playlists: true,
            use_alternatives: true,
            min_confidence: 0.0,
            overrides: BTreeMap::new(),
        }
    }
}

/// The policy with one provider's overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPolicy {
    /// Which kinds of item to act on.
    pub targets: Targets,
    /// How far an association reaches.
    pub strictness: Strictness,
    /// Track ids at this provider never touched.
    pub allow_track_ids: Vec<String>,
    /// ISRCs never touched.
    pub allow_isrcs: Vec<String>,
    /// Whether owned playlists are edited.
    pub touch_own_playlists: bool,
    /// Whether collaborative playlists are edited.
    pub touch_collaborative_playlists: bool,
    /// Whether alternatives (dislike) are used where removal is impossible.
    pub use_alternatives: bool,
    /// The confidence below which a match is only listed.
    pub min_confidence: f32,
}

impl EnforcementPolicy {
    /// Applies `provider`'s overrides.
    pub fn resolve(&self, provider: &ProviderId) -> ResolvedPolicy {
        let o = self.overrides.get(provider).cloned().unwrap_or_default();
        let mut allow_track_ids = Vec::new();
        let mut allow_isrcs = Vec::new();
        for rule in &self.allow {
            match rule {
                AllowRule::Track { provider: p, id } if p == provider => allow_track_ids.push(id.clone()),
                AllowRule::Track { .. } => {}
                AllowRule::Isrc { isrc } => allow_isrcs.push(isrc.to_ascii_uppercase()),
            }
        }
        ResolvedPolicy {
            targets: o.targets.unwrap_or(self.targets),
            strictness: o.strictness.unwrap_or(self.strictness),
            allow_track_ids,
            allow_isrcs,
            touch_own_playlists: o.touch_own_playlists.unwrap_or(self.touch_own_playlists),
            touch_collaborative_playlists: self.touch_collaborative_playlists,
            use_alternatives: self.use_alternatives,
            min_confidence: self.min_confidence,
        }
    }
}
