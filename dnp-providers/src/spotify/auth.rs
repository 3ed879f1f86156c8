//! OAuth 2.0 for Spotify with the [`oauth2`] crate: the authorization code flow with
//! PKCE (S256) and `state`, code exchange, refresh with rotation.
//!
//! - The authorize URL asks for [`SCOPES`], with a fresh `state` and PKCE verifier each
//!   time.
//! - With a client secret the token endpoint is called with HTTP Basic authentication;
//!   without one (a public client) the client id goes in the body, as Spotify's PKCE
//!   flow expects.
//! - Refresh: Spotify may return a new refresh token; each one is good once, so the new
//!   one is returned and the caller persists it at once. `invalid_grant` (the token
//!   expired, was revoked or was already used; refresh tokens also expire 6 months after
//!   the user's original authorization) is `NeedsReauth`.
//! - Spotify has no token revocation endpoint: [`SpotifyAuth::revoke`] is `Unsupported`,
//!   and users remove dnp's access on their account's Apps page.

use std::fmt;

use async_trait::async_trait;
use dnp_core::{AuthorizationRequest, ProviderAuth, ProviderError, ProviderId, TokenSet};
use oauth2::{AuthUrl, RedirectUrl, TokenUrl};
use secrecy::SecretString;

use super::config::SpotifyConfig;
use crate::http::ConfigError;
use crate::oauth::{ClientAuth, FlowSpec, OAuthCodeFlow, invalid_url};

/// The scopes dnp asks for: read and change the library, the playlists and the follows.
pub const SCOPES: [&str; 7] = [
    "user-library-read",
    "user-library-modify",
    "playlist-read-private",
    "playlist-modify-private",
    "playlist-modify-public",
    "user-follow-read",
    "user-follow-modify",
];

/// The token endpoint, as named in errors and metrics.
const TOKEN_ENDPOINT: &str = "POST /api/token";

/// Where the user removes dnp's access (Spotify has no revocation endpoint).
pub const APPS_PAGE: &str = "https://www.spotify.com/account/apps/";

/// [`ProviderAuth`] for Spotify. `Debug` prints the client id and redirect URI only.
pub struct SpotifyAuth {
    config: SpotifyConfig,
    flow: OAuthCodeFlow,
}

impl fmt::Debug for SpotifyAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpotifyAuth")
            .field("client_id", &self.config.client_id)
            .field("redirect_uri", &self.config.redirect_uri)
            .field("accounts_base_url", &self.config.accounts_base_url)
            .finish_non_exhaustive()
    }
}

impl SpotifyAuth {
    /// OAuth for the app of `config`, against `config.accounts_base_url`.
    ///
    /// # Errors
    /// [`ConfigError`] when a URL is unusable or TLS cannot be set up.
    pub fn new(config: SpotifyConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let base = config.accounts_base_url.trim_end_matches('/');
        let flow = OAuthCodeFlow::new(FlowSpec {
            provider: ProviderId::SPOTIFY,
            display_name: "Spotify",
            refresh_refused: "expired, revoked or already used",
            token_endpoint: TOKEN_ENDPOINT,
            client_id: &config.client_id,
            client_secret: config.client_secret.as_ref(),
            client_auth: ClientAuth::BasicWithSecret,
            auth_url: AuthUrl::new(format!("{base}/authorize")).map_err(invalid_url("SPOTIFY_ACCOUNTS_BASE_URL"))?,
            token_url: TokenUrl::new(format!("{base}/api/token")).map_err(invalid_url("SPOTIFY_ACCOUNTS_BASE_URL"))?,
            redirect: RedirectUrl::new(config.redirect_uri.clone()).map_err(invalid_url("SPOTIFY_REDIRECT_URI"))?,
            http: &config.http,
            scopes: &SCOPES,
            extra_params: &[],
        })?;
        Ok(Self { config, flow })
    }
}

#[async_trait]
impl ProviderAuth for SpotifyAuth {
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
            what: format!("token revocation (Spotify has none: remove dnp's access at {APPS_PAGE})"),
        })
    }
}
