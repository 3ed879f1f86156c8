//! `GET /analytics/enforcement`: the daily series counts confirmed actions per kind, exactly,
//! on SQLite and on PostgreSQL.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::TestApp;
use common::spotify::World;
use dnp_core::ActionKind;
use serde_json::{Value, json};

const DAY_MS: i64 = 86_400_000;

/// Stores a batch of `items` (kind, state) made at `created_at` (ms), as the executor's
/// store would.
async fn seed_batch(
    app: &TestApp,
    user_id: &str,
    provider: &str,
    kind: &str,
    created_at: i64,
    items: &[(ActionKind, &str)],
) {
    let id = uuid::Uuid::new_v4().to_string();
    dnp_server::with_pool!(app.state.db(), pool => {
        sqlx::query(
            "INSERT INTO batches (id, user_id, provider, kind, status, plan_json, total_actions, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'succeeded', '{}', $5, $6, $6)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(provider)
        .bind(kind)
        .bind(items.len() as i64)
        .bind(created_at)
        .execute(pool)
        .await
        .unwrap();
        for (n, (action, state)) in items.iter().enumerate() {
            sqlx::query(
                "INSERT INTO batch_items (batch_id, action_id, kind, state, label, action_json, before_json, updated_at) \
                 VALUES ($1, $2, $3, $4, 'seeded', '{}', '{}', $5)",
            )
            .bind(&id)
            .bind(n as i64)
            .bind(action.as_str())
            .bind(*state)
            .bind(created_at)
            .execute(pool)
            .await
            .unwrap();
        }
    });
}

fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().date_naive().to_string()
}

fn kinds(day: &Value) -> BTreeMap<String, u64> {
    serde_json::from_value(day["actions_by_kind"].clone()).expect("actions_by_kind is an object of counts")
}

async fn daily_series_counts_each_kind_per_day(postgres: bool) {
    let world = World::start_with(11, postgres).await;
    let app = &world.app;
    let (token, user_id) = app.register("ana@example.org").await;
    let (_, other_id) = app.register("bo@example.org").await;

    let now = chrono::Utc::now().timestamp_millis();
    let (earlier, later) = (now - 2 * DAY_MS, now);
    use ActionKind::{LikeTrack, UnfollowArtist, UnlikeTrack};
    // Two days ago: one Spotify batch with both kinds, a failure and an unsent item.
    seed_batch(
        app,
        &user_id,
        "spotify",
        "enforcement",
        earlier,
        &[
            (UnlikeTrack, "confirmed"),
            (UnlikeTrack, "confirmed"),
            (UnfollowArtist, "confirmed"),
            (UnlikeTrack, "confirmed"),
            (UnlikeTrack, "failed"),
            (UnfollowArtist, "planned"),
        ],
    )
    .await;
    // Today: a Spotify batch and a TIDAL batch, and a rollback and another user's batch
    // that must not count.
    seed_batch(app, &user_id, "spotify", "enforcement", later, &[(UnfollowArtist, "confirmed"); 2]).await;
    seed_batch(app, &user_id, "tidal", "enforcement", later, &[(UnlikeTrack, "confirmed"), (UnfollowArtist, "failed")])
        .await;
    seed_batch(app, &user_id, "spotify", "rollback", later, &[(LikeTrack, "confirmed"); 3]).await;
    seed_batch(app, &other_id, "spotify", "enforcement", later, &[(UnlikeTrack, "confirmed"); 5]).await;

    let r = app.get("/api/v1/analytics/enforcement?days=7", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let daily = r.body["daily"].as_array().expect("daily");
    assert_eq!(daily.len(), 7);
    let day = |ms: i64| daily.iter().find(|d| d["date"] == day_of(ms).as_str()).expect("the day is in the series");

    let first = day(earlier);
    assert_eq!(
        kinds(first),
        BTreeMap::from([("unfollow_artist".to_owned(), 1), ("unlike_track".to_owned(), 3)]),
        "{first}"
    );
    assert_eq!((&first["batches"], &first["confirmed"], &first["failed"]), (&json!(1), &json!(4), &json!(1)));
    let second = day(later);
    assert_eq!(
        kinds(second),
        BTreeMap::from([("unfollow_artist".to_owned(), 2), ("unlike_track".to_owned(), 1)]),
        "{second}"
    );
    assert_eq!((&second["batches"], &second["confirmed"], &second["failed"]), (&json!(2), &json!(3), &json!(1)));
    for d in daily {
        if d["date"] != first["date"] && d["date"] != second["date"] {
            assert!(kinds(d).is_empty(), "a day without batches: {d}");
        }
        assert_eq!(kinds(d).values().sum::<u64>(), d["confirmed"].as_u64().unwrap(), "kinds add up to confirmed: {d}");
    }
    // The window's totals per kind are the days' sums.
    assert_eq!(r.body["actions_by_kind"], json!({"unfollow_artist": 3, "unlike_track": 4}));

    // Filtered to one provider.
    let r = app.get("/api/v1/analytics/enforcement?days=7&provider=spotify", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let daily = r.body["daily"].as_array().unwrap();
    let second = daily.iter().find(|d| d["date"] == day_of(later).as_str()).unwrap();
    assert_eq!(kinds(second), BTreeMap::from([("unfollow_artist".to_owned(), 2)]));

    // A one-day window holds only today.
    let r = app.get("/api/v1/analytics/enforcement?days=1", &token).await;
    let daily = r.body["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 1);
    if daily[0]["date"] == day_of(later).as_str() {
        assert_eq!(
            kinds(&daily[0]),
            BTreeMap::from([("unfollow_artist".to_owned(), 2), ("unlike_track".to_owned(), 1)])
        );
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_series_counts_each_kind_per_day_on_sqlite() {
    daily_series_counts_each_kind_per_day(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_series_counts_each_kind_per_day_on_postgres() {
    daily_series_counts_each_kind_per_day(true).await;
}
