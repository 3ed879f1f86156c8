//! Identifiers: the open [`ProviderId`] and the typed UUID ids of users, connections,
//! DNP entries, batches, actions and jobs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::error::InputError;

/// The id of a music service: `spotify`, `apple_music`, `youtube_music`, `tidal`, or any id
/// a third-party adapter chooses (`deezer`, `qobuz`…).
///
/// Open by design: it is a validated string, not a closed enum. A valid id is 1 to 32
/// characters of lowercase ASCII letters, digits and `_`, starting with a letter.
///
/// ```
/// use dnp_core::ProviderId;
/// let id: ProviderId = "spotify".parse().unwrap();
/// assert_eq!(id.as_str(), "spotify");
/// assert!("Spotify!".parse::<ProviderId>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ProviderId(String);

impl ProviderId {
    /// Spotify.
    pub const SPOTIFY: &'static str = "spotify";
    /// Apple Music.
    pub const APPLE_MUSIC: &'static str = "apple_music";
    /// YouTube Music (through the YouTube Data API).
    pub const YOUTUBE_MUSIC: &'static str = "youtube_music";
    /// TIDAL.
    pub const TIDAL: &'static str = "tidal";

    /// Validates and wraps a provider id.
    ///
    /// # Errors
    /// [`InputError::InvalidProviderId`] when the id is empty, longer than 32 characters,
    /// or has characters other than `a-z`, `0-9` and `_`, or does not start with a letter.
    pub fn new(id: impl Into<String>) -> Result<Self, InputError> {
        let id = id.into();
        let valid = !id.is_empty()
            && id.len() <= 32
            && id.as_bytes()[0].is_ascii_lowercase()
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid { Ok(Self(id)) } else { Err(InputError::InvalidProviderId { id }) }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ProviderId {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for ProviderId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random (v4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InputError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| InputError::InvalidId {
                    kind: stringify!($name),
                    value: s.chars().take(64).collect(),
                })
            }
        }
    };
}

uuid_id!(
    /// A user of dnp.
    UserId
);
uuid_id!(
    /// One user's connection to one provider (the row holding its tokens).
    ConnectionId
);
uuid_id!(
    /// An entry of a DNP list.
    EntryId
);
uuid_id!(
    /// An enforcement (or rollback) batch: one execution of a plan.
    BatchId
);
uuid_id!(
    /// A job of the [`JobQueue`](crate::JobQueue).
    JobId
);

/// The id of an action within its plan: its index in plan order, stable for a given plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(pub u32);

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{}", self.0)
    }
}
