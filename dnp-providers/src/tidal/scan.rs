//! The library scan: collection tracks, albums and artists, the playlists in the user's
//! collection, and the items of the playlists the user may edit.
//!
//! # Paging
//! Every list is a relationship read with cursor paging: 20 items a page, `links.next`
//! (its `page[cursor]`, also given as `links.meta.nextCursor`) leads to the next page and
//! is absent on the last. A cursor list cannot be read out of order, so each list is read
//! one page after another; the lists themselves (the four collections, then every
//! editable playlist) are read concurrently, at most
//! [`HttpConfig::concurrency`](crate::http::HttpConfig::concurrency) requests in flight,
//! under the HTTP stack's rate limits. One page gives everything about its items through
//! `include=`: a collection page of tracks includes the tracks, their artists, their
//! albums and the albums' artists, so the request count is the page count:
//!
//! `1 (/users/me) + Σ max(1, ⌈n/20⌉) over the four collections + Σ ⌈items/20⌉ over
//!  editable playlists`.
//!
//! # Playlists
//! A playlist is `owned` when the user is among its `owners`, `collaborative` when it has
//! collaborators, and `editable` when owned or the user is a collaborator. Its version is
//! its `lastModifiedAt`. Items of playlists the user cannot edit are not read (nothing can
//! be done to them). Each entry keeps its real position and its `meta.itemId`, which a
//! removal names; entries that are videos are left out of the snapshot but keep their
//! place in the numbering.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use dnp_core::{
    Album, Artist, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist, PlaylistItem, Progress, ProgressSink,
    ProviderError, ProviderId, SavedAlbum,
};
use futures::future::try_join_all;
use tokio::sync::Semaphore;

use super::client::{Collection, TidalClient, endpoints};
use super::model::{Index, RelationshipDocument, sharing_link};
use crate::http::AuthSession;

/// The most pages one list may have before the scan gives up (a cursor loop).
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
            message: format!("tidal: {section} (page {done} of {known} known so far)"),
        });
    }
}

/// One scan in progress.
struct Scan<'a> {
    provider: &'a ProviderId,
    client: &'a TidalClient,
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

    /// Every page of a cursor-paged list, one after another; `fetch(cursor)` reads one.
    async fn pages<F, Fut>(
        &self,
        section: &str,
        endpoint: &str,
        fetch: F,
    ) -> Result<Vec<RelationshipDocument>, ProviderError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<RelationshipDocument, ProviderError>>,
    {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = HashSet::new();
        loop {
            let page = self.page(section, fetch(cursor.clone())).await?;
            let next = page.links.next_cursor().map_err(|detail| ProviderError::Protocol {
                provider: self.provider.clone(),
                endpoint: endpoint.to_owned(),
                detail,
            })?;
            pages.push(page);
            match next {
                Some(next) if pages.len() < MAX_PAGES => {
                    if !seen.insert(next.clone()) {
                        return Err(ProviderError::Protocol {
                            provider: self.provider.clone(),
                            endpoint: endpoint.to_owned(),
                            detail: "the same page cursor came back twice (a paging loop)".into(),
                        });
                    }
                    self.tracker.expect(1);
                    cursor = Some(next);
                }
                _ => return Ok(pages),
            }
        }
    }

    async fn collection(
        &self,
        section: &str,
        collection: Collection,
    ) -> Result<Vec<RelationshipDocument>, ProviderError> {
        self.pages(section, collection.list_endpoint(), |cursor| async move {
            self.client.collection_page(self.auth, collection, cursor.as_deref()).await
        })
        .await
    }

    async fn liked_tracks(&self) -> Result<Vec<LikedTrack>, ProviderError> {
        let pages = self.collection("collection tracks", Collection::Tracks).await?;
        let mut liked = Vec::new();
        for page in &pages {
            let index = Index::new(&page.included);
            liked.extend(page.data.iter().filter(|r| r.kind == "tracks").map(|r| LikedTrack {
                track: index.track_or_bare(&r.id),
                added_at: r.added_at(),
                entry_id: None,
                disliked: false,
            }));
        }
        Ok(liked)
    }

    async fn saved_albums(&self) -> Result<Vec<SavedAlbum>, ProviderError> {
        let pages = self.collection("collection albums", Collection::Albums).await?;
        let mut albums = Vec::new();
        for page in &pages {
            let index = Index::new(&page.included);
            albums.extend(page.data.iter().filter(|r| r.kind == "albums").map(|r| {
                let album = match index.album(&r.id) {
                    Some(a) => Album {
                        id: a.id.clone(),
                        title: a.attributes.title.clone(),
                        artists: index.credits(a.relationships.artists.as_ref(), false),
                        url: sharing_link(&a.attributes.external_links),
                    },
                    None => Album { id: r.id.clone(), title: String::new(), artists: Vec::new(), url: None },
                };
                SavedAlbum { album, added_at: r.added_at() }
            }));
        }
        Ok(albums)
    }

    async fn followed_artists(&self) -> Result<Vec<FollowedArtist>, ProviderError> {
        let pages = self.collection("collection artists", Collection::Artists).await?;
        let mut artists = Vec::new();
        for page in &pages {
            let index = Index::new(&page.included);
            artists.extend(page.data.iter().filter(|r| r.kind == "artists").map(|r| {
                let (name, url) = index
                    .artist(&r.id)
                    .map(|a| (a.attributes.name.clone(), sharing_link(&a.attributes.external_links)))
                    .unwrap_or_default();
                FollowedArtist { artist: Artist { id: r.id.clone(), name, url }, entry_id: None }
            }));
        }
        Ok(artists)
    }

    async fn playlists(&self, me: &str, pages: Vec<RelationshipDocument>) -> Result<Vec<Playlist>, ProviderError> {
        let mut playlists = Vec::new();
        for page in &pages {
            let index = Index::new(&page.included);
            for r in page.data.iter().filter(|r| r.kind == "playlists") {
                let Some(p) = index.playlist(&r.id) else {
                    return Err(ProviderError::Protocol {
                        provider: self.provider.clone(),
                        endpoint: endpoints::COLLECTION_PLAYLISTS.into(),
                        detail: format!("playlist {} is listed but not included", r.id),
                    });
                };
                let owned = p.relationships.owners.iter().flat_map(|o| o.ids()).any(|u| u.id == me);
                let collaborators: Vec<&str> =
                    p.relationships.collaborators.iter().flat_map(|c| c.ids()).map(|u| u.id.as_str()).collect();
                playlists.push(Playlist {
                    id: p.id.clone(),
                    name: p.attributes.name.clone(),
                    owned,
                    collaborative: !collaborators.is_empty(),
                    editable: owned || collaborators.contains(&me),
                    version: Some(p.attributes.last_modified_at.clone()),
                    items: Vec::new(),
                    url: sharing_link(&p.attributes.external_links),
                });
            }
        }
        try_join_all(playlists.into_iter().map(|mut playlist| async move {
            if playlist.editable {
                let id = playlist.id.clone();
                let pages = self
                    .pages("playlist items", endpoints::PLAYLIST_ITEMS, |cursor| {
                        let id = &id;
                        async move { self.client.playlist_items_page(self.auth, id, cursor.as_deref(), true).await }
                    })
                    .await?;
                let mut position = 0u32;
                for page in &pages {
                    let index = Index::new(&page.included);
                    for entry in &page.data {
                        if entry.kind == "tracks" {
                            playlist.items.push(PlaylistItem {
                                position,
                                track: index.track_or_bare(&entry.id),
                                added_at: entry.added_at(),
                                item_id: entry.item_id().map(str::to_owned),
                            });
                        }
                        position += 1;
                    }
                }
            }
            Ok::<_, ProviderError>(playlist)
        }))
        .await
    }
}

/// Reads the whole library; see the [module docs](self).
///
/// # Errors
/// The first page request that fails after the HTTP stack's retries; `Protocol` for a
/// document that does not parse or a paging loop.
pub(crate) async fn scan(
    provider: &ProviderId,
    client: &TidalClient,
    auth: &AuthSession<'_>,
    progress: &dyn ProgressSink,
) -> Result<LibrarySnapshot, ProviderError> {
    let concurrency = client.api().config().concurrency.max(1);
    let scan = Scan {
        provider,
        client,
        auth,
        gate: Semaphore::new(concurrency),
        tracker: Tracker { sink: progress, done: AtomicU64::new(0), known: AtomicU64::new(5) },
    };
    let scan = &scan;
    let (me, liked_tracks, saved_albums, followed_artists, playlist_pages) = futures::try_join!(
        scan.page("profile", client.me(auth)),
        scan.liked_tracks(),
        scan.saved_albums(),
        scan.followed_artists(),
        scan.collection("playlists", Collection::Playlists),
    )?;
    let playlists = scan.playlists(&me, playlist_pages).await?;
    Ok(LibrarySnapshot {
        provider: provider.clone(),
        taken_at: Some(Utc::now()),
        liked_tracks,
        saved_albums,
        followed_artists,
        playlists,
    })
}
