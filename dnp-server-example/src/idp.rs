//! Sign-in with external identity providers (Google, Apple, GitHub): their settings, the
//! authorization requests, the code exchanges and the ID token checks.
//!
//! The routes are in [`crate::api::social`]; accounts are linked in the `identities` table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::ConfigError;
use crate::crypto::random_token;
use crate::error::ApiError;

/// The default Google issuer.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const GOOGLE_AUTHORIZE_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The default Apple ID base URL (also the issuer of Apple's ID tokens).
pub const APPLE_ID_BASE_URL: &str = "https://appleid.apple.com";
/// The default GitHub OAuth base URL.
pub const GITHUB_OAUTH_BASE_URL: &str = "https://github.com";
/// The default GitHub API base URL.
pub const GITHUB_API_BASE_URL: &str = "https://api.github.com";
/// The domain of Apple's private relay addresses.
pub const APPLE_PRIVATE_RELAY_DOMAIN: &str = "privaterelay.appleid.com";

/// An identity provider this server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idp {
    /// Google (OpenID Connect).
    Google,
    /// Sign in with Apple (OpenID Connect, `form_post`).
    Apple,
    /// GitHub (OAuth 2.0 and its REST API).
    GitHub,
}

impl Idp {
    /// The id in routes: `google`, `apple`, `github`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Apple => "apple",
            Self::GitHub => "github",
        }
    }

    /// The id from a route, if known.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "google" => Some(Self::Google),
            "apple" => Some(Self::Apple),
            "github" => Some(Self::GitHub),
            _ => None,
        }
    }
}

/// Google's client settings.
#[derive(Debug, Clone)]
pub struct GoogleSettings {
    /// `GOOGLE_CLIENT_ID`.
    pub client_id: String,
    /// `GOOGLE_CLIENT_SECRET`.
    pub client_secret: SecretString,
    /// `GOOGLE_OIDC_ISSUER` (default `https://accounts.google.com`).
    pub issuer: String,
    /// `GOOGLE_OIDC_AUTHORIZE_URL` (default Google's, or `ISSUER/o/oauth2/v2/auth` for another issuer).
    pub authorize_url: String,
    /// `GOOGLE_OIDC_TOKEN_URL` (default Google's, or `ISSUER/token`).
    pub token_url: String,
    /// `GOOGLE_OIDC_JWKS_URL` (default Google's, or `ISSUER/oauth2/v3/certs`).
    pub jwks_url: String,
}

/// Sign in with Apple's settings.
#[derive(Debug, Clone)]
pub struct AppleSettings {
    /// `APPLE_SIGNIN_CLIENT_ID`: the Services ID.
    pub client_id: String,
    /// `APPLE_SIGNIN_TEAM_ID`.
    pub team_id: String,
    /// `APPLE_SIGNIN_KEY_ID`.
    pub key_id: String,
    /// `APPLE_SIGNIN_PRIVATE_KEY` or the file `APPLE_SIGNIN_PRIVATE_KEY_FILE`: the PKCS#8 PEM of the key.
    pub private_key: SecretString,
    /// `APPLE_ID_BASE_URL` (default `https://appleid.apple.com`; also the expected issuer).
    pub base_url: String,
}

/// GitHub's client settings.
#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// `GITHUB_CLIENT_ID`.
    pub client_id: String,
    /// `GITHUB_CLIENT_SECRET`.
    pub client_secret: SecretString,
    /// `GITHUB_OAUTH_BASE_URL` (default `https://github.com`).
    pub oauth_base_url: String,
    /// `GITHUB_API_BASE_URL` (default `https://api.github.com`).
    pub api_base_url: String,
}

/// The identity providers offered for sign-in; one whose client id is unset is not offered.
#[derive(Debug, Clone, Default)]
pub struct IdentityProviders {
    /// Google.
    pub google: Option<GoogleSettings>,
    /// Apple.
    pub apple: Option<AppleSettings>,
    /// GitHub.
    pub github: Option<GitHubSettings>,
}

fn base_url(get: &impl Fn(&str) -> Option<String>, var: &str, default: &str) -> Result<String, ConfigError> {
    let v = get(var).unwrap_or_else(|| default.to_owned());
    let ok = (v.starts_with("https://") || v.starts_with("http://")) && url::Url::parse(&v).is_ok();
    if !ok {
        return Err(ConfigError::new(var, format!("{v:?} is not an http(s) URL")));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

fn required(get: &impl Fn(&str) -> Option<String>, var: &str, because: &str) -> Result<String, ConfigError> {
    get(var).ok_or_else(|| ConfigError::new(var, format!("is required when {because} is set")))
}

impl IdentityProviders {
    /// Reads the settings through `get` (which trims and drops empty values).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is missing or wrong.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let google = match get("GOOGLE_CLIENT_ID") {
            None if get("GOOGLE_CLIENT_SECRET").is_some() => {
                return Err(ConfigError::new("GOOGLE_CLIENT_ID", "is required when GOOGLE_CLIENT_SECRET is set"));
            }
            None => None,
            Some(client_id) => {
                let client_secret = SecretString::from(required(get, "GOOGLE_CLIENT_SECRET", "GOOGLE_CLIENT_ID")?);
                let issuer = base_url(get, "GOOGLE_OIDC_ISSUER", GOOGLE_ISSUER)?;
                let google = issuer == GOOGLE_ISSUER;
                let pick =
                    |own: &str, derived: &str| if google { own.to_owned() } else { format!("{issuer}{derived}") };
                Some(GoogleSettings {
                    client_id,
                    client_secret,
                    authorize_url: base_url(
                        get,
                        "GOOGLE_OIDC_AUTHORIZE_URL",
                        &pick(GOOGLE_AUTHORIZE_URL, "/o/oauth2/v2/auth"),
                    )?,
                    token_url: base_url(get, "GOOGLE_OIDC_TOKEN_URL", &pick(GOOGLE_TOKEN_URL, "/token"))?,
                    jwks_url: base_url(get, "GOOGLE_OIDC_JWKS_URL", &pick(GOOGLE_JWKS_URL, "/oauth2/v3/certs"))?,
                    issuer,
                })
            }
        };
        let apple = match get("APPLE_SIGNIN_CLIENT_ID") {
            None => None,
            Some(client_id) => {
                let because = "APPLE_SIGNIN_CLIENT_ID";
                let team_id = required(get, "APPLE_SIGNIN_TEAM_ID", because)?;
                let key_id = required(get, "APPLE_SIGNIN_KEY_ID", because)?;
                let (var, pem) = match (get("APPLE_SIGNIN_PRIVATE_KEY"), get("APPLE_SIGNIN_PRIVATE_KEY_FILE")) {
                    (Some(pem), _) => ("APPLE_SIGNIN_PRIVATE_KEY", pem.replace("\\n", "\n")),
                    (None, Some(path)) => (
                        "APPLE_SIGNIN_PRIVATE_KEY_FILE",
                        std::fs::read_to_string(&path).map_err(|e| {
                            ConfigError::new("APPLE_SIGNIN_PRIVATE_KEY_FILE", format!("cannot read {path:?}: {e}"))
                        })?,
                    ),
                    (None, None) => {
                        return Err(ConfigError::new(
                            "APPLE_SIGNIN_PRIVATE_KEY",
                            "is required (or APPLE_SIGNIN_PRIVATE_KEY_FILE) when APPLE_SIGNIN_CLIENT_ID is set",
                        ));
                    }
                };
                if EncodingKey::from_ec_pem(pem.as_bytes()).is_err() {
                    return Err(ConfigError::new(
                        var,
                        "is not a PEM-encoded P-256 private key (the .p8 file from Apple)",
                    ));
                }
                Some(AppleSettings {
                    client_id,
                    team_id,
                    key_id,
                    private_key: SecretString::from(pem),
                    base_url: base_url(get, "APPLE_ID_BASE_URL", APPLE_ID_BASE_URL)?,
                })
            }
        };
        let github = match get("GITHUB_CLIENT_ID") {
            None if get("GITHUB_CLIENT_SECRET").is_some() => {
                return Err(ConfigError::new("GITHUB_CLIENT_ID", "is required when GITHUB_CLIENT_SECRET is set"));
            }
            None => None,
            Some(client_id) => Some(GitHubSettings {
                client_id,
                client_secret: SecretString::from(required(get, "GITHUB_CLIENT_SECRET", "GITHUB_CLIENT_ID")?),
                oauth_base_url: base_url(get, "GITHUB_OAUTH_BASE_URL", GITHUB_OAUTH_BASE_URL)?,
                api_base_url: base_url(get, "GITHUB_API_BASE_URL", GITHUB_API_BASE_URL)?,
            }),
        };
        Ok(Self { google, apple, github })
    }

    /// Whether `idp` is configured.
    pub fn offers(&self, idp: Idp) -> bool {
        match idp {
            Idp::Google => self.google.is_some(),
            Idp::Apple => self.apple.is_some(),
            Idp::GitHub => self.github.is_some(),
        }
    }
}

/// The redirect URI of `idp` on this server.
pub(crate) fn redirect_uri(public_base_url: &str, idp: Idp) -> String {
    format!("{public_base_url}/api/v1/auth/oauth/{}/callback", idp.as_str())
}

/// A started authorization: the URL, and what the server keeps (hashed state, sealed verifier, nonce).
pub(crate) struct AuthorizeStart {
    pub(crate) url: String,
    pub(crate) state: String,
    pub(crate) verifier: Option<String>,
    pub(crate) nonce: Option<String>,
}

fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Builds the authorization request of `idp`.
pub(crate) fn authorize(settings: &IdentityProviders, idp: Idp, redirect: &str) -> Result<AuthorizeStart, ApiError> {
    let state = random_token(32);
    let verifier = random_token(48);
    let nonce = random_token(24);
    let unknown = || unknown_idp(idp.as_str());
    let (base, params, verifier, nonce) = match idp {
        Idp::Google => {
            let g = settings.google.as_ref().ok_or_else(unknown)?;
            let params = vec![
                ("response_type", "code".to_owned()),
                ("client_id", g.client_id.clone()),
                ("redirect_uri", redirect.to_owned()),
                ("scope", "openid email profile".to_owned()),
                ("state", state.clone()),
                ("nonce", nonce.clone()),
                ("code_challenge", pkce_challenge(&verifier)),
                ("code_challenge_method", "S256".to_owned()),
                ("prompt", "select_account".to_owned()),
            ];
            (&g.authorize_url, params, Some(verifier), Some(nonce))
        }
        Idp::Apple => {
            let a = settings.apple.as_ref().ok_or_else(unknown)?;
            let params = vec![
                ("response_type", "code".to_owned()),
                ("response_mode", "form_post".to_owned()),
                ("client_id", a.client_id.clone()),
                ("redirect_uri", redirect.to_owned()),
                ("scope", "name email".to_owned()),
                ("state", state.clone()),
                ("nonce", nonce.clone()),
            ];
            (&a.base_url, params, None, Some(nonce))
        }
        Idp::GitHub => {
            let g = settings.github.as_ref().ok_or_else(unknown)?;
            let params = vec![
                ("client_id", g.client_id.clone()),
                ("redirect_uri", redirect.to_owned()),
                ("scope", "read:user user:email".to_owned()),
                ("state", state.clone()),
                ("code_challenge", pkce_challenge(&verifier)),
                ("code_challenge_method", "S256".to_owned()),
                ("allow_signup", "true".to_owned()),
            ];
            (&g.oauth_base_url, params, Some(verifier), None)
        }
    };
    let endpoint = match idp {
        Idp::Google => base.to_owned(),
        Idp::Apple => format!("{base}/auth/authorize"),
        Idp::GitHub => format!("{base}/login/oauth/authorize"),
    };
    let url = url::Url::parse_with_params(&endpoint, &params).map_err(ApiError::internal)?;
    Ok(AuthorizeStart { url: url.into(), state, verifier, nonce })
}

/// 404 `unknown_identity_provider`.
pub(crate) fn unknown_idp(id: &str) -> ApiError {
    ApiError::not_found(
        "unknown_identity_provider",
        format!("sign-in with {:?} is not offered by this server", id.chars().take(32).collect::<String>()),
    )
}

/// Who the identity provider says signed in.
#[derive(Debug, Clone)]
pub(crate) struct ExternalIdentity {
    /// The provider's stable user id.
    pub(crate) subject: String,
    /// The email address it gave, if any.
    pub(crate) email: Option<String>,
    /// Whether the provider verified that address.
    pub(crate) email_verified: bool,
    /// Whether it is an Apple private relay address.
    pub(crate) private_relay: bool,
    /// The person's name as the provider gave it, cleaned by [`display_name`]: Google's
    /// `name` claim, GitHub's profile name, Apple's `user` form field (first authorization only).
    pub(crate) name: Option<String>,
}

/// The longest display name kept, in characters.
pub const DISPLAY_NAME_MAX_CHARS: usize = 100;

/// A name fit to keep and show: control characters, the zero-width space and the
/// bidirectional marks and overrides (which can make a name display as another) dropped,
/// runs of whitespace made one space, trimmed, at most [`DISPLAY_NAME_MAX_CHARS`]
/// characters; `None` when nothing is left. The zero-width (non-)joiners stay: scripts such
/// as Persian and Devanagari spell names with them.
pub fn display_name(raw: &str) -> Option<String> {
    let words: Vec<String> = raw
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| {
                    !c.is_control()
                        && !matches!(c, '\u{200b}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
                })
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let name: String = words.join(" ").chars().take(DISPLAY_NAME_MAX_CHARS).collect();
    let name = name.trim_end().to_owned();
    (!name.is_empty()).then_some(name)
}

/// The name in Sign in with Apple's `user` form field, JSON
/// `{"name": {"firstName": "…", "lastName": "…"}, "email": "…"}`, which Apple posts only on
/// the first authorization. It is not signed: it is used only as a display name, never for
/// the email address (which comes from the signed ID token).
pub fn apple_user_name(user_field: &str) -> Option<String> {
    let v: Value = serde_json::from_str(user_field).ok()?;
    let name = v.get("name")?;
    let part = |k: &str| name.get(k).and_then(Value::as_str).unwrap_or_default().trim().to_owned();
    display_name(&format!("{} {}", part("firstName"), part("lastName")))
}

fn client() -> Result<&'static reqwest::Client, ApiError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("dnp-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ApiError::internal)?;
    Ok(CLIENT.get_or_init(|| c))
}

fn unreachable_idp(idp: Idp, e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(idp = idp.as_str(), error = %e, "identity provider request failed");
    ApiError::Unavailable {
        code: "identity_provider_unavailable",
        message: "the identity provider did not answer; try again".into(),
    }
}

fn invalid_code() -> ApiError {
    ApiError::bad_request("invalid_code", "the identity provider refused the authorization code; start again")
}

fn invalid_id_token() -> ApiError {
    ApiError::unauthorized("invalid_id_token", "the identity provider's ID token did not verify; start again")
}

/// POSTs a form to a token endpoint and reads its JSON answer.
async fn token_request(idp: Idp, url: &str, form: &[(&str, &str)]) -> Result<Value, ApiError> {
    let response = client()?
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form)
        .send()
        .await
        .map_err(|e| unreachable_idp(idp, e))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| unreachable_idp(idp, e))?;
    if status.is_client_error() || body.get("error").is_some_and(|e| !e.is_null()) {
        return Err(invalid_code());
    }
    if !status.is_success() {
        return Err(unreachable_idp(idp, format!("token endpoint answered {status}")));
    }
    Ok(body)
}

/// How long a JWKS is kept when its response says nothing (no `Cache-Control: max-age`).
pub const JWKS_DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);
/// The shortest a JWKS is kept, whatever the response says (`max-age=0`, `no-store`…).
pub const JWKS_MIN_TTL: Duration = Duration::from_secs(60);
/// The longest a JWKS is kept, whatever the response says.
pub const JWKS_MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// At most one refetch forced by an unknown `kid` per provider in this long: tokens naming
/// random key ids cannot make the server hammer the identity provider.
pub const JWKS_FORCED_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How long after its expiry a JWKS is still used when the identity provider does not answer.
pub const JWKS_STALE_IF_ERROR: Duration = Duration::from_secs(60 * 60);

/// How long a JWKS response may be kept: its `Cache-Control` `max-age` less its `Age`, within
/// [`JWKS_MIN_TTL`]..=[`JWKS_MAX_TTL`]; [`JWKS_DEFAULT_TTL`] without a `max-age`; the
/// minimum for `no-store` or `no-cache`.
pub fn jwks_ttl(cache_control: Option<&str>, age: Option<&str>) -> Duration {
    let mut max_age = None;
    let mut no_cache = false;
    for directive in cache_control.unwrap_or_default().split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "max-age" => max_age = value.trim().trim_matches('"').parse::<u64>().ok().or(Some(0)),
            "no-store" | "no-cache" => no_cache = true,
            _ => {}
        }
    }
    let age = age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    let ttl = match (no_cache, max_age) {
        (true, _) => JWKS_MIN_TTL,
        (false, Some(secs)) => Duration::from_secs(secs.saturating_sub(age)),
        (false, None) => JWKS_DEFAULT_TTL,
    };
    ttl.clamp(JWKS_MIN_TTL, JWKS_MAX_TTL)
}

/// A fetched JWKS and how long it may be kept.
#[derive(Debug)]
pub(crate) struct FetchedJwks {
    pub(crate) keys: JwkSet,
    pub(crate) ttl: Duration,
}

#[derive(Default)]
struct JwksSlot {
    keys: Option<Arc<JwkSet>>,
    fresh_until: Option<Instant>,
    last_forced: Option<Instant>,
}

/// Each identity provider's JWKS, kept in memory by URL.
///
/// # Behavior
/// - A set is kept for its response's lifetime ([`jwks_ttl`]); one fetch per provider at a
///   time (sign-ins waiting for the same set wait for that fetch).
/// - A token naming a `kid` not in a fresh set (the provider rotated its keys) refetches once,
///   but at most once per [`JWKS_FORCED_REFETCH_INTERVAL`] per provider.
/// - When a fetch fails, a set still fresh is used; an expired one for
///   [`JWKS_STALE_IF_ERROR`] more; else the provider is unavailable.
#[derive(Default)]
pub(crate) struct JwksCache {
    slots: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<JwksSlot>>>>,
}

/// Why no key was found for a token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeyLookupError {
    /// No key with that id, in a set fetched just now or recently enough.
    UnknownKid,
    /// The set could not be fetched and no usable one is kept.
    Unavailable(String),
}

impl JwksCache {
    fn slot(&self, url: &str) -> Arc<tokio::sync::Mutex<JwksSlot>> {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(url.to_owned()).or_default().clone()
    }

    /// The key `kid` of the JWKS at `url` at instant `now`, calling `fetch` (at most once)
    /// when the kept set is missing, expired, or lacks `kid` and no refetch was forced lately.
    pub(crate) async fn key<F, Fut>(&self, url: &str, kid: &str, now: Instant, fetch: F) -> Result<Jwk, KeyLookupError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<FetchedJwks, String>>,
    {
        let slot = self.slot(url);
        let mut slot = slot.lock().await;
        let fresh = slot.fresh_until.is_some_and(|until| now < until);
        if fresh {
            if let Some(jwk) = slot.keys.as_ref().and_then(|k| k.find(kid)) {
                return Ok(jwk.clone());
            }
            if slot.last_forced.is_some_and(|at| now.saturating_duration_since(at) < JWKS_FORCED_REFETCH_INTERVAL) {
                return Err(KeyLookupError::UnknownKid);
            }
            slot.last_forced = Some(now);
        }
        match fetch().await {
            Ok(fetched) => {
                let keys = Arc::new(fetched.keys);
                slot.fresh_until = Some(now + fetched.ttl);
                slot.keys = Some(keys.clone());
                keys.find(kid).cloned().ok_or(KeyLookupError::UnknownKid)
            }
            Err(e) => {
                let usable = fresh || slot.fresh_until.is_some_and(|until| now < until + JWKS_STALE_IF_ERROR);
                match slot.keys.as_ref().filter(|_| usable) {
                    Some(keys) => {
                        tracing::warn!(url, error = %e, "JWKS fetch failed; using the kept key set");
                        keys.find(kid).cloned().ok_or(KeyLookupError::Unavailable(e))
                    }
                    None => Err(KeyLookupError::Unavailable(e)),
                }
            }
        }
    }
}

fn jwks_cache() -> &'static JwksCache {
    static CACHE: std::sync::OnceLock<JwksCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(JwksCache::default)
}

async fn fetch_jwks(url: &str) -> Result<FetchedJwks, String> {
    let response = client()
        .map_err(|_| "no HTTP client".to_owned())?
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.without_url().to_string())?;
    let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let ttl = jwks_ttl(header(reqwest::header::CACHE_CONTROL).as_deref(), header(reqwest::header::AGE).as_deref());
    let keys: JwkSet = response.json().await.map_err(|e| e.without_url().to_string())?;
    Ok(FetchedJwks { keys, ttl })
}

/// Verifies an ID token: signature with a key of the provider's JWKS (RS256 for an RSA key,
/// ES256 for a P-256 key, the header's `alg` must agree), issuer, audience, expiry and nonce.
/// The JWKS is kept in memory (see [`JwksCache`]).
pub(crate) async fn verify_id_token(
    idp: Idp,
    jwks_url: &str,
    token: &str,
    issuers: &[&str],
    audience: &str,
    nonce: &str,
) -> Result<Value, ApiError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid_id_token())?;
    let kid = header.kid.as_deref().ok_or_else(invalid_id_token)?;
    let jwk = match jwks_cache().key(jwks_url, kid, Instant::now(), || fetch_jwks(jwks_url)).await {
        Ok(jwk) => jwk,
        Err(KeyLookupError::UnknownKid) => return Err(invalid_id_token()),
        Err(KeyLookupError::Unavailable(e)) => return Err(unreachable_idp(idp, e)),
    };
    let jwk = &jwk;
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return Err(invalid_id_token()),
    };
    if header.alg != alg {
        return Err(invalid_id_token());
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| invalid_id_token())?;
    let mut validation = Validation::new(alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(issuers);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 60;
    let claims: Value = jsonwebtoken::decode(token, &key, &validation).map_err(|_| invalid_id_token())?.claims;
    let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
    if !crate::crypto::constant_time_eq(sent.as_bytes(), nonce.as_bytes()) {
        return Err(invalid_id_token());
    }
    if claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(invalid_id_token());
    }
    Ok(claims)
}

/// A claim that may be a boolean or the string `"true"` (Apple sends strings).
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// The signed client secret Apple's token endpoint wants: ES256 with the team's key, 5 minutes.
pub(crate) fn apple_client_secret(a: &AppleSettings) -> Result<String, ApiError> {
    let key = EncodingKey::from_ec_pem(a.private_key.expose_secret().as_bytes()).map_err(ApiError::internal)?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(a.key_id.clone());
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": a.team_id, "iat": now, "exp": now + 300, "aud": a.base_url, "sub": a.client_id,
    });
    jsonwebtoken::encode(&header, &claims, &key).map_err(ApiError::internal)
}

/// What the callback carries besides the code.
pub(crate) struct CallbackExtras<'a> {
    pub(crate) verifier: Option<&'a str>,
    pub(crate) nonce: Option<&'a str>,
    /// Apple's `user` form field, if it came.
    pub(crate) apple_user: Option<&'a str>,
}

/// Exchanges the code and finds out who signed in.
pub(crate) async fn complete(
    settings: &IdentityProviders,
    idp: Idp,
    redirect: &str,
    code: &str,
    extras: CallbackExtras<'_>,
) -> Result<ExternalIdentity, ApiError> {
    let unknown = || unknown_idp(idp.as_str());
    let nonce = extras.nonce.unwrap_or_default();
    match idp {
        Idp::Google => {
            let g = settings.google.as_ref().ok_or_else(unknown)?;
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("client_id", &g.client_id),
                ("client_secret", g.client_secret.expose_secret()),
            ];
            if let Some(v) = extras.verifier {
                form.push(("code_verifier", v));
            }
            let body = token_request(idp, &g.token_url, &form).await?;
            let id_token = body.get("id_token").and_then(Value::as_str).ok_or_else(invalid_id_token)?;
            let mut issuers = vec![g.issuer.as_str()];
            if g.issuer == GOOGLE_ISSUER {
                issuers.push("accounts.google.com");
            }
            let claims = verify_id_token(idp, &g.jwks_url, id_token, &issuers, &g.client_id, nonce).await?;
            Ok(ExternalIdentity {
                subject: claims["sub"].as_str().unwrap_or_default().to_owned(),
                email: claims.get("email").and_then(Value::as_str).map(str::to_owned),
                email_verified: truthy(claims.get("email_verified")),
                private_relay: false,
                name: claims.get("name").and_then(Value::as_str).and_then(display_name),
            })
        }
        Idp::Apple => {
            let a = settings.apple.as_ref().ok_or_else(unknown)?;
            let secret = apple_client_secret(a)?;
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("client_id", a.client_id.as_str()),
                ("client_secret", secret.as_str()),
            ];
            let body = token_request(idp, &format!("{}/auth/token", a.base_url), &form).await?;
            let id_token = body.get("id_token").and_then(Value::as_str).ok_or_else(invalid_id_token)?;
            let jwks = format!("{}/auth/keys", a.base_url);
            let claims = verify_id_token(idp, &jwks, id_token, &[a.base_url.as_str()], &a.client_id, nonce).await?;
            let email = claims.get("email").and_then(Value::as_str).map(str::to_owned);
            let private_relay = truthy(claims.get("is_private_email"))
                || email
                    .as_deref()
                    .is_some_and(|e| e.to_ascii_lowercase().ends_with(&format!("@{APPLE_PRIVATE_RELAY_DOMAIN}")));
            Ok(ExternalIdentity {
                subject: claims["sub"].as_str().unwrap_or_default().to_owned(),
                email,
                email_verified: truthy(claims.get("email_verified")),
                private_relay,
                name: extras.apple_user.and_then(apple_user_name),
            })
        }
        Idp::GitHub => {
            let g = settings.github.as_ref().ok_or_else(unknown)?;
            let mut form = vec![
                ("code", code),
                ("redirect_uri", redirect),
                ("client_id", g.client_id.as_str()),
                ("client_secret", g.client_secret.expose_secret()),
            ];
            if let Some(v) = extras.verifier {
                form.push(("code_verifier", v));
            }
            let body = token_request(idp, &format!("{}/login/oauth/access_token", g.oauth_base_url), &form).await?;
            let token = body.get("access_token").and_then(Value::as_str).ok_or_else(invalid_code)?;
            let get = |path: &str| {
                client().map(|c| {
                    c.get(format!("{}{path}", g.api_base_url))
                        .bearer_auth(token)
                        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                        .header("x-github-api-version", "2022-11-28")
                        .send()
                })
            };
            let read = |r: Result<reqwest::Response, reqwest::Error>| async move {
                let r = r.and_then(reqwest::Response::error_for_status).map_err(|e| unreachable_idp(idp, e))?;
                r.json::<Value>().await.map_err(|e| unreachable_idp(idp, e))
            };
            let user = read(get("/user")?.await).await?;
            let emails = read(get("/user/emails")?.await).await?;
            let subject = match &user["id"] {
                Value::Number(n) => n.to_string(),
                _ => return Err(unreachable_idp(idp, "the /user answer has no id")),
            };
            let listed = emails.as_array().cloned().unwrap_or_default();
            let primary = listed.iter().find(|e| truthy(e.get("primary")) && truthy(e.get("verified")));
            let (email, email_verified) = match primary {
                Some(e) => (e["email"].as_str().map(str::to_owned), true),
                None => {
                    let profile = user.get("email").and_then(Value::as_str).map(str::to_owned);
                    let verified = profile.as_deref().is_some_and(|p| {
                        listed.iter().any(|e| {
                            e["email"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(p)) && truthy(e.get("verified"))
                        })
                    });
                    (profile, verified)
                }
            };
            let name = user.get("name").and_then(Value::as_str).and_then(display_name);
            Ok(ExternalIdentity { subject, email, email_verified, private_relay: false, name })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn display_names_are_cleaned_and_bounded() {
        assert_eq!(display_name("  Ada   Lovelace \n").as_deref(), Some("Ada Lovelace"));
        assert_eq!(display_name("Ada\u{0}\u{7}Lovelace\u{202e}").as_deref(), Some("AdaLovelace"));
        assert_eq!(display_name(" \t\u{200b} "), None);
        assert_eq!(display_name("\u{2067}Ada\u{2069} \u{200f}").as_deref(), Some("Ada"));
        assert_eq!(display_name("Mehr\u{200c}dad").as_deref(), Some("Mehr\u{200c}dad"), "the ZWNJ is kept");
        assert_eq!(display_name(&"é".repeat(300)).map(|n| n.chars().count()), Some(DISPLAY_NAME_MAX_CHARS));
        assert_eq!(display_name("José Ñúñez").as_deref(), Some("José Ñúñez"));
    }

    #[test]
    fn apples_user_field_gives_the_name() {
        // The shape Apple documents (UserI: name { firstName, lastName }, email).
        let first = r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"x7k2q9@privaterelay.appleid.com"}"#;
        assert_eq!(apple_user_name(first).as_deref(), Some("Ada Lovelace"));
        assert_eq!(apple_user_name(r#"{"name":{"firstName":"Ada"}}"#).as_deref(), Some("Ada"));
        assert_eq!(apple_user_name(r#"{"name":{"lastName":" Byron "}}"#).as_deref(), Some("Byron"));
        assert_eq!(apple_user_name(r#"{"email":"a@b.c"}"#), None);
        assert_eq!(apple_user_name(r#"{"name":{"firstName":"","lastName":""}}"#), None);
        assert_eq!(apple_user_name(r#"{"name":"Ada"}"#), None);
        assert_eq!(apple_user_name("not json"), None);
    }

    #[test]
    fn jwks_lifetime_follows_cache_control_within_bounds() {
        let google = "public, max-age=19239, must-revalidate, no-transform";
        assert_eq!(jwks_ttl(Some(google), None), Duration::from_secs(19239));
        assert_eq!(jwks_ttl(Some(google), Some("239")), Duration::from_secs(19000));
        assert_eq!(jwks_ttl(None, None), JWKS_DEFAULT_TTL);
        assert_eq!(jwks_ttl(Some("public"), None), JWKS_DEFAULT_TTL);
        assert_eq!(jwks_ttl(Some("max-age=0"), None), JWKS_MIN_TTL);
        assert_eq!(jwks_ttl(Some("max-age=5"), None), JWKS_MIN_TTL);
        assert_eq!(jwks_ttl(Some("MAX-AGE=\"600\""), None), Duration::from_secs(600));
        assert_eq!(jwks_ttl(Some("max-age=31536000"), None), JWKS_MAX_TTL);
        assert_eq!(jwks_ttl(Some("max-age=600"), Some("9000")), JWKS_MIN_TTL);
        assert_eq!(jwks_ttl(Some("max-age=600, no-store"), None), JWKS_MIN_TTL);
        assert_eq!(jwks_ttl(Some("max-age=soon"), None), JWKS_MIN_TTL);
    }

    fn set(kids: &[&str]) -> JwkSet {
        let keys: Vec<Value> = kids
            .iter()
            .map(|kid| serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": kid, "alg": "ES256"}))
            .collect();
        serde_json::from_value(serde_json::json!({ "keys": keys })).unwrap()
    }

    /// A fake identity provider: counts fetches, serves `kids` or fails.
    struct Fake {
        fetches: AtomicUsize,
        kids: std::sync::Mutex<Vec<&'static str>>,
        fail: std::sync::atomic::AtomicBool,
        ttl: Duration,
    }

    impl Fake {
        fn new(kids: &[&'static str], ttl: Duration) -> Self {
            Self {
                fetches: AtomicUsize::new(0),
                kids: std::sync::Mutex::new(kids.to_vec()),
                fail: std::sync::atomic::AtomicBool::new(false),
                ttl,
            }
        }

        async fn fetch(&self) -> Result<FetchedJwks, String> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err("connection refused".into());
            }
            Ok(FetchedJwks { keys: set(&self.kids.lock().unwrap()), ttl: self.ttl })
        }

        fn count(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    const URL: &str = "https://idp.example/keys";

    #[tokio::test]
    async fn a_kept_set_is_used_until_it_expires() {
        let cache = JwksCache::default();
        let idp = Fake::new(&["k1"], Duration::from_secs(600));
        let t0 = Instant::now();
        for secs in [0, 1, 300, 599] {
            let jwk = cache.key(URL, "k1", t0 + Duration::from_secs(secs), || idp.fetch()).await.unwrap();
            assert_eq!(jwk.common.key_id.as_deref(), Some("k1"));
        }
        assert_eq!(idp.count(), 1);
        cache.key(URL, "k1", t0 + Duration::from_secs(600), || idp.fetch()).await.unwrap();
        assert_eq!(idp.count(), 2, "refetched once expired");
        // Another provider's URL has its own set.
        cache.key("https://other.example/keys", "k1", t0, || idp.fetch()).await.unwrap();
        assert_eq!(idp.count(), 3);
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_once_per_interval() {
        let cache = JwksCache::default();
        let idp = Fake::new(&["k1"], Duration::from_secs(3600));
        let t0 = Instant::now();
        cache.key(URL, "k1", t0, || idp.fetch()).await.unwrap();
        // The provider rotated: the first token with the new kid refetches and passes.
        idp.kids.lock().unwrap().push("k2");
        let at = |secs| t0 + Duration::from_secs(secs);
        assert!(cache.key(URL, "k2", at(10), || idp.fetch()).await.is_ok());
        assert_eq!(idp.count(), 2);
        assert!(cache.key(URL, "k2", at(11), || idp.fetch()).await.is_ok());
        assert_eq!(idp.count(), 2, "the rotated set is kept");
        // Random kids: one forced refetch per interval, however many tokens.
        for i in 0..50 {
            let r = cache.key(URL, &format!("random-{i}"), at(12 + i / 10), || idp.fetch()).await;
            assert_eq!(r.unwrap_err(), KeyLookupError::UnknownKid);
        }
        assert_eq!(idp.count(), 2, "no refetch within the interval of the rotation's");
        let later = 10 + JWKS_FORCED_REFETCH_INTERVAL.as_secs();
        for i in 0..50 {
            assert!(cache.key(URL, &format!("again-{i}"), at(later + i / 10), || idp.fetch()).await.is_err());
        }
        assert_eq!(idp.count(), 3, "one forced refetch per interval");
    }

    #[tokio::test]
    async fn a_failed_fetch_falls_back_to_a_usable_kept_set() {
        let cache = JwksCache::default();
        let ttl = Duration::from_secs(600);
        let idp = Fake::new(&["k1"], ttl);
        let t0 = Instant::now();
        cache.key(URL, "k1", t0, || idp.fetch()).await.unwrap();
        idp.fail.store(true, Ordering::SeqCst);
        // A forced refetch fails while the set is fresh: the kept set still answers for its kids.
        let r = cache.key(URL, "k9", t0 + Duration::from_secs(1), || idp.fetch()).await;
        assert!(matches!(r, Err(KeyLookupError::Unavailable(_))), "{r:?}");
        assert!(cache.key(URL, "k1", t0 + Duration::from_secs(2), || idp.fetch()).await.is_ok());
        // Expired but within the grace: the stale set is used.
        let stale = t0 + ttl + JWKS_STALE_IF_ERROR - Duration::from_secs(1);
        assert!(cache.key(URL, "k1", stale, || idp.fetch()).await.is_ok());
        let fetches = idp.count();
        assert_eq!(fetches, 3);
        // Beyond it: unavailable.
        let gone = t0 + ttl + JWKS_STALE_IF_ERROR;
        assert!(matches!(cache.key(URL, "k1", gone, || idp.fetch()).await, Err(KeyLookupError::Unavailable(_))));
        // The provider is back.
        idp.fail.store(false, Ordering::SeqCst);
        assert!(cache.key(URL, "k1", gone, || idp.fetch()).await.is_ok());
        // Nothing kept and nothing fetched: unavailable, never a cached failure.
        let empty = JwksCache::default();
        idp.fail.store(true, Ordering::SeqCst);
        assert!(matches!(empty.key(URL, "k1", t0, || idp.fetch()).await, Err(KeyLookupError::Unavailable(_))));
        idp.fail.store(false, Ordering::SeqCst);
        assert!(empty.key(URL, "k1", t0, || idp.fetch()).await.is_ok());
    }
}
