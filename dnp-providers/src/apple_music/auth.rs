//! Apple Music's two tokens: the developer token dnp signs ([`DeveloperTokenSigner`]) and
//! the Music User Token MusicKit JS obtains in the user's browser ([`AppleMusicAuth`]).
//!
//! # The developer token
//! An ES256 JWT with header `{"alg": "ES256", "kid": APPLE_MUSIC_KEY_ID}` and claims
//! `{"iss": APPLE_MUSIC_TEAM_ID, "iat", "exp"}` (`exp - iat` at most 15,777,000 s), signed
//! with the MusicKit private key. It identifies the app, not a user: one is shared by every
//! connection, cached, and replaced [a margin](super::AppleMusicConfig::developer_token_margin)
//! before it expires, or at once when Apple answers `401` (then with a later `iat`, so the
//! new token differs from the refused one).
//!
//! # Connecting a user (the Music User Token)
//! Apple has no OAuth authorization endpoint: the token comes from MusicKit JS.
//! 1. [`AppleMusicAuth::authorization_request`] returns the URL of the server's MusicKit
//!    page (`APPLE_MUSIC_CONNECT_URL`, e.g. `https://dnp.example/connect/apple-music`)
//!    with a fresh `state` (and `redirect_uri` when configured).
//! 2. That page configures MusicKit JS with a developer token
//!    ([`AppleMusicAuth::developer_token`]; Apple designs it to be embedded in web pages)
//!    and calls `MusicKit.getInstance().authorize()`; the user signs in with their Apple
//!    Account and allows access; MusicKit resolves with the Music User Token.
//! 3. The page sends the token back with the `state` (a POST to the server's callback); the
//!    server checks the state and calls [`exchange_code`](dnp_core::ProviderAuth::exchange_code)
//!    with the token as the "code". The adapter checks the token against the API
//!    (`GET /v1/me/storefront`) and returns it as the connection's access token, with no
//!    refresh token and no known expiry.
//!
//! There is no refresh: when Apple refuses the Music User Token (`403`, or `401` while the
//! developer token is fine), [`refresh`](dnp_core::ProviderAuth::refresh) answers
//! `NeedsReauth` and the user connects again through the MusicKit page. Apple offers no
//! revocation endpoint ([`revoke`](dnp_core::ProviderAuth::revoke) is `Unsupported`); the
//! user removes access in their Apple Account settings.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dnp_core::{AuthorizationRequest, ProviderAuth, ProviderError, ProviderId, StaticToken, TokenSet, TokenSource};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::client::AppleMusicClient;
use super::config::AppleMusicConfig;
use crate::http::ConfigError;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
}

struct Minted {
    token: SecretString,
    iat: i64,
    exp: i64,
}

/// Signs, caches and renews developer tokens. Implements [`TokenSource`] so the shared
/// HTTP stack sends it as the bearer token and renews it (single-flight) after a `401`.
///
/// `Debug` shows the team and key ids only.
pub struct DeveloperTokenSigner {
    provider: ProviderId,
    team_id: String,
    key_id: String,
    key: EncodingKey,
    ttl: i64,
    margin: i64,
    cached: Mutex<Option<Minted>>,
}

impl fmt::Debug for DeveloperTokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeveloperTokenSigner")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("ttl_s", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl DeveloperTokenSigner {
    /// A signer with `config`'s team, key, lifetime and margin.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the key does not parse (see
    /// [`AppleMusicConfig::validate`]).
    pub fn new(config: &AppleMusicConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let key = EncodingKey::from_ec_pem(config.private_key.expose_secret().as_bytes()).map_err(|_| {
            ConfigError::Invalid { name: "APPLE_MUSIC_PRIVATE_KEY", reason: "not a P-256 PKCS#8 PEM key".into() }
        })?;
        let provider = ProviderId::new(ProviderId::APPLE_MUSIC)
            .map_err(|e| ConfigError::Invalid { name: "provider id", reason: e.to_string() })?;
        Ok(Self {
            provider,
            team_id: config.team_id.clone(),
            key_id: config.key_id.clone(),
            key,
            ttl: config.developer_token_ttl.as_secs() as i64,
            margin: config.developer_token_margin.as_secs() as i64,
            cached: Mutex::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Minted>> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mint(&self, iat: i64) -> Result<Minted, ProviderError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        header.typ = None;
        let exp = iat + self.ttl;
        let token =
            jsonwebtoken::encode(&header, &Claims { iss: &self.team_id, iat, exp }, &self.key).map_err(|e| {
                ProviderError::InvalidInput {
                    provider: self.provider.clone(),
                    endpoint: "developer token".into(),
                    detail: format!("signing failed: {e}"),
                }
            })?;
        Ok(Minted { token: SecretString::from(token), iat, exp })
    }

    /// The developer token to use at `now` (Unix seconds): the cached one while it is
    /// valid for more than the margin, else a new one.
    ///
    /// # Errors
    /// `InvalidInput` when signing fails (a broken key).
    pub fn token_at(&self, now: i64) -> Result<SecretString, ProviderError> {
        let mut cached = self.lock();
        if let Some(m) = &*cached
            && m.exp - self.margin > now
            && m.iat <= now + 60
        {
            return Ok(m.token.clone());
        }
        let minted = self.mint(now)?;
        let token = minted.token.clone();
        *cached = Some(minted);
        Ok(token)
    }

    /// A new token after Apple refused `rejected` at `now`: the cached token when it
    /// already differs (another request renewed it), else one with a later `iat` than the
    /// refused one, so it differs from it.
    ///
    /// # Errors
    /// As [`token_at`](Self::token_at).
    pub fn renew_at(&self, rejected: &SecretString, now: i64) -> Result<SecretString, ProviderError> {
        let mut cached = self.lock();
        let iat = match &*cached {
            Some(m) if m.token.expose_secret() != rejected.expose_secret() => return Ok(m.token.clone()),
            Some(m) => now.max(m.iat + 1),
            None => now,
        };
        let mut minted = self.mint(iat)?;
        // ES256 signatures here are deterministic: a token minted in the same second as the
        // refused one, with the same claims, would be the refused token again.
        if minted.token.expose_secret() == rejected.expose_secret() {
            minted = self.mint(iat + 1)?;
        }
        let token = minted.token.clone();
        *cached = Some(minted);
        Ok(token)
    }

    /// The current developer token (signed or renewed as needed).
    ///
    /// # Errors
    /// As [`token_at`](Self::token_at).
    pub fn token(&self) -> Result<SecretString, ProviderError> {
        self.token_at(chrono::Utc::now().timestamp())
    }
}

#[async_trait]
impl TokenSource for DeveloperTokenSigner {
    async fn access_token(&self) -> Result<SecretString, ProviderError> {
        self.token()
    }

    async fn refresh_after_unauthorized(&self, rejected: &SecretString) -> Result<SecretString, ProviderError> {
        self.renew_at(rejected, chrono::Utc::now().timestamp())
    }
}

/// [`ProviderAuth`] for Apple Music: the MusicKit page, the Music User Token as the "code",
/// no refresh, no revocation. See the [module docs](self).
#[derive(Clone)]
pub struct AppleMusicAuth {
    provider: ProviderId,
    config: AppleMusicConfig,
    client: AppleMusicClient,
}

impl fmt::Debug for AppleMusicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppleMusicAuth").field("connect_url", &self.config.connect_url).finish_non_exhaustive()
    }
}

impl AppleMusicAuth {
    /// Auth over its own API client.
    ///
    /// # Errors
    /// [`ConfigError`] for an unusable configuration.
    pub fn new(config: AppleMusicConfig) -> Result<Self, ConfigError> {
        let client = AppleMusicClient::new(&config)?;
        Ok(Self::with_client(config, client))
    }

    /// Auth sharing `client` (its developer token cache, limits and breaker).
    pub fn with_client(config: AppleMusicConfig, client: AppleMusicClient) -> Self {
        Self { provider: client.api().provider().clone(), config, client }
    }

    /// A developer token for the MusicKit page (`MusicKit.configure({developerToken})`).
    /// Apple designs developer tokens to be embedded in web pages: it identifies the app,
    /// grants nothing of any user's.
    ///
    /// # Errors
    /// `InvalidInput` when signing fails.
    pub fn developer_token(&self) -> Result<SecretString, ProviderError> {
        self.client.signer().token()
    }
}

fn random_state() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl ProviderAuth for AppleMusicAuth {
    fn provider(&self) -> &ProviderId {
        &self.provider
    }

    fn authorization_request(&self) -> Result<AuthorizationRequest, ProviderError> {
        let mut url = url::Url::parse(&self.config.connect_url).map_err(|e| ProviderError::InvalidInput {
            provider: self.provider.clone(),
            endpoint: "APPLE_MUSIC_CONNECT_URL".into(),
            detail: e.to_string(),
        })?;
        let state = random_state();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("state", &state);
            if let Some(redirect) = &self.config.redirect_uri {
                query.append_pair("redirect_uri", redirect);
            }
        }
        Ok(AuthorizationRequest { url: url.into(), state, pkce_verifier: None })
    }

    /// Takes the Music User Token MusicKit JS returned (the "code"), checks it with
    /// `GET /v1/me/storefront`, and returns it as the access token (no refresh token, no
    /// known expiry).
    ///
    /// # Errors
    /// `InvalidInput` for something that cannot be a token, `NeedsReauth` when Apple
    /// refuses it, and the HTTP stack's errors.
    async fn exchange_code(&self, code: &str, _: Option<&SecretString>) -> Result<TokenSet, ProviderError> {
        let token = code.trim();
        if token.is_empty() || token.len() > 4096 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ProviderError::InvalidInput {
                provider: self.provider.clone(),
                endpoint: "Music User Token".into(),
                detail: "not a Music User Token (empty, too long, or not printable ASCII)".into(),
            });
        }
        let token = SecretString::from(token.to_owned());
        let source = StaticToken::new(self.provider.clone(), token.clone());
        self.client.check_user_token(&source).await?;
        Ok(TokenSet { access_token: token, refresh_token: None, expires_at: None, scopes: Vec::new() })
    }

    /// Always `NeedsReauth`: a Music User Token cannot be refreshed.
    async fn refresh(&self, _: &SecretString) -> Result<TokenSet, ProviderError> {
        Err(ProviderError::NeedsReauth {
            provider: self.provider.clone(),
            reason: "Apple Music User Tokens cannot be refreshed: connect again through MusicKit".into(),
        })
    }

    /// Always `Unsupported`: Apple has no revocation endpoint.
    async fn revoke(&self, _: &TokenSet) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported {
            provider: self.provider.clone(),
            what: "revoking a Music User Token (the user removes access in their Apple Account settings)".into(),
        })
    }
}

/// A shared signer (the client and the auth share one cache).
pub(crate) type SharedSigner = Arc<DeveloperTokenSigner>;

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_KEY: &str = include_str!("testdata/test_key.p8");
    const TEST_PUBLIC_KEY: &str = include_str!("testdata/test_key.pub.pem");

    fn config() -> AppleMusicConfig {
        AppleMusicConfig::new("TEAM123456", "KEYID12345", SecretString::from(TEST_KEY), "https://dnp.example/connect")
            .unwrap()
    }

    fn decode(token: &SecretString) -> (jsonwebtoken::Header, serde_json::Value) {
        let key = jsonwebtoken::DecodingKey::from_ec_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<serde_json::Value>(token.expose_secret(), &key, &validation).unwrap();
        (data.header, data.claims)
    }

    #[test]
    fn the_developer_token_has_apples_header_and_claims() {
        let signer = DeveloperTokenSigner::new(&config()).unwrap();
        let token = signer.token_at(1_800_000_000).unwrap();
        let (header, claims) = decode(&token);
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEYID12345"));
        assert_eq!(claims["iss"], "TEAM123456");
        assert_eq!(claims["iat"], 1_800_000_000);
        assert_eq!(claims["exp"], 1_800_000_000 + 12 * 3600);
        assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 15_777_000);
        assert!(!format!("{signer:?}").contains(token.expose_secret()));
    }

    #[test]
    fn the_token_is_cached_then_renewed_a_margin_before_expiry() {
        let signer = DeveloperTokenSigner::new(&config()).unwrap();
        let t0 = 1_800_000_000;
        let first = signer.token_at(t0).unwrap();
        let ttl = 12 * 3600;
        let later = signer.token_at(t0 + ttl - 601).unwrap();
        assert_eq!(first.expose_secret(), later.expose_secret(), "still valid for more than the margin");
        let renewed = signer.token_at(t0 + ttl - 599).unwrap();
        assert_ne!(first.expose_secret(), renewed.expose_secret(), "inside the 10-minute margin");
        assert_eq!(decode(&renewed).1["iat"], t0 + ttl - 599);
    }

    #[test]
    fn a_refused_token_is_replaced_by_a_different_one_once() {
        let signer = DeveloperTokenSigner::new(&config()).unwrap();
        let now = 1_800_000_000;
        let refused = signer.token_at(now).unwrap();
        let renewed = signer.renew_at(&refused, now).unwrap();
        assert_ne!(refused.expose_secret(), renewed.expose_secret(), "same second, later iat");
        assert_eq!(decode(&renewed).1["iat"], now + 1);
        // A second request that saw the same refusal gets the renewed token, not a third one.
        let again = signer.renew_at(&refused, now).unwrap();
        assert_eq!(again.expose_secret(), renewed.expose_secret());
    }

    #[tokio::test]
    async fn the_connect_url_carries_a_fresh_state_and_refresh_needs_reauth() {
        let mut config = config();
        config.redirect_uri = Some("https://dnp.example/api/v1/connections/apple_music/callback".into());
        let auth = AppleMusicAuth::new(config).unwrap();
        let a = auth.authorization_request().unwrap();
        let b = auth.authorization_request().unwrap();
        assert_ne!(a.state, b.state);
        assert!(a.pkce_verifier.is_none());
        let url = url::Url::parse(&a.url).unwrap();
        assert_eq!(url.path(), "/connect");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("state".into(), a.state.clone())));
        assert!(pairs.iter().any(|(k, v)| k == "redirect_uri" && v.ends_with("/callback")));
        let err = auth.refresh(&SecretString::from("x")).await.unwrap_err();
        assert_eq!(err.code(), "needs_reauth");
        let tokens =
            TokenSet { access_token: SecretString::from("x"), refresh_token: None, expires_at: None, scopes: vec![] };
        assert_eq!(auth.revoke(&tokens).await.unwrap_err().code(), "unsupported");
        let err = auth.exchange_code("  ", None).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input");
    }
}
