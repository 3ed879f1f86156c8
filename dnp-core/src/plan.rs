//! The planner: `plan(snapshot, blocked, policy, capabilities) -> Plan`, pure and
//! deterministic, and [`rollback_plan`], which inverts what an enforcement did.
//!
//! No I/O, no clock, no randomness: the same inputs give the same plan, byte for byte.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionKind, MatchKind, Reason, Target};
use crate::capability::{Alternative, Capabilities, PlaylistRemoval, Support};
use crate::dnp::BlockedSet;
use crate::id::{ActionId, BatchId, ProviderId};
use crate::model::{AlbumRef, ArtistCredit, CreditRole, LibrarySnapshot, Track};
use crate::normalize::{featured_in_title, may_name_features, normalize_name, split_artist_list};
use crate::policy::{EnforcementPolicy, ResolvedPolicy, Strictness};

/// Actions that go to the provider in one API call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The action kind (a batch holds one kind).
    pub kind: ActionKind,
    /// The playlist, for playlist item batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playlist_id: Option<String>,
    /// The actions, at most the capability's `max_batch` (counting distinct tracks where
    /// the provider removes every occurrence of a track at once).
    pub actions: Vec<Action>,
    /// Quota units this call costs (0 where the provider has no quota).
    #[serde(default)]
    pub quota_units: u64,
    /// The day, counted from today (0), on which the provider's quota lets this batch run.
    #[serde(default)]
    pub day: u32,
}

/// Why a matched item is not acted on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SkipReason {
    /// The playlist is neither owned nor collaborative: the user cannot edit it.
    PlaylistNotEditable,
    /// The policy leaves the user's own playlists alone.
    OwnPlaylistExcluded,
    /// The policy leaves collaborative playlists alone.
    CollaborativePlaylistExcluded,
    /// An allow rule covers the track.
    AllowListed,
    /// The match's confidence is under the policy's minimum: confirm it to act.
    LowConfidence,
    /// Already rated "dislike" (where dislike is the alternative): nothing more the API can do.
    AlreadyDisliked,
    /// The service's API cannot do it; `alternative` says what to do instead.
    Unsupported {
        /// Why.
        reason: String,
        /// What the user can do instead.
        alternative: Option<Alternative>,
    },
}

/// A matched item the plan deliberately leaves alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The action that would have been planned (with its reason and target).
    pub action: Action,
    /// Why it is not.
    pub reason: SkipReason,
    /// A link to the item in the service, for manual checklists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Counts that describe a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Items in the snapshot.
    pub items_scanned: u64,
    /// Actions per kind.
    pub actions: BTreeMap<ActionKind, u64>,
    /// Total actions.
    pub total_actions: u64,
    /// API calls the plan takes (one per batch).
    pub api_calls: u64,
    /// Skipped items per reason code.
    pub skipped: BTreeMap<String, u64>,
    /// Quota units the plan costs.
    pub quota_units: u64,
    /// Days the plan needs under the provider's quota (1 without a quota, 0 when empty).
    pub days: u32,
}

/// What enforcement will do on one provider, for the user to preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The provider.
    pub provider: ProviderId,
    /// The batches, in the order they run.
    pub batches: Vec<Batch>,
    /// Matched items not acted on, with the reason.
    pub skipped: Vec<Skipped>,
    /// The counts.
    pub summary: PlanSummary,
    /// For a rollback plan, the batch it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<BatchId>,
}

impl Plan {
    /// Every action, in execution order.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.batches.iter().flat_map(|b| b.actions.iter())
    }

    /// Whether the plan does nothing.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

/// Plans the enforcement of `blocked` on `snapshot` under `policy`, within `capabilities`.
///
/// # Behavior
/// - Pure and deterministic: the order of actions follows the snapshot (liked tracks,
///   saved albums, followed artists, then playlists in order); ids are numbered from 0.
/// - Nothing outside the blocked set is ever planned; an empty blocked set plans nothing.
/// - Idempotent: planning a snapshot on which the plan was applied yields no action.
/// - Batches never exceed the capability's `max_batch`.
/// - Items the policy or the API keeps from acting on are listed in `skipped`.
pub fn plan(
    snapshot: &LibrarySnapshot,
    blocked: &BlockedSet,
    policy: &EnforcementPolicy,
    capabilities: &Capabilities,
) -> Plan {
    let policy = policy.resolve(&snapshot.provider);
    let matcher = Matcher { blocked, strictness: policy.strictness };
    let mut planner = Planner { policy: &policy, capabilities, actions: Vec::new(), skipped: Vec::new() };

    if !blocked.is_empty() {
        if policy.targets.liked_tracks {
            for liked in &snapshot.liked_tracks {
                let Some(reason) = matcher.match_track(&liked.track) else {
                    continue;
                };
                let target = Target::Track {
                    track_id: liked.track.id.clone(),
                    entry_id: liked.entry_id.clone(),
                    added_at: liked.added_at,
                };
                planner.track_action(ActionKind::UnlikeTrack, target, reason, &liked.track, liked.disliked);
            }
        }
        if policy.targets.saved_albums {
            for saved in &snapshot.saved_albums {
                let Some(reason) = matcher.match_album(&saved.album.artists) else {
                    continue;
                };
                let target = Target::Album { album_id: saved.album.id.clone(), added_at: saved.added_at };
                let label = format!("{} — {}", saved.album.title, credit_names(&saved.album.artists));
                planner.push(ActionKind::RemoveAlbum, target, reason, label, saved.album.url.clone());
            }
        }
        if policy.targets.followed_artists {
            for followed in &snapshot.followed_artists {
                let Some(reason) = matcher.match_artist(&followed.artist.id, &followed.artist.name) else {
                    continue;
                };
                let target =
                    Target::Artist { artist_id: followed.artist.id.clone(), entry_id: followed.entry_id.clone() };
                planner.push(
                    ActionKind::UnfollowArtist,
                    target,
                    reason,
                    followed.artist.name.clone(),
                    followed.artist.url.clone(),
                );
            }
        }
        if policy.targets.playlist_items {
            for playlist in &snapshot.playlists {
                let exclusion = if !playlist.editable {
                    Some(SkipReason::PlaylistNotEditable)
                } else if playlist.owned && !policy.touch_own_playlists {
                    Some(SkipReason::OwnPlaylistExcluded)
                } else if !playlist.owned && playlist.collaborative && !policy.touch_collaborative_playlists {
                    Some(SkipReason::CollaborativePlaylistExcluded)
                } else {
                    None
                };
                for item in &playlist.items {
                    let Some(reason) = matcher.match_track(&item.track) else {
                        continue;
                    };
                    let target = Target::PlaylistItem {
                        playlist_id: playlist.id.clone(),
                        playlist_version: playlist.version.clone(),
                        track_id: item.track.id.clone(),
                        position: item.position,
                        item_id: item.item_id.clone(),
                        added_at: item.added_at,
                    };
                    let label =
                        format!("{} — {} (in {})", item.track.title, credit_names(&item.track.artists), playlist.name);
                    match &exclusion {
                        Some(skip) => planner.skip(
                            ActionKind::RemovePlaylistItem,
                            target,
                            reason,
                            label,
                            skip.clone(),
                            playlist.url.clone(),
                        ),
                        None if planner.allowed(&item.track) => planner.skip(
                            ActionKind::RemovePlaylistItem,
                            target,
                            reason,
                            label,
                            SkipReason::AllowListed,
                            item.track.url.clone(),
                        ),
                        None => {
                            planner.push(ActionKind::RemovePlaylistItem, target, reason, label, playlist.url.clone())
                        }
                    }
                }
            }
        }
    }

    let Planner { actions, skipped, .. } = planner;
    let mut plan = Plan {
        provider: snapshot.provider.clone(),
        batches: batch_actions(actions, capabilities),
        skipped,
        summary: PlanSummary { items_scanned: snapshot.item_count() as u64, ..PlanSummary::default() },
        rollback_of: None,
    };
    schedule_quota(&mut plan, capabilities);
    summarize(&mut plan);
    plan
}

/// Plans the undoing of `done`: the actions an enforcement confirmed, in any order.
///
/// # Behavior
/// - Each action becomes its inverse ([`Action::inverse`]), numbered from 0.
/// - Playlist re-insertions run per playlist in ascending original position, so every
///   item returns to its former index when the playlist has not changed since.
/// - Batched within `capabilities`; kinds the provider cannot do are listed as skipped.
pub fn rollback_plan(provider: &ProviderId, original: BatchId, done: &[Action], capabilities: &Capabilities) -> Plan {
    let mut inverses: Vec<Action> = done.iter().enumerate().map(|(i, a)| a.inverse(ActionId(i as u32))).collect();
    // Group each playlist's inserts and order them by position; keep everything else first.
    inverses.sort_by(|a, b| {
        let key = |x: &Action| match &x.target {
            Target::PlaylistItem { playlist_id, position, .. } => (1, playlist_id.clone(), *position),
            _ => (0, String::new(), 0),
        };
        key(a).cmp(&key(b)).then(a.inverse_of.cmp(&b.inverse_of))
    });
    let mut skipped = Vec::new();
    let mut actions = Vec::new();
    for (i, mut action) in inverses.into_iter().enumerate() {
        action.id = ActionId(i as u32);
        match capabilities.support(action.kind) {
            Support::Unsupported { reason, alternative } => {
                skipped.push(Skipped { action, reason: SkipReason::Unsupported { reason, alternative }, url: None })
            }
            _ => actions.push(action),
        }
    }
    let mut plan = Plan {
        provider: provider.clone(),
        batches: batch_actions(actions, capabilities),
        skipped,
        summary: PlanSummary::default(),
        rollback_of: Some(original),
    };
    schedule_quota(&mut plan, capabilities);
    summarize(&mut plan);
    plan
}

struct Planner<'a> {
    policy: &'a ResolvedPolicy,
    capabilities: &'a Capabilities,
    actions: Vec<Action>,
    skipped: Vec<Skipped>,
}

impl Planner<'_> {
    fn next_id(&self) -> ActionId {
        ActionId((self.actions.len() + self.skipped.len()) as u32)
    }

    fn allowed(&self, track: &Track) -> bool {
        self.policy.allow_track_ids.contains(&track.id)
            || track
                .isrc
                .as_deref()
                .is_some_and(|isrc| self.policy.allow_isrcs.iter().any(|a| a.eq_ignore_ascii_case(isrc)))
    }

    /// A liked-track removal, falling back to the provider's alternative (dislike).
    fn track_action(&mut self, kind: ActionKind, target: Target, reason: Reason, track: &Track, disliked: bool) {
        let label = format!("{} — {}", track.title, credit_names(&track.artists));
        if self.allowed(track) {
            return self.skip(kind, target, reason, label, SkipReason::AllowListed, track.url.clone());
        }
        if let Support::Unsupported { alternative: Some(Alternative::Dislike), .. } = self.capabilities.support(kind)
            && self.policy.use_alternatives
            && self.capabilities.can(ActionKind::DislikeTrack)
        {
            if disliked {
                return self.skip(kind, target, reason, label, SkipReason::AlreadyDisliked, track.url.clone());
            }
            return self.push(ActionKind::DislikeTrack, target, reason, label, track.url.clone());
        }
        self.push(kind, target, reason, label, track.url.clone())
    }

    fn push(&mut self, kind: ActionKind, target: Target, reason: Reason, label: String, url: Option<String>) {
        if reason.confidence < self.policy.min_confidence {
            return self.skip(kind, target, reason, label, SkipReason::LowConfidence, url);
        }
        if let Support::Unsupported { reason: why, alternative } = self.capabilities.support(kind) {
            let skip = SkipReason::Unsupported { reason: why, alternative };
            return self.skip(kind, target, reason, label, skip, url);
        }
        let id = self.next_id();
        self.actions.push(Action { id, kind, target, reason, label, inverse_of: None });
    }

    fn skip(
        &mut self,
        kind: ActionKind,
        target: Target,
        reason: Reason,
        label: String,
        why: SkipReason,
        url: Option<String>,
    ) {
        let id = self.next_id();
        self.skipped.push(Skipped {
            action: Action { id, kind, target, reason, label, inverse_of: None },
            reason: why,
            url,
        });
    }
}

fn credit_names(credits: &[ArtistCredit]) -> String {
    let mut out = String::new();
    for (i, c) in credits.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&c.name);
    }
    out
}

/// Matches library items against a [`BlockedSet`] at a strictness.
struct Matcher<'a> {
    blocked: &'a BlockedSet,
    strictness: Strictness,
}

impl Matcher<'_> {
    fn reason(&self, index: u32, matched: MatchKind, credit: &str) -> Reason {
        let artist = self.blocked.artist(index);
        Reason {
            entry_id: artist.entry_id,
            artist_name: artist.name.clone(),
            matched,
            credit: credit.to_owned(),
            confidence: matched.confidence(),
        }
    }

    /// The strongest match of one credit, if any.
    fn match_credit(&self, credit: &ArtistCredit, album_artist: bool) -> Option<Reason> {
        let by_role = |primary: MatchKind| match (album_artist, credit.role) {
            (true, _) => MatchKind::AlbumArtist,
            (false, CreditRole::Primary) => primary,
            (false, CreditRole::Featured) => MatchKind::FeaturedCredit,
        };
        let role_allowed =
            album_artist || credit.role == CreditRole::Primary || self.strictness >= Strictness::Moderate;
        if !role_allowed {
            return None;
        }
        if let Some(id) = &credit.id
            && let Some(&i) = self.blocked.by_id.get(id.as_str())
        {
            return Some(self.reason(i, by_role(MatchKind::PrimaryCredit), id));
        }
        // Name matching needs normalization (an allocation): only do it when some entry
        // lacks ids here, or the policy is aggressive.
        let name_only = !self.blocked.by_name_only.is_empty();
        if credit.id.is_none() || name_only || self.strictness == Strictness::Aggressive {
            let name = normalize_name(&credit.name);
            if let Some(&i) = self.blocked.by_name_only.get(&name) {
                let kind = if album_artist { MatchKind::AlbumArtist } else { MatchKind::CreditName };
                return Some(self.reason(i, kind, &credit.name));
            }
            if credit.id.is_none()
                && let Some(&i) = self.blocked.by_any_name.get(&name)
            {
                let kind = if album_artist { MatchKind::AlbumArtist } else { MatchKind::CreditName };
                return Some(self.reason(i, kind, &credit.name));
            }
            if self.strictness == Strictness::Aggressive
                && let Some(&i) = self.blocked.by_any_name.get(&name)
            {
                return Some(self.reason(i, MatchKind::NameOnly, &credit.name));
            }
        }
        None
    }

    /// The strongest reason a track is blocked, if it is.
    fn match_track(&self, track: &Track) -> Option<Reason> {
        let mut best: Option<Reason> = None;
        let mut consider = |r: Reason| {
            if best.as_ref().is_none_or(|b| r.confidence > b.confidence) {
                best = Some(r);
            }
        };
        for credit in &track.artists {
            if let Some(r) = self.match_credit(credit, false) {
                consider(r);
            }
        }
        if self.strictness >= Strictness::Moderate {
            if let Some(AlbumRef { artists, .. }) = &track.album {
                for credit in artists {
                    if let Some(r) = self.match_credit(credit, true) {
                        consider(r);
                    }
                }
            }
            if may_name_features(&track.title) {
                for name in featured_in_title(&track.title) {
                    if let Some(&i) = self.blocked.by_any_name.get(&name) {
                        consider(self.reason(i, MatchKind::TitleFeature, &name));
                    }
                }
            }
        }
        if self.strictness == Strictness::Aggressive {
            for name in split_artist_list(&track.title) {
                if let Some(&i) = self.blocked.by_any_name.get(&name) {
                    consider(self.reason(i, MatchKind::NameOnly, &name));
                }
            }
        }
        best
    }

    fn match_album(&self, artists: &[ArtistCredit]) -> Option<Reason> {
        let mut best: Option<Reason> = None;
        for credit in artists {
            if let Some(mut r) = self.match_credit(credit, false) {
                // On an album, a primary credit is the album artist itself.
                if r.matched == MatchKind::PrimaryCredit {
                    r.confidence = 1.0;
                }
                if best.as_ref().is_none_or(|b| r.confidence > b.confidence) {
                    best = Some(r);
                }
            }
        }
        best
    }

    fn match_artist(&self, id: &str, name: &str) -> Option<Reason> {
        if let Some(&i) = self.blocked.by_id.get(id) {
            return Some(self.reason(i, MatchKind::FollowedArtist, id));
        }
        let normalized = normalize_name(name);
        if let Some(&i) = self.blocked.by_name_only.get(&normalized) {
            return Some(self.reason(i, MatchKind::CreditName, name));
        }
        if self.strictness == Strictness::Aggressive
            && let Some(&i) = self.blocked.by_any_name.get(&normalized)
        {
            return Some(self.reason(i, MatchKind::NameOnly, name));
        }
        None
    }
}

/// Groups actions into provider-sized batches: one kind (and one playlist) per batch,
/// in first-appearance order, each at most `max_batch` items.
fn batch_actions(actions: Vec<Action>, capabilities: &Capabilities) -> Vec<Batch> {
    // Group key: (kind, playlist) in order of first appearance.
    let mut order: Vec<(ActionKind, Option<String>)> = Vec::new();
    let mut groups: FxHashMap<(ActionKind, Option<String>), Vec<Action>> = FxHashMap::default();
    for action in actions {
        let key = (action.kind, action.target.playlist_id().map(str::to_owned));
        let group = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Vec::new()
        });
        group.push(action);
    }
    let mut batches = Vec::new();
    for key in order {
        let actions = groups.remove(&key).unwrap_or_default();
        let (kind, playlist_id) = key;
        let max = capabilities.max_batch(kind) as usize;
        let by_track = kind == ActionKind::RemovePlaylistItem
            && capabilities.playlist_removal == PlaylistRemoval::AllOccurrencesOfTrack;
        let cost = capabilities.action(kind).map_or(0, |a| u64::from(a.quota_cost));
        let chunks: Vec<Vec<Action>> = if by_track {
            chunk_by_distinct_track(actions, max)
        } else {
            let mut chunks = Vec::new();
            let mut iter = actions.into_iter().peekable();
            while iter.peek().is_some() {
                chunks.push(iter.by_ref().take(max).collect());
            }
            chunks
        };
        batches.extend(chunks.into_iter().map(|actions| Batch {
            kind,
            playlist_id: playlist_id.clone(),
            actions,
            quota_units: cost,
            day: 0,
        }));
    }
    batches
}

/// Chunks playlist removals so that every occurrence of a track sits in the same batch
/// and a batch names at most `max` distinct tracks.
fn chunk_by_distinct_track(actions: Vec<Action>, max: usize) -> Vec<Vec<Action>> {
    let mut track_order: Vec<String> = Vec::new();
    let mut by_track: FxHashMap<String, Vec<Action>> = FxHashMap::default();
    for action in actions {
        let track = action.target.item_id().to_owned();
        by_track
            .entry(track.clone())
            .or_insert_with(|| {
                track_order.push(track);
                Vec::new()
            })
            .push(action);
    }
    track_order
        .chunks(max)
        .map(|tracks| {
            let mut chunk: Vec<Action> = tracks.iter().flat_map(|t| by_track.remove(t).unwrap_or_default()).collect();
            chunk.sort_by_key(|a| a.id);
            chunk
        })
        .collect()
}

/// Assigns each batch the day on which the provider's quota lets it run.
fn schedule_quota(plan: &mut Plan, capabilities: &Capabilities) {
    let Some(quota) = &capabilities.quota else {
        return;
    };
    let mut day = 0u32;
    let mut left = quota.remaining_today;
    for batch in &mut plan.batches {
        if batch.quota_units > quota.daily_units {
            // A single call costing more than a whole day can never run; keep it on the
            // next day so the summary shows it (the adapter's capabilities are wrong).
            batch.day = day + 1;
            continue;
        }
        while batch.quota_units > left {
            day += 1;
            left = quota.daily_units;
        }
        left -= batch.quota_units;
        batch.day = day;
    }
}

fn summarize(plan: &mut Plan) {
    let summary = &mut plan.summary;
    summary.actions.clear();
    summary.skipped.clear();
    for action in plan.batches.iter().flat_map(|b| &b.actions) {
        *summary.actions.entry(action.kind).or_default() += 1;
    }
    summary.total_actions = summary.actions.values().sum();
    summary.api_calls = plan.batches.len() as u64;
    summary.quota_units = plan.batches.iter().map(|b| b.quota_units).sum();
    summary.days = plan.batches.iter().map(|b| b.day + 1).max().unwrap_or(0);
    for skipped in &plan.skipped {
        let code = match &skipped.reason {
            SkipReason::PlaylistNotEditable => "playlist_not_editable",
            SkipReason::OwnPlaylistExcluded => "own_playlist_excluded",
            SkipReason::CollaborativePlaylistExcluded => "collaborative_playlist_excluded",
            SkipReason::AllowListed => "allow_listed",
            SkipReason::LowConfidence => "low_confidence",
            SkipReason::AlreadyDisliked => "already_disliked",
            SkipReason::Unsupported { .. } => "unsupported",
        };
        *summary.skipped.entry(code.to_owned()).or_default() += 1;
    }
}
