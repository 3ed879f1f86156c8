//! The emulator's state: channels, videos, users (their ratings, subscriptions and
//! playlists), playlists with their items, and the project's quota.

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use dnp_core::normalize::{featured_in_title, normalize_name};
use dnp_core::{
    Artist, CreditRole, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist, PlaylistItem, ProviderId, Track,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use sha2::{Digest, Sha256};

use crate::youtube_music::model::{TOPIC_SUFFIX, channel_artist_name, channel_url, playlist_url, video_track};
use crate::youtube_music::quota::{DEFAULT_DAILY_QUOTA, QuotaClock, quota_day};

const ID_CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

#[derive(Debug, Clone)]
pub(crate) struct ChannelRec {
    pub(crate) title: String,
    pub(crate) published_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct VideoRec {
    pub(crate) title: String,
    pub(crate) channel_id: String,
    pub(crate) duration_ms: Option<u32>,
    pub(crate) published_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct SubRec {
    pub(crate) id: String,
    pub(crate) channel_id: String,
    pub(crate) published_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct UserRec {
    pub(crate) channel_id: String,
    /// Videos rated "like", the latest rating first (as `myRating=like` lists them).
    pub(crate) liked: Vec<String>,
    /// Videos rated "dislike", the latest first.
    pub(crate) disliked: Vec<String>,
    /// Subscriptions, the latest first.
    pub(crate) subscriptions: Vec<SubRec>,
    /// The user's own playlists, in the order `playlists.list?mine=true` lists them.
    pub(crate) playlists: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ItemRec {
    pub(crate) id: String,
    pub(crate) video_id: String,
    pub(crate) added_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct PlaylistRec {
    pub(crate) title: String,
    /// The owning channel (a user's, or a made-up one for playlists of others).
    pub(crate) channel_id: String,
    pub(crate) items: Vec<ItemRec>,
    /// Bumped on every change; the etag is derived from it.
    pub(crate) revision: u64,
    pub(crate) published_at: DateTime<Utc>,
}

/// The project's quota as the emulator counts it (all users share it).
#[derive(Debug, Clone)]
pub(crate) struct QuotaState {
    pub(crate) daily: u64,
    pub(crate) used: u64,
    pub(crate) day: NaiveDate,
    /// Where "now" comes from (the system clock unless a test fixed it).
    pub(crate) clock: QuotaClock,
}

impl QuotaState {
    /// Starts a new day's count when the clock has passed midnight Pacific.
    fn roll_over(&mut self) {
        let day = quota_day(self.clock.now());
        if day != self.day {
            self.day = day;
            self.used = 0;
        }
    }

    /// Charges `cost` units now, or says the day is spent (nothing charged).
    pub(crate) fn charge(&mut self, cost: u64) -> bool {
        self.roll_over();
        if self.used.saturating_add(cost) > self.daily {
            return false;
        }
        self.used += cost;
        true
    }

    /// Units spent today.
    pub(crate) fn used_now(&mut self) -> u64 {
        self.roll_over();
        self.used
    }
}

/// The whole emulated service.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) provider: ProviderId,
    pub(crate) channels: BTreeMap<String, ChannelRec>,
    pub(crate) videos: BTreeMap<String, VideoRec>,
    pub(crate) users: BTreeMap<String, UserRec>,
    pub(crate) playlists: HashMap<String, PlaylistRec>,
    pub(crate) rng: Xoshiro256PlusPlus,
    pub(crate) last_seeded: Option<String>,
    pub(crate) quota: QuotaState,
}

/// A short, stable, opaque hash of `parts` (base64url), for etags and derived ids.
pub(crate) fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    URL_SAFE_NO_PAD.encode(&hasher.finalize()[..20])
}

/// A user's channel id: `UC` and 22 characters derived from the user id.
pub(crate) fn user_channel_id(user_id: &str) -> String {
    let hash = digest(&["channel", user_id]);
    format!("UC{}", &hash[..22])
}

/// Whole seconds, as the Data API's timestamps are.
fn seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

impl Store {
    pub(crate) fn new(provider: ProviderId, seed: u64) -> Self {
        Self {
            provider,
            channels: BTreeMap::new(),
            videos: BTreeMap::new(),
            users: BTreeMap::new(),
            playlists: HashMap::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x0079_0075_7475_6265),
            last_seeded: None,
            quota: QuotaState { daily: DEFAULT_DAILY_QUOTA, used: 0, day: NaiveDate::MIN, clock: QuotaClock::system() },
        }
    }

    /// A new random id of `len` characters after `prefix` (YouTube's alphabet).
    pub(crate) fn new_id(&mut self, prefix: &str, len: usize) -> String {
        let tail: String = (0..len).map(|_| char::from(ID_CHARS[self.rng.random_range(0..ID_CHARS.len())])).collect();
        format!("{prefix}{tail}")
    }

    /// The user `user_id`, created (with no library) when unknown.
    pub(crate) fn user_mut(&mut self, user_id: &str) -> &mut UserRec {
        let channel_id = user_channel_id(user_id);
        if !self.channels.contains_key(&channel_id) {
            self.channels
                .insert(channel_id.clone(), ChannelRec { title: display_name(user_id), published_at: Utc::now() });
        }
        self.users.entry(user_id.to_owned()).or_insert_with(|| UserRec {
            channel_id,
            liked: Vec::new(),
            disliked: Vec::new(),
            subscriptions: Vec::new(),
            playlists: Vec::new(),
        })
    }

    /// The etag of a playlist: changes with every change to it.
    pub(crate) fn playlist_etag(id: &str, playlist: &PlaylistRec) -> String {
        digest(&["playlist", id, &playlist.revision.to_string(), &playlist.title])
    }

    /// The channel of an artist: its id and `"Name - Topic"`, kept as first seen.
    fn absorb_channel(&mut self, id: &str, artist_name: &str) {
        self.channels.entry(id.to_owned()).or_insert_with(|| ChannelRec {
            title: format!("{artist_name}{TOPIC_SUFFIX}"),
            published_at: seconds(Utc::now()),
        });
    }

    /// Puts `track` in the catalog (replacing an earlier version) as a video of its first artist's `"Artist - Topic"`
    /// channel; credits YouTube cannot carry are written into the title ("(feat. B)",
    /// "(with C)" for further primary artists), as YouTube Music's own titles do.
    pub(crate) fn absorb_track(&mut self, track: &Track) {
        let (channel_id, channel_name) = match track.artists.first() {
            Some(first) => (
                first.id.clone().unwrap_or_else(|| format!("UC{}", &digest(&["artist", &first.name])[..22])),
                first.name.clone(),
            ),
            None => (format!("UC{}", &digest(&["unknown artist"])[..22]), "Unknown Artist".to_owned()),
        };
        self.absorb_channel(&channel_id, &channel_name);
        let named: HashSet<String> = featured_in_title(&track.title).into_iter().collect();
        let mut title = track.title.clone();
        let missing = |role: CreditRole| -> Vec<&str> {
            track
                .artists
                .iter()
                .skip(1)
                .filter(|a| a.role == role && !named.contains(&normalize_name(&a.name)))
                .map(|a| a.name.as_str())
                .collect()
        };
        let featured = missing(CreditRole::Featured);
        if !featured.is_empty() {
            title.push_str(&format!(" (feat. {})", featured.join(", ")));
        }
        let with = missing(CreditRole::Primary);
        if !with.is_empty() {
            title.push_str(&format!(" (with {})", with.join(", ")));
        }
        let published_at = self.videos.get(&track.id).map_or_else(|| seconds(Utc::now()), |v| v.published_at);
        self.videos.insert(
            track.id.clone(),
            // YouTube knows durations to the second.
            VideoRec {
                title,
                channel_id,
                duration_ms: track.duration_ms.map(|ms| (ms + 500) / 1000 * 1000),
                published_at,
            },
        );
    }

    /// A stable made-up channel owning a playlist the seeded user does not own.
    fn other_channel(&mut self, playlist_id: &str) -> String {
        let id = format!("UC{}", &digest(&["curator", playlist_id])[..22]);
        let suffix: String = playlist_id.chars().filter(char::is_ascii_alphanumeric).take(6).collect();
        self.channels
            .entry(id.clone())
            .or_insert_with(|| ChannelRec { title: format!("Curator {suffix}"), published_at: seconds(Utc::now()) });
        id
    }

    /// Replaces `user_id`'s library with `snapshot` (see `YouTubeMusicEmulator::seed_user`).
    pub(crate) fn seed(&mut self, user_id: &str, snapshot: &LibrarySnapshot) {
        let channel_id = self.user_mut(user_id).channel_id.clone();
        // The user's former playlists go with the former library.
        if let Some(old) = self.users.get(user_id) {
            for id in old.playlists.clone() {
                self.playlists.remove(&id);
            }
        }
        let mut liked = Vec::new();
        for l in &snapshot.liked_tracks {
            self.absorb_track(&l.track);
            if !l.disliked && !liked.contains(&l.track.id) {
                liked.push(l.track.id.clone());
            }
        }
        let disliked: Vec<String> =
            snapshot.liked_tracks.iter().filter(|l| l.disliked).map(|l| l.track.id.clone()).collect();
        let mut subscriptions: Vec<SubRec> = Vec::new();
        for f in &snapshot.followed_artists {
            self.absorb_channel(&f.artist.id, &f.artist.name);
            if f.artist.id == channel_id || subscriptions.iter().any(|s| s.channel_id == f.artist.id) {
                continue;
            }
            let id = match &f.entry_id {
                Some(id) => id.clone(),
                None => self.new_id("", 43),
            };
            subscriptions.push(SubRec { id, channel_id: f.artist.id.clone(), published_at: seconds(Utc::now()) });
        }
        let mut own = Vec::new();
        for p in &snapshot.playlists {
            let owner = if p.owned { channel_id.clone() } else { self.other_channel(&p.id) };
            let mut sorted: Vec<&PlaylistItem> = p.items.iter().collect();
            sorted.sort_by_key(|i| i.position);
            let mut items = Vec::with_capacity(sorted.len());
            for item in sorted {
                self.absorb_track(&item.track);
                let id = match &item.item_id {
                    Some(id) => id.clone(),
                    None => self.new_id("PLI", 40),
                };
                let added_at = seconds(item.added_at.unwrap_or_else(Utc::now));
                items.push(ItemRec { id, video_id: item.track.id.clone(), added_at });
            }
            let rec = PlaylistRec {
                title: p.name.clone(),
                channel_id: owner,
                items,
                revision: 0,
                published_at: seconds(Utc::now()),
            };
            self.playlists.insert(p.id.clone(), rec);
            if p.owned && !own.contains(&p.id) {
                own.push(p.id.clone());
            }
        }
        let user = self.user_mut(user_id);
        user.liked = liked;
        user.disliked = disliked;
        user.subscriptions = subscriptions;
        user.playlists = own;
        self.last_seeded = Some(user_id.to_owned());
    }

    /// The video `id` as dnp reads it.
    pub(crate) fn track(&self, id: &str) -> Option<Track> {
        let video = self.videos.get(id)?;
        let channel = self.channels.get(&video.channel_id)?;
        Some(video_track(id, &video.title, &video.channel_id, &channel.title, video.duration_ms))
    }

    /// `user_id`'s library in dnp-core types, as the Data API exposes it.
    pub(crate) fn library(&self, user_id: &str) -> LibrarySnapshot {
        let mut snapshot = LibrarySnapshot::empty(self.provider.clone());
        let Some(user) = self.users.get(user_id) else {
            return snapshot;
        };
        snapshot.liked_tracks = user
            .liked
            .iter()
            .filter_map(|id| {
                Some(LikedTrack { track: self.track(id)?, added_at: None, entry_id: None, disliked: false })
            })
            .collect();
        snapshot.followed_artists = user
            .subscriptions
            .iter()
            .filter_map(|s| {
                let channel = self.channels.get(&s.channel_id)?;
                Some(FollowedArtist {
                    artist: Artist {
                        id: s.channel_id.clone(),
                        name: channel_artist_name(&channel.title).to_owned(),
                        url: Some(channel_url(&s.channel_id)),
                    },
                    entry_id: Some(s.id.clone()),
                })
            })
            .collect();
        snapshot.playlists = user
            .playlists
            .iter()
            .filter_map(|id| {
                let rec = self.playlists.get(id)?;
                let items = rec
                    .items
                    .iter()
                    .enumerate()
                    .filter_map(|(position, item)| {
                        Some(PlaylistItem {
                            position: position as u32,
                            track: self.track(&item.video_id)?,
                            added_at: Some(item.added_at),
                            item_id: Some(item.id.clone()),
                        })
                    })
                    .collect();
                Some(Playlist {
                    id: id.clone(),
                    name: rec.title.clone(),
                    owned: true,
                    collaborative: false,
                    editable: true,
                    version: Some(Self::playlist_etag(id, rec)),
                    items,
                    url: Some(playlist_url(id)),
                })
            })
            .collect();
        snapshot
    }

    /// The playlist holding item `item_id`, and the item's index.
    pub(crate) fn find_item(&self, item_id: &str) -> Option<(String, usize)> {
        self.playlists
            .iter()
            .find_map(|(pid, p)| p.items.iter().position(|i| i.id == item_id).map(|at| (pid.clone(), at)))
    }

    /// Adds `video_id` at `position` of `playlist_id` (appended when `None`); the new item.
    pub(crate) fn insert_item(
        &mut self,
        playlist_id: &str,
        video_id: &str,
        position: Option<usize>,
    ) -> Option<ItemRec> {
        let id = self.new_id("PLI", 40);
        let playlist = self.playlists.get_mut(playlist_id)?;
        let at = position.unwrap_or(playlist.items.len()).min(playlist.items.len());
        let item = ItemRec { id, video_id: video_id.to_owned(), added_at: seconds(Utc::now()) };
        playlist.items.insert(at, item.clone());
        playlist.revision += 1;
        Some(item)
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
