//! The web UI, and the index at `/`.
//!
//! The UI is a small single-page application of plain ES modules (no build step, nothing
//! fetched from elsewhere at run time). Its files live in `dnp-server-example/web/` and are
//! embedded into the binary. Every page path (`/dashboard`, `/dnp`, …) answers the same HTML
//! shell; the script draws the page from the JSON API under `/api/v1`, authenticated by the
//! HttpOnly access cookie the login sets, echoing the CSRF cookie on unsafe requests.
//!
//! `/` negotiates: a browser (`Accept: text/html`) gets the UI; any other client gets the
//! JSON index that says where the API, its OpenAPI document and the health check are.
//!
//! `/connect/apple-music` is the MusicKit page Apple Music's connect flow points at
//! (`APPLE_MUSIC_CONNECT_URL`): it loads MusicKit JS from Apple (`APPLE_MUSICKIT_JS_URL`,
//! default [`MUSICKIT_JS_URL`]), asks the listener to allow access, and sends the Music User
//! Token back to the server's callback with the `state`. The demo points Apple Music's
//! connect URL at the emulator's stand-in instead, so it needs neither Apple nor this page.
//!
//! [`browser_landing`] turns a browser's arrival at the OAuth callback of a music service
//! (a JSON API route) into a redirect to the dashboard, which says what happened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dnp_providers::apple_music::{AppleMusicConfig, DeveloperTokenSigner};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// The paths that answer the UI's HTML shell.
const PAGES: &[&str] = &[
    "/signin",
    "/dashboard",
    "/dnp",
    "/enforce",
    "/history",
    "/history/{id}",
    "/analytics",
    "/notifications",
    "/settings",
];

/// The HTML shell.
const INDEX_HTML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/index.html"));

/// An embedded file of the UI.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `/assets/`.
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/ui.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/progress.js", JS),
    asset!("js/pages/signin.js", JS),
    asset!("js/pages/dashboard.js", JS),
    asset!("js/pages/dnp.js", JS),
    asset!("js/pages/enforce.js", JS),
    asset!("js/pages/history.js", JS),
    asset!("js/pages/analytics.js", JS),
    asset!("js/pages/notifications.js", JS),
    asset!("js/pages/settings.js", JS),
    asset!("js/connect-apple-music.js", JS),
];

/// The content security policy of the UI's pages: everything from this origin, nothing
/// inline, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
        .route(AppleMusicConfig::CONNECT_PATH, get(connect_apple_music));
    for page in PAGES {
        router = router.route(page, get(page_html));
    }
    router
}

/// Whether the client asked for HTML (a browser) rather than JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html")))
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if wants_html(&headers) {
        return html_shell();
    }
    let base = &state.config().public_base_url;
    let providers: Vec<Value> =
        state.providers().iter().map(|(id, e)| json!({"id": id, "display_name": e.display_name})).collect();
    let mut response = Json(json!({
        "name": "dnp",
        "description": "One Do-Not-Play list, enforced on your music libraries with a preview before and an undo after.",
        "version": env!("CARGO_PKG_VERSION"),
        "api": format!("{base}/api/v1"),
        "openapi": format!("{base}/api/v1/openapi.json"),
        "health": format!("{base}/health"),
        "web": format!("{base}/"),
        "providers": providers,
        "sign_in_with": sign_in_with(&state.config().identity_providers),
    }))
    .into_response();
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// The identity providers this server is configured for, in the order the sign-in page
/// shows them: a button appears only where signing in can work.
fn sign_in_with(providers: &crate::idp::IdentityProviders) -> Vec<&'static str> {
    use crate::idp::Idp;
    [Idp::Google, Idp::Apple, Idp::GitHub].into_iter().filter(|idp| providers.offers(*idp)).map(Idp::as_str).collect()
}

async fn page_html() -> Response {
    html_shell()
}

fn html_shell() -> Response {
    html_response(INDEX_HTML.to_owned(), CSP)
}

fn html_response(body: String, csp: &str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// Strong ETags of the embedded files, computed once.
fn etags() -> &'static HashMap<&'static str, String> {
    static ETAGS: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                (a.path, format!("\"{}\"", hex::encode(&digest[..12])))
            })
            .collect()
    })
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return crate::error::ApiError::not_found("asset_not_found", "no such file of the web UI").into_response();
    };
    let etag = etags().get(asset.path).cloned().unwrap_or_default();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}

/// Where MusicKit JS is loaded from unless `APPLE_MUSICKIT_JS_URL` says otherwise.
pub const MUSICKIT_JS_URL: &str = "https://js-cdn.music.apple.com/musickit/v3/musickit.js";

/// `APPLE_MUSICKIT_JS_URL` (an absolute http(s) URL), else [`MUSICKIT_JS_URL`].
fn musickit_js_url(lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let Some(raw) = lookup("APPLE_MUSICKIT_JS_URL").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(MUSICKIT_JS_URL.to_owned());
    };
    match origin_of(&raw) {
        Some(_) if !raw.contains(['"', '<', '>', '\'', ' ']) => Ok(raw),
        _ => Err(format!("APPLE_MUSICKIT_JS_URL must be an absolute http(s) URL, not {raw:?}")),
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL.
fn origin_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let host_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if host_len == 0 {
        return None;
    }
    Some(&url[..url.len() - rest.len() + host_len])
}

/// `?state=&redirect_uri=` as Apple Music's `authorization_request` builds them.
#[derive(Deserialize)]
struct ConnectQuery {
    state: Option<String>,
    redirect_uri: Option<String>,
}

/// Developer-token signers by team and key id (one per configuration, kept for its cache).
fn signer(config: &AppleMusicConfig) -> Result<Arc<DeveloperTokenSigner>, String> {
    static SIGNERS: OnceLock<Mutex<HashMap<String, Arc<DeveloperTokenSigner>>>> = OnceLock::new();
    let key = format!("{}/{}", config.team_id, config.key_id);
    let mut map = SIGNERS.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(s) = map.get(&key) {
        return Ok(s.clone());
    }
    let s = Arc::new(DeveloperTokenSigner::new(config).map_err(|e| e.to_string())?);
    map.insert(key, s.clone());
    Ok(s)
}

/// The MusicKit page: where Apple Music's connect flow sends the browser.
async fn connect_apple_music(State(state): State<AppState>, Query(q): Query<ConnectQuery>) -> Response {
    let base = state.config().public_base_url.trim_end_matches('/').to_owned();
    let page = |status: StatusCode, title: &str, text: &str| {
        let mut r = html_response(simple_page(title, text), CSP);
        *r.status_mut() = status;
        r
    };
    let Some(config) = state.config().providers.apple_music.as_ref() else {
        return page(
            StatusCode::NOT_FOUND,
            "Apple Music is not set up here",
            "This server has no MusicKit key (APPLE_MUSIC_TEAM_ID, APPLE_MUSIC_KEY_ID, APPLE_MUSIC_PRIVATE_KEY), so Apple Music cannot be connected through it.",
        );
    };
    let Some(oauth_state) = q.state.filter(|s| {
        !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Start again from the dashboard",
            "This page needs the request dnp makes when you press “Connect Apple Music” on the dashboard.",
        );
    };
    let script = match musickit_js_url(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the MusicKit page cannot be served");
            return page(StatusCode::SERVICE_UNAVAILABLE, "Apple Music is misconfigured", &e);
        }
    };
    let token = match signer(config).and_then(|s| s.token().map_err(|e| e.to_string())) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "no Apple Music developer token for the MusicKit page");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Apple Music is unavailable",
                "The server cannot sign an Apple Music developer token; its operator has been told in the log.",
            );
        }
    };
    let default_callback = format!("{base}/api/v1/connections/apple_music/callback");
    // The token goes only to this server: any other redirect_uri is ignored.
    let redirect =
        q.redirect_uri.filter(|r| r.starts_with(&format!("{base}/")) && r.len() <= 512).unwrap_or(default_callback);
    let body = musickit_page(&script, token.expose_secret(), &oauth_state, &redirect);
    html_response(body, &musickit_csp(&script))
}

/// The page's CSP: this origin, MusicKit's script origin, and Apple's API and sign-in pages.
fn musickit_csp(script_url: &str) -> String {
    let script_origin = origin_of(script_url).unwrap_or("'none'");
    format!(
        "default-src 'self'; script-src 'self' {script_origin}; style-src 'self' 'unsafe-inline' {script_origin}; \
         img-src 'self' data: https:; connect-src 'self' {script_origin} https://*.apple.com; \
         frame-src {script_origin} https://*.apple.com; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page_head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · dnp</title>\n<link rel=\"icon\" href=\"/assets/icon.svg\" type=\"image/svg+xml\">\n<link rel=\"stylesheet\" href=\"/assets/app.css\">\n",
        escape_html(title)
    )
}

fn simple_page(title: &str, text: &str) -> String {
    format!(
        "{}</head>\n<body>\n<main id=\"main\"><div class=\"auth\"><h1>{}</h1><p>{}</p><p><a class=\"btn\" href=\"/dashboard\">Back to the dashboard</a></p></div></main>\n</body>\n</html>\n",
        page_head(title),
        escape_html(title),
        escape_html(text)
    )
}

fn musickit_page(script_url: &str, developer_token: &str, oauth_state: &str, redirect: &str) -> String {
    let config = json!({
        "developer_token": developer_token,
        "state": oauth_state,
        "redirect_uri": redirect,
        "version": env!("CARGO_PKG_VERSION"),
    })
    .to_string()
    .replace('<', "\\u003c");
    format!(
        "{head}<script type=\"application/json\" id=\"musickit-config\">{config}</script>\n\
         <script type=\"module\" src=\"/assets/js/connect-apple-music.js\"></script>\n\
         <script src=\"{script}\" async></script>\n</head>\n<body>\n\
         <main id=\"main\"><div class=\"auth\">\n<h1>Connect Apple Music</h1>\n\
         <p>dnp uses Apple’s MusicKit to ask for access to your Apple Music library. Press the button, sign in with your Apple Account and allow access. You come back to dnp afterwards.</p>\n\
         <p><button type=\"button\" class=\"btn\" id=\"authorize\" disabled>Connect Apple Music</button></p>\n\
         <p id=\"status\" role=\"status\" class=\"muted\">Loading MusicKit…</p>\n\
         <p><a href=\"/dashboard\">Cancel</a></p>\n</div></main>\n</body>\n</html>\n",
        head = page_head("Connect Apple Music"),
        script = escape_html(script_url),
    )
}

/// The provider of `/api/v1/connections/{provider}/callback`, when `path` is one.
fn callback_provider(path: &str) -> Option<&str> {
    let provider = path.strip_prefix("/api/v1/connections/")?.strip_suffix("/callback")?;
    (!provider.is_empty() && provider.len() <= 64 && provider.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(provider)
}

/// Middleware for the whole application: when a browser navigates to a music service's
/// OAuth callback (`Sec-Fetch-Mode: navigate`, which API clients do not send), the API
/// handles it as usual and the browser is then sent to the dashboard with
/// `?connected={provider}` or `?connect_error={code}&provider={provider}`, instead of
/// being left on a JSON document. Every other request passes through untouched.
pub(crate) async fn browser_landing(req: Request, next: Next) -> Response {
    let navigation = req.method() == Method::GET
        && req.headers().get("sec-fetch-mode").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"navigate"));
    let provider = match callback_provider(req.uri().path()) {
        Some(p) if navigation => p.to_owned(),
        _ => return next.run(req).await,
    };
    let response = next.run(req).await;
    let location = if response.status().is_success() {
        format!("/dashboard?connected={provider}")
    } else {
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .unwrap_or_else(|| "connect_failed".to_owned());
        format!("/dashboard?connect_error={code}&provider={provider}")
    };
    let mut redirect = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        redirect.headers_mut().insert(header::LOCATION, v);
    }
    redirect.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    redirect
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_and_clients_json() {
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_html(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"));
        assert!(wants_html(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!wants_html(&h));
    }

    #[test]
    fn only_callback_paths_name_a_provider() {
        assert_eq!(callback_provider("/api/v1/connections/spotify/callback"), Some("spotify"));
        assert_eq!(callback_provider("/api/v1/connections/youtube_music/callback"), Some("youtube_music"));
        assert_eq!(callback_provider("/api/v1/connections/spotify/authorize"), None);
        assert_eq!(callback_provider("/api/v1/connections//callback"), None);
        assert_eq!(callback_provider("/api/v1/connections/a%2Fb/callback"), None);
        assert_eq!(callback_provider("/api/v1/connections/x/y/callback"), None);
    }

    /// Regression: every button showed, configured or not, and led to an error page.
    #[test]
    fn only_configured_identity_providers_are_offered() {
        let none = crate::idp::IdentityProviders::from_lookup(&|_: &str| None).unwrap();
        assert!(sign_in_with(&none).is_empty());
        let google_only = crate::idp::IdentityProviders::from_lookup(&|k: &str| match k {
            "GOOGLE_CLIENT_ID" => Some("client".to_owned()),
            "GOOGLE_CLIENT_SECRET" => Some("secret".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(sign_in_with(&google_only), ["google"]);
    }

    #[test]
    fn the_musickit_script_url_is_configurable_and_checked() {
        assert_eq!(musickit_js_url(|_| None).unwrap(), MUSICKIT_JS_URL);
        let custom = |v: &'static str| move |k: &str| (k == "APPLE_MUSICKIT_JS_URL").then(|| v.to_owned());
        assert_eq!(
            musickit_js_url(custom("http://127.0.0.1:9/musickit.js")).unwrap(),
            "http://127.0.0.1:9/musickit.js"
        );
        assert_eq!(musickit_js_url(custom("  ")).unwrap(), MUSICKIT_JS_URL);
        for bad in ["musickit.js", "ftp://x/y.js", "https:///y.js", "https://x/\"><script>"] {
            let err = musickit_js_url(custom(bad)).unwrap_err();
            assert!(err.contains("APPLE_MUSICKIT_JS_URL"), "{bad}: {err}");
        }
        assert_eq!(
            origin_of("https://js-cdn.music.apple.com/musickit/v3/musickit.js"),
            Some("https://js-cdn.music.apple.com")
        );
        assert_eq!(origin_of("http://127.0.0.1:9"), Some("http://127.0.0.1:9"));
        assert!(musickit_csp(MUSICKIT_JS_URL).contains("script-src 'self' https://js-cdn.music.apple.com;"));
    }

    #[test]
    fn the_musickit_page_embeds_its_values_safely() {
        let page = musickit_page("https://cdn.example/m.js?a=1&b=2", "tok</script><b>", "st-1", "http://x/cb");
        assert!(page.contains(r#"<script src="https://cdn.example/m.js?a=1&amp;b=2" async>"#));
        assert!(!page.contains("tok</script>"), "the token cannot close the data block");
        assert!(page.contains(r#""developer_token":"tok\u003c/script>\u003cb>""#));
        assert!(page.contains(r#""state":"st-1""#));
        assert!(page.contains("/assets/js/connect-apple-music.js"));
    }

    #[test]
    fn every_asset_is_embedded_once_with_its_type() {
        let mut seen = std::collections::HashSet::new();
        for a in ASSETS {
            assert!(seen.insert(a.path), "{} listed twice", a.path);
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            if a.path.ends_with(".js") {
                assert_eq!(a.content_type, JS);
            }
        }
        assert!(INDEX_HTML.contains("/assets/js/main.js"));
    }
}
