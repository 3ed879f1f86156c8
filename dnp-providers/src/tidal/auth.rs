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
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use chrono::Utc;
use dnp_core::{AuthorizationRequest, ProviderAuth, ProviderError, ProviderId, TokenSet};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardErrorResponse,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};

use super::config::TidalConfig;
use crate::http::{ConfigError, ReqwestTransport, parse_retry_after, redact_text};

/// The scopes dnp asks for: read and change "My Collection" (tracks, albums, artists,
/// playlists) and the user's playlists, and read the account (its user id, to tell the
/// user's own playlists).
pub const SCOPES: [&str; 5] = ["collection.read", "collection.write", "playlists.read", "playlists.write", "user.read"];

/// The token endpoint, as named in errors and metrics.
const TOKEN_ENDPOINT: &str = "POST /v1/oauth2/token";

/// Why a token request failed below OAuth. Never holds a token or a body.
#[derive(Debug, Clone, thiserror::Error)]
enum TokenHttpError {
    #[error("{0}")]
    Transport(String),
    #[error("HTTP {status} from the token endpoint")]
    Server { status: u16 },
    #[error("rate limited by the token endpoint")]
    RateLimited { retry_after: Option<std::time::Duration> },
}

/// [`ProviderAuth`] for TIDAL. `Debug` prints the client id and redirect URI only.
pub struct TidalAuth {
    id: ProviderId,
    config: TidalConfig,
    http: reqwest::Client,
    auth_url: AuthUrl,
    token_url: TokenUrl,
    redirect: RedirectUrl,
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

type TokenFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, TokenHttpError>> + Send>>;

impl TidalAuth {
    /// OAuth for the app of `config`, against `config.authorize_url` and
    /// `config.auth_base_url`.
    ///
    /// # Errors
    /// [`ConfigError`] when a URL is unusable or TLS cannot be set up.
    pub fn new(config: TidalConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let base = config.auth_base_url.trim_end_matches('/');
        let invalid =
            |name: &'static str| move |e: url::ParseError| ConfigError::Invalid { name, reason: e.to_string() };
        let auth_url = AuthUrl::new(config.authorize_url.clone()).map_err(invalid("TIDAL_AUTHORIZE_URL"))?;
        let token_url = TokenUrl::new(format!("{base}/token")).map_err(invalid("TIDAL_AUTH_BASE_URL"))?;
        let redirect = RedirectUrl::new(config.redirect_uri.clone()).map_err(invalid("TIDAL_REDIRECT_URI"))?;
        let transport = ReqwestTransport::new(&config.http)
            .map_err(|e| ConfigError::Invalid { name: "HTTP client", reason: e.to_string() })?;
        Ok(Self {
            id: ProviderId::new(ProviderId::TIDAL)
                .map_err(|e| ConfigError::Invalid { name: "provider id", reason: e.to_string() })?,
            http: transport.client().clone(),
            config,
            auth_url,
            token_url,
            redirect,
        })
    }

    fn client(
        &self,
    ) -> oauth2::Client<
        oauth2::basic::BasicErrorResponse,
        BasicTokenResponse,
        oauth2::basic::BasicTokenIntrospectionResponse,
        oauth2::StandardRevocableToken,
        oauth2::basic::BasicRevocationErrorResponse,
        oauth2::EndpointSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    > {
        let client = BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_uri(self.auth_url.clone())
            .set_token_uri(self.token_url.clone())
            .set_redirect_uri(self.redirect.clone());
        match &self.config.client_secret {
            Some(secret) => client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned())),
            None => client.set_auth_type(AuthType::RequestBody),
        }
    }

    /// The HTTP function the `oauth2` crate calls: reqwest, errors without URL or body.
    fn http_fn(&self) -> impl Fn(HttpRequest) -> TokenFuture + '_ {
        move |request: HttpRequest| {
            let client = self.http.clone();
            Box::pin(async move {
                let request = reqwest::Request::try_from(request)
                    .map_err(|e| TokenHttpError::Transport(crate::http::transport_message(&e)))?;
                let response = client
                    .execute(request)
                    .await
                    .map_err(|e| TokenHttpError::Transport(crate::http::transport_message(&e)))?;
                let status = response.status();
                if status.as_u16() == 429 {
                    return Err(TokenHttpError::RateLimited { retry_after: parse_retry_after(response.headers()) });
                }
                if status.is_server_error() {
                    return Err(TokenHttpError::Server { status: status.as_u16() });
                }
                let headers = response.headers().clone();
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| TokenHttpError::Transport(crate::http::transport_message(&e)))?;
                let mut builder = oauth2::http::Response::builder().status(status.as_u16());
                for (name, value) in &headers {
                    builder = builder.header(name.as_str(), value.as_bytes());
                }
                builder.body(body.to_vec()).map_err(|e| TokenHttpError::Transport(e.to_string()))
            }) as TokenFuture
        }
    }

    fn map_error(
        &self,
        err: RequestTokenError<TokenHttpError, StandardErrorResponse<BasicErrorResponseType>>,
        refreshing: bool,
    ) -> ProviderError {
        let provider = self.id.clone();
        match err {
            RequestTokenError::ServerResponse(response) => {
                let description =
                    response.error_description().map(|d| redact_text(&d.chars().take(200).collect::<String>()));
                match response.error() {
                    BasicErrorResponseType::InvalidGrant if refreshing => ProviderError::NeedsReauth {
                        provider,
                        reason: format!(
                            "TIDAL refused the refresh token (expired, revoked or already used){}",
                            description.map(|d| format!(": {d}")).unwrap_or_default()
                        ),
                    },
                    other => ProviderError::InvalidInput {
                        provider,
                        endpoint: TOKEN_ENDPOINT.into(),
                        detail: format!(
                            "{}{}",
                            other.as_ref(),
                            description.map(|d| format!(": {d}")).unwrap_or_default()
                        ),
                    },
                }
            }
            RequestTokenError::Request(TokenHttpError::RateLimited { retry_after }) => {
                ProviderError::RateLimited { provider, retry_after }
            }
            RequestTokenError::Request(e) => {
                ProviderError::Transient { provider, endpoint: TOKEN_ENDPOINT.into(), detail: e.to_string() }
            }
            // The body of a token response holds tokens: only the path of the bad field is kept.
            RequestTokenError::Parse(e, _body) => ProviderError::Protocol {
                provider,
                endpoint: TOKEN_ENDPOINT.into(),
                detail: format!("the token response does not parse at `{}`", e.path()),
            },
            RequestTokenError::Other(message) => ProviderError::Protocol {
                provider,
                endpoint: TOKEN_ENDPOINT.into(),
                detail: redact_text(&message.chars().take(200).collect::<String>()),
            },
        }
    }

    fn token_set(response: &BasicTokenResponse, requested: &[&str]) -> TokenSet {
        TokenSet {
            access_token: SecretString::from(response.access_token().secret().clone()),
            refresh_token: response.refresh_token().map(|t| SecretString::from(t.secret().clone())),
            expires_at: response.expires_in().and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| Utc::now() + d),
            scopes: match response.scopes() {
                Some(scopes) => scopes.iter().map(|s| s.to_string()).collect(),
                None => requested.iter().map(|s| (*s).to_owned()).collect(),
            },
        }
    }
}

#[async_trait]
impl ProviderAuth for TidalAuth {
    fn provider(&self) -> &ProviderId {
        &self.id
    }

    fn authorization_request(&self) -> Result<AuthorizationRequest, ProviderError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .client()
            .authorize_url(CsrfToken::new_random)
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge)
            .url();
        Ok(AuthorizationRequest {
            url: url.to_string(),
            state: state.secret().clone(),
            pkce_verifier: Some(SecretString::from(verifier.secret().clone())),
        })
    }

    async fn exchange_code(&self, code: &str, pkce_verifier: Option<&SecretString>) -> Result<TokenSet, ProviderError> {
        let client = self.client();
        let mut request = client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(verifier) = pkce_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()));
        }
        let http = self.http_fn();
        let response = request.request_async(&http).await.map_err(|e| self.map_error(e, false))?;
        Ok(Self::token_set(&response, &SCOPES))
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        let client = self.client();
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let http = self.http_fn();
        let response =
            client.exchange_refresh_token(&token).request_async(&http).await.map_err(|e| self.map_error(e, true))?;
        Ok(Self::token_set(&response, &SCOPES))
    }

    async fn revoke(&self, _tokens: &TokenSet) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported {
            provider: self.id.clone(),
            what: "token revocation (TIDAL documents none for third-party apps: remove dnp's access in the \
                   TIDAL account settings)"
                .into(),
        })
    }
}
