//! Tests of the YouTube emulator over plain HTTP (reqwest) and of the adapter against it:
//! paging with page tokens, the quota (exhaustion, a plan split across days), OAuth with
//! Google's non-rotating refresh and revocation, the 204s, Google's error bodies.
//!
//! The quota day of the emulator and of the adapter's meter is read from a [`Clock`] the
//! test sets (noon Pacific unless a test moves it), never from the system clock: a test
//! run within two minutes of midnight Pacific would otherwise see the quota reset mid-test
//! (the executor waits out a reset that close and carries on with a fresh day).
//!
//! Run: `cargo test -p dnp-providers --no-default-features --features youtube_music,emulator --test youtube_music_emulator`

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use dnp_core::{
    ActionKind, ArtistCredit, ArtistIdentity, BatchId, BlockedSet, CancelFlag, Completion, CreditRole, DnpEntry,
    DnpList, EnforcementPolicy, EntryId, EntrySource, Executor, ExecutorConfig, LibrarySnapshot, LikedTrack,
    NoProgress, Provider, ProviderAuth, ProviderError, ProviderId, StaticToken, Track, memory::MemoryActionLog, plan,
};
use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
use dnp_providers::youtube_music::emulator::YouTubeMusicEmulator;
use dnp_providers::youtube_music::quota::{QuotaClock, QuotaMeter, until_reset};
use dnp_providers::youtube_music::{
    SCOPES, YouTubeClient, YouTubeMusicAuth, YouTubeMusicConfig, YouTubeMusicProvider, test_http_config,
};
use reqwest::{Client, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const USER: &str = "alice";
const REDIRECT: &str = "http://127.0.0.1:8888/callback";

fn youtube() -> ProviderId {
    ProviderId::new(ProviderId::YOUTUBE_MUSIC).unwrap()
}

/// 12:00 Pacific Standard Time (20:00 UTC) on a winter day: twelve hours from the reset.
fn noon_pacific() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 20, 0, 0).unwrap()
}

/// The time as the quota sees it, shared by an emulator and the adapters of a test; it
/// moves only when the test moves it.
#[derive(Clone)]
struct Clock(Arc<Mutex<DateTime<Utc>>>);

impl Clock {
    fn at(t: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(t)))
    }

    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }

    fn quota(&self) -> QuotaClock {
        let clock = self.clone();
        QuotaClock::from_fn(move || clock.now())
    }
}

/// An emulator whose quota day follows `clock`.
fn start_emulator(config: EmulatorConfig, clock: &Clock) -> YouTubeMusicEmulator {
    let emulator = YouTubeMusicEmulator::start(config).unwrap();
    emulator.set_quota_clock(clock.quota());
    emulator
}

/// An adapter of `daily_quota` units whose meter follows `clock`.
fn provider(emulator: &YouTubeMusicEmulator, daily_quota: u64, clock: &Clock) -> YouTubeMusicProvider {
    let meter = Arc::new(QuotaMeter::with_clock(daily_quota, clock.quota()));
    YouTubeMusicProvider::with_client(YouTubeClient::with_meter(&config(emulator, daily_quota), meter).unwrap())
}

struct Fixture {
    emulator: YouTubeMusicEmulator,
    clock: Clock,
    library: LibrarySnapshot,
    token: String,
    http: Client,
}

impl Fixture {
    fn provider(&self) -> YouTubeMusicProvider {
        provider(&self.emulator, 10_000, &self.clock)
    }
}

fn fixture() -> Fixture {
    let clock = Clock::at(noon_pacific());
    let emulator = start_emulator(EmulatorConfig { seed: 3, ..EmulatorConfig::default() }, &clock);
    let library = generate_library(&youtube(), LibraryShape::SMALL, 11);
    emulator.seed_user(USER, &library);
    emulator.register_redirect_uri(REDIRECT).unwrap();
    let (token, _) = emulator.issue_tokens(USER, Duration::from_secs(3600));
    let http = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Fixture { emulator, clock, library, token, http }
}

fn config(emulator: &YouTubeMusicEmulator, daily_quota: u64) -> YouTubeMusicConfig {
    let mut config =
        YouTubeMusicConfig::new(emulator.client_id(), Some(SecretString::from(emulator.client_secret())), REDIRECT)
            .and_then(|c| c.with_base_urls(emulator.api_base_url(), emulator.auth_base_url()))
            .unwrap();
    config.http = test_http_config();
    config.daily_quota = daily_quota;
    config
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.api_base_url())
    }

    async fn send(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> (StatusCode, Value, String) {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
    }

    async fn get(&self, url: &str) -> (StatusCode, Value) {
        let (status, body, _) = self.send(reqwest::Method::GET, url, None).await;
        (status, body)
    }

    /// Every item of a list, following `nextPageToken`; the number of pages.
    async fn all(&self, first: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for pages in 1..100 {
            let url = match &token {
                Some(t) => format!("{first}&pageToken={t}"),
                None => first.to_owned(),
            };
            let (status, body) = self.get(&url).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            items.extend(body["items"].as_array().unwrap().iter().cloned());
            match body["nextPageToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => return (items, pages),
            }
        }
        panic!("runaway pagination");
    }
}

fn reason(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn liked_videos_page_with_page_tokens() {
    let f = fixture();
    let (items, pages) = f.all(&f.url("/videos?part=snippet,contentDetails&myRating=like&maxResults=50")).await;
    assert_eq!(pages, 3, "120 liked videos are three pages of 50");
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = f.library.liked_tracks.iter().map(|l| l.track.id.as_str()).collect();
    assert_eq!(ids, expected, "in the seeded order, newest first");
    let first = &items[0];
    assert_eq!(first["kind"], "youtube#video");
    assert!(first["snippet"]["channelTitle"].as_str().unwrap().ends_with(" - Topic"), "{first}");
    assert!(first["contentDetails"]["duration"].as_str().unwrap().starts_with("PT"), "{first}");

    // The default page is 5; the first page has a total, the last no next token.
    let (_, body) = f.get(&f.url("/videos?part=id&myRating=like")).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 5);
    assert_eq!(body["pageInfo"]["totalResults"], 120);
    assert_eq!(body["pageInfo"]["resultsPerPage"], 5);
    assert!(body["nextPageToken"].is_string() && body.get("prevPageToken").is_none());
}

#[tokio::test]
async fn playlist_items_page_with_positions_and_item_ids() {
    let f = fixture();
    let (playlists, _) = f.all(&f.url("/playlists?part=snippet,contentDetails&mine=true&maxResults=50")).await;
    let owned: Vec<_> = f.library.playlists.iter().filter(|p| p.owned).collect();
    assert_eq!(playlists.len(), owned.len(), "only the user's own playlists are listed");
    let seeded = owned.iter().max_by_key(|p| p.items.len()).unwrap();
    let listed = playlists.iter().find(|p| p["id"] == seeded.id.as_str()).unwrap();
    assert_eq!(listed["contentDetails"]["itemCount"], seeded.items.len());
    assert!(listed["etag"].is_string());

    let (items, pages) =
        f.all(&f.url(&format!("/playlistItems?part=snippet&playlistId={}&maxResults=50", seeded.id))).await;
    assert_eq!(pages, seeded.items.len().div_ceil(50));
    for (i, (item, expected)) in items.iter().zip(&seeded.items).enumerate() {
        assert_eq!(item["snippet"]["position"], i);
        assert_eq!(item["snippet"]["resourceId"]["videoId"], expected.track.id.as_str());
        assert!(item["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(item["snippet"]["videoOwnerChannelId"].is_string());
    }
}

#[tokio::test]
async fn limits_and_tokens_are_checked_with_google_error_bodies() {
    let f = fixture();
    let (status, body) = f.get(&f.url("/videos?part=snippet&myRating=like&maxResults=51")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], 400);
    assert_eq!(reason(&body), "invalidParameter");
    assert!(body["error"]["message"].as_str().unwrap().contains("[1, 50]"), "{body}");

    let (status, body) = f.get(&f.url("/videos?myRating=like")).await;
    assert_eq!((status, reason(&body)), (StatusCode::BAD_REQUEST, "required"), "part is required");
    let (status, body) = f.get(&f.url("/videos?part=snippet&myRating=like&pageToken=bogus")).await;
    assert_eq!((status, reason(&body)), (StatusCode::BAD_REQUEST, "invalidPageToken"));
    // A token of one list does not page another.
    let (_, liked) = f.get(&f.url("/videos?part=id&myRating=like")).await;
    let token = liked["nextPageToken"].as_str().unwrap();
    let (status, body) = f.get(&f.url(&format!("/subscriptions?part=id&mine=true&pageToken={token}"))).await;
    assert_eq!((status, reason(&body)), (StatusCode::BAD_REQUEST, "invalidPageToken"));

    let (status, body) = f.get(&f.url("/playlistItems?part=snippet&playlistId=PLnothing")).await;
    assert_eq!((status, reason(&body)), (StatusCode::NOT_FOUND, "playlistNotFound"));

    let response = f.http.get(f.url("/videos?part=id&myRating=like")).bearer_auth("ya29.wrong").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("www-authenticate").is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["error"]["status"].as_str(), reason(&body)), (Some("UNAUTHENTICATED"), "authError"));
}

#[tokio::test]
async fn deletes_and_ratings_answer_204_and_change_the_state() {
    let f = fixture();
    let before = f.emulator.library(USER);
    let liked = &before.liked_tracks[0].track.id;
    let (status, _, text) =
        f.send(reqwest::Method::POST, &f.url(&format!("/videos/rate?id={liked}&rating=none")), None).await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));

    let playlist = before.playlists.iter().find(|p| !p.items.is_empty()).unwrap();
    let item = playlist.items[0].item_id.clone().unwrap();
    let (status, _, text) = f.send(reqwest::Method::DELETE, &f.url(&format!("/playlistItems?id={item}")), None).await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    let (status, body, _) = f.send(reqwest::Method::DELETE, &f.url(&format!("/playlistItems?id={item}")), None).await;
    assert_eq!((status, reason(&body)), (StatusCode::NOT_FOUND, "playlistItemNotFound"));

    let subscription = before.followed_artists[0].entry_id.clone().unwrap();
    let (status, _, text) =
        f.send(reqwest::Method::DELETE, &f.url(&format!("/subscriptions?id={subscription}")), None).await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));

    let after = f.emulator.library(USER);
    assert_eq!(after.liked_tracks.len(), before.liked_tracks.len() - 1);
    assert!(!after.liked_tracks.iter().any(|l| &l.track.id == liked));
    let changed = after.playlists.iter().find(|p| p.id == playlist.id).unwrap();
    assert_eq!(changed.items.len(), playlist.items.len() - 1);
    assert_ne!(changed.version, playlist.version, "the etag changes with the playlist");
    assert_eq!(after.followed_artists.len(), before.followed_artists.len() - 1);

    // Inserting takes a position, answers the new item, and refuses one past the end.
    let video = &playlist.items[0].track.id;
    let insert = |position: usize| json!({"snippet": {"playlistId": playlist.id, "resourceId": {"kind": "youtube#video", "videoId": video}, "position": position}});
    let url = f.url("/playlistItems?part=snippet");
    let (status, body, _) = f.send(reqwest::Method::POST, &url, Some(insert(changed.items.len() + 1))).await;
    assert_eq!((status, reason(&body)), (StatusCode::BAD_REQUEST, "invalidPlaylistItemPosition"));
    let (status, body, _) = f.send(reqwest::Method::POST, &url, Some(insert(0))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["kind"].as_str(), body["snippet"]["position"].as_u64()), (Some("youtube#playlistItem"), Some(0)));
    assert_ne!(body["id"].as_str(), Some(item.as_str()), "a re-inserted entry is a new entry");

    // Subscribing twice is refused as a duplicate.
    let channel = &before.followed_artists[1].artist.id;
    let subscribe = json!({"snippet": {"resourceId": {"kind": "youtube#channel", "channelId": channel}}});
    let (status, body, _) = f.send(reqwest::Method::POST, &f.url("/subscriptions?part=snippet"), Some(subscribe)).await;
    assert_eq!((status, reason(&body)), (StatusCode::BAD_REQUEST, "subscriptionDuplicate"));
}

#[tokio::test]
async fn writes_need_a_write_scope() {
    let f = fixture();
    let (readonly, _) = f.emulator.issue_tokens_with_scopes(
        USER,
        &["https://www.googleapis.com/auth/youtube.readonly"],
        Duration::from_secs(60),
    );
    let video = &f.library.liked_tracks[0].track.id;
    let response = f
        .http
        .post(f.url(&format!("/videos/rate?id={video}&rating=none")))
        .bearer_auth(&readonly)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(reason(&body), "insufficientPermissions");

    // Through the adapter, a missing scope means the user must connect again.
    let provider = f.provider();
    let token = StaticToken::new(youtube(), SecretString::from(readonly));
    let batch = dnp_core::Batch {
        kind: ActionKind::UnlikeTrack,
        playlist_id: None,
        actions: vec![unlike_action(0, video)],
        quota_units: 50,
        day: 0,
    };
    let err = provider.apply(&token, &batch).await.unwrap_err();
    assert_eq!(err.code(), "needs_reauth", "{err}");
}

fn unlike_action(id: u32, video: &str) -> dnp_core::Action {
    dnp_core::Action {
        id: dnp_core::ActionId(id),
        kind: ActionKind::UnlikeTrack,
        target: dnp_core::Target::Track { track_id: video.to_owned(), entry_id: None, added_at: None, disliked: false },
        reason: dnp_core::Reason {
            entry_id: EntryId::new_random(),
            artist_name: "test".into(),
            matched: dnp_core::MatchKind::PrimaryCredit,
            credit: "test".into(),
            confidence: 1.0,
        },
        label: video.to_owned(),
        inverse_of: None,
    }
}

#[tokio::test]
async fn a_spent_quota_is_quota_exceeded_with_the_time_to_reset() {
    let f = fixture();
    // 120 liked videos (3 pages), 25 subscriptions (1), the playlists (1) and their items
    // (16) and durations: a scan needs more than 10 units.
    f.emulator.set_daily_quota(10);
    let provider = f.provider();
    let token = StaticToken::new(youtube(), SecretString::from(f.token.clone()));
    let err = provider.scan(&token, &NoProgress).await.unwrap_err();
    let ProviderError::QuotaExceeded { retry_after: Some(wait), .. } = err else {
        panic!("expected QuotaExceeded with a reset time, got {err:?}");
    };
    assert_eq!(wait, until_reset(f.clock.now()));
    assert_eq!(wait, Duration::from_secs(12 * 3600), "from noon to midnight Pacific");
    assert_eq!(f.emulator.quota_used(), 10, "the emulator charged what it allowed, no more");

    // The service said the day is spent: the adapter now refuses without a request, and
    // its capabilities say nothing is left.
    assert_eq!(provider.capabilities().quota.map(|q| q.remaining_today), Some(0));
    // The first scan pages concurrently: a page request already on the wire when the scan
    // returned its error may still reach the emulator's log. Let the log settle first.
    let mut sent = f.emulator.request_log().len();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = f.emulator.request_log().len();
        if now == sent {
            break;
        }
        sent = now;
    }
    let err = provider.scan(&token, &NoProgress).await.unwrap_err();
    assert_eq!(err.code(), "quota_exceeded");
    assert_eq!(f.emulator.request_log().len(), sent, "no request was sent");

    // Over plain HTTP: Google's body.
    let (status, body) = f.get(&f.url("/videos?part=id&myRating=like")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        (reason(&body), body["error"]["errors"][0]["domain"].as_str()),
        ("quotaExceeded", Some("youtube.quota"))
    );
}

#[tokio::test]
async fn the_quota_is_counted_at_the_real_costs() {
    let f = fixture();
    let provider = f.provider();
    let token = StaticToken::new(youtube(), SecretString::from(f.token.clone()));
    let library = provider.scan(&token, &NoProgress).await.unwrap();
    let reads = f.emulator.request_log().len() as u64;
    assert_eq!(f.emulator.quota_used(), reads, "a list call is 1 unit");
    assert_eq!(provider.client().quota().used_at(f.clock.now()), reads, "the adapter counts the same");
    assert_eq!(library.liked_tracks.len(), 120);

    let video = &library.liked_tracks[0].track.id;
    let batch = dnp_core::Batch {
        kind: ActionKind::UnlikeTrack,
        playlist_id: None,
        actions: vec![unlike_action(0, video)],
        quota_units: 50,
        day: 0,
    };
    let outcomes = provider.apply(&token, &batch).await.unwrap();
    assert!(matches!(outcomes[0].outcome, dnp_core::Outcome::Confirmed { .. }), "{outcomes:?}");
    assert_eq!(f.emulator.quota_used(), reads + 50, "a write is 50 units");
    assert_eq!(provider.capabilities().quota.map(|q| q.remaining_today), Some(10_000 - reads - 50));
}

/// A library of `n` liked tracks by one blocked artist (and a few others).
fn blocked_library(n: usize) -> (LibrarySnapshot, DnpList) {
    let blocked =
        ArtistCredit { id: Some("UCblockedblockedblocked1".into()), name: "Blocked".into(), role: CreditRole::Primary };
    let other =
        ArtistCredit { id: Some("UCotherotherotherother01".into()), name: "Other".into(), role: CreditRole::Primary };
    let track = |i: usize, artist: &ArtistCredit| Track {
        id: format!("vid{i:08}"),
        title: format!("Song {i}"),
        artists: vec![artist.clone()],
        album: None,
        isrc: None,
        duration_ms: Some(200_000),
        url: None,
    };
    let mut library = LibrarySnapshot::empty(youtube());
    for i in 0..n + 10 {
        let artist = if i < n { &blocked } else { &other };
        library.liked_tracks.push(LikedTrack {
            track: track(i, artist),
            added_at: None,
            entry_id: None,
            disliked: false,
        });
    }
    let list = DnpList {
        entries: vec![DnpEntry {
            id: EntryId::new_random(),
            artist: ArtistIdentity::named("Blocked").with_id(youtube(), "UCblockedblockedblocked1"),
            note: None,
            tags: vec![],
            added_at: chrono::Utc::now(),
            source: EntrySource::Personal,
        }],
    };
    (library, list)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_over_the_quota_is_split_across_days_and_finished_the_next_day() {
    let clock = Clock::at(noon_pacific());
    let emulator = start_emulator(EmulatorConfig::default(), &clock);
    let (library, list) = blocked_library(250);
    emulator.seed_user(USER, &library);
    emulator.register_redirect_uri(REDIRECT).unwrap();
    let (access, _) = emulator.issue_tokens(USER, Duration::from_secs(3600));
    let token = StaticToken::new(youtube(), SecretString::from(access));
    let provider = provider(&emulator, 10_000, &clock);

    let scanned = provider.scan(&token, &NoProgress).await.unwrap();
    let caps = provider.capabilities();
    let quota = caps.quota.clone().unwrap();
    let read_units = 10_000 - quota.remaining_today;
    assert_eq!(read_units, 8, "6 pages of liked videos, 1 of playlists and 1 of subscriptions, 1 unit each");
    let blocked = BlockedSet::for_provider(&list, &youtube());
    let planned = plan(&scanned, &blocked, &EnforcementPolicy::default(), &caps);
    assert_eq!(planned.summary.total_actions, 250);
    assert_eq!(planned.summary.quota_units, 250 * 50);
    assert_eq!(planned.summary.days, 2, "12,500 units do not fit in one day");
    let today = planned.batches.iter().filter(|b| b.day == 0).count() as u64;
    assert_eq!(today, quota.remaining_today / 50, "day 0 takes what today's quota has left");
    assert!(planned.batches.iter().all(|b| b.day <= 1 && b.actions.len() == 1));

    // Today: only day 0 runs; the rest stays planned.
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    let report = Executor::new(&provider, &token, &log)
        .with_config(ExecutorConfig { through_day: 0, ..ExecutorConfig::default() })
        .execute(batch, &planned, &NoProgress, &CancelFlag::new())
        .await
        .unwrap();
    assert_eq!(report.completion, Completion::Finished);
    assert_eq!((report.confirmed, report.not_run, report.failed), (today, 250 - today, 0));
    assert_eq!(emulator.quota_used(), read_units + today * 50);
    assert!(emulator.quota_used() <= 10_000);
    assert_eq!(emulator.library(USER).liked_tracks.len() as u64, 260 - today);

    // Tomorrow (a new quota day for the service and for the same adapter's meter): the
    // same batch id resumes, the rest runs.
    clock.set(noon_pacific() + chrono::Duration::days(1));
    assert_eq!(provider.capabilities().quota.map(|q| q.remaining_today), Some(10_000), "the meter rolled over");
    let report = Executor::new(&provider, &token, &log)
        .with_config(ExecutorConfig { through_day: 1, ..ExecutorConfig::default() })
        .execute(batch, &planned, &NoProgress, &CancelFlag::new())
        .await
        .unwrap();
    assert_eq!((report.completion, report.confirmed, report.not_run), (Completion::Finished, 250, 0));
    assert_eq!(emulator.quota_used(), (250 - today) * 50, "the second day paid only for the rest");
    let left = emulator.library(USER);
    assert_eq!(left.liked_tracks.len(), 10);
    assert!(left.liked_tracks.iter().all(|l| l.track.artists[0].name == "Other"));
}

#[tokio::test]
async fn oauth_with_pkce_offline_access_refresh_without_rotation_and_revocation() {
    let f = fixture();
    let auth = YouTubeMusicAuth::new(config(&f.emulator, 10_000)).unwrap();
    let request = auth.authorization_request().unwrap();
    let url = url::Url::parse(&request.url).unwrap();
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["access_type"], "offline");
    assert_eq!(query["prompt"], "consent");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["scope"], SCOPES.join(" "));
    assert_eq!(query["state"], request.state);

    let response = f.http.get(&request.url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let back: std::collections::HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(back["state"], request.state);
    let tokens = auth.exchange_code(&back["code"], request.pkce_verifier.as_ref()).await.unwrap();
    let refresh = tokens.refresh_token.clone().expect("offline access gives a refresh token");
    assert!(tokens.expires_at.is_some());
    assert_eq!(tokens.scopes, SCOPES);

    // Google does not rotate: no new refresh token, and the old one keeps working.
    let refreshed = auth.refresh(&refresh).await.unwrap();
    assert!(refreshed.refresh_token.is_none());
    assert_ne!(refreshed.access_token.expose_secret(), tokens.access_token.expose_secret());
    let again = auth.refresh(&refresh).await.unwrap();
    let provider = f.provider();
    let token = StaticToken::new(youtube(), again.access_token.clone());
    assert_eq!(provider.scan(&token, &NoProgress).await.unwrap().liked_tracks.len(), 120);

    // Revocation ends the grant; revoking again is still a success.
    auth.revoke(&tokens).await.unwrap();
    let err = auth.refresh(&refresh).await.unwrap_err();
    assert_eq!(err.code(), "needs_reauth", "{err}");
    assert_eq!(provider.scan(&token, &NoProgress).await.unwrap_err().code(), "needs_reauth");
    auth.revoke(&tokens).await.unwrap();

    // A wrong verifier is refused.
    let request = auth.authorization_request().unwrap();
    let response = f.http.get(&request.url).send().await.unwrap();
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let wrong = SecretString::from("x".repeat(64));
    assert_eq!(auth.exchange_code(&code, Some(&wrong)).await.unwrap_err().code(), "invalid_input");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_through_the_token_store() {
    let f = fixture();
    let auth: Arc<dyn ProviderAuth> = Arc::new(YouTubeMusicAuth::new(config(&f.emulator, 10_000)).unwrap());
    let provider = f.provider();
    let (access, refresh) = f.emulator.issue_tokens(USER, Duration::from_secs(3600));
    let store = Arc::new(dnp_core::memory::MemoryTokenStore::new());
    let tokens = dnp_core::TokenSet {
        access_token: SecretString::from(access),
        refresh_token: Some(SecretString::from(refresh.clone())),
        expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        scopes: vec![],
    };
    let connection =
        dnp_core::TokenStore::save(&*store, dnp_core::UserId::new_random(), &youtube(), &tokens).await.unwrap();
    let source = dnp_core::StoredTokenSource::new(store.clone(), auth, connection.id);
    f.emulator.faults().expire_access_tokens_now();
    let library = provider.scan(&source, &NoProgress).await.unwrap();
    assert_eq!(library.liked_tracks.len(), 120);
    assert!(provider.client().api().stats().refreshes >= 1);
    assert_eq!(f.emulator.log().count("POST", "/token"), 1, "one refresh for the whole scan");
    // The stored refresh token is kept (Google sent none).
    let stored = dnp_core::TokenStore::tokens(&*store, connection.id).await.unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), refresh);
}

#[tokio::test]
async fn artist_search_finds_topic_channels_first_for_100_units() {
    let f = fixture();
    let provider = f.provider();
    let token = StaticToken::new(youtube(), SecretString::from(f.token.clone()));
    let artist = &f.library.followed_artists[0].artist;
    let found = provider.search_artists(&token, &artist.name, 5).await.unwrap();
    let first = &found[0];
    assert_eq!(
        (first.id.as_str(), first.name.as_str(), first.confidence),
        (artist.id.as_str(), artist.name.as_str(), 1.0)
    );
    assert!(first.detail.as_deref().is_some_and(|d| d.contains(" - Topic")), "{first:?}");
    assert!(found.len() <= 5);
    assert_eq!(f.emulator.quota_used(), 100, "a search costs 100 units");
    assert!(provider.search_artists(&token, "  ", 5).await.unwrap().is_empty());
}

/// Another process spent the project's quota: the adapter's own count still shows units,
/// Google says no. The executor stops (the reset is twelve hours away, past its longest
/// wait) and leaves the rest planned; the next quota day the same batch id sends what the
/// service's quota pays for then, and nothing is sent twice or lost.
///
/// The clock is fixed at noon Pacific. On the system clock this test failed whenever it ran
/// within two minutes of midnight Pacific: the executor waited out the reset, as it should
/// for a reset that close, and the fresh day paid for 5 more writes (10 confirmed, not 5).
#[tokio::test]
async fn an_enforcement_stops_when_google_says_the_quota_is_spent() {
    let clock = Clock::at(noon_pacific());
    let emulator = start_emulator(EmulatorConfig::default(), &clock);
    let (library, list) = blocked_library(20);
    emulator.seed_user(USER, &library);
    let (access, _) = emulator.issue_tokens(USER, Duration::from_secs(3600));
    let token = StaticToken::new(youtube(), SecretString::from(access));
    let provider = provider(&emulator, 10_000, &clock);
    let scanned = provider.scan(&token, &NoProgress).await.unwrap();
    let planned = plan(
        &scanned,
        &BlockedSet::for_provider(&list, &youtube()),
        &EnforcementPolicy::default(),
        &provider.capabilities(),
    );
    assert_eq!((planned.summary.total_actions, planned.summary.days), (20, 1), "the adapter thinks it fits today");
    // The scan took 3 units; 5 writes more are left at the service.
    let read_units = emulator.quota_used();
    emulator.set_daily_quota(read_units + 5 * 50);
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    let report =
        Executor::new(&provider, &token, &log).execute(batch, &planned, &NoProgress, &CancelFlag::new()).await.unwrap();
    assert_eq!(report.completion, Completion::ProviderUnavailable);
    assert_eq!((report.confirmed, report.failed, report.not_run), (5, 0, 15));
    assert_eq!(provider.capabilities().quota.map(|q| q.remaining_today), Some(0));
    assert_eq!(emulator.quota_used(), read_units + 5 * 50, "the refused write was not charged");
    assert_eq!(emulator.library(USER).liked_tracks.len(), 25);
    let rates = || emulator.log().count("POST", "/youtube/v3/videos/rate");
    assert_eq!(rates(), 6, "5 writes and the one refused; after it the adapter sent none");

    // The next quota day: the same batch id resumes where it stopped.
    clock.set(noon_pacific() + chrono::Duration::days(1));
    let report =
        Executor::new(&provider, &token, &log).execute(batch, &planned, &NoProgress, &CancelFlag::new()).await.unwrap();
    assert_eq!(report.completion, Completion::ProviderUnavailable, "the service's day pays for 5 writes again");
    assert_eq!((report.confirmed, report.failed, report.not_run), (10, 0, 10));
    assert_eq!(emulator.library(USER).liked_tracks.len(), 20);
    assert_eq!(rates(), 12, "5 more writes and one refused; none of the first 5 again");
}

/// A plan made without playlist item ids (an imported snapshot): the entry is found by
/// video and position; an ambiguous one is a conflict, never a guess.
#[tokio::test]
async fn playlist_removals_without_item_ids_resolve_by_position() {
    let f = fixture();
    let provider = f.provider();
    let token = StaticToken::new(youtube(), SecretString::from(f.token.clone()));
    let before = f.emulator.library(USER);
    let (playlist, video, positions) = before
        .playlists
        .iter()
        .find_map(|p| {
            p.items.iter().find_map(|i| {
                let at: Vec<u32> = p.items.iter().filter(|j| j.track.id == i.track.id).map(|j| j.position).collect();
                (at.len() >= 2).then(|| (p.clone(), i.track.id.clone(), at))
            })
        })
        .expect("the generated library has a video twice in a playlist");
    let remove = |position: u32| dnp_core::Action {
        kind: ActionKind::RemovePlaylistItem,
        target: dnp_core::Target::PlaylistItem {
            playlist_id: playlist.id.clone(),
            playlist_version: playlist.version.clone(),
            track_id: video.clone(),
            position,
            item_id: None,
            added_at: None,
        },
        ..unlike_action(0, &video)
    };
    let batch = |position: u32| dnp_core::Batch {
        kind: ActionKind::RemovePlaylistItem,
        playlist_id: Some(playlist.id.clone()),
        actions: vec![remove(position)],
        quota_units: 50,
        day: 0,
    };
    // Not at any of its positions: a conflict, nothing removed.
    let wrong = (0..).find(|p| !positions.contains(p)).unwrap();
    let outcomes = provider.apply(&token, &batch(wrong)).await.unwrap();
    assert!(matches!(&outcomes[0].outcome, dnp_core::Outcome::Failed(f) if f.code == "conflict"), "{outcomes:?}");
    assert_eq!(f.emulator.library(USER), before);
    // At its second position: that entry goes, the first stays.
    let outcomes = provider.apply(&token, &batch(positions[1])).await.unwrap();
    assert!(matches!(outcomes[0].outcome, dnp_core::Outcome::Confirmed { .. }), "{outcomes:?}");
    let after = f.emulator.library(USER);
    let items = &after.playlists.iter().find(|p| p.id == playlist.id).unwrap().items;
    let at: Vec<u32> = items.iter().filter(|i| i.track.id == video).map(|i| i.position).collect();
    assert_eq!(at[0], positions[0]);
    assert_eq!(at.len(), positions.len() - 1);
    let removed_item = playlist.items[positions[1] as usize].item_id.clone();
    assert!(!items.iter().any(|i| i.item_id == removed_item));
}
