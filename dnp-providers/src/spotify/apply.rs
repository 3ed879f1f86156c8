//! Sending one planned [`Batch`] to Spotify, with one [`ActionOutcome`] per action.
//!
//! | action | endpoint | per call |
//! |---|---|---|
//! | unlike track / like track | `DELETE` / `PUT /me/library?uris=spotify:track:…` | 40 URIs |
//! | remove album / save album | `DELETE` / `PUT /me/library?uris=spotify:album:…` | 40 URIs |
//! | unfollow / follow artist | `DELETE` / `PUT /me/following?type=artist&ids=…` | 50 ids |
//! | remove playlist item | `DELETE /playlists/{id}/items` with `{items: [{uri}], snapshot_id}` | 100 URIs |
//! | insert playlist item | `POST /playlists/{id}/items` with `{uris, position}` | 100 URIs |
//!
//! `/me/library` does not take artist URIs, so follows use `/me/following` (deprecated in
//! the spec, still the only way; see `shared/specs/PROVIDER-FACTS.md`).
//!
//! # Playlist removals
//! Spotify removes a URI from a playlist everywhere it occurs. The planner puts every
//! occurrence of a track in the same batch, each with its position, so rollback can put
//! each back. Before removing, the adapter reads the playlist's `snapshot_id`: when it is
//! still the planned one, or differs only by dnp's own earlier removals (other tracks,
//! earlier batches of the same plan), the removal is sent with it. When the playlist changed, the
//! adapter reads its items again and refuses (outcome `conflict`) to remove a track that
//! now occurs more often than planned, since removing it would take out entries nobody
//! planned or recorded; the other tracks are removed against the new version.
//!
//! # Inserts (rollback)
//! Items are inserted in ascending position, runs of consecutive positions in one call,
//! so each returns to its former index when the playlist has not changed since. A
//! position past the playlist's end (it shrank meanwhile) is clamped to the end and the
//! outcome says so.
//!
//! # Failures
//! A batch fails as a whole (`Err`) only when nothing was applied and the failure is
//! temporary or needs re-authorization. A permanent refusal of a call carrying several
//! items (an unknown id) is retried item by item, so each action gets its own outcome.

use std::collections::BTreeMap;

use dnp_core::{Action, ActionKind, ActionOutcome, Batch, Outcome, ProviderError, ProviderId, Target};

use super::client::{FOLLOW_BATCH, LIBRARY_BATCH, PAGE_SIZE, PLAYLIST_BATCH, SpotifyClient, is_spotify_id};
use crate::http::AuthSession;

/// Outcomes being collected for a batch, in the batch's order at the end.
struct Outcomes {
    by_action: BTreeMap<u32, Outcome>,
    applied_any: bool,
}

impl Outcomes {
    fn new() -> Self {
        Self { by_action: BTreeMap::new(), applied_any: false }
    }

    fn confirm(&mut self, action: &Action, note: Option<String>) {
        self.by_action.insert(action.id.0, Outcome::Confirmed { note });
    }

    fn fail(&mut self, action: &Action, err: &ProviderError) {
        self.by_action.insert(action.id.0, ActionOutcome::failed(action.id, err).outcome);
    }

    fn finish(mut self, batch: &Batch) -> Vec<ActionOutcome> {
        batch
            .actions
            .iter()
            .map(|a| ActionOutcome {
                action: a.id,
                outcome: self.by_action.remove(&a.id.0).unwrap_or_else(|| {
                    Outcome::Failed(dnp_core::ActionFailure {
                        code: "protocol".into(),
                        message: "the adapter produced no outcome for this action".into(),
                        retryable: false,
                    })
                }),
            })
            .collect()
    }
}

/// Whether an error stops the whole batch (when nothing was applied yet).
fn stops_batch(err: &ProviderError) -> bool {
    err.is_retryable() || matches!(err, ProviderError::NeedsReauth { .. })
}

fn invalid(provider: &ProviderId, endpoint: &str, detail: String) -> ProviderError {
    ProviderError::InvalidInput { provider: provider.clone(), endpoint: endpoint.to_owned(), detail }
}

/// The playlist versions dnp's own removals produced: (playlist, version before) →
/// version after. A batch planned against version A finds the playlist at version C; when
/// A → B → C were all our own removals (earlier batches of the same plan, each of other
/// tracks), the playlist did not change under us in a way that matters.
#[derive(Debug, Default)]
pub(crate) struct OwnWrites {
    map: std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
}

impl OwnWrites {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, String), String>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, playlist: &str, from: &str, to: &str) {
        let mut map = self.lock();
        if map.len() >= 10_000 {
            map.clear();
        }
        map.insert((playlist.to_owned(), from.to_owned()), to.to_owned());
    }

    /// Whether `current` follows from `planned` through our own writes alone.
    fn reaches(&self, playlist: &str, planned: &str, current: &str) -> bool {
        let map = self.lock();
        let mut version = planned.to_owned();
        for _ in 0..1_000 {
            if version == current {
                return true;
            }
            match map.get(&(playlist.to_owned(), version)) {
                Some(next) => version = next.clone(),
                None => return false,
            }
        }
        false
    }
}

/// Sends `batch`; see the [module docs](self).
///
/// # Errors
/// Only when nothing was applied: rate limited, breaker open, transient, needs re-auth,
/// or `Unsupported` for kinds Spotify cannot do (dislike ratings).
pub(crate) async fn apply(
    provider: &ProviderId,
    client: &SpotifyClient,
    auth: &AuthSession<'_>,
    own: &OwnWrites,
    batch: &Batch,
) -> Result<Vec<ActionOutcome>, ProviderError> {
    match batch.kind {
        ActionKind::UnlikeTrack | ActionKind::LikeTrack | ActionKind::RemoveAlbum | ActionKind::SaveAlbum => {
            library(provider, client, auth, batch).await
        }
        ActionKind::UnfollowArtist | ActionKind::FollowArtist => follows(provider, client, auth, batch).await,
        ActionKind::RemovePlaylistItem => remove_playlist_items(provider, client, auth, own, batch).await,
        ActionKind::InsertPlaylistItem => insert_playlist_items(provider, client, auth, batch).await,
        ActionKind::DislikeTrack | ActionKind::ClearTrackRating => Err(ProviderError::Unsupported {
            provider: provider.clone(),
            what: format!("{} (Spotify has no rating API)", batch.kind.as_str()),
        }),
    }
}

/// The id of each action whose target fits `kind`; the others fail in `outcomes`.
fn ids_of<'a>(
    provider: &ProviderId,
    endpoint: &str,
    batch: &'a Batch,
    outcomes: &mut Outcomes,
) -> Vec<(&'a Action, String)> {
    let mut valid = Vec::new();
    for action in &batch.actions {
        let id = match (batch.kind, &action.target, action.kind == batch.kind) {
            (_, _, false) => None,
            (ActionKind::UnlikeTrack | ActionKind::LikeTrack, Target::Track { track_id, .. }, _) => Some(track_id),
            (ActionKind::RemoveAlbum | ActionKind::SaveAlbum, Target::Album { album_id, .. }, _) => Some(album_id),
            (ActionKind::UnfollowArtist | ActionKind::FollowArtist, Target::Artist { artist_id, .. }, _) => {
                Some(artist_id)
            }
            (
                ActionKind::RemovePlaylistItem | ActionKind::InsertPlaylistItem,
                Target::PlaylistItem { track_id, .. },
                _,
            ) => Some(track_id),
            _ => None,
        };
        match id {
            Some(id) if is_spotify_id(id) => valid.push((action, id.clone())),
            Some(id) => outcomes.fail(
                action,
                &invalid(
                    provider,
                    endpoint,
                    format!("{:?} is not a Spotify id", id.chars().take(64).collect::<String>()),
                ),
            ),
            None => outcomes.fail(
                action,
                &invalid(provider, endpoint, format!("{} does not apply to this target", action.kind.as_str())),
            ),
        }
    }
    valid
}

/// Groups `items` (action, id) by distinct id, in first-appearance order.
fn group_by_id<'a>(items: Vec<(&'a Action, String)>) -> Vec<(String, Vec<&'a Action>)> {
    let mut groups: Vec<(String, Vec<&'a Action>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (action, id) in items {
        match index.get(&id) {
            Some(&i) => groups[i].1.push(action),
            None => {
                index.insert(id.clone(), groups.len());
                groups.push((id, vec![action]));
            }
        }
    }
    groups
}

/// Sends `groups` in calls of at most `max` distinct ids through `call`, isolating
/// permanent refusals item by item.
async fn send_in_chunks<F, Fut>(
    groups: &[(String, Vec<&Action>)],
    max: usize,
    outcomes: &mut Outcomes,
    call: F,
) -> Result<(), ProviderError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(), ProviderError>>,
{
    let chunks: Vec<&[(String, Vec<&Action>)]> = groups.chunks(max.max(1)).collect();
    for (n, chunk) in chunks.iter().enumerate() {
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
        match call(ids).await {
            Ok(()) => {
                outcomes.applied_any = true;
                chunk.iter().flat_map(|(_, a)| a).for_each(|a| outcomes.confirm(a, None));
            }
            Err(err) if stops_batch(&err) => {
                if !outcomes.applied_any {
                    return Err(err);
                }
                // Part of the batch went through: report the rest as failed (retryable).
                chunks[n..].iter().flat_map(|c| c.iter()).flat_map(|(_, a)| a).for_each(|a| outcomes.fail(a, &err));
                return Ok(());
            }
            Err(err) if chunk.len() > 1 => {
                tracing::info!(error = err.code(), items = chunk.len(), "call refused; retrying item by item");
                for (id, actions) in chunk.iter() {
                    match call(vec![id.clone()]).await {
                        Ok(()) => {
                            outcomes.applied_any = true;
                            actions.iter().for_each(|a| outcomes.confirm(a, None));
                        }
                        Err(err) if stops_batch(&err) && !outcomes.applied_any => return Err(err),
                        Err(err) => actions.iter().for_each(|a| outcomes.fail(a, &err)),
                    }
                }
            }
            Err(err) => chunk.iter().flat_map(|(_, a)| a).for_each(|a| outcomes.fail(a, &err)),
        }
    }
    Ok(())
}

async fn library(
    provider: &ProviderId,
    client: &SpotifyClient,
    auth: &AuthSession<'_>,
    batch: &Batch,
) -> Result<Vec<ActionOutcome>, ProviderError> {
    let (endpoint, kind, save) = match batch.kind {
        ActionKind::UnlikeTrack => (super::client::endpoints::LIBRARY_REMOVE, "track", false),
        ActionKind::LikeTrack => (super::client::endpoints::LIBRARY_SAVE, "track", true),
        ActionKind::RemoveAlbum => (super::client::endpoints::LIBRARY_REMOVE, "album", false),
        _ => (super::client::endpoints::LIBRARY_SAVE, "album", true),
    };
    let mut outcomes = Outcomes::new();
    let items = ids_of(provider, endpoint, batch, &mut outcomes);
    let groups = group_by_id(items);
    send_in_chunks(&groups, LIBRARY_BATCH, &mut outcomes, |ids| async move {
        let uris: Vec<String> = ids.iter().map(|id| format!("spotify:{kind}:{id}")).collect();
        if save { client.library_save(auth, &uris).await } else { client.library_remove(auth, &uris).await }
    })
    .await?;
    Ok(outcomes.finish(batch))
}

async fn follows(
    provider: &ProviderId,
    client: &SpotifyClient,
    auth: &AuthSession<'_>,
    batch: &Batch,
) -> Result<Vec<ActionOutcome>, ProviderError> {
    let follow = batch.kind == ActionKind::FollowArtist;
    let endpoint = if follow { super::client::endpoints::FOLLOW } else { super::client::endpoints::UNFOLLOW };
    let mut outcomes = Outcomes::new();
    let items = ids_of(provider, endpoint, batch, &mut outcomes);
    let groups = group_by_id(items);
    send_in_chunks(&groups, FOLLOW_BATCH, &mut outcomes, |ids| async move {
        if follow { client.follow_artists(auth, &ids).await } else { client.unfollow_artists(auth, &ids).await }
    })
    .await?;
    Ok(outcomes.finish(batch))
}

/// The playlist a batch of playlist actions is about.
fn playlist_of(batch: &Batch) -> Option<String> {
    batch.playlist_id.clone().or_else(|| batch.actions.iter().find_map(|a| a.target.playlist_id().map(str::to_owned)))
}

/// Every track id of the playlist with how often it occurs.
async fn occurrences(
    client: &SpotifyClient,
    auth: &AuthSession<'_>,
    playlist_id: &str,
) -> Result<std::collections::HashMap<String, u32>, ProviderError> {
    let mut counts = std::collections::HashMap::new();
    let mut offset = 0;
    loop {
        let page = client.playlist_items(auth, playlist_id, offset, PAGE_SIZE).await?;
        let n = page.items.len() as u32;
        for entry in &page.items {
            if let Some(track) = entry.to_track() {
                *counts.entry(track.id).or_insert(0) += 1;
            }
        }
        offset += n;
        if page.next.is_none() || n == 0 || offset >= page.total {
            return Ok(counts);
        }
    }
}

fn fail_all(outcomes: &mut Outcomes, batch: &Batch, err: &ProviderError) {
    for action in &batch.actions {
        outcomes.by_action.entry(action.id.0).or_insert_with(|| ActionOutcome::failed(action.id, err).outcome);
    }
}

async fn remove_playlist_items(
    provider: &ProviderId,
    client: &SpotifyClient,
    auth: &AuthSession<'_>,
    own: &OwnWrites,
    batch: &Batch,
) -> Result<Vec<ActionOutcome>, ProviderError> {
    let endpoint = super::client::endpoints::PLAYLIST_REMOVE;
    let mut outcomes = Outcomes::new();
    let Some(playlist_id) = playlist_of(batch) else {
        fail_all(&mut outcomes, batch, &invalid(provider, endpoint, "the batch names no playlist".into()));
        return Ok(outcomes.finish(batch));
    };
    let items: Vec<(&Action, String)> = ids_of(provider, endpoint, batch, &mut outcomes)
        .into_iter()
        .filter(|(action, _)| {
            let same = action.target.playlist_id() == Some(playlist_id.as_str());
            if !same {
                outcomes.fail(action, &invalid(provider, endpoint, "the action belongs to another playlist".into()));
            }
            same
        })
        .collect();
    if items.is_empty() {
        return Ok(outcomes.finish(batch));
    }
    let planned_version = items.iter().find_map(|(a, _)| match &a.target {
        Target::PlaylistItem { playlist_version, .. } => playlist_version.clone(),
        _ => None,
    });

    let current = match client.playlist_version(auth, &playlist_id).await {
        Ok(v) => v,
        Err(err) if stops_batch(&err) => return Err(err),
        Err(err) => {
            let err = match err {
                ProviderError::NotFound { provider, .. } => {
                    ProviderError::NotFound { provider, what: format!("playlist {playlist_id}") }
                }
                other => other,
            };
            fail_all(&mut outcomes, batch, &err);
            return Ok(outcomes.finish(batch));
        }
    };

    let mut groups = group_by_id(items);
    let changed = planned_version.as_deref().is_some_and(|v| !own.reaches(&playlist_id, v, &current));
    let mut note = None;
    if changed {
        // The playlist changed since the plan: a track that now occurs more often than
        // planned cannot be removed by URI without removing entries nobody recorded.
        let counts = match occurrences(client, auth, &playlist_id).await {
            Ok(c) => c,
            Err(err) if stops_batch(&err) => return Err(err),
            Err(err) => {
                fail_all(&mut outcomes, batch, &err);
                return Ok(outcomes.finish(batch));
            }
        };
        note = Some("the playlist changed since the plan; removed against its new version".to_owned());
        groups.retain(|(id, actions)| {
            let now = counts.get(id).copied().unwrap_or(0);
            if now == 0 {
                actions.iter().for_each(|a| outcomes.confirm(a, Some("already gone from the playlist".into())));
                return false;
            }
            if now as usize > actions.len() {
                let err = ProviderError::Conflict {
                    provider: provider.clone(),
                    what: format!(
                        "playlist {playlist_id} changed: track {id} now occurs {now} times, {} planned; \
                         removing it would remove entries that were not planned",
                        actions.len()
                    ),
                };
                actions.iter().for_each(|a| outcomes.fail(a, &err));
                return false;
            }
            true
        });
    }
    let last = std::sync::Mutex::new(current);
    let (last, playlist) = (&last, playlist_id.as_str());
    send_in_chunks(&groups, PLAYLIST_BATCH, &mut outcomes, |ids| async move {
        let uris: Vec<String> = ids.iter().map(|id| format!("spotify:track:{id}")).collect();
        let from = last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let result = client.remove_playlist_items(auth, playlist, &uris, Some(&from)).await?;
        own.record(playlist, &from, &result.snapshot_id);
        *last.lock().unwrap_or_else(|e| e.into_inner()) = result.snapshot_id;
        Ok(())
    })
    .await?;
    if let Some(note) = note {
        for (_, actions) in &groups {
            for a in actions {
                if let Some(Outcome::Confirmed { note: n @ None }) = outcomes.by_action.get_mut(&a.id.0) {
                    *n = Some(note.clone());
                }
            }
        }
    }
    Ok(outcomes.finish(batch))
}

async fn insert_playlist_items(
    provider: &ProviderId,
    client: &SpotifyClient,
    auth: &AuthSession<'_>,
    batch: &Batch,
) -> Result<Vec<ActionOutcome>, ProviderError> {
    let endpoint = super::client::endpoints::PLAYLIST_ADD;
    let mut outcomes = Outcomes::new();
    let Some(playlist_id) = playlist_of(batch) else {
        fail_all(&mut outcomes, batch, &invalid(provider, endpoint, "the batch names no playlist".into()));
        return Ok(outcomes.finish(batch));
    };
    let mut items: Vec<(&Action, String, u32)> = Vec::new();
    for (action, id) in ids_of(provider, endpoint, batch, &mut outcomes) {
        match &action.target {
            Target::PlaylistItem { playlist_id: p, position, .. } if *p == playlist_id => {
                items.push((action, id, *position))
            }
            _ => outcomes.fail(action, &invalid(provider, endpoint, "the action belongs to another playlist".into())),
        }
    }
    if items.is_empty() {
        return Ok(outcomes.finish(batch));
    }
    items.sort_by_key(|(a, _, position)| (*position, a.id));

    // The playlist's length now, to clamp positions past its end.
    let mut length = match client.playlist_items(auth, &playlist_id, 0, 1).await {
        Ok(page) => page.total,
        Err(err) if stops_batch(&err) => return Err(err),
        Err(err) => {
            let err = match err {
                ProviderError::NotFound { provider, .. } => {
                    ProviderError::NotFound { provider, what: format!("playlist {playlist_id}") }
                }
                other => other,
            };
            fail_all(&mut outcomes, batch, &err);
            return Ok(outcomes.finish(batch));
        }
    };

    // Runs of consecutive positions, at most PLAYLIST_BATCH each.
    let mut runs: Vec<Vec<(&Action, String, u32)>> = Vec::new();
    for item in items {
        match runs.last_mut() {
            Some(run) if run.len() < PLAYLIST_BATCH && run.last().is_some_and(|(_, _, p)| p + 1 == item.2) => {
                run.push(item)
            }
            _ => runs.push(vec![item]),
        }
    }
    let mut stopped: Option<ProviderError> = None;
    for run in &runs {
        if let Some(err) = &stopped {
            run.iter().for_each(|(a, _, _)| outcomes.fail(a, err));
            continue;
        }
        let wanted = run[0].2;
        let at = wanted.min(length);
        let uris: Vec<String> = run.iter().map(|(_, id, _)| format!("spotify:track:{id}")).collect();
        match client.add_playlist_items(auth, &playlist_id, &uris, Some(at)).await {
            Ok(_) => {
                outcomes.applied_any = true;
                length += run.len() as u32;
                for (i, (action, _, position)) in run.iter().enumerate() {
                    let landed = at + i as u32;
                    let note = (landed != *position)
                        .then(|| format!("playlist changed: inserted at position {landed} instead of {position}"));
                    outcomes.confirm(action, note);
                }
            }
            Err(err) if stops_batch(&err) && !outcomes.applied_any => return Err(err),
            Err(err) if stops_batch(&err) => {
                run.iter().for_each(|(a, _, _)| outcomes.fail(a, &err));
                stopped = Some(err);
            }
            Err(err) if run.len() > 1 => {
                // A permanent refusal (an unknown track): insert one by one.
                tracing::info!(error = err.code(), items = run.len(), "insert refused; retrying item by item");
                for (action, id, position) in run {
                    let at = (*position).min(length);
                    match client
                        .add_playlist_items(auth, &playlist_id, &[format!("spotify:track:{id}")], Some(at))
                        .await
                    {
                        Ok(_) => {
                            outcomes.applied_any = true;
                            length += 1;
                            let note = (at != *position)
                                .then(|| format!("playlist changed: inserted at position {at} instead of {position}"));
                            outcomes.confirm(action, note);
                        }
                        Err(err) => outcomes.fail(action, &err),
                    }
                }
            }
            Err(err) => run.iter().for_each(|(a, _, _)| outcomes.fail(a, &err)),
        }
    }
    Ok(outcomes.finish(batch))
}
