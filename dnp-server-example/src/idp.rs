//! Sign-in with external identity providers (Google, Apple, GitHub): their settings, the
//! authorization requests, the code exchanges and the ID token checks.
//!
//! The routes are in [`crate::api::social`]; accounts are linked in the `identities` table.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
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

/// Verifies an ID token: signature with a key of the provider's JWKS (RS256 for an RSA key,
/// ES256 for a P-256 key, the header's `alg` must agree), issuer, audience, expiry and nonce.
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
    let jwks: JwkSet = client()?
        .get(jwks_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| unreachable_idp(idp, e))?
        .json()
        .await
        .map_err(|e| unreachable_idp(idp, e))?;
    let jwk = jwks.find(kid).ok_or_else(invalid_id_token)?;
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
            Ok(ExternalIdentity { subject, email, email_verified, private_relay: false })
        }
    }
}
