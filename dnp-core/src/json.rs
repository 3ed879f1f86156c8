//! Reading the JSON forms of snapshots, DNP lists and policies with errors that name the
//! field and position.

use serde::de::DeserializeOwned;

use crate::dnp::DnpList;
use crate::error::InputError;
use crate::model::LibrarySnapshot;
use crate::policy::EnforcementPolicy;

/// Parses `json` as a `T`, naming `document` in the error.
///
/// # Errors
/// [`InputError::Json`] with the field path (`liked_tracks[3].track.artists[0].role`), the
/// line and column, and serde's message; text after the document is an error too (path `.`).
pub fn from_json<T: DeserializeOwned>(document: &'static str, json: &str) -> Result<T, InputError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        InputError::Json {
            document,
            path,
            line: inner.line(),
            column: inner.column(),
            message: strip_position(&inner.to_string()),
        }
    })?;
    // Anything but whitespace after the document is an error, not silently ignored.
    de.end().map_err(|inner| InputError::Json {
        document,
        path: ".".to_owned(),
        line: inner.line(),
        column: inner.column(),
        message: strip_position(&inner.to_string()),
    })?;
    Ok(value)
}

/// Parses a library snapshot.
///
/// ```
/// let snapshot = dnp_core::json::snapshot_from_json(r#"{"provider": "spotify"}"#).unwrap();
/// assert_eq!(snapshot.item_count(), 0);
/// let err = dnp_core::json::snapshot_from_json(r#"{"provider": "Spotify!"}"#).unwrap_err();
/// assert!(err.to_string().contains("provider"));
/// ```
pub fn snapshot_from_json(json: &str) -> Result<LibrarySnapshot, InputError> {
    from_json("library snapshot", json)
}

/// Parses a DNP list.
pub fn dnp_list_from_json(json: &str) -> Result<DnpList, InputError> {
    from_json("DNP list", json)
}

/// Parses an enforcement policy (missing fields take their defaults).
pub fn policy_from_json(json: &str) -> Result<EnforcementPolicy, InputError> {
    from_json("enforcement policy", json)
}

/// serde_json appends " at line L column C"; we report those separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}
