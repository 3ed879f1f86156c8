//! Sign-in with Google, Apple and GitHub, end to end against the in-process IdP emulator.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Response, TestApp, error_code};
use dnp_server::idp_emulator::{Forgery, IdpEmulator, IdpUser};
use dnp_server::{Config, Mode, Providers};
use serde_json::json;

async fn setup(user: IdpUser) -> (TestApp, IdpEmulator) {
    let emu = IdpEmulator::start(user).await.expect("emulator");
    let vars = emu.env_vars();
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::build(Providers::new(), &extra).await;
    (app, emu)
}

/// A started sign-in: the identity provider's URL and the binding cookie the server set
/// (`name=value`).
struct Started {
    url: String,
    cookie: Option<String>,
}

/// The `dnp_oauth_binding` cookie a response sets, as `name=value`, and its attributes.
fn binding_set_cookie(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.starts_with("dnp_oauth_binding=").then(|| {
            let (pair, attributes) = c.split_once(';').unwrap_or((c, ""));
            (pair.to_owned(), attributes.to_owned())
        })
    })
}

async fn authorize_url(app: &TestApp, idp: &str) -> Started {
    let req = Request::get(format!("/api/v1/auth/oauth/{idp}/authorize"))
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .unwrap();
    let r = app.raw(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let cookie = binding_set_cookie(&r.headers).map(|(pair, _)| pair);
    assert!(cookie.is_some(), "the authorize answer sets the binding cookie: {:?}", r.headers);
    Started { url: r.body["authorize_url"].as_str().unwrap().to_owned(), cookie }
}

/// What the identity provider sends the browser back with, and the browser's binding cookie.
#[derive(Clone, Debug)]
struct Back {
    method: String,
    path: String,
    form: Option<String>,
    cookie: Option<String>,
}

async fn approve(started: &Started) -> Back {
    let (method, path, form) = approve_url(&started.url).await;
    Back { method, path, form, cookie: started.cookie.clone() }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// What the IdP sends the browser back with: (method, path and query, form body).
async fn approve_url(url: &str) -> (String, String, Option<String>) {
    let r = http().get(url).send().await.unwrap();
    if r.status() == reqwest::StatusCode::FOUND {
        let location = r.headers()[reqwest::header::LOCATION].to_str().unwrap().to_owned();
        let u = url::Url::parse(&location).unwrap();
        return ("GET".into(), format!("{}?{}", u.path(), u.query().unwrap_or_default()), None);
    }
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    // Apple: an auto-submitting form (response_mode=form_post).
    let html = r.text().await.unwrap();
    let action = attr_after(&html, "action=\"", 0).unwrap();
    let u = url::Url::parse(&action).unwrap();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    let mut at = 0;
    while let Some(i) = html[at..].find("name=\"") {
        let start = at + i;
        let name = attr_after(&html, "name=\"", start).unwrap();
        let value = attr_after(&html, "value=\"", start).unwrap();
        form.append_pair(&name, &value);
        at = start + 6;
    }
    ("POST".into(), u.path().to_owned(), Some(form.finish()))
}

fn attr_after(html: &str, key: &str, from: usize) -> Option<String> {
    let i = html[from..].find(key)? + from + key.len();
    let end = html[i..].find('"')? + i;
    Some(html[i..end].replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
}

async fn callback(app: &TestApp, back: &Back, navigate: bool) -> Response {
    let mut req = Request::builder().method(back.method.as_str()).uri(&back.path);
    if navigate {
        req = req.header("sec-fetch-mode", "navigate");
    }
    if let Some(cookie) = &back.cookie {
        req = req.header(header::COOKIE, cookie);
    }
    let req = match &back.form {
        Some(form) => req
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.clone()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    app.raw(req).await
}

async fn sign_in(app: &TestApp, idp: &str) -> Response {
    let back = approve(&authorize_url(app, idp).await).await;
    callback(app, &back, false).await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    dnp_server::with_pool!(app.state.db(), pool => {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap()
    })
}

#[tokio::test]
async fn google_signs_in_creates_once_and_returns_to_the_same_account() {
    let (app, emu) = setup(IdpUser::verified("g-1", "Grace@Example.org")).await;
    let started = authorize_url(&app, "google").await;
    let q: std::collections::HashMap<String, String> =
        url::Url::parse(&started.url).unwrap().query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["nonce"].len() >= 22 && q["state"].len() >= 32, "{q:?}");
    assert_eq!(q["redirect_uri"], "http://127.0.0.1:9/api/v1/auth/oauth/google/callback");
    let back = approve(&started).await;
    let first = callback(&app, &back, false).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["user"]["email"], "grace@example.org");
    assert_eq!(first.body["user"]["email_verified"], true);
    let token = first.body["access_token"].as_str().unwrap();
    let me = app.get("/api/v1/me", token).await;
    assert_eq!(me.status, StatusCode::OK);
    let id = first.body["user"]["id"].as_str().unwrap().to_owned();

    let again = sign_in(&app, "google").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["user"]["id"], id.as_str());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM identities").await, 1);
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn a_local_account_is_linked_by_verified_email_not_duplicated() {
    let (app, emu) = setup(IdpUser::verified("g-2", "ada@example.org")).await;
    let (_, local_id) = app.register("ada@example.org").await;
    let google = sign_in(&app, "google").await;
    assert_eq!(google.status, StatusCode::OK, "{}", google.text);
    assert_eq!(google.body["user"]["id"], local_id.as_str());
    assert_eq!(google.body["user"]["email_verified"], true);
    // GitHub with the same verified address: the same account again, a second identity.
    emu.sign_in_github_as(IdpUser::verified("4242", "ada@example.org"));
    let github = sign_in(&app, "github").await;
    assert_eq!(github.status, StatusCode::OK, "{}", github.text);
    assert_eq!(github.body["user"]["id"], local_id.as_str());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM identities").await, 2);
    // The password still works too.
    let login = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ada@example.org", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(login.body["user"]["id"], local_id.as_str());
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn an_unverified_email_never_links_or_creates() {
    let mut user = IdpUser::verified("g-3", "bob@example.org");
    user.email_verified = false;
    let (app, emu) = setup(user).await;
    let (_, _) = app.register("bob@example.org").await;
    let r = sign_in(&app, "google").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(error_code(&r), "email_not_verified");
    // GitHub with no verified address either.
    let mut gh = IdpUser::verified("777", "bob@example.org");
    gh.github_emails = vec![("bob@example.org".into(), true, false)];
    emu.sign_in_github_as(gh);
    let r = sign_in(&app, "github").await;
    assert_eq!(error_code(&r), "email_not_verified", "{}", r.text);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM identities").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 1);
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn forged_id_tokens_are_refused() {
    let (app, emu) = setup(IdpUser::verified("g-4", "eve@example.org")).await;
    for idp in ["google", "apple"] {
        for forgery in [Forgery::WrongKey, Forgery::WrongAudience, Forgery::Expired, Forgery::WrongNonce] {
            emu.forge_next_id_token(forgery);
            let r = sign_in(&app, idp).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{idp} {forgery:?}: {}", r.text);
            assert_eq!(error_code(&r), "invalid_id_token", "{idp} {forgery:?}");
        }
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
    // And an honest one afterwards passes (the refusals were about the forgeries).
    assert_eq!(sign_in(&app, "google").await.status, StatusCode::OK);
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn a_state_is_single_use_and_must_be_known() {
    let (app, emu) = setup(IdpUser::verified("g-5", "sam@example.org")).await;
    let back = approve(&authorize_url(&app, "google").await).await;
    assert_eq!(callback(&app, &back, false).await.status, StatusCode::OK);
    let replay = callback(&app, &back, false).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.text);
    assert_eq!(error_code(&replay), "invalid_state");
    // A state issued for GitHub does not complete Google.
    let gh = approve(&authorize_url(&app, "github").await).await;
    let crossed = Back { path: gh.path.replace("/github/", "/google/"), ..gh.clone() };
    assert_eq!(error_code(&callback(&app, &crossed, false).await), "invalid_state");
    // A browser gets sent back to the sign-in page with the code.
    let nav = callback(&app, &back, true).await;
    assert_eq!(nav.status, StatusCode::SEE_OTHER);
    assert_eq!(nav.headers[header::LOCATION], "/signin?error=invalid_state");
    // The IdP's refusal.
    let denied = app.call("GET", "/api/v1/auth/oauth/google/callback?error=access_denied&state=x", None, None).await;
    assert_eq!(error_code(&denied), "authorization_denied");
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn a_browser_gets_cookies_and_the_dashboard() {
    let (app, emu) = setup(IdpUser::verified("g-6", "web@example.org")).await;
    let nav = Request::get("/api/v1/auth/oauth/google/authorize")
        .header("sec-fetch-mode", "navigate")
        .body(Body::empty())
        .unwrap();
    let r = app.raw(nav).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let url = r.headers[header::LOCATION].to_str().unwrap().to_owned();
    assert!(url.starts_with(emu.url()), "{url}");
    let cookie = binding_set_cookie(&r.headers).map(|(pair, _)| pair);
    let back = approve(&Started { url, cookie }).await;
    let done = callback(&app, &back, true).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    assert_eq!(done.headers[header::LOCATION], "/dashboard");
    let cookies: Vec<_> =
        done.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("dnp_access=") && c.contains("HttpOnly")), "{cookies:?}");
    assert!(cookies.iter().any(|c| c.starts_with("dnp_refresh=")));
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn github_private_email_is_found_through_user_emails() {
    let mut user = IdpUser::verified("9001", "unused@example.org");
    user.email = None; // the profile's email is private
    user.github_emails = vec![
        ("9001+octo@users.noreply.github.com".into(), false, true),
        ("old@example.org".into(), false, false),
        ("octo@example.org".into(), true, true),
    ];
    let (app, emu) = setup(user).await;
    let started = authorize_url(&app, "github").await;
    assert!(started.url.contains("code_challenge_method=S256"), "{}", started.url);
    let back = approve(&started).await;
    let r = callback(&app, &back, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["user"]["email"], "octo@example.org");
    let subject: String = dnp_server::with_pool!(app.state.db(), pool => {
        sqlx::query_scalar("SELECT subject FROM identities WHERE provider = 'github'").fetch_one(pool).await.unwrap()
    });
    assert_eq!(subject, "9001");
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn apple_form_post_with_a_private_relay_address() {
    let relay = "x7k2q9@privaterelay.appleid.com";
    let (app, emu) = setup(IdpUser::verified("001234.apple.5678", relay)).await;
    let started = authorize_url(&app, "apple").await;
    assert!(started.url.contains("response_mode=form_post"), "{}", started.url);
    let back = approve(&started).await;
    assert_eq!(back.method, "POST");
    assert!(back.form.as_deref().unwrap().contains("user="), "Apple sends the user JSON the first time");
    let first = callback(&app, &back, false).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["user"]["email"], relay);
    let id = first.body["user"]["id"].as_str().unwrap().to_owned();
    // The second time there is no user JSON; the identity still signs in.
    let back = approve(&authorize_url(&app, "apple").await).await;
    assert!(!back.form.as_deref().unwrap().contains("user="));
    let again = callback(&app, &back, false).await;
    assert_eq!(again.body["user"]["id"], id.as_str(), "{}", again.text);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 1);
    // Apple answers by form post only.
    let wrong = app.call("POST", "/api/v1/auth/oauth/google/callback", None, None).await;
    assert_eq!(error_code(&wrong), "invalid_callback");
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn an_account_with_totp_gets_the_mfa_challenge() {
    let (app, emu) = setup(IdpUser::verified("g-7", "t@example.org")).await;
    let (token, id) = app.register("t@example.org").await;
    let totp = enable_totp(&app, &token, "t@example.org").await;
    let r = sign_in(&app, "google").await;
    assert_eq!(r.body["mfa_required"], true, "{}", r.text);
    assert!(r.body.get("access_token").is_none());
    assert!(r.headers.get_all(header::SET_COOKIE).iter().all(|c| !c.to_str().unwrap().starts_with("dnp_access")));
    let mfa_token = r.body["mfa_token"].as_str().unwrap();
    let done = app
        .call(
            "POST",
            "/api/v1/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa_token, "code": totp.generate_current().to_string()})),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.body["user"]["id"], id.as_str());
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn an_unconfigured_identity_provider_is_not_offered() {
    let app = TestApp::new().await;
    let r = app.call("GET", "/api/v1/auth/oauth/google/authorize", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&r), "unknown_identity_provider");
    let r = app.call("GET", "/api/v1/auth/oauth/myspace/authorize", None, None).await;
    assert_eq!(error_code(&r), "unknown_identity_provider");
    let nav = Request::get("/api/v1/auth/oauth/apple/authorize")
        .header("sec-fetch-mode", "navigate")
        .body(Body::empty())
        .unwrap();
    let r = app.raw(nav).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/signin?error=unknown_identity_provider");
    app.cleanup().await;
}

#[test]
fn identity_provider_settings_name_the_variable() {
    let err = |vars: &[(&str, &str)]| {
        let mut all = vec![("SESSION_SECRET", common::SECRET)];
        all.extend_from_slice(vars);
        Config::from_lookup(Mode::Serve, |k| all.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
            .unwrap_err()
    };
    assert_eq!(err(&[("GOOGLE_CLIENT_ID", "x")]).var, "GOOGLE_CLIENT_SECRET");
    assert_eq!(err(&[("GITHUB_CLIENT_SECRET", "x")]).var, "GITHUB_CLIENT_ID");
    assert_eq!(err(&[("APPLE_SIGNIN_CLIENT_ID", "x")]).var, "APPLE_SIGNIN_TEAM_ID");
    let apple = [
        ("APPLE_SIGNIN_CLIENT_ID", "x"),
        ("APPLE_SIGNIN_TEAM_ID", "T"),
        ("APPLE_SIGNIN_KEY_ID", "K"),
        ("APPLE_SIGNIN_PRIVATE_KEY", "not a key"),
    ];
    assert_eq!(err(&apple).var, "APPLE_SIGNIN_PRIVATE_KEY");
    let bad_url = [("GITHUB_CLIENT_ID", "x"), ("GITHUB_CLIENT_SECRET", "y"), ("GITHUB_API_BASE_URL", "ftp://x")];
    assert_eq!(err(&bad_url).var, "GITHUB_API_BASE_URL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_offers_all_three_and_each_signs_into_the_demo_account() {
    use dnp_server::demo::{DEMO_EMAIL, DemoOptions};
    let demo = dnp_server::demo::start(DemoOptions {
        data_dir: None,
        bind: Some("127.0.0.1:0".parse().unwrap()),
        shape: Some(dnp_providers::emulator::LibraryShape::SMALL),
    })
    .await
    .expect("demo starts");
    let http = http();
    for idp in ["google", "apple", "github"] {
        // A browser: the button's link, the IdP, back to the server, then the dashboard.
        let r = http
            .get(format!("{}/api/v1/auth/oauth/{idp}/authorize", demo.url))
            .header("sec-fetch-mode", "navigate")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 302, "{idp}");
        let at_idp = r.headers()["location"].to_str().unwrap().to_owned();
        let binding = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.starts_with("dnp_oauth_binding=").then(|| c.split(';').next().unwrap().to_owned()))
            .expect("a binding cookie");
        let (method, path, form) = approve_url(&at_idp).await;
        let back = format!("{}{path}", demo.url);
        let req = if method == "POST" {
            http.post(back).header("content-type", "application/x-www-form-urlencoded").body(form.unwrap())
        } else {
            http.get(back)
        };
        let done = req.header("sec-fetch-mode", "navigate").header("cookie", binding).send().await.unwrap();
        assert_eq!(done.status().as_u16(), 303, "{idp}");
        assert_eq!(done.headers()["location"], "/dashboard", "{idp}");
        let access = done
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("dnp_access=").and_then(|c| c.split(';').next()).map(str::to_owned))
            .expect("an access cookie");
        let me: serde_json::Value =
            http.get(format!("{}/api/v1/me", demo.url)).bearer_auth(access).send().await.unwrap().json().await.unwrap();
        assert_eq!(me["email"], DEMO_EMAIL, "{idp}");
    }
    demo.shutdown().await;
}

#[tokio::test]
async fn an_expired_state_or_a_refused_code_is_an_error() {
    let (app, emu) = setup(IdpUser::verified("4243", "late@example.org")).await;
    // The state expired (10 minutes) before the user came back.
    let back = approve(&authorize_url(&app, "google").await).await;
    dnp_server::with_pool!(app.state.db(), pool => {
        sqlx::query("UPDATE oauth_states SET expires_at = 0").execute(pool).await.unwrap().rows_affected()
    });
    let late = callback(&app, &back, false).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{}", late.text);
    assert_eq!(error_code(&late), "invalid_state");
    // A code GitHub does not know (tampered on the way).
    let back = approve(&authorize_url(&app, "github").await).await;
    let tampered = Back { path: back.path.replacen("code=", "code=x", 1), ..back };
    let refused = callback(&app, &tampered, false).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(error_code(&refused), "invalid_code");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn the_jwks_is_kept_refetched_on_rotation_and_not_hammered() {
    let (app, emu) = setup(IdpUser::verified("g-8", "keys@example.org")).await;
    for idp in ["google", "google", "apple", "apple"] {
        let r = sign_in(&app, idp).await;
        assert_eq!(r.status, StatusCode::OK, "{idp}: {}", r.text);
    }
    assert_eq!(emu.jwks_requests(), 2, "one fetch per provider, then the kept set");
    // Tokens naming random key ids: one forced refetch, then refused without asking Apple.
    for _ in 0..5 {
        emu.forge_next_id_token(Forgery::UnknownKid);
        let r = sign_in(&app, "apple").await;
        assert_eq!(error_code(&r), "invalid_id_token", "{}", r.text);
    }
    assert_eq!(emu.jwks_requests(), 3);
    // Google rotates its key: the first sign-in after it refetches and succeeds.
    emu.rotate_signing_key().unwrap();
    let r = sign_in(&app, "google").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(emu.jwks_requests(), 4);
    assert_eq!(sign_in(&app, "google").await.status, StatusCode::OK);
    assert_eq!(emu.jwks_requests(), 4, "the rotated set is kept");
    // The JWKS endpoint is down: the kept set still verifies.
    emu.set_jwks_down(true);
    assert_eq!(sign_in(&app, "google").await.status, StatusCode::OK);
    assert_eq!(emu.jwks_requests(), 4);
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn a_provider_down_on_the_first_fetch_is_unavailable_not_invalid() {
    let (app, emu) = setup(IdpUser::verified("g-9", "down@example.org")).await;
    emu.set_jwks_down(true);
    let r = sign_in(&app, "google").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(error_code(&r), "identity_provider_unavailable");
    // Nothing was kept from the failure: once it answers, sign-in works.
    emu.set_jwks_down(false);
    assert_eq!(sign_in(&app, "google").await.status, StatusCode::OK);
    assert_eq!(emu.jwks_requests(), 2);
    emu.shutdown();
    app.cleanup().await;
}

/// Login CSRF: a sign-in someone else started (into their own account) cannot be completed
/// in another browser, by a link or Apple's cross-site form post.
#[tokio::test]
async fn a_sign_in_completes_only_in_the_browser_that_started_it() {
    let (app, emu) = setup(IdpUser::verified("g-10", "mallory@example.org")).await;
    for idp in ["google", "apple", "github"] {
        let victims_own = authorize_url(&app, idp).await.cookie;
        for cookie in [None, victims_own, Some("dnp_oauth_binding=forged".to_owned())] {
            // The attacker approves at the provider and hands the callback to the victim.
            let attackers = approve(&authorize_url(&app, idp).await).await;
            let in_victims_browser = Back { cookie: cookie.clone(), ..attackers.clone() };
            let r = callback(&app, &in_victims_browser, false).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{idp} {cookie:?}: {}", r.text);
            assert_eq!(error_code(&r), "oauth_state_mismatch", "{idp} {cookie:?}");
            assert!(
                r.headers.get_all(header::SET_COOKIE).iter().all(|c| !c.to_str().unwrap().starts_with("dnp_access"))
            );
            // The state is spent: not even the attacker's browser can use it now.
            let replay = callback(&app, &attackers, false).await;
            assert_eq!(error_code(&replay), "invalid_state", "{idp}");
        }
        // A browser is sent back to the sign-in page with the code.
        let attackers = approve(&authorize_url(&app, idp).await).await;
        let nav = callback(&app, &Back { cookie: None, ..attackers }, true).await;
        assert_eq!(nav.status, StatusCode::SEE_OTHER);
        assert_eq!(nav.headers[header::LOCATION], "/signin?error=oauth_state_mismatch");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sessions").await, 0);
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn the_binding_cookie_is_scoped_hashed_and_spent() {
    let (app, emu) = setup(IdpUser::verified("g-11", "cookie@example.org")).await;
    let attributes = async |idp: &str| {
        let req = Request::get(format!("/api/v1/auth/oauth/{idp}/authorize")).body(Body::empty()).unwrap();
        let r = app.raw(req).await;
        assert_eq!(r.status, StatusCode::FOUND);
        binding_set_cookie(&r.headers).unwrap()
    };
    let (_, apple) = attributes("apple").await;
    for want in ["Path=/api/v1/auth/oauth/apple", "Max-Age=600", "SameSite=None", "HttpOnly", "Secure"] {
        assert!(apple.contains(want), "Apple's form post is cross-site: {want} in {apple}");
    }
    let (_, google) = attributes("google").await;
    for want in ["Path=/api/v1/auth/oauth/google", "SameSite=Lax", "HttpOnly"] {
        assert!(google.contains(want), "{want} in {google}");
    }
    assert!(!google.contains("Secure"), "PUBLIC_BASE_URL is http: {google}");
    // Only the value's SHA-256 is kept.
    let started = authorize_url(&app, "github").await;
    let value = started.cookie.as_deref().unwrap().strip_prefix("dnp_oauth_binding=").unwrap().to_owned();
    assert!(value.len() >= 43, "{value}");
    let kept: i64 = dnp_server::with_pool!(app.state.db(), pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM oauth_states WHERE binding_hash = $1")
            .bind(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(value.as_bytes())))
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(kept, 1);
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM oauth_states WHERE binding_hash = '{value}'")).await, 0);
    // The callback spends the cookie.
    let done = callback(&app, &approve(&started).await, false).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let (pair, cleared) = binding_set_cookie(&done.headers).expect("the callback clears the cookie");
    assert_eq!(pair, "dnp_oauth_binding=");
    assert!(cleared.contains("Max-Age=0") && cleared.contains("Path=/api/v1/auth/oauth/github"), "{cleared}");
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn apple_names_the_account_on_its_first_authorization_only() {
    let (app, emu) = setup(IdpUser::verified("001.apple.1", "ada@example.org")).await;
    let first = sign_in(&app, "apple").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["user"]["display_name"], "Ada Lovelace");
    let token = first.body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/me", token).await.body["display_name"], "Ada Lovelace");
    // Later authorizations carry no name; the account keeps it.
    let back = approve(&authorize_url(&app, "apple").await).await;
    assert!(!back.form.as_deref().unwrap().contains("user="));
    let again = callback(&app, &back, false).await;
    assert_eq!(again.body["user"]["display_name"], "Ada Lovelace", "{}", again.text);
    // Another provider with another name links to the same account without renaming it.
    let mut google = IdpUser::verified("g-12", "ada@example.org");
    google.name = Some("Augusta King".into());
    emu.sign_in_google_as(google);
    let linked = sign_in(&app, "google").await;
    assert_eq!(linked.body["user"]["id"], first.body["user"]["id"]);
    assert_eq!(linked.body["user"]["display_name"], "Ada Lovelace");

    // A password account has no name until an identity provider gives one.
    let (token, _) = app.register("bob@example.org").await;
    assert_eq!(app.get("/api/v1/me", &token).await.body["display_name"], serde_json::Value::Null);
    emu.sign_in_apple_as(IdpUser::verified("001.apple.2", "bob@example.org"));
    let back = approve(&authorize_url(&app, "apple").await).await;
    // The `user` field is not signed: whatever comes is cleaned and bounded.
    let hostile = json!({"name": {"firstName": "Bob\u{0}\u{202e}", "lastName": format!("<b>{}", "y".repeat(500))}});
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            url::form_urlencoded::parse(back.form.as_deref().unwrap().as_bytes())
                .into_owned()
                .map(|(k, v)| if k == "user" { (k, hostile.to_string()) } else { (k, v) }),
        )
        .finish();
    let r = callback(&app, &Back { form: Some(form), ..back }, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let name = r.body["user"]["display_name"].as_str().unwrap();
    assert!(name.starts_with("Bob <b>yyy"), "{name}");
    assert_eq!(name.chars().count(), 100);
    assert_eq!(app.get("/api/v1/me", &token).await.body["display_name"], name);
    emu.shutdown();
    app.cleanup().await;
}

#[tokio::test]
async fn google_and_github_names_name_new_accounts() {
    let (app, emu) = setup(IdpUser::verified("g-13", "grace@example.org")).await;
    let r = sign_in(&app, "google").await;
    assert_eq!(r.body["user"]["display_name"], "Ada Lovelace", "{}", r.text);
    let mut gh = IdpUser::verified("5150", "hopper@example.org");
    gh.name = None;
    emu.sign_in_github_as(gh);
    let r = sign_in(&app, "github").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["user"]["display_name"], serde_json::Value::Null);
    emu.shutdown();
    app.cleanup().await;
}

/// Turns on TOTP for the account of `token` and returns the generator.
async fn enable_totp(app: &TestApp, token: &str, email: &str) -> totp_rs::Totp {
    let setup = app.call("POST", "/api/v1/auth/mfa/setup", Some(token), None).await;
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap())
        .with_account_name(email)
        .build()
        .unwrap();
    let ok = app.post("/api/v1/auth/mfa/verify", token, json!({"code": totp.generate_current().to_string()})).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.text);
    totp
}

async fn oauth_mfa_verify(app: &TestApp, cookie: Option<&str>, code: &str) -> Response {
    let mut req = Request::post("/api/v1/auth/oauth/mfa/verify").header(header::CONTENT_TYPE, "application/json");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    app.raw(req.body(Body::from(json!({ "code": code }).to_string())).unwrap()).await
}

fn set_cookies(r: &Response) -> Vec<String> {
    r.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_browser_with_totp_enters_only_the_code_after_an_identity_provider() {
    let (app, emu) = setup(IdpUser::verified("g-14", "two@example.org")).await;
    let (password_token, id) = app.register("two@example.org").await;
    let totp = enable_totp(&app, &password_token, "two@example.org").await;
    emu.sign_in_apple_as(IdpUser::verified("001.apple.3", "two@example.org"));
    for idp in ["google", "apple"] {
        let back = approve(&authorize_url(&app, idp).await).await;
        let r = callback(&app, &back, true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{idp}: {}", r.text);
        assert_eq!(r.headers[header::LOCATION], "/signin?step=mfa", "{idp}: the step token is not in the URL");
        let cookies = set_cookies(&r);
        assert!(cookies.iter().all(|c| !c.starts_with("dnp_access") && !c.starts_with("dnp_refresh")), "{cookies:?}");
        let step = cookies.iter().find(|c| c.starts_with("dnp_oauth_mfa=")).expect("the step cookie").clone();
        for want in ["Path=/api/v1/auth/oauth/mfa", "Max-Age=300", "HttpOnly", "SameSite=Lax"] {
            assert!(step.contains(want), "{want} in {step}");
        }
        let pair = step.split(';').next().unwrap().to_owned();

        // Without the cookie, or with a token that is not a step token: refused.
        let none = oauth_mfa_verify(&app, None, &totp.generate_current().to_string()).await;
        assert_eq!((none.status, error_code(&none)), (StatusCode::UNAUTHORIZED, "invalid_mfa_token"));
        let access = format!("dnp_oauth_mfa={password_token}");
        let wrong_kind = oauth_mfa_verify(&app, Some(&access), &totp.generate_current().to_string()).await;
        assert_eq!(error_code(&wrong_kind), "invalid_mfa_token", "{}", wrong_kind.text);
        // A wrong code: refused, and the step stays for another try.
        let current: u32 = totp.generate_current().to_string().parse().unwrap();
        let wrong = oauth_mfa_verify(&app, Some(&pair), &format!("{:06}", (current + 500_000) % 1_000_000)).await;
        assert_eq!((wrong.status, error_code(&wrong)), (StatusCode::UNAUTHORIZED, "invalid_totp"), "{}", wrong.text);
        assert!(set_cookies(&wrong).is_empty());
        // The right code signs in, with the session cookies, and spends the step cookie.
        let done = oauth_mfa_verify(&app, Some(&pair), &totp.generate_current().to_string()).await;
        assert_eq!(done.status, StatusCode::OK, "{idp}: {}", done.text);
        assert_eq!(done.body["user"]["id"], id.as_str());
        let cookies = set_cookies(&done);
        assert!(cookies.iter().any(|c| c.starts_with("dnp_access=") && c.contains("HttpOnly")), "{cookies:?}");
        assert!(cookies.iter().any(|c| c.starts_with("dnp_oauth_mfa=;") && c.contains("Max-Age=0")), "{cookies:?}");
        let me = app.get("/api/v1/me", done.body["access_token"].as_str().unwrap()).await;
        assert_eq!(me.body["id"], id.as_str());
    }
    emu.shutdown();
    app.cleanup().await;
}
