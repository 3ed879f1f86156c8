//! Tests of the YouTube emulator over plain HTTP (reqwest) and of the adapter against it:
//! paging, the quota, OAuth, the 204s.
//!
//! Run: `cargo test -p dnp-providers --no-default-features --features youtube_music,emulator --test youtube_music_emulator`

use std::time::Duration;

use dnp_core::{LibrarySnapshot, ProviderId};
use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
use dnp_providers::youtube_music::emulator::YouTubeMusicEmulator;
use reqwest::{Client, StatusCode};
use serde_json::Value;

const USER: &str = "alice";

fn youtube() -> ProviderId {
    ProviderId::new(ProviderId::YOUTUBE_MUSIC).unwrap()
}

struct Fixture {
    emulator: YouTubeMusicEmulator,
    library: LibrarySnapshot,
    token: String,
    http: Client,
}

fn fixture() -> Fixture {
    let emulator = YouTubeMusicEmulator::start(EmulatorConfig { seed: 3, ..EmulatorConfig::default() }).unwrap();
    let library = generate_library(&youtube(), LibraryShape::SMALL, 11);
    emulator.seed_user(USER, &library);
    let (token, _) = emulator.issue_tokens(USER, Duration::from_secs(3600));
    let http = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Fixture { emulator, library, token, http }
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.api_base_url())
    }

    async fn get(&self, url: &str) -> (StatusCode, Value) {
        let response = self.http.get(url).bearer_auth(&self.token).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn liked_videos_page_with_page_tokens() {
    let f = fixture();
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = f.url("/videos?part=snippet,contentDetails&myRating=like&maxResults=50");
        if let Some(t) = &token {
            url.push_str(&format!("&pageToken={t}"));
        }
        let (status, body) = f.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["kind"], "youtube#videoListResponse");
        assert_eq!(body["pageInfo"]["totalResults"], f.library.liked_tracks.len());
        for item in body["items"].as_array().unwrap() {
            assert_eq!(item["kind"], "youtube#video");
            assert!(item["contentDetails"]["duration"].as_str().unwrap().starts_with('P'));
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        match body["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3, "120 liked videos are three pages of 50");
    let expected: Vec<String> = f.library.liked_tracks.iter().map(|l| l.track.id.clone()).collect();
    assert_eq!(ids, expected);
}
