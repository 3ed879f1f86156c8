//! The YouTube Music adapter against its emulator: OAuth, the quota across days, model
//! parsing of recorded JSON.
//!
//! Run: `cargo test -p dnp-providers --no-default-features --features youtube_music,emulator --test youtube_music_adapter`

use dnp_providers::youtube_music::model::{ListResponse, Video};

#[test]
fn recorded_video_list_parses() {
    let body = r#"{"kind":"youtube#videoListResponse","etag":"x","items":[{"kind":"youtube#video","etag":"e","id":"dQw4w9WgXcQ","snippet":{"title":"Never Gonna Give You Up","channelId":"UCuAXFkgsw1L7xaCfnd5JJOw","channelTitle":"Rick Astley - Topic"},"contentDetails":{"duration":"PT3M33S"}}],"pageInfo":{"totalResults":1,"resultsPerPage":5}}"#;
    let list: ListResponse<Video> = serde_json::from_str(body).unwrap();
    let track = list.items[0].to_track().unwrap();
    assert_eq!(track.artists[0].name, "Rick Astley");
    assert_eq!(track.duration_ms, Some(213_000));
}
