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

use super::config::YouTubeMusicConfig;
use crate::http::{ConfigError, ErrorBody, ReqwestTransport, parse_retry_after, redact_text};

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

/// [`ProviderAuth`] for YouTube (Google OAuth). `Debug` prints the client id and the URLs
/// only.
pub struct YouTubeMusicAuth {
    id: ProviderId,
    config: YouTubeMusicConfig,
    http: reqwest::Client,
    auth_url: AuthUrl,
    token_url: TokenUrl,
    redirect: RedirectUrl,
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

type TokenFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, TokenHttpError>> + Send>>;

type Client = oauth2::Client<
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
>;

impl YouTubeMusicAuth {
    /// OAuth for the client of `config`, against its OAuth endpoints.
    ///
    /// # Errors
    /// [`ConfigError`] when a URL is unusable or TLS cannot be set up.
    pub fn new(config: YouTubeMusicConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let invalid =
            |name: &'static str| move |e: url::ParseError| ConfigError::Invalid { name, reason: e.to_string() };
        let auth_url = AuthUrl::new(config.auth_url.clone()).map_err(invalid("GOOGLE_AUTH_URL"))?;
        let token_url = TokenUrl::new(config.token_url.clone()).map_err(invalid("GOOGLE_TOKEN_URL"))?;
        let redirect = RedirectUrl::new(config.redirect_uri.clone()).map_err(invalid("YOUTUBE_REDIRECT_URI"))?;
        let transport = ReqwestTransport::new(&config.http)
            .map_err(|e| ConfigError::Invalid { name: "HTTP client", reason: e.to_string() })?;
        Ok(Self {
            id: ProviderId::new(ProviderId::YOUTUBE_MUSIC)
                .map_err(|e| ConfigError::Invalid { name: "provider id", reason: e.to_string() })?,
            http: transport.client().clone(),
            config,
            auth_url,
            token_url,
            redirect,
        })
    }

    fn client(&self) -> Client {
        let client = BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_uri(self.auth_url.clone())
            .set_token_uri(self.token_url.clone())
            .set_redirect_uri(self.redirect.clone())
            .set_auth_type(AuthType::RequestBody);
        match &self.config.client_secret {
            Some(secret) => client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned())),
            None => client,
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
                            "Google refused the refresh token (revoked, expired or unused for 6 months){}",
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

    fn token_set(response: &BasicTokenResponse) -> TokenSet {
        TokenSet {
            access_token: SecretString::from(response.access_token().secret().clone()),
            refresh_token: response.refresh_token().map(|t| SecretString::from(t.secret().clone())),
            expires_at: response.expires_in().and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| Utc::now() + d),
            scopes: match response.scopes() {
                Some(scopes) => scopes.iter().map(|s| s.to_string()).collect(),
                None => SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            },
        }
    }
}

#[async_trait]
impl ProviderAuth for YouTubeMusicAuth {
    fn provider(&self) -> &ProviderId {
        &self.id
    }

    fn authorization_request(&self) -> Result<AuthorizationRequest, ProviderError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .client()
            .authorize_url(CsrfToken::new_random)
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent")
            .add_extra_param("include_granted_scopes", "true")
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
        Ok(Self::token_set(&response))
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        let client = self.client();
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let http = self.http_fn();
        let response =
            client.exchange_refresh_token(&token).request_async(&http).await.map_err(|e| self.map_error(e, true))?;
        Ok(Self::token_set(&response))
    }

    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ProviderError> {
        let token = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
        let provider = self.id.clone();
        let transient = |detail: String| ProviderError::Transient {
            provider: provider.clone(),
            endpoint: REVOKE_ENDPOINT.into(),
            detail,
        };
        let response = self
            .http
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
