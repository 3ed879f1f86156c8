//! Sending one planned [`Batch`] to Apple Music, with one [`ActionOutcome`] per action.
//!
//! | action | endpoint | per call | support |
//! |---|---|---|---|
//! | dislike track | `PUT /v1/me/ratings/songs/{catalogId}` `{"type":"rating","attributes":{"value":-1}}` | 1 | supported |
//! | clear track rating | `DELETE /v1/me/ratings/songs/{catalogId}` | 1 | supported |
//! | like track | `POST /v1/me/library?ids[songs]=…` | 100 | supported (catalog songs only) |
//! | save album | `POST /v1/me/library?ids[albums]=…` | 100 | supported |
//! | insert playlist item | `POST /v1/me/library/playlists/{id}/tracks` | 100 | limited: appended at the end |
//! | unlike track, remove album, unfollow artist, remove playlist item | none documented | - | unsupported |
//!
//! A song known only by its library id (an upload) is rated through
//! `/v1/me/ratings/library-songs/{id}`.
//!
//! # Failures
//! A batch fails as a whole (`Err`) only when nothing was applied and the failure is
//! temporary or needs re-authorization; otherwise each action gets its own outcome.

use std::collections::BTreeMap;

use dnp_core::{Action, ActionKind, ActionOutcome, Batch, Outcome, ProviderError, ProviderId, Target};
use reqwest::Method;

use super::client::{AppleMusicClient, LIBRARY_ADD_BATCH, PLAYLIST_ADD_BATCH, UserSession, endpoints};
use super::model::is_library_id;
use crate::http::ApiRequest;

struct Outcomes {
    by_action: BTreeMap<u32, Outcome>,
    applied_any: bool,
}

impl Outcomes {
    fn confirm(&mut self, action: &Action, note: Option<String>) {
        self.applied_any = true;
        self.by_action.insert(action.id.0, Outcome::Confirmed { note });
    }

    fn fail(&mut self, action: &Action, err: &ProviderError) {
        self.by_action.insert(action.id.0, ActionOutcome::failed(action.id, err).outcome);
    }

    /// Records `err` for `actions`, or returns it when it must stop the whole batch.
    fn fail_all<'a>(
        &mut self,
        actions: impl IntoIterator<Item = &'a Action>,
        err: ProviderError,
    ) -> Result<(), ProviderError> {
        if !self.applied_any && (err.is_retryable() || matches!(err, ProviderError::NeedsReauth { .. })) {
            return Err(err);
        }
        actions.into_iter().for_each(|a| self.fail(a, &err));
        Ok(())
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

fn invalid(provider: &ProviderId, endpoint: &str, detail: impl Into<String>) -> ProviderError {
    ProviderError::InvalidInput { provider: provider.clone(), endpoint: endpoint.to_owned(), detail: detail.into() }
}

/// Why Apple Music cannot do `kind`, or `None` when it can.
pub(crate) fn unsupported_reason(kind: ActionKind) -> Option<&'static str> {
    match kind {
        ActionKind::UnlikeTrack => Some("Apple Music's API documents no removal of library songs"),
        ActionKind::RemoveAlbum => Some("Apple Music's API documents no removal of library albums"),
        ActionKind::UnfollowArtist | ActionKind::FollowArtist => {
            Some("Apple Music has no artist follows: library artists come from the library's songs and albums")
        }
        ActionKind::RemovePlaylistItem => Some(
            "Apple Music's API documents no removal of playlist tracks (an undocumented endpoint exists; dnp does \
             not rely on it, and could not put a removed track back at its position)",
        ),
        _ => None,
    }
}

/// Sends `batch`; see the [module docs](self).
///
/// # Errors
/// Only when nothing was applied: rate limited, breaker open, transient, needs re-auth,
/// or `Unsupported` for kinds Apple Music cannot do.
pub(crate) async fn apply(
    provider: &ProviderId,
    client: &AppleMusicClient,
    session: &UserSession<'_>,
    batch: &Batch,
) -> Result<Vec<ActionOutcome>, ProviderError> {
    if let Some(reason) = unsupported_reason(batch.kind) {
        return Err(ProviderError::Unsupported {
            provider: provider.clone(),
            what: format!("{} ({reason})", batch.kind.as_str()),
        });
    }
    let mut outcomes = Outcomes { by_action: BTreeMap::new(), applied_any: false };
    match batch.kind {
        ActionKind::DislikeTrack | ActionKind::ClearTrackRating => {
            ratings(provider, client, session, batch, &mut outcomes).await?
        }
        ActionKind::LikeTrack | ActionKind::SaveAlbum => {
            library_add(provider, client, session, batch, &mut outcomes).await?
        }
        ActionKind::InsertPlaylistItem => append(provider, client, session, batch, &mut outcomes).await?,
        _ => {}
    }
    Ok(outcomes.finish(batch))
}

async fn ratings(
    provider: &ProviderId,
    client: &AppleMusicClient,
    session: &UserSession<'_>,
    batch: &Batch,
    outcomes: &mut Outcomes,
) -> Result<(), ProviderError> {
    let dislike = batch.kind == ActionKind::DislikeTrack;
    let endpoint = if dislike { endpoints::RATE } else { endpoints::UNRATE };
    for action in &batch.actions {
        let Target::Track { track_id, .. } = &action.target else {
            outcomes.fail(action, &invalid(provider, endpoint, format!("{} needs a track", action.kind.as_str())));
            continue;
        };
        if action.kind != batch.kind {
            outcomes.fail(action, &invalid(provider, endpoint, "an action of another kind in the batch"));
            continue;
        }
        let result = if dislike {
            client.dislike(session, track_id).await
        } else {
            client.clear_rating(session, track_id).await
        };
        match result {
            Ok(()) => outcomes.confirm(action, None),
            // Clearing a rating that is not there leaves the wanted state.
            Err(ProviderError::NotFound { .. }) if !dislike => outcomes.confirm(action, None),
            Err(err) => outcomes.fail_all([action], err)?,
        }
    }
    Ok(())
}

async fn library_add(
    provider: &ProviderId,
    client: &AppleMusicClient,
    session: &UserSession<'_>,
    batch: &Batch,
    outcomes: &mut Outcomes,
) -> Result<(), ProviderError> {
    let (param, endpoint) = if batch.kind == ActionKind::LikeTrack {
        ("ids[songs]", endpoints::LIBRARY_ADD)
    } else {
        ("ids[albums]", endpoints::LIBRARY_ADD)
    };
    let mut valid: Vec<(&Action, &String)> = Vec::new();
    for action in &batch.actions {
        let id = match (&action.target, action.kind == batch.kind) {
            (Target::Track { track_id, .. }, true) if batch.kind == ActionKind::LikeTrack => track_id,
            (Target::Album { album_id, .. }, true) if batch.kind == ActionKind::SaveAlbum => album_id,
            _ => {
                outcomes.fail(action, &invalid(provider, endpoint, "the target does not fit the action"));
                continue;
            }
        };
        if is_library_id(id) {
            // An upload has no catalog id: the API cannot add it back.
            outcomes.fail(action, &invalid(provider, endpoint, format!("{id} is not in the Apple Music catalog")));
        } else {
            valid.push((action, id));
        }
    }
    for chunk in valid.chunks(LIBRARY_ADD_BATCH) {
        let ids: Vec<String> = chunk.iter().map(|(_, id)| (*id).clone()).collect();
        let request = ApiRequest::new(Method::POST, endpoint, "/v1/me/library").query(param, ids.join(","));
        match client.send(session, &request).await {
            Ok(_) => chunk.iter().for_each(|(a, _)| outcomes.confirm(a, None)),
            Err(err) if chunk.len() > 1 && !err.is_retryable() && !matches!(err, ProviderError::NeedsReauth { .. }) => {
                // One unknown id refuses the call: find it item by item.
                for (action, id) in chunk {
                    let single = ApiRequest::new(Method::POST, endpoint, "/v1/me/library").query(param, id.as_str());
                    match client.send(session, &single).await {
                        Ok(_) => outcomes.confirm(action, None),
                        Err(err) => outcomes.fail_all([*action], err)?,
                    }
                }
            }
            Err(err) => outcomes.fail_all(chunk.iter().map(|(a, _)| *a), err)?,
        }
    }
    Ok(())
}

async fn append(
    provider: &ProviderId,
    client: &AppleMusicClient,
    session: &UserSession<'_>,
    batch: &Batch,
    outcomes: &mut Outcomes,
) -> Result<(), ProviderError> {
    let mut by_playlist: BTreeMap<&str, Vec<(&Action, &str, u32)>> = BTreeMap::new();
    for action in &batch.actions {
        match &action.target {
            Target::PlaylistItem { playlist_id, track_id, position, .. } if action.kind == batch.kind => {
                by_playlist.entry(playlist_id.as_str()).or_default().push((action, track_id.as_str(), *position));
            }
            _ => {
                outcomes.fail(action, &invalid(provider, endpoints::PLAYLIST_ADD, "the target is not a playlist item"))
            }
        }
    }
    for (playlist_id, mut items) in by_playlist {
        items.sort_by_key(|(a, _, position)| (*position, a.id));
        for chunk in items.chunks(PLAYLIST_ADD_BATCH) {
            let ids: Vec<String> = chunk.iter().map(|(_, id, _)| (*id).to_owned()).collect();
            match client.append_to_playlist(session, playlist_id, &ids).await {
                Ok(()) => {
                    for (action, _, position) in chunk {
                        let note = format!(
                            "appended at the end of the playlist: Apple Music's API cannot insert at position {position}"
                        );
                        outcomes.confirm(action, Some(note));
                    }
                }
                Err(err) => outcomes.fail_all(chunk.iter().map(|(a, _, _)| *a), err)?,
            }
        }
    }
    Ok(())
}
