//! The emulator's state: the catalog, users' collections and playlists, idempotency keys.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dnp_core::{
    Album, AlbumRef, Artist, ArtistCredit, CreditRole, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist,
    PlaylistItem, ProviderId, SavedAlbum, Track,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::tidal::client::timestamp;

/// How long an idempotency key is remembered (TIDAL: one hour).
pub(crate) const IDEMPOTENCY_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub(crate) struct ArtistRec {
    pub(crate) name: String,
    pub(crate) popularity: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct AlbumRec {
    pub(crate) title: String,
    /// Artist ids, main artist first.
    pub(crate) artists: Vec<String>,
    /// Catalog tracks on this album, in the order they became known.
    pub(crate) tracks: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct TrackRec {
    pub(crate) title: String,
    /// Artist ids, main artist first.
    pub(crate) artists: Vec<String>,
    pub(crate) album: Option<String>,
    pub(crate) isrc: Option<String>,
    pub(crate) duration_ms: Option<u32>,
}

/// One member of a collection relationship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) added_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct UserRec {
    pub(crate) username: String,
    /// Collections, newest first (`sort=-addedAt`, the default).
    pub(crate) tracks: Vec<Entry>,
    pub(crate) albums: Vec<Entry>,
    pub(crate) artists: Vec<Entry>,
    pub(crate) playlists: Vec<Entry>,
}

/// Which collection of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tracks,
    Albums,
    Artists,
    Playlists,
}

impl Kind {
    pub(crate) fn item_type(self) -> &'static str {
        match self {
            Self::Tracks => "tracks",
            Self::Albums => "albums",
            Self::Artists => "artists",
            Self::Playlists => "playlists",
        }
    }
}

impl UserRec {
    pub(crate) fn collection(&self, kind: Kind) -> &[Entry] {
        match kind {
            Kind::Tracks => &self.tracks,
            Kind::Albums => &self.albums,
            Kind::Artists => &self.artists,
            Kind::Playlists => &self.playlists,
        }
    }

    pub(crate) fn collection_mut(&mut self, kind: Kind) -> &mut Vec<Entry> {
        match kind {
            Kind::Tracks => &mut self.tracks,
            Kind::Albums => &mut self.albums,
            Kind::Artists => &mut self.artists,
            Kind::Playlists => &mut self.playlists,
        }
    }
}

/// Inserts `entry` keeping the list newest first; among equal dates, after the others.
pub(crate) fn insert_sorted(list: &mut Vec<Entry>, entry: Entry) {
    let at = list.iter().position(|e| e.added_at < entry.added_at).unwrap_or(list.len());
    list.insert(at, entry);
}

#[derive(Debug, Clone)]
pub(crate) struct ItemRec {
    pub(crate) item_id: String,
    pub(crate) track_id: String,
    pub(crate) added_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct PlaylistRec {
    pub(crate) name: String,
    pub(crate) owner: String,
    pub(crate) collaborators: BTreeSet<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) last_modified_at: DateTime<Utc>,
    pub(crate) items: Vec<ItemRec>,
}

impl PlaylistRec {
    pub(crate) fn can_edit(&self, user_id: &str) -> bool {
        self.owner == user_id || self.collaborators.contains(user_id)
    }

    /// The playlist's version as dnp sees it: `lastModifiedAt`.
    pub(crate) fn version(&self) -> String {
        timestamp(self.last_modified_at)
    }
}

/// A remembered answer to a mutation with an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub(crate) struct IdempotentAnswer {
    pub(crate) fingerprint: u64,
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) at: Instant,
}

/// The whole emulated service.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) provider: ProviderId,
    pub(crate) artists: BTreeMap<String, ArtistRec>,
    pub(crate) albums: BTreeMap<String, AlbumRec>,
    pub(crate) tracks: BTreeMap<String, TrackRec>,
    pub(crate) users: BTreeMap<String, UserRec>,
    pub(crate) playlists: HashMap<String, PlaylistRec>,
    /// Answers by (user, key).
    pub(crate) idempotency: HashMap<(String, String), IdempotentAnswer>,
    pub(crate) rng: Xoshiro256PlusPlus,
    pub(crate) last_seeded: Option<String>,
    /// The last modification time handed out (modification times strictly increase).
    clock: DateTime<Utc>,
}

impl Store {
    pub(crate) fn new(provider: ProviderId, seed: u64) -> Self {
        Self {
            provider,
            artists: BTreeMap::new(),
            albums: BTreeMap::new(),
            tracks: BTreeMap::new(),
            users: BTreeMap::new(),
            playlists: HashMap::new(),
            idempotency: HashMap::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x71da_1e00),
            last_seeded: None,
            clock: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// Now, at millisecond precision, strictly after every time handed out before.
    pub(crate) fn tick(&mut self) -> DateTime<Utc> {
        let now = millis(Utc::now());
        self.clock = if now > self.clock { now } else { self.clock + chrono::Duration::milliseconds(1) };
        self.clock
    }

    /// A new playlist entry id (the shape of a UUID, from the seeded generator).
    pub(crate) fn new_item_id(&mut self) -> String {
        let a: u64 = self.rng.random();
        let b: u64 = self.rng.random();
        let hex = format!("{a:016x}{b:016x}");
        format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
    }

    fn absorb_artist(&mut self, id: &str, name: &str) {
        let popularity = f64::from(self.rng.random_range(0..100u32)) / 100.0;
        self.artists.entry(id.to_owned()).or_insert_with(|| ArtistRec { name: name.to_owned(), popularity });
    }

    fn credit_ids(&mut self, credits: &[ArtistCredit]) -> Vec<String> {
        credits
            .iter()
            .filter_map(|c| {
                let id = c.id.as_ref()?;
                self.absorb_artist(id, &c.name);
                Some(id.clone())
            })
            .collect()
    }

    fn absorb_album_ref(&mut self, album: &AlbumRef) {
        let artists = self.credit_ids(&album.artists);
        let rec = self.albums.entry(album.id.clone()).or_insert_with(|| AlbumRec {
            title: album.title.clone(),
            artists: Vec::new(),
            tracks: Vec::new(),
        });
        if rec.artists.is_empty() {
            rec.artists = artists;
        }
    }

    /// Puts `track` in the catalog (replacing an earlier version of it).
    pub(crate) fn absorb_track(&mut self, track: &Track) {
        let artists = self.credit_ids(&track.artists);
        if let Some(album) = &track.album {
            self.absorb_album_ref(album);
            if let Some(rec) = self.albums.get_mut(&album.id)
                && !rec.tracks.contains(&track.id)
            {
                rec.tracks.push(track.id.clone());
            }
        }
        self.tracks.insert(
            track.id.clone(),
            TrackRec {
                title: track.title.clone(),
                artists,
                album: track.album.as_ref().map(|a| a.id.clone()),
                isrc: track.isrc.clone(),
                duration_ms: track.duration_ms,
            },
        );
    }

    fn absorb_album(&mut self, album: &Album) {
        let artists = self.credit_ids(&album.artists);
        let rec = self.albums.entry(album.id.clone()).or_insert_with(|| AlbumRec {
            title: String::new(),
            artists: Vec::new(),
            tracks: Vec::new(),
        });
        rec.title = album.title.clone();
        rec.artists = artists;
    }

    /// The owner of a playlist the seeded user does not own: a stable made-up user.
    fn other_user(&mut self, prefix: &str, playlist_id: &str) -> String {
        let suffix: String = playlist_id.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
        let user = format!("{prefix}{}", suffix.to_ascii_lowercase());
        self.users.entry(user.clone()).or_insert_with(|| UserRec { username: user.clone(), ..UserRec::default() });
        user
    }

    /// Replaces `user_id`'s library with `snapshot` (see `TidalEmulator::seed_user`).
    pub(crate) fn seed(&mut self, user_id: &str, snapshot: &LibrarySnapshot) {
        let now = self.tick();
        let mut user = UserRec { username: user_id.to_owned(), ..UserRec::default() };
        // Dates the seed lacks: just before the previous item's, keeping the order.
        let fill = |previous: Option<&Entry>, given: Option<DateTime<Utc>>| {
            given
                .map(millis)
                .unwrap_or_else(|| previous.map_or(now, |p| p.added_at - chrono::Duration::milliseconds(1)))
        };
        for liked in &snapshot.liked_tracks {
            self.absorb_track(&liked.track);
            let added_at = fill(user.tracks.last(), liked.added_at);
            user.tracks.push(Entry { id: liked.track.id.clone(), added_at });
        }
        for saved in &snapshot.saved_albums {
            self.absorb_album(&saved.album);
            let added_at = fill(user.albums.last(), saved.added_at);
            user.albums.push(Entry { id: saved.album.id.clone(), added_at });
        }
        for followed in &snapshot.followed_artists {
            let a = &followed.artist;
            self.artists.insert(
                a.id.clone(),
                ArtistRec { name: a.name.clone(), popularity: self.artists.get(&a.id).map_or(0.5, |r| r.popularity) },
            );
            let added_at = fill(user.artists.last(), None);
            user.artists.push(Entry { id: a.id.clone(), added_at });
        }
        for playlist in &snapshot.playlists {
            let owner = if playlist.owned { user_id.to_owned() } else { self.other_user("curator_", &playlist.id) };
            let mut collaborators = BTreeSet::new();
            if !playlist.owned && playlist.editable {
                collaborators.insert(user_id.to_owned());
            }
            if playlist.collaborative && collaborators.is_empty() {
                collaborators.insert(self.other_user("friend_", &playlist.id));
            }
            let mut sorted: Vec<&PlaylistItem> = playlist.items.iter().collect();
            sorted.sort_by_key(|item| item.position);
            let mut items = Vec::with_capacity(sorted.len());
            for item in sorted {
                self.absorb_track(&item.track);
                let item_id = match &item.item_id {
                    Some(id) if !items.iter().any(|i: &ItemRec| &i.item_id == id) => id.clone(),
                    _ => self.new_item_id(),
                };
                items.push(ItemRec {
                    item_id,
                    track_id: item.track.id.clone(),
                    added_at: item.added_at.map(millis).unwrap_or(now),
                });
            }
            let modified = self.tick();
            self.playlists.insert(
                playlist.id.clone(),
                PlaylistRec {
                    name: playlist.name.clone(),
                    owner,
                    collaborators,
                    created_at: now,
                    last_modified_at: modified,
                    items,
                },
            );
            if !user.playlists.iter().any(|e| e.id == playlist.id) {
                let added_at = fill(user.playlists.last(), None);
                user.playlists.push(Entry { id: playlist.id.clone(), added_at });
            }
        }
        self.users.insert(user_id.to_owned(), user);
        self.last_seeded = Some(user_id.to_owned());
    }

    /// Credits as the API conveys them: the first artist primary, the others featured
    /// (`featured_after_first`), named as the catalog names them.
    pub(crate) fn credits(&self, ids: &[String], featured_after_first: bool) -> Vec<ArtistCredit> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| ArtistCredit {
                id: Some(id.clone()),
                name: self.artists.get(id).map(|a| a.name.clone()).unwrap_or_default(),
                role: if featured_after_first && i > 0 { CreditRole::Featured } else { CreditRole::Primary },
            })
            .collect()
    }

    /// A catalog track in dnp-core types, as the API conveys it.
    pub(crate) fn track(&self, id: &str) -> Option<Track> {
        let rec = self.tracks.get(id)?;
        Some(Track {
            id: id.to_owned(),
            title: rec.title.clone(),
            artists: self.credits(&rec.artists, true),
            album: rec.album.as_ref().map(|album_id| {
                let album = self.albums.get(album_id);
                AlbumRef {
                    id: album_id.clone(),
                    title: album.map(|a| a.title.clone()).unwrap_or_default(),
                    artists: album.map(|a| self.credits(&a.artists, false)).unwrap_or_default(),
                }
            }),
            isrc: rec.isrc.clone(),
            duration_ms: rec.duration_ms,
            url: Some(format!("https://tidal.com/browse/track/{id}")),
        })
    }

    /// `user_id`'s library in dnp-core types, as the API conveys it.
    pub(crate) fn library(&self, user_id: &str) -> LibrarySnapshot {
        let mut snapshot = LibrarySnapshot::empty(self.provider.clone());
        let Some(user) = self.users.get(user_id) else {
            return snapshot;
        };
        snapshot.liked_tracks = user
            .tracks
            .iter()
            .filter_map(|e| {
                Some(LikedTrack {
                    track: self.track(&e.id)?,
                    added_at: Some(e.added_at),
                    entry_id: None,
                    disliked: false,
                })
            })
            .collect();
        snapshot.saved_albums = user
            .albums
            .iter()
            .filter_map(|e| {
                let album = self.albums.get(&e.id)?;
                Some(SavedAlbum {
                    album: Album {
                        id: e.id.clone(),
                        title: album.title.clone(),
                        artists: self.credits(&album.artists, false),
                        url: Some(format!("https://tidal.com/browse/album/{}", e.id)),
                    },
                    added_at: Some(e.added_at),
                })
            })
            .collect();
        snapshot.followed_artists = user
            .artists
            .iter()
            .filter_map(|e| {
                let artist = self.artists.get(&e.id)?;
                Some(FollowedArtist {
                    artist: Artist {
                        id: e.id.clone(),
                        name: artist.name.clone(),
                        url: Some(format!("https://tidal.com/browse/artist/{}", e.id)),
                    },
                    entry_id: None,
                })
            })
            .collect();
        snapshot.playlists = user
            .playlists
            .iter()
            .filter_map(|e| {
                let rec = self.playlists.get(&e.id)?;
                let items = rec
                    .items
                    .iter()
                    .enumerate()
                    .filter_map(|(position, item)| {
                        Some(PlaylistItem {
                            position: position as u32,
                            track: self.track(&item.track_id)?,
                            added_at: Some(item.added_at),
                            item_id: Some(item.item_id.clone()),
                        })
                    })
                    .collect();
                Some(Playlist {
                    id: e.id.clone(),
                    name: rec.name.clone(),
                    owned: rec.owner == user_id,
                    collaborative: !rec.collaborators.is_empty(),
                    editable: rec.can_edit(user_id),
                    version: Some(rec.version()),
                    items,
                    url: Some(format!("https://tidal.com/browse/playlist/{}", e.id)),
                })
            })
            .collect();
        snapshot
    }

    /// Forgets idempotency answers older than an hour.
    pub(crate) fn expire_idempotency(&mut self) {
        self.idempotency.retain(|_, a| a.at.elapsed() < IDEMPOTENCY_TTL);
    }
}

/// `at` truncated to whole milliseconds (the precision TIDAL's timestamps have).
pub(crate) fn millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}
