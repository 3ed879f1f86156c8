//! The emulator's state: the catalog, each user's library, ratings and tokens.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use dnp_core::normalize::{featured_in_title, normalize_name};
use dnp_core::{
    Album, AlbumRef, Artist, ArtistCredit, CreditRole, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist,
    PlaylistItem, ProviderId, SavedAlbum, Track,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

/// A catalog song, as Apple keeps it: the title with its guests, `artistName` with the
/// main artists, and every credited artist (dnp's credits, roles included, are the truth
/// the harness compares scans with).
#[derive(Debug, Clone)]
pub(crate) struct SongRec {
    pub(crate) title: String,
    pub(crate) artist_name: String,
    pub(crate) credits: Vec<ArtistCredit>,
    pub(crate) album: Option<String>,
    pub(crate) isrc: Option<String>,
    pub(crate) duration_ms: Option<u32>,
}

#[derive(Debug, Clone)]
pub(crate) struct AlbumRec {
    pub(crate) title: String,
    pub(crate) artists: Vec<ArtistCredit>,
}

#[derive(Debug, Clone)]
pub(crate) struct PlaylistRec {
    pub(crate) name: String,
    pub(crate) has_catalog: bool,
    pub(crate) can_edit: bool,
    pub(crate) date_added: DateTime<Utc>,
    pub(crate) last_modified: DateTime<Utc>,
    /// Catalog song ids, in order.
    pub(crate) tracks: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct UserRec {
    /// Catalog ids of library songs (listed alphabetically by title).
    pub(crate) songs: Vec<String>,
    /// Catalog ids of library albums with their `dateAdded`, newest first.
    pub(crate) albums: Vec<(String, Option<DateTime<Utc>>)>,
    /// Catalog ids of library artists.
    pub(crate) artists: Vec<String>,
    /// Library playlist ids.
    pub(crate) playlists: Vec<String>,
    /// Song ratings by catalog id (`-1` dislike, `1` love).
    pub(crate) ratings: HashMap<String, i8>,
}

pub(crate) struct UserToken {
    pub(crate) user_id: String,
    pub(crate) expires_at: Instant,
    pub(crate) revocation_generation: u64,
}

pub(crate) struct Store {
    pub(crate) provider: ProviderId,
    pub(crate) songs: HashMap<String, SongRec>,
    pub(crate) albums: HashMap<String, AlbumRec>,
    pub(crate) artists: HashMap<String, String>,
    pub(crate) playlists: HashMap<String, PlaylistRec>,
    pub(crate) users: HashMap<String, UserRec>,
    pub(crate) last_seeded: Option<String>,
    pub(crate) user_tokens: HashMap<String, UserToken>,
    /// Developer tokens already verified, with the expiry generation they were first seen at.
    pub(crate) developer_tokens: HashMap<String, (u64, i64)>,
    pub(crate) rng: Xoshiro256PlusPlus,
}

/// The library id of a catalog song, album or artist (`i.`, `l.`, `r.` + the catalog id).
pub(crate) fn library_id(prefix: &str, catalog_id: &str) -> String {
    format!("{prefix}.{catalog_id}")
}

/// The playlist's library id: the seeded id, with Apple's `p.` prefix.
pub(crate) fn playlist_id(seeded: &str) -> String {
    if seeded.starts_with("p.") { seeded.to_owned() } else { format!("p.{seeded}") }
}

/// Apple's `artistName`: `A`, `A & B`, `A, B & C`.
pub(crate) fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} & {last}", rest.join(", ")),
    }
}

/// Apple's title: guests not yet named in it are appended as `(feat. …)`.
fn apple_title(track: &Track) -> String {
    let named = featured_in_title(&track.title);
    let missing: Vec<&str> = track
        .artists
        .iter()
        .filter(|c| c.role == CreditRole::Featured && !named.contains(&normalize_name(&c.name)))
        .map(|c| c.name.as_str())
        .collect();
    if missing.is_empty() || !named.is_empty() {
        track.title.clone()
    } else {
        format!("{} (feat. {})", track.title, join_names(&missing))
    }
}

fn sort_songs(store: &HashMap<String, SongRec>, songs: &mut [String]) {
    songs.sort_by(|a, b| {
        let title = |id: &String| store.get(id).map(|s| s.title.to_lowercase()).unwrap_or_default();
        title(a).cmp(&title(b)).then(a.cmp(b))
    });
}

impl Store {
    pub(crate) fn new(provider: ProviderId, seed: u64) -> Self {
        Self {
            provider,
            songs: HashMap::new(),
            albums: HashMap::new(),
            artists: HashMap::new(),
            playlists: HashMap::new(),
            users: HashMap::new(),
            last_seeded: None,
            user_tokens: HashMap::new(),
            developer_tokens: HashMap::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    fn add_track(&mut self, track: &Track) {
        for credit in &track.artists {
            if let Some(id) = &credit.id {
                self.artists.entry(id.clone()).or_insert_with(|| credit.name.clone());
            }
        }
        if let Some(album) = &track.album {
            self.add_album(&album.id, &album.title, &album.artists);
        }
        let primaries: Vec<&str> =
            track.artists.iter().filter(|c| c.role == CreditRole::Primary).map(|c| c.name.as_str()).collect();
        self.songs.insert(
            track.id.clone(),
            SongRec {
                title: apple_title(track),
                artist_name: join_names(&primaries),
                credits: track.artists.clone(),
                album: track.album.as_ref().map(|a| a.id.clone()),
                isrc: track.isrc.clone(),
                duration_ms: track.duration_ms,
            },
        );
    }

    fn add_album(&mut self, id: &str, title: &str, artists: &[ArtistCredit]) {
        for credit in artists {
            if let Some(artist) = &credit.id {
                self.artists.entry(artist.clone()).or_insert_with(|| credit.name.clone());
            }
        }
        let artists = artists.iter().map(|c| ArtistCredit { role: CreditRole::Primary, ..c.clone() }).collect();
        self.albums.insert(id.to_owned(), AlbumRec { title: title.to_owned(), artists });
    }

    /// Replaces `user_id`'s library; see [`AppleMusicEmulator::seed_user`](super::AppleMusicEmulator::seed_user).
    pub(crate) fn seed(&mut self, user_id: &str, library: &LibrarySnapshot) {
        let now = Utc::now();
        let mut user = UserRec::default();
        for liked in &library.liked_tracks {
            self.add_track(&liked.track);
            if !user.songs.contains(&liked.track.id) {
                user.songs.push(liked.track.id.clone());
            }
            if liked.disliked {
                user.ratings.insert(liked.track.id.clone(), -1);
            }
        }
        sort_songs(&self.songs, &mut user.songs);
        for saved in &library.saved_albums {
            self.add_album(&saved.album.id, &saved.album.title, &saved.album.artists);
            user.albums.push((saved.album.id.clone(), saved.added_at));
        }
        for followed in &library.followed_artists {
            self.artists.insert(followed.artist.id.clone(), followed.artist.name.clone());
            user.artists.push(followed.artist.id.clone());
        }
        for playlist in &library.playlists {
            for item in &playlist.items {
                self.add_track(&item.track);
            }
            let id = playlist_id(&playlist.id);
            self.playlists.insert(
                id.clone(),
                PlaylistRec {
                    name: playlist.name.clone(),
                    has_catalog: !playlist.owned,
                    can_edit: playlist.editable,
                    date_added: now,
                    last_modified: now,
                    tracks: playlist.items.iter().map(|i| i.track.id.clone()).collect(),
                },
            );
            user.playlists.push(id);
        }
        self.users.insert(user_id.to_owned(), user);
        self.last_seeded = Some(user_id.to_owned());
    }

    pub(crate) fn track(&self, id: &str) -> Option<Track> {
        let song = self.songs.get(id)?;
        let album = song.album.as_ref().and_then(|a| {
            self.albums.get(a).map(|rec| AlbumRef {
                id: a.clone(),
                title: rec.title.clone(),
                artists: rec.artists.clone(),
            })
        });
        Some(Track {
            id: id.to_owned(),
            title: song.title.clone(),
            artists: song.credits.clone(),
            album,
            isrc: song.isrc.clone(),
            duration_ms: song.duration_ms,
            url: Some(super::api::song_url(id, &song.title)),
        })
    }

    /// `user_id`'s library in dnp's types, as the emulator holds it.
    pub(crate) fn library(&self, user_id: &str) -> LibrarySnapshot {
        let mut snapshot = LibrarySnapshot::empty(self.provider.clone());
        let Some(user) = self.users.get(user_id) else {
            return snapshot;
        };
        snapshot.liked_tracks = user
            .songs
            .iter()
            .filter_map(|id| {
                Some(LikedTrack {
                    track: self.track(id)?,
                    added_at: None,
                    entry_id: Some(library_id("i", id)),
                    disliked: user.ratings.get(id) == Some(&-1),
                })
            })
            .collect();
        snapshot.saved_albums = user
            .albums
            .iter()
            .filter_map(|(id, added_at)| {
                let rec = self.albums.get(id)?;
                Some(SavedAlbum {
                    album: Album {
                        id: id.clone(),
                        title: rec.title.clone(),
                        artists: rec.artists.clone(),
                        url: Some(super::api::catalog_url("album", id, &rec.title)),
                    },
                    added_at: *added_at,
                })
            })
            .collect();
        snapshot.followed_artists = user
            .artists
            .iter()
            .filter_map(|id| {
                let name = self.artists.get(id)?;
                Some(FollowedArtist {
                    artist: Artist {
                        id: id.clone(),
                        name: name.clone(),
                        url: Some(super::api::catalog_url("artist", id, name)),
                    },
                    entry_id: Some(library_id("r", id)),
                })
            })
            .collect();
        snapshot.playlists = user
            .playlists
            .iter()
            .filter_map(|id| {
                let rec = self.playlists.get(id)?;
                Some(Playlist {
                    id: id.clone(),
                    name: rec.name.clone(),
                    owned: !rec.has_catalog,
                    collaborative: false,
                    editable: rec.can_edit,
                    version: Some(super::api::timestamp(rec.last_modified)),
                    items: rec
                        .tracks
                        .iter()
                        .enumerate()
                        .filter_map(|(i, t)| {
                            Some(PlaylistItem {
                                position: i as u32,
                                track: self.track(t)?,
                                added_at: None,
                                item_id: None,
                            })
                        })
                        .collect(),
                    url: Some(crate::apple_music::model::library_playlist_link(id)),
                })
            })
            .collect();
        snapshot
    }

    /// Adds catalog songs to `user_id`'s library (already there: unchanged).
    pub(crate) fn add_songs(&mut self, user_id: &str, ids: &[String]) {
        let Some(user) = self.users.get_mut(user_id) else { return };
        let mut known: HashSet<String> = user.songs.iter().cloned().collect();
        for id in ids {
            if known.insert(id.clone()) {
                user.songs.push(id.clone());
            }
        }
        let mut songs = std::mem::take(&mut user.songs);
        sort_songs(&self.songs, &mut songs);
        if let Some(user) = self.users.get_mut(user_id) {
            user.songs = songs;
        }
    }
}
