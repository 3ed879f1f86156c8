//! Load benchmark of the reference server on PostgreSQL (issue 7, "Quality bar"): 1,000
//! concurrent keep-alive connections alternating `GET /api/v1/connections` and
//! `GET /api/v1/dnp` for a fixed duration; prints p50/p90/p99/max, requests/s and errors.
//!
//! Run: `DNP_TEST_CMD='cargo bench -p dnp-benches --bench server_load' scripts/test`.
//! `DNP_LOAD_CONNECTIONS` and `DNP_LOAD_SECONDS` override 1,000 connections and 10 s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dnp_server::{AppState, Config, Mode, Providers};
use serde_json::{Value, json};

const SECRET: &str = "bench-session-secret-0123456789abcdef-0123456789";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let connections = env_or("DNP_LOAD_CONNECTIONS", 1000) as usize;
    let seconds = env_or("DNP_LOAD_SECONDS", 10);
    let admin = std::env::var("DNP_TEST_POSTGRES_URL")
        .expect("DNP_TEST_POSTGRES_URL is not set: run scripts/test (it starts PostgreSQL and sets it)");

    // A fresh database, dropped at the end.
    let name = format!("dnp_bench_load_{}", uuid::Uuid::new_v4().simple());
    let admin_pool = sqlx::PgPool::connect(&admin).await.expect("admin connection");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin_pool).await.expect("create db");
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("DNP_TEST_POSTGRES_URL must end in /database"),
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("SESSION_SECRET".into(), SECRET.into());
    vars.insert("DATA_DIR".into(), dir.path().display().to_string());
    vars.insert("DATABASE_URL".into(), url);
    vars.insert("PUBLIC_BASE_URL".into(), "http://127.0.0.1:9".into());
    let config = Config::from_lookup(Mode::Serve, |k| vars.get(k).cloned()).expect("config");
    let db = dnp_server::run::connect_and_migrate(&config).await.expect("database");
    let backends = dnp_server::run::backends(&config, db).await.expect("backends");
    let state = AppState::new(config, backends, Providers::new());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(dnp_server::run::serve_listener(state.clone(), listener, async move {
        let _ = stop_rx.changed().await;
    }));
    let base = format!("http://{addr}/api/v1");

    // A user with a few DNP entries.
    let setup = reqwest::Client::new();
    let reg: Value = setup
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": "load@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("register body");
    let token = reg["access_token"].as_str().expect("access_token").to_owned();
    for i in 0..5 {
        let r = setup
            .post(format!("{base}/dnp"))
            .bearer_auth(&token)
            .json(&json!({"artist": {"name": format!("Artist {i}"), "provider_ids": {"spotify": [format!("artist{i}")]}}}))
            .send()
            .await
            .expect("add dnp");
        assert_eq!(r.status().as_u16(), 201, "adding a DNP entry failed");
    }

    // One client per connection: each task owns exactly one keep-alive connection.
    let routes = [format!("{base}/connections"), format!("{base}/dnp")];
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let routes = routes.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = c;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let ok = match client.get(&routes[i % 2]).bearer_auth(&token).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let d = t0.elapsed();
                if ok {
                    lat.push(d);
                } else {
                    errors += 1;
                }
                i += 1;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0u64;
    for t in tasks {
        let (lat, e) = t.await.expect("load task");
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed();
    all.sort_unstable();

    let (p50, p90, p99) = (percentile(&all, 50.0), percentile(&all, 90.0), percentile(&all, 99.0));
    let max = all.last().copied().unwrap_or_default();
    println!("server_load: {connections} connections, {seconds} s, PostgreSQL, routes /connections + /dnp alternating");
    println!(
        "requests ok: {}  errors: {errors}  throughput: {:.0} req/s",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64()
    );
    println!("p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms", ms(p50), ms(p90), ms(p99), ms(max));
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!("target p50 < 5 ms: {}", verdict(p50 < Duration::from_millis(5)));
    println!("target p99 < 50 ms: {}", verdict(p99 < Duration::from_millis(50)));
    println!("target zero errors: {}", verdict(errors == 0));

    let _ = stop_tx.send(true);
    let _ = server.await;
    state.db().close().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&admin_pool)
        .await;
    admin_pool.close().await;
}
