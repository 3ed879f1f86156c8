//! `PATCH /me`: the display name is editable, cleaned like the names identity providers
//! give, bounded, refused with a code when unusable, and CSRF-checked for cookie sessions.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, error_code};
use serde_json::{Value, json};

async fn patch_me(app: &TestApp, token: &str, body: Value) -> common::Response {
    app.call("PATCH", "/api/v1/me", Some(token), Some(body)).await
}

#[tokio::test]
async fn the_display_name_is_set_cleaned_refused_and_cleared() {
    let app = TestApp::new().await;
    let (token, _) = app.register("ada@example.org").await;
    assert_eq!(app.get("/api/v1/me", &token).await.body["display_name"], Value::Null);

    let r = patch_me(&app, &token, json!({"display_name": "  Ada\u{202e}   Lovelace\u{7} "})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["display_name"], "Ada Lovelace", "cleaned as at sign-in");
    assert_eq!(r.body["email"], "ada@example.org");
    assert_eq!(app.get("/api/v1/me", &token).await.body["display_name"], "Ada Lovelace", "stored");

    // The zero-width non-joiner of a Persian name stays.
    let r = patch_me(&app, &token, json!({"display_name": "Mehr\u{200c}dad"})).await;
    assert_eq!(r.body["display_name"], "Mehr\u{200c}dad");

    // Exactly the limit is kept; over it, or nothing visible, is refused and changes nothing.
    let longest = "é".repeat(100);
    let r = patch_me(&app, &token, json!({"display_name": longest})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["display_name"], longest.as_str());
    let r = patch_me(&app, &token, json!({"display_name": "é".repeat(101)})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(error_code(&r), "display_name_too_long");
    let r = patch_me(&app, &token, json!({"display_name": " \u{200b}\u{2067}\t"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(error_code(&r), "invalid_display_name");
    for bad in [json!({"display_name": 42}), json!({"displayName": "x"}), json!("Ada")] {
        let r = patch_me(&app, &token, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_eq!(error_code(&r), "invalid_json", "{bad}");
    }
    assert_eq!(app.get("/api/v1/me", &token).await.body["display_name"], longest.as_str(), "refusals changed nothing");

    // A missing field keeps the name; null removes it.
    let r = patch_me(&app, &token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["display_name"], longest.as_str());
    let r = patch_me(&app, &token, json!({"display_name": null})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["display_name"], Value::Null);
    assert_eq!(app.get("/api/v1/me", &token).await.body["display_name"], Value::Null);

    // Anonymous callers are refused.
    let r = app.call("PATCH", "/api/v1/me", None, Some(json!({"display_name": "x"}))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test]
async fn a_cookie_session_must_echo_the_csrf_token() {
    let app = TestApp::new().await;
    let r = app
        .call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "grace@example.org", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let csrf = r.body["csrf_token"].as_str().unwrap().to_owned();
    let send = |csrf_header: Option<&str>| {
        let mut req = Request::builder()
            .method("PATCH")
            .uri("/api/v1/me")
            .header(header::COOKIE, format!("dnp_access={access}; dnp_csrf={csrf}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(h) = csrf_header {
            req = req.header("x-csrf-token", h);
        }
        req.body(Body::from(json!({"display_name": "Grace Hopper"}).to_string())).unwrap()
    };

    let r = app.raw(send(None)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(error_code(&r), "csrf_failed");
    let r = app.raw(send(Some("not-the-token"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(app.get("/api/v1/me", &access).await.body["display_name"], Value::Null, "refused: nothing changed");

    let r = app.raw(send(Some(&csrf))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["display_name"], "Grace Hopper");
    app.cleanup().await;
}
