//! Sending one planned [`Batch`] to YouTube, one call per action, with one
//! [`ActionOutcome`] per action.
//!
//! | action | call | quota |
//! |---|---|---|
//! | unlike track | `POST /videos/rate?id=…&rating=none` (204) | 50 |
//! | like track (rollback) | `POST /videos/rate?id=…&rating=like` (204) | 50 |
//! | unfollow artist | `DELETE /subscriptions?id={subscription id}` (204) | 50 |
//! | follow artist (rollback) | `POST /subscriptions` with `snippet.resourceId.channelId` | 50 |
//! | remove playlist item | `DELETE /playlistItems?id={playlist item id}` (204) | 50 |
//! | insert playlist item (rollback) | `POST /playlistItems` with `snippet.position` | 50 |
//!
//! Every write takes one item, so the capabilities say `max_batch` 1; a longer batch is
//! sent one call after another all the same.
//!
//! # Idempotence
//! - Removing a like of a video that no longer exists is confirmed (nothing is liked).
//! - A subscription id the service no longer knows is looked up again by channel
//!   (`subscriptions.list?forChannelId=`, 1 unit): a subscription made since (by a
//!   rollback) is removed, none means the artist is already unfollowed (confirmed). An
//!   action without a subscription id is resolved the same way.
//! - A playlist item is removed by its own id: one entry exactly, however the playlist
//!   changed since the plan (positions may have moved; no other entry is touched). An id
//!   the service no longer knows is an entry already removed (confirmed). An action
//!   without an item id is resolved by reading the playlist: the only entry of the video,
//!   or the one at the planned position; several others make it a `conflict`.
//! - Subscribing again to a channel already subscribed (`subscriptionDuplicate`) and
//!   liking a liked video are confirmed.
//!
//! # Inserts (rollback)
//! An entry goes back at its former position. When the playlist shrank meanwhile and the
//! position is past its end (`invalidPlaylistItemPosition`), it is appended and the
//! outcome says where it landed.
//!
//! # Failures
//! The batch fails as a whole (`Err`) only when nothing of it was applied and the error
//! is temporary (rate limit, quota spent, breaker open) or needs re-authorization; after
//! a first success, such an error fails the remaining actions one by one.

use dnp_core::{Action, ActionKind, ActionOutcome, Batch, Outcome, ProviderError, ProviderId, Target};

use super::client::{Rating, YouTubeClient};
use crate::http::AuthSession;

/// Whether an error stops the whole batch (when nothing was applied yet).
fn stops_batch(err: &ProviderError) -> bool {
    err.is_retryable() || matches!(err, ProviderError::NeedsReauth { .. })
}

fn invalid(provider: &ProviderId, endpoint: &str, detail: impl Into<String>) -> ProviderError {
    ProviderError::InvalidInput { provider: provider.clone(), endpoint: endpoint.to_owned(), detail: detail.into() }
}

/// Whether `err` is a 400 of the service with `reason` (the shared stack puts the reason
/// of Google's error body in the detail: `HTTP 400 subscriptionDuplicate: …`).
fn has_reason(err: &ProviderError, reason: &str) -> bool {
    matches!(err, ProviderError::InvalidInput { detail, .. } if detail.contains(reason))
}

/// One action's result: confirmed with an optional note, or failed.
type Done = Result<Option<String>, ProviderError>;

struct Apply<'a> {
    provider: &'a ProviderId,
    client: &'a YouTubeClient,
    auth: &'a AuthSession<'a>,
}

/// Sends `batch`; see the [module docs](self).
///
/// # Errors
/// Only when nothing was applied: rate limited, quota spent, breaker open, transient,
/// needs re-authorization, or `Unsupported` for kinds YouTube's Data API cannot do
/// (saved albums) or dnp does not offer here (ratings other than like).
pub(crate) async fn apply(
    provider: &ProviderId,
    client: &YouTubeClient,
    auth: &AuthSession<'_>,
    batch: &Batch,
) -> Result<Vec<ActionOutcome>, ProviderError> {
    match batch.kind {
        ActionKind::RemoveAlbum | ActionKind::SaveAlbum => {
            return Err(ProviderError::Unsupported {
                provider: provider.clone(),
                what: format!(
                    "{} (the YouTube Data API has no saved albums; see the manual checklist)",
                    batch.kind.as_str()
                ),
            });
        }
        ActionKind::DislikeTrack | ActionKind::ClearTrackRating => {
            return Err(ProviderError::Unsupported {
                provider: provider.clone(),
                what: format!("{} (dnp removes the like instead: videos.rate rating=none)", batch.kind.as_str()),
            });
        }
        _ => {}
    }
    let this = Apply { provider, client, auth };
    let mut outcomes = Vec::with_capacity(batch.actions.len());
    let mut applied_any = false;
    let mut stopped: Option<ProviderError> = None;
    for action in &batch.actions {
        if let Some(err) = &stopped {
            outcomes.push(ActionOutcome::failed(action.id, err));
            continue;
        }
        let result = if action.kind == batch.kind {
            this.one(action).await
        } else {
            Err(invalid(
                provider,
                "apply",
                format!("a {} action in a {} batch", action.kind.as_str(), batch.kind.as_str()),
            ))
        };
        match result {
            Ok(note) => {
                applied_any = true;
                outcomes.push(ActionOutcome { action: action.id, outcome: Outcome::Confirmed { note } });
            }
            Err(err) if stops_batch(&err) && !applied_any => return Err(err),
            Err(err) if stops_batch(&err) => {
                outcomes.push(ActionOutcome::failed(action.id, &err));
                stopped = Some(err);
            }
            Err(err) => outcomes.push(ActionOutcome::failed(action.id, &err)),
        }
    }
    Ok(outcomes)
}

impl Apply<'_> {
    async fn one(&self, action: &Action) -> Done {
        match (action.kind, &action.target) {
            (ActionKind::UnlikeTrack, Target::Track { track_id, .. }) => self.unlike(track_id).await,
            (ActionKind::LikeTrack, Target::Track { track_id, .. }) => {
                self.client.rate(self.auth, track_id, Rating::Like).await.map(|()| None)
            }
            (ActionKind::UnfollowArtist, Target::Artist { artist_id, entry_id }) => {
                self.unsubscribe(artist_id, entry_id.as_deref()).await
            }
            (ActionKind::FollowArtist, Target::Artist { artist_id, .. }) => self.subscribe(artist_id).await,
            (ActionKind::RemovePlaylistItem, Target::PlaylistItem { playlist_id, track_id, position, item_id, .. }) => {
                self.remove_item(playlist_id, track_id, *position, item_id.as_deref()).await
            }
            (ActionKind::InsertPlaylistItem, Target::PlaylistItem { playlist_id, track_id, position, .. }) => {
                self.insert_item(playlist_id, track_id, *position).await
            }
            (kind, _) => {
                Err(invalid(self.provider, "apply", format!("{} does not apply to this target", kind.as_str())))
            }
        }
    }

    async fn unlike(&self, video_id: &str) -> Done {
        match self.client.rate(self.auth, video_id, Rating::None).await {
            Ok(()) => Ok(None),
            Err(ProviderError::NotFound { .. }) => Ok(Some("the video no longer exists".into())),
            Err(err) => Err(err),
        }
    }

    async fn unsubscribe(&self, channel_id: &str, subscription_id: Option<&str>) -> Done {
        if let Some(id) = subscription_id {
            match self.client.delete_subscription(self.auth, id).await {
                Ok(()) => return Ok(None),
                Err(ProviderError::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        // No subscription id, or one the service no longer knows: look the channel up.
        match self.client.subscription_to(self.auth, channel_id).await? {
            None => Ok(Some("already unsubscribed".into())),
            Some(current) => match self.client.delete_subscription(self.auth, &current.id).await {
                Ok(()) => Ok(None),
                Err(ProviderError::NotFound { .. }) => Ok(Some("already unsubscribed".into())),
                Err(err) => Err(err),
            },
        }
    }

    async fn subscribe(&self, channel_id: &str) -> Done {
        match self.client.subscribe(self.auth, channel_id).await {
            Ok(_) => Ok(None),
            Err(err) if has_reason(&err, "subscriptionDuplicate") => Ok(Some("already subscribed".into())),
            Err(err) => Err(err),
        }
    }

    async fn remove_item(&self, playlist_id: &str, video_id: &str, position: u32, item_id: Option<&str>) -> Done {
        let item_id = match item_id {
            Some(id) => id.to_owned(),
            None => match self.find_item(playlist_id, video_id, position).await? {
                Some(id) => id,
                None => return Ok(Some("already gone from the playlist".into())),
            },
        };
        match self.client.delete_playlist_item(self.auth, &item_id).await {
            Ok(()) => Ok(None),
            Err(ProviderError::NotFound { .. }) => Ok(Some("already gone from the playlist".into())),
            Err(err) => Err(err),
        }
    }

    /// The id of the entry of `video_id` in the playlist: the only one, or the one at
    /// `position`. `None` when the video is not in it.
    async fn find_item(
        &self,
        playlist_id: &str,
        video_id: &str,
        position: u32,
    ) -> Result<Option<String>, ProviderError> {
        let mut matches: Vec<(u32, String)> = Vec::new();
        let mut token: Option<String> = None;
        let mut index = 0u32;
        loop {
            let page = self.client.playlist_items(self.auth, playlist_id, token.as_deref()).await?;
            for entry in &page.items {
                let at = entry.snippet.position.unwrap_or(index);
                index += 1;
                if entry.snippet.resource_id.video_id.as_deref() == Some(video_id) {
                    matches.push((at, entry.id.clone()));
                }
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() && !page.items.is_empty() => token = Some(next),
                _ => break,
            }
        }
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.pop().map(|(_, id)| id)),
            n => match matches.into_iter().find(|(at, _)| *at == position) {
                Some((_, id)) => Ok(Some(id)),
                None => Err(ProviderError::Conflict {
                    provider: self.provider.clone(),
                    what: format!(
                        "playlist {playlist_id} changed: video {video_id} occurs {n} times, none at position {position}; \
                         scan again to remove the right entry"
                    ),
                }),
            },
        }
    }

    async fn insert_item(&self, playlist_id: &str, video_id: &str, position: u32) -> Done {
        match self.client.insert_playlist_item(self.auth, playlist_id, video_id, Some(position)).await {
            Ok(_) => Ok(None),
            Err(err) if has_reason(&err, "invalidPlaylistItemPosition") => {
                // The playlist is shorter than it was: append.
                let inserted = self.client.insert_playlist_item(self.auth, playlist_id, video_id, None).await?;
                Ok(Some(match inserted.snippet.position {
                    Some(landed) => format!("playlist changed: inserted at position {landed} instead of {position}"),
                    None => format!("playlist changed: appended at the end instead of position {position}"),
                }))
            }
            Err(err) => Err(err),
        }
    }
}
