//! Google OAuth 2.0 for YouTube with the [`oauth2`] crate: the authorization code flow
//! with PKCE (S256) and `state`, code exchange, refresh, revocation.
//!
//! - The authorize URL asks for [`SCOPES`] with `access_type=offline` (so Google issues a
//!   refresh token), `prompt=consent` (so it issues one again when the user connects a
//!   second time) and `include_granted_scopes=true`, with a fresh `state` and PKCE
//!   verifier each time.
//! - The client id and secret go in the token request body, as Google documents.
//! - Refresh: Google does not rotate refresh tokens; its answer has no `refresh_token`, so
//!   [`TokenSet::refresh_token`] is `None` and the caller keeps the one it has.
//!   `invalid_grant` (revoked by the user, unused for 6 months, the password changed, or 7
//!   days old for a project whose OAuth consent screen is still in "Testing") is
//!   `NeedsReauth`.
//! - Revoke: `POST {GOOGLE_REVOKE_URL}` with the refresh token (which revokes the whole
//!   grant) or, without one, the access token. A token Google no longer knows is already
//!   revoked: that is a success.

use std::fmt;

use async_trait::async_trait;
use dnp_core::{AuthorizationRequest, ProviderAuth, ProviderError, ProviderId, TokenSet};
use oauth2::{AuthUrl, RedirectUrl, TokenUrl};
use secrecy::{ExposeSecret, SecretString};

use super::config::YouTubeMusicConfig;
use crate::http::{ConfigError, ErrorBody, parse_retry_after};
use crate::oauth::{ClientAuth, FlowSpec, OAuthCodeFlow, invalid_url};

/// The scopes dnp asks for: read the account (`youtube.readonly`) and manage it over SSL
/// (`youtube.force-ssl`: rate videos, edit playlists, subscribe and unsubscribe).
pub const SCOPES: [&str; 2] =
    ["https://www.googleapis.com/auth/youtube.readonly", "https://www.googleapis.com/auth/youtube.force-ssl"];

/// The token endpoint, as named in errors.
const TOKEN_ENDPOINT: &str = "POST /token";
/// The revocation endpoint, as named in errors.
const REVOKE_ENDPOINT: &str = "POST /revoke";

/// Where a user sees and removes the apps with access to their Google account.
pub const PERMISSIONS_PAGE: &str = "https://myaccount.google.com/permissions";

/// [`ProviderAuth`] for YouTube (Google OAuth). `Debug` prints the client id and the URLs
/// only.
pub struct YouTubeMusicAuth {
    config: YouTubeMusicConfig,
    flow: OAuthCodeFlow,
}

impl fmt::Debug for YouTubeMusicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YouTubeMusicAuth")
            .field("client_id", &self.config.client_id)
            .field("redirect_uri", &self.config.redirect_uri)
            .field("auth_url", &self.config.auth_url)
            .field("token_url", &self.config.token_url)
            .finish_non_exhaustive()
    }
}

impl YouTubeMusicAuth {
    /// OAuth for the client of `config`, against its OAuth endpoints.
    ///
    /// # Errors
    /// [`ConfigError`] when a URL is unusable or TLS cannot be set up.
    pub fn new(config: YouTubeMusicConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let flow = OAuthCodeFlow::new(FlowSpec {
            provider: ProviderId::YOUTUBE_MUSIC,
            display_name: "Google",
            refresh_refused: "revoked, expired or unused for 6 months",
            token_endpoint: TOKEN_ENDPOINT,
            client_id: &config.client_id,
            client_secret: config.client_secret.as_ref(),
            client_auth: ClientAuth::RequestBody,
            auth_url: AuthUrl::new(config.auth_url.clone()).map_err(invalid_url("GOOGLE_AUTH_URL"))?,
            token_url: TokenUrl::new(config.token_url.clone()).map_err(invalid_url("GOOGLE_TOKEN_URL"))?,
            redirect: RedirectUrl::new(config.redirect_uri.clone()).map_err(invalid_url("YOUTUBE_REDIRECT_URI"))?,
            http: &config.http,
            scopes: &SCOPES,
            extra_params: &[("access_type", "offline"), ("prompt", "consent"), ("include_granted_scopes", "true")],
        })?;
        Ok(Self { config, flow })
    }
}

#[async_trait]
impl ProviderAuth for YouTubeMusicAuth {
    fn provider(&self) -> &ProviderId {
        self.flow.provider()
    }

    fn authorization_request(&self) -> Result<AuthorizationRequest, ProviderError> {
        Ok(self.flow.authorization_request())
    }

    async fn exchange_code(&self, code: &str, pkce_verifier: Option<&SecretString>) -> Result<TokenSet, ProviderError> {
        self.flow.exchange_code(code, pkce_verifier).await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        self.flow.refresh(refresh_token).await
    }

    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ProviderError> {
        let token = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
        let provider = self.flow.provider().clone();
        let transient = |detail: String| ProviderError::Transient {
            provider: provider.clone(),
            endpoint: REVOKE_ENDPOINT.into(),
            detail,
        };
        let response = self
            .flow
            .http()
            .post(&self.config.revoke_url)
            .form(&[("token", token.expose_secret())])
            .send()
            .await
            .map_err(|e| transient(crate::http::transport_message(&e)))?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers());
        let body = response.bytes().await.map_err(|e| transient(crate::http::transport_message(&e)))?;
        let error = ErrorBody::parse(&body);
        match status {
            200..=299 => Ok(()),
            // Google answers 400 `invalid_token` for a token it no longer knows: nothing to revoke.
            400 if error.reason.as_deref() == Some("invalid_token") => Ok(()),
            429 => Err(ProviderError::RateLimited { provider, retry_after }),
            500..=599 => Err(transient(error.describe(status))),
            _ => Err(ProviderError::InvalidInput {
                provider,
                endpoint: REVOKE_ENDPOINT.into(),
                detail: error.describe(status),
            }),
        }
    }
}
