//! [`generate_library`]: realistic, seeded libraries for tests, benchmarks and the demo.

use std::collections::HashSet;

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use dnp_core::{
    AlbumRef, Artist, ArtistCredit, CreditRole, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist, PlaylistItem,
    ProviderId, SavedAlbum, Track,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

/// How big a generated library is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LibraryShape {
    /// Liked / saved tracks.
    pub liked_tracks: usize,
    /// Saved albums.
    pub saved_albums: usize,
    /// Followed artists.
    pub followed_artists: usize,
    /// Playlists.
    pub playlists: usize,
    /// Items in each playlist.
    pub items_per_playlist: usize,
}

impl LibraryShape {
    /// A small library for unit tests: 120 liked tracks (three pages of 50), 30 albums,
    /// 25 artists, 8 playlists of 60 items (every playlist kind, two pages each).
    pub const SMALL: Self =
        Self { liked_tracks: 120, saved_albums: 30, followed_artists: 25, playlists: 8, items_per_playlist: 60 };
    /// The demo's library: thousands of tracks.
    pub const DEMO: Self =
        Self { liked_tracks: 2500, saved_albums: 150, followed_artists: 120, playlists: 24, items_per_playlist: 80 };
    /// The scan benchmark's library: 10,000 liked tracks and 100 playlists of 100 items.
    pub const BENCHMARK: Self = Self {
        liked_tracks: 10_000,
        saved_albums: 200,
        followed_artists: 150,
        playlists: 100,
        items_per_playlist: 100,
    };
}

const ONSETS: &[&str] = &[
    "b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "kr", "l", "m", "n", "p", "r", "s", "sh", "st",
    "t", "tr", "v", "z", "",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ei", "ou", "ia", "y"];
const CODAS: &[&str] = &["", "", "", "n", "r", "l", "s", "x", "m", "th", "nd", "k"];
const ADJECTIVES: &[&str] = &[
    "Midnight", "Golden", "Paper", "Neon", "Silent", "Broken", "Electric", "Velvet", "Lonely", "Wild", "Crystal",
    "Burning", "Hollow", "Sweet", "Cold", "Endless", "Restless", "Blue", "Faded", "Savage", "Quiet", "Distant",
];
const NOUNS: &[&str] = &[
    "Hearts",
    "River",
    "Summer",
    "Lights",
    "Echoes",
    "Highway",
    "Dreams",
    "Fire",
    "Ocean",
    "City",
    "Shadows",
    "Thunder",
    "Mirror",
    "Garden",
    "Horizon",
    "Rain",
    "Satellite",
    "Stranger",
    "Diamonds",
    "Window",
    "Tide",
    "Wolves",
];
const VERBS: &[&str] =
    &["Running", "Falling", "Chasing", "Dancing", "Waiting", "Dreaming", "Drifting", "Calling", "Burning", "Holding"];
const PLAYLIST_WORDS: &[&str] =
    &["Mix", "Vibes", "Favourites", "Road Trip", "Workout", "Chill", "Party", "Focus", "Throwbacks", "Rainy Day"];
const COUNTRIES: &[&str] = &["US", "GB", "SE", "DE", "FR", "CA", "AU", "NL", "JP", "BR", "NG", "KR"];
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const URL_SAFE: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

/// The id conventions of one provider.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Spotify,
    AppleMusic,
    YouTube,
    Tidal,
    Other,
}

#[derive(Clone, Copy)]
enum Kind {
    Track,
    Album,
    Artist,
    Playlist,
}

struct Generator {
    rng: Xoshiro256PlusPlus,
    style: Style,
    used_ids: HashSet<String>,
    used_names: HashSet<String>,
    artists: Vec<Artist>,
    albums: Vec<AlbumRef>,
    isrc_serial: u32,
}

impl Generator {
    fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| char::from(alphabet[self.rng.random_range(0..alphabet.len())])).collect()
    }

    fn digits(&mut self, len: usize) -> String {
        let first = char::from(b'1' + self.rng.random_range(0..9u8));
        std::iter::once(first).chain(self.chars(b"0123456789", len - 1).chars()).collect()
    }

    fn id(&mut self, kind: Kind) -> String {
        loop {
            let id = match (self.style, kind) {
                (Style::Spotify | Style::Other, _) => self.chars(BASE62, 22),
                (Style::AppleMusic, Kind::Playlist) => format!("p.{}", self.chars(BASE62, 14)),
                (Style::AppleMusic, _) => self.digits(10),
                (Style::YouTube, Kind::Track) => self.chars(URL_SAFE, 11),
                (Style::YouTube, Kind::Artist) => format!("UC{}", self.chars(URL_SAFE, 22)),
                (Style::YouTube, Kind::Album) => format!("MPREb_{}", self.chars(BASE62, 11)),
                (Style::YouTube, Kind::Playlist) => format!("PL{}", self.chars(URL_SAFE, 32)),
                (Style::Tidal, Kind::Playlist) => uuid_like(&mut self.rng),
                (Style::Tidal, _) => self.digits(9),
            };
            if self.used_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    fn url(&self, kind: Kind, id: &str) -> Option<String> {
        let (spotify, apple, youtube, tidal) = match kind {
            Kind::Track => ("track", "song", "watch?v=", "track"),
            Kind::Album => ("album", "album", "browse/", "album"),
            Kind::Artist => ("artist", "artist", "channel/", "artist"),
            Kind::Playlist => ("playlist", "playlist", "playlist?list=", "playlist"),
        };
        match self.style {
            Style::Spotify => Some(format!("https://open.spotify.com/{spotify}/{id}")),
            Style::AppleMusic => Some(format!("https://music.apple.com/us/{apple}/{id}")),
            Style::YouTube => Some(format!("https://music.youtube.com/{youtube}{id}")),
            Style::Tidal => Some(format!("https://tidal.com/browse/{tidal}/{id}")),
            Style::Other => None,
        }
    }

    fn word(&mut self, syllables: usize) -> String {
        let mut word = String::new();
        for _ in 0..syllables {
            word.push_str(pick(&mut self.rng, ONSETS));
            word.push_str(pick(&mut self.rng, VOWELS));
        }
        word.push_str(pick(&mut self.rng, CODAS));
        capitalize(&word)
    }

    fn artist_name(&mut self) -> String {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let name = match self.rng.random_range(0..10u8) {
                0..=2 => {
                    let syllables = self.rng.random_range(2..=3);
                    self.word(syllables)
                }
                3..=5 => {
                    let first = self.word(2);
                    let syllables = self.rng.random_range(2..=3);
                    let last = self.word(syllables);
                    format!("{first} {last}")
                }
                6 => format!("The {} {}", pick(&mut self.rng, ADJECTIVES), pick(&mut self.rng, NOUNS)),
                7 => format!("DJ {}", self.word(2)),
                8 => format!("Lil {}", self.word(1)),
                _ => format!("{} & the {}", self.word(2), pick(&mut self.rng, NOUNS)),
            };
            let name = if attempt > 20 { format!("{name} {attempt}") } else { name };
            if self.used_names.insert(name.clone()) {
                return name;
            }
        }
    }

    fn title(&mut self) -> String {
        match self.rng.random_range(0..6u8) {
            0 | 1 => format!("{} {}", pick(&mut self.rng, ADJECTIVES), pick(&mut self.rng, NOUNS)),
            2 => pick(&mut self.rng, NOUNS).to_owned(),
            3 => format!("{} of {}", pick(&mut self.rng, NOUNS), pick(&mut self.rng, NOUNS)),
            4 => format!("{} {}", pick(&mut self.rng, VERBS), pick(&mut self.rng, NOUNS)),
            _ => format!("{} {}", self.word(2), pick(&mut self.rng, NOUNS)),
        }
    }

    fn isrc(&mut self) -> Option<String> {
        if self.style == Style::YouTube {
            return None;
        }
        self.isrc_serial += 1;
        let country = pick(&mut self.rng, COUNTRIES);
        let registrant = self.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 3);
        let year = self.rng.random_range(0..100u32);
        Some(format!("{country}{registrant}{year:02}{:05}", self.isrc_serial % 100_000))
    }

    fn credit(artist: &Artist, role: CreditRole) -> ArtistCredit {
        ArtistCredit { id: Some(artist.id.clone()), name: artist.name.clone(), role }
    }

    fn new_artist(&mut self) -> Artist {
        let id = self.id(Kind::Artist);
        let name = self.artist_name();
        let url = self.url(Kind::Artist, &id);
        let artist = Artist { id, name, url };
        self.artists.push(artist.clone());
        artist
    }

    fn new_album(&mut self) -> AlbumRef {
        let artist = self.artists[self.rng.random_range(0..self.artists.len())].clone();
        let id = self.id(Kind::Album);
        let title = self.title();
        let album = AlbumRef { id, title, artists: vec![Self::credit(&artist, CreditRole::Primary)] };
        self.albums.push(album.clone());
        album
    }

    /// One catalog track: ~20 % with featured credits (a third of those also say so in
    /// the title), ~2 % with a "feat." title naming an artist not credited.
    fn new_track(&mut self) -> Track {
        let album = self.albums[self.rng.random_range(0..self.albums.len())].clone();
        let primary = if self.rng.random_bool(0.9) {
            album.artists[0].clone()
        } else {
            let other = &self.artists[self.rng.random_range(0..self.artists.len())];
            Self::credit(other, CreditRole::Primary)
        };
        let mut artists = vec![primary];
        if self.rng.random_bool(0.2) {
            let count = if self.rng.random_bool(0.85) { 1 } else { 2 };
            while artists.len() < 1 + count {
                let candidate = &self.artists[self.rng.random_range(0..self.artists.len())];
                if artists.iter().all(|a| a.id.as_deref() != Some(candidate.id.as_str())) {
                    artists.push(Self::credit(candidate, CreditRole::Featured));
                }
            }
        }
        let mut title = self.title();
        if artists.len() > 1 && self.rng.random_bool(0.35) {
            let names: Vec<&str> = artists[1..].iter().map(|a| a.name.as_str()).collect();
            let word = if self.rng.random_bool(0.8) { "feat." } else { "with" };
            title = format!("{title} ({word} {})", names.join(" & "));
        } else if artists.len() == 1 && self.rng.random_bool(0.02) {
            let uncredited = self.artists[self.rng.random_range(0..self.artists.len())].name.clone();
            if uncredited != artists[0].name {
                title = format!("{title} (feat. {uncredited})");
            }
        }
        let id = self.id(Kind::Track);
        let url = self.url(Kind::Track, &id);
        Track {
            id,
            title,
            artists,
            album: Some(album),
            isrc: self.isrc(),
            duration_ms: Some(self.rng.random_range(95_000..=420_000)),
            url,
        }
    }

    fn version(&mut self) -> Option<String> {
        (self.style == Style::Spotify).then(|| format!("AAAA{}", self.chars(BASE62, 28)))
    }

    fn entry_id(&mut self) -> Option<String> {
        match self.style {
            Style::AppleMusic => Some(format!("i.{}", self.chars(BASE62, 14))),
            Style::YouTube => Some(self.chars(URL_SAFE, 34)),
            Style::Tidal => Some(uuid_like(&mut self.rng)),
            Style::Spotify | Style::Other => None,
        }
    }
}

fn uuid_like(rng: &mut Xoshiro256PlusPlus) -> String {
    let hex = |rng: &mut Xoshiro256PlusPlus, n: usize| -> String {
        (0..n).map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)])).collect()
    };
    format!("{}-{}-4{}-a{}-{}", hex(rng, 8), hex(rng, 4), hex(rng, 3), hex(rng, 3), hex(rng, 12))
}

fn pick<'a>(rng: &mut Xoshiro256PlusPlus, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Generates a realistic library of `provider`, the same for the same `(provider, shape,
/// seed)`, byte for byte.
///
/// - Artists are named from syllables ("Kalomir", "Mira Tolsen", "The Velvet Wolves",
///   "DJ Trasu"); ids, links and entry ids follow the provider's conventions (Spotify:
///   22-character base62 ids; Apple Music numeric ids and `i.` library ids; YouTube
///   video, `UC` channel and `PL` playlist ids, no ISRC; TIDAL numeric ids and item ids).
/// - Every track has exactly one primary artist, listed first; about 20 % also credit one
///   or two featured artists after it, a third of those say `(feat. …)` or `(with …)` in
///   the title; about 2 % say `(feat. X)` for an artist they do not credit. Most tracks'
///   primary artist is their album's artist. ISRCs are unique.
/// - Liked tracks and saved albums are distinct and newest first, with `added_at`
///   descending from 2026-06-01; followed artists are distinct.
/// - Playlists cycle through eight kinds: five owned, one owned and collaborative, one
///   collaborative owned by someone else (editable), one followed but not owned (not
///   editable). Items mix liked tracks with other catalog tracks; about 3 % of items repeat
///   an earlier item of the same playlist, and every fourth playlist with two or more
///   items has at least one duplicate. Spotify playlists carry a snapshot id.
///
/// ```
/// use dnp_core::ProviderId;
/// use dnp_providers::emulator::{LibraryShape, generate_library};
///
/// let spotify = ProviderId::new(ProviderId::SPOTIFY).unwrap();
/// let library = generate_library(&spotify, LibraryShape::SMALL, 7);
/// assert_eq!(library.liked_tracks.len(), 120);
/// assert_eq!(library, generate_library(&spotify, LibraryShape::SMALL, 7));
/// assert!(library.liked_tracks.iter().any(|t| t.track.artists.len() > 1));
/// ```
pub fn generate_library(provider: &ProviderId, shape: LibraryShape, seed: u64) -> LibrarySnapshot {
    let style = match provider.as_str() {
        ProviderId::SPOTIFY => Style::Spotify,
        ProviderId::APPLE_MUSIC => Style::AppleMusic,
        ProviderId::YOUTUBE_MUSIC => Style::YouTube,
        ProviderId::TIDAL => Style::Tidal,
        _ => Style::Other,
    };
    let mut g = Generator {
        rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        style,
        used_ids: HashSet::new(),
        used_names: HashSet::new(),
        artists: Vec::new(),
        albums: Vec::new(),
        isrc_serial: 0,
    };
    let playlist_items = shape.playlists.saturating_mul(shape.items_per_playlist);
    let artist_count = (shape.followed_artists + 10).max((shape.liked_tracks + playlist_items) / 6).max(12);
    for _ in 0..artist_count {
        g.new_artist();
    }
    let album_count = (shape.saved_albums + 5).max((shape.liked_tracks + playlist_items / 2) / 8).max(6);
    for _ in 0..album_count {
        g.new_album();
    }

    let base: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().unwrap_or_default();
    let mut when = base;
    let mut liked_tracks = Vec::with_capacity(shape.liked_tracks);
    for _ in 0..shape.liked_tracks {
        when -= ChronoDuration::minutes(g.rng.random_range(5..=3000));
        liked_tracks.push(LikedTrack {
            track: g.new_track(),
            added_at: Some(when),
            entry_id: g.entry_id(),
            disliked: false,
        });
    }

    let mut album_order: Vec<usize> = (0..g.albums.len()).collect();
    album_order.shuffle(&mut g.rng);
    let mut when = base;
    let saved_albums = album_order
        .into_iter()
        .take(shape.saved_albums)
        .map(|i| {
            when -= ChronoDuration::minutes(g.rng.random_range(60..=20_000));
            let album = &g.albums[i];
            let url = g.url(Kind::Album, &album.id);
            SavedAlbum {
                album: dnp_core::Album {
                    id: album.id.clone(),
                    title: album.title.clone(),
                    artists: album.artists.clone(),
                    url,
                },
                added_at: Some(when),
            }
        })
        .collect::<Vec<_>>();

    let mut artist_order: Vec<usize> = (0..g.artists.len()).collect();
    artist_order.shuffle(&mut g.rng);
    let followed_artists = artist_order
        .into_iter()
        .take(shape.followed_artists)
        .map(|i| {
            let artist = g.artists[i].clone();
            let entry_id = if style == Style::YouTube { g.entry_id() } else { None };
            FollowedArtist { artist, entry_id }
        })
        .collect::<Vec<_>>();

    let mut playlists = Vec::with_capacity(shape.playlists);
    for p in 0..shape.playlists {
        let (owned, collaborative, editable) = match p % 8 {
            5 => (true, true, true),
            6 => (false, true, true),
            7 => (false, false, false),
            _ => (true, false, true),
        };
        let name = match g.rng.random_range(0..3u8) {
            0 => format!("{} {}", pick(&mut g.rng, ADJECTIVES), pick(&mut g.rng, PLAYLIST_WORDS)),
            1 => format!("{} {}", pick(&mut g.rng, NOUNS), pick(&mut g.rng, PLAYLIST_WORDS)),
            _ => format!("{} #{}", pick(&mut g.rng, PLAYLIST_WORDS), p + 1),
        };
        let mut when = base - ChronoDuration::days(g.rng.random_range(30..=900));
        let mut items: Vec<PlaylistItem> = Vec::with_capacity(shape.items_per_playlist);
        let force_duplicate = p % 4 == 1 && shape.items_per_playlist >= 2;
        for position in 0..shape.items_per_playlist {
            let last = position + 1 == shape.items_per_playlist;
            let duplicate = !items.is_empty() && (g.rng.random_bool(0.03) || (last && force_duplicate));
            let track = if duplicate {
                items[g.rng.random_range(0..items.len())].track.clone()
            } else if !liked_tracks.is_empty() && g.rng.random_bool(0.5) {
                liked_tracks[g.rng.random_range(0..liked_tracks.len())].track.clone()
            } else {
                g.new_track()
            };
            when += ChronoDuration::minutes(g.rng.random_range(1..=2000));
            let item_id = g.entry_id();
            items.push(PlaylistItem { position: position as u32, track, added_at: Some(when), item_id });
        }
        let id = g.id(Kind::Playlist);
        let url = g.url(Kind::Playlist, &id);
        playlists.push(Playlist { id, name, owned, collaborative, editable, version: g.version(), items, url });
    }

    LibrarySnapshot {
        provider: provider.clone(),
        taken_at: None,
        liked_tracks,
        saved_albums,
        followed_artists,
        playlists,
    }
}
