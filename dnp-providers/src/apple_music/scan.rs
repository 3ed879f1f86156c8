//! The library scan: library songs (dnp's liked tracks) with their dislike ratings,
//! library albums, library artists, and library playlists with their tracks.
//!
//! # Paging
//! Every list is read 100 resources a page (`limit` at most 100) with `include=catalog`,
//! so each library item comes with its catalog counterpart (catalog id, ISRC, link,
//! credited artists). The first page of a list gives `meta.total`; the other pages are
//! then read concurrently by offset, within
//! [`HttpConfig::concurrency`](crate::http::HttpConfig::concurrency) requests in flight.
//! Without a total, or when a page reports another total (the list changed during the
//! scan), the list is read again one page after another, following `next`.
//!
//! # Ratings
//! Disliked songs are read with `GET /v1/me/ratings/songs?ids=` (100 ids a call; library
//! ids of uploads through `/library-songs`), so [`LikedTrack::disliked`] is known and the
//! planner does not plan a dislike twice.
//!
//! # Playlists
//! Apple's API has no collaborative playlists: `owned` is "not added from the catalog"
//! (`hasCatalog` false), `editable` is Apple's `canEdit`, `collaborative` is false, and
//! `lastModifiedDate` is the playlist's version. Tracks of every playlist are read (Apple
//! lists them for any library playlist); positions are the order Apple lists them in.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use dnp_core::{
    Album, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist, PlaylistItem, Progress, ProgressSink, ProviderError,
    ProviderId, SavedAlbum,
};
use futures::future::try_join_all;
use tokio::sync::Semaphore;

use super::client::{AppleMusicClient, PAGE_SIZE, RATINGS_BATCH, UserSession};
use super::model::{LibraryPlaylist, Page, is_library_id, library_playlist_link};

struct Scan<'a> {
    client: &'a AppleMusicClient,
    session: &'a UserSession<'a>,
    gate: Semaphore,
    sink: &'a dyn ProgressSink,
    done: AtomicU64,
    known: AtomicU64,
}

impl Scan<'_> {
    async fn page<T>(
        &self,
        section: &str,
        request: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let result = {
            let _permit = self.gate.acquire().await.ok();
            request.await
        };
        if result.is_ok() {
            let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            let known = self.known.load(Ordering::Relaxed).max(done);
            self.sink.report(Progress {
                done,
                total: Some(known),
                message: format!("apple music: {section} (page {done} of {known} known so far)"),
            });
        }
        result
    }

    /// Every resource of an offset-paged list.
    async fn list<T, F, Fut>(&self, section: &str, fetch: F) -> Result<Vec<T>, ProviderError>
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = Result<Page<T>, ProviderError>>,
    {
        let first = self.page(section, fetch(0)).await?;
        let Some(total) = first.total() else {
            return self.sequential(section, first, &fetch).await;
        };
        let offsets: Vec<u32> = (1..).map(|i| i * PAGE_SIZE).take_while(|&o| o < total).collect();
        self.known.fetch_add(offsets.len() as u64, Ordering::Relaxed);
        let pages = try_join_all(offsets.iter().map(|&offset| self.page(section, fetch(offset)))).await?;
        let consistent = first.data.len() as u32 == total.min(PAGE_SIZE)
            && pages
                .iter()
                .zip(&offsets)
                .all(|(p, &o)| p.total() == Some(total) && p.data.len() as u32 == (total - o).min(PAGE_SIZE));
        if !consistent {
            tracing::info!(section, "list changed during the scan; reading it again page by page");
            let first = self.page(section, fetch(0)).await?;
            return self.sequential(section, first, &fetch).await;
        }
        let mut items = first.data;
        for page in pages {
            items.extend(page.data);
        }
        Ok(items)
    }

    /// Reads on from `first`, one page after another, while Apple gives a `next` link.
    async fn sequential<T, F, Fut>(&self, section: &str, first: Page<T>, fetch: &F) -> Result<Vec<T>, ProviderError>
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = Result<Page<T>, ProviderError>>,
    {
        let mut offset = first.data.len() as u32;
        let mut more = first.next.is_some() && !first.data.is_empty();
        let mut items = first.data;
        while more {
            self.known.fetch_add(1, Ordering::Relaxed);
            let page = self.page(section, fetch(offset)).await?;
            offset += page.data.len() as u32;
            more = page.next.is_some() && !page.data.is_empty();
            items.extend(page.data);
        }
        Ok(items)
    }

    /// The ids among `ids` (catalog or library) the user rated "dislike".
    async fn disliked(&self, ids: Vec<String>) -> Result<std::collections::HashSet<String>, ProviderError> {
        let (library, catalog): (Vec<String>, Vec<String>) = ids.into_iter().partition(|id| is_library_id(id));
        let mut calls = Vec::new();
        for (ids, is_library) in [(catalog, false), (library, true)] {
            for chunk in ids.chunks(RATINGS_BATCH) {
                calls.push((chunk.to_vec(), is_library));
            }
        }
        self.known.fetch_add(calls.len() as u64, Ordering::Relaxed);
        let ratings =
            try_join_all(calls.iter().map(|(ids, is_library)| {
                self.page("ratings", self.client.song_ratings(self.session, ids, *is_library))
            }))
            .await?;
        Ok(ratings.into_iter().flatten().filter(|r| r.attributes.value < 0).map(|r| r.id).collect())
    }

    async fn playlist(&self, listed: LibraryPlaylist) -> Result<Option<Playlist>, ProviderError> {
        let Some(attrs) = listed.attributes else {
            return Ok(None);
        };
        let storefront = self.client.storefront();
        let id = listed.id;
        let tracks =
            self.list("playlist tracks", |offset| self.client.playlist_tracks(self.session, &id, offset)).await?;
        // Positions count every entry, also one dnp cannot read (no attributes).
        let items = tracks
            .iter()
            .enumerate()
            .filter_map(|(position, song)| {
                let track = song.to_track(storefront)?;
                Some(PlaylistItem { position: position as u32, track, added_at: None, item_id: None })
            })
            .collect();
        Ok(Some(Playlist {
            url: Some(library_playlist_link(&id)),
            owned: !attrs.has_catalog,
            collaborative: false,
            editable: attrs.can_edit,
            version: attrs.last_modified_date,
            name: attrs.name,
            items,
            id,
        }))
    }
}

/// Reads the whole library; see the [module docs](self).
///
/// # Errors
/// The first request that fails after the HTTP stack's retries.
pub(crate) async fn scan(
    provider: &ProviderId,
    client: &AppleMusicClient,
    session: &UserSession<'_>,
    progress: &dyn ProgressSink,
) -> Result<LibrarySnapshot, ProviderError> {
    let scan = Scan {
        client,
        session,
        gate: Semaphore::new(client.api().config().concurrency.max(1)),
        sink: progress,
        done: AtomicU64::new(0),
        known: AtomicU64::new(4),
    };
    let scan = &scan;
    let storefront = client.storefront();
    let (songs, albums, artists, playlists) = futures::try_join!(
        scan.list("library songs", |offset| client.library_songs(session, offset)),
        scan.list("library albums", |offset| client.library_albums(session, offset)),
        scan.list("library artists", |offset| client.library_artists(session, offset)),
        scan.list("library playlists", |offset| client.library_playlists(session, offset)),
    )?;
    let liked: Vec<(String, dnp_core::Track)> =
        songs.iter().filter_map(|song| Some((song.id.clone(), song.to_track(storefront)?))).collect();
    let (disliked, playlists) = futures::try_join!(
        scan.disliked(liked.iter().map(|(_, t)| t.id.clone()).collect()),
        try_join_all(playlists.into_iter().map(|p| scan.playlist(p))),
    )?;
    let liked_tracks = liked
        .into_iter()
        .map(|(library_id, track)| LikedTrack {
            disliked: disliked.contains(&track.id),
            entry_id: (library_id != track.id).then_some(library_id),
            added_at: None,
            track,
        })
        .collect();
    let saved_albums = albums
        .iter()
        .filter_map(|a| {
            let attrs = a.attributes.as_ref()?;
            let album = match a.relationships.catalog.as_ref().and_then(|r| r.data.first()) {
                Some(catalog) => catalog.to_album(storefront)?,
                None => Album {
                    id: a.id.clone(),
                    title: attrs.name.clone(),
                    artists: super::model::song_credits(attrs.artist_name.as_deref(), "", &[]),
                    url: None,
                },
            };
            Some(SavedAlbum { album, added_at: attrs.date_added })
        })
        .collect();
    let followed_artists = artists
        .iter()
        .filter_map(|a| {
            let artist = a.to_artist(storefront)?;
            Some(FollowedArtist { entry_id: (artist.id != a.id).then(|| a.id.clone()), artist })
        })
        .collect();
    Ok(LibrarySnapshot {
        provider: provider.clone(),
        taken_at: Some(Utc::now()),
        liked_tracks,
        saved_albums,
        followed_artists,
        playlists: playlists.into_iter().flatten().collect(),
    })
}
