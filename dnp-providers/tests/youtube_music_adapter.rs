//! The YouTube Music adapter on recorded Data API JSON (responses shaped as Google's
//! documentation shows them), served by a scripted transport: the scan's model, malformed
//! bodies as `Protocol` errors naming the endpoint, Google's quota and rate-limit 403s,
//! and apply's idempotence rules.
//!
//! Run: `cargo test -p dnp-providers --no-default-features --features youtube_music,emulator --test youtube_music_adapter`

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dnp_core::{
    Action, ActionId, ActionKind, Batch, CreditRole, EntryId, MatchKind, NoProgress, Outcome, Provider, ProviderError,
    ProviderId, Reason, StaticToken, Target,
};
use dnp_providers::http::{ApiClient, Transport, TransportError, TransportRequest, TransportResponse};
use dnp_providers::youtube_music::quota::{QuotaClock, QuotaMeter};
use dnp_providers::youtube_music::{YouTubeClient, YouTubeMusicProvider, test_http_config};
use reqwest::header::HeaderMap;

const BASE: &str = "https://www.googleapis.com/youtube/v3";

/// Answers each request with the first scripted response whose path and query match,
/// and records what was asked.
#[derive(Debug, Default)]
struct Recorded {
    routes: Mutex<VecDeque<(String, &'static str, u16, String)>>,
    asked: Mutex<Vec<String>>,
}

impl Recorded {
    /// Answers a request whose `METHOD path?query` contains `pattern` with `status`/`body`
    /// (once).
    fn on(self, method: &'static str, pattern: &str, status: u16, body: &str) -> Self {
        self.routes.lock().unwrap().push_back((pattern.to_owned(), method, status, body.to_owned()));
        self
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl Transport for Recorded {
    async fn send(&self, request: TransportRequest) -> Result<TransportResponse, TransportError> {
        let target = format!("{} {}?{}", request.method, request.url.path(), request.url.query().unwrap_or_default());
        self.asked.lock().unwrap().push(target.clone());
        let mut routes = self.routes.lock().unwrap();
        let at = routes
            .iter()
            .position(|(pattern, method, _, _)| request.method.as_str() == *method && target.contains(pattern.as_str()))
            .ok_or_else(|| TransportError::Other(format!("no scripted answer for {target}")))?;
        let (_, _, status, body) = routes.remove(at).unwrap_or_default();
        Ok(TransportResponse { status, headers: HeaderMap::new(), body: body.into_bytes() })
    }
}

/// 12:00 Pacific Standard Time: the meters here read this fixed time, twelve hours from the
/// quota reset, so no test depends on how close to midnight Pacific it runs.
fn noon_pacific() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc.with_ymd_and_hms(2026, 1, 15, 20, 0, 0).unwrap()
}

fn provider(transport: Arc<Recorded>, quota: u64) -> YouTubeMusicProvider {
    let id = ProviderId::new(ProviderId::YOUTUBE_MUSIC).unwrap();
    let api = ApiClient::with_transport(id, BASE, test_http_config(), transport).unwrap();
    let meter = QuotaMeter::with_clock(quota, QuotaClock::fixed(noon_pacific()));
    YouTubeMusicProvider::with_client(YouTubeClient::with_api(api, Arc::new(meter)))
}

fn token() -> StaticToken {
    StaticToken::new(ProviderId::new(ProviderId::YOUTUBE_MUSIC).unwrap(), "ya29.test".to_owned().into())
}

const LIKED: &str = r#"{
  "kind": "youtube#videoListResponse",
  "etag": "Vmc3BNu5ElgQH0ohBfyHpKUKVmQ",
  "items": [
    {
      "kind": "youtube#video",
      "etag": "x0uDQnb0aCHGi2sB5YkDcmvSMgQ",
      "id": "dQw4w9WgXcQ",
      "snippet": {
        "publishedAt": "2009-10-25T06:57:33Z",
        "channelId": "UCuAXFkgsw1L7xaCfnd5JJOw",
        "title": "Never Gonna Give You Up",
        "description": "Provided to YouTube by Sony Music Entertainment",
        "thumbnails": {"default": {"url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/default.jpg", "width": 120, "height": 90}},
        "channelTitle": "Rick Astley - Topic",
        "categoryId": "10",
        "liveBroadcastContent": "none"
      },
      "contentDetails": {"duration": "PT3M33S", "dimension": "2d", "definition": "hd", "caption": "false",
                         "licensedContent": true, "contentRating": {}, "projection": "rectangular"}
    },
    {
      "kind": "youtube#video",
      "etag": "7ZfSrUo4ME4ygrcBd1dpWg9qTd8",
      "id": "uxpDa-c-4Mc",
      "snippet": {
        "publishedAt": "2015-10-26T16:00:01Z",
        "channelId": "UCByOQJjav0CUDwxCk-jVNRQ",
        "title": "Drake - Hotline Bling (feat. Someone Else)",
        "channelTitle": "DrakeVEVO",
        "categoryId": "10"
      },
      "contentDetails": {"duration": "PT4M55S"}
    }
  ],
  "pageInfo": {"totalResults": 2, "resultsPerPage": 50}
}"#;

const PLAYLISTS: &str = r#"{
  "kind": "youtube#playlistListResponse",
  "etag": "t1",
  "pageInfo": {"totalResults": 1, "resultsPerPage": 50},
  "items": [
    {"kind": "youtube#playlist", "etag": "PLetag1", "id": "PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf",
     "snippet": {"publishedAt": "2020-01-01T00:00:00Z", "channelId": "UCme", "title": "Road trip", "channelTitle": "Me"},
     "contentDetails": {"itemCount": 3}}
  ]
}"#;

const ITEMS: &str = r#"{
  "kind": "youtube#playlistItemListResponse",
  "etag": "i1",
  "pageInfo": {"totalResults": 3, "resultsPerPage": 50},
  "items": [
    {"kind": "youtube#playlistItem", "etag": "a", "id": "UExyQVh0bUVyWmdPZWlLbTRzZ05Pa25Hdk5qYnk5ZWZkZi41NkI0NEY2RDEwNTU3Q0M2",
     "snippet": {"publishedAt": "2021-03-04T05:06:07Z", "channelId": "UCme", "title": "Never Gonna Give You Up",
                 "playlistId": "PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf", "position": 0,
                 "resourceId": {"kind": "youtube#video", "videoId": "dQw4w9WgXcQ"},
                 "videoOwnerChannelTitle": "Rick Astley - Topic", "videoOwnerChannelId": "UCuAXFkgsw1L7xaCfnd5JJOw"}},
    {"kind": "youtube#playlistItem", "etag": "b", "id": "UExyQVh0bUVyWmdPZWlLbTRzZ05Pa25Hdk5qYnk5ZWZkZi4yODlGNEE0NkRGMEEzMEQy",
     "snippet": {"publishedAt": "2021-03-04T05:06:08Z", "channelId": "UCme", "title": "Deleted video",
                 "playlistId": "PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf", "position": 1,
                 "resourceId": {"kind": "youtube#video", "videoId": "deletedvid1"}}},
    {"kind": "youtube#playlistItem", "etag": "c", "id": "UExyQVh0bUVyWmdPZWlLbTRzZ05Pa25Hdk5qYnk5ZWZkZi4wMTcyMDhGQUE4NTIzM0Y5",
     "snippet": {"publishedAt": "2021-03-04T05:06:09Z", "channelId": "UCme", "title": "Daft Punk - One More Time",
                 "playlistId": "PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf", "position": 2,
                 "resourceId": {"kind": "youtube#video", "videoId": "FGBhQbmPwH8"},
                 "videoOwnerChannelTitle": "Daft Punk", "videoOwnerChannelId": "UC_kRDKYrUlrbtrSiyu5Tflg"}}
  ]
}"#;

const DURATIONS: &str = r#"{"kind": "youtube#videoListResponse", "etag": "d",
  "items": [{"kind": "youtube#video", "etag": "e", "id": "FGBhQbmPwH8", "contentDetails": {"duration": "PT5M21S"}}],
  "pageInfo": {"totalResults": 1, "resultsPerPage": 1}}"#;

const SUBSCRIPTIONS: &str = r#"{
  "kind": "youtube#subscriptionListResponse",
  "etag": "s",
  "pageInfo": {"totalResults": 2, "resultsPerPage": 50},
  "items": [
    {"kind": "youtube#subscription", "etag": "s1", "id": "SJlZm5vO0ljqcGAq6nlNFzxhmZk-RaQGagVmPp5e2W8",
     "snippet": {"publishedAt": "2019-01-01T00:00:00Z", "title": "Daft Punk - Topic", "description": "",
                 "resourceId": {"kind": "youtube#channel", "channelId": "UC_kRDKYrUlrbtrSiyu5Tflg"}, "channelId": "UCme"}},
    {"kind": "youtube#subscription", "etag": "s2", "id": "Q3ZqY2VvV0p4dFdkQlZ5cW9GR2R6VGNzR0pBUXp6T1FqdHc",
     "snippet": {"publishedAt": "2019-01-02T00:00:00Z", "title": "Some Vlogger", "description": "",
                 "resourceId": {"kind": "youtube#channel", "channelId": "UCvlogvlogvlogvlogvlog1"}, "channelId": "UCme"}}
  ]
}"#;

fn library_script() -> Recorded {
    Recorded::default()
        .on("GET", "/videos?part=snippet%2CcontentDetails&myRating=like", 200, LIKED)
        .on("GET", "/playlists?part=snippet%2CcontentDetails&mine=true", 200, PLAYLISTS)
        .on("GET", "/playlistItems?part=snippet&playlistId=PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf", 200, ITEMS)
        .on("GET", "/subscriptions?part=snippet&mine=true", 200, SUBSCRIPTIONS)
        .on("GET", "/videos?part=contentDetails&id=FGBhQbmPwH8", 200, DURATIONS)
}

#[tokio::test]
async fn a_recorded_library_scans_into_tracks_playlists_and_subscriptions() {
    let transport = Arc::new(library_script());
    let youtube = provider(transport.clone(), 10_000);
    let library = youtube.scan(&token(), &NoProgress).await.unwrap();

    let rick = &library.liked_tracks[0];
    assert_eq!(rick.track.id, "dQw4w9WgXcQ");
    assert_eq!(rick.track.artists[0].name, "Rick Astley");
    assert_eq!(rick.track.artists[0].id.as_deref(), Some("UCuAXFkgsw1L7xaCfnd5JJOw"));
    assert_eq!(rick.track.duration_ms, Some(213_000));
    assert_eq!((rick.track.isrc.as_deref(), rick.added_at, &rick.track.album), (None, None, &None));
    let drake = &library.liked_tracks[1].track;
    assert_eq!(drake.title, "Hotline Bling (feat. Someone Else)");
    let credits: Vec<(&str, CreditRole, bool)> =
        drake.artists.iter().map(|a| (a.name.as_str(), a.role, a.id.is_some())).collect();
    assert_eq!(credits, [("Drake", CreditRole::Primary, true), ("Someone Else", CreditRole::Featured, false)]);

    let playlist = &library.playlists[0];
    assert_eq!((playlist.name.as_str(), playlist.owned, playlist.editable), ("Road trip", true, true));
    assert_eq!(playlist.version.as_deref(), Some("PLetag1"));
    let positions: Vec<u32> = playlist.items.iter().map(|i| i.position).collect();
    assert_eq!(positions, [0, 2], "the deleted video is left out, the others keep their positions");
    let daft = &playlist.items[1];
    assert_eq!(daft.track.title, "One More Time");
    assert_eq!(daft.track.artists[0].name, "Daft Punk");
    assert_eq!(daft.track.duration_ms, Some(321_000), "read with videos.list?id=");
    assert_eq!(playlist.items[0].track.duration_ms, Some(213_000), "known from the liked list");
    assert!(daft.item_id.as_deref().is_some_and(|id| id.starts_with("UExy")));
    assert!(daft.added_at.is_some());

    let followed: Vec<(&str, &str)> =
        library.followed_artists.iter().map(|f| (f.artist.name.as_str(), f.entry_id.as_deref().unwrap())).collect();
    assert_eq!(
        followed,
        [
            ("Daft Punk", "SJlZm5vO0ljqcGAq6nlNFzxhmZk-RaQGagVmPp5e2W8"),
            ("Some Vlogger", "Q3ZqY2VvV0p4dFdkQlZ5cW9GR2R6VGNzR0pBUXp6T1FqdHc")
        ]
    );
    assert!(library.saved_albums.is_empty());
    // One call a page, one unit each; durations only for the video the liked list lacked.
    assert_eq!(transport.asked().len(), 5, "{:?}", transport.asked());
    assert_eq!(youtube.client().quota().used_at(noon_pacific()), 5);
    assert!(transport.asked().iter().all(|a| a.contains("maxResults=50") || a.contains("id=FGBhQbmPwH8")));
}

#[tokio::test]
async fn malformed_json_is_a_protocol_error_naming_the_endpoint_and_field() {
    let bad = LIKED.replacen("\"title\": \"Never Gonna Give You Up\"", "\"title\": 42", 1);
    let transport = Arc::new(
        Recorded::default()
            .on("GET", "/videos?part=snippet%2CcontentDetails&myRating=like", 200, &bad)
            .on("GET", "/playlists?", 200, PLAYLISTS)
            .on("GET", "/playlistItems?", 200, ITEMS)
            .on("GET", "/subscriptions?", 200, SUBSCRIPTIONS),
    );
    let err = provider(transport, 10_000).scan(&token(), &NoProgress).await.unwrap_err();
    let ProviderError::Protocol { endpoint, detail, .. } = &err else { panic!("expected Protocol, got {err:?}") };
    assert_eq!(endpoint, "GET /videos?myRating=like");
    assert!(detail.contains("items[0].snippet.title"), "{detail}");

    // Not JSON at all, and JSON without the required `items`.
    for body in ["<html>Service Unavailable</html>", r#"{"kind": "youtube#subscriptionListResponse"}"#] {
        let transport = Arc::new(
            Recorded::default()
                .on("GET", "/videos?", 200, LIKED)
                .on("GET", "/playlists?", 200, PLAYLISTS)
                .on("GET", "/playlistItems?", 200, ITEMS)
                .on("GET", "/subscriptions?", 200, body),
        );
        let err = provider(transport, 10_000).scan(&token(), &NoProgress).await.unwrap_err();
        assert!(
            matches!(&err, ProviderError::Protocol { endpoint, .. } if endpoint == "GET /subscriptions?mine=true"),
            "{err:?}"
        );
    }
}

const QUOTA_EXCEEDED: &str = r#"{"error": {"code": 403, "message": "The request cannot be completed because you have exceeded your <a href=\"/youtube/v3/getting-started#quota\">quota</a>.", "errors": [{"message": "The request cannot be completed because you have exceeded your <a href=\"/youtube/v3/getting-started#quota\">quota</a>.", "domain": "youtube.quota", "reason": "quotaExceeded"}]}}"#;

fn action(id: u32, kind: ActionKind, target: Target) -> Action {
    Action {
        id: ActionId(id),
        kind,
        target,
        reason: Reason {
            entry_id: EntryId::new_random(),
            artist_name: "Blocked".into(),
            matched: MatchKind::PrimaryCredit,
            credit: "UCblocked".into(),
            confidence: 1.0,
        },
        label: format!("action {id}"),
        inverse_of: None,
    }
}

fn batch(kind: ActionKind, actions: Vec<Action>) -> Batch {
    let playlist_id = actions.iter().find_map(|a| a.target.playlist_id().map(str::to_owned));
    Batch { kind, playlist_id, actions, quota_units: 50, day: 0 }
}

fn unlike(id: u32, video: &str) -> Action {
    action(
        id,
        ActionKind::UnlikeTrack,
        Target::Track { track_id: video.into(), entry_id: None, added_at: None, disliked: false },
    )
}

#[tokio::test]
async fn googles_quota_403_is_quota_exceeded_and_stops_the_batch_until_the_reset() {
    let transport = Arc::new(Recorded::default().on("POST", "/videos/rate?id=aaaaaaaaaaa&rating=none", 204, "").on(
        "POST",
        "/videos/rate?id=bbbbbbbbbbb&rating=none",
        403,
        QUOTA_EXCEEDED,
    ));
    let youtube = provider(transport.clone(), 10_000);
    // The first action went through, so the batch answers per action.
    let outcomes = youtube
        .apply(
            &token(),
            &batch(
                ActionKind::UnlikeTrack,
                vec![unlike(0, "aaaaaaaaaaa"), unlike(1, "bbbbbbbbbbb"), unlike(2, "ccccccccccc")],
            ),
        )
        .await
        .unwrap();
    assert!(matches!(outcomes[0].outcome, Outcome::Confirmed { .. }));
    for o in &outcomes[1..] {
        let Outcome::Failed(f) = &o.outcome else { panic!("{o:?}") };
        assert_eq!((f.code.as_str(), f.retryable), ("quota_exceeded", true));
    }
    assert_eq!(transport.asked().len(), 2, "nothing is sent after the quota is spent");
    assert_eq!(youtube.capabilities().quota.unwrap().remaining_today, 0);
    // A new batch fails as a whole at once, saying how long until midnight Pacific.
    let err =
        youtube.apply(&token(), &batch(ActionKind::UnlikeTrack, vec![unlike(0, "ddddddddddd")])).await.unwrap_err();
    let ProviderError::QuotaExceeded { retry_after: Some(wait), .. } = err else { panic!("{err:?}") };
    assert_eq!(wait, Duration::from_secs(12 * 3600), "from noon to midnight Pacific");
    assert_eq!(transport.asked().len(), 2);
}

#[tokio::test]
async fn the_adapters_own_count_refuses_writes_the_day_cannot_pay() {
    let transport = Arc::new(Recorded::default().on("POST", "/videos/rate?id=aaaaaaaaaaa&rating=none", 204, ""));
    let youtube = provider(transport.clone(), 60);
    assert_eq!(youtube.capabilities().quota.unwrap().remaining_today, 60);
    youtube.apply(&token(), &batch(ActionKind::UnlikeTrack, vec![unlike(0, "aaaaaaaaaaa")])).await.unwrap();
    assert_eq!(youtube.capabilities().quota.unwrap().remaining_today, 10);
    let err =
        youtube.apply(&token(), &batch(ActionKind::UnlikeTrack, vec![unlike(0, "bbbbbbbbbbb")])).await.unwrap_err();
    assert_eq!(err.code(), "quota_exceeded");
    assert_eq!(transport.asked().len(), 1);
}

#[tokio::test]
async fn rate_limit_403s_are_rate_limited() {
    let body = r#"{"error": {"code": 403, "message": "Rate Limit Exceeded", "errors": [{"message": "Rate Limit Exceeded", "domain": "usageLimits", "reason": "userRateLimitExceeded"}]}}"#;
    let transport = Arc::new(Recorded::default().on("POST", "/videos/rate?", 403, body));
    let err = provider(transport, 10_000)
        .apply(&token(), &batch(ActionKind::UnlikeTrack, vec![unlike(0, "aaaaaaaaaaa")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited", "{err}");
}

#[tokio::test]
async fn removals_of_what_is_gone_are_confirmed() {
    let not_found = |reason: &str| {
        format!(
            r#"{{"error": {{"code": 404, "message": "not found", "errors": [{{"reason": "{reason}", "domain": "youtube.api"}}]}}}}"#
        )
    };
    let transport = Arc::new(
        Recorded::default()
            .on("POST", "/videos/rate?id=gonegonegon&rating=none", 404, &not_found("videoNotFound"))
            .on("DELETE", "/playlistItems?id=UExgone", 404, &not_found("playlistItemNotFound"))
            // A stale subscription id: looked up by channel; none means already unfollowed.
            .on("DELETE", "/subscriptions?id=staleSub", 404, &not_found("subscriptionNotFound"))
            .on("GET", "/subscriptions?part=snippet&mine=true&forChannelId=UCartist", 200,
                r#"{"kind": "youtube#subscriptionListResponse", "items": [], "pageInfo": {"totalResults": 0, "resultsPerPage": 5}}"#),
    );
    let youtube = provider(transport.clone(), 10_000);
    let outcomes =
        youtube.apply(&token(), &batch(ActionKind::UnlikeTrack, vec![unlike(0, "gonegonegon")])).await.unwrap();
    assert!(matches!(&outcomes[0].outcome, Outcome::Confirmed { note: Some(n) } if n.contains("no longer exists")));

    let remove = action(
        0,
        ActionKind::RemovePlaylistItem,
        Target::PlaylistItem {
            playlist_id: "PLx".into(),
            playlist_version: None,
            track_id: "vvvvvvvvvvv".into(),
            position: 3,
            item_id: Some("UExgone".into()),
            added_at: None,
        },
    );
    let outcomes = youtube.apply(&token(), &batch(ActionKind::RemovePlaylistItem, vec![remove])).await.unwrap();
    assert!(matches!(&outcomes[0].outcome, Outcome::Confirmed { note: Some(n) } if n.contains("already gone")));

    let unfollow = action(
        0,
        ActionKind::UnfollowArtist,
        Target::Artist { artist_id: "UCartist".into(), entry_id: Some("staleSub".into()) },
    );
    let outcomes = youtube.apply(&token(), &batch(ActionKind::UnfollowArtist, vec![unfollow])).await.unwrap();
    assert!(matches!(&outcomes[0].outcome, Outcome::Confirmed { note: Some(n) } if n.contains("already unsubscribed")));
    assert_eq!(youtube.client().quota().used_at(noon_pacific()), 50 + 50 + 50 + 1);
}

#[tokio::test]
async fn ids_that_cannot_be_youtube_ids_are_refused_before_sending() {
    let transport = Arc::new(Recorded::default());
    let youtube = provider(transport.clone(), 10_000);
    let outcomes =
        youtube.apply(&token(), &batch(ActionKind::UnlikeTrack, vec![unlike(0, "../../etc?x=1")])).await.unwrap();
    let Outcome::Failed(f) = &outcomes[0].outcome else { panic!("{outcomes:?}") };
    assert_eq!(f.code, "invalid_input");
    assert!(transport.asked().is_empty());
    let err = youtube.track_by_isrc(&token(), "USUM71703861").await.unwrap_err();
    assert_eq!(err.code(), "unsupported");
}
