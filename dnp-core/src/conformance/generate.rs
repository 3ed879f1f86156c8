//! Realistic, seeded test libraries that span page boundaries.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::capability::Capabilities;
use crate::model::{
    Album, AlbumRef, Artist, ArtistCredit, CreditRole, FollowedArtist, LibrarySnapshot, LikedTrack, Playlist,
    PlaylistItem, SavedAlbum, Track,
};
use crate::{ActionKind, ProviderId};

/// How big a generated library is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibraryShape {
    /// Liked tracks.
    pub liked_tracks: usize,
    /// Saved albums.
    pub saved_albums: usize,
    /// Followed artists.
    pub followed_artists: usize,
    /// Playlists in all: two large editable ones (one owned, one collaborative), one
    /// followed (not editable), the rest small owned ones.
    pub playlists: usize,
    /// Items of each of the two large playlists.
    pub large_playlist_items: usize,
}

impl LibraryShape {
    /// A library whose every list spans a page boundary and is at least one full batch
    /// long, for `capabilities`: lists of `2 × page + 7` items (at least `max_batch + 5`),
    /// `page + 1` playlists, large playlists of `2 × page + 5` items.
    pub fn spanning(capabilities: &Capabilities) -> Self {
        let p = capabilities.page_sizes;
        let batch = |k: ActionKind| capabilities.max_batch(k) as usize;
        Self {
            liked_tracks: (2 * p.liked_tracks as usize + 7).max(batch(ActionKind::UnlikeTrack) + 5),
            saved_albums: (p.saved_albums as usize + 3).max(batch(ActionKind::RemoveAlbum) + 5),
            followed_artists: (p.followed_artists as usize + 2).max(batch(ActionKind::UnfollowArtist) + 5),
            playlists: (p.playlists as usize + 1).max(4),
            large_playlist_items: (2 * p.playlist_items as usize + 5).max(batch(ActionKind::RemovePlaylistItem) + 5),
        }
    }

    /// A small library (for quick runs): a few items of everything.
    pub fn small() -> Self {
        Self { liked_tracks: 12, saved_albums: 5, followed_artists: 6, playlists: 4, large_playlist_items: 10 }
    }
}

/// SplitMix64: small, portable, seeded.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// A base-62 id of `len` characters (the shape of Spotify ids).
    fn id(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..len).map(|_| ALPHABET[self.below(ALPHABET.len())] as char).collect()
    }

    fn word(&mut self) -> String {
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mi", "ra", "ven", "tor", "sa", "el", "do", "ni", "qua", "ri", "bel", "an", "zu", "mo", "fa",
            "li", "ster", "gon", "ya", "te", "sol", "vi",
        ];
        let n = 2 + self.below(2);
        let mut w: String = (0..n).map(|_| SYLLABLES[self.below(SYLLABLES.len())]).collect();
        if let Some(first) = w.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        w
    }

    fn isrc(&mut self) -> String {
        const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut s = String::from(["US", "GB", "DE", "FR", "SE"][self.below(5)]);
        for _ in 0..3 {
            s.push(LETTERS[self.below(26)] as char);
        }
        for _ in 0..7 {
            s.push(char::from(b'0' + self.below(10) as u8));
        }
        s
    }
}

/// The artist the generated library is built around (a "blocked artist" for the checks):
/// it is the first followed artist, the primary artist of some liked tracks, a featured
/// artist on others, the artist of a saved album, and appears in every editable playlist,
/// twice in each large one.
pub fn subject_artist(library: &LibrarySnapshot) -> Option<&Artist> {
    library.followed_artists.first().map(|f| &f.artist)
}

/// A deterministic library of `provider` for `seed`, shaped by `shape`.
///
/// Realistic enough to exercise every rule: featured credits (`artists[1..]`, and
/// "(feat. …)" titles), ISRCs on every track, albums with their artists, distinct
/// `added_at` timestamps (newest first), owned, collaborative and followed-but-not-owned
/// playlists, a track that occurs several times in one playlist. Ids are 22-character
/// base-62 strings, like Spotify's. [`subject_artist`] names the artist it centres on.
pub fn generate_library(provider: &ProviderId, seed: u64, shape: &LibraryShape) -> LibrarySnapshot {
    let mut rng = Rng(seed ^ 0x5EED_1B7A_2C3D_4E5F);
    let artist_count = (shape.followed_artists + 20).max(30);
    let artists: Vec<Artist> = (0..artist_count)
        .map(|i| {
            let name = if rng.chance(30) { format!("{} {}", rng.word(), rng.word()) } else { rng.word() };
            // Distinct names: a suffix where the syllables collide.
            Artist {
                id: rng.id(22),
                name: format!("{name}{}", if i > 0 && rng.chance(5) { " II" } else { "" }),
                url: None,
            }
        })
        .collect();
    let credit = |a: &Artist, role| ArtistCredit { id: Some(a.id.clone()), name: a.name.clone(), role };

    // Albums: the subject's first.
    let album_count = shape.saved_albums + 10;
    let albums: Vec<Album> = (0..album_count)
        .map(|i| {
            let main = if i == 0 { &artists[0] } else { &artists[1 + rng.below(artists.len() - 1)] };
            Album {
                id: rng.id(22),
                title: format!("{} {}", rng.word(), rng.word()),
                artists: vec![credit(main, CreditRole::Primary)],
                url: None,
            }
        })
        .collect();

    // Tracks: every fourth has the subject as primary, every seventh as featured.
    let track_count = shape.liked_tracks + shape.large_playlist_items * 2 + 40;
    let tracks: Vec<Track> = (0..track_count)
        .map(|i| {
            let album = &albums[rng.below(albums.len())];
            let main = if i % 4 == 0 { &artists[0] } else { &artists[1 + rng.below(artists.len() - 1)] };
            let mut credits = vec![credit(main, CreditRole::Primary)];
            if i % 7 == 3 {
                credits.push(credit(&artists[0], CreditRole::Featured));
            } else if rng.chance(20) {
                credits.push(credit(&artists[1 + rng.below(artists.len() - 1)], CreditRole::Featured));
            }
            let mut title = format!("{} {}", rng.word(), rng.word());
            if credits.len() > 1 && rng.chance(50) {
                title.push_str(&format!(" (feat. {})", credits[1].name));
            }
            Track {
                id: rng.id(22),
                title,
                artists: credits,
                album: Some(AlbumRef {
                    id: album.id.clone(),
                    title: album.title.clone(),
                    artists: album.artists.clone(),
                }),
                isrc: Some(rng.isrc()),
                duration_ms: Some(120_000 + rng.below(240_000) as u32),
                url: None,
            }
        })
        .collect();

    let epoch: DateTime<Utc> = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).single().unwrap_or_else(Utc::now);
    let liked_tracks = tracks
        .iter()
        .take(shape.liked_tracks)
        .enumerate()
        .map(|(i, t)| LikedTrack {
            track: t.clone(),
            added_at: Some(epoch - Duration::minutes(37 * i as i64 + 1)),
            entry_id: None,
            disliked: false,
        })
        .collect();
    let saved_albums = albums
        .iter()
        .take(shape.saved_albums)
        .enumerate()
        .map(|(i, a)| SavedAlbum { album: a.clone(), added_at: Some(epoch - Duration::hours(5 * i as i64 + 2)) })
        .collect();
    let followed_artists = artists
        .iter()
        .take(shape.followed_artists)
        .map(|a| FollowedArtist { artist: a.clone(), entry_id: None })
        .collect();

    // Playlist tracks come after the liked ones, so removals there are independent.
    let pool = &tracks[shape.liked_tracks.min(tracks.len())..];
    let subject_tracks: Vec<&Track> =
        pool.iter().filter(|t| t.artists[0].id.as_deref() == Some(artists[0].id.as_str())).collect();
    let mut playlists = Vec::with_capacity(shape.playlists);
    for p in 0..shape.playlists.max(3) {
        let (owned, collaborative, editable, len) = match p {
            0 => (true, false, true, shape.large_playlist_items),
            1 => (false, true, true, shape.large_playlist_items),
            2 => (false, false, false, 6.min(shape.large_playlist_items)),
            _ => (true, false, true, rng.below(4)),
        };
        let start = rng.below(pool.len().saturating_sub(len + 1).max(1));
        let mut items: Vec<Track> = pool.iter().skip(start).take(len).cloned().collect();
        // The subject in every editable playlist; in the large ones, one track twice more.
        if editable && !subject_tracks.is_empty() {
            let t = subject_tracks[p % subject_tracks.len()];
            if len >= 3 {
                items.truncate(len.saturating_sub(if p < 2 { 2 } else { 1 }));
                let at = rng.below(items.len() + 1);
                items.insert(at, t.clone());
                if p < 2 {
                    let at = rng.below(items.len() + 1);
                    items.insert(at, t.clone());
                }
            } else if len > 0 {
                items[0] = t.clone();
            }
        }
        playlists.push(Playlist {
            id: rng.id(22),
            name: format!("{} {}", rng.word(), ["Mix", "Drive", "Evenings", "Focus", "Party"][rng.below(5)]),
            owned,
            collaborative,
            editable,
            version: Some(rng.id(16)),
            items: items
                .into_iter()
                .enumerate()
                .map(|(i, track)| PlaylistItem {
                    position: i as u32,
                    track,
                    added_at: Some(epoch - Duration::hours(i as i64 + 1)),
                    item_id: None,
                })
                .collect(),
            url: None,
        });
    }
    playlists.truncate(shape.playlists.max(3));

    LibrarySnapshot {
        provider: provider.clone(),
        taken_at: None,
        liked_tracks,
        saved_albums,
        followed_artists,
        playlists,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_shaped() {
        let provider: ProviderId = "spotify".parse().unwrap();
        let shape = LibraryShape {
            liked_tracks: 107,
            saved_albums: 53,
            followed_artists: 52,
            playlists: 51,
            large_playlist_items: 105,
        };
        let a = generate_library(&provider, 7, &shape);
        assert_eq!(a, generate_library(&provider, 7, &shape));
        assert_ne!(a, generate_library(&provider, 8, &shape));
        assert_eq!(a.liked_tracks.len(), 107);
        assert_eq!(a.saved_albums.len(), 53);
        assert_eq!(a.followed_artists.len(), 52);
        assert_eq!(a.playlists.len(), 51);
        assert_eq!(a.playlists[0].items.len(), 105);
        let subject = subject_artist(&a).unwrap().id.clone();
        let dup = &a.playlists[0].items;
        let subject_items = dup.iter().filter(|i| i.track.artists[0].id.as_deref() == Some(&subject)).count();
        assert!(subject_items >= 2);
        assert!(a.liked_tracks.iter().any(|l| {
            l.track.artists.iter().any(|c| c.role == CreditRole::Featured && c.id.as_deref() == Some(&subject))
        }));
        assert!(a.playlists.iter().any(|p| !p.editable) && a.playlists.iter().any(|p| p.collaborative));
        let distinct: std::collections::BTreeSet<&str> = dup.iter().map(|i| i.track.id.as_str()).collect();
        assert!(distinct.len() >= 100, "{} distinct tracks", distinct.len());
        assert!(distinct.len() < dup.len(), "a track occurs more than once");
    }
}
