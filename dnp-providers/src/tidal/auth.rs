//! OAuth 2.1 for TIDAL with the [`oauth2`] crate: the authorization code flow with PKCE
//! (S256) and `state`, code exchange, refresh.
//!
//! - The user approves dnp on TIDAL's login page (`https://login.tidal.com/authorize`,
//!   [`TidalConfig::authorize_url`]) for [`SCOPES`], with a fresh `state` and PKCE verifier
//!   each time; the code is exchanged at `https://auth.tidal.com/v1/oauth2/token`
//!   (`/token` below [`TidalConfig::auth_base_url`]).
//! - With a client secret the token endpoint is called with HTTP Basic authentication;
//!   without one (a public client, TIDAL's usual third-party setup) the client id goes in
//!   the body and PKCE proves the caller.
//! - Refresh: TIDAL answers a refresh with a new access token and no new refresh token;
//!   the old refresh token stays valid. [`TokenSet::refresh_token`] is then `None` and the
//!   caller keeps the one it has (a new one, should TIDAL ever send it, is returned and
//!   must be persisted at once). `invalid_grant` (expired or revoked) is `NeedsReauth`.
//! - TIDAL documents no token revocation for third-party apps: [`TidalAuth::revoke`] is
//!   `Unsupported`, and users remove dnp's access in their TIDAL account settings.

use std::fmt;

use async_trait::async_trait;
use dnp_core::{AuthorizationRequest, ProviderAuth, ProviderError, ProviderId, TokenSet};
use oauth2::{AuthUrl, RedirectUrl, TokenUrl};
use secrecy::SecretString;

use super::config::TidalConfig;
use crate::http::ConfigError;
use crate::oauth::{ClientAuth, FlowSpec, OAuthCodeFlow, invalid_url};

/// The scopes dnp asks for: read and change "My Collection" (tracks, albums, artists,
/// playlists) and the user's playlists, and read the account (its user id, to tell the
/// user's own playlists).
pub const SCOPES: [&str; 5] = ["collection.read", "collection.write", "playlists.read", "playlists.write", "user.read"];

/// The token endpoint, as named in errors and metrics.
const TOKEN_ENDPOINT: &str = "POST /v1/oauth2/token";

/// [`ProviderAuth`] for TIDAL. `Debug` prints the client id and redirect URI only.
pub struct TidalAuth {
    config: TidalConfig,
    flow: OAuthCodeFlow,
}

impl fmt::Debug for TidalAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TidalAuth")
            .field("client_id", &self.config.client_id)
            .field("redirect_uri", &self.config.redirect_uri)
            .field("auth_base_url", &self.config.auth_base_url)
            .field("authorize_url", &self.config.authorize_url)
            .finish_non_exhaustive()
    }
}

impl TidalAuth {
    /// OAuth for the app of `config`, against `config.authorize_url` and
    /// `config.auth_base_url`.
    ///
    /// # Errors
    /// [`ConfigError`] when a URL is unusable or TLS cannot be set up.
    pub fn new(config: TidalConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let base = config.auth_base_url.trim_end_matches('/');
        let flow = OAuthCodeFlow::new(FlowSpec {
            provider: ProviderId::TIDAL,
            display_name: "TIDAL",
            refresh_refused: "expired, revoked or already used",
            token_endpoint: TOKEN_ENDPOINT,
            client_id: &config.client_id,
            client_secret: config.client_secret.as_ref(),
            client_auth: ClientAuth::BasicWithSecret,
            auth_url: AuthUrl::new(config.authorize_url.clone()).map_err(invalid_url("TIDAL_AUTHORIZE_URL"))?,
            token_url: TokenUrl::new(format!("{base}/token")).map_err(invalid_url("TIDAL_AUTH_BASE_URL"))?,
            redirect: RedirectUrl::new(config.redirect_uri.clone()).map_err(invalid_url("TIDAL_REDIRECT_URI"))?,
            http: &config.http,
            scopes: &SCOPES,
            extra_params: &[],
        })?;
        Ok(Self { config, flow })
    }
}

#[async_trait]
impl ProviderAuth for TidalAuth {
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

    async fn revoke(&self, _tokens: &TokenSet) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported {
            provider: self.flow.provider().clone(),
            what: "token revocation (TIDAL documents none for third-party apps: remove dnp's access in the \
                   TIDAL account settings)"
                .into(),
        })
    }
}
