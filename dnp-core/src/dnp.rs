//! The Do-Not-Play list: entries naming artists, and the [`BlockedSet`] the planner
//! matches against.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::id::{EntryId, ProviderId};
use crate::normalize::{FingerprintFilter, KnownNames, id_hash, name_fingerprint, normalize_name};

/// Who an artist is, across services.
///
/// Resolution of a name to provider ids is explicit: the server offers candidates with a
/// confidence and the user picks; the chosen ids land here. An entry with no id for a
/// provider is matched on that provider by normalized name and aliases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtistIdentity {
    /// The display name.
    pub name: String,
    /// Other names the artist is credited under.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The artist's ids per provider: `{"spotify": ["3TVXtAsR1Inumwj472S9r4"]}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provider_ids: BTreeMap<ProviderId, Vec<String>>,
    /// The MusicBrainz artist id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub musicbrainz_id: Option<String>,
    /// The ISNI, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isni: Option<String>,
}

impl ArtistIdentity {
    /// An identity known only by name.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into(), aliases: Vec::new(), provider_ids: BTreeMap::new(), musicbrainz_id: None, isni: None }
    }

    /// Adds a provider id (builder style).
    pub fn with_id(mut self, provider: ProviderId, id: impl Into<String>) -> Self {
        self.provider_ids.entry(provider).or_default().push(id.into());
        self
    }
}

/// Where an entry came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntrySource {
    /// The user added it.
    Personal,
    /// It comes from a community list the user subscribes to.
    Community {
        /// The community list's id.
        list_id: String,
    },
}

/// One entry of a DNP list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnpEntry {
    /// The entry's id.
    pub id: EntryId,
    /// The blocked artist.
    pub artist: ArtistIdentity,
    /// The user's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The user's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// When it was added.
    pub added_at: DateTime<Utc>,
    /// Personal or from a community list.
    #[serde(default = "personal")]
    pub source: EntrySource,
}

fn personal() -> EntrySource {
    EntrySource::Personal
}

/// A user's Do-Not-Play list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnpList {
    /// The entries.
    pub entries: Vec<DnpEntry>,
}

/// A blocked artist as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedArtist {
    /// The DNP entry.
    pub entry_id: EntryId,
    /// Its display name.
    pub name: String,
}

/// A DNP list compiled for one provider: hash lookups by provider artist id and by
/// normalized name. Build it once per plan with [`BlockedSet::for_provider`].
#[derive(Debug, Clone, Default)]
pub struct BlockedSet {
    pub(crate) artists: Vec<BlockedArtist>,
    /// Provider artist id -> index into `artists`.
    pub(crate) by_id: FxHashMap<String, u32>,
    /// Normalized name or alias -> index, only for entries with no id at this provider
    /// (matched by name at every strictness).
    pub(crate) by_name_only: FxHashMap<String, u32>,
    /// Normalized name or alias -> index, for every entry (title mentions, aggressive).
    pub(crate) by_any_name: FxHashMap<String, u32>,
    /// Hashes of the keys of `by_id`: most credits are ruled out without touching the map.
    pub(crate) id_filter: FingerprintFilter,
    /// Fingerprints of the keys of `by_name_only`: most credits are ruled out without
    /// normalizing their name.
    pub(crate) name_only_filter: FingerprintFilter,
    /// Fingerprints of the keys of `by_any_name`.
    pub(crate) any_name_filter: FingerprintFilter,
}

impl BlockedSet {
    /// Compiles `list` for `provider`.
    pub fn for_provider(list: &DnpList, provider: &ProviderId) -> Self {
        let mut set = Self::default();
        for entry in &list.entries {
            let index = set.artists.len() as u32;
            set.artists.push(BlockedArtist { entry_id: entry.id, name: entry.artist.name.clone() });
            let ids = entry.artist.provider_ids.get(provider).map(Vec::as_slice).unwrap_or(&[]);
            for id in ids {
                set.id_filter.insert_fingerprint(id_hash(id));
                set.by_id.entry(id.clone()).or_insert(index);
            }
            for name in std::iter::once(&entry.artist.name).chain(&entry.artist.aliases) {
                let normalized = normalize_name(name);
                if normalized.is_empty() {
                    continue;
                }
                if ids.is_empty() {
                    set.name_only_filter.insert(&normalized);
                    set.by_name_only.entry(normalized.clone()).or_insert(index);
                }
                set.any_name_filter.insert(&normalized);
                set.by_any_name.entry(normalized).or_insert(index);
            }
        }
        set
    }

    /// The number of blocked artists.
    pub fn len(&self) -> usize {
        self.artists.len()
    }

    /// Whether nothing is blocked.
    pub fn is_empty(&self) -> bool {
        self.artists.is_empty()
    }

    /// The blocked artist at `index`.
    pub(crate) fn artist(&self, index: u32) -> &BlockedArtist {
        &self.artists[index as usize]
    }
}

/// The DNP list's names and aliases (normalized): a credit list that names a blocked band
/// ("Simon & Garfunkel") is not split into its members' names.
impl KnownNames for BlockedSet {
    fn contains_normalized(&self, normalized: &str) -> bool {
        self.by_any_name.contains_key(normalized)
    }

    /// By fingerprint, without normalizing.
    fn may_contain_raw(&self, raw: &str) -> bool {
        self.any_name_filter.may_contain(name_fingerprint(raw))
    }
}
