//! A small in-process stand-in for Google's, Apple's and GitHub's sign-in endpoints, for the
//! tests and `dnp-server demo`: authorization (approving at once as the configured user),
//! the token endpoints, the JWKS (a P-256 key made at start, rotatable; ID tokens are ES256) and
//! GitHub's `/user` and `/user/emails`.
//!
//! One listener serves all three under their own prefixes; [`IdpEmulator::env_vars`] gives
//! the settings that point the server at it.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::crypto::{random_bytes, random_token};

/// A person signed in at an emulated identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpUser {
    /// The provider's user id (`sub`; for GitHub a number).
    pub subject: String,
    /// The email address in the ID token (for GitHub: the public profile email, if any).
    pub email: Option<String>,
    /// Whether the provider verified it.
    pub email_verified: bool,
    /// The name.
    pub name: Option<String>,
    /// GitHub: the addresses `/user/emails` lists as (address, primary, verified).
    pub github_emails: Vec<(String, bool, bool)>,
}

impl IdpUser {
    /// A user with a verified address.
    pub fn verified(subject: impl Into<String>, email: impl Into<String>) -> Self {
        let email = email.into();
        Self {
            subject: subject.into(),
            github_emails: vec![(email.clone(), true, true)],
            email: Some(email),
            email_verified: true,
            name: Some("Ada Lovelace".into()),
        }
    }
}

/// A way to spoil the next ID token, to check the server refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed with a key that is not in the JWKS (same `kid`).
    WrongKey,
    /// For another client.
    WrongAudience,
    /// Expired an hour ago.
    Expired,
    /// With a nonce the server did not send.
    WrongNonce,
    /// Naming a random `kid` that is in no JWKS.
    UnknownKid,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
enum Which {
    Google,
    Apple,
    GitHub,
}

struct Grant {
    which: Which,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    user: IdpUser,
}

/// The signing key and the published JWKS.
struct Keys {
    kid: String,
    signing: EncodingKey,
    /// Newest first; a rotation keeps the previous key published.
    published: Vec<Value>,
}

impl Keys {
    fn new() -> io::Result<Self> {
        let (private, _, x, y) = p256_key()?;
        let kid = random_token(8);
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"});
        Ok(Self { kid, signing: encoding(&private)?, published: vec![jwk] })
    }
}

struct Shared {
    base: String,
    keys: Mutex<Keys>,
    stranger: EncodingKey,
    jwks_requests: AtomicUsize,
    jwks_cache_control: Mutex<Option<String>>,
    jwks_down: AtomicBool,
    google_client: (String, String),
    github_client: (String, String),
    apple_client_id: String,
    apple_team_id: String,
    apple_key_id: String,
    apple_team_private: SecretString,
    apple_team_public: DecodingKey,
    users: Mutex<HashMap<Which, IdpUser>>,
    grants: Mutex<HashMap<String, Grant>>,
    github_tokens: Mutex<HashMap<String, IdpUser>>,
    apple_seen: Mutex<HashSet<String>>,
    forge: Mutex<Option<Forgery>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A P-256 key: (PKCS#8 private PEM, SPKI public PEM, x, y).
fn p256_key() -> io::Result<(String, String, String, String)> {
    loop {
        let bytes = random_bytes(32);
        let Ok(secret) = p256::SecretKey::from_slice(&bytes) else { continue };
        let private = secret.to_pkcs8_pem(LineEnding::LF).map_err(io::Error::other)?.to_string();
        let public = secret.public_key().to_public_key_pem(LineEnding::LF).map_err(io::Error::other)?;
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else { continue };
        return Ok((private, public, URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y)));
    }
}

fn encoding(pem: &str) -> io::Result<EncodingKey> {
    EncodingKey::from_ec_pem(pem.as_bytes()).map_err(io::Error::other)
}

/// The running emulator.
pub struct IdpEmulator {
    url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for IdpEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpEmulator").field("url", &self.url).finish_non_exhaustive()
    }
}

impl IdpEmulator {
    /// Starts the emulator on a free port of 127.0.0.1, signing in everyone as `user`.
    ///
    /// # Errors
    /// When no port can be bound or no key made.
    pub async fn start(user: IdpUser) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        // A path of its own, so that nothing kept by URL (the server's JWKS cache) carries over
        // from an earlier emulator that had the same port.
        let prefix = format!("/{}", random_token(6).replace(['-', '_'], "x"));
        let url = format!("http://{}{prefix}", listener.local_addr()?);
        let (stranger, _, _, _) = p256_key()?;
        let (team_private, team_public, _, _) = p256_key()?;
        let users = [Which::Google, Which::Apple, Which::GitHub].into_iter().map(|w| (w, user.clone())).collect();
        let shared = Arc::new(Shared {
            base: url.clone(),
            keys: Mutex::new(Keys::new()?),
            stranger: encoding(&stranger)?,
            jwks_requests: AtomicUsize::new(0),
            jwks_cache_control: Mutex::new(Some("public, max-age=3600".into())),
            jwks_down: AtomicBool::new(false),
            google_client: (format!("{}.apps.example", random_token(6)), random_token(24)),
            github_client: (random_token(10), random_token(24)),
            apple_client_id: "org.dnp.signin".into(),
            apple_team_id: "EMUTEAM001".into(),
            apple_key_id: "EMUKEY0001".into(),
            apple_team_private: SecretString::from(team_private),
            apple_team_public: DecodingKey::from_ec_pem(team_public.as_bytes()).map_err(io::Error::other)?,
            users: Mutex::new(users),
            grants: Mutex::new(HashMap::new()),
            github_tokens: Mutex::new(HashMap::new()),
            apple_seen: Mutex::new(HashSet::new()),
            forge: Mutex::new(None),
        });
        let routes = Router::new()
            .route("/google/o/oauth2/v2/auth", get(authorize_google))
            .route("/google/token", post(token_google))
            .route("/google/oauth2/v3/certs", get(jwks))
            .route("/apple/auth/authorize", get(authorize_apple))
            .route("/apple/auth/token", post(token_apple))
            .route("/apple/auth/keys", get(jwks))
            .route("/github/login/oauth/authorize", get(authorize_github))
            .route("/github/login/oauth/access_token", post(token_github))
            .route("/github-api/user", get(github_user))
            .route("/github-api/user/emails", get(github_emails))
            .with_state(shared.clone());
        let app = Router::new().nest(&prefix, routes);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self { url, shared, stop: Some(stop) })
    }

    /// The emulator's base URL (`http://127.0.0.1:{port}/{random}`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The settings that point a server at this emulator (Google, Apple and GitHub).
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        let s = &self.shared;
        vec![
            ("GOOGLE_CLIENT_ID", s.google_client.0.clone()),
            ("GOOGLE_CLIENT_SECRET", s.google_client.1.clone()),
            ("GOOGLE_OIDC_ISSUER", format!("{}/google", s.base)),
            ("APPLE_SIGNIN_CLIENT_ID", s.apple_client_id.clone()),
            ("APPLE_SIGNIN_TEAM_ID", s.apple_team_id.clone()),
            ("APPLE_SIGNIN_KEY_ID", s.apple_key_id.clone()),
            ("APPLE_SIGNIN_PRIVATE_KEY", s.apple_team_private.expose_secret().to_owned()),
            ("APPLE_ID_BASE_URL", format!("{}/apple", s.base)),
            ("GITHUB_CLIENT_ID", s.github_client.0.clone()),
            ("GITHUB_CLIENT_SECRET", s.github_client.1.clone()),
            ("GITHUB_OAUTH_BASE_URL", format!("{}/github", s.base)),
            ("GITHUB_API_BASE_URL", format!("{}/github-api", s.base)),
        ]
    }

    /// Signs in as `user` at Google from now on.
    pub fn sign_in_google_as(&self, user: IdpUser) {
        lock(&self.shared.users).insert(Which::Google, user);
    }

    /// Signs in as `user` at Apple from now on.
    pub fn sign_in_apple_as(&self, user: IdpUser) {
        lock(&self.shared.users).insert(Which::Apple, user);
    }

    /// Signs in as `user` at GitHub from now on.
    pub fn sign_in_github_as(&self, user: IdpUser) {
        lock(&self.shared.users).insert(Which::GitHub, user);
    }

    /// Spoils the next ID token (Google or Apple) in the way given.
    pub fn forge_next_id_token(&self, forgery: Forgery) {
        *lock(&self.shared.forge) = Some(forgery);
    }

    /// How many times the JWKS (Google's or Apple's) was fetched.
    pub fn jwks_requests(&self) -> usize {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }

    /// The `Cache-Control` of JWKS answers (default `public, max-age=3600`; `None`: no header).
    pub fn set_jwks_cache_control(&self, value: Option<&str>) {
        *lock(&self.shared.jwks_cache_control) = value.map(str::to_owned);
    }

    /// Whether the JWKS answers 503 (the provider is down).
    pub fn set_jwks_down(&self, down: bool) {
        self.shared.jwks_down.store(down, Ordering::SeqCst);
    }

    /// Rotates the signing key: ID tokens are signed from now on with a new key under a new
    /// `kid`, published in the JWKS beside the previous one. Returns the new `kid`.
    ///
    /// # Errors
    /// When no key can be made.
    pub fn rotate_signing_key(&self) -> io::Result<String> {
        let next = Keys::new()?;
        let mut keys = lock(&self.shared.keys);
        let mut published = next.published;
        published.extend(keys.published.drain(..).take(1));
        *keys = Keys { kid: next.kid, signing: next.signing, published };
        Ok(keys.kid.clone())
    }

    /// Stops the listener.
    pub fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for IdpEmulator {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

type Params = Query<HashMap<String, String>>;

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({"error": error}))).into_response()
}

/// An OAuth error answer: status and `error` code.
type Refusal = (StatusCode, &'static str);

fn refuse((status, error): Refusal) -> Response {
    oauth_error(status, error)
}

fn start_grant(s: &Shared, which: Which, q: &HashMap<String, String>, client_id: &str) -> Result<String, Refusal> {
    if q.get("client_id").map(String::as_str) != Some(client_id) {
        return Err((StatusCode::BAD_REQUEST, "invalid_client"));
    }
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| r.starts_with("http")) else {
        return Err((StatusCode::BAD_REQUEST, "invalid_request"));
    };
    let challenge = match (q.get("code_challenge"), q.get("code_challenge_method").map(String::as_str)) {
        (Some(c), Some("S256")) => Some(c.clone()),
        (None, None) => None,
        _ => return Err((StatusCode::BAD_REQUEST, "invalid_request")),
    };
    let user = lock(&s.users).get(&which).cloned().ok_or((StatusCode::FORBIDDEN, "access_denied"))?;
    let code = random_token(24);
    let grant = Grant { which, redirect_uri: redirect_uri.clone(), nonce: q.get("nonce").cloned(), challenge, user };
    lock(&s.grants).insert(code.clone(), grant);
    Ok(code)
}

fn redirect_with_code(q: &HashMap<String, String>, code: &str) -> Response {
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let mut params = vec![("code", code.to_owned())];
    if let Some(state) = q.get("state") {
        params.push(("state", state.clone()));
    }
    match url::Url::parse_with_params(&redirect, &params) {
        Ok(u) => (StatusCode::FOUND, [(header::LOCATION, u.to_string())]).into_response(),
        Err(_) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
    }
}

async fn authorize_google(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    if q.get("response_type").map(String::as_str) != Some("code") || !q.contains_key("nonce") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    match start_grant(&s, Which::Google, &q, &s.google_client.0) {
        Ok(code) => redirect_with_code(&q, &code),
        Err(r) => refuse(r),
    }
}

async fn authorize_github(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    match start_grant(&s, Which::GitHub, &q, &s.github_client.0) {
        Ok(code) => redirect_with_code(&q, &code),
        Err(r) => refuse(r),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

async fn authorize_apple(State(s): State<Arc<Shared>>, Query(q): Params) -> Response {
    if q.get("response_mode").map(String::as_str) != Some("form_post") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let code = match start_grant(&s, Which::Apple, &q, &s.apple_client_id) {
        Ok(code) => code,
        Err(r) => return refuse(r),
    };
    let user = lock(&s.grants).get(&code).map(|g| g.user.clone());
    let mut fields = vec![("code", code), ("state", q.get("state").cloned().unwrap_or_default())];
    // Apple sends the name only on the first authorization of each person.
    if let Some(user) = user
        && lock(&s.apple_seen).insert(user.subject.clone())
    {
        // Its shape: {"name": {"firstName", "lastName"}, "email"}; no name when none was shared.
        let mut sent = json!({ "email": user.email });
        if let Some(name) = &user.name {
            let (first, last) = name.split_once(' ').unwrap_or((name, ""));
            sent["name"] = json!({"firstName": first, "lastName": last});
        }
        fields.push(("user", sent.to_string()));
    }
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", html_escape(v)))
        .collect();
    let action = html_escape(q.get("redirect_uri").map(String::as_str).unwrap_or_default());
    Html(format!(
        "<!doctype html><title>Sign in with Apple (emulator)</title><form method=\"post\" action=\"{action}\">{inputs}<button>Continue</button></form><script>document.forms[0].submit()</script>"
    ))
    .into_response()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Takes the grant of `code` when it was issued to `which` for `redirect_uri` with a matching verifier.
fn redeem(s: &Shared, which: Which, f: &HashMap<String, String>) -> Option<Grant> {
    let grant = lock(&s.grants).remove(f.get("code")?)?;
    if grant.which != which || f.get("redirect_uri") != Some(&grant.redirect_uri) {
        return None;
    }
    if let Some(challenge) = &grant.challenge {
        let verifier = f.get("code_verifier")?;
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return None;
        }
    }
    Some(grant)
}

fn id_token(s: &Shared, issuer: &str, audience: &str, grant: &Grant, extra: Value) -> Result<String, Refusal> {
    let forgery = lock(&s.forge).take();
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": issuer,
        "aud": if forgery == Some(Forgery::WrongAudience) { "someone-else" } else { audience },
        "sub": grant.user.subject,
        "iat": now,
        "exp": if forgery == Some(Forgery::Expired) { now - 3600 } else { now + 3600 },
        "nonce": if forgery == Some(Forgery::WrongNonce) { random_token(24) } else { grant.nonce.clone().unwrap_or_default() },
    });
    if let (Some(map), Value::Object(more)) = (claims.as_object_mut(), extra) {
        map.extend(more);
    }
    let keys = lock(&s.keys);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(if forgery == Some(Forgery::UnknownKid) { random_token(8) } else { keys.kid.clone() });
    let key = if forgery == Some(Forgery::WrongKey) { &s.stranger } else { &keys.signing };
    jsonwebtoken::encode(&header, &claims, key).map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "server_error"))
}

async fn token_google(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let f = form(&body);
    if f.get("client_id") != Some(&s.google_client.0) || f.get("client_secret") != Some(&s.google_client.1) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some(grant) = redeem(&s, Which::Google, &f) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let extra =
        json!({"email": grant.user.email, "email_verified": grant.user.email_verified, "name": grant.user.name});
    match id_token(&s, &format!("{}/google", s.base), &s.google_client.0, &grant, extra) {
        Ok(t) => axum::Json(
            json!({"access_token": random_token(24), "token_type": "Bearer", "expires_in": 3599, "id_token": t}),
        )
        .into_response(),
        Err(r) => refuse(r),
    }
}

async fn token_apple(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let f = form(&body);
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[format!("{}/apple", s.base)]);
    validation.set_issuer(&[&s.apple_team_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let secret_ok = f.get("client_secret").is_some_and(|secret| {
        jsonwebtoken::decode_header(secret).is_ok_and(|h| h.kid.as_deref() == Some(&s.apple_key_id))
            && jsonwebtoken::decode::<Value>(secret, &s.apple_team_public, &validation)
                .is_ok_and(|d| d.claims["sub"] == s.apple_client_id.as_str())
    });
    if f.get("client_id") != Some(&s.apple_client_id) || !secret_ok {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client");
    }
    let Some(grant) = redeem(&s, Which::Apple, &f) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let private = grant.user.email.as_deref().is_some_and(|e| e.ends_with("@privaterelay.appleid.com"));
    let mut extra = json!({
        "email": grant.user.email,
        "email_verified": if grant.user.email_verified { "true" } else { "false" },
    });
    if private {
        extra["is_private_email"] = json!("true");
    }
    match id_token(&s, &format!("{}/apple", s.base), &s.apple_client_id, &grant, extra) {
        Ok(t) => axum::Json(
            json!({"access_token": random_token(24), "token_type": "Bearer", "expires_in": 3600, "id_token": t}),
        )
        .into_response(),
        Err(r) => refuse(r),
    }
}

async fn token_github(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let f = form(&body);
    if f.get("client_id") != Some(&s.github_client.0) || f.get("client_secret") != Some(&s.github_client.1) {
        // GitHub answers 200 with an error body.
        return axum::Json(json!({"error": "incorrect_client_credentials"})).into_response();
    }
    let Some(grant) = redeem(&s, Which::GitHub, &f) else {
        return axum::Json(json!({"error": "bad_verification_code"})).into_response();
    };
    let token = random_token(24);
    lock(&s.github_tokens).insert(token.clone(), grant.user);
    axum::Json(json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"})).into_response()
}

fn github_caller(s: &Shared, headers: &HeaderMap) -> Option<IdpUser> {
    let token = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?;
    lock(&s.github_tokens).get(token).cloned()
}

async fn github_user(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(user) = github_caller(&s, &headers) else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "Bad credentials"}))).into_response();
    };
    let id: u64 = user.subject.parse().unwrap_or(0);
    axum::Json(json!({"id": id, "login": format!("user{id}"), "name": user.name, "email": user.email})).into_response()
}

async fn github_emails(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(user) = github_caller(&s, &headers) else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "Bad credentials"}))).into_response();
    };
    let list: Vec<Value> = user
        .github_emails
        .iter()
        .map(|(email, primary, verified)| json!({"email": email, "primary": primary, "verified": verified, "visibility": null}))
        .collect();
    axum::Json(Value::Array(list)).into_response()
}

async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    s.jwks_requests.fetch_add(1, Ordering::SeqCst);
    if s.jwks_down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = lock(&s.keys).published.clone();
    let mut response = axum::Json(json!({ "keys": keys })).into_response();
    if let Some(v) = lock(&s.jwks_cache_control).as_deref().and_then(|v| header::HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}
