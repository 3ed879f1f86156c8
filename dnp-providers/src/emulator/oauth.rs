//! The authorization-server side of OAuth 2.0, shared by the emulators of services that
//! use it (Spotify, TIDAL, Google): redirect URI rules, authorization codes with PKCE S256,
//! access tokens that expire, refresh tokens that rotate and are good once.
//!
//! The emulator of a service keeps one [`AuthorizationServer`] and renders its results
//! (redirects, token responses, [`GrantError`]s) in the service's own shape.
//!
//! # Simplified
//! - One registered client per emulator; its secret is random per emulator instance.
//! - Consent is automatic: the emulator decides which user approves.
//! - Tokens are opaque random strings kept in memory (not JWTs).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::EmulatorError;
use super::config::EmulatorConfig;
use super::faults::FaultInjector;

/// Checks a redirect URI against the 2026 rules of Spotify's dashboard (which the other
/// services' rules are no stricter than): `https://` with a host, or `http://` to a
/// loopback IP literal (`http://127.0.0.1:8080/callback`, `http://[::1]:8080/cb`);
/// `localhost` is refused, and so are fragments and other schemes.
///
/// ```
/// use dnp_providers::emulator::oauth::validate_redirect_uri;
/// assert!(validate_redirect_uri("https://dnp.example/callback").is_ok());
/// assert!(validate_redirect_uri("http://127.0.0.1:4000/callback").is_ok());
/// assert!(validate_redirect_uri("http://localhost:4000/callback").is_err());
/// assert!(validate_redirect_uri("http://dnp.example/callback").is_err());
/// ```
///
/// # Errors
/// [`EmulatorError::InvalidRedirectUri`] naming the rule broken.
pub fn validate_redirect_uri(uri: &str) -> Result<(), EmulatorError> {
    let refuse = |reason: &str| Err(EmulatorError::InvalidRedirectUri { reason: reason.to_owned() });
    let Ok(parsed) = url::Url::parse(uri) else {
        return refuse("not an absolute URL");
    };
    if parsed.fragment().is_some() {
        return refuse("a redirect URI may not have a fragment");
    }
    match (parsed.scheme(), parsed.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(url::Host::Ipv4(ip))) if IpAddr::V4(ip).is_loopback() => Ok(()),
        ("http", Some(url::Host::Ipv6(ip))) if IpAddr::V6(ip).is_loopback() => Ok(()),
        ("http", Some(url::Host::Domain(d))) if d.eq_ignore_ascii_case("localhost") => {
            refuse("`localhost` is not allowed: use a loopback IP literal such as http://127.0.0.1:PORT")
        }
        ("http", _) => refuse("plain http is only allowed to a loopback IP literal"),
        _ => refuse("the scheme must be https (or http to a loopback IP literal)"),
    }
}

/// The PKCE S256 challenge of `verifier`: `BASE64URL(SHA-256(verifier))` without padding.
///
/// ```
/// use dnp_providers::emulator::oauth::pkce_challenge_s256;
/// // RFC 7636, appendix B.
/// assert_eq!(
///     pkce_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
///     "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
/// );
/// ```
pub fn pkce_challenge_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is a well-formed PKCE code verifier (RFC 7636: 43 to 128 characters
/// of `A-Z a-z 0-9 - . _ ~`).
pub fn is_valid_pkce_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A random opaque token: `prefix` then 43 base64url characters (256 bits from the
/// operating system's generator).
pub fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Parses an `Authorization: Basic …` header value into (client id, client secret).
pub fn parse_basic_auth(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// A newly issued token pair. `Debug` never prints the tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The access token.
    pub access_token: String,
    /// The refresh token (a new one on every refresh).
    pub refresh_token: String,
    /// How long the access token lasts.
    pub expires_in: Duration,
    /// The scopes granted.
    pub scopes: Vec<String>,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// How the client authenticated at the token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` with id and secret.
    Basic {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
    },
    /// Only `client_id` in the form (a public client using PKCE).
    PublicId(String),
    /// Neither.
    None,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { client_id, .. } => {
                f.debug_struct("Basic").field("client_id", client_id).finish_non_exhaustive()
            }
            Self::PublicId(id) => f.debug_tuple("PublicId").field(id).finish(),
            Self::None => f.write_str("None"),
        }
    }
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessError {
    /// No bearer token in the request.
    Missing,
    /// Unknown or revoked.
    Invalid,
    /// Past its lifetime (or expired by the fault injector).
    Expired,
}

/// An OAuth error of the token endpoint (RFC 6749 §5.2): `error` code and description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantError {
    /// `invalid_grant`, `invalid_client`, `invalid_request`, `unsupported_grant_type`.
    pub error: &'static str,
    /// A short human-readable description.
    pub description: &'static str,
}

impl GrantError {
    const fn new(error: &'static str, description: &'static str) -> Self {
        Self { error, description }
    }

    /// `invalid_request` with `description`.
    pub const fn invalid_request(description: &'static str) -> Self {
        Self::new("invalid_request", description)
    }

    /// `unsupported_grant_type`.
    pub const fn unsupported_grant_type() -> Self {
        Self::new("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
    }
}

/// What a validated access token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessInfo {
    /// The user who authorized.
    pub user_id: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
}

impl AccessInfo {
    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// The query of an authorization request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeParams {
    /// `client_id`.
    pub client_id: Option<String>,
    /// `response_type` (must be `code`).
    pub response_type: Option<String>,
    /// `redirect_uri` (must be registered, compared exactly).
    pub redirect_uri: Option<String>,
    /// `state` (required by the emulators: dnp always sends one).
    pub state: Option<String>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method` (must be `S256` when a challenge is given).
    pub code_challenge_method: Option<String>,
}

/// What the authorization endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// Redirect the user agent to this URL (with `code` and `state`, or `error` and `state`).
    Redirect(String),
    /// Do not redirect (unknown client or unregistered redirect URI): show this error.
    ErrorPage(String),
}

struct Grant {
    user_id: String,
    scopes: Vec<String>,
    pkce: bool,
    authorized_at: Instant,
    revoked: bool,
    revocation_generation: u64,
}

struct Code {
    grant: Option<u64>,
    redirect_uri: String,
    user_id: String,
    scopes: Vec<String>,
    challenge: Option<String>,
    issued_at: Instant,
    revocation_generation: u64,
}

struct AccessRecord {
    grant: u64,
    expires_at: Instant,
    expiry_generation: u64,
}

struct RefreshRecord {
    grant: u64,
    used: bool,
}

/// The OAuth state of one emulator: its client, redirect URIs, codes, grants and tokens.
pub struct AuthorizationServer {
    client_id: String,
    client_secret: String,
    token_prefix: String,
    redirect_uris: Vec<String>,
    access_token_ttl: Duration,
    refresh_token_lifetime: Duration,
    code_ttl: Duration,
    reuse_revokes_grant: bool,
    rotate_refresh_tokens: bool,
    faults: FaultInjector,
    codes: HashMap<String, Code>,
    grants: HashMap<u64, Grant>,
    next_grant: u64,
    access: HashMap<String, AccessRecord>,
    refresh: HashMap<String, RefreshRecord>,
}

impl fmt::Debug for AuthorizationServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationServer")
            .field("client_id", &self.client_id)
            .field("redirect_uris", &self.redirect_uris)
            .field("grants", &self.grants.len())
            .field("access_tokens", &self.access.len())
            .finish_non_exhaustive()
    }
}

impl AuthorizationServer {
    /// A server for one client. Tokens start with `token_prefix` (Spotify's start `BQ`);
    /// revocations and expiries come from `faults`.
    pub fn new(
        client_id: String,
        client_secret: String,
        token_prefix: &str,
        config: &EmulatorConfig,
        faults: FaultInjector,
    ) -> Self {
        Self {
            client_id,
            client_secret,
            token_prefix: token_prefix.to_owned(),
            redirect_uris: Vec::new(),
            access_token_ttl: config.access_token_ttl,
            refresh_token_lifetime: config.refresh_token_lifetime,
            code_ttl: config.authorization_code_ttl,
            reuse_revokes_grant: config.reuse_revokes_grant,
            rotate_refresh_tokens: true,
            faults,
            codes: HashMap::new(),
            grants: HashMap::new(),
            next_grant: 0,
            access: HashMap::new(),
            refresh: HashMap::new(),
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret.
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// Whether a refresh issues a new refresh token and spends the presented one (the
    /// default, as Spotify does), or keeps the presented one valid and returns it again
    /// (`false`, as TIDAL does: its refresh answer carries no new refresh token).
    pub fn set_rotate_refresh_tokens(&mut self, rotate: bool) {
        self.rotate_refresh_tokens = rotate;
    }

    /// Registers a redirect URI (idempotent).
    ///
    /// # Errors
    /// See [`validate_redirect_uri`].
    pub fn register_redirect_uri(&mut self, uri: &str) -> Result<(), EmulatorError> {
        validate_redirect_uri(uri)?;
        if !self.redirect_uris.iter().any(|u| u == uri) {
            self.redirect_uris.push(uri.to_owned());
        }
        Ok(())
    }

    /// Handles an authorization request approved by `user_id`. `known_scopes` are the
    /// scopes the service knows; any other is refused with `invalid_scope`.
    pub fn authorize(&mut self, params: &AuthorizeParams, user_id: &str, known_scopes: &[&str]) -> AuthorizeOutcome {
        if params.client_id.as_deref() != Some(self.client_id.as_str()) {
            return AuthorizeOutcome::ErrorPage("INVALID_CLIENT: Invalid client".into());
        }
        let Some(redirect_uri) = params.redirect_uri.as_deref().filter(|u| self.redirect_uris.iter().any(|r| r == u))
        else {
            return AuthorizeOutcome::ErrorPage("INVALID_CLIENT: Invalid redirect URI".into());
        };
        let state = params.state.as_deref().unwrap_or("");
        let refuse =
            |error: &str| AuthorizeOutcome::Redirect(with_query(redirect_uri, &[("error", error), ("state", state)]));
        if params.response_type.as_deref() != Some("code") {
            return refuse("unsupported_response_type");
        }
        if state.is_empty() {
            return refuse("invalid_request");
        }
        let scopes: Vec<String> = params.scope.as_deref().unwrap_or("").split_whitespace().map(str::to_owned).collect();
        if scopes.iter().any(|s| !known_scopes.contains(&s.as_str())) {
            return refuse("invalid_scope");
        }
        let challenge = match (params.code_challenge.as_deref(), params.code_challenge_method.as_deref()) {
            (None, None) => None,
            (Some(c), Some("S256")) if c.len() == 43 && URL_SAFE_NO_PAD.decode(c).is_ok_and(|d| d.len() == 32) => {
                Some(c.to_owned())
            }
            _ => return refuse("invalid_request"),
        };
        let code = random_token("AQ");
        if self.codes.len() > 1024 {
            // Forget codes that can no longer be exchanged (expired and never used).
            let ttl = self.code_ttl;
            self.codes.retain(|_, c| c.grant.is_some() || c.issued_at.elapsed() < ttl);
        }
        self.codes.insert(
            code.clone(),
            Code {
                grant: None,
                redirect_uri: redirect_uri.to_owned(),
                user_id: user_id.to_owned(),
                scopes,
                challenge,
                issued_at: Instant::now(),
                revocation_generation: self.faults.revocation_generation(),
            },
        );
        AuthorizeOutcome::Redirect(with_query(redirect_uri, &[("code", &code), ("state", state)]))
    }

    fn check_client(&self, client: &ClientAuth, pkce: bool) -> Result<(), GrantError> {
        match client {
            ClientAuth::Basic { client_id, client_secret } => {
                if *client_id != self.client_id {
                    Err(GrantError::new("invalid_client", "Invalid client"))
                } else if *client_secret != self.client_secret {
                    Err(GrantError::new("invalid_client", "Invalid client secret"))
                } else {
                    Ok(())
                }
            }
            ClientAuth::PublicId(client_id) if *client_id != self.client_id => {
                Err(GrantError::new("invalid_client", "Invalid client"))
            }
            ClientAuth::PublicId(_) if pkce => Ok(()),
            ClientAuth::PublicId(_) => Err(GrantError::new("invalid_client", "Invalid client secret")),
            ClientAuth::None => Err(GrantError::new("invalid_client", "Invalid client")),
        }
    }

    /// Exchanges an authorization code (`grant_type=authorization_code`).
    ///
    /// # Errors
    /// `invalid_grant` for an unknown, used, expired or revoked code, a redirect URI other
    /// than the authorization's, or a wrong PKCE verifier (presenting a used code also
    /// revokes the tokens it gave); `invalid_client` for bad client authentication;
    /// `invalid_request` for a missing verifier.
    pub fn exchange_code(
        &mut self,
        code: &str,
        redirect_uri: Option<&str>,
        client: &ClientAuth,
        verifier: Option<&str>,
    ) -> Result<TokenPair, GrantError> {
        let invalid_code = GrantError::new("invalid_grant", "Invalid authorization code");
        self.check_client(client, true)?;
        let Some(record) = self.codes.get(code) else {
            return Err(invalid_code);
        };
        self.check_client(client, record.challenge.is_some())?;
        if let Some(grant) = record.grant {
            // RFC 6749 §4.1.2: a code used twice revokes what it gave.
            if let Some(grant) = self.grants.get_mut(&grant) {
                grant.revoked = true;
            }
            return Err(invalid_code);
        }
        if record.revocation_generation < self.faults.revocation_generation() {
            return Err(invalid_code);
        }
        if record.issued_at.elapsed() >= self.code_ttl {
            return Err(GrantError::new("invalid_grant", "Authorization code expired"));
        }
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(GrantError::new("invalid_grant", "Invalid redirect URI"));
        }
        if let Some(challenge) = &record.challenge {
            let Some(verifier) = verifier else {
                return Err(GrantError::invalid_request("code_verifier required"));
            };
            if !is_valid_pkce_verifier(verifier) || pkce_challenge_s256(verifier) != *challenge {
                return Err(GrantError::new("invalid_grant", "code_verifier was incorrect"));
            }
        }
        let (user_id, scopes, pkce) = (record.user_id.clone(), record.scopes.clone(), record.challenge.is_some());
        let grant = self.new_grant(user_id, scopes, pkce);
        if let Some(record) = self.codes.get_mut(code) {
            record.grant = Some(grant);
        }
        Ok(self.issue_pair(grant, self.access_token_ttl))
    }

    /// Refreshes (`grant_type=refresh_token`): a new access token and a new refresh token;
    /// the presented refresh token is spent. Without rotation
    /// ([`set_rotate_refresh_tokens`](Self::set_rotate_refresh_tokens)`(false)`) the
    /// presented refresh token stays valid and is returned as the pair's refresh token.
    ///
    /// # Errors
    /// `invalid_grant` for an unknown, used, revoked or expired refresh token (with
    /// `reuse_revokes_grant`, a reuse also revokes the whole grant); `invalid_client` for bad
    /// client authentication (a public client may refresh with its `client_id` alone only
    /// for a grant made with PKCE).
    pub fn refresh(&mut self, refresh_token: &str, client: &ClientAuth) -> Result<TokenPair, GrantError> {
        let invalid = GrantError::new("invalid_grant", "Invalid refresh token");
        // Client authentication comes first (RFC 6749 §5.2); PKCE is checked per grant below.
        self.check_client(client, true)?;
        let Some(record) = self.refresh.get(refresh_token) else {
            return Err(invalid);
        };
        let grant_id = record.grant;
        let used = record.used;
        let Some(grant) = self.grants.get(&grant_id) else {
            return Err(invalid);
        };
        self.check_client(client, grant.pkce)?;
        if used {
            if self.reuse_revokes_grant
                && let Some(grant) = self.grants.get_mut(&grant_id)
            {
                grant.revoked = true;
            }
            return Err(invalid);
        }
        if grant.revoked || grant.revocation_generation < self.faults.revocation_generation() {
            return Err(GrantError::new("invalid_grant", "Refresh token revoked"));
        }
        if grant.authorized_at.elapsed() >= self.refresh_token_lifetime {
            return Err(GrantError::new("invalid_grant", "Refresh token expired"));
        }
        if !self.rotate_refresh_tokens {
            let access_token = self.issue_access(grant_id, self.access_token_ttl);
            let scopes = self.grants.get(&grant_id).map(|g| g.scopes.clone()).unwrap_or_default();
            return Ok(TokenPair {
                access_token,
                refresh_token: refresh_token.to_owned(),
                expires_in: self.access_token_ttl,
                scopes,
            });
        }
        if let Some(record) = self.refresh.get_mut(refresh_token) {
            record.used = true;
        }
        Ok(self.issue_pair(grant_id, self.access_token_ttl))
    }

    /// Issues a token pair to `user_id` without the authorization flow (for tests): a new
    /// grant of `scopes` whose refresh token works with the client id alone (as after PKCE)
    /// or with Basic authentication.
    pub fn issue(&mut self, user_id: &str, scopes: Vec<String>, access_token_ttl: Duration) -> TokenPair {
        let grant = self.new_grant(user_id.to_owned(), scopes, true);
        self.issue_pair(grant, access_token_ttl)
    }

    /// Revokes the grant `token` belongs to (an access or a refresh token of it): every
    /// token of that grant stops working, as Google's and RFC 7009's revocation endpoints
    /// do. Returns `false` when the token is unknown or its grant already revoked (Google
    /// then answers `400 invalid_token`).
    pub fn revoke(&mut self, token: &str) -> bool {
        let grant = self.access.get(token).map(|r| r.grant).or_else(|| self.refresh.get(token).map(|r| r.grant));
        match grant.and_then(|g| self.grants.get_mut(&g)) {
            Some(grant) if !grant.revoked && grant.revocation_generation >= self.faults.revocation_generation() => {
                grant.revoked = true;
                true
            }
            _ => false,
        }
    }

    /// Checks a bearer token.
    ///
    /// # Errors
    /// [`AccessError::Missing`] for `None`, `Invalid` for an unknown or revoked token,
    /// `Expired` for one past its lifetime.
    pub fn validate(&self, token: Option<&str>) -> Result<AccessInfo, AccessError> {
        let token = token.ok_or(AccessError::Missing)?;
        let record = self.access.get(token).ok_or(AccessError::Invalid)?;
        let grant = self.grants.get(&record.grant).ok_or(AccessError::Invalid)?;
        if grant.revoked || grant.revocation_generation < self.faults.revocation_generation() {
            return Err(AccessError::Invalid);
        }
        if record.expiry_generation < self.faults.expiry_generation() || Instant::now() >= record.expires_at {
            return Err(AccessError::Expired);
        }
        Ok(AccessInfo { user_id: grant.user_id.clone(), scopes: grant.scopes.clone() })
    }

    fn new_grant(&mut self, user_id: String, scopes: Vec<String>, pkce: bool) -> u64 {
        let id = self.next_grant;
        self.next_grant += 1;
        self.grants.insert(
            id,
            Grant {
                user_id,
                scopes,
                pkce,
                authorized_at: Instant::now(),
                revoked: false,
                revocation_generation: self.faults.revocation_generation(),
            },
        );
        id
    }

    fn issue_access(&mut self, grant: u64, ttl: Duration) -> String {
        let now = Instant::now();
        if self.access.len() > 4096 {
            self.access.retain(|_, r| r.expires_at > now);
        }
        let access_token = random_token(&self.token_prefix);
        self.access.insert(
            access_token.clone(),
            AccessRecord { grant, expires_at: now + ttl, expiry_generation: self.faults.expiry_generation() },
        );
        access_token
    }

    fn issue_pair(&mut self, grant: u64, ttl: Duration) -> TokenPair {
        let access_token = self.issue_access(grant, ttl);
        let refresh_token = random_token("AQ");
        self.refresh.insert(refresh_token.clone(), RefreshRecord { grant, used: false });
        let scopes = self.grants.get(&grant).map(|g| g.scopes.clone()).unwrap_or_default();
        TokenPair { access_token, refresh_token, expires_in: ttl, scopes }
    }
}

/// `base` with `pairs` appended to its query string (percent-encoded).
pub fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = base.to_owned();
    let mut separator = if base.contains('?') { '&' } else { '?' };
    for (key, value) in pairs {
        url.push(separator);
        url.push_str(&url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>());
        url.push('=');
        url.push_str(&url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>());
        separator = '&';
    }
    url
}
