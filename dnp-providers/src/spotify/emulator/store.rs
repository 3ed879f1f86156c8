//! The emulator's state: the catalog, users' libraries and playlists, kept in dnp-core
//! types where they fit so that seeding and reading back are lossless.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use dnp_core::{
    Album, AlbumRef, Artist, ArtistCredit, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist, PlaylistItem,
    ProviderId, SavedAlbum, Track,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Clone)]
pub(crate) struct ArtistRec {
    pub(crate) name: String,
    pub(crate) url: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct AlbumRec {
    pub(crate) title: String,
    pub(crate) artists: Vec<ArtistCredit>,
    pub(crate) url: Option<String>,
    /// Catalog tracks on this album, in the order they became known (track numbers).
    pub(crate) tracks: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct LikedRec {
    pub(crate) track_id: String,
    pub(crate) added_at: Option<DateTime<Utc>>,
    pub(crate) entry_id: Option<String>,
    pub(crate) disliked: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct SavedAlbumRec {
    pub(crate) album_id: String,
    pub(crate) added_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub(crate) struct FollowRec {
    pub(crate) artist_id: String,
    pub(crate) entry_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct UserRec {
    pub(crate) display_name: String,
    pub(crate) liked: Vec<LikedRec>,
    pub(crate) albums: Vec<SavedAlbumRec>,
    pub(crate) following: Vec<FollowRec>,
    pub(crate) followed_users: Vec<String>,
    /// Playlist ids in the order `/me/playlists` lists them.
    pub(crate) playlists: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ItemRec {
    pub(crate) track_id: String,
    pub(crate) added_at: Option<DateTime<Utc>>,
    pub(crate) added_by: String,
    pub(crate) item_id: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct PlaylistRec {
    pub(crate) name: String,
    pub(crate) owner: String,
    pub(crate) collaborative: bool,
    pub(crate) collaborators: BTreeSet<String>,
    pub(crate) public: bool,
    pub(crate) snapshot_id: String,
    /// Every snapshot id this playlist had (a stale one is still accepted, as Spotify does).
    pub(crate) history: HashSet<String>,
    pub(crate) items: Vec<ItemRec>,
    pub(crate) url: Option<String>,
}

impl PlaylistRec {
    pub(crate) fn can_edit(&self, user_id: &str) -> bool {
        self.owner == user_id || self.collaborators.contains(user_id)
    }
}

/// The whole emulated service.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) provider: ProviderId,
    pub(crate) artists: BTreeMap<String, ArtistRec>,
    pub(crate) albums: BTreeMap<String, AlbumRec>,
    pub(crate) tracks: BTreeMap<String, Track>,
    pub(crate) users: BTreeMap<String, UserRec>,
    pub(crate) playlists: HashMap<String, PlaylistRec>,
    pub(crate) rng: Xoshiro256PlusPlus,
    pub(crate) last_seeded: Option<String>,
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
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5f07_1f1e),
            last_seeded: None,
        }
    }

    /// A new snapshot id in Spotify's style (base64-looking, 32 characters).
    pub(crate) fn new_snapshot_id(&mut self) -> String {
        let tail: String = (0..28).map(|_| char::from(BASE62[self.rng.random_range(0..BASE62.len())])).collect();
        format!("AAAA{tail}")
    }

    /// Gives `playlist_id` a new snapshot id and returns it.
    pub(crate) fn bump_snapshot(&mut self, playlist_id: &str) -> Option<String> {
        let snapshot = self.new_snapshot_id();
        let playlist = self.playlists.get_mut(playlist_id)?;
        playlist.snapshot_id = snapshot.clone();
        playlist.history.insert(snapshot.clone());
        Some(snapshot)
    }

    fn absorb_credit(&mut self, credit: &ArtistCredit) {
        if let Some(id) = &credit.id {
            self.artists.entry(id.clone()).or_insert_with(|| ArtistRec { name: credit.name.clone(), url: None });
        }
    }

    fn absorb_album_ref(&mut self, album: &AlbumRef) {
        for credit in &album.artists {
            self.absorb_credit(credit);
        }
        self.albums.entry(album.id.clone()).or_insert_with(|| AlbumRec {
            title: album.title.clone(),
            artists: album.artists.clone(),
            url: None,
            tracks: Vec::new(),
        });
    }

    /// Puts `track` in the catalog (replacing an earlier version of it).
    pub(crate) fn absorb_track(&mut self, track: &Track) {
        for credit in &track.artists {
            self.absorb_credit(credit);
        }
        if let Some(album) = &track.album {
            self.absorb_album_ref(album);
            if let Some(rec) = self.albums.get_mut(&album.id)
                && !rec.tracks.contains(&track.id)
            {
                rec.tracks.push(track.id.clone());
            }
        }
        self.tracks.insert(track.id.clone(), track.clone());
    }

    fn absorb_album(&mut self, album: &Album) {
        for credit in &album.artists {
            self.absorb_credit(credit);
        }
        let rec = self.albums.entry(album.id.clone()).or_insert_with(|| AlbumRec {
            title: String::new(),
            artists: Vec::new(),
            url: None,
            tracks: Vec::new(),
        });
        rec.title = album.title.clone();
        rec.artists = album.artists.clone();
        rec.url = album.url.clone();
    }

    fn absorb_artist(&mut self, artist: &Artist) {
        self.artists.insert(artist.id.clone(), ArtistRec { name: artist.name.clone(), url: artist.url.clone() });
    }

    /// The owner of a playlist the seeded user does not own: a stable made-up user.
    fn other_owner(&mut self, playlist_id: &str) -> String {
        let suffix: String = playlist_id.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
        let owner = format!("curator_{}", suffix.to_ascii_lowercase());
        self.users
            .entry(owner.clone())
            .or_insert_with(|| UserRec { display_name: format!("Curator {suffix}"), ..UserRec::default() });
        owner
    }

    /// Replaces `user_id`'s library with `snapshot` (see `SpotifyEmulator::seed_user`).
    pub(crate) fn seed(&mut self, user_id: &str, snapshot: &LibrarySnapshot) {
        let mut user = UserRec { display_name: display_name(user_id), ..UserRec::default() };
        for liked in &snapshot.liked_tracks {
            self.absorb_track(&liked.track);
            user.liked.push(LikedRec {
                track_id: liked.track.id.clone(),
                added_at: liked.added_at,
                entry_id: liked.entry_id.clone(),
                disliked: liked.disliked,
            });
        }
        for saved in &snapshot.saved_albums {
            self.absorb_album(&saved.album);
            user.albums.push(SavedAlbumRec { album_id: saved.album.id.clone(), added_at: saved.added_at });
        }
        for followed in &snapshot.followed_artists {
            self.absorb_artist(&followed.artist);
            user.following
                .push(FollowRec { artist_id: followed.artist.id.clone(), entry_id: followed.entry_id.clone() });
        }
        for playlist in &snapshot.playlists {
            let owner = if playlist.owned { user_id.to_owned() } else { self.other_owner(&playlist.id) };
            let mut collaborators = BTreeSet::new();
            if !playlist.owned && playlist.editable {
                collaborators.insert(user_id.to_owned());
            }
            let mut items = Vec::with_capacity(playlist.items.len());
            let mut sorted: Vec<&PlaylistItem> = playlist.items.iter().collect();
            sorted.sort_by_key(|item| item.position);
            for item in sorted {
                self.absorb_track(&item.track);
                items.push(ItemRec {
                    track_id: item.track.id.clone(),
                    added_at: item.added_at,
                    added_by: owner.clone(),
                    item_id: item.item_id.clone(),
                });
            }
            let snapshot_id = match &playlist.version {
                Some(version) => version.clone(),
                None => self.new_snapshot_id(),
            };
            let rec = PlaylistRec {
                name: playlist.name.clone(),
                owner,
                collaborative: playlist.collaborative,
                collaborators,
                public: !playlist.collaborative,
                history: HashSet::from([snapshot_id.clone()]),
                snapshot_id,
                items,
                url: playlist.url.clone(),
            };
            self.playlists.insert(playlist.id.clone(), rec);
            if !user.playlists.contains(&playlist.id) {
                user.playlists.push(playlist.id.clone());
            }
        }
        self.users.insert(user_id.to_owned(), user);
        self.last_seeded = Some(user_id.to_owned());
    }

    /// `user_id`'s library in dnp-core types, playlist positions renumbered.
    pub(crate) fn library(&self, user_id: &str) -> LibrarySnapshot {
        let mut snapshot = LibrarySnapshot::empty(self.provider.clone());
        let Some(user) = self.users.get(user_id) else {
            return snapshot;
        };
        snapshot.liked_tracks = user
            .liked
            .iter()
            .filter_map(|rec| {
                Some(LikedTrack {
                    track: self.tracks.get(&rec.track_id)?.clone(),
                    added_at: rec.added_at,
                    entry_id: rec.entry_id.clone(),
                    disliked: rec.disliked,
                })
            })
            .collect();
        snapshot.saved_albums = user
            .albums
            .iter()
            .filter_map(|rec| {
                let album = self.albums.get(&rec.album_id)?;
                Some(SavedAlbum {
                    album: Album {
                        id: rec.album_id.clone(),
                        title: album.title.clone(),
                        artists: album.artists.clone(),
                        url: album.url.clone(),
                    },
                    added_at: rec.added_at,
                })
            })
            .collect();
        snapshot.followed_artists = user
            .following
            .iter()
            .filter_map(|rec| {
                let artist = self.artists.get(&rec.artist_id)?;
                Some(FollowedArtist {
                    artist: Artist { id: rec.artist_id.clone(), name: artist.name.clone(), url: artist.url.clone() },
                    entry_id: rec.entry_id.clone(),
                })
            })
            .collect();
        snapshot.playlists = user
            .playlists
            .iter()
            .filter_map(|id| {
                let rec = self.playlists.get(id)?;
                let owned = rec.owner == user_id;
                let items = rec
                    .items
                    .iter()
                    .filter_map(|item| {
                        Some(PlaylistItem {
                            position: 0,
                            track: self.tracks.get(&item.track_id)?.clone(),
                            added_at: item.added_at,
                            item_id: item.item_id.clone(),
                        })
                    })
                    .collect();
                Some(Playlist {
                    id: id.clone(),
                    name: rec.name.clone(),
                    owned,
                    collaborative: rec.collaborative,
                    editable: rec.can_edit(user_id),
                    version: Some(rec.snapshot_id.clone()),
                    items,
                    url: rec.url.clone(),
                })
            })
            .collect();
        snapshot.renumber_playlists();
        snapshot
    }
}

/// A display name for a user id: `alice_b` -> `Alice B`.
pub(crate) fn display_name(user_id: &str) -> String {
    user_id
        .split(['_', '.', '-'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}
