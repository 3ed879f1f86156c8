//! The checks. Each seeds a fresh library, drives the adapter, and compares what the
//! service holds afterwards with what the contract says.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::generate::{LibraryShape, generate_library, subject_artist};
use super::{CheckError, Harness, HarnessError, HarnessFault};
use crate::action::{Action, ActionKind, MatchKind, Outcome, Reason, Target};
use crate::capability::{Capabilities, PlaylistRemoval};
use crate::diff::diff;
use crate::dnp::{ArtistIdentity, BlockedSet, DnpEntry, DnpList, EntrySource};
use crate::error::ProviderError;
use crate::executor::{ActionLog, Completion, ExecutionReport, Executor, confirmed_actions};
use crate::id::{ActionId, BatchId, EntryId};
use crate::memory::MemoryActionLog;
use crate::model::{Artist, LibrarySnapshot, Playlist, Track};
use crate::plan::{Batch, Plan, plan, rollback_plan};
use crate::policy::EnforcementPolicy;
use crate::provider::{NoProgress, Progress, Provider, TokenSource};
use crate::{CancelFlag, ExecutorConfig};

/// A check that passed, with a note for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passed {
    /// What is worth knowing (how many calls, what was noted).
    pub note: Option<String>,
}

impl Passed {
    fn note(note: impl Into<String>) -> Self {
        Self { note: Some(note.into()) }
    }
}

fn failed(message: impl Into<String>) -> CheckError {
    CheckError::Failed(message.into())
}

const SEED: u64 = 0x00D1_5EA5_E000_0001;

/// The adapter, its tokens and its capabilities.
struct Subject {
    provider: Arc<dyn Provider>,
    tokens: Arc<dyn TokenSource>,
    caps: Capabilities,
}

fn subject(h: &dyn Harness) -> Subject {
    let provider = h.provider();
    let caps = provider.capabilities();
    Subject { provider, tokens: h.token_source(), caps }
}

/// Seeds a generated library; returns it and the service's state.
async fn fresh(h: &dyn Harness, s: &Subject, seed: u64) -> Result<(LibrarySnapshot, LibrarySnapshot), CheckError> {
    let library = generate_library(s.provider.id(), seed, &LibraryShape::spanning(&s.caps));
    h.seed(&library).await?;
    let state = h.state().await?;
    Ok((library, state))
}

async fn scan(s: &Subject) -> Result<LibrarySnapshot, CheckError> {
    s.provider.scan(&*s.tokens, &NoProgress).await.map_err(|e| failed(format!("the scan failed: {e}")))
}

fn credits_text(track: &Track) -> String {
    track
        .artists
        .iter()
        .map(|c| format!("{}:{}:{:?}", c.id.as_deref().unwrap_or("-"), c.name, c.role))
        .collect::<Vec<_>>()
        .join(", ")
}

fn compare_track(what: &str, expected: &Track, found: &Track, out: &mut Vec<String>) {
    if expected.id != found.id {
        out.push(format!("{what}: track {} where {} was expected", found.id, expected.id));
        return;
    }
    if expected.title != found.title {
        out.push(format!("{what}: track {} titled {:?}, expected {:?}", found.id, found.title, expected.title));
    }
    if credits_text(expected) != credits_text(found) {
        out.push(format!(
            "{what}: track {} credits [{}], expected [{}]",
            found.id,
            credits_text(found),
            credits_text(expected)
        ));
    }
    if let Some(album) = &expected.album
        && found.album.as_ref().map(|a| &a.id) != Some(&album.id)
    {
        out.push(format!(
            "{what}: track {} album {:?}, expected {}",
            found.id,
            found.album.as_ref().map(|a| &a.id),
            album.id
        ));
    }
    if expected.isrc.is_some() && expected.isrc != found.isrc {
        out.push(format!("{what}: track {} ISRC {:?}, expected {:?}", found.id, found.isrc, expected.isrc));
    }
}

fn compare_playlist(expected: &Playlist, found: &Playlist, out: &mut Vec<String>) {
    let what = format!("playlist {}", expected.id);
    if expected.name != found.name {
        out.push(format!("{what}: named {:?}, expected {:?}", found.name, expected.name));
    }
    if (expected.owned, expected.collaborative, expected.editable) != (found.owned, found.collaborative, found.editable)
    {
        out.push(format!(
            "{what}: owned/collaborative/editable {}/{}/{}, expected {}/{}/{}",
            found.owned, found.collaborative, found.editable, expected.owned, expected.collaborative, expected.editable
        ));
    }
    if expected.version.is_some() && expected.version != found.version {
        out.push(format!("{what}: version {:?}, expected {:?}", found.version, expected.version));
    }
    if !expected.editable && found.items.is_empty() {
        return; // The service may refuse to list items of playlists the user cannot edit.
    }
    if expected.items.len() != found.items.len() {
        out.push(format!("{what}: {} items, expected {}", found.items.len(), expected.items.len()));
    }
    for (e, f) in expected.items.iter().zip(&found.items) {
        if e.position != f.position {
            out.push(format!("{what}: item at position {} where {} was expected", f.position, e.position));
        }
        compare_track(&format!("{what} position {}", e.position), &e.track, &f.track, out);
        if e.added_at.is_some() && f.added_at != e.added_at {
            out.push(format!("{what} position {}: added_at {:?}, expected {:?}", e.position, f.added_at, e.added_at));
        }
    }
}

/// Compares a scan with the service's state on what dnp relies on (see the module docs).
///
/// # Errors
/// A description of up to 12 differences.
pub fn compare_libraries(expected: &LibrarySnapshot, found: &LibrarySnapshot) -> Result<(), String> {
    let mut out = Vec::new();
    if expected.provider != found.provider {
        out.push(format!("provider {}, expected {}", found.provider, expected.provider));
    }
    if expected.liked_tracks.len() != found.liked_tracks.len() {
        out.push(format!("{} liked tracks, expected {}", found.liked_tracks.len(), expected.liked_tracks.len()));
    }
    for (i, (e, f)) in expected.liked_tracks.iter().zip(&found.liked_tracks).enumerate() {
        compare_track(&format!("liked track #{i}"), &e.track, &f.track, &mut out);
        if e.added_at.is_some() && e.added_at != f.added_at {
            out.push(format!("liked track #{i}: added_at {:?}, expected {:?}", f.added_at, e.added_at));
        }
    }
    if expected.saved_albums.len() != found.saved_albums.len() {
        out.push(format!("{} saved albums, expected {}", found.saved_albums.len(), expected.saved_albums.len()));
    }
    for (i, (e, f)) in expected.saved_albums.iter().zip(&found.saved_albums).enumerate() {
        if e.album.id != f.album.id || e.album.title != f.album.title {
            out.push(format!(
                "saved album #{i}: {} {:?}, expected {} {:?}",
                f.album.id, f.album.title, e.album.id, e.album.title
            ));
        }
        let names =
            |a: &crate::model::Album| a.artists.iter().map(|c| (c.id.clone(), c.name.clone())).collect::<Vec<_>>();
        if names(&e.album) != names(&f.album) {
            out.push(format!("saved album {}: artists differ", e.album.id));
        }
    }
    let followed = |l: &LibrarySnapshot| -> BTreeMap<String, String> {
        l.followed_artists.iter().map(|a| (a.artist.id.clone(), a.artist.name.clone())).collect()
    };
    let (ef, ff) = (followed(expected), followed(found));
    if ef != ff {
        let missing: Vec<_> = ef.keys().filter(|k| !ff.contains_key(*k)).take(3).collect();
        let extra: Vec<_> = ff.keys().filter(|k| !ef.contains_key(*k)).take(3).collect();
        out.push(format!(
            "followed artists differ ({} found, {} expected; missing e.g. {missing:?}, unexpected e.g. {extra:?})",
            ff.len(),
            ef.len()
        ));
    }
    let found_playlists: BTreeMap<&str, &Playlist> = found.playlists.iter().map(|p| (p.id.as_str(), p)).collect();
    if expected.playlists.len() != found.playlists.len() {
        out.push(format!("{} playlists, expected {}", found.playlists.len(), expected.playlists.len()));
    }
    for e in &expected.playlists {
        match found_playlists.get(e.id.as_str()) {
            Some(f) => compare_playlist(e, f, &mut out),
            None => out.push(format!("playlist {} missing", e.id)),
        }
    }
    if out.is_empty() {
        Ok(())
    } else {
        let n = out.len();
        out.truncate(12);
        Err(format!("{n} difference(s): {}", out.join("; ")))
    }
}

/// Scans and compares with `state`.
async fn scan_matches(s: &Subject, state: &LibrarySnapshot) -> Result<LibrarySnapshot, CheckError> {
    let scanned = scan(s).await?;
    compare_libraries(state, &scanned)
        .map_err(|e| failed(format!("the scan differs from the service's state: {e}")))?;
    Ok(scanned)
}

/// A scan across page boundaries equals the service's state, with progress reported.
///
/// # Errors
/// [`CheckError::Failed`] naming the differences, or when no progress was reported.
pub async fn check_full_scan(h: &dyn Harness) -> Result<Passed, CheckError> {
    let s = subject(h);
    let (_, state) = fresh(h, &s, SEED).await?;
    let reports = std::sync::Mutex::new(Vec::<Progress>::new());
    let sink = |p: Progress| reports.lock().unwrap_or_else(|e| e.into_inner()).push(p);
    let scanned = s.provider.scan(&*s.tokens, &sink).await.map_err(|e| failed(format!("the scan failed: {e}")))?;
    compare_libraries(&state, &scanned)
        .map_err(|e| failed(format!("the scan differs from the service's state: {e}")))?;
    let reports = reports.into_inner().unwrap_or_else(|e| e.into_inner());
    if reports.is_empty() {
        return Err(failed("the scan reported no progress"));
    }
    if let Some(bad) = reports.iter().find(|p| p.total.is_some_and(|t| p.done > t)) {
        return Err(failed(format!("progress reported {} done of {:?}", bad.done, bad.total)));
    }
    Ok(Passed::note(format!("{} items, {} progress reports", state.item_count(), reports.len())))
}

/// What an enforcement did.
struct Enforcement {
    before: LibrarySnapshot,
    plan: Plan,
    batch: BatchId,
    log: MemoryActionLog,
    report: ExecutionReport,
}

fn dnp_list(s: &Subject, artist: &Artist) -> DnpList {
    DnpList {
        entries: vec![DnpEntry {
            id: EntryId::new_random(),
            artist: ArtistIdentity::named(artist.name.clone()).with_id(s.provider.id().clone(), artist.id.clone()),
            note: None,
            tags: vec![],
            added_at: chrono::Utc::now(),
            source: EntrySource::Personal,
        }],
    }
}

fn executor_config() -> ExecutorConfig {
    ExecutorConfig { retry_base: Duration::from_millis(200), ..ExecutorConfig::default() }
}

async fn execute(
    s: &Subject,
    log: &MemoryActionLog,
    batch: BatchId,
    plan: &Plan,
) -> Result<ExecutionReport, CheckError> {
    Executor::new(&*s.provider, &*s.tokens, log)
        .with_config(executor_config())
        .execute(batch, plan, &NoProgress, &CancelFlag::new())
        .await
        .map_err(|e| failed(format!("the action log failed: {e}")))
}

fn describe_failures(report: &ExecutionReport) -> String {
    report.failures.iter().map(|(f, n)| format!("{n} × {} ({})", f.code, f.message)).collect::<Vec<_>>().join("; ")
}

/// Scans, plans the removal of the library's subject artist and executes it.
async fn enforce_on(
    s: &Subject,
    generated: &LibrarySnapshot,
    before: LibrarySnapshot,
) -> Result<Enforcement, CheckError> {
    let artist =
        subject_artist(generated).ok_or_else(|| failed("the generated library has no subject artist"))?.clone();
    let scanned = scan_matches(s, &before).await?;
    let list = dnp_list(s, &artist);
    let plan =
        plan(&scanned, &BlockedSet::for_provider(&list, s.provider.id()), &EnforcementPolicy::default(), &s.caps);
    if plan.is_empty() {
        return Err(failed(
            "the plan for the generated library is empty: the adapter's scan lost the subject artist's items",
        ));
    }
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    let report = execute(s, &log, batch, &plan).await?;
    if report.completion != Completion::Finished || report.failed > 0 {
        return Err(failed(format!(
            "enforcement ended {:?} with {} failed action(s): {}",
            report.completion,
            report.failed,
            describe_failures(&report)
        )));
    }
    Ok(Enforcement { before, plan, batch, log, report })
}

async fn enforce(h: &dyn Harness, s: &Subject, seed: u64) -> Result<Enforcement, CheckError> {
    let (generated, before) = fresh(h, s, seed).await?;
    enforce_on(s, &generated, before).await
}

fn ids_of(plan: &Plan, kind: ActionKind) -> BTreeSet<String> {
    plan.actions().filter(|a| a.kind == kind).map(|a| a.target.item_id().to_owned()).collect()
}

/// Whether `after` differs from `before` by exactly the removals of `plan`.
fn exactly_planned(before: &LibrarySnapshot, after: &LibrarySnapshot, plan: &Plan) -> Result<(), String> {
    let d = diff(before, after);
    let mut problems = Vec::new();
    let set = |v: &Vec<String>| v.iter().cloned().collect::<BTreeSet<String>>();
    let check = |name: &str, got: BTreeSet<String>, want: BTreeSet<String>, problems: &mut Vec<String>| {
        if got != want {
            let extra: Vec<_> = got.difference(&want).take(3).collect();
            let missing: Vec<_> = want.difference(&got).take(3).collect();
            problems.push(format!(
                "{name}: {} changed, {} planned (unplanned e.g. {extra:?}, not done e.g. {missing:?})",
                got.len(),
                want.len()
            ));
        }
    };
    check("liked tracks removed", set(&d.liked_removed), ids_of(plan, ActionKind::UnlikeTrack), &mut problems);
    check("albums removed", set(&d.albums_removed), ids_of(plan, ActionKind::RemoveAlbum), &mut problems);
    check("artists unfollowed", set(&d.artists_unfollowed), ids_of(plan, ActionKind::UnfollowArtist), &mut problems);
    for (name, added) in [
        ("liked tracks added", &d.liked_added),
        ("albums added", &d.albums_added),
        ("artists followed", &d.artists_followed),
        ("playlists added", &d.playlists_added),
        ("playlists removed", &d.playlists_removed),
    ] {
        if !added.is_empty() {
            problems.push(format!("{name}: {added:?}"));
        }
    }
    let mut planned: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for a in plan.actions().filter(|a| a.kind == ActionKind::RemovePlaylistItem) {
        if let Target::PlaylistItem { playlist_id, track_id, position, .. } = &a.target {
            planned.entry(playlist_id.clone()).or_default().push((*position, track_id.clone()));
        }
    }
    for changed in &d.playlists_changed {
        if !changed.added.is_empty() {
            problems.push(format!("playlist {}: items added {:?}", changed.playlist_id, changed.added));
        }
        let mut got = changed.removed.clone();
        got.sort();
        let mut want = planned.remove(&changed.playlist_id).unwrap_or_default();
        want.sort();
        // The diff counts the last occurrences of a repeated track as the removed ones, so
        // an entry removed by its own id (an earlier occurrence) shows at another
        // position: compare the playlist's order instead, which tells them apart.
        let sequence_matches = || {
            let find = |l: &LibrarySnapshot| l.playlists.iter().find(|p| p.id == changed.playlist_id).cloned();
            let (Some(b), Some(a)) = (find(before), find(after)) else {
                return false;
            };
            let expected: Vec<&str> = b
                .items
                .iter()
                .filter(|i| !want.iter().any(|(p, t)| *p == i.position && *t == i.track.id))
                .map(|i| i.track.id.as_str())
                .collect();
            expected == a.items.iter().map(|i| i.track.id.as_str()).collect::<Vec<_>>()
        };
        if got != want && !sequence_matches() {
            problems.push(format!("playlist {}: removed {got:?}, planned {want:?}", changed.playlist_id));
        }
    }
    for (playlist, want) in planned {
        problems.push(format!("playlist {playlist}: {} planned removal(s) not done", want.len()));
    }
    let disliked: BTreeSet<String> =
        after.liked_tracks.iter().filter(|l| l.disliked).map(|l| l.track.id.clone()).collect();
    let was_disliked: BTreeSet<String> =
        before.liked_tracks.iter().filter(|l| l.disliked).map(|l| l.track.id.clone()).collect();
    let newly: BTreeSet<String> = disliked.difference(&was_disliked).cloned().collect();
    if newly != ids_of(plan, ActionKind::DislikeTrack) {
        problems.push(format!(
            "{} tracks newly disliked, {} planned",
            newly.len(),
            ids_of(plan, ActionKind::DislikeTrack).len()
        ));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// Enforcement removes exactly the planned items and nothing else.
///
/// # Errors
/// [`CheckError::Failed`] listing what was removed without a plan, or planned and kept.
pub async fn check_removal_exact(h: &dyn Harness) -> Result<Passed, CheckError> {
    let s = subject(h);
    let e = enforce(h, &s, SEED + 1).await?;
    let after = h.state().await?;
    exactly_planned(&e.before, &after, &e.plan)
        .map_err(|p| failed(format!("the library changed otherwise than planned: {p}")))?;
    Ok(Passed::note(format!("{} actions in {} calls", e.report.confirmed, e.report.calls)))
}

/// Track ids of each editable playlist, in order.
fn sequences(l: &LibrarySnapshot) -> BTreeMap<String, Vec<String>> {
    l.playlists
        .iter()
        .filter(|p| p.editable)
        .map(|p| (p.id.clone(), p.items.iter().map(|i| i.track.id.clone()).collect()))
        .collect()
}

/// Rolling back an enforcement restores the library, playlist order included.
///
/// # Errors
/// [`CheckError::Failed`] naming what was not restored.
pub async fn check_rollback(h: &dyn Harness) -> Result<Passed, CheckError> {
    let s = subject(h);
    let e = enforce(h, &s, SEED + 2).await?;
    let logged = e.log.actions(e.batch).await.map_err(|err| failed(format!("action log: {err}")))?;
    let rollback = rollback_plan(s.provider.id(), e.batch, &confirmed_actions(&logged), &s.caps);
    let report = execute(&s, &e.log, BatchId::new_random(), &rollback).await?;
    if report.completion != Completion::Finished || report.failed > 0 {
        return Err(failed(format!("rollback ended {:?}: {}", report.completion, describe_failures(&report))));
    }
    let after = h.state().await?;
    let mut d = diff(&e.before, &after);
    // Kinds whose inverse the service cannot do stay undone, and are reported as skipped.
    if !s.caps.can(ActionKind::LikeTrack) {
        d.liked_removed.clear();
    }
    if !s.caps.can(ActionKind::SaveAlbum) {
        d.albums_removed.clear();
    }
    if !s.caps.can(ActionKind::FollowArtist) {
        d.artists_unfollowed.clear();
    }
    if !d.is_empty() {
        return Err(failed(format!("the rollback left differences: {d:?}")));
    }
    let (before, now) = (sequences(&e.before), sequences(&after));
    if s.caps.can(ActionKind::InsertPlaylistItem)
        && let Some((id, _)) = before.iter().find(|(id, seq)| now.get(*id) != Some(*seq))
    {
        return Err(failed(format!("playlist {id}: the items are back but not in their former order")));
    }
    let mut note = format!("{} actions undone in {} calls", report.confirmed, report.calls);
    if !rollback.skipped.is_empty() {
        note.push_str(&format!("; {} not undoable (unsupported inverse)", rollback.skipped.len()));
    }
    Ok(Passed::note(note))
}

/// Applying a plan again changes nothing and fails nothing; planning again plans nothing.
///
/// # Errors
/// [`CheckError::Failed`] when the second run fails an action or changes the library.
pub async fn check_idempotent(h: &dyn Harness) -> Result<Passed, CheckError> {
    let s = subject(h);
    let e = enforce(h, &s, SEED + 3).await?;
    let once = h.state().await?;
    let report = execute(&s, &MemoryActionLog::new(), BatchId::new_random(), &e.plan).await?;
    if report.completion != Completion::Finished || report.failed > 0 {
        return Err(failed(format!(
            "re-applying the plan ended {:?} with {} failed: {} (removing what is gone must be confirmed)",
            report.completion,
            report.failed,
            describe_failures(&report)
        )));
    }
    let twice = h.state().await?;
    let d = diff(&once, &twice);
    if !d.is_empty() {
        return Err(failed(format!("re-applying the plan changed the library: {d:?}")));
    }
    let rescanned = scan_matches(&s, &twice).await?;
    let artist = subject_artist(&generate_library(s.provider.id(), SEED + 3, &LibraryShape::spanning(&s.caps)))
        .cloned()
        .ok_or_else(|| failed("no subject artist"))?;
    let again = plan(
        &rescanned,
        &BlockedSet::for_provider(&dnp_list(&s, &artist), s.provider.id()),
        &EnforcementPolicy::default(),
        &s.caps,
    );
    if !again.is_empty() {
        return Err(failed(format!(
            "planning after enforcement still plans {} action(s)",
            again.summary.total_actions
        )));
    }
    Ok(Passed::default())
}

fn reason() -> Reason {
    Reason {
        entry_id: EntryId(uuid::Uuid::nil()),
        artist_name: "conformance".into(),
        matched: MatchKind::PrimaryCredit,
        credit: "conformance".into(),
        confidence: 1.0,
    }
}

fn actions(kind: ActionKind, targets: Vec<Target>) -> Vec<Action> {
    targets
        .into_iter()
        .enumerate()
        .map(|(i, target)| Action {
            id: ActionId(i as u32),
            kind,
            target,
            reason: reason(),
            label: format!("item {i}"),
            inverse_of: None,
        })
        .collect()
}

/// Sends `batch` and checks one confirmed outcome per action, in order.
async fn apply_all(s: &Subject, batch: &Batch) -> Result<usize, CheckError> {
    let outcomes = s
        .provider
        .apply(&*s.tokens, batch)
        .await
        .map_err(|e| failed(format!("{} batch of {} refused: {e}", batch.kind.as_str(), batch.actions.len())))?;
    if outcomes.len() != batch.actions.len() || outcomes.iter().zip(&batch.actions).any(|(o, a)| o.action != a.id) {
        return Err(failed(format!(
            "{}: {} outcomes for {} actions (one per action, in order, is the contract)",
            batch.kind.as_str(),
            outcomes.len(),
            batch.actions.len()
        )));
    }
    if let Some(bad) = outcomes.iter().find(|o| matches!(o.outcome, Outcome::Failed(_))) {
        return Err(failed(format!("{}: action {} failed: {:?}", batch.kind.as_str(), bad.action, bad.outcome)));
    }
    Ok(outcomes.len())
}

fn batch_of(kind: ActionKind, playlist_id: Option<String>, actions: Vec<Action>) -> Batch {
    Batch { kind, playlist_id, actions, quota_units: 0, day: 0 }
}

/// Targets of a full batch of `kind` from `state`.
fn full_batch_targets(kind: ActionKind, state: &LibrarySnapshot, caps: &Capabilities) -> (Option<String>, Vec<Target>) {
    let max = caps.max_batch(kind) as usize;
    match kind {
        ActionKind::UnlikeTrack | ActionKind::DislikeTrack => (
            None,
            state
                .liked_tracks
                .iter()
                .take(max)
                .map(|l| Target::Track {
                    track_id: l.track.id.clone(),
                    entry_id: l.entry_id.clone(),
                    added_at: l.added_at,
                    disliked: l.disliked,
                })
                .collect(),
        ),
        ActionKind::RemoveAlbum => (
            None,
            state
                .saved_albums
                .iter()
                .take(max)
                .map(|a| Target::Album { album_id: a.album.id.clone(), added_at: a.added_at })
                .collect(),
        ),
        ActionKind::UnfollowArtist => (
            None,
            state
                .followed_artists
                .iter()
                .take(max)
                .map(|a| Target::Artist { artist_id: a.artist.id.clone(), entry_id: a.entry_id.clone() })
                .collect(),
        ),
        ActionKind::RemovePlaylistItem => {
            let Some(playlist) = state.playlists.iter().filter(|p| p.editable).max_by_key(|p| p.items.len()) else {
                return (None, Vec::new());
            };
            // `max` distinct tracks; with all-occurrence removal, every occurrence of each.
            let mut chosen: Vec<&str> = Vec::new();
            for item in &playlist.items {
                if !chosen.contains(&item.track.id.as_str()) && chosen.len() < max {
                    chosen.push(&item.track.id);
                }
            }
            let all = caps.playlist_removal == PlaylistRemoval::AllOccurrencesOfTrack;
            let mut taken = 0;
            let targets = playlist
                .items
                .iter()
                .filter(|i| chosen.contains(&i.track.id.as_str()))
                .filter(|_| {
                    taken += 1;
                    all || taken <= max
                })
                .map(|i| Target::PlaylistItem {
                    playlist_id: playlist.id.clone(),
                    playlist_version: playlist.version.clone(),
                    track_id: i.track.id.clone(),
                    position: i.position,
                    item_id: i.item_id.clone(),
                    added_at: i.added_at,
                })
                .collect();
            (Some(playlist.id.clone()), targets)
        }
        _ => (None, Vec::new()),
    }
}

/// One removal kind at its full batch size, then its inverse through a rollback plan.
async fn round_trip(h: &dyn Harness, s: &Subject, kind: ActionKind) -> Result<(Passed, Option<Passed>), CheckError> {
    let (_, state) = fresh(h, s, SEED + 10 + kind as u64).await?;
    let (playlist_id, targets) = full_batch_targets(kind, &state, &s.caps);
    if targets.is_empty() {
        return Err(failed(format!("the generated library has nothing for {}", kind.as_str())));
    }
    let done = actions(kind, targets);
    let n = apply_all(s, &batch_of(kind, playlist_id.clone(), done.clone())).await?;
    let after = h.state().await?;
    let plan = Plan {
        provider: s.provider.id().clone(),
        batches: vec![batch_of(kind, playlist_id, done.clone())],
        skipped: vec![],
        summary: Default::default(),
        rollback_of: None,
    };
    if kind == ActionKind::DislikeTrack {
        let wanted: BTreeSet<String> = done.iter().map(|a| a.target.item_id().to_owned()).collect();
        let disliked: BTreeSet<String> =
            after.liked_tracks.iter().filter(|l| l.disliked).map(|l| l.track.id.clone()).collect();
        if disliked != wanted {
            return Err(failed(format!("{} tracks disliked, {} sent", disliked.len(), wanted.len())));
        }
    } else {
        exactly_planned(&state, &after, &plan).map_err(|p| failed(format!("{}: {p}", kind.as_str())))?;
    }
    let removal = Passed::note(format!("{n} actions in one call"));
    let inverse = kind.inverse();
    if !s.caps.can(inverse) {
        return Ok((removal, None));
    }
    let rollback = rollback_plan(s.provider.id(), BatchId::new_random(), &done, &s.caps);
    let mut sent = 0;
    for batch in &rollback.batches {
        sent += apply_all(s, batch).await?;
    }
    let restored = h.state().await?;
    let d = diff(&state, &restored);
    let disliked_left = restored.liked_tracks.iter().any(|l| l.disliked) && kind == ActionKind::DislikeTrack;
    if !d.is_empty() || disliked_left {
        return Err(failed(format!("{} did not restore the library: {d:?}", inverse.as_str())));
    }
    if kind == ActionKind::RemovePlaylistItem && sequences(&state) != sequences(&restored) {
        return Err(failed("inserted playlist items did not return to their positions"));
    }
    Ok((removal, Some(Passed::note(format!("{sent} actions in {} call(s)", rollback.batches.len())))))
}

/// Every action kind the capabilities list works at its full batch size, through the
/// adapter; kinds they call unsupported are skipped and reported with the reason.
///
/// # Errors
/// Per kind: [`CheckError::Failed`] when a supported kind fails; `Skipped` for an
/// unsupported one.
pub async fn check_capabilities(h: &dyn Harness) -> Vec<(ActionKind, Result<Passed, CheckError>)> {
    let s = subject(h);
    let mut results: BTreeMap<ActionKind, Result<Passed, CheckError>> = BTreeMap::new();
    for kind in ActionKind::ALL {
        if !s.caps.can(kind) {
            let reason = match s.caps.support(kind) {
                crate::Support::Unsupported { reason, alternative } => match alternative {
                    Some(alt) => format!("unsupported by the service: {reason} (instead: {alt:?})"),
                    None => format!("unsupported by the service: {reason}"),
                },
                _ => "unsupported".into(),
            };
            results.insert(kind, Err(CheckError::Skipped(reason)));
        }
    }
    for kind in [
        ActionKind::UnlikeTrack,
        ActionKind::RemoveAlbum,
        ActionKind::UnfollowArtist,
        ActionKind::RemovePlaylistItem,
        ActionKind::DislikeTrack,
    ] {
        let inverse = kind.inverse();
        if !s.caps.can(kind) {
            if s.caps.can(inverse) {
                results.insert(
                    inverse,
                    Err(CheckError::Skipped(format!(
                        "only checked as the inverse of {}, which is unsupported",
                        kind.as_str()
                    ))),
                );
            }
            continue;
        }
        match round_trip(h, &s, kind).await {
            Ok((removal, inverse_result)) => {
                results.insert(kind, Ok(removal));
                if let Some(r) = inverse_result {
                    results.insert(inverse, Ok(r));
                }
            }
            Err(err) => {
                results.insert(kind, Err(err.clone()));
                if s.caps.can(inverse) {
                    results.insert(inverse, Err(failed(format!("not reached: {err}"))));
                }
            }
        }
    }
    ActionKind::ALL.iter().filter_map(|k| results.remove(k).map(|r| (*k, r))).collect()
}

/// A playlist changed between plan and execution loses no entry that was not planned;
/// every action gets its outcome (confirmed, or `conflict`); rollback is best effort,
/// reported per item.
///
/// # Errors
/// [`CheckError::Failed`] when an unplanned entry was removed or an outcome is wrong;
/// `Skipped` when the harness cannot change a playlist.
pub async fn check_playlist_changed(h: &dyn Harness) -> Result<Passed, CheckError> {
    let s = subject(h);
    let (generated, state) = fresh(h, &s, SEED + 4).await?;
    let artist = subject_artist(&generated).cloned().ok_or_else(|| failed("no subject artist"))?;
    let scanned = scan_matches(&s, &state).await?;
    let plan = plan(
        &scanned,
        &BlockedSet::for_provider(&dnp_list(&s, &artist), s.provider.id()),
        &EnforcementPolicy::default(),
        &s.caps,
    );
    let Some(playlist_id) =
        plan.batches.iter().find(|b| b.kind == ActionKind::RemovePlaylistItem).and_then(|b| b.playlist_id.clone())
    else {
        return Err(CheckError::Skipped("the plan removes no playlist item (unsupported)".into()));
    };
    h.inject(HarnessFault::ChangePlaylist { playlist_id: playlist_id.clone() }).await?;
    let changed = h.state().await?;
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    let report = execute(&s, &log, batch, &plan).await?;
    if report.completion != Completion::Finished {
        return Err(failed(format!("enforcement ended {:?}", report.completion)));
    }
    if let Some((f, _)) = report.failures.iter().find(|(f, _)| f.code != "conflict") {
        return Err(failed(format!(
            "an action failed with {} ({}): only `conflict` is expected here",
            f.code, f.message
        )));
    }
    let after = h.state().await?;
    let planned_tracks: BTreeSet<String> = plan
        .actions()
        .filter(|a| a.target.playlist_id() == Some(playlist_id.as_str()))
        .map(|a| a.target.item_id().to_owned())
        .collect();
    let d = diff(&changed, &after);
    for p in &d.playlists_changed {
        if let Some((pos, track)) =
            p.removed.iter().find(|(_, t)| !planned_tracks.contains(t) && p.playlist_id == playlist_id)
        {
            return Err(failed(format!(
                "playlist {}: entry {track} at {pos} was removed though not planned",
                p.playlist_id
            )));
        }
        if !p.added.is_empty() {
            return Err(failed(format!("playlist {}: entries added during enforcement: {:?}", p.playlist_id, p.added)));
        }
    }
    let logged = log.actions(batch).await.map_err(|e| failed(format!("action log: {e}")))?;
    let confirmed = confirmed_actions(&logged);
    let rollback = rollback_plan(s.provider.id(), batch, &confirmed, &s.caps);
    let rb = execute(&s, &log, BatchId::new_random(), &rollback).await?;
    if rb.completion != Completion::Finished || rb.failed > 0 {
        return Err(failed(format!("rollback after the change ended {:?}: {}", rb.completion, describe_failures(&rb))));
    }
    let restored = h.state().await?;
    let count = |l: &LibrarySnapshot, track: &str| {
        l.playlists
            .iter()
            .find(|p| p.id == playlist_id)
            .map_or(0, |p| p.items.iter().filter(|i| i.track.id == track).count())
    };
    for track in
        confirmed.iter().filter(|a| a.target.playlist_id() == Some(playlist_id.as_str())).map(|a| a.target.item_id())
    {
        if count(&restored, track) != count(&changed, track) {
            return Err(failed(format!(
                "playlist {playlist_id}: track {track} occurs {} times after rollback, {} before enforcement",
                count(&restored, track),
                count(&changed, track)
            )));
        }
    }
    let conflicts: u64 = report.failures.iter().map(|(_, n)| n).sum();
    let notes = logged.iter().filter(|l| l.note.is_some()).count();
    Ok(Passed::note(format!("{conflicts} conflict(s), {notes} note(s) on the changed playlist's actions")))
}

/// Scan, plan and enforce on a fresh library after `fault`; each must complete correctly.
async fn survives(h: &dyn Harness, s: &Subject, seed: u64, fault: HarnessFault) -> Result<Duration, CheckError> {
    let (generated, state) = fresh(h, s, seed).await?;
    h.inject(fault).await?;
    let started = Instant::now();
    let e = enforce_on(s, &generated, state).await?;
    let elapsed = started.elapsed();
    let after = h.state().await?;
    exactly_planned(&e.before, &after, &e.plan)
        .map_err(|p| failed(format!("after the fault the library changed otherwise than planned: {p}")))?;
    Ok(elapsed)
}

/// 429 answers with `Retry-After` are waited out and the work completes correctly.
///
/// # Errors
/// [`CheckError::Failed`] when the work fails or finishes sooner than `Retry-After`.
pub async fn check_rate_limited(h: &dyn Harness) -> Result<Passed, CheckError> {
    let s = subject(h);
    let retry_after = Duration::from_secs(1);
    let elapsed = survives(h, &s, SEED + 5, HarnessFault::RateLimit { calls: 3, retry_after }).await?;
    if elapsed < retry_after {
        return Err(failed(format!(
            "scan and enforcement took {elapsed:?}, less than the Retry-After of {retry_after:?}: the 429 was not waited out"
        )));
    }
    Ok(Passed::note(format!("completed in {elapsed:.2?} with Retry-After {retry_after:?}")))
}

/// 5xx answers and timeouts are retried and the work completes correctly.
///
/// # Errors
/// [`CheckError::Failed`] when the work fails.
pub async fn check_server_errors(h: &dyn Harness) -> Result<Passed, CheckError> {
    let s = subject(h);
    survives(h, &s, SEED + 6, HarnessFault::ServerError { calls: 2 }).await?;
    match survives(h, &s, SEED + 7, HarnessFault::Timeout { calls: 1 }).await {
        Ok(_) => Ok(Passed::note("two 5xx and one timeout retried")),
        Err(CheckError::Skipped(why)) => Ok(Passed::note(format!("two 5xx retried; timeouts not injected: {why}"))),
        Err(e) => Err(e),
    }
}

/// An access token that expires before and during a scan is refreshed and the scan
/// completes correctly.
///
/// # Errors
/// [`CheckError::Failed`] when a scan fails or differs; `Skipped` when the harness cannot
/// expire tokens.
pub async fn check_expired_token(h: &dyn Harness) -> Result<Passed, CheckError> {
    let s = subject(h);
    let (_, state) = fresh(h, &s, SEED + 8).await?;
    h.inject(HarnessFault::ExpireAccessToken).await?;
    scan_matches(&s, &state).await.map_err(|e| failed(format!("with the token expired before the scan: {e}")))?;

    let first_page = AtomicBool::new(false);
    let sink = |_: Progress| first_page.store(true, Ordering::SeqCst);
    let injector = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !first_page.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        h.inject(HarnessFault::ExpireAccessToken).await
    };
    let (scanned, injected) = futures::join!(s.provider.scan(&*s.tokens, &sink), injector);
    injected?;
    let scanned =
        scanned.map_err(|e| failed(format!("the scan failed when the token expired after its first page: {e}")))?;
    compare_libraries(&state, &scanned)
        .map_err(|e| failed(format!("the scan differs after the token expired mid-scan: {e}")))?;
    Ok(Passed::note("refreshed before and during a scan"))
}

/// An outage opens the breaker: calls then fail at once with `ProviderUnavailable`; once
/// the service is back and the breaker's time is up, the adapter recovers by itself.
///
/// # Errors
/// [`CheckError::Failed`] when the breaker never opens, does not fail fast, or does not
/// recover; `Skipped` when the harness cannot cause an outage.
pub async fn check_breaker(h: &dyn Harness) -> Result<Passed, CheckError> {
    let s = subject(h);
    let (_, state) = fresh(h, &s, SEED + 9).await?;
    h.inject(HarnessFault::Outage).await?;
    let result = breaker_cycle(h, &s, &state).await;
    let cleared = h.inject(HarnessFault::ClearFaults).await;
    let passed = result?;
    cleared?;
    Ok(passed)
}

async fn breaker_cycle(h: &dyn Harness, s: &Subject, state: &LibrarySnapshot) -> Result<Passed, CheckError> {
    let mut opened_after = None;
    for attempt in 1..=20 {
        match s.provider.scan(&*s.tokens, &NoProgress).await {
            Ok(_) => return Err(failed("a scan succeeded during an outage")),
            Err(ProviderError::ProviderUnavailable { .. }) => {
                opened_after = Some(attempt);
                break;
            }
            Err(_) => {}
        }
    }
    let Some(opened_after) = opened_after else {
        return Err(failed("the breaker never opened: 20 scans during an outage did not give ProviderUnavailable"));
    };
    let started = Instant::now();
    let retry_after = match s.provider.scan(&*s.tokens, &NoProgress).await {
        Err(ProviderError::ProviderUnavailable { retry_after, .. })
            if started.elapsed() < Duration::from_millis(500) =>
        {
            retry_after
        }
        Err(ProviderError::ProviderUnavailable { .. }) => {
            return Err(failed(format!(
                "with the breaker open a scan took {:?} to fail: it must fail at once",
                started.elapsed()
            )));
        }
        other => return Err(failed(format!("with the breaker open a scan gave {other:?}, not ProviderUnavailable"))),
    };
    let Some(mut wait) = retry_after else {
        return Err(failed("ProviderUnavailable must say when the breaker lets a probe through (retry_after)"));
    };
    h.inject(HarnessFault::ClearFaults).await?;
    let recovery = Instant::now();
    for _ in 0..6 {
        if wait > Duration::from_secs(120) {
            return Err(failed(format!(
                "the breaker asks to wait {wait:?}; the harness should configure a shorter open time"
            )));
        }
        tokio::time::sleep(wait + Duration::from_millis(20)).await;
        match s.provider.scan(&*s.tokens, &NoProgress).await {
            Ok(scanned) => {
                compare_libraries(state, &scanned)
                    .map_err(|e| failed(format!("the scan after recovery differs: {e}")))?;
                return Ok(Passed::note(format!(
                    "opened during scan {opened_after}, failed fast, recovered after {:.1?}",
                    recovery.elapsed()
                )));
            }
            Err(ProviderError::ProviderUnavailable { retry_after: Some(d), .. }) => wait = d,
            Err(ProviderError::ProviderUnavailable { retry_after: None, .. }) => wait = Duration::from_millis(200),
            Err(e) => return Err(failed(format!("after the outage ended the scan failed: {e}"))),
        }
    }
    Err(failed("the breaker did not recover within 6 waits after the outage ended"))
}

impl From<&HarnessError> for CheckError {
    fn from(err: &HarnessError) -> Self {
        err.clone().into()
    }
}
