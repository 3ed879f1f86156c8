//! Sending one planned [`Batch`] to TIDAL, with one [`ActionOutcome`] per action.
//!
//! | action | endpoint | per call |
//! |---|---|---|
//! | unlike / like track | `DELETE` / `POST /userCollectionTracks/me/relationships/items` | 50 |
//! | remove / save album | `DELETE` / `POST /userCollectionAlbums/me/relationships/items` | 50 |
//! | unfollow / follow artist | `DELETE` / `POST /userCollectionArtists/me/relationships/items` | 50 |
//! | remove playlist item | `DELETE /playlists/{id}/relationships/items`, each entry by `meta.itemId` | 50 |
//! | insert playlist item | `POST /playlists/{id}/relationships/items` with `meta.positionBefore` | 50 |
//!
//! Every call carries an `Idempotency-Key` (see [`client`](super::client)).
//!
//! # Collections
//! Removing an item that is not in the collection succeeds (JSON:API: a removal of a
//! missing member is not an error), so re-applying a removal is confirmed. An add sends
//! `meta.addedAt` with the date the item had, so a rollback restores the collection's
//! order; the answer's `meta.skipped` tells items TIDAL does not know (`NOT_FOUND`, a
//! failed outcome) from items already there (`ALREADY_PRESENT`, confirmed).
//!
//! # Playlist removals
//! A removal names the entry by its `itemId`, recorded at scan time, so it removes exactly
//! the planned entry, never another occurrence of the same track, even when the playlist
//! changed since the plan; an entry already gone is confirmed. An action without an item
//! id (a plan made from a snapshot that lacks them) is resolved against the playlist as it
//! is now: the entry at the recorded position when it still holds the track, else the
//! first entry with the track not claimed by another action, else it is already gone.
//!
//! # Inserts (rollback)
//! The playlist's current entries are read first. Items are inserted in ascending position,
//! runs of consecutive positions in one call, each before the entry now at that position
//! (`meta.positionBefore` = its `itemId`; at the end when the position is past it), with
//! their former `addedAt`. So each returns to its former index when the playlist has not
//! changed since; a position past the end (it shrank meanwhile) is clamped and the outcome
//! says so. The new entries' item ids come back in the answer and are used for the next
//! run.
//!
//! # Failures
//! A batch fails as a whole (`Err`) only when nothing was applied and the failure is
//! temporary or needs re-authorization. A permanent refusal of a call carrying several
//! items is retried item by item, so each action gets its own outcome.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use dnp_core::{Action, ActionFailure, ActionKind, ActionOutcome, Batch, Outcome, ProviderError, ProviderId, Target};

use super::client::{Collection, MUTATION_BATCH, TidalClient, endpoints, is_tidal_id};
use super::model::AddDocument;
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

    fn fail_unset(&mut self, batch: &Batch, err: &ProviderError) {
        for action in &batch.actions {
            self.by_action.entry(action.id.0).or_insert_with(|| ActionOutcome::failed(action.id, err).outcome);
        }
    }

    fn finish(mut self, batch: &Batch) -> Vec<ActionOutcome> {
        batch
            .actions
            .iter()
            .map(|a| ActionOutcome {
                action: a.id,
                outcome: self.by_action.remove(&a.id.0).unwrap_or_else(|| {
                    Outcome::Failed(ActionFailure {
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

fn not_found(provider: &ProviderId, what: String) -> ProviderError {
    ProviderError::NotFound { provider: provider.clone(), what }
}

/// Sends `batch`; see the [module docs](self).
///
/// # Errors
/// Only when nothing was applied: rate limited, breaker open, transient, needs re-auth,
/// or `Unsupported` for kinds TIDAL cannot do (ratings).
pub(crate) async fn apply(
    provider: &ProviderId,
    client: &TidalClient,
    auth: &AuthSession<'_>,
    batch: &Batch,
) -> Result<Vec<ActionOutcome>, ProviderError> {
    let ctx = Ctx { provider, client, auth, batch };
    match batch.kind {
        ActionKind::UnlikeTrack => ctx.collection_remove(Collection::Tracks).await,
        ActionKind::RemoveAlbum => ctx.collection_remove(Collection::Albums).await,
        ActionKind::UnfollowArtist => ctx.collection_remove(Collection::Artists).await,
        ActionKind::LikeTrack => ctx.collection_add(Collection::Tracks).await,
        ActionKind::SaveAlbum => ctx.collection_add(Collection::Albums).await,
        ActionKind::FollowArtist => ctx.collection_add(Collection::Artists).await,
        ActionKind::RemovePlaylistItem => ctx.playlist_remove().await,
        ActionKind::InsertPlaylistItem => ctx.playlist_insert().await,
        ActionKind::DislikeTrack | ActionKind::ClearTrackRating => Err(ProviderError::Unsupported {
            provider: provider.clone(),
            what: format!("{} (TIDAL's API has no ratings)", batch.kind.as_str()),
        }),
    }
}

/// A playlist action with its target's track id, position, item id and date.
type PlaylistAction<'a> = (&'a Action, String, u32, Option<String>, Option<DateTime<Utc>>);

/// One item of a collection call: its id, the date to record, its actions.
struct Item<'a> {
    id: String,
    added_at: Option<DateTime<Utc>>,
    actions: Vec<&'a Action>,
}

struct Ctx<'a> {
    provider: &'a ProviderId,
    client: &'a TidalClient,
    auth: &'a AuthSession<'a>,
    batch: &'a Batch,
}

impl<'a> Ctx<'a> {
    /// The collection items of the batch, one per distinct id, in first-appearance order;
    /// actions whose target does not fit fail in `outcomes`.
    fn collection_items(&self, endpoint: &str, outcomes: &mut Outcomes) -> Vec<Item<'a>> {
        let mut items: Vec<Item<'a>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for action in &self.batch.actions {
            let found = match (action.kind == self.batch.kind, &action.target) {
                (true, Target::Track { track_id, added_at, .. })
                    if matches!(action.kind, ActionKind::UnlikeTrack | ActionKind::LikeTrack) =>
                {
                    Some((track_id, *added_at))
                }
                (true, Target::Album { album_id, added_at })
                    if matches!(action.kind, ActionKind::RemoveAlbum | ActionKind::SaveAlbum) =>
                {
                    Some((album_id, *added_at))
                }
                (true, Target::Artist { artist_id, .. })
                    if matches!(action.kind, ActionKind::UnfollowArtist | ActionKind::FollowArtist) =>
                {
                    Some((artist_id, None))
                }
                _ => None,
            };
            match found {
                Some((id, added_at)) if is_tidal_id(id) => match index.get(id) {
                    Some(&i) => items[i].actions.push(action),
                    None => {
                        index.insert(id.clone(), items.len());
                        items.push(Item { id: id.clone(), added_at, actions: vec![action] });
                    }
                },
                Some((id, _)) => outcomes.fail(
                    action,
                    &invalid(
                        self.provider,
                        endpoint,
                        format!("{:?} is not a TIDAL id", id.chars().take(64).collect::<String>()),
                    ),
                ),
                None => outcomes.fail(
                    action,
                    &invalid(
                        self.provider,
                        endpoint,
                        format!("{} does not apply to this target", action.kind.as_str()),
                    ),
                ),
            }
        }
        items
    }

    fn action_ids(items: &[Item<'_>]) -> Vec<u32> {
        items.iter().flat_map(|i| i.actions.iter().map(|a| a.id.0)).collect()
    }

    async fn collection_remove(&self, collection: Collection) -> Result<Vec<ActionOutcome>, ProviderError> {
        let mut outcomes = Outcomes::new();
        let items = self.collection_items(collection.remove_endpoint(), &mut outcomes);
        let chunks: Vec<&[Item<'a>]> = items.chunks(MUTATION_BATCH).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            let ids: Vec<String> = chunk.iter().map(|i| i.id.clone()).collect();
            match self.client.collection_remove(self.auth, collection, &ids, &Self::action_ids(chunk)).await {
                Ok(()) => {
                    outcomes.applied_any = true;
                    chunk.iter().flat_map(|i| &i.actions).for_each(|a| outcomes.confirm(a, None));
                }
                Err(err) if stops_batch(&err) => {
                    if !outcomes.applied_any {
                        return Err(err);
                    }
                    chunks[n..]
                        .iter()
                        .flat_map(|c| c.iter())
                        .flat_map(|i| &i.actions)
                        .for_each(|a| outcomes.fail(a, &err));
                    return Ok(outcomes.finish(self.batch));
                }
                Err(err) if chunk.len() > 1 => {
                    tracing::info!(error = err.code(), items = chunk.len(), "removal refused; retrying item by item");
                    for item in chunk.iter() {
                        let result = self
                            .client
                            .collection_remove(
                                self.auth,
                                collection,
                                std::slice::from_ref(&item.id),
                                &Self::action_ids(std::slice::from_ref(item)),
                            )
                            .await;
                        match result {
                            Ok(()) => {
                                outcomes.applied_any = true;
                                item.actions.iter().for_each(|a| outcomes.confirm(a, None));
                            }
                            Err(err) if stops_batch(&err) && !outcomes.applied_any => return Err(err),
                            Err(err) => item.actions.iter().for_each(|a| outcomes.fail(a, &err)),
                        }
                    }
                }
                Err(err) => chunk.iter().flat_map(|i| &i.actions).for_each(|a| outcomes.fail(a, &err)),
            }
        }
        Ok(outcomes.finish(self.batch))
    }

    /// Records the outcome of each item of an answered add.
    fn record_add(
        &self,
        collection: Collection,
        chunk: &[Item<'_>],
        answer: Option<&AddDocument>,
        outcomes: &mut Outcomes,
    ) {
        let Some(answer) = answer else {
            let note = "added; TIDAL's answer could not be read".to_owned();
            chunk.iter().flat_map(|i| &i.actions).for_each(|a| outcomes.confirm(a, Some(note.clone())));
            return;
        };
        let skipped: HashMap<&str, &str> =
            answer.meta.skipped.iter().map(|s| (s.id.as_str(), s.reason.as_str())).collect();
        for item in chunk {
            match skipped.get(item.id.as_str()) {
                Some(&"NOT_FOUND") => {
                    let err = not_found(self.provider, format!("{} {}", collection.item_type(), item.id));
                    item.actions.iter().for_each(|a| outcomes.fail(a, &err));
                }
                Some(&"ALREADY_PRESENT") => {
                    item.actions.iter().for_each(|a| outcomes.confirm(a, Some("already in the collection".into())))
                }
                Some(other) => {
                    let err = invalid(self.provider, collection.add_endpoint(), format!("skipped by TIDAL: {other}"));
                    item.actions.iter().for_each(|a| outcomes.fail(a, &err));
                }
                None => item.actions.iter().for_each(|a| outcomes.confirm(a, None)),
            }
        }
    }

    async fn collection_add(&self, collection: Collection) -> Result<Vec<ActionOutcome>, ProviderError> {
        let mut outcomes = Outcomes::new();
        let items = self.collection_items(collection.add_endpoint(), &mut outcomes);
        let chunks: Vec<&[Item<'a>]> = items.chunks(MUTATION_BATCH).collect();
        let payload = |chunk: &[Item<'_>]| chunk.iter().map(|i| (i.id.clone(), i.added_at)).collect::<Vec<_>>();
        for (n, chunk) in chunks.iter().enumerate() {
            match self.client.collection_add(self.auth, collection, &payload(chunk), &Self::action_ids(chunk)).await {
                Ok(answer) => {
                    outcomes.applied_any = true;
                    self.record_add(collection, chunk, answer.as_ref(), &mut outcomes);
                }
                Err(err) if stops_batch(&err) => {
                    if !outcomes.applied_any {
                        return Err(err);
                    }
                    chunks[n..]
                        .iter()
                        .flat_map(|c| c.iter())
                        .flat_map(|i| &i.actions)
                        .for_each(|a| outcomes.fail(a, &err));
                    return Ok(outcomes.finish(self.batch));
                }
                Err(err) if chunk.len() > 1 => {
                    tracing::info!(error = err.code(), items = chunk.len(), "add refused; retrying item by item");
                    for item in chunk.iter() {
                        let one = std::slice::from_ref(item);
                        match self
                            .client
                            .collection_add(self.auth, collection, &payload(one), &Self::action_ids(one))
                            .await
                        {
                            Ok(answer) => {
                                outcomes.applied_any = true;
                                self.record_add(collection, one, answer.as_ref(), &mut outcomes);
                            }
                            Err(err) if stops_batch(&err) && !outcomes.applied_any => return Err(err),
                            Err(err) => item.actions.iter().for_each(|a| outcomes.fail(a, &err)),
                        }
                    }
                }
                Err(err) => chunk.iter().flat_map(|i| &i.actions).for_each(|a| outcomes.fail(a, &err)),
            }
        }
        Ok(outcomes.finish(self.batch))
    }

    /// The playlist a batch of playlist actions is about.
    fn playlist_id(&self) -> Option<String> {
        self.batch
            .playlist_id
            .clone()
            .or_else(|| self.batch.actions.iter().find_map(|a| a.target.playlist_id().map(str::to_owned)))
    }

    /// The playlist's entries now: (item id, resource type, resource id), in order.
    async fn entries(&self, playlist_id: &str) -> Result<Vec<(String, String, String)>, ProviderError> {
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = HashSet::new();
        loop {
            let page = self.client.playlist_items_page(self.auth, playlist_id, cursor.as_deref(), false).await?;
            for entry in &page.data {
                let item_id = entry.item_id().ok_or_else(|| ProviderError::Protocol {
                    provider: self.provider.clone(),
                    endpoint: endpoints::PLAYLIST_ITEMS.into(),
                    detail: format!("entry {} of playlist {playlist_id} has no meta.itemId", entry.id),
                })?;
                entries.push((item_id.to_owned(), entry.kind.clone(), entry.id.clone()));
            }
            let next = page.links.next_cursor().map_err(|detail| ProviderError::Protocol {
                provider: self.provider.clone(),
                endpoint: endpoints::PLAYLIST_ITEMS.into(),
                detail,
            })?;
            match next {
                Some(next) if seen.insert(next.clone()) => cursor = Some(next),
                Some(_) => {
                    return Err(ProviderError::Protocol {
                        provider: self.provider.clone(),
                        endpoint: endpoints::PLAYLIST_ITEMS.into(),
                        detail: "the same page cursor came back twice (a paging loop)".into(),
                    });
                }
                None => return Ok(entries),
            }
        }
    }

    /// A failure of reading or changing the playlist as a whole, as the actions' outcome.
    fn playlist_failure(&self, playlist_id: &str, err: ProviderError) -> ProviderError {
        match err {
            ProviderError::NotFound { provider, .. } => {
                ProviderError::NotFound { provider, what: format!("playlist {playlist_id}") }
            }
            other => other,
        }
    }

    /// The batch's playlist actions that fit, with (track id, position, item id, added at).
    fn playlist_actions(&self, endpoint: &str, playlist_id: &str, outcomes: &mut Outcomes) -> Vec<PlaylistAction<'a>> {
        let mut found = Vec::new();
        for action in &self.batch.actions {
            match &action.target {
                Target::PlaylistItem { playlist_id: p, track_id, position, item_id, added_at, .. }
                    if action.kind == self.batch.kind && p == playlist_id =>
                {
                    if !is_tidal_id(track_id) || item_id.as_deref().is_some_and(|i| !is_tidal_id(i)) {
                        outcomes.fail(
                            action,
                            &invalid(self.provider, endpoint, "the track or item id is not a TIDAL id".into()),
                        );
                    } else {
                        found.push((action, track_id.clone(), *position, item_id.clone(), *added_at));
                    }
                }
                Target::PlaylistItem { .. } if action.kind == self.batch.kind => outcomes
                    .fail(action, &invalid(self.provider, endpoint, "the action belongs to another playlist".into())),
                _ => outcomes.fail(
                    action,
                    &invalid(
                        self.provider,
                        endpoint,
                        format!("{} does not apply to this target", action.kind.as_str()),
                    ),
                ),
            }
        }
        found
    }

    async fn playlist_remove(&self) -> Result<Vec<ActionOutcome>, ProviderError> {
        let endpoint = endpoints::PLAYLIST_ITEMS_REMOVE;
        let mut outcomes = Outcomes::new();
        let Some(playlist_id) = self.playlist_id().filter(|p| is_tidal_id(p)) else {
            outcomes
                .fail_unset(self.batch, &invalid(self.provider, endpoint, "the batch names no valid playlist".into()));
            return Ok(outcomes.finish(self.batch));
        };
        let actions = self.playlist_actions(endpoint, &playlist_id, &mut outcomes);
        // (action, track id, item id) to send.
        let mut entries: Vec<(&Action, String, String)> = Vec::new();
        let unresolved: Vec<_> = actions.iter().filter(|a| a.3.is_none()).collect();
        if !unresolved.is_empty() {
            let now = match self.entries(&playlist_id).await {
                Ok(now) => now,
                Err(err) if stops_batch(&err) => return Err(err),
                Err(err) => {
                    outcomes.fail_unset(self.batch, &self.playlist_failure(&playlist_id, err));
                    return Ok(outcomes.finish(self.batch));
                }
            };
            let mut claimed: HashSet<&str> = actions.iter().filter_map(|a| a.3.as_deref()).collect();
            for (action, track, position, _, _) in unresolved {
                let at_position = now
                    .get(*position as usize)
                    .filter(|(item, kind, id)| kind == "tracks" && id == track && !claimed.contains(item.as_str()));
                let chosen = at_position.or_else(|| {
                    now.iter()
                        .find(|(item, kind, id)| kind == "tracks" && id == track && !claimed.contains(item.as_str()))
                });
                match chosen {
                    Some((item, _, _)) => {
                        claimed.insert(item);
                        entries.push((action, track.clone(), item.clone()));
                    }
                    None => outcomes.confirm(action, Some("already gone from the playlist".into())),
                }
            }
        }
        entries.extend(
            actions.iter().filter_map(|(a, track, _, item, _)| item.as_ref().map(|i| (*a, track.clone(), i.clone()))),
        );
        entries.sort_by_key(|(a, _, _)| a.id);
        let chunks: Vec<&[(&Action, String, String)]> = entries.chunks(MUTATION_BATCH).collect();
        let send = |chunk: &[(&Action, String, String)]| {
            let items: Vec<(String, String)> = chunk.iter().map(|(_, t, i)| (t.clone(), i.clone())).collect();
            let ids: Vec<u32> = chunk.iter().map(|(a, _, _)| a.id.0).collect();
            let playlist = playlist_id.clone();
            async move { self.client.playlist_remove(self.auth, &playlist, &items, &ids).await }
        };
        for (n, chunk) in chunks.iter().enumerate() {
            match send(chunk).await {
                Ok(()) => {
                    outcomes.applied_any = true;
                    chunk.iter().for_each(|(a, _, _)| outcomes.confirm(a, None));
                }
                Err(err) if stops_batch(&err) => {
                    if !outcomes.applied_any {
                        return Err(err);
                    }
                    chunks[n..].iter().flat_map(|c| c.iter()).for_each(|(a, _, _)| outcomes.fail(a, &err));
                    return Ok(outcomes.finish(self.batch));
                }
                Err(err @ ProviderError::NotFound { .. }) => {
                    let err = self.playlist_failure(&playlist_id, err);
                    chunks[n..].iter().flat_map(|c| c.iter()).for_each(|(a, _, _)| outcomes.fail(a, &err));
                    return Ok(outcomes.finish(self.batch));
                }
                Err(err) if chunk.len() > 1 => {
                    tracing::info!(error = err.code(), items = chunk.len(), "removal refused; retrying item by item");
                    for entry in chunk.iter() {
                        match send(std::slice::from_ref(entry)).await {
                            Ok(()) => {
                                outcomes.applied_any = true;
                                outcomes.confirm(entry.0, None);
                            }
                            Err(err) if stops_batch(&err) && !outcomes.applied_any => return Err(err),
                            Err(err) => outcomes.fail(entry.0, &err),
                        }
                    }
                }
                Err(err) => chunk.iter().for_each(|(a, _, _)| outcomes.fail(a, &err)),
            }
        }
        Ok(outcomes.finish(self.batch))
    }

    async fn playlist_insert(&self) -> Result<Vec<ActionOutcome>, ProviderError> {
        let endpoint = endpoints::PLAYLIST_ITEMS_ADD;
        let mut outcomes = Outcomes::new();
        let Some(playlist_id) = self.playlist_id().filter(|p| is_tidal_id(p)) else {
            outcomes
                .fail_unset(self.batch, &invalid(self.provider, endpoint, "the batch names no valid playlist".into()));
            return Ok(outcomes.finish(self.batch));
        };
        let mut items = self.playlist_actions(endpoint, &playlist_id, &mut outcomes);
        if items.is_empty() {
            return Ok(outcomes.finish(self.batch));
        }
        items.sort_by_key(|(a, _, position, _, _)| (*position, a.id));
        // The entries' item ids now, kept up to date as runs are inserted.
        let mut current = Entries {
            ids: match self.entries(&playlist_id).await {
                Ok(entries) => entries.into_iter().map(|(item, _, _)| item).collect(),
                Err(err) if stops_batch(&err) => return Err(err),
                Err(err) => {
                    outcomes.fail_unset(self.batch, &self.playlist_failure(&playlist_id, err));
                    return Ok(outcomes.finish(self.batch));
                }
            },
            stale: false,
        };
        // Runs of consecutive positions, at most MUTATION_BATCH each.
        type Run<'r> = Vec<PlaylistAction<'r>>;
        let mut runs: Vec<Run<'a>> = Vec::new();
        for item in items {
            match runs.last_mut() {
                Some(run) if run.len() < MUTATION_BATCH && run.last().is_some_and(|last| last.2 + 1 == item.2) => {
                    run.push(item)
                }
                _ => runs.push(vec![item]),
            }
        }
        let mut stopped: Option<ProviderError> = None;
        for run in &runs {
            if let Some(err) = &stopped {
                run.iter().for_each(|(a, ..)| outcomes.fail(a, err));
                continue;
            }
            if current.stale {
                // An answer did not list its new entries: read the playlist again.
                match self.entries(&playlist_id).await {
                    Ok(entries) => {
                        current = Entries { ids: entries.into_iter().map(|(i, _, _)| i).collect(), stale: false }
                    }
                    Err(err) => {
                        let err = self.playlist_failure(&playlist_id, err);
                        run.iter().for_each(|(a, ..)| outcomes.fail(a, &err));
                        if stops_batch(&err) {
                            stopped = Some(err);
                        }
                        continue;
                    }
                }
            }
            match self.insert_run(&playlist_id, run, &mut current, &mut outcomes).await {
                Ok(()) => {}
                Err(err) if stops_batch(&err) && !outcomes.applied_any => return Err(err),
                Err(err) if stops_batch(&err) => {
                    run.iter().for_each(|(a, ..)| outcomes.fail(a, &err));
                    stopped = Some(err);
                }
                Err(err @ ProviderError::NotFound { .. }) => {
                    let err = self.playlist_failure(&playlist_id, err);
                    run.iter().for_each(|(a, ..)| outcomes.fail(a, &err));
                }
                Err(err) if run.len() > 1 => {
                    // A permanent refusal: insert one by one.
                    tracing::info!(error = err.code(), items = run.len(), "insert refused; retrying item by item");
                    for item in run {
                        let one = vec![item.clone()];
                        match self.insert_run(&playlist_id, &one, &mut current, &mut outcomes).await {
                            Ok(()) => {}
                            Err(err) => outcomes.fail(item.0, &err),
                        }
                    }
                }
                Err(err) => run.iter().for_each(|(a, ..)| outcomes.fail(a, &err)),
            }
        }
        Ok(outcomes.finish(self.batch))
    }

    /// Inserts one run of consecutive positions before the entry now at its first position.
    /// `Err` only when the call failed (nothing inserted).
    async fn insert_run(
        &self,
        playlist_id: &str,
        run: &[PlaylistAction<'_>],
        current: &mut Entries,
        outcomes: &mut Outcomes,
    ) -> Result<(), ProviderError> {
        let wanted = run[0].2;
        let at = (wanted as usize).min(current.ids.len());
        let before = current.ids.get(at).cloned();
        let tracks: Vec<(String, Option<DateTime<Utc>>)> = run.iter().map(|(_, t, _, _, d)| (t.clone(), *d)).collect();
        let ids: Vec<u32> = run.iter().map(|(a, ..)| a.id.0).collect();
        let answer = self.client.playlist_add(self.auth, playlist_id, &tracks, before.as_deref(), &ids).await?;
        outcomes.applied_any = true;
        let Some(answer) = answer else {
            let note = "inserted; TIDAL's answer could not be read".to_owned();
            run.iter().for_each(|(a, ..)| outcomes.confirm(a, Some(note.clone())));
            current.stale = true;
            return Ok(());
        };
        let mut not_found: HashMap<&str, usize> = HashMap::new();
        for s in answer.meta.skipped.iter().filter(|s| s.reason == "NOT_FOUND") {
            *not_found.entry(s.id.as_str()).or_default() += 1;
        }
        let mut added = answer.data.iter();
        let mut landed = at;
        let mut new_ids = Vec::new();
        for (action, track, position, _, _) in run {
            if let Some(n) = not_found.get_mut(track.as_str()).filter(|n| **n > 0) {
                *n -= 1;
                outcomes.fail(action, &not_found_err(self.provider, track));
                continue;
            }
            match added.next().and_then(|r| r.item_id()) {
                Some(item) => new_ids.push(item.to_owned()),
                // Inserted, but the answer does not say as what: read the playlist again
                // before the next run.
                None => current.stale = true,
            }
            let note = (landed != *position as usize)
                .then(|| format!("playlist changed: inserted at position {landed} instead of {position}"));
            outcomes.confirm(action, note);
            landed += 1;
        }
        if !current.stale {
            current.ids.splice(at..at, new_ids);
        }
        Ok(())
    }
}

/// The playlist's entries (item ids in order) as the adapter knows them.
struct Entries {
    ids: Vec<String>,
    /// An answer did not list its new entries: `ids` must be read again.
    stale: bool,
}

fn not_found_err(provider: &ProviderId, track: &str) -> ProviderError {
    not_found(provider, format!("track {track}"))
}
