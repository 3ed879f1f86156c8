//! Sign-out across servers: the short live-session cache (`SESSION_CHECK_CACHE_SECONDS`).

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{TestApp, error_code};
use dnp_server::Providers;

/// Two servers over one database, both with `SESSION_CHECK_CACHE_SECONDS = seconds`.
async fn two_servers(seconds: &str) -> (TestApp, TestApp) {
    let a = TestApp::build(Providers::new(), &[("SESSION_CHECK_CACHE_SECONDS", seconds)]).await;
    let config = common::config(a.dir.path(), &[("SESSION_CHECK_CACHE_SECONDS", seconds)]);
    let db = dnp_server::run::connect_and_migrate(&config).await.expect("database");
    let backends = dnp_server::run::backends(&config, db).await.expect("backends");
    let b = TestApp::from_parts(config, backends, Providers::new(), tempfile::tempdir().unwrap(), None);
    (a, b)
}

#[tokio::test]
async fn sign_out_is_immediate_here_and_reaches_other_servers_within_the_cache_time() {
    let (a, b) = two_servers("2").await;
    let (token, _) = a.register("ada@example.org").await;
    // Both servers see the session live (and remember it).
    assert_eq!(a.get("/api/v1/me", &token).await.status, StatusCode::OK);
    assert_eq!(b.get("/api/v1/me", &token).await.status, StatusCode::OK);

    let out = a.call("POST", "/api/v1/auth/logout", Some(&token), None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let here = a.get("/api/v1/me", &token).await;
    assert_eq!(here.status, StatusCode::UNAUTHORIZED, "the server that signed out forgets the session at once");
    assert_eq!(error_code(&here), "session_ended");

    // The other server trusted its live answer for at most 2 s.
    assert_eq!(b.get("/api/v1/me", &token).await.status, StatusCode::OK, "documented lag on other servers");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let there = b.get("/api/v1/me", &token).await;
    assert_eq!(there.status, StatusCode::UNAUTHORIZED, "after the cache time every server sees the sign-out");
    assert_eq!(error_code(&there), "session_ended");
}

#[tokio::test]
async fn with_the_cache_off_sign_out_is_immediate_on_every_server() {
    let (a, b) = two_servers("0").await;
    let (token, _) = a.register("bo@example.org").await;
    assert_eq!(b.get("/api/v1/me", &token).await.status, StatusCode::OK);
    let out = a.call("POST", "/api/v1/auth/logout", Some(&token), None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let there = b.get("/api/v1/me", &token).await;
    assert_eq!(there.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&there), "session_ended");
}

#[tokio::test]
async fn a_signed_out_session_is_never_remembered_as_live() {
    let (a, b) = two_servers("60").await;
    let (token, _) = a.register("cy@example.org").await;
    // Signed out before the other server ever saw it: it must ask, and be told no, every time.
    let out = a.call("POST", "/api/v1/auth/logout", Some(&token), None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    for _ in 0..3 {
        assert_eq!(b.get("/api/v1/me", &token).await.status, StatusCode::UNAUTHORIZED);
    }
}

#[test]
fn the_cache_time_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = std::collections::HashMap::new();
    vars.insert("SESSION_SECRET", common::SECRET.to_owned());
    vars.insert("DATA_DIR", dir.path().display().to_string());
    vars.insert("SESSION_CHECK_CACHE_SECONDS", "301".to_owned());
    let err = dnp_server::Config::from_lookup(dnp_server::Mode::Serve, |k| vars.get(k).cloned())
        .expect_err("301 s is above the limit");
    assert!(err.to_string().contains("SESSION_CHECK_CACHE_SECONDS"), "the error names the variable: {err}");
}
