//! The planner: `plan(snapshot, blocked, policy, capabilities) -> Plan`, pure and
//! deterministic, and [`rollback_plan`], which inverts what an enforcement did.
//!
//! No I/O, no clock, no randomness: the same inputs give the same plan, byte for byte.

use std::cell::RefCell;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionKind, MatchKind, Reason, Target};
use crate::capability::{Alternative, Capabilities, PlaylistRemoval, Support};
use crate::dnp::BlockedSet;
use crate::id::{ActionId, BatchId, ProviderId};
use crate::model::{AlbumRef, ArtistCredit, CreditRole, LibrarySnapshot, Track};
use crate::normalize::{
    for_each_featured_in_title, for_each_listed, id_hash, may_name_features, name_fingerprint, normalize_name_into,
};
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
    let matcher = Matcher::new(blocked, policy.strictness);
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
                    disliked: liked.disliked,
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
/// - Each action becomes its inverse ([`Action::inverse`]), numbered from 0, and the
///   item returns to its recorded before-state, rating included:
///   - a track that was disliked before it was unliked is liked again, then rated
///     "dislike" again ([`ActionKind::DislikeTrack`], in batches after every re-like, its
///     `inverse_of` the unlike too); where the provider cannot rate, that restoration is
///     listed as skipped;
///   - a dislike of a track that was already disliked is not undone (clearing the rating
///     would lose the user's own dislike).
/// - Playlist re-insertions run per playlist in ascending original position, so every
///   item returns to its former index when the playlist has not changed since.
/// - Batched within `capabilities`; kinds the provider cannot do are listed as skipped.
pub fn rollback_plan(provider: &ProviderId, original: BatchId, done: &[Action], capabilities: &Capabilities) -> Plan {
    let mut inverses: Vec<Action> = done
        .iter()
        .filter(|a| !(a.kind == ActionKind::DislikeTrack && matches!(a.target, Target::Track { disliked: true, .. })))
        .map(|a| a.inverse(ActionId(0)))
        .collect();
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
    let mut next = 0u32;
    let mut plan_or_skip = |mut action: Action, out: &mut Vec<Action>| {
        action.id = ActionId(next);
        next += 1;
        match capabilities.support(action.kind) {
            Support::Unsupported { reason, alternative } => {
                skipped.push(Skipped { action, reason: SkipReason::Unsupported { reason, alternative }, url: None })
            }
            _ => out.push(action),
        }
    };
    for action in inverses {
        plan_or_skip(action, &mut actions);
    }
    // The dislike rating of each re-liked track that had one, after every re-like.
    let mut rated = Vec::new();
    let relikes: Vec<Action> = actions
        .iter()
        .filter(|a| a.kind == ActionKind::LikeTrack && matches!(a.target, Target::Track { disliked: true, .. }))
        .cloned()
        .collect();
    for like in relikes {
        plan_or_skip(Action { kind: ActionKind::DislikeTrack, ..like }, &mut rated);
    }
    let mut batches = batch_actions(actions, capabilities);
    batches.extend(batch_actions(rated, capabilities));
    let mut plan = Plan {
        provider: provider.clone(),
        batches,
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
    /// Reused for normalized names: no allocation per credit.
    scratch: RefCell<String>,
}

/// How one credit matched, before its role and place (track or album) give the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    /// Its id is a blocked artist's id here.
    Id(u32),
    /// Its name is that of an entry with no id here.
    NameOfUnresolved(u32),
    /// It has no id and its name is a blocked artist's.
    NameWithoutId(u32),
    /// Its id differs but its name is a blocked artist's (aggressive only).
    NameOnly(u32),
}

/// Track credits whose hits are remembered for the album's credits (more are rare).
const REMEMBERED_CREDITS: usize = 4;

impl<'a> Matcher<'a> {
    fn new(blocked: &'a BlockedSet, strictness: Strictness) -> Self {
        Self { blocked, strictness, scratch: RefCell::new(String::with_capacity(64)) }
    }

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

    /// Whether a credit of `role` counts at all at this strictness.
    fn role_counts(&self, role: CreditRole, album_artist: bool) -> bool {
        album_artist || role == CreditRole::Primary || self.strictness >= Strictness::Moderate
    }

    /// The lookups of one credit, independent of its role.
    fn hit(&self, credit: &ArtistCredit) -> Option<Hit> {
        if let Some(id) = &credit.id
            && self.blocked.id_filter.may_contain(id_hash(id))
            && let Some(&i) = self.blocked.by_id.get(id.as_str())
        {
            return Some(Hit::Id(i));
        }
        // Name matching needs normalization: only when some entry lacks ids here, the
        // credit has no id, or the policy is aggressive.
        let any_name = credit.id.is_none() || self.strictness == Strictness::Aggressive;
        if !any_name && self.blocked.by_name_only.is_empty() {
            return None;
        }
        // Rule most names out by their fingerprint, without normalizing them.
        let fp = name_fingerprint(&credit.name);
        let may_match =
            self.blocked.name_only_filter.may_contain(fp) || (any_name && self.blocked.any_name_filter.may_contain(fp));
        if !may_match {
            return None;
        }
        let mut name = self.scratch.borrow_mut();
        normalize_name_into(&credit.name, &mut name);
        let name = name.as_str();
        if let Some(&i) = self.blocked.by_name_only.get(name) {
            return Some(Hit::NameOfUnresolved(i));
        }
        if credit.id.is_none()
            && let Some(&i) = self.blocked.by_any_name.get(name)
        {
            return Some(Hit::NameWithoutId(i));
        }
        if self.strictness == Strictness::Aggressive
            && let Some(&i) = self.blocked.by_any_name.get(name)
        {
            return Some(Hit::NameOnly(i));
        }
        None
    }

    /// The reason a credit's hit gives, by its role and place.
    fn credit_reason(&self, hit: Hit, credit: &ArtistCredit, album_artist: bool) -> Reason {
        match hit {
            Hit::Id(i) => {
                let kind = match (album_artist, credit.role) {
                    (true, _) => MatchKind::AlbumArtist,
                    (false, CreditRole::Primary) => MatchKind::PrimaryCredit,
                    (false, CreditRole::Featured) => MatchKind::FeaturedCredit,
                };
                self.reason(i, kind, credit.id.as_deref().unwrap_or(&credit.name))
            }
            Hit::NameOfUnresolved(i) | Hit::NameWithoutId(i) => {
                let kind = if album_artist { MatchKind::AlbumArtist } else { MatchKind::CreditName };
                self.reason(i, kind, &credit.name)
            }
            Hit::NameOnly(i) => self.reason(i, MatchKind::NameOnly, &credit.name),
        }
    }

    /// The strongest match of one credit, if any.
    fn match_credit(&self, credit: &ArtistCredit, album_artist: bool) -> Option<Reason> {
        if !self.role_counts(credit.role, album_artist) {
            return None;
        }
        self.hit(credit).map(|hit| self.credit_reason(hit, credit, album_artist))
    }

    /// The strongest reason a track is blocked, if it is.
    fn match_track<'t>(&self, track: &'t Track) -> Option<Reason> {
        // Only hits are kept while scanning; a reason (two allocations) is made once, for
        // the best one. Ties keep the first, in credit, album, title order.
        enum Best<'t> {
            Credit(Hit, &'t ArtistCredit, bool),
            Title(u32, MatchKind, String),
        }
        let mut best: Option<(f32, Best<'t>)> = None;
        let mut consider = |confidence: f32, found: Best<'t>| {
            if best.as_ref().is_none_or(|(b, _)| confidence > *b) {
                best = Some((confidence, found));
            }
        };
        let mut seen: [Option<(&'t ArtistCredit, Option<Hit>)>; REMEMBERED_CREDITS] = [None; REMEMBERED_CREDITS];
        for (n, credit) in track.artists.iter().enumerate() {
            if !self.role_counts(credit.role, false) {
                continue;
            }
            let hit = self.hit(credit);
            if let Some(slot) = seen.get_mut(n) {
                *slot = Some((credit, hit));
            }
            if let Some(hit) = hit {
                consider(self.kind(hit, credit, false).confidence(), Best::Credit(hit, credit, false));
            }
        }
        if self.strictness >= Strictness::Moderate {
            if let Some(AlbumRef { artists, .. }) = &track.album {
                for credit in artists {
                    // The album artist is usually a track credit too: its lookups are the
                    // same (they do not depend on the role), so reuse them.
                    let known = seen.iter().flatten().find(|(c, _)| c.id == credit.id && c.name == credit.name);
                    let hit = match known {
                        Some((_, hit)) => *hit,
                        None => self.hit(credit),
                    };
                    if let Some(hit) = hit {
                        consider(self.kind(hit, credit, true).confidence(), Best::Credit(hit, credit, true));
                    }
                }
            }
            if may_name_features(&track.title) {
                let mut buf = self.scratch.borrow_mut();
                for_each_featured_in_title(&track.title, self.blocked, &mut buf, |name| {
                    if let Some(&i) = self.blocked.by_any_name.get(name) {
                        let found = Best::Title(i, MatchKind::TitleFeature, name.to_owned());
                        consider(MatchKind::TitleFeature.confidence(), found);
                    }
                });
            }
        }
        if self.strictness == Strictness::Aggressive {
            let mut buf = self.scratch.borrow_mut();
            for_each_listed(&track.title, self.blocked, &mut buf, |name| {
                if let Some(&i) = self.blocked.by_any_name.get(name) {
                    consider(MatchKind::NameOnly.confidence(), Best::Title(i, MatchKind::NameOnly, name.to_owned()));
                }
            });
        }
        best.map(|(_, found)| match found {
            Best::Credit(hit, credit, album_artist) => self.credit_reason(hit, credit, album_artist),
            Best::Title(i, kind, name) => self.reason(i, kind, &name),
        })
    }

    /// The kind a hit gives a credit, by its role and place.
    fn kind(&self, hit: Hit, credit: &ArtistCredit, album_artist: bool) -> MatchKind {
        match (hit, album_artist, credit.role) {
            (Hit::NameOnly(_), _, _) => MatchKind::NameOnly,
            (_, true, _) => MatchKind::AlbumArtist,
            (Hit::Id(_), false, CreditRole::Primary) => MatchKind::PrimaryCredit,
            (Hit::Id(_), false, CreditRole::Featured) => MatchKind::FeaturedCredit,
            (Hit::NameOfUnresolved(_) | Hit::NameWithoutId(_), false, _) => MatchKind::CreditName,
        }
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
        let mut normalized = self.scratch.borrow_mut();
        normalize_name_into(name, &mut normalized);
        if let Some(&i) = self.blocked.by_name_only.get(normalized.as_str()) {
            return Some(self.reason(i, MatchKind::CreditName, name));
        }
        if self.strictness == Strictness::Aggressive
            && let Some(&i) = self.blocked.by_any_name.get(normalized.as_str())
        {
            return Some(self.reason(i, MatchKind::NameOnly, name));
        }
        None
    }
}

/// Groups actions into provider-sized batches: one kind (and one playlist) per batch,
/// in first-appearance order, each at most `max_batch` items.
fn batch_actions(actions: Vec<Action>, capabilities: &Capabilities) -> Vec<Batch> {
    // Number the groups (kind, playlist) in order of first appearance, with borrowed keys,
    // then move each action into its group: no allocation per action.
    let mut group_of = Vec::with_capacity(actions.len());
    let mut keys: Vec<(ActionKind, Option<String>)> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    {
        let mut index: FxHashMap<(ActionKind, Option<&str>), usize> = FxHashMap::default();
        for action in &actions {
            let playlist = action.target.playlist_id();
            let next = keys.len();
            let group = *index.entry((action.kind, playlist)).or_insert_with(|| {
                keys.push((action.kind, playlist.map(str::to_owned)));
                sizes.push(0);
                next
            });
            sizes[group] += 1;
            group_of.push(group);
        }
    }
    let mut groups: Vec<Vec<Action>> = sizes.iter().map(|n| Vec::with_capacity(*n)).collect();
    for (action, group) in actions.into_iter().zip(group_of) {
        groups[group].push(action);
    }
    let mut batches = Vec::new();
    for ((kind, playlist_id), actions) in keys.into_iter().zip(groups) {
        let max = capabilities.max_batch(kind) as usize;
        let by_track = kind == ActionKind::RemovePlaylistItem
            && capabilities.playlist_removal == PlaylistRemoval::AllOccurrencesOfTrack;
        let cost = capabilities.action(kind).map_or(0, |a| u64::from(a.quota_cost));
        let chunks: Vec<Vec<Action>> = if by_track {
            chunk_by_distinct_track(actions, max)
        } else {
            let mut chunks = Vec::with_capacity(actions.len().div_ceil(max));
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
/// and a batch names at most `max` distinct tracks. `actions` are in id order, and so is
/// each chunk.
fn chunk_by_distinct_track(actions: Vec<Action>, max: usize) -> Vec<Vec<Action>> {
    let mut track_of = Vec::with_capacity(actions.len());
    let tracks = {
        let mut index: FxHashMap<&str, usize> = FxHashMap::default();
        for action in &actions {
            let next = index.len();
            track_of.push(*index.entry(action.target.item_id()).or_insert(next));
        }
        index.len()
    };
    let mut chunks: Vec<Vec<Action>> = (0..tracks.div_ceil(max)).map(|_| Vec::new()).collect();
    for (action, track) in actions.into_iter().zip(track_of) {
        chunks[track / max].push(action);
    }
    chunks
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
