//! Accounts: register, login, TOTP, refresh rotation, logout, cookies and CSRF.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, error_code};
use serde_json::json;

#[tokio::test]
async fn register_login_me_refresh_logout() {
    let app = TestApp::new().await;
    let r = app
        .call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "Ada@Example.org", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["user"]["email"], "ada@example.org");
    let cookies: Vec<_> =
        r.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("dnp_access=") && c.contains("HttpOnly")), "{cookies:?}");
    assert!(cookies.iter().any(|c| c.starts_with("dnp_csrf=") && !c.contains("HttpOnly")));

    // The same email again is a conflict.
    let r2 = app
        .call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "ada@example.org", "password": "another long password"})),
        )
        .await;
    assert_eq!(r2.status, StatusCode::CONFLICT);
    assert_eq!(error_code(&r2), "email_taken");

    let bad = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ada@example.org", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&bad), "invalid_credentials");
    let unknown = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "nobody@example.org", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(error_code(&unknown), "invalid_credentials");

    let login = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ada@example.org", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let access = login.body["access_token"].as_str().unwrap().to_owned();
    let refresh = login.body["refresh_token"].as_str().unwrap().to_owned();

    let me = app.get("/api/v1/me", &access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "ada@example.org");
    assert_eq!(me.body["mfa_enabled"], false);

    // Refresh rotates: the old refresh token is spent.
    let r = app.call("POST", "/api/v1/auth/refresh", None, Some(json!({"refresh_token": refresh}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let refresh2 = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh, refresh2);
    let access2 = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/v1/me", &access2).await.status, StatusCode::OK);

    // Reusing the spent token revokes the whole family: the new one stops working too.
    let reuse = app.call("POST", "/api/v1/auth/refresh", None, Some(json!({"refresh_token": refresh}))).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&reuse), "refresh_token_reused");
    let after = app.call("POST", "/api/v1/auth/refresh", None, Some(json!({"refresh_token": refresh2}))).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/api/v1/me", &access2).await.status, StatusCode::UNAUTHORIZED);

    // Logout ends the session the access token belongs to.
    let (token, _) = app.register("bob@example.org").await;
    let out = app.call("POST", "/api/v1/auth/logout", Some(&token), None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let me = app.get("/api/v1/me", &token).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&me), "session_ended");
}

#[tokio::test]
async fn bad_input_gets_a_typed_4xx_never_a_500() {
    let app = TestApp::new().await;
    let cases = [
        (json!({"email": "not-an-email", "password": "correct horse battery"}), "invalid_email"),
        (json!({"email": "a@example.org", "password": "short"}), "weak_password"),
        (json!({"email": "a@example.org"}), "invalid_json"),
        (json!([1, 2]), "invalid_json"),
    ];
    for (body, code) in cases {
        let r = app.call("POST", "/api/v1/auth/register", None, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(error_code(&r), code, "{body}");
    }
    // Not JSON at all.
    let req = Request::post("/api/v1/auth/register")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{oops"))
        .unwrap();
    let r = app.raw(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&r), "invalid_json");
    // No content type.
    let req = Request::post("/api/v1/auth/register").body(Body::from("{}")).unwrap();
    assert_eq!(app.raw(req).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Too large.
    let big = format!("{{\"email\": \"{}\", \"password\": \"x\"}}", "a".repeat(2 * 1024 * 1024));
    let req = Request::post("/api/v1/auth/register")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(big))
        .unwrap();
    let r = app.raw(req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&r), "payload_too_large");
    // Unknown route and bad token.
    let r = app.call("GET", "/api/v1/nowhere", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&r), "route_not_found");
    let r = app.call("GET", "/api/v1/me", Some("garbage"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&r), "invalid_token");
    assert!(r.headers.get("x-request-id").is_some());
}

#[tokio::test]
async fn cookie_auth_needs_the_csrf_header_for_changes() {
    let app = TestApp::new().await;
    let r = app
        .call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "c@example.org", "password": "correct horse battery"})),
        )
        .await;
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let csrf = r.body["csrf_token"].as_str().unwrap().to_owned();
    let cookie = format!("dnp_access={access}; dnp_csrf={csrf}");
    // GET with the cookie alone works.
    let req = Request::get("/api/v1/me").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
    assert_eq!(app.raw(req).await.status, StatusCode::OK);
    // POST with the cookie but no header is refused.
    let req = Request::post("/api/v1/auth/logout").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
    let r = app.raw(req).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&r), "csrf_failed");
    // With a wrong header too.
    let req = Request::post("/api/v1/auth/logout")
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", "nope")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.raw(req).await.status, StatusCode::FORBIDDEN);
    // With the right header it goes through.
    let req = Request::post("/api/v1/auth/logout")
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.raw(req).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn totp_second_factor() {
    let app = TestApp::new().await;
    let (token, _) = app.register("t@example.org").await;
    let setup = app.call("POST", "/api/v1/auth/mfa/setup", Some(&token), None).await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.text);
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    assert!(setup.body["otpauth_url"].as_str().unwrap().starts_with("otpauth://totp/"));
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap())
        .with_account_name("t@example.org")
        .build()
        .unwrap();
    let wrong = app.post("/api/v1/auth/mfa/verify", &token, json!({"code": "000000"})).await;
    // (A 1 in a million chance that 000000 is current; then the next assertion shows it.)
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    let ok = app.post("/api/v1/auth/mfa/verify", &token, json!({"code": totp.generate_current().to_string()})).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.text);
    assert_eq!(app.get("/api/v1/me", &token).await.body["mfa_enabled"], true);

    // Login now asks for the second factor.
    let login = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "t@example.org", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(login.body["mfa_required"], true, "{}", login.text);
    assert!(login.body.get("access_token").is_none());
    let mfa_token = login.body["mfa_token"].as_str().unwrap();
    // The MFA token is not an access token.
    assert_eq!(app.get("/api/v1/me", mfa_token).await.status, StatusCode::UNAUTHORIZED);
    let done = app
        .call(
            "POST",
            "/api/v1/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa_token, "code": totp.generate_current().to_string()})),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.body["access_token"].is_string());
    // Or in one step with totp_code.
    let one = app.call("POST", "/api/v1/auth/login", None, Some(json!({"email": "t@example.org", "password": "correct horse battery", "totp_code": totp.generate_current().to_string()}))).await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(one.body["access_token"].is_string());
}

#[tokio::test]
async fn login_is_rate_limited_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(dir.path(), &[("LOGIN_RATE_PER_MINUTE", "3")]);
    let db = dnp_server::run::connect_and_migrate(&config).await.unwrap();
    let backends = dnp_server::run::backends(&config, db).await.unwrap();
    let app = TestApp::from_parts(config, backends, dnp_server::Providers::new(), dir, None);
    app.register("r@example.org").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"email": "r@example.org", "password": "wrong password!!"})),
            )
            .await;
        statuses.push(r.status);
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers.get(header::RETRY_AFTER).is_some());
            assert_eq!(error_code(&r), "rate_limited");
        }
    }
    assert_eq!(&statuses[..3], &[StatusCode::UNAUTHORIZED; 3]);
    assert_eq!(&statuses[3..], &[StatusCode::TOO_MANY_REQUESTS; 2]);
    // Even the right password is refused while limited: no oracle for guessing.
    let r = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "r@example.org", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}
