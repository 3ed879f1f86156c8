//! Property tests of the planner on realistic random libraries, DNP lists, policies and
//! capabilities.
//!
//! The matching rules are checked against an oracle written from the documented strictness
//! rules ([`Strictness`], [`MatchKind`]), not from the planner's code.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use dnp_core::effect::{Catalog, apply_action};
use dnp_core::normalize::{featured_in_title_with, normalize_name, split_credits};
use dnp_core::*;
use proptest::prelude::*;
use proptest::sample::Index;
use uuid::Uuid;

const PROVIDER: &str = "spotify";

/// (Spotify id, name, another spelling of the same name, an alias the artist is credited under).
const ARTISTS: [(&str, &str, &str, Option<&str>); 13] = [
    ("3TVXtAsR1Inumwj472S9r4", "Drake", "DRAKE", None),
    ("6vWDO969PvNqNYHIOW5v0m", "Beyoncé", "Beyonce", None),
    ("6olE6TJLqED3rqDCT0FyPh", "Sigur Rós", "SIGUR ROS", None),
    ("711MCceyCBcFnzjGY4Q7Un", "AC/DC", "ACDC", None),
    ("70cRZdQywnSFp9pnc2WTCE", "Simon & Garfunkel", "Simon and Garfunkel", None),
    ("3nFkdlSjzX9mRTtwJOzDYB", "Jay-Z", "JAY Z", Some("Hova")),
    ("1RyvyyTE3xzB2ZywiAwp0i", "Future", "FUTURE", None),
    ("6UE7nl9mha6s8z0wFQFIZ2", "Robyn", "robyn", None),
    ("1Xyo4u8uXC1ZmMpatF05PJ", "The Weeknd", "The  Weeknd", None),
    ("7ltDVBr6mKbRvohxheJ9h1", "Rosalía", "ROSALIA", None),
    ("4q3ewBCX7sLwd24euuV69X", "Bad Bunny", "BAD BUNNY", None),
    ("5K4W6rqBFWDnAN6FQUkS6x", "Kanye West", "KANYE WEST", Some("Ye")),
    // Another act called Future: same name, other id.
    ("0futureTheBandxxxxxxxx", "Future", "Future", None),
];

const TITLES: [&str; 8] = [
    "Hold On",
    "Dancing with Myself",
    "Without Me",
    "Leftfeat. Song",
    "Night & Day",
    "Up - Remastered",
    "Ça plane pour moi",
    "Sunday",
];

#[derive(Debug, Clone)]
struct CreditSpec {
    artist: usize,
    spelling: u8,
    with_id: bool,
    featured: bool,
}

#[derive(Debug, Clone)]
enum TitleSpec {
    Plain(usize),
    Feat(usize, usize, u8),
    With(usize, usize),
    Pair(usize, usize),
}

#[derive(Debug, Clone)]
struct TrackSpec {
    title: TitleSpec,
    credits: Vec<CreditSpec>,
    album: Option<Index>,
    isrc: bool,
    url: bool,
}

#[derive(Debug, Clone)]
struct PolicySpec {
    strictness: Strictness,
    targets: Targets,
    allow: Vec<(Index, bool, bool)>,
    touch_own: bool,
    touch_collab: bool,
    use_alternatives: bool,
    min_confidence: f32,
    override_here: Option<(Option<Strictness>, Option<bool>, Option<Targets>)>,
}

/// Which real service the capabilities resemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Spotify,
    Tidal,
    Apple,
    Youtube,
}

#[derive(Debug, Clone)]
struct CapsSpec {
    profile: Profile,
    batch: Vec<u32>,
    daily: u64,
    used: u64,
    costs: Vec<u64>,
}

#[derive(Debug, Clone)]
struct Scenario {
    snapshot: LibrarySnapshot,
    list: DnpList,
    policy: EnforcementPolicy,
    caps: Capabilities,
    spec_policy: PolicySpec,
}

fn strictness() -> impl Strategy<Value = Strictness> {
    prop_oneof![Just(Strictness::Conservative), Just(Strictness::Moderate), Just(Strictness::Aggressive)]
}

fn targets() -> impl Strategy<Value = Targets> {
    (prop::bool::weighted(0.85), prop::bool::weighted(0.85), prop::bool::weighted(0.85), prop::bool::weighted(0.85))
        .prop_map(|(a, b, c, d)| Targets { liked_tracks: a, saved_albums: b, followed_artists: c, playlist_items: d })
}

fn credit(featured: impl Strategy<Value = bool>) -> impl Strategy<Value = CreditSpec> {
    (0..ARTISTS.len(), 0..3u8, prop::bool::weighted(0.85), featured)
        .prop_map(|(artist, spelling, with_id, featured)| CreditSpec { artist, spelling, with_id, featured })
}

fn track_spec() -> impl Strategy<Value = TrackSpec> {
    let title = prop_oneof![
        3 => (0..TITLES.len()).prop_map(TitleSpec::Plain),
        1 => (0..TITLES.len(), 0..ARTISTS.len(), 0..3u8).prop_map(|(t, a, s)| TitleSpec::Feat(t, a, s)),
        1 => (0..TITLES.len(), 0..ARTISTS.len()).prop_map(|(t, a)| TitleSpec::With(t, a)),
        1 => (0..ARTISTS.len(), 0..ARTISTS.len()).prop_map(|(a, b)| TitleSpec::Pair(a, b)),
    ];
    (
        title,
        credit(Just(false)),
        prop::collection::vec(credit(prop::bool::weighted(0.6)), 0..3),
        prop::option::weighted(0.7, any::<Index>()),
        prop::bool::weighted(0.7),
        any::<bool>(),
    )
        .prop_map(|(title, first, more, album, isrc, url)| {
            let mut credits = vec![first];
            credits.extend(more);
            TrackSpec { title, credits, album, isrc, url }
        })
}

fn caps_spec() -> impl Strategy<Value = CapsSpec> {
    (
        prop_oneof![Just(Profile::Spotify), Just(Profile::Tidal), Just(Profile::Apple), Just(Profile::Youtube)],
        prop::collection::vec(1..5u32, 10),
        20..200u64,
        0..100u64,
        prop::collection::vec(1..60u64, 10),
    )
        .prop_map(|(profile, batch, daily, used, costs)| CapsSpec { profile, batch, daily, used, costs })
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    (
        strictness(),
        targets(),
        prop::collection::vec((any::<Index>(), any::<bool>(), any::<bool>()), 0..3),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        prop_oneof![4 => Just(0.0f32), 1 => Just(0.8f32), 1 => Just(0.9f32), 1 => Just(0.96f32)],
        prop::option::weighted(
            0.3,
            (prop::option::of(strictness()), prop::option::of(any::<bool>()), prop::option::of(targets())),
        ),
    )
        .prop_map(
            |(strictness, targets, allow, touch_own, touch_collab, use_alternatives, min_confidence, override_here)| {
                PolicySpec {
                    strictness,
                    targets,
                    allow,
                    touch_own,
                    touch_collab,
                    use_alternatives,
                    min_confidence,
                    override_here,
                }
            },
        )
}

fn at(n: u64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_600_000_000 + n as i64 * 3_600, 0).single().expect("valid timestamp")
}

fn build_credit(c: &CreditSpec) -> ArtistCredit {
    let (id, name, alt, alias) = ARTISTS[c.artist];
    let name = match c.spelling {
        0 => name,
        1 => alt,
        _ => alias.unwrap_or(name),
    };
    ArtistCredit {
        id: c.with_id.then(|| id.to_owned()),
        name: name.to_owned(),
        role: if c.featured { CreditRole::Featured } else { CreditRole::Primary },
    }
}

fn credited_name(artist: usize, spelling: u8) -> &'static str {
    let (_, name, alt, alias) = ARTISTS[artist];
    match spelling {
        0 => name,
        1 => alt,
        _ => alias.unwrap_or(name),
    }
}

fn build_title(t: &TitleSpec) -> String {
    match *t {
        TitleSpec::Plain(i) => TITLES[i].to_owned(),
        TitleSpec::Feat(i, a, s) => match s {
            0 => format!("{} (feat. {})", TITLES[i], credited_name(a, 0)),
            1 => format!("{} ft. {} & {}", TITLES[i], credited_name(a, 1), ARTISTS[(a + 1) % ARTISTS.len()].1),
            _ => format!("{} (Featuring {}) - Live", TITLES[i], credited_name(a, 2)),
        },
        TitleSpec::With(i, a) => format!("{} [with {}]", TITLES[i], ARTISTS[a].1),
        TitleSpec::Pair(a, b) => format!("{} & {}", ARTISTS[a].1, ARTISTS[b].1),
    }
}

prop_compose! {
    fn scenario()(
        albums in prop::collection::vec((0..TITLES.len(), prop::collection::vec(credit(prop::bool::weighted(0.2)), 1..3), any::<bool>()), 1..5),
        tracks in prop::collection::vec(track_spec(), 1..14),
        liked in prop::collection::vec((any::<Index>(), any::<bool>(), any::<bool>()), 0..12),
        saved in prop::collection::vec(any::<Index>(), 0..4),
        followed in prop::collection::vec((0..ARTISTS.len(), 0..2u8, any::<bool>()), 0..6),
        playlists in prop::collection::vec(
            (any::<bool>(), any::<bool>(), prop::bool::weighted(0.9), prop::collection::vec((any::<Index>(), any::<bool>()), 0..9)),
            0..4,
        ),
        dnp in prop::collection::vec((0..ARTISTS.len(), 0..4u8, any::<bool>()), 0..5),
        policy in policy_spec(),
        caps in caps_spec(),
    ) -> Scenario {
        let albums: Vec<Album> = albums
            .iter()
            .enumerate()
            .map(|(j, (t, credits, url))| Album {
                id: format!("al{j}"),
                title: TITLES[*t].to_owned(),
                artists: credits
                    .iter()
                    .enumerate()
                    .map(|(k, c)| build_credit(&CreditSpec { featured: c.featured && k > 0, ..c.clone() }))
                    .collect(),
                url: url.then(|| format!("https://open.example/album/al{j}")),
            })
            .collect();
        let tracks: Vec<Track> = tracks
            .iter()
            .enumerate()
            .map(|(i, t)| Track {
                id: format!("t{i}"),
                title: build_title(&t.title),
                artists: t.credits.iter().map(build_credit).collect(),
                album: t.album.as_ref().map(|ix| {
                    let a = &albums[ix.index(albums.len())];
                    AlbumRef { id: a.id.clone(), title: a.title.clone(), artists: a.artists.clone() }
                }),
                isrc: t.isrc.then(|| format!("USRC1{i:07}")),
                duration_ms: Some(180_000 + i as u32),
                url: t.url.then(|| format!("https://open.example/track/t{i}")),
            })
            .collect();
        // Ratings exist wherever the service can rate: a liked track may be disliked too.
        let rates = build_caps(&caps).can(ActionKind::DislikeTrack);
        let mut seen = BTreeSet::new();
        let liked_tracks = liked
            .iter()
            .filter_map(|(ix, disliked, entry)| {
                let i = ix.index(tracks.len());
                seen.insert(i).then(|| LikedTrack {
                    track: tracks[i].clone(),
                    added_at: Some(at(1000 - i as u64)),
                    entry_id: entry.then(|| format!("lib.t{i}")),
                    disliked: rates && *disliked,
                })
            })
            .collect();
        let mut seen = BTreeSet::new();
        let saved_albums = saved
            .iter()
            .filter_map(|ix| {
                let j = ix.index(albums.len());
                seen.insert(j).then(|| SavedAlbum { album: albums[j].clone(), added_at: Some(at(500 - j as u64)) })
            })
            .collect();
        let mut seen = BTreeSet::new();
        let followed_artists = followed
            .iter()
            .filter(|(a, _, _)| seen.insert(*a))
            .map(|(a, spelling, entry)| FollowedArtist {
                artist: Artist { id: ARTISTS[*a].0.to_owned(), name: credited_name(*a, *spelling).to_owned(), url: None },
                entry_id: entry.then(|| format!("sub.{a}")),
            })
            .collect();
        let playlists = playlists
            .iter()
            .enumerate()
            .map(|(k, (owned, collaborative, api_editable, items))| Playlist {
                id: format!("pl{k}"),
                name: format!("Playlist {k}"),
                owned: *owned,
                collaborative: *collaborative && !owned,
                editable: (*owned || *collaborative) && *api_editable,
                version: Some(format!("v{k}")),
                items: items
                    .iter()
                    .enumerate()
                    .map(|(n, (ix, item_id))| PlaylistItem {
                        position: n as u32,
                        track: tracks[ix.index(tracks.len())].clone(),
                        added_at: Some(at(n as u64)),
                        item_id: item_id.then(|| format!("it{k}.{n}")),
                    })
                    .collect(),
                url: Some(format!("https://open.example/playlist/pl{k}")),
            })
            .collect();
        let snapshot = LibrarySnapshot {
            provider: PROVIDER.parse().expect("valid id"),
            taken_at: None,
            liked_tracks,
            saved_albums,
            followed_artists,
            playlists,
        };

        let spotify: ProviderId = PROVIDER.parse().expect("valid id");
        let tidal: ProviderId = "tidal".parse().expect("valid id");
        let list = DnpList {
            entries: dnp
                .iter()
                .enumerate()
                .map(|(n, (a, id_mode, alias))| {
                    let (id, name, _, credited_alias) = ARTISTS[*a];
                    let mut artist = ArtistIdentity::named(name);
                    match id_mode {
                        0 => artist = artist.with_id(spotify.clone(), id),
                        1 => {}
                        2 => artist = artist.with_id(tidal.clone(), format!("tidal-{a}")),
                        _ => artist = artist.with_id(spotify.clone(), id).with_id(tidal.clone(), format!("tidal-{a}")),
                    }
                    if *alias && let Some(alias) = credited_alias {
                        artist.aliases.push(alias.to_owned());
                    }
                    DnpEntry {
                        id: EntryId(Uuid::from_u128(n as u128 + 1)),
                        artist,
                        note: None,
                        tags: vec![],
                        added_at: at(0),
                        source: EntrySource::Personal,
                    }
                })
                .collect(),
        };

        let allow = policy
            .allow
            .iter()
            .map(|(ix, by_isrc, lower)| {
                let i = ix.index(tracks.len());
                match (&tracks[i].isrc, by_isrc) {
                    (Some(isrc), true) => AllowRule::Isrc {
                        isrc: if *lower { isrc.to_ascii_lowercase() } else { isrc.clone() },
                    },
                    _ => AllowRule::Track { provider: spotify.clone(), id: tracks[i].id.clone() },
                }
            })
            .collect();
        let mut overrides = BTreeMap::new();
        if let Some((s, own, t)) = policy.override_here {
            overrides.insert(spotify.clone(), PolicyOverride { targets: t, strictness: s, touch_own_playlists: own });
        }
        // An override for another provider must change nothing here.
        overrides.insert(
            tidal,
            PolicyOverride { targets: Some(Targets { liked_tracks: false, saved_albums: false, followed_artists: false, playlist_items: false }), strictness: Some(Strictness::Conservative), touch_own_playlists: Some(false) },
        );
        let enforcement = EnforcementPolicy {
            targets: policy.targets,
            strictness: policy.strictness,
            allow,
            touch_own_playlists: policy.touch_own,
            touch_collaborative_playlists: policy.touch_collab,
            use_alternatives: policy.use_alternatives,
            min_confidence: policy.min_confidence,
            overrides,
        };
        Scenario { snapshot, list, policy: enforcement, caps: build_caps(&caps), spec_policy: policy }
    }
}

fn build_caps(spec: &CapsSpec) -> Capabilities {
    let pages =
        PageSizes { liked_tracks: 50, saved_albums: 50, followed_artists: 50, playlists: 50, playlist_items: 100 };
    let mut b = Capabilities::builder(pages);
    for (i, kind) in ActionKind::ALL.iter().enumerate() {
        b = b.supported(*kind, spec.batch[i]);
    }
    match spec.profile {
        Profile::Spotify => b.playlist_removal(PlaylistRemoval::AllOccurrencesOfTrack).build(),
        Profile::Tidal => b.playlist_removal(PlaylistRemoval::ByItemId).build(),
        Profile::Apple => b
            .unsupported(ActionKind::UnlikeTrack, "no documented removal", Some(Alternative::Dislike))
            .unsupported(ActionKind::RemoveAlbum, "no documented removal", Some(Alternative::ManualChecklist))
            .unsupported(ActionKind::RemovePlaylistItem, "no documented removal", Some(Alternative::ManualChecklist))
            .unsupported(ActionKind::UnfollowArtist, "no follows in the API", None)
            .build(),
        Profile::Youtube => {
            let mut b = b.playlist_removal(PlaylistRemoval::ByItemId).playlist_insert_at_position(true);
            for (i, kind) in ActionKind::ALL.iter().enumerate() {
                b = b.quota_cost(*kind, spec.costs[i].min(spec.daily) as u32);
            }
            b.quota(Quota { daily_units: spec.daily, remaining_today: spec.daily.saturating_sub(spec.used) }).build()
        }
    }
}

// ---------------------------------------------------------------------------------------
// The oracle: what the documented strictness rules associate with each item.
// ---------------------------------------------------------------------------------------

struct OracleEntry {
    id: EntryId,
    ids_here: BTreeSet<String>,
    names: BTreeSet<String>,
}

struct Oracle {
    entries: Vec<OracleEntry>,
    /// Every entry's names: a credit list naming one of them as a whole is not split.
    known: BTreeSet<String>,
    strictness: Strictness,
}

type Assoc = (EntryId, MatchKind);

impl Oracle {
    fn new(list: &DnpList, strictness: Strictness) -> Self {
        let entries = list
            .entries
            .iter()
            .map(|e| OracleEntry {
                id: e.id,
                ids_here: e
                    .artist
                    .provider_ids
                    .iter()
                    .filter(|(p, _)| p.as_str() == PROVIDER)
                    .flat_map(|(_, ids)| ids.iter().cloned())
                    .collect(),
                names: std::iter::once(&e.artist.name)
                    .chain(&e.artist.aliases)
                    .map(|n| normalize_name(n))
                    .filter(|n| !n.is_empty())
                    .collect(),
            })
            .collect::<Vec<OracleEntry>>();
        let known = entries.iter().flat_map(|e| e.names.iter().cloned()).collect();
        Self { entries, known, strictness }
    }

    /// A credit's associations. On a track's album (`album_artist`) every role counts.
    fn credit(&self, c: &ArtistCredit, album_artist: bool, out: &mut Vec<Assoc>) {
        if !album_artist && c.role == CreditRole::Featured && self.strictness == Strictness::Conservative {
            return;
        }
        let name = normalize_name(&c.name);
        for e in &self.entries {
            let by_id = c.id.as_ref().is_some_and(|id| e.ids_here.contains(id));
            let by_name = e.names.contains(&name);
            let kind = if by_id {
                match (album_artist, c.role) {
                    (true, _) => MatchKind::AlbumArtist,
                    (false, CreditRole::Primary) => MatchKind::PrimaryCredit,
                    (false, CreditRole::Featured) => MatchKind::FeaturedCredit,
                }
            } else if by_name && (e.ids_here.is_empty() || c.id.is_none()) {
                if album_artist { MatchKind::AlbumArtist } else { MatchKind::CreditName }
            } else if by_name && self.strictness == Strictness::Aggressive {
                MatchKind::NameOnly
            } else {
                continue;
            };
            out.push((e.id, kind));
        }
    }

    fn names_in(&self, names: &[String], kind: MatchKind, out: &mut Vec<Assoc>) {
        for n in names {
            for e in &self.entries {
                if e.names.contains(n) {
                    out.push((e.id, kind));
                }
            }
        }
    }

    fn track(&self, t: &Track) -> Vec<Assoc> {
        let mut out = Vec::new();
        for c in &t.artists {
            self.credit(c, false, &mut out);
        }
        if self.strictness >= Strictness::Moderate {
            for c in t.album.iter().flat_map(|a| &a.artists) {
                self.credit(c, true, &mut out);
            }
            self.names_in(&featured_in_title_with(&t.title, &self.known), MatchKind::TitleFeature, &mut out);
        }
        if self.strictness == Strictness::Aggressive {
            self.names_in(&split_credits(&t.title, &self.known), MatchKind::NameOnly, &mut out);
        }
        out
    }

    fn album(&self, a: &Album) -> Vec<Assoc> {
        let mut out = Vec::new();
        for c in &a.artists {
            self.credit(c, false, &mut out);
        }
        out
    }

    fn followed(&self, a: &Artist) -> Vec<Assoc> {
        let name = normalize_name(&a.name);
        let mut out = Vec::new();
        for e in &self.entries {
            if e.ids_here.contains(&a.id) {
                out.push((e.id, MatchKind::FollowedArtist));
            } else if e.names.contains(&name) && e.ids_here.is_empty() {
                out.push((e.id, MatchKind::CreditName));
            } else if e.names.contains(&name) && self.strictness == Strictness::Aggressive {
                out.push((e.id, MatchKind::NameOnly));
            }
        }
        out
    }
}

fn best(assocs: &[Assoc]) -> f32 {
    assocs.iter().map(|(_, k)| k.confidence()).fold(0.0, f32::max)
}

/// The policy for spotify as the spec says, overrides applied.
fn effective(spec: &PolicySpec) -> (Strictness, Targets, bool) {
    match &spec.override_here {
        Some((s, own, t)) => (s.unwrap_or(spec.strictness), t.unwrap_or(spec.targets), own.unwrap_or(spec.touch_own)),
        None => (spec.strictness, spec.targets, spec.touch_own),
    }
}

fn all_planned(plan: &Plan) -> Vec<&Action> {
    plan.actions().collect()
}

fn blocked_for(list: &DnpList) -> BlockedSet {
    BlockedSet::for_provider(list, &PROVIDER.parse().expect("valid id"))
}

/// Applies every action of `plan` in batch order; each must be confirmed.
fn apply_plan(library: &mut LibrarySnapshot, catalog: &Catalog, plan: &Plan) -> Result<(), TestCaseError> {
    for batch in &plan.batches {
        for action in &batch.actions {
            let outcome = apply_action(library, catalog, action);
            prop_assert!(matches!(outcome, Outcome::Confirmed { .. }), "{action:?} gave {outcome:?}");
        }
    }
    Ok(())
}

fn liked_set(s: &LibrarySnapshot) -> BTreeSet<String> {
    s.liked_tracks.iter().map(|l| serde_json::to_string(l).expect("serializes")).collect()
}

fn album_set(s: &LibrarySnapshot) -> BTreeSet<String> {
    s.saved_albums.iter().map(|a| serde_json::to_string(a).expect("serializes")).collect()
}

fn artist_set(s: &LibrarySnapshot) -> BTreeSet<String> {
    s.followed_artists.iter().map(|a| serde_json::to_string(a).expect("serializes")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    /// Every planned or skipped item is associated with a blocked entry by the documented
    /// rules, with the strongest association's confidence; every associated item of an
    /// enabled kind is planned or skipped exactly once.
    #[test]
    fn nothing_outside_the_blocked_set_is_planned(s in scenario()) {
        let plan = plan(&s.snapshot, &blocked_for(&s.list), &s.policy, &s.caps);
        let (strictness, targets, touch_own) = effective(&s.spec_policy);
        let oracle = Oracle::new(&s.list, strictness);
        let snap = &s.snapshot;

        let mut seen = BTreeSet::new();
        let planned = all_planned(&plan);
        let everything = planned.iter().map(|a| (*a, None)).chain(plan.skipped.iter().map(|k| (&k.action, Some(&k.reason))));
        for (action, skip) in everything {
            let assocs = match &action.target {
                Target::Track { track_id, .. } => {
                    let liked = snap.liked_tracks.iter().find(|l| l.track.id == *track_id);
                    prop_assert!(liked.is_some(), "unknown liked track {track_id}");
                    prop_assert!(targets.liked_tracks);
                    oracle.track(&liked.expect("checked").track)
                }
                Target::Album { album_id, .. } => {
                    let saved = snap.saved_albums.iter().find(|a| a.album.id == *album_id);
                    prop_assert!(saved.is_some(), "unknown album {album_id}");
                    prop_assert!(targets.saved_albums);
                    oracle.album(&saved.expect("checked").album)
                }
                Target::Artist { artist_id, .. } => {
                    let followed = snap.followed_artists.iter().find(|a| a.artist.id == *artist_id);
                    prop_assert!(followed.is_some(), "unknown artist {artist_id}");
                    prop_assert!(targets.followed_artists);
                    oracle.followed(&followed.expect("checked").artist)
                }
                Target::PlaylistItem { playlist_id, track_id, position, .. } => {
                    let playlist = snap.playlists.iter().find(|p| p.id == *playlist_id);
                    prop_assert!(playlist.is_some());
                    let playlist = playlist.expect("checked");
                    let item = playlist.items.get(*position as usize);
                    prop_assert!(item.is_some_and(|i| i.track.id == *track_id), "no {track_id} at {position}");
                    prop_assert!(targets.playlist_items);
                    if skip.is_none() {
                        prop_assert!(playlist.editable, "planned in a playlist the user cannot edit");
                        prop_assert!(!playlist.owned || touch_own, "planned in an own playlist");
                        prop_assert!(!(!playlist.owned && playlist.collaborative && !s.spec_policy.touch_collab));
                    }
                    oracle.track(&item.expect("checked").track)
                }
            };
            prop_assert!(
                assocs.contains(&(action.reason.entry_id, action.reason.matched)),
                "{:?} is not associated by the rules (oracle: {:?})", action, assocs
            );
            prop_assert_eq!(action.reason.confidence, best(&assocs), "not the strongest reason: {:?}", action);
            if skip.is_none() {
                prop_assert!(action.reason.confidence >= s.policy.min_confidence);
                prop_assert!(s.caps.can(action.kind), "planned an unsupported kind {:?}", action.kind);
                prop_assert!(action.kind.is_removal() || action.kind == ActionKind::DislikeTrack);
            }
            let key = (action.target.playlist_id().map(str::to_owned), action.target.item_id().to_owned(),
                match &action.target { Target::PlaylistItem { position, .. } => *position, _ => 0 },
                match &action.target { Target::Track { .. } => 0u8, Target::Album { .. } => 1, Target::Artist { .. } => 2, Target::PlaylistItem { .. } => 3 });
            prop_assert!(seen.insert(key), "item planned twice: {:?}", action);
        }

        // Completeness: every associated item of an enabled kind shows up.
        let count = |enabled: bool, n: usize| if enabled { n } else { 0 };
        let expected = count(targets.liked_tracks, snap.liked_tracks.iter().filter(|l| !oracle.track(&l.track).is_empty()).count())
            + count(targets.saved_albums, snap.saved_albums.iter().filter(|a| !oracle.album(&a.album).is_empty()).count())
            + count(targets.followed_artists, snap.followed_artists.iter().filter(|a| !oracle.followed(&a.artist).is_empty()).count())
            + count(targets.playlist_items, snap.playlists.iter().flat_map(|p| &p.items).filter(|i| !oracle.track(&i.track).is_empty()).count());
        prop_assert_eq!(seen.len(), expected);

        // Allow-listed tracks are never planned.
        for action in &planned {
            let track_id = match &action.target {
                Target::Track { track_id, .. } | Target::PlaylistItem { track_id, .. } => track_id,
                _ => continue,
            };
            for rule in &s.policy.allow {
                match rule {
                    AllowRule::Track { id, .. } => prop_assert_ne!(id, track_id),
                    AllowRule::Isrc { isrc } => {
                        let track = snap.liked_tracks.iter().map(|l| &l.track)
                            .chain(snap.playlists.iter().flat_map(|p| p.items.iter().map(|i| &i.track)))
                            .find(|t| t.id == *track_id).expect("exists");
                        prop_assert!(!track.isrc.as_deref().is_some_and(|i| i.eq_ignore_ascii_case(isrc)));
                    }
                }
            }
        }
    }

    /// Applying a plan, then the rollback of its confirmed actions, restores the library:
    /// liked tracks, albums and artists as sets, playlists exactly, in order.
    #[test]
    fn plan_then_rollback_restores_the_snapshot(s in scenario()) {
        let before = s.snapshot.clone();
        let plan = plan(&before, &blocked_for(&s.list), &s.policy, &s.caps);
        let catalog = Catalog::from_snapshot(&before);
        let mut library = before.clone();
        apply_plan(&mut library, &catalog, &plan)?;

        // The diff of the enforcement names exactly what was removed.
        let d = diff(&before, &library);
        let removed = |kind: ActionKind| -> BTreeSet<String> {
            plan.actions().filter(|a| a.kind == kind).map(|a| a.target.item_id().to_owned()).collect()
        };
        prop_assert_eq!(d.liked_removed.iter().cloned().collect::<BTreeSet<_>>(), removed(ActionKind::UnlikeTrack));
        prop_assert_eq!(d.albums_removed.iter().cloned().collect::<BTreeSet<_>>(), removed(ActionKind::RemoveAlbum));
        prop_assert_eq!(d.artists_unfollowed.iter().cloned().collect::<BTreeSet<_>>(), removed(ActionKind::UnfollowArtist));
        prop_assert!(d.liked_added.is_empty() && d.albums_added.is_empty() && d.artists_followed.is_empty());
        let playlist_removals = plan.actions().filter(|a| a.kind == ActionKind::RemovePlaylistItem).count();
        prop_assert_eq!(d.playlists_changed.iter().map(|p| p.removed.len()).sum::<usize>(), playlist_removals);

        let done: Vec<Action> = plan.actions().cloned().collect();
        let rollback = rollback_plan(&before.provider, BatchId(Uuid::from_u128(7)), &done, &s.caps);
        prop_assert!(rollback.skipped.is_empty(), "inverse unsupported: {:?}", rollback.skipped);
        // Every confirmed action is undone by at least one rollback action (a re-like of a
        // track that was disliked is followed by its dislike rating).
        let undone: BTreeSet<ActionId> = rollback.actions().filter_map(|a| a.inverse_of).collect();
        prop_assert_eq!(undone, done.iter().map(|a| a.id).collect::<BTreeSet<_>>());
        prop_assert!(rollback.actions().all(|a| a.inverse_of.is_some()));
        apply_plan(&mut library, &catalog, &rollback)?;

        prop_assert_eq!(liked_set(&library), liked_set(&before));
        prop_assert_eq!(album_set(&library), album_set(&before));
        prop_assert_eq!(artist_set(&library), artist_set(&before));
        prop_assert_eq!(&library.playlists, &before.playlists);
        prop_assert!(diff(&before, &library).is_empty());
    }

    /// The same input gives a byte-identical plan, and planning the enforced library plans
    /// nothing more.
    #[test]
    fn plans_are_deterministic_and_idempotent(s in scenario()) {
        let first = plan(&s.snapshot, &blocked_for(&s.list), &s.policy, &s.caps);
        let again = plan(&s.snapshot.clone(), &blocked_for(&s.list.clone()), &s.policy.clone(), &s.caps.clone());
        prop_assert_eq!(
            serde_json::to_string(&first).expect("serializes"),
            serde_json::to_string(&again).expect("serializes")
        );

        let mut enforced = s.snapshot.clone();
        apply_plan(&mut enforced, &Catalog::from_snapshot(&s.snapshot), &first)?;
        let second = plan(&enforced, &blocked_for(&s.list), &s.policy, &s.caps);
        prop_assert!(second.is_empty(), "second plan acts again: {:?}", second.batches);
        prop_assert_eq!(second.summary.total_actions, 0);
    }

    /// Batches hold one kind, at most one playlist, and never more than the capability's
    /// maximum (distinct tracks where a removal takes every occurrence); quota days never
    /// hold more than the day's units; the summary adds up.
    #[test]
    fn batches_respect_capabilities(s in scenario()) {
        let plan = plan(&s.snapshot, &blocked_for(&s.list), &s.policy, &s.caps);
        let mut ids = BTreeSet::new();
        for batch in &plan.batches {
            prop_assert!(!batch.actions.is_empty());
            let max = s.caps.max_batch(batch.kind) as usize;
            let by_track = batch.kind == ActionKind::RemovePlaylistItem
                && s.caps.playlist_removal == PlaylistRemoval::AllOccurrencesOfTrack;
            let size = if by_track {
                batch.actions.iter().map(|a| a.target.item_id()).collect::<BTreeSet<_>>().len()
            } else {
                batch.actions.len()
            };
            prop_assert!(size <= max, "batch of {} > {} for {:?}", size, max, batch.kind);
            for a in &batch.actions {
                prop_assert_eq!(a.kind, batch.kind);
                prop_assert_eq!(a.target.playlist_id(), batch.playlist_id.as_deref());
                prop_assert!(ids.insert(a.id), "duplicate action id {}", a.id);
            }
        }
        for k in &plan.skipped {
            prop_assert!(ids.insert(k.action.id), "duplicate action id {}", k.action.id);
        }
        if by_track_any(&s.caps) {
            // Every occurrence of a track in a playlist goes in the same call.
            let mut home: BTreeMap<(String, String), usize> = BTreeMap::new();
            for (n, batch) in plan.batches.iter().enumerate().filter(|(_, b)| b.kind == ActionKind::RemovePlaylistItem) {
                for a in &batch.actions {
                    let key = (a.target.playlist_id().unwrap_or_default().to_owned(), a.target.item_id().to_owned());
                    prop_assert_eq!(*home.entry(key).or_insert(n), n);
                }
            }
        }
        if let Some(quota) = &s.caps.quota {
            let mut per_day: BTreeMap<u32, u64> = BTreeMap::new();
            for b in &plan.batches {
                *per_day.entry(b.day).or_default() += b.quota_units;
            }
            for (day, units) in per_day {
                let budget = if day == 0 { quota.remaining_today } else { quota.daily_units };
                prop_assert!(units <= budget, "day {} holds {} units of {}", day, units, budget);
            }
            prop_assert_eq!(plan.summary.quota_units, plan.batches.iter().map(|b| b.quota_units).sum::<u64>());
        }
        prop_assert_eq!(plan.summary.total_actions as usize, plan.actions().count());
        prop_assert_eq!(plan.summary.api_calls as usize, plan.batches.len());
        prop_assert_eq!(plan.summary.skipped.values().sum::<u64>() as usize, plan.skipped.len());
        prop_assert_eq!(plan.summary.items_scanned as usize, s.snapshot.item_count());
    }

    /// An empty DNP list plans nothing and skips nothing.
    #[test]
    fn an_empty_dnp_list_plans_nothing(s in scenario()) {
        let plan = plan(&s.snapshot, &blocked_for(&DnpList::default()), &s.policy, &s.caps);
        prop_assert!(plan.is_empty());
        prop_assert!(plan.skipped.is_empty());
        prop_assert_eq!(plan.summary.total_actions, 0);
        prop_assert_eq!(plan.summary.days, 0);
    }
}

fn by_track_any(caps: &Capabilities) -> bool {
    caps.playlist_removal == PlaylistRemoval::AllOccurrencesOfTrack
}
