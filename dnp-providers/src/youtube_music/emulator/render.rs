//! The Data API's JSON shapes: resources, list responses, page tokens, durations.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::store::{ItemRec, PlaylistRec, Store, SubRec, digest};

/// An RFC 3339 timestamp as the Data API writes it (`2026-01-15T12:00:00Z`).
pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An ISO-8601 duration as `contentDetails.duration` gives it (`PT3M25S`); `P0D` for an
/// unknown or zero duration (YouTube's value for live streams).
pub(crate) fn iso_duration(ms: Option<u32>) -> String {
    let total = ms.map_or(0, |ms| (ms + 500) / 1000);
    if total == 0 {
        return "P0D".into();
    }
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 {
        out.push_str(&format!("{s}S"));
    }
    out
}

/// A page token: the list it belongs to and the offset, opaque to clients.
pub(crate) fn page_token(scope: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{scope}\u{1f}{offset}"))
}

/// The offset a page token of `scope` stands for; `None` for a token of another list or
/// garbage.
pub(crate) fn parse_page_token(scope: &str, token: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (s, offset) = raw.split_once('\u{1f}')?;
    (s == scope).then(|| offset.parse().ok()).flatten()
}

/// Which parts of a resource to render.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parts(pub(crate) Vec<String>);

impl Parts {
    pub(crate) fn has(&self, part: &str) -> bool {
        self.0.iter().any(|p| p == part)
    }
}

fn object(pairs: Vec<(&str, Value)>) -> Value {
    let mut map = Map::new();
    for (k, v) in pairs {
        map.insert(k.to_owned(), v);
    }
    Value::Object(map)
}

/// A list response of `kind` (`youtube#videoListResponse`…).
pub(crate) fn list_response(
    kind: &str,
    items: Vec<Value>,
    next: Option<String>,
    prev: Option<String>,
    total: usize,
    per_page: usize,
) -> Value {
    let etags: Vec<&str> = items.iter().filter_map(|i| i["etag"].as_str()).collect();
    let mut body = json!({
        "kind": kind,
        "etag": digest(&[kind, &etags.join(","), &total.to_string()]),
        "pageInfo": { "totalResults": total, "resultsPerPage": per_page },
        "items": items,
    });
    if let Some(object) = body.as_object_mut() {
        if let Some(next) = next {
            object.insert("nextPageToken".into(), json!(next));
        }
        if let Some(prev) = prev {
            object.insert("prevPageToken".into(), json!(prev));
        }
    }
    body
}

fn channel_title(store: &Store, channel_id: &str) -> String {
    store.channels.get(channel_id).map(|c| c.title.clone()).unwrap_or_default()
}

/// A `youtube#video`.
pub(crate) fn video(store: &Store, id: &str, parts: &Parts) -> Option<Value> {
    let rec = store.videos.get(id)?;
    let mut fields =
        vec![("kind", json!("youtube#video")), ("etag", json!(digest(&["video", id, &rec.title]))), ("id", json!(id))];
    if parts.has("snippet") {
        fields.push((
            "snippet",
            json!({
                "publishedAt": timestamp(rec.published_at),
                "channelId": rec.channel_id,
                "title": rec.title,
                "description": "",
                "thumbnails": {},
                "channelTitle": channel_title(store, &rec.channel_id),
                "categoryId": "10",
                "liveBroadcastContent": "none",
            }),
        ));
    }
    if parts.has("contentDetails") {
        fields.push((
            "contentDetails",
            json!({
                "duration": iso_duration(rec.duration_ms),
                "dimension": "2d",
                "definition": "hd",
                "caption": "false",
                "licensedContent": true,
                "contentRating": {},
                "projection": "rectangular",
            }),
        ));
    }
    Some(object(fields))
}

/// A `youtube#playlist`; `private` for a user's own, `public` for others'.
pub(crate) fn playlist(store: &Store, id: &str, rec: &PlaylistRec, parts: &Parts, own: bool) -> Value {
    let mut fields =
        vec![("kind", json!("youtube#playlist")), ("etag", json!(Store::playlist_etag(id, rec))), ("id", json!(id))];
    if parts.has("snippet") {
        fields.push((
            "snippet",
            json!({
                "publishedAt": timestamp(rec.published_at),
                "channelId": rec.channel_id,
                "title": rec.title,
                "description": "",
                "thumbnails": {},
                "channelTitle": channel_title(store, &rec.channel_id),
                "localized": { "title": rec.title, "description": "" },
            }),
        ));
    }
    if parts.has("contentDetails") {
        fields.push(("contentDetails", json!({ "itemCount": rec.items.len() })));
    }
    if parts.has("status") {
        fields.push(("status", json!({ "privacyStatus": if own { "private" } else { "public" } })));
    }
    object(fields)
}

/// A `youtube#playlistItem` at `position` of `playlist_id`.
pub(crate) fn playlist_item(
    store: &Store,
    playlist_id: &str,
    rec: &PlaylistRec,
    item: &ItemRec,
    position: usize,
    parts: &Parts,
) -> Value {
    let video = store.videos.get(&item.video_id);
    let mut fields = vec![
        ("kind", json!("youtube#playlistItem")),
        ("etag", json!(digest(&["playlistItem", &item.id, &position.to_string()]))),
        ("id", json!(item.id)),
    ];
    if parts.has("snippet") {
        let mut snippet = json!({
            "publishedAt": timestamp(item.added_at),
            "channelId": rec.channel_id,
            "title": video.map_or("Deleted video", |v| v.title.as_str()),
            "description": "",
            "thumbnails": {},
            "channelTitle": channel_title(store, &rec.channel_id),
            "playlistId": playlist_id,
            "position": position,
            "resourceId": { "kind": "youtube#video", "videoId": item.video_id },
        });
        if let (Some(video), Some(object)) = (video, snippet.as_object_mut()) {
            object.insert("videoOwnerChannelTitle".into(), json!(channel_title(store, &video.channel_id)));
            object.insert("videoOwnerChannelId".into(), json!(video.channel_id));
        }
        fields.push(("snippet", snippet));
    }
    if parts.has("contentDetails") {
        let mut details = json!({ "videoId": item.video_id });
        if let (Some(video), Some(object)) = (video, details.as_object_mut()) {
            object.insert("videoPublishedAt".into(), json!(timestamp(video.published_at)));
        }
        fields.push(("contentDetails", details));
    }
    if parts.has("status") {
        fields.push(("status", json!({ "privacyStatus": "public" })));
    }
    object(fields)
}

/// A `youtube#subscription` of the channel `subscriber`.
pub(crate) fn subscription(store: &Store, subscriber: &str, sub: &SubRec, parts: &Parts) -> Value {
    let mut fields = vec![
        ("kind", json!("youtube#subscription")),
        ("etag", json!(digest(&["subscription", &sub.id]))),
        ("id", json!(sub.id)),
    ];
    if parts.has("snippet") {
        fields.push((
            "snippet",
            json!({
                "publishedAt": timestamp(sub.published_at),
                "title": channel_title(store, &sub.channel_id),
                "description": "",
                "resourceId": { "kind": "youtube#channel", "channelId": sub.channel_id },
                "channelId": subscriber,
                "thumbnails": {},
            }),
        ));
    }
    if parts.has("contentDetails") {
        let uploads = store.videos.values().filter(|v| v.channel_id == sub.channel_id).count();
        fields.push(("contentDetails", json!({ "totalItemCount": uploads, "newItemCount": 0, "activityType": "all" })));
    }
    object(fields)
}

/// A `youtube#searchResult` for a channel.
pub(crate) fn channel_result(store: &Store, channel_id: &str) -> Value {
    let title = channel_title(store, channel_id);
    let published = store.channels.get(channel_id).map(|c| timestamp(c.published_at)).unwrap_or_default();
    json!({
        "kind": "youtube#searchResult",
        "etag": digest(&["search", channel_id]),
        "id": { "kind": "youtube#channel", "channelId": channel_id },
        "snippet": {
            "publishedAt": published,
            "channelId": channel_id,
            "title": title,
            "description": "",
            "thumbnails": {},
            "channelTitle": title,
            "liveBroadcastContent": "none",
        },
    })
}

/// A `youtube#searchResult` for a video.
pub(crate) fn video_result(store: &Store, video_id: &str) -> Option<Value> {
    let rec = store.videos.get(video_id)?;
    Some(json!({
        "kind": "youtube#searchResult",
        "etag": digest(&["search", video_id]),
        "id": { "kind": "youtube#video", "videoId": video_id },
        "snippet": {
            "publishedAt": timestamp(rec.published_at),
            "channelId": rec.channel_id,
            "title": rec.title,
            "description": "",
            "thumbnails": {},
            "channelTitle": channel_title(store, &rec.channel_id),
            "liveBroadcastContent": "none",
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_as_iso_8601() {
        assert_eq!(iso_duration(Some(205_000)), "PT3M25S");
        assert_eq!(iso_duration(Some(3_600_000)), "PT1H");
        assert_eq!(iso_duration(Some(3_661_400)), "PT1H1M1S");
        assert_eq!(iso_duration(None), "P0D");
        assert_eq!(iso_duration(Some(240_000)), "PT4M");
    }

    #[test]
    fn page_tokens_belong_to_their_list() {
        let token = page_token("liked:alice", 50);
        assert_eq!(parse_page_token("liked:alice", &token), Some(50));
        assert_eq!(parse_page_token("liked:bob", &token), None);
        assert_eq!(parse_page_token("liked:alice", "garbage!"), None);
    }
}
