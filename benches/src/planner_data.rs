//! A realistic, reproducible library and DNP list for the planner benchmarks.
//!
//! Deterministic (a fixed-seed SplitMix64), no I/O. The shape follows what a large real
//! library looks like: artists with skewed popularity, albums by one or two artists,
//! about 1.3 artist credits a track (a quarter of tracks carry a featured artist, some
//! named in the title as "feat."), liked tracks plus hundreds of playlists of which a
//! fifth are followed (not editable) and the same track appears in several.

use chrono::{DateTime, TimeZone, Utc};
use dnp_core::{
    ActionKind, Album, AlbumRef, Artist, ArtistCredit, ArtistIdentity, Capabilities, CreditRole, DnpEntry, DnpList,
    EntryId, EntrySource, FollowedArtist, LibrarySnapshot, LikedTrack, PageSizes, Playlist, PlaylistItem,
    PlaylistRemoval, ProviderId, SavedAlbum, Track,
};
use uuid::Uuid;

/// The sizes of a generated library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Distinct artists in the catalog.
    pub artists: usize,
    /// Distinct albums in the catalog.
    pub albums: usize,
    /// Liked tracks.
    pub liked_tracks: usize,
    /// Playlists.
    pub playlists: usize,
    /// Items of each playlist.
    pub playlist_items: usize,
    /// Saved albums.
    pub saved_albums: usize,
    /// Followed artists.
    pub followed_artists: usize,
    /// Entries of the DNP list.
    pub dnp_entries: usize,
    /// Per mille of DNP entries with no id at the snapshot's provider (matched by name).
    pub name_only_per_mille: u32,
}

impl Shape {
    /// 1,000,000 library items (595,000 liked tracks, 800 playlists of 500 items, 3,000
    /// saved albums, 2,000 followed artists) against a 10,000-artist DNP list, one in ten
    /// entries known by name only.
    pub const MILLION: Self = Self {
        artists: 200_000,
        albums: 150_000,
        liked_tracks: 595_000,
        playlists: 800,
        playlist_items: 500,
        saved_albums: 3_000,
        followed_artists: 2_000,
        dnp_entries: 10_000,
        name_only_per_mille: 100,
    };

    /// A small shape for tests of the generator itself.
    pub const SMALL: Self = Self {
        artists: 2_000,
        albums: 1_500,
        liked_tracks: 5_000,
        playlists: 10,
        playlist_items: 200,
        saved_albums: 100,
        followed_artists: 100,
        dnp_entries: 100,
        name_only_per_mille: 100,
    };
}

/// A generated benchmark input.
#[derive(Debug, Clone)]
pub struct BenchInput {
    /// The library.
    pub snapshot: LibrarySnapshot,
    /// The DNP list.
    pub list: DnpList,
    /// Spotify-like capabilities.
    pub capabilities: Capabilities,
}

/// SplitMix64: small, fast, good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < per_mille as usize
    }

    /// A number in `0..n`, low numbers far more likely (popular artists).
    pub fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * n as f64) as usize
    }
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "vi", "re", "mon", "da", "shi", "ru", "ne", "tor", "bel", "za", "qui", "po", "lan", "se", "mi", "gro",
    "ve", "ta", "no", "é", "ul", "ax",
];

const WORDS: [&str; 16] = [
    "Night", "Golden", "River", "Summer", "Heart", "Fire", "Blue", "Dream", "City", "Love", "Road", "Home", "Light",
    "Rain", "Wild", "Echo",
];

fn base62(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..len).map(|_| ALPHABET[rng.below(ALPHABET.len())] as char).collect()
}

fn artist_name(rng: &mut Rng, n: usize) -> String {
    let word = |rng: &mut Rng| {
        let mut w = String::new();
        for _ in 0..2 + rng.below(2) {
            w.push_str(SYLLABLES[rng.below(SYLLABLES.len())]);
        }
        let mut c = w.chars();
        c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
    };
    // Names are unique: the index makes the last word distinct where syllables collide.
    match rng.below(10) {
        0..=4 => format!("{} {}", word(rng), word(rng)),
        5..=6 => format!("{}{}", word(rng), n),
        7 => format!("The {} {}", word(rng), n),
        8 => format!("{} & {} {}", word(rng), word(rng), n),
        _ => format!("DJ {}-{}", word(rng), n),
    }
}

fn title(rng: &mut Rng) -> String {
    let n = 1 + rng.below(3);
    let words: Vec<&str> = (0..n).map(|_| WORDS[rng.below(WORDS.len())]).collect();
    words.join(" ")
}

fn at(seconds: u64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_500_000_000 + seconds as i64, 0).single().unwrap_or_default()
}

/// Generates the benchmark input of `shape` from `seed`.
pub fn generate(shape: &Shape, seed: u64) -> BenchInput {
    let provider: ProviderId = ProviderId::new(ProviderId::SPOTIFY).unwrap_or_else(|_| unreachable!("valid id"));
    let mut rng = Rng::new(seed);

    let artists: Vec<Artist> = (0..shape.artists)
        .map(|n| Artist { id: base62(&mut rng, 22), name: artist_name(&mut rng, n), url: None })
        .collect();
    let credit = |a: &Artist, role: CreditRole| ArtistCredit { id: Some(a.id.clone()), name: a.name.clone(), role };

    let albums: Vec<Album> = (0..shape.albums)
        .map(|_| {
            let mut credits = vec![credit(&artists[rng.skewed(artists.len())], CreditRole::Primary)];
            if rng.chance(80) {
                credits.push(credit(&artists[rng.skewed(artists.len())], CreditRole::Primary));
            }
            Album { id: base62(&mut rng, 22), title: title(&mut rng), artists: credits, url: None }
        })
        .collect();

    let mut track_no = 0u64;
    let mut new_track = |rng: &mut Rng| {
        track_no += 1;
        let album = &albums[rng.below(albums.len())];
        let mut credits = album.artists.clone();
        let mut name = title(rng);
        if rng.chance(250) {
            let featured = &artists[rng.skewed(artists.len())];
            credits.push(credit(featured, CreditRole::Featured));
            if rng.chance(400) {
                name = format!("{name} (feat. {})", featured.name);
            }
        }
        Track {
            id: base62(rng, 22),
            title: name,
            artists: credits,
            album: Some(AlbumRef { id: album.id.clone(), title: album.title.clone(), artists: album.artists.clone() }),
            isrc: Some(format!("QZ{}{:07}", base62(rng, 3).to_ascii_uppercase(), track_no % 10_000_000)),
            duration_ms: Some(120_000 + rng.below(180_000) as u32),
            url: None,
        }
    };

    let liked_tracks: Vec<LikedTrack> = (0..shape.liked_tracks)
        .map(|n| LikedTrack {
            track: new_track(&mut rng),
            added_at: Some(at((shape.liked_tracks - n) as u64 * 600)),
            entry_id: None,
            disliked: false,
        })
        .collect();

    let playlists: Vec<Playlist> = (0..shape.playlists)
        .map(|p| {
            let kind = rng.below(10);
            let (owned, collaborative) = match kind {
                0..=6 => (true, false),
                7 => (false, true),
                _ => (false, false),
            };
            let items = (0..shape.playlist_items)
                .map(|i| {
                    // Half the items are tracks the user also liked.
                    let track = if rng.chance(500) && !liked_tracks.is_empty() {
                        liked_tracks[rng.below(liked_tracks.len())].track.clone()
                    } else {
                        new_track(&mut rng)
                    };
                    PlaylistItem { position: i as u32, track, added_at: Some(at(i as u64 * 60)), item_id: None }
                })
                .collect();
            Playlist {
                id: base62(&mut rng, 22),
                name: format!("{} #{p}", title(&mut rng)),
                owned,
                collaborative,
                editable: owned || collaborative,
                version: Some(base62(&mut rng, 32)),
                items,
                url: None,
            }
        })
        .collect();

    let saved_albums = (0..shape.saved_albums)
        .map(|n| SavedAlbum { album: albums[rng.below(albums.len())].clone(), added_at: Some(at(n as u64 * 3_600)) })
        .collect();
    let followed_artists = (0..shape.followed_artists)
        .map(|_| FollowedArtist { artist: artists[rng.skewed(artists.len())].clone(), entry_id: None })
        .collect();

    let snapshot = LibrarySnapshot {
        provider: provider.clone(),
        taken_at: Some(at(10_000_000)),
        liked_tracks,
        saved_albums,
        followed_artists,
        playlists,
    };

    // The DNP list: distinct artists sampled across the catalog.
    let mut picked = vec![false; artists.len()];
    let mut entries = Vec::with_capacity(shape.dnp_entries);
    while entries.len() < shape.dnp_entries.min(artists.len()) {
        let i = rng.below(artists.len());
        if std::mem::replace(&mut picked[i], true) {
            continue;
        }
        let a = &artists[i];
        let mut identity = ArtistIdentity::named(a.name.clone());
        if !rng.chance(shape.name_only_per_mille) {
            identity = identity.with_id(provider.clone(), a.id.clone());
        }
        if rng.chance(50) {
            identity.aliases.push(format!("{} (alias)", a.name));
        }
        entries.push(DnpEntry {
            id: EntryId(Uuid::from_u64_pair(seed, entries.len() as u64)),
            artist: identity,
            note: None,
            tags: Vec::new(),
            added_at: at(0),
            source: EntrySource::Personal,
        });
    }

    let pages =
        PageSizes { liked_tracks: 50, saved_albums: 50, followed_artists: 50, playlists: 50, playlist_items: 100 };
    let mut caps = Capabilities::builder(pages).playlist_removal(PlaylistRemoval::AllOccurrencesOfTrack);
    for kind in ActionKind::ALL {
        let max = match kind {
            ActionKind::UnlikeTrack | ActionKind::LikeTrack | ActionKind::RemoveAlbum | ActionKind::SaveAlbum => 40,
            ActionKind::UnfollowArtist | ActionKind::FollowArtist => 50,
            ActionKind::RemovePlaylistItem | ActionKind::InsertPlaylistItem => 100,
            ActionKind::DislikeTrack | ActionKind::ClearTrackRating => 1,
        };
        caps = caps.supported(kind, max);
    }
    BenchInput { snapshot, list: DnpList { entries }, capabilities: caps.build() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_shape_is_realistic_and_reproducible() {
        let a = generate(&Shape::SMALL, 7);
        let b = generate(&Shape::SMALL, 7);
        assert_eq!(a.snapshot, b.snapshot);
        assert_eq!(a.snapshot.item_count(), 5_000 + 10 * 200 + 100 + 100);
        let tracks: Vec<&Track> = a.snapshot.liked_tracks.iter().map(|l| &l.track).collect();
        let credits = tracks.iter().map(|t| t.artists.len()).sum::<usize>() as f64 / tracks.len() as f64;
        assert!((1.2..1.45).contains(&credits), "credits per track {credits}");
        assert!(tracks.iter().any(|t| t.title.contains("(feat. ")));
        assert_eq!(a.list.entries.len(), 100);
        let name_only = a.list.entries.iter().filter(|e| e.artist.provider_ids.is_empty()).count();
        assert!((1..40).contains(&name_only), "name-only entries {name_only}");
    }
}
