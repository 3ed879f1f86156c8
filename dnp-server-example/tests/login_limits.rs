//! Login rate limits are shared by every server on one store: two servers on one PostgreSQL
//! database, or on one Redis, refuse at the same attempt as one server does; SQLite in one
//! process; `Retry-After`; the window ends; a failing store neither locks everyone out nor
//! lifts the limit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, error_code};
use dnp_server::login_limit::{LoginLimits, WINDOW};
use dnp_server::{Backends, Database, Providers, run};
use serde_json::json;

const RATE: &str = "3";
const PASSWORD: &str = "correct horse battery";

/// A server over `db_url` (and Redis when `redis_url` is given) with `LOGIN_RATE_PER_MINUTE=3`,
/// taking the client address from `X-Forwarded-For`.
async fn server(dir: &std::path::Path, db_url: Option<&str>, redis_url: Option<&str>) -> TestApp {
    server_with(dir, db_url, redis_url, |_| {}).await
}

/// [`server`], its backends changed by `adjust` first.
async fn server_with(
    dir: &std::path::Path,
    db_url: Option<&str>,
    redis_url: Option<&str>,
    adjust: impl FnOnce(&mut Backends),
) -> TestApp {
    let mut extra = vec![("LOGIN_RATE_PER_MINUTE", RATE), ("TRUST_PROXY_HEADERS", "true")];
    if let Some(url) = db_url {
        extra.push(("DATABASE_URL", url));
    }
    if let Some(url) = redis_url {
        extra.push(("REDIS_URL", url));
    }
    let config = common::config(dir, &extra);
    let db = run::connect_and_migrate(&config).await.expect("database");
    let mut backends = run::backends(&config, db).await.expect("backends");
    adjust(&mut backends);
    TestApp::from_parts(config, backends, Providers::new(), tempfile::tempdir().unwrap(), None)
}

/// A login attempt on `email` from `addr`.
async fn login(app: &TestApp, email: &str, password: &str, addr: &str) -> common::Response {
    let body = json!({"email": email, "password": password}).to_string();
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", addr)
        .body(Body::from(body))
        .unwrap();
    app.raw(req).await
}

/// The `Retry-After` of a 429 (whole seconds), after checking the JSON error.
fn retry_after(r: &common::Response) -> u64 {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(error_code(r), "rate_limited", "{}", r.text);
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.text);
    let secs: u64 = r
        .headers
        .get(header::RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(secs > 0 && secs <= WINDOW.as_secs(), "Retry-After {secs}");
    secs
}

/// Wrong passwords on one account from distinct addresses, round-robin over `servers`: the
/// statuses in order.
async fn spread(servers: &[&TestApp], email: &str, attempts: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for i in 0..attempts {
        let r = login(servers[i % servers.len()], email, "wrong password!!", &format!("198.51.100.{i}")).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            retry_after(&r);
        }
        statuses.push(r.status);
    }
    statuses
}

fn expected_account_statuses() -> Vec<StatusCode> {
    let mut v = vec![StatusCode::UNAUTHORIZED; 3];
    v.extend([StatusCode::TOO_MANY_REQUESTS; 3]);
    v
}

/// Accounts tried from one address, round-robin over `servers`: 3x the account quota, then 429.
async fn spread_address(servers: &[&TestApp], addr: &str) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for i in 0..11 {
        let email = format!("nobody{i}-{}@example.org", uuid::Uuid::new_v4().simple());
        let r = login(servers[i % servers.len()], &email, "wrong password!!", addr).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            retry_after(&r);
        }
        statuses.push(r.status);
    }
    statuses
}

fn expected_address_statuses() -> Vec<StatusCode> {
    let mut v = vec![StatusCode::UNAUTHORIZED; 9];
    v.extend([StatusCode::TOO_MANY_REQUESTS; 2]);
    v
}

async fn new_pg_database() -> (String, String, String) {
    let admin = std::env::var("DNP_TEST_POSTGRES_URL")
        .expect("DNP_TEST_POSTGRES_URL is not set: run scripts/test (it starts PostgreSQL and sets it)");
    let name = format!("dnp_server_limits_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
    pool.close().await;
    let url = format!("{}/{name}", admin.rsplit_once('/').expect("DNP_TEST_POSTGRES_URL ends in /database").0);
    (admin, name, url)
}

async fn drop_pg_database(admin: &str, name: &str) {
    let pool = sqlx::PgPool::connect(admin).await.unwrap();
    let _ =
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&pool).await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_share_the_limits() {
    let (admin, name, url) = new_pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    let a = server(dir.path(), Some(&url), None).await;
    let b = server(dir.path(), Some(&url), None).await;
    assert_eq!(a.state.db().kind(), "postgres");

    // One server, then two: refused at the same attempt.
    let one = format!("one-{}@example.org", uuid::Uuid::new_v4().simple());
    a.register(&one).await;
    assert_eq!(spread(&[&a], &one, 6).await, expected_account_statuses());
    let both = format!("both-{}@example.org", uuid::Uuid::new_v4().simple());
    a.register(&both).await;
    assert_eq!(spread(&[&a, &b], &both, 6).await, expected_account_statuses());
    // Even the right password, on either server.
    for s in [&a, &b] {
        retry_after(&login(s, &both, PASSWORD, "203.0.113.1").await);
    }
    assert_eq!(spread_address(&[&a, &b], "203.0.113.77").await, expected_address_statuses());

    // Only hashed account keys are stored.
    let Database::Postgres(pool) = a.state.db() else { unreachable!() };
    let keys: Vec<(String,)> = sqlx::query_as("SELECT limit_key FROM login_attempts").fetch_all(pool).await.unwrap();
    assert!(keys.len() > 10, "{keys:?}");
    assert!(keys.iter().all(|(k,)| !k.contains('@') && (k.starts_with("acct:") || k.starts_with("addr:"))), "{keys:?}");

    b.state.db().close().await;
    a.cleanup().await;
    drop_pg_database(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_redis_share_the_limits() {
    let redis_url = std::env::var("DNP_TEST_REDIS_URL")
        .expect("DNP_TEST_REDIS_URL is not set: run scripts/test (it starts Redis and sets it)");
    let dir = tempfile::tempdir().unwrap();
    // Separate SQLite files: only Redis is shared.
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    // Keys of our own, so that parallel runs on the same Redis never meet.
    let prefix = format!("dnp-server-test:{}:login:", uuid::Uuid::new_v4().simple());
    let mut nodes = Vec::new();
    for dir in [&dir_a, &dir_b] {
        let limits = Arc::new(LoginLimits::connect_redis(&redis_url, prefix.clone(), 3, WINDOW).await.unwrap());
        nodes.push(
            server_with(dir, None, Some(&redis_url), |backends| {
                // REDIS_URL puts the limits in Redis.
                assert_eq!(backends.login_limits.backend(), "redis");
                backends.login_limits = limits;
            })
            .await,
        );
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    assert_eq!(a.state.db().kind(), "sqlite");

    let one = format!("one-{}@example.org", uuid::Uuid::new_v4().simple());
    a.register(&one).await;
    assert_eq!(spread(&[a], &one, 6).await, expected_account_statuses());
    // The account exists only on a's database: b refuses it as unknown, yet counts the same.
    let both = format!("both-{}@example.org", uuid::Uuid::new_v4().simple());
    a.register(&both).await;
    assert_eq!(spread(&[a, b], &both, 6).await, expected_account_statuses());
    retry_after(&login(a, &both, PASSWORD, "203.0.113.1").await);
    assert_eq!(spread_address(&[b, a], "203.0.113.77").await, expected_address_statuses());

    // Keys carry a TTL and never the email address.
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg(format!("{prefix}*"))
        .arg("COUNT")
        .arg(10_000)
        .query_async::<(u64, Vec<String>)>(&mut conn)
        .await
        .unwrap()
        .1;
    assert!(keys.len() > 10, "{keys:?}");
    for key in &keys {
        assert!(!key.contains('@'), "{key}");
        let ttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0 && ttl <= 60_000, "{key}: {ttl}");
    }
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
}

#[tokio::test]
async fn sqlite_limits_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let app = server(dir.path(), None, None).await;
    let email = "limited@example.org";
    app.register(email).await;
    assert_eq!(spread(&[&app], email, 6).await, expected_account_statuses());
    let secs = retry_after(&login(&app, email, PASSWORD, "203.0.113.1").await);
    assert!(secs >= 55, "most of the minute is left: {secs}");
}

#[tokio::test]
async fn the_window_ends() {
    let dir = tempfile::tempdir().unwrap();
    // A short window, to see it end.
    let window = Duration::from_secs(3);
    let app = server_with(dir.path(), None, None, |backends| {
        backends.login_limits = Arc::new(LoginLimits::sql(backends.db.clone(), 3, window));
    })
    .await;
    let email = "window@example.org";
    app.register(email).await;
    assert_eq!(spread(&[&app], email, 4).await[3], StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&login(&app, email, PASSWORD, "203.0.113.1").await);
    assert!(wait <= 3, "{wait}");
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    let r = login(&app, email, PASSWORD, "203.0.113.1").await;
    assert_eq!(r.status, StatusCode::OK, "a new window: {}", r.text);
    assert_eq!(login(&app, email, "wrong password!!", "203.0.113.2").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&app, email, "wrong password!!", "203.0.113.3").await.status, StatusCode::UNAUTHORIZED);
    retry_after(&login(&app, email, PASSWORD, "203.0.113.4").await);
}

#[tokio::test]
async fn a_failing_store_neither_locks_out_nor_lifts_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let app = server(dir.path(), None, None).await;
    let email = "store-down@example.org";
    app.register(email).await;
    let Database::Sqlite(pool) = app.state.db() else { unreachable!() };
    sqlx::query("DROP TABLE login_attempts").execute(pool).await.unwrap();
    let r = login(&app, email, PASSWORD, "203.0.113.1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(login(&app, email, "wrong password!!", "203.0.113.2").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&app, email, "wrong password!!", "203.0.113.3").await.status, StatusCode::UNAUTHORIZED);
    retry_after(&login(&app, email, "wrong password!!", "203.0.113.4").await);
    retry_after(&login(&app, email, PASSWORD, "203.0.113.5").await);
}
