//! The JSON of the YouTube Data API v3 that dnp reads, and how a video becomes a
//! [`Track`].
//!
//! Only the fields dnp uses are declared; the others are ignored. Fields the API may leave
//! out (a `snippet` not asked for, a deleted video's owner) are `Option`s or default.
//!
//! # From a video to a track
//! YouTube has no ISRC, no album and no artist credits: a track is a video, and its
//! artists come from where the video sits and what it is called ([`video_track`]):
//! - a video of an auto-generated `"Artist - Topic"` channel (YouTube Music's catalog)
//!   has the primary artist `Artist`, with the channel id as its id;
//! - otherwise a title `"Artist - Song"` names the primary artists before the dash
//!   (`"A & B - Song"` gives two); the one whose name is the channel's (minus a `VEVO` or
//!   `- Topic` suffix) gets the channel id;
//! - otherwise the channel is the primary artist;
//! - featured artists are those the title names after `feat.`, `ft.`, `featuring` or
//!   `(with …)`, split by [`dnp_core::normalize`], without ids.
//!
//! The duration comes from `contentDetails.duration`, an ISO-8601 duration (`PT3M25S`).

use chrono::{DateTime, Utc};
use dnp_core::normalize::{featured_in_title, normalize_name, split_credits};
use dnp_core::{ArtistCredit, CreditRole, Track};
use serde::{Deserialize, Serialize};

/// `pageInfo` of a list response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// Results in the whole list (may be approximate for some lists).
    #[serde(default)]
    pub total_results: u32,
    /// Results a page.
    #[serde(default)]
    pub results_per_page: u32,
}

/// A list response (`youtube#videoListResponse`, `youtube#playlistListResponse`…).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    /// The resource kind of the response.
    #[serde(default)]
    pub kind: String,
    /// The response's etag.
    #[serde(default)]
    pub etag: Option<String>,
    /// The token of the next page, absent on the last.
    #[serde(default)]
    pub next_page_token: Option<String>,
    /// Counts.
    #[serde(default)]
    pub page_info: PageInfo,
    /// The page's resources.
    pub items: Vec<T>,
}

/// `resourceId`: what a playlist item or subscription points at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceId {
    /// `youtube#video`, `youtube#channel`…
    #[serde(default)]
    pub kind: String,
    /// The video, for a playlist item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_id: Option<String>,
    /// The channel, for a subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
}

/// A `youtube#video` with its `snippet` and `contentDetails`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Video {
    /// The video id.
    pub id: String,
    /// Title and channel (when `part` had `snippet`).
    #[serde(default)]
    pub snippet: Option<VideoSnippet>,
    /// Duration (when `part` had `contentDetails`).
    #[serde(default)]
    pub content_details: Option<VideoContentDetails>,
}

/// A video's `snippet`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoSnippet {
    /// The title.
    pub title: String,
    /// The uploading channel.
    pub channel_id: String,
    /// Its title (`"Artist - Topic"` for YouTube Music's auto-generated channels).
    #[serde(default)]
    pub channel_title: String,
}

/// A video's `contentDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoContentDetails {
    /// ISO-8601 duration, `PT3M25S`.
    #[serde(default)]
    pub duration: Option<String>,
}

/// A `youtube#playlist`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaylistResource {
    /// The playlist id.
    pub id: String,
    /// The resource's etag: changes whenever the playlist (its item count included) does.
    #[serde(default)]
    pub etag: Option<String>,
    /// Title and owner.
    #[serde(default)]
    pub snippet: Option<PlaylistSnippet>,
    /// The item count.
    #[serde(default)]
    pub content_details: Option<PlaylistContentDetails>,
}

/// A playlist's `snippet`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaylistSnippet {
    /// The title.
    pub title: String,
    /// The owning channel.
    #[serde(default)]
    pub channel_id: Option<String>,
}

/// A playlist's `contentDetails`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaylistContentDetails {
    /// How many items it has.
    #[serde(default)]
    pub item_count: u32,
}

/// A `youtube#playlistItem`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaylistItemResource {
    /// The playlist item id (what `playlistItems.delete` takes).
    pub id: String,
    /// Position, video and title.
    pub snippet: PlaylistItemSnippet,
}

/// A playlist item's `snippet`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaylistItemSnippet {
    /// When the item was added to the playlist.
    #[serde(default)]
    pub published_at: Option<DateTime<Utc>>,
    /// The video's title (`"Deleted video"`, `"Private video"` when unavailable).
    #[serde(default)]
    pub title: String,
    /// 0-based position.
    #[serde(default)]
    pub position: Option<u32>,
    /// The video.
    pub resource_id: ResourceId,
    /// The video's channel; absent for deleted and private videos.
    #[serde(default)]
    pub video_owner_channel_id: Option<String>,
    /// Its title.
    #[serde(default)]
    pub video_owner_channel_title: Option<String>,
}

/// A `youtube#subscription`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The subscription id (what `subscriptions.delete` takes).
    pub id: String,
    /// The channel subscribed to (when `part` had `snippet`).
    #[serde(default)]
    pub snippet: Option<SubscriptionSnippet>,
}

/// A subscription's `snippet`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSnippet {
    /// The subscribed channel's title.
    #[serde(default)]
    pub title: String,
    /// The subscribed channel.
    pub resource_id: ResourceId,
}

/// A `youtube#searchResult`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    /// What was found.
    pub id: ResourceId,
    /// Its title.
    #[serde(default)]
    pub snippet: Option<SearchSnippet>,
}

/// A search result's `snippet`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchSnippet {
    /// The channel's (or video's) title.
    #[serde(default)]
    pub title: String,
    /// The description.
    #[serde(default)]
    pub description: String,
}

/// The body of `playlistItems.insert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlaylistItemInsert {
    /// The snippet.
    pub snippet: PlaylistItemInsertSnippet,
}

/// Its snippet: the playlist, the video and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaylistItemInsertSnippet {
    /// The playlist.
    pub playlist_id: String,
    /// `{kind: "youtube#video", videoId}`.
    pub resource_id: ResourceId,
    /// The 0-based position (appended when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
}

/// The body of `subscriptions.insert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionInsert {
    /// The snippet.
    pub snippet: SubscriptionInsertSnippet,
}

/// Its snippet: the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionInsertSnippet {
    /// `{kind: "youtube#channel", channelId}`.
    pub resource_id: ResourceId,
}

/// The suffix of YouTube Music's auto-generated artist channels.
pub const TOPIC_SUFFIX: &str = " - Topic";

/// The artist a channel stands for: `"Artist - Topic"` and `"ArtistVEVO"` give `Artist`;
/// any other title is returned trimmed.
pub fn channel_artist_name(channel_title: &str) -> &str {
    let title = channel_title.trim();
    if let Some(name) = title.strip_suffix(TOPIC_SUFFIX) {
        return name.trim();
    }
    match title.strip_suffix("VEVO") {
        Some(name) if !name.trim().is_empty() => name.trim(),
        _ => title,
    }
}

/// Whether `channel_title` is an auto-generated `"Artist - Topic"` channel.
pub fn is_topic_channel(channel_title: &str) -> bool {
    channel_title.trim().ends_with(TOPIC_SUFFIX)
}

/// Parses an ISO-8601 duration as YouTube gives it (`PT3M25S`, `PT1H2M`, `P1DT2H`, `P0D`)
/// into milliseconds. `None` for anything else or longer than `u32` milliseconds (49 days).
///
/// ```
/// use dnp_providers::youtube_music::model::parse_duration_ms;
/// assert_eq!(parse_duration_ms("PT3M25S"), Some(205_000));
/// assert_eq!(parse_duration_ms("PT1H0M1.5S"), Some(3_601_500));
/// assert_eq!(parse_duration_ms("P0D"), Some(0));
/// assert_eq!(parse_duration_ms("3:25"), None);
/// ```
pub fn parse_duration_ms(iso: &str) -> Option<u32> {
    let rest = iso.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut millis: u64 = 0;
    let mut any = false;
    let mut add = |part: &str, units: &[(char, u64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let &(_, factor) = units.iter().find(|(u, _)| *u == c)?;
            let value: f64 = number.parse().ok()?;
            if !value.is_finite() || value < 0.0 {
                return None;
            }
            millis = millis.checked_add((value * factor as f64).round() as u64)?;
            number.clear();
            any = true;
        }
        number.is_empty().then_some(())
    };
    add(date, &[('W', 604_800_000), ('D', 86_400_000)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        add(time, &[('H', 3_600_000), ('M', 60_000), ('S', 1_000)])?;
    }
    if !any {
        return None;
    }
    u32::try_from(millis).ok()
}

/// The display form of the name in `haystack` that normalizes to `normalized` (the
/// shortest run of words that does), without surrounding brackets and punctuation; the
/// normalized name itself when none does.
fn display_form(haystack: &str, normalized: &str) -> String {
    let words: Vec<(usize, usize)> = {
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in haystack.char_indices() {
            if c.is_whitespace() {
                if let Some(s) = start.take() {
                    spans.push((s, i));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            spans.push((s, haystack.len()));
        }
        spans
    };
    for len in 1..=words.len().min(8) {
        for window in words.windows(len) {
            let (start, end) = (window[0].0, window[len - 1].1);
            let candidate = haystack[start..end]
                .trim_matches(|c: char| matches!(c, '(' | ')' | '[' | ']' | '{' | '}' | ',' | ';' | '&' | '/'));
            if !candidate.is_empty() && normalize_name(candidate) == normalized {
                return candidate.to_owned();
            }
        }
    }
    normalized.to_owned()
}

/// The artist names of a credit list (`"A & B"`, `"A, B and C"`) in their display form;
/// `channel_key`, the channel's own normalized name, is kept whole ("Simon & Garfunkel").
fn artist_names(list: &str, channel_key: &str) -> Vec<String> {
    split_credits(list, &[channel_key][..]).iter().map(|n| display_form(list, n)).collect()
}

/// The link that opens a video in YouTube Music.
pub fn video_url(video_id: &str) -> String {
    format!("https://music.youtube.com/watch?v={video_id}")
}

/// The link that opens a playlist in YouTube Music.
pub fn playlist_url(playlist_id: &str) -> String {
    format!("https://music.youtube.com/playlist?list={playlist_id}")
}

/// The link that opens a channel (an artist) in YouTube Music.
pub fn channel_url(channel_id: &str) -> String {
    format!("https://music.youtube.com/channel/{channel_id}")
}

/// Splits `"Artist - Song"` at the first spaced dash (`-`, `–` or `—`); `None` without one.
fn split_artist_prefix(title: &str) -> Option<(&str, &str)> {
    [" - ", " – ", " — "]
        .iter()
        .filter_map(|dash| title.find(dash).map(|i| (i, dash.len())))
        .min_by_key(|(i, _)| *i)
        .map(|(i, len)| (title[..i].trim(), title[i + len..].trim()))
        .filter(|(artist, song)| !artist.is_empty() && !song.is_empty())
}

/// Where a feature marker (`feat.`, `ft.`, `featuring`, `(with …)`) starts in `text`, at
/// a word start or after an opening bracket.
fn feature_marker_start(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    [" feat", " ft.", "(feat", "[feat", "(ft.", "[ft.", "(with ", "[with "]
        .iter()
        .filter_map(|marker| lower.find(marker))
        .min()
}

/// A video as a [`Track`] (see the [module docs](self) for the credit rules).
pub fn video_track(
    video_id: &str,
    title: &str,
    channel_id: &str,
    channel_title: &str,
    duration_ms: Option<u32>,
) -> Track {
    let channel_name = channel_artist_name(channel_title);
    let channel_key = normalize_name(channel_name);
    let mut artists: Vec<ArtistCredit> = Vec::new();
    let song: &str;
    if is_topic_channel(channel_title) || split_artist_prefix(title).is_none() {
        song = title.trim();
        if !channel_name.is_empty() {
            artists.push(ArtistCredit {
                id: Some(channel_id.to_owned()),
                name: channel_name.to_owned(),
                role: CreditRole::Primary,
            });
        }
    } else {
        let (prefix, rest) = split_artist_prefix(title).unwrap_or(("", title));
        song = rest;
        // "A feat. B - Song": the part after the marker names featured artists.
        let featured_in_prefix = featured_in_title(prefix);
        let primary_part = match feature_marker_start(prefix) {
            Some(i) if !featured_in_prefix.is_empty() => prefix[..i].trim(),
            _ => prefix,
        };
        for name in artist_names(primary_part, &channel_key) {
            let id = (normalize_name(&name) == channel_key).then(|| channel_id.to_owned());
            artists.push(ArtistCredit { id, name, role: CreditRole::Primary });
        }
        for normalized in featured_in_prefix {
            push_featured(&mut artists, display_form(prefix, &normalized), &normalized);
        }
    }
    for normalized in featured_in_title(song) {
        push_featured(&mut artists, display_form(song, &normalized), &normalized);
    }
    Track {
        id: video_id.to_owned(),
        title: song.to_owned(),
        artists,
        album: None,
        isrc: None,
        duration_ms,
        url: Some(video_url(video_id)),
    }
}

fn push_featured(artists: &mut Vec<ArtistCredit>, name: String, normalized: &str) {
    if artists.iter().any(|a| normalize_name(&a.name) == normalized) {
        return;
    }
    artists.push(ArtistCredit { id: None, name, role: CreditRole::Featured });
}

impl Video {
    /// The video as a track; `None` without a snippet.
    pub fn to_track(&self) -> Option<Track> {
        let snippet = self.snippet.as_ref()?;
        let duration = self.content_details.as_ref().and_then(|d| d.duration.as_deref()).and_then(parse_duration_ms);
        Some(video_track(&self.id, &snippet.title, &snippet.channel_id, &snippet.channel_title, duration))
    }
}

impl PlaylistItemResource {
    /// The item's video as a track (its duration unknown); `None` for a deleted or private
    /// video, which has no owner channel.
    pub fn to_track(&self, duration_ms: Option<u32>) -> Option<Track> {
        let video_id = self.snippet.resource_id.video_id.as_deref()?;
        let channel_id = self.snippet.video_owner_channel_id.as_deref()?;
        let channel_title = self.snippet.video_owner_channel_title.as_deref().unwrap_or_default();
        Some(video_track(video_id, &self.snippet.title, channel_id, channel_title, duration_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credits(track: &Track) -> Vec<(Option<&str>, &str, CreditRole)> {
        track.artists.iter().map(|a| (a.id.as_deref(), a.name.as_str(), a.role)).collect()
    }

    #[test]
    fn topic_channels_give_the_primary_artist_with_its_id() {
        let t = video_track("v1", "Work (feat. Drake)", "UCtopic", "Rihanna - Topic", Some(219_000));
        assert_eq!(t.title, "Work (feat. Drake)");
        assert_eq!(
            credits(&t),
            [(Some("UCtopic"), "Rihanna", CreditRole::Primary), (None, "Drake", CreditRole::Featured)]
        );
        assert_eq!(t.isrc, None);
        assert_eq!(t.duration_ms, Some(219_000));
        assert_eq!(t.url.as_deref(), Some("https://music.youtube.com/watch?v=v1"));
    }

    #[test]
    fn artist_dash_song_titles_name_the_primary_artists() {
        let t =
            video_track("v2", "Calvin Harris & Dua Lipa - One Kiss (Official Video)", "UCch", "Calvin Harris", None);
        assert_eq!(t.title, "One Kiss (Official Video)");
        assert_eq!(
            credits(&t),
            [(Some("UCch"), "Calvin Harris", CreditRole::Primary), (None, "Dua Lipa", CreditRole::Primary)]
        );
        let vevo = video_track("v3", "Drake - Hotline Bling ft. Someone Else", "UCv", "DrakeVEVO", None);
        assert_eq!(
            credits(&vevo),
            [(Some("UCv"), "Drake", CreditRole::Primary), (None, "Someone Else", CreditRole::Featured)]
        );
        let prefix_feature = video_track("v4", "DJ Khaled feat. Beyoncé - Top Off", "UCk", "DJ Khaled", None);
        assert_eq!(
            credits(&prefix_feature),
            [(Some("UCk"), "DJ Khaled", CreditRole::Primary), (None, "Beyoncé", CreditRole::Featured)]
        );
        let bracketed = video_track("v7", "DJ Khaled (feat. Beyoncé & JAY-Z) - Top Off", "UCk", "DJ Khaled", None);
        assert_eq!(
            credits(&bracketed),
            [
                (Some("UCk"), "DJ Khaled", CreditRole::Primary),
                (None, "Beyoncé", CreditRole::Featured),
                (None, "JAY-Z", CreditRole::Featured)
            ]
        );
    }

    /// Regression: a band's own upload, "Simon & Garfunkel - The Boxer", was credited to
    /// "Simon" and "Garfunkel" without the channel's id.
    #[test]
    fn a_channel_whose_name_has_an_ampersand_keeps_it_whole() {
        let t = video_track("v8", "Simon & Garfunkel - The Boxer", "UCsg", "Simon & Garfunkel", None);
        assert_eq!(credits(&t), [(Some("UCsg"), "Simon & Garfunkel", CreditRole::Primary)]);
        let t = video_track("v9", "Earth, Wind & Fire & Drake - Song", "UCew", "Earth, Wind & Fire", None);
        assert_eq!(
            credits(&t),
            [(Some("UCew"), "Earth, Wind & Fire", CreditRole::Primary), (None, "Drake", CreditRole::Primary)]
        );
    }

    #[test]
    fn other_videos_credit_their_channel() {
        let t = video_track("v5", "Live at the Hollywood Bowl", "UCx", "Some Band", None);
        assert_eq!(credits(&t), [(Some("UCx"), "Some Band", CreditRole::Primary)]);
        assert_eq!(t.title, "Live at the Hollywood Bowl");
        // A feature already credited as primary is not repeated.
        let t = video_track("v6", "Song (with Some Band)", "UCx", "Some Band - Topic", None);
        assert_eq!(credits(&t), [(Some("UCx"), "Some Band", CreditRole::Primary)]);
    }

    #[test]
    fn durations_parse_as_iso_8601() {
        assert_eq!(parse_duration_ms("PT4M"), Some(240_000));
        assert_eq!(parse_duration_ms("PT45S"), Some(45_000));
        assert_eq!(parse_duration_ms("P1DT2H"), Some(93_600_000));
        assert_eq!(parse_duration_ms("PT"), None);
        assert_eq!(parse_duration_ms("P"), None);
        assert_eq!(parse_duration_ms("PT5X"), None);
        assert_eq!(parse_duration_ms("PT-5S"), None);
        assert_eq!(parse_duration_ms("P100W"), None, "longer than u32 milliseconds");
        assert_eq!(parse_duration_ms(""), None);
    }

    #[test]
    fn channel_names_lose_their_suffixes() {
        assert_eq!(channel_artist_name("Daft Punk - Topic"), "Daft Punk");
        assert_eq!(channel_artist_name("TaylorSwiftVEVO"), "TaylorSwift");
        assert_eq!(channel_artist_name("VEVO"), "VEVO");
        assert!(is_topic_channel("Daft Punk - Topic") && !is_topic_channel("Daft Punk"));
    }
}
