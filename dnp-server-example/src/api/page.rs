//! Keyset pagination: `limit` and an opaque `cursor` naming the last row seen.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// The default and largest page sizes.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
pub(crate) const MAX_LIMIT: u32 = 200;

/// `?limit=&cursor=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The limit, checked.
    pub(crate) fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::bad_request("invalid_limit", format!("limit must be from 1 to {MAX_LIMIT}"))),
        }
    }

    /// The decoded cursor: the sort key (milliseconds) and id of the last row seen.
    pub(crate) fn cursor(&self) -> Result<Option<(i64, String)>, ApiError> {
        self.cursor.as_deref().map(decode_cursor).transpose()
    }
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub(crate) fn encode_cursor(key: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{key}:{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::bad_request("invalid_cursor", "the cursor is not one this server gave out");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (key, id) = text.split_once(':').ok_or_else(bad)?;
    let key = key.parse().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok((key, id.to_owned()))
}

/// Splits `rows` (fetched with `limit + 1`) into a page, the cursor naming its last row.
pub(crate) fn paginate<R, T: ToSchema>(
    mut rows: Vec<R>,
    limit: u32,
    key: impl Fn(&R) -> (i64, String),
    map: impl Fn(R) -> Result<T, ApiError>,
) -> Result<Page<T>, ApiError> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(&key).map(|(k, id)| encode_cursor(k, &id)) } else { None };
    let items = rows.into_iter().map(map).collect::<Result<_, _>>()?;
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_a_400() {
        let q = PageQuery { limit: None, cursor: Some(encode_cursor(42, "abc")) };
        assert_eq!(q.cursor().unwrap(), Some((42, "abc".to_owned())));
        for bad in ["!!", "bm8tY29sb24", &URL_SAFE_NO_PAD.encode("x:y")] {
            let q = PageQuery { limit: None, cursor: Some(bad.to_owned()) };
            assert_eq!(q.cursor().unwrap_err().code(), "invalid_cursor", "{bad}");
        }
        assert!(PageQuery { limit: Some(0), cursor: None }.limit().is_err());
        assert!(PageQuery { limit: Some(201), cursor: None }.limit().is_err());
    }
}
