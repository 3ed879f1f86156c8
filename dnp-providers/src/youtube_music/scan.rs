//! The library scan: liked videos, the user's playlists with their items, and
//! subscriptions as followed artists.
//!
//! # Paging and cost
//! Every list is read 50 items a page, following `nextPageToken`; a token names the next
//! page only, so one list is read one page after another, while the lists (and the
//! playlists) are read concurrently, at most
//! [`HttpConfig::concurrency`](crate::http::HttpConfig::concurrency) requests at once.
//! Each page is one call and one quota unit:
//!
//! `max(1, ⌈liked/50⌉) + max(1, ⌈subscriptions/50⌉) + max(1, ⌈playlists/50⌉)
//!  + Σ max(1, ⌈items/50⌉) over playlists + ⌈distinct playlist videos not liked/50⌉`.
//!
//! The last term reads the durations of playlist videos (`videos.list?id=`, 50 ids a
//! call), which `playlistItems.list` does not give; liked videos come with theirs.
//!
//! # Liked music: `videos.list?myRating=like`
//! Chosen over reading the `LL` ("Liked videos") playlist because it returns each video
//! whole (title, channel and duration) in one call a page, where the playlist needs a
//! second call a page for durations; and because a like is removed by `videos.rate`
//! anyway (the `LL` playlist refuses `playlistItems.delete`). Neither tells when a video
//! was liked, so `added_at` is empty. The list holds every liked video, music or not; the
//! planner only acts on blocked artists.
//!
//! # Playlists
//! `playlists.list?mine=true` lists the playlists the user owns (saved playlists of
//! others and YouTube Music's automatic ones are not in the Data API): all are `owned` and
//! `editable`, their `version` is the playlist resource's `etag`. Deleted and private
//! videos (no owner channel) are left out of the items, which keep their real positions.
//!
//! # Followed artists
//! Subscriptions (`subscriptions.list?mine=true`), every channel, with the subscription id
//! as `entry_id` (what `subscriptions.delete` takes); `"Artist - Topic"` is named `Artist`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use dnp_core::{
    Artist, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist, PlaylistItem, Progress, ProgressSink, ProviderError,
    ProviderId,
};
use futures::future::try_join_all;
use tokio::sync::Semaphore;

use super::client::{PAGE_SIZE, YouTubeClient};
use super::model::{
    ListResponse, PlaylistItemResource, channel_artist_name, channel_url, parse_duration_ms, playlist_url,
};
use crate::http::AuthSession;

/// The most pages one list is followed for (a service handing out tokens forever).
const MAX_PAGES: usize = 100_000;

/// Counts pages for progress reports.
struct Tracker<'a> {
    sink: &'a dyn ProgressSink,
    done: AtomicU64,
    known: AtomicU64,
}

impl Tracker<'_> {
    fn expect(&self, pages: u64) {
        self.known.fetch_add(pages, Ordering::Relaxed);
    }

    fn page_done(&self, section: &str) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let known = self.known.load(Ordering::Relaxed).max(done);
        self.sink.report(Progress {
            done,
            total: Some(known),
            message: format!("youtube_music: {section} (page {done} of {known} known so far)"),
        });
    }
}

/// One scan in progress.
struct Scan<'a> {
    client: &'a YouTubeClient,
    auth: &'a AuthSession<'a>,
    gate: Semaphore,
    tracker: Tracker<'a>,
}

fn pages_for(total: u32) -> u64 {
    u64::from(total.div_ceil(PAGE_SIZE).max(1))
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

    /// Every item of a token-paged list, one page after another. The first page's total
    /// tells progress how many pages to expect (one is already counted).
    async fn all_pages<T, F, Fut>(&self, section: &str, fetch: F) -> Result<Vec<T>, ProviderError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<ListResponse<T>, ProviderError>>,
    {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        let mut seen = HashSet::new();
        for n in 0..MAX_PAGES {
            let page = self.page(section, fetch(token.take())).await?;
            if n == 0 {
                self.tracker.expect(pages_for(page.page_info.total_results).saturating_sub(1));
            }
            items.extend(page.items);
            match page.next_page_token {
                Some(next) if !next.is_empty() && seen.insert(next.clone()) => {
                    if n + 1 >= pages_for(page.page_info.total_results) as usize {
                        // More pages than the total said: the list grew while being read.
                        self.tracker.expect(1);
                    }
                    token = Some(next);
                }
                _ => break,
            }
        }
        Ok(items)
    }

    async fn liked(&self) -> Result<Vec<LikedTrack>, ProviderError> {
        let videos =
            self.all_pages("liked videos", |token| async move {
                self.client.liked_videos(self.auth, token.as_deref()).await
            })
            .await?;
        Ok(videos
            .iter()
            .filter_map(|v| v.to_track())
            .map(|track| LikedTrack { track, added_at: None, entry_id: None, disliked: false })
            .collect())
    }

    async fn followed(&self) -> Result<Vec<FollowedArtist>, ProviderError> {
        let subscriptions =
            self.all_pages("subscriptions", |token| async move {
                self.client.subscriptions(self.auth, token.as_deref()).await
            })
            .await?;
        Ok(subscriptions
            .into_iter()
            .filter_map(|s| {
                let snippet = s.snippet?;
                let channel_id = snippet.resource_id.channel_id?;
                Some(FollowedArtist {
                    artist: Artist {
                        url: Some(channel_url(&channel_id)),
                        name: channel_artist_name(&snippet.title).to_owned(),
                        id: channel_id,
                    },
                    entry_id: Some(s.id),
                })
            })
            .collect())
    }

    async fn playlists(&self) -> Result<Vec<(Playlist, Vec<PlaylistItemResource>)>, ProviderError> {
        let listed = self
            .all_pages("playlists", |token| async move { self.client.my_playlists(self.auth, token.as_deref()).await })
            .await?;
        // Each non-empty playlist's first page is expected now; the rest once its total is known.
        let non_empty = listed.iter().filter(|p| p.content_details.is_none_or(|c| c.item_count > 0)).count();
        self.tracker.expect(non_empty as u64);
        try_join_all(listed.into_iter().map(|p| async move {
            let empty = p.content_details.is_some_and(|c| c.item_count == 0);
            let playlist = Playlist {
                name: p.snippet.as_ref().map(|s| s.title.clone()).unwrap_or_default(),
                owned: true,
                collaborative: false,
                editable: true,
                version: p.etag.clone(),
                items: Vec::new(),
                url: Some(playlist_url(&p.id)),
                id: p.id,
            };
            let entries = if empty {
                Vec::new()
            } else {
                let id = playlist.id.as_str();
                self.all_pages("playlist items", |token| async move {
                    self.client.playlist_items(self.auth, id, token.as_deref()).await
                })
                .await?
            };
            Ok::<_, ProviderError>((playlist, entries))
        }))
        .await
    }

    /// The durations of `ids`, 50 a call, concurrently.
    async fn durations(&self, ids: Vec<String>) -> Result<HashMap<String, u32>, ProviderError> {
        let chunks: Vec<Vec<String>> = ids.chunks(PAGE_SIZE as usize).map(<[String]>::to_vec).collect();
        self.tracker.expect(chunks.len() as u64);
        let pages =
            try_join_all(chunks.iter().map(|chunk| self.page("durations", self.client.videos(self.auth, chunk))))
                .await?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.items)
            .filter_map(|v| {
                let ms = v.content_details.as_ref()?.duration.as_deref().and_then(parse_duration_ms)?;
                Some((v.id, ms))
            })
            .collect())
    }
}

/// Reads the whole library; see the [module docs](self).
///
/// # Errors
/// The first page request that fails after the HTTP stack's retries, `QuotaExceeded` when
/// the day's quota runs out during the scan.
pub(crate) async fn scan(
    provider: &ProviderId,
    client: &YouTubeClient,
    auth: &AuthSession<'_>,
    progress: &dyn ProgressSink,
) -> Result<LibrarySnapshot, ProviderError> {
    let concurrency = client.api().config().concurrency.max(1);
    let scan = Scan {
        client,
        auth,
        gate: Semaphore::new(concurrency),
        tracker: Tracker { sink: progress, done: AtomicU64::new(0), known: AtomicU64::new(3) },
    };
    let scan = &scan;
    let (liked_tracks, followed_artists, playlists) =
        futures::try_join!(scan.liked(), scan.followed(), scan.playlists())?;

    // Durations of playlist videos whose duration the liked list did not give.
    let known: HashMap<&str, Option<u32>> =
        liked_tracks.iter().map(|l| (l.track.id.as_str(), l.track.duration_ms)).collect();
    let mut wanted: Vec<String> = Vec::new();
    let mut asked = HashSet::new();
    for (_, entries) in &playlists {
        for entry in entries {
            if entry.snippet.video_owner_channel_id.is_none() {
                continue;
            }
            if let Some(id) = entry.snippet.resource_id.video_id.as_deref()
                && !known.contains_key(id)
                && asked.insert(id.to_owned())
            {
                wanted.push(id.to_owned());
            }
        }
    }
    let fetched = scan.durations(wanted).await?;
    let duration_of = |id: &str| known.get(id).copied().flatten().or_else(|| fetched.get(id).copied());

    let playlists = playlists
        .into_iter()
        .map(|(mut playlist, entries)| {
            playlist.items = entries
                .iter()
                .enumerate()
                .filter_map(|(index, entry)| {
                    let video_id = entry.snippet.resource_id.video_id.as_deref()?;
                    Some(PlaylistItem {
                        position: entry.snippet.position.unwrap_or(index as u32),
                        track: entry.to_track(duration_of(video_id))?,
                        added_at: entry.snippet.published_at,
                        item_id: Some(entry.id.clone()),
                    })
                })
                .collect();
            playlist
        })
        .collect();
    Ok(LibrarySnapshot {
        provider: provider.clone(),
        taken_at: Some(Utc::now()),
        liked_tracks,
        saved_albums: Vec::new(),
        followed_artists,
        playlists,
    })
}
