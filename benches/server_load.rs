//! Load benchmark of the reference server on PostgreSQL (issue 7, "Quality bar"): 1,000
//! concurrent keep-alive connections on `GET /api/v1/connections` and `GET /api/v1/dnp`.
//!
//! Run: `DNP_TEST_CMD='cargo bench -p dnp-benches --bench server_load' scripts/test`.
//!
//! The server runs in this process on its own Tokio runtime (`DNP_LOAD_SERVER_THREADS`
//! worker threads, default 2), configured like `dnp-server serve` on PostgreSQL, and logs
//! every request as JSON at `info` like production (into a sink, so the formatting is paid
//! for but not the terminal). `DNP_LOAD_USERS` users (default 100) each have 5 DNP entries
//! and 2 connections; connection `c` of the loader signs in as user `c % users`.
//!
//! The loader opens `DNP_LOAD_CONNECTIONS` (default 1,000) HTTP/1.1 keep-alive connections
//! (one hyper client connection per task, on the bench's own runtime) and alternates the two
//! routes on each. It runs once per entry of `DNP_LOAD_RATES` (default `500,1000,2000,4000,max`),
//! each for `DNP_LOAD_SECONDS` (default 10):
//!
//! - a number is an *open-loop* run at that many requests per second in total: every
//!   connection sends on a fixed schedule (`connections / rate` apart, phases spread evenly),
//!   whether or not the server keeps up. A request sent late because the previous answer on
//!   its connection came late is timed from when it was due (no coordinated omission);
//! - `max` is a *closed-loop* run: each connection sends its next request as soon as the last
//!   one answers, which measures the most the machine can serve; its latency is then mostly
//!   queueing (Little's law: connections / throughput).
//!
//! An error is a transport failure or a status other than 200. Prints one Markdown table row
//! per run (offered and achieved rate, p50/p90/p99/max, errors) and whether the targets of
//! issue 7 (p50 < 5 ms, p99 < 50 ms, zero errors) were met.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dnp_core::{ProviderId, TokenSet, UserId};
use dnp_server::{AppState, Config, Mode, Providers};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use secrecy::SecretString;
use serde_json::{Value, json};

const SECRET: &str = "bench-session-secret-0123456789abcdef-0123456789";
const ROUTES: [&str; 2] = ["/api/v1/connections", "/api/v1/dnp"];

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

/// The server, on its own runtime in its own thread.
struct Server {
    addr: SocketAddr,
    state: AppState,
    handle: tokio::runtime::Handle,
    stop: tokio::sync::watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

fn start_server(config: Config, threads: usize) -> Server {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("server")
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            let db = dnp_server::run::connect_and_migrate(&config).await.expect("database");
            let backends = dnp_server::run::backends(&config, db).await.expect("backends");
            let state = AppState::new(config, backends, Providers::new());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            ready_tx.send((addr, state.clone(), tokio::runtime::Handle::current())).expect("ready");
            let shutdown = async move {
                let _ = stop_rx.changed().await;
            };
            dnp_server::run::serve_listener(state.clone(), listener, shutdown).await.expect("serve");
            state.db().close().await;
        });
    });
    let (addr, state, handle) = ready_rx.recv().expect("server started");
    Server { addr, state, handle, stop, thread }
}

/// One keep-alive HTTP/1.1 connection.
async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    sender
}

/// Sends one authenticated GET and reads the whole answer; `Err` names what went wrong.
async fn get(sender: &mut SendRequest<Empty<Bytes>>, path: &str, bearer: &str) -> Result<(), String> {
    sender.ready().await.map_err(|e| format!("connection: {e}"))?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, "127.0.0.1")
        .header(hyper::header::AUTHORIZATION, bearer)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
    if status != hyper::StatusCode::OK {
        return Err(format!("status {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

/// What one connection saw in one run.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs one connection for a run: open loop every `interval` from `first`, or closed loop
/// when `interval` is `None`, until `end`.
async fn drive(
    mut sender: SendRequest<Empty<Bytes>>,
    bearer: String,
    route: usize,
    first: Instant,
    interval: Option<Duration>,
    end: Instant,
) -> (SendRequest<Empty<Bytes>>, Tally) {
    let mut tally = Tally::default();
    let mut due = first;
    let mut i = route;
    tokio::time::sleep_until(first.into()).await;
    loop {
        let began = match interval {
            Some(step) => {
                if due >= end {
                    break;
                }
                let began = if Instant::now() < due {
                    tokio::time::sleep_until(due.into()).await;
                    // On time: timed from the send (the timer's wake-up slack is the loader's).
                    Instant::now()
                } else {
                    // Late because the last answer on this connection came late: timed from
                    // when it was due, so a slow server is charged for the wait.
                    due
                };
                due += step;
                began
            }
            None => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        match get(&mut sender, ROUTES[i % 2], &bearer).await {
            Ok(()) => tally.latencies.push(began.elapsed()),
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(e);
            }
        }
        i += 1;
    }
    (sender, tally)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let connections = env_or("DNP_LOAD_CONNECTIONS", 1000) as usize;
    let users = env_or("DNP_LOAD_USERS", 100).max(1) as usize;
    let seconds = env_or("DNP_LOAD_SECONDS", 10);
    let server_threads = env_or("DNP_LOAD_SERVER_THREADS", 2).max(1) as usize;
    let rates = std::env::var("DNP_LOAD_RATES").unwrap_or_else(|_| "500,1000,2000,4000,max".to_owned());
    let session_cache = std::env::var("SESSION_CHECK_CACHE_SECONDS").unwrap_or_else(|_| "5".to_owned());
    let admin = std::env::var("DNP_TEST_POSTGRES_URL")
        .expect("DNP_TEST_POSTGRES_URL is not set: run scripts/test (it starts PostgreSQL and sets it)");

    // Production-like logging: one JSON line per request at info, written to a sink.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .try_init();

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
    vars.insert("SESSION_CHECK_CACHE_SECONDS".into(), session_cache.clone());
    let config = Config::from_lookup(Mode::Serve, |k| vars.get(k).cloned()).expect("config");
    let server = start_server(config, server_threads);
    let base = format!("http://{}/api/v1", server.addr);

    // Users, each with 5 DNP entries and 2 connections.
    let setup = reqwest::Client::new();
    let mut bearers = Vec::with_capacity(users);
    for u in 0..users {
        let reg: Value = setup
            .post(format!("{base}/auth/register"))
            .json(&json!({"email": format!("load{u}@example.com"), "password": "correct horse battery"}))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("register body");
        let token = reg["access_token"].as_str().expect("access_token").to_owned();
        let user: UserId = reg["user"]["id"].as_str().and_then(|s| s.parse().ok()).expect("user id");
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
        let state = server.state.clone();
        server
            .handle
            .spawn(async move {
                for provider in ["spotify", "tidal"] {
                    let tokens = TokenSet {
                        access_token: SecretString::from(format!("access-{provider}")),
                        refresh_token: Some(SecretString::from(format!("refresh-{provider}"))),
                        expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
                        scopes: vec!["user-library-read".into()],
                    };
                    let provider = ProviderId::new(provider).expect("provider id");
                    state.tokens().save(user, &provider, &tokens).await.expect("save connection");
                }
            })
            .await
            .expect("seed connections");
        bearers.push(format!("Bearer {token}"));
    }

    // Open every connection and warm it (and the server's pool) with one request each.
    let mut senders = Vec::with_capacity(connections);
    for c in 0..connections {
        let mut sender = connect(server.addr).await;
        get(&mut sender, ROUTES[c % 2], &bearers[c % users]).await.expect("warm-up request");
        senders.push(sender);
    }

    println!(
        "server_load: {connections} connections, {users} users, {seconds} s a run, PostgreSQL, \
         server on {server_threads} threads, SESSION_CHECK_CACHE_SECONDS={session_cache}"
    );
    println!(
        "| run | offered req/s | achieved req/s | requests ok | errors | p50 ms | p90 ms | p99 ms | max ms | targets |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for run in rates.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let rate: Option<f64> = match run {
            "max" => None,
            r => Some(r.parse().unwrap_or_else(|_| panic!("DNP_LOAD_RATES: {r:?} is neither a number nor max"))),
        };
        let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
        let start = Instant::now() + Duration::from_millis(200);
        let end = start + Duration::from_secs(seconds);
        let mut tasks = Vec::with_capacity(connections);
        for (c, sender) in senders.drain(..).enumerate() {
            let phase = interval.map(|i| i.mul_f64(c as f64 / connections as f64)).unwrap_or_default();
            tasks.push(tokio::spawn(drive(sender, bearers[c % users].clone(), c, start + phase, interval, end)));
        }
        let mut all = Vec::new();
        let (mut errors, mut first_error) = (0u64, None);
        for task in tasks {
            let (sender, tally) = task.await.expect("load task");
            senders.push(sender);
            all.extend(tally.latencies);
            errors += tally.errors;
            if first_error.is_none() {
                first_error = tally.first_error;
            }
        }
        let elapsed = start.elapsed().max(Duration::from_secs(seconds));
        all.sort_unstable();
        let (p50, p90, p99) = (percentile(&all, 50.0), percentile(&all, 90.0), percentile(&all, 99.0));
        let max = all.last().copied().unwrap_or_default();
        let met = p50 < Duration::from_millis(5) && p99 < Duration::from_millis(50) && errors == 0;
        println!(
            "| {} | {} | {:.0} | {} | {errors} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
            if rate.is_some() { "open loop" } else { "closed loop" },
            rate.map(|r| format!("{r:.0}")).unwrap_or_else(|| "as fast as answered".into()),
            all.len() as f64 / elapsed.as_secs_f64(),
            all.len(),
            ms(p50),
            ms(p90),
            ms(p99),
            ms(max),
            if met { "met" } else { "MISSED" },
        );
        if let Some(e) = first_error {
            println!("  first error: {e}");
        }
    }

    drop(senders);
    let _ = server.stop.send(true);
    let _ = server.thread.join();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&admin_pool)
        .await;
    admin_pool.close().await;
}
