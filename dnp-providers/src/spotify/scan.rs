//! The library scan: liked tracks, saved albums, followed artists, and the user's
//! playlists with their items.
//!
//! # Paging
//! Every list is read 50 items a page. Offset-paged lists (liked tracks, saved albums,
//! playlists, playlist items) are read concurrently once their total is known: the first
//! page gives it, or, for a playlist's items, the playlist list does (so a playlist's
//! items need no sequential first page). Followed artists are cursor-paged and read one
//! page after another. All page requests of one scan share a limit of
//! [`HttpConfig::concurrency`](crate::http::HttpConfig::concurrency) in flight, under the
//! HTTP stack's rate limits, so the number of requests is the minimal page count:
//!
//! `1 (/me) + max(1, ⌈liked/50⌉) + max(1, ⌈albums/50⌉) + max(1, ⌈followed/50⌉)
//!  + max(1, ⌈playlists/50⌉) + Σ ⌈items/50⌉ over editable playlists`.
//!
//! When a page reports a different total than the first (the list changed during the
//! scan), that list is read again one page after another.
//!
//! # Playlists
//! A playlist is `owned` when its owner is the current user and `editable` when owned or
//! collaborative. Spotify refuses (403) to list the items of other playlists, so those
//! are listed without items; a playlist whose items are refused all the same is listed
//! as not editable, and one deleted during the scan (404) is left out. Entries that are not Spotify tracks (episodes, local files,
//! items no longer available) are left out, but every entry keeps its real position.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use dnp_core::{
    Album, Artist, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist, PlaylistItem, Progress, ProgressSink,
    ProviderError, ProviderId, SavedAlbum,
};
use futures::future::try_join_all;
use tokio::sync::Semaphore;

use super::client::{PAGE_SIZE, SpotifyClient};
use super::model::{Paging, PlaylistTrackObject, SimplifiedPlaylistObject, credits};
use crate::http::AuthSession;

/// Counts pages for progress reports.
struct Tracker<'a> {
    sink: &'a dyn ProgressSink,
    done: AtomicU64,
    known: AtomicU64,
}

impl Tracker<'_> {
    fn expect(&self, pages: usize) {
        self.known.fetch_add(pages as u64, Ordering::Relaxed);
    }

    fn page_done(&self, section: &str) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let known = self.known.load(Ordering::Relaxed).max(done);
        self.sink.report(Progress {
            done,
            total: Some(known),
            message: format!("spotify: {section} (page {done} of {known} known so far)"),
        });
    }
}

/// One scan in progress.
struct Scan<'a> {
    client: &'a SpotifyClient,
    auth: &'a AuthSession<'a>,
    gate: Semaphore,
    tracker: Tracker<'a>,
}

impl Scan<'_> {
    /// Runs `request` under the scan's concurrency limit and counts it as a page.
    async fn page<T>(
        &self,
        section: &str,
        request: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let result = {
            // The semaphore is never closed.
            let _permit = self.gate.acquire().await.ok();
            request.await
        };
        if result.is_ok() {
            self.tracker.page_done(section);
        }
        result
    }

    /// Every item of an offset-paged list whose first page is `first`: the other pages
    /// concurrently, or one after another when the list changed while being read.
    async fn rest_of<T, F, Fut>(
        &self,
        section: &str,
        first: Paging<T>,
        fetch: F,
    ) -> Result<Vec<(u32, T)>, ProviderError>
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = Result<Paging<T>, ProviderError>>,
    {
        let total = first.total;
        let offsets: Vec<u32> = (1..).map(|i| i * PAGE_SIZE).take_while(|&o| o < total).collect();
        self.tracker.expect(offsets.len());
        let pages = try_join_all(offsets.iter().map(|&offset| self.page(section, fetch(offset)))).await?;
        let consistent = first.items.len() as u32 == first.total.min(PAGE_SIZE)
            && pages
                .iter()
                .zip(&offsets)
                .all(|(p, &o)| p.total == total && p.items.len() as u32 == (total - o).min(PAGE_SIZE));
        if !consistent {
            tracing::info!(section, "list changed during the scan; reading it again page by page");
            return self.sequential(section, 0, fetch).await;
        }
        let mut items: Vec<(u32, T)> = Vec::with_capacity(total as usize);
        items.extend(first.items.into_iter().enumerate().map(|(i, t)| (i as u32, t)));
        for (page, offset) in pages.into_iter().zip(offsets) {
            items.extend(page.items.into_iter().enumerate().map(|(i, t)| (offset + i as u32, t)));
        }
        Ok(items)
    }

    /// Every item of an offset-paged list whose total is already known (a playlist's
    /// items): all pages concurrently.
    async fn known_total<T, F, Fut>(&self, section: &str, total: u32, fetch: F) -> Result<Vec<(u32, T)>, ProviderError>
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = Result<Paging<T>, ProviderError>>,
    {
        let offsets: Vec<u32> = (0..).map(|i| i * PAGE_SIZE).take_while(|&o| o < total).collect();
        self.tracker.expect(offsets.len());
        let pages = try_join_all(offsets.iter().map(|&offset| self.page(section, fetch(offset)))).await?;
        let consistent = pages
            .iter()
            .zip(&offsets)
            .all(|(p, &o)| p.total == total && p.items.len() as u32 == (total - o).min(PAGE_SIZE));
        if !consistent {
            tracing::info!(section, "playlist changed during the scan; reading it again page by page");
            return self.sequential(section, 0, fetch).await;
        }
        let mut items = Vec::with_capacity(total as usize);
        for (page, offset) in pages.into_iter().zip(offsets) {
            items.extend(page.items.into_iter().enumerate().map(|(i, t)| (offset + i as u32, t)));
        }
        Ok(items)
    }

    /// Reads a list one page after another from `offset`, following `next`.
    async fn sequential<T, F, Fut>(
        &self,
        section: &str,
        mut offset: u32,
        fetch: F,
    ) -> Result<Vec<(u32, T)>, ProviderError>
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = Result<Paging<T>, ProviderError>>,
    {
        let mut items = Vec::new();
        loop {
            self.tracker.expect(1);
            let page = self.page(section, fetch(offset)).await?;
            let count = page.items.len() as u32;
            items.extend(page.items.into_iter().enumerate().map(|(i, t)| (offset + i as u32, t)));
            offset += count;
            if page.next.is_none() || count == 0 || offset >= page.total {
                return Ok(items);
            }
        }
    }

    async fn followed_artists(&self) -> Result<Vec<FollowedArtist>, ProviderError> {
        let mut artists = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..100_000 {
            let page = self
                .page("followed artists", self.client.followed_artists(self.auth, after.as_deref(), PAGE_SIZE))
                .await?
                .artists;
            let next_cursor = page.cursors.and_then(|c| c.after);
            artists.extend(page.items.into_iter().map(|a| FollowedArtist {
                artist: Artist { url: a.external_urls.and_then(|u| u.spotify), id: a.id, name: a.name },
                entry_id: None,
            }));
            match (page.next, next_cursor) {
                (Some(_), Some(cursor)) if after.as_deref() != Some(cursor.as_str()) => {
                    self.tracker.expect(1);
                    after = Some(cursor);
                }
                _ => return Ok(artists),
            }
        }
        Ok(artists)
    }

    async fn playlists(
        &self,
        user_id: &str,
        first: Paging<SimplifiedPlaylistObject>,
    ) -> Result<Vec<Playlist>, ProviderError> {
        let listed =
            self.rest_of("playlists", first, |offset| self.client.playlists(self.auth, offset, PAGE_SIZE)).await?;
        let playlists: Vec<(Playlist, u32)> = listed
            .into_iter()
            .map(|(_, p)| {
                let owned = p.owner.id == user_id;
                let playlist = Playlist {
                    editable: owned || p.collaborative,
                    owned,
                    collaborative: p.collaborative,
                    version: Some(p.snapshot_id),
                    items: Vec::new(),
                    url: p.external_urls.and_then(|u| u.spotify),
                    name: p.name,
                    id: p.id,
                };
                (playlist, p.items.total)
            })
            .collect();
        let read = try_join_all(playlists.into_iter().map(|(mut playlist, total)| async move {
            if playlist.editable && total > 0 {
                let id = playlist.id.clone();
                let entries = self
                    .known_total("playlist items", total, |offset| {
                        self.client.playlist_items(self.auth, &id, offset, PAGE_SIZE)
                    })
                    .await;
                match entries {
                    Ok(entries) => {
                        playlist.items =
                            entries.into_iter().filter_map(|(position, entry)| to_item(position, &entry)).collect();
                    }
                    // Deleted since it was listed: leave it out.
                    Err(ProviderError::NotFound { .. }) => return Ok(None),
                    // No longer a collaborator: listed, not editable, items unreadable.
                    Err(ProviderError::InvalidInput { detail, .. }) if detail.starts_with("forbidden") => {
                        tracing::info!(playlist = %playlist.id, "playlist items refused (403): not editable");
                        playlist.editable = false;
                    }
                    Err(err) => return Err(err),
                }
            }
            Ok::<_, ProviderError>(Some(playlist))
        }))
        .await?;
        Ok(read.into_iter().flatten().collect())
    }
}

fn to_item(position: u32, entry: &PlaylistTrackObject) -> Option<PlaylistItem> {
    Some(PlaylistItem { position, track: entry.to_track()?, added_at: entry.added_at, item_id: None })
}

/// Reads the whole library; see the [module docs](self).
///
/// # Errors
/// The first page request that fails after the HTTP stack's retries.
pub(crate) async fn scan(
    provider: &ProviderId,
    client: &SpotifyClient,
    auth: &AuthSession<'_>,
    progress: &dyn ProgressSink,
) -> Result<LibrarySnapshot, ProviderError> {
    let concurrency = client.api().config().concurrency.max(1);
    let scan = Scan {
        client,
        auth,
        gate: Semaphore::new(concurrency),
        tracker: Tracker { sink: progress, done: AtomicU64::new(0), known: AtomicU64::new(5) },
    };
    let scan = &scan;

    // The first page of each list (and the user, to tell owned playlists), at once.
    let (me, liked_first, albums_first, playlists_first) = futures::try_join!(
        scan.page("profile", client.me(auth)),
        scan.page("liked tracks", client.liked_tracks(auth, 0, PAGE_SIZE)),
        scan.page("saved albums", client.saved_albums(auth, 0, PAGE_SIZE)),
        scan.page("playlists", client.playlists(auth, 0, PAGE_SIZE)),
    )?;

    let (liked, albums, followed, playlists) = futures::try_join!(
        scan.rest_of("liked tracks", liked_first, |offset| client.liked_tracks(auth, offset, PAGE_SIZE)),
        scan.rest_of("saved albums", albums_first, |offset| client.saved_albums(auth, offset, PAGE_SIZE)),
        scan.followed_artists(),
        scan.playlists(&me.id, playlists_first),
    )?;

    let liked_tracks = liked
        .into_iter()
        .filter_map(|(_, saved)| {
            Some(LikedTrack {
                track: saved.track.to_track()?,
                added_at: saved.added_at,
                entry_id: None,
                disliked: false,
            })
        })
        .collect();
    let saved_albums = albums
        .into_iter()
        .map(|(_, saved)| SavedAlbum {
            album: Album {
                artists: credits(&saved.album.artists, false),
                url: saved.album.external_urls.and_then(|u| u.spotify),
                id: saved.album.id,
                title: saved.album.name,
            },
            added_at: saved.added_at,
        })
        .collect();
    Ok(LibrarySnapshot {
        provider: provider.clone(),
        taken_at: Some(Utc::now()),
        liked_tracks,
        saved_albums,
        followed_artists: followed,
        playlists,
    })
}
