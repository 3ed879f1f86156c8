//! The JSON of the Apple Music API that dnp reads and writes, and its mapping to dnp's
//! model.
//!
//! Apple's resources are `{id, type, href, attributes, relationships}`; related resources
//! asked for with `include` are embedded in `relationships.<name>.data[]` with their own
//! attributes. Lists are `{data, next, meta: {total}}`; errors `{errors: [{status, code,
//! title, detail}]}` (read by the shared [`ErrorBody`](crate::http::ErrorBody)).
//!
//! # Ids
//! A library item has a library id (`i.…` songs, `l.…` albums, `r.…` artists, `p.…`
//! playlists) and, when it comes from the Apple Music catalog, a catalog id (digits) through
//! its `catalog` relationship or `playParams.catalogId`. dnp's [`Track::id`], [`Album::id`]
//! and [`Artist::id`] are the catalog ids (the same for every user, what ratings take and
//! what a DNP entry names); the library id is kept as
//! [`LikedTrack::entry_id`](dnp_core::LikedTrack::entry_id) /
//! [`FollowedArtist::entry_id`](dnp_core::FollowedArtist::entry_id). A library song with no
//! catalog counterpart (an upload) keeps its library id as its id.
//!
//! # Credits
//! Apple has no credit roles: `artistName` is the display string of the main artists
//! (`"A, B & C"`) and guests appear in the title (`"Song (feat. D)"`). With the catalog
//! song's `artists` relationship (ids and names), an artist named in `artistName` is
//! [`CreditRole::Primary`] and any other is [`CreditRole::Featured`]. Without it (uploads,
//! or a response without the nested include), credits come from splitting `artistName`
//! (primary) and the title's "feat." list (featured), without ids.

use chrono::{DateTime, Utc};
use dnp_core::normalize::normalize_name;
use dnp_core::{Album, AlbumRef, Artist, ArtistCredit, CreditRole, Track};
use serde::{Deserialize, Serialize};

/// A page of a list: `data`, the `next` link (a path below the API base), `meta.total`.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
pub struct Page<T> {
    /// The resources.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    /// The next page's path with its query (`/v1/me/library/songs?offset=100`).
    #[serde(default)]
    pub next: Option<String>,
    /// The list's total, when given.
    #[serde(default)]
    pub meta: Option<Meta>,
}

impl<T> Page<T> {
    /// `meta.total`, when given.
    pub fn total(&self) -> Option<u32> {
        self.meta.as_ref().and_then(|m| m.total)
    }
}

/// `meta` of a list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Meta {
    /// How many resources the list holds.
    #[serde(default)]
    pub total: Option<u32>,
}

/// A relationship: its (included) resources.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
pub struct Relationship<T> {
    /// The related resources (with attributes when included).
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

impl<T> Default for Relationship<T> {
    fn default() -> Self {
        Self { data: Vec::new() }
    }
}

/// `playParams` of a playable resource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayParams {
    /// The id to play.
    #[serde(default)]
    pub id: Option<String>,
    /// The kind (`song`, `album`, `playlist`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Whether the id is a library id.
    #[serde(default)]
    pub is_library: Option<bool>,
    /// The catalog id of a library item.
    #[serde(default)]
    pub catalog_id: Option<String>,
    /// The catalog playlist id (`pl.…`) of a library playlist added from the catalog.
    #[serde(default)]
    pub global_id: Option<String>,
}

/// A `library-songs` resource (`/v1/me/library/songs`, a playlist's `tracks`).
#[derive(Debug, Clone, Deserialize)]
pub struct LibrarySong {
    /// The library id (`i.…`).
    pub id: String,
    /// `library-songs` (a playlist may also hold `library-music-videos`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The attributes.
    #[serde(default)]
    pub attributes: Option<LibrarySongAttributes>,
    /// The relationships asked for.
    #[serde(default)]
    pub relationships: LibrarySongRelationships,
}

/// Attributes of a library song.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LibrarySongAttributes {
    /// The title.
    pub name: String,
    /// The main artists as one string (`"A, B & C"`).
    #[serde(default)]
    pub artist_name: Option<String>,
    /// The album's title.
    #[serde(default)]
    pub album_name: Option<String>,
    /// Duration.
    #[serde(default)]
    pub duration_in_millis: Option<u32>,
    /// Play parameters (carry `catalogId`).
    #[serde(default)]
    pub play_params: Option<PlayParams>,
}

/// Relationships of a library song.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LibrarySongRelationships {
    /// The catalog song (`include=catalog`).
    #[serde(default)]
    pub catalog: Option<Relationship<CatalogSong>>,
}

/// A catalog `songs` resource.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogSong {
    /// The catalog id.
    pub id: String,
    /// The attributes.
    #[serde(default)]
    pub attributes: Option<CatalogSongAttributes>,
    /// `artists` and `albums` (`include[songs]=artists,albums`).
    #[serde(default)]
    pub relationships: CatalogSongRelationships,
}

/// Attributes of a catalog song.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSongAttributes {
    /// The title.
    pub name: String,
    /// The main artists as one string.
    #[serde(default)]
    pub artist_name: Option<String>,
    /// The album's title.
    #[serde(default)]
    pub album_name: Option<String>,
    /// The ISRC.
    #[serde(default)]
    pub isrc: Option<String>,
    /// Duration.
    #[serde(default)]
    pub duration_in_millis: Option<u32>,
    /// The song's page at music.apple.com.
    #[serde(default)]
    pub url: Option<String>,
}

/// Relationships of a catalog song.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CatalogSongRelationships {
    /// Every artist credited (main and guests).
    #[serde(default)]
    pub artists: Option<Relationship<CatalogArtist>>,
    /// The album.
    #[serde(default)]
    pub albums: Option<Relationship<CatalogAlbum>>,
}

/// A catalog `artists` resource.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogArtist {
    /// The catalog id.
    pub id: String,
    /// The attributes, when included.
    #[serde(default)]
    pub attributes: Option<CatalogArtistAttributes>,
}

/// Attributes of a catalog artist.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogArtistAttributes {
    /// The name.
    pub name: String,
    /// The artist's page at music.apple.com.
    #[serde(default)]
    pub url: Option<String>,
}

/// A catalog `albums` resource.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogAlbum {
    /// The catalog id.
    pub id: String,
    /// The attributes, when included.
    #[serde(default)]
    pub attributes: Option<CatalogAlbumAttributes>,
    /// The album's artists.
    #[serde(default)]
    pub relationships: CatalogAlbumRelationships,
}

/// Attributes of a catalog album.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogAlbumAttributes {
    /// The title.
    pub name: String,
    /// The album artists as one string.
    #[serde(default)]
    pub artist_name: Option<String>,
    /// The album's page at music.apple.com.
    #[serde(default)]
    pub url: Option<String>,
}

/// Relationships of a catalog album.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CatalogAlbumRelationships {
    /// The album's artists.
    #[serde(default)]
    pub artists: Option<Relationship<CatalogArtist>>,
}

/// A `library-albums` resource.
#[derive(Debug, Clone, Deserialize)]
pub struct LibraryAlbum {
    /// The library id (`l.…`).
    pub id: String,
    /// The attributes.
    #[serde(default)]
    pub attributes: Option<LibraryAlbumAttributes>,
    /// `catalog` (`include=catalog`).
    #[serde(default)]
    pub relationships: LibraryCatalogRelationship<CatalogAlbum>,
}

/// Attributes of a library album.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LibraryAlbumAttributes {
    /// The title.
    pub name: String,
    /// The album artists as one string.
    #[serde(default)]
    pub artist_name: Option<String>,
    /// When the user added it.
    #[serde(default)]
    pub date_added: Option<DateTime<Utc>>,
    /// Play parameters.
    #[serde(default)]
    pub play_params: Option<PlayParams>,
}

/// The `catalog` relationship of a library resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
pub struct LibraryCatalogRelationship<T> {
    /// The catalog resource.
    #[serde(default)]
    pub catalog: Option<Relationship<T>>,
}

impl<T> Default for LibraryCatalogRelationship<T> {
    fn default() -> Self {
        Self { catalog: None }
    }
}

/// A `library-artists` resource.
#[derive(Debug, Clone, Deserialize)]
pub struct LibraryArtist {
    /// The library id (`r.…`).
    pub id: String,
    /// The attributes.
    #[serde(default)]
    pub attributes: Option<LibraryArtistAttributes>,
    /// `catalog` (`include=catalog`).
    #[serde(default)]
    pub relationships: LibraryCatalogRelationship<CatalogArtist>,
}

/// Attributes of a library artist.
#[derive(Debug, Clone, Deserialize)]
pub struct LibraryArtistAttributes {
    /// The name.
    pub name: String,
}

/// A `library-playlists` resource.
#[derive(Debug, Clone, Deserialize)]
pub struct LibraryPlaylist {
    /// The library id (`p.…`).
    pub id: String,
    /// The attributes.
    #[serde(default)]
    pub attributes: Option<LibraryPlaylistAttributes>,
}

/// Attributes of a library playlist.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LibraryPlaylistAttributes {
    /// The name.
    pub name: String,
    /// Whether the API may change its tracks (Apple: check this before editing).
    #[serde(default)]
    pub can_edit: bool,
    /// Whether it was added from the catalog (someone else's playlist).
    #[serde(default)]
    pub has_catalog: bool,
    /// When it last changed (dnp's playlist version).
    #[serde(default)]
    pub last_modified_date: Option<String>,
    /// Play parameters (`globalId` for a catalog playlist).
    #[serde(default)]
    pub play_params: Option<PlayParams>,
}

/// A `ratings` resource.
#[derive(Debug, Clone, Deserialize)]
pub struct Rating {
    /// The rated resource's id.
    pub id: String,
    /// The value.
    pub attributes: RatingAttributes,
}

/// Attributes of a rating.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct RatingAttributes {
    /// `1` (love) or `-1` (dislike).
    pub value: i8,
}

/// The body of `PUT /v1/me/ratings/{type}/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct RatingRequest {
    /// Always `rating`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The value.
    pub attributes: RatingRequestAttributes,
}

/// The value of a rating request.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RatingRequestAttributes {
    /// `1` or `-1`.
    pub value: i8,
}

impl RatingRequest {
    /// A dislike (`-1`).
    pub fn dislike() -> Self {
        Self { kind: "rating", attributes: RatingRequestAttributes { value: -1 } }
    }
}

/// The body of `POST /v1/me/library/playlists/{id}/tracks`.
#[derive(Debug, Clone, Serialize)]
pub struct TracksRequest {
    /// The tracks to append, in order.
    pub data: Vec<TrackReference>,
}

/// One track of a [`TracksRequest`].
#[derive(Debug, Clone, Serialize)]
pub struct TrackReference {
    /// A catalog (`songs`) or library (`library-songs`) id.
    pub id: String,
    /// `songs` or `library-songs`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `/v1/catalog/{storefront}/search?types=artists`.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchResponse {
    /// The results by type.
    #[serde(default)]
    pub results: SearchResults,
}

/// The results of a search.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchResults {
    /// Matching artists.
    #[serde(default)]
    pub artists: Option<Relationship<CatalogArtist>>,
}

/// `GET /v1/me/storefront`: the user's storefront.
#[derive(Debug, Clone, Deserialize)]
pub struct StorefrontResponse {
    /// The storefront (one).
    #[serde(default = "Vec::new")]
    pub data: Vec<Storefront>,
}

/// A storefront resource.
#[derive(Debug, Clone, Deserialize)]
pub struct Storefront {
    /// Its id (`us`).
    pub id: String,
}

/// Whether `id` is a library id of Apple Music (`i.…`, `l.…`, `r.…`, `p.…`).
pub fn is_library_id(id: &str) -> bool {
    id.len() > 2 && matches!(&id[..2], "i." | "l." | "r." | "p.")
}

/// Whether `id` may go into a URL path: letters, digits, `.`, `-` and `_`, 1-64 long.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// A music.apple.com link to a catalog item of `kind` (`song`, `album`, `artist`) in
/// `storefront`, for manual checklists when Apple gives no `url`.
pub fn catalog_link(storefront: &str, kind: &str, id: &str) -> String {
    format!("https://music.apple.com/{storefront}/{kind}/{id}")
}

/// The web player's link to a library playlist.
pub fn library_playlist_link(id: &str) -> String {
    format!("https://music.apple.com/library/playlist/{id}")
}

/// Splits a display list of names (`"A, B & C"`) as Apple writes it, keeping the names'
/// spelling.
pub fn split_display_names(list: &str) -> Vec<String> {
    let mut names = Vec::new();
    for part in list.split(", ") {
        for name in part.split(" & ") {
            let name = name.trim();
            if !name.is_empty() {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// The names a title credits as guests, spelled as in the title: `"Song (feat. A & B)"`
/// gives `["A", "B"]`.
pub fn featured_display_names(title: &str) -> Vec<String> {
    let lower = title.to_ascii_lowercase();
    let markers = ["(feat. ", "[feat. ", "(ft. ", "[ft. ", "(featuring ", "[featuring ", " feat. ", " ft. "];
    let Some((start, len)) = markers.iter().filter_map(|m| lower.find(m).map(|i| (i, m.len()))).min() else {
        return Vec::new();
    };
    let rest = &title[start + len..];
    let end = rest.find([')', ']']).unwrap_or(rest.len());
    split_display_names(&rest[..end])
}

/// Finds `needle` in `haystack` at word boundaries (both normalized, words separated by
/// single spaces).
fn find_words(haystack: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let bytes = haystack.as_bytes();
    let mut from = 0;
    while let Some(i) = haystack[from..].find(needle).map(|i| i + from) {
        let end = i + needle.len();
        let starts = i == 0 || bytes[i - 1] == b' ';
        let ends = end == bytes.len() || bytes[end] == b' ';
        if starts && ends {
            return Some(i);
        }
        from = i + 1;
        while !haystack.is_char_boundary(from) {
            from += 1;
        }
    }
    None
}

/// Credits of a song: see the [module docs](self). `related` are the catalog song's
/// artists (id and name) in Apple's order.
pub fn song_credits(artist_name: Option<&str>, title: &str, related: &[(String, String)]) -> Vec<ArtistCredit> {
    if related.is_empty() {
        let primaries = artist_name.map(split_display_names).unwrap_or_default();
        let primary_norm: Vec<String> = primaries.iter().map(|n| normalize_name(n)).collect();
        let mut credits: Vec<ArtistCredit> =
            primaries.into_iter().map(|name| ArtistCredit { id: None, name, role: CreditRole::Primary }).collect();
        for name in featured_display_names(title) {
            if !primary_norm.contains(&normalize_name(&name)) {
                credits.push(ArtistCredit { id: None, name, role: CreditRole::Featured });
            }
        }
        return credits;
    }
    // Match the longest names first, so "Kalo Mira" is not taken for "Kalo"; each match
    // consumes its words of `artistName`, so an artist credited twice is primary once.
    let mut remaining = normalize_name(artist_name.unwrap_or(""));
    let normalized: Vec<String> = related.iter().map(|(_, name)| normalize_name(name)).collect();
    let mut order: Vec<usize> = (0..related.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(normalized[i].len()));
    let mut roles = vec![CreditRole::Featured; related.len()];
    for i in order {
        if let Some(at) = find_words(&remaining, &normalized[i]) {
            remaining.replace_range(at..at + normalized[i].len(), "");
            roles[i] = CreditRole::Primary;
        }
    }
    related
        .iter()
        .zip(roles)
        .map(|((id, name), role)| ArtistCredit { id: Some(id.clone()), name: name.clone(), role })
        .collect()
}

fn related_artists(rel: Option<&Relationship<CatalogArtist>>) -> Vec<(String, String)> {
    rel.map(|r| {
        r.data.iter().filter_map(|a| a.attributes.as_ref().map(|attrs| (a.id.clone(), attrs.name.clone()))).collect()
    })
    .unwrap_or_default()
}

impl CatalogAlbum {
    /// The album as dnp's [`Album`]: catalog id, title, its artists (all primary).
    pub fn to_album(&self, storefront: &str) -> Option<Album> {
        let attrs = self.attributes.as_ref()?;
        let related = related_artists(self.relationships.artists.as_ref());
        let artists = if related.is_empty() {
            attrs
                .artist_name
                .as_deref()
                .map(split_display_names)
                .unwrap_or_default()
                .into_iter()
                .map(|name| ArtistCredit { id: None, name, role: CreditRole::Primary })
                .collect()
        } else {
            related
                .into_iter()
                .map(|(id, name)| ArtistCredit { id: Some(id), name, role: CreditRole::Primary })
                .collect()
        };
        Some(Album {
            url: Some(attrs.url.clone().unwrap_or_else(|| catalog_link(storefront, "album", &self.id))),
            id: self.id.clone(),
            title: attrs.name.clone(),
            artists,
        })
    }
}

impl LibrarySong {
    /// The catalog song, when included.
    pub fn catalog(&self) -> Option<&CatalogSong> {
        self.relationships.catalog.as_ref().and_then(|r| r.data.first())
    }

    /// The catalog id: from the `catalog` relationship, else `playParams.catalogId`.
    pub fn catalog_id(&self) -> Option<&str> {
        self.catalog().map(|c| c.id.as_str()).or_else(|| {
            self.attributes.as_ref().and_then(|a| a.play_params.as_ref()).and_then(|p| p.catalog_id.as_deref())
        })
    }

    /// The song as dnp's [`Track`] (see the [module docs](self)); `None` for a resource
    /// without attributes.
    pub fn to_track(&self, storefront: &str) -> Option<Track> {
        let attrs = self.attributes.as_ref()?;
        let catalog = self.catalog();
        let catalog_attrs = catalog.and_then(|c| c.attributes.as_ref());
        let title = catalog_attrs.map_or(&attrs.name, |c| &c.name).clone();
        let artist_name = catalog_attrs.and_then(|c| c.artist_name.as_deref()).or(attrs.artist_name.as_deref());
        let related = related_artists(catalog.and_then(|c| c.relationships.artists.as_ref()));
        let artists = song_credits(artist_name, &title, &related);
        let album = catalog.and_then(|c| c.relationships.albums.as_ref()).and_then(|r| r.data.first()).map(|a| {
            let album = a.to_album(storefront);
            AlbumRef {
                id: a.id.clone(),
                title: album.as_ref().map(|x| x.title.clone()).or_else(|| attrs.album_name.clone()).unwrap_or_default(),
                artists: album.map(|x| x.artists).unwrap_or_default(),
            }
        });
        let id = self.catalog_id().unwrap_or(&self.id).to_owned();
        let url = catalog_attrs
            .and_then(|c| c.url.clone())
            .or_else(|| self.catalog_id().map(|cid| catalog_link(storefront, "song", cid)));
        Some(Track {
            isrc: catalog_attrs.and_then(|c| c.isrc.clone()),
            duration_ms: catalog_attrs.and_then(|c| c.duration_in_millis).or(attrs.duration_in_millis),
            url,
            album,
            artists,
            title,
            id,
        })
    }
}

impl LibraryArtist {
    /// The artist as dnp's [`Artist`]: its catalog id and link when it has one, else its
    /// library id.
    pub fn to_artist(&self, storefront: &str) -> Option<Artist> {
        let name = self.attributes.as_ref()?.name.clone();
        let catalog = self.relationships.catalog.as_ref().and_then(|r| r.data.first());
        Some(match catalog {
            Some(c) => Artist {
                url: Some(
                    c.attributes
                        .as_ref()
                        .and_then(|a| a.url.clone())
                        .unwrap_or_else(|| catalog_link(storefront, "artist", &c.id)),
                ),
                name: c.attributes.as_ref().map_or(name, |a| a.name.clone()),
                id: c.id.clone(),
            },
            None => Artist { id: self.id.clone(), name, url: None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(credits: &[ArtistCredit]) -> Vec<(String, CreditRole)> {
        credits.iter().map(|c| (c.name.clone(), c.role)).collect()
    }

    #[test]
    fn names_in_artist_name_are_primary_and_the_rest_featured() {
        let related = [("1".to_owned(), "Rihanna".to_owned()), ("2".to_owned(), "Drake".to_owned())];
        let credits = song_credits(Some("Rihanna"), "Work (feat. Drake)", &related);
        assert_eq!(roles(&credits), [("Rihanna".into(), CreditRole::Primary), ("Drake".into(), CreditRole::Featured)]);
        let duo = [("3".to_owned(), "Simon & Garfunkel".to_owned())];
        assert_eq!(song_credits(Some("Simon & Garfunkel"), "The Boxer", &duo)[0].role, CreditRole::Primary);
        let collab =
            [("1".to_owned(), "A".to_owned()), ("2".to_owned(), "B".to_owned()), ("4".to_owned(), "C".to_owned())];
        let credits = song_credits(Some("A, B & C"), "Together", &collab);
        assert!(credits.iter().all(|c| c.role == CreditRole::Primary), "{credits:?}");
    }

    /// Regression: an artist credited twice (main and guest) was made primary twice.
    #[test]
    fn an_artist_credited_twice_is_primary_once() {
        let related = [("1".to_owned(), "Kalo".to_owned()), ("1".to_owned(), "Kalo".to_owned())];
        let credits = song_credits(Some("Kalo"), "Song (feat. Kalo)", &related);
        assert_eq!(credits[0].role, CreditRole::Primary);
        assert_eq!(credits[1].role, CreditRole::Featured);
    }

    /// Regression: "Kalo" matched inside "Kalo Mira" and left the longer name featured.
    #[test]
    fn longer_names_match_first() {
        let related = [("1".to_owned(), "Kalo".to_owned()), ("2".to_owned(), "Kalo Mira".to_owned())];
        let credits = song_credits(Some("Kalo Mira"), "Song (feat. Kalo)", &related);
        assert_eq!(credits[0].role, CreditRole::Featured);
        assert_eq!(credits[1].role, CreditRole::Primary);
    }

    #[test]
    fn without_catalog_artists_credits_come_from_the_strings() {
        let credits = song_credits(Some("Beyoncé & JAY-Z"), "Drunk in Love [feat. Someone Else]", &[]);
        assert_eq!(
            roles(&credits),
            [
                ("Beyoncé".into(), CreditRole::Primary),
                ("JAY-Z".into(), CreditRole::Primary),
                ("Someone Else".into(), CreditRole::Featured)
            ]
        );
        assert!(credits.iter().all(|c| c.id.is_none()));
        assert!(featured_display_names("Dancing with Myself").is_empty());
    }

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> T {
        let provider: dnp_core::ProviderId = "apple_music".parse().unwrap();
        crate::http::decode_json(&provider, "GET /test", json.as_bytes()).unwrap()
    }

    #[test]
    fn recorded_library_songs_map_to_tracks() {
        let page: Page<LibrarySong> = parse(include_str!("testdata/library_songs.json"));
        assert_eq!((page.total(), page.next.as_deref()), (Some(2087), Some("/v1/me/library/songs?offset=2")));
        let work = page.data[0].to_track("us").unwrap();
        assert_eq!(work.id, "1440841767", "the catalog id, not the library id");
        assert_eq!(work.isrc.as_deref(), Some("QM5FT1600001"));
        assert_eq!(work.duration_ms, Some(219_320));
        assert_eq!(work.album.as_ref().map(|a| a.id.as_str()), Some("1440841363"));
        assert_eq!(work.album.as_ref().unwrap().artists[0].name, "Rihanna");
        assert!(work.url.as_deref().unwrap().starts_with("https://music.apple.com/us/album/work-feat-drake/"));
        assert_eq!(
            work.artists,
            [
                ArtistCredit { id: Some("63346553".into()), name: "Rihanna".into(), role: CreditRole::Primary },
                ArtistCredit { id: Some("271256".into()), name: "Drake".into(), role: CreditRole::Featured },
            ]
        );
        // An upload: no catalog counterpart, credits from the strings, its library id.
        let upload = page.data[1].to_track("us").unwrap();
        assert_eq!(upload.id, "i.b1Jz0vZsGJxJ6D");
        assert!(upload.isrc.is_none() && upload.url.is_none());
        assert_eq!(
            roles(&upload.artists),
            [
                ("The Band".into(), CreditRole::Primary),
                ("Friends".into(), CreditRole::Primary),
                ("Someone".into(), CreditRole::Primary),
                ("Our Drummer".into(), CreditRole::Featured)
            ]
        );
    }

    #[test]
    fn recorded_playlists_and_errors_parse() {
        let page: Page<LibraryPlaylist> = parse(include_str!("testdata/library_playlists.json"));
        let mine = page.data[0].attributes.as_ref().unwrap();
        assert!(mine.can_edit && !mine.has_catalog);
        assert_eq!(mine.last_modified_date.as_deref(), Some("2025-01-05T08:00:00Z"));
        let theirs = page.data[1].attributes.as_ref().unwrap();
        assert!(!theirs.can_edit && theirs.has_catalog && theirs.last_modified_date.is_none());
        let error = crate::http::ErrorBody::parse(include_bytes!("testdata/error_403.json"));
        assert_eq!(
            (error.reason.as_deref(), error.message.as_deref()),
            (Some("40300"), Some("Invalid authentication"))
        );
    }

    #[test]
    fn malformed_json_is_a_protocol_error_naming_the_field() {
        let provider: dnp_core::ProviderId = "apple_music".parse().unwrap();
        let err = crate::http::decode_json::<Page<LibrarySong>>(
            &provider,
            "GET /v1/me/library/songs",
            br#"{"data":[{"id":7}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "protocol");
        assert!(err.to_string().contains("data[0].id"), "{err}");
    }

    #[test]
    fn ids_are_told_apart() {
        assert!(is_library_id("i.PkdJNdAIrQozOW") && is_library_id("p.RB1AARBIv74Zkl"));
        assert!(!is_library_id("1440841767"));
        assert!(is_safe_id("i.PkdJNdAIrQozOW") && !is_safe_id("a/b") && !is_safe_id(""));
    }
}
