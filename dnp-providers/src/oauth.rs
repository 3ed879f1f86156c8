//! The OAuth 2.0 authorization code flow shared by the Spotify, TIDAL and YouTube Music
//! adapters, on the [`oauth2`] crate.
//!
//! [`OAuthCodeFlow`] builds the authorize URL (fresh `state`, PKCE S256, the provider's
//! scopes and extra parameters), exchanges the code, refreshes (a new refresh token is
//! returned when the service rotates it, `None` when the old one stays valid) and maps
//! errors: `invalid_grant` on refresh is `NeedsReauth`, 429 is `RateLimited`, 5xx and
//! transport failures are `Transient`; descriptions are redacted and token bodies never
//! kept. Each adapter's `auth.rs` states only what differs: URLs, env-var names, scopes,
//! extra parameters, how the client authenticates, and revocation.

use std::future::Future;
use std::pin::Pin;

use chrono::Utc;
use dnp_core::{AuthorizationRequest, ProviderError, ProviderId, TokenSet};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardErrorResponse,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};

use crate::http::{ConfigError, HttpConfig, ReqwestTransport, parse_retry_after, redact_text};

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

type TokenFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, TokenHttpError>> + Send>>;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// HTTP Basic with a client secret; the client id in the body without one (a public
    /// client proven by PKCE). Spotify, TIDAL.
    #[cfg(any(feature = "spotify", feature = "tidal"))]
    BasicWithSecret,
    /// Client id (and secret, when there is one) always in the request body. Google.
    #[cfg(feature = "youtube_music")]
    RequestBody,
}

/// What one provider's flow consists of; the URLs are already parsed by the adapter, which
/// names its own env vars in the errors (see [`invalid_url`]).
pub(crate) struct FlowSpec<'a> {
    /// The provider id ([`ProviderId::SPOTIFY`], ...).
    pub(crate) provider: &'static str,
    /// The service's name in messages ("Spotify", "Google").
    pub(crate) display_name: &'static str,
    /// Why the service refuses a refresh token, for the `NeedsReauth` message.
    pub(crate) refresh_refused: &'static str,
    /// The token endpoint, as named in errors ("POST /api/token").
    pub(crate) token_endpoint: &'static str,
    /// The app's client id.
    pub(crate) client_id: &'a str,
    /// The app's client secret, if it has one.
    pub(crate) client_secret: Option<&'a SecretString>,
    /// How the client authenticates at the token endpoint.
    pub(crate) client_auth: ClientAuth,
    /// The authorize URL.
    pub(crate) auth_url: AuthUrl,
    /// The token URL.
    pub(crate) token_url: TokenUrl,
    /// The redirect URI registered for the app.
    pub(crate) redirect: RedirectUrl,
    /// The HTTP settings of the adapter (timeouts, TLS).
    pub(crate) http: &'a HttpConfig,
    /// The scopes asked for, and reported when the token response names none.
    pub(crate) scopes: &'static [&'static str],
    /// Extra query parameters of the authorize URL.
    pub(crate) extra_params: &'static [(&'static str, &'static str)],
}

/// A `map_err` for an unusable URL from the setting `name`.
pub(crate) fn invalid_url(name: &'static str) -> impl Fn(url::ParseError) -> ConfigError {
    move |e: url::ParseError| ConfigError::Invalid { name, reason: e.to_string() }
}

/// The authorization code flow of one provider (see the module docs). Holds the client
/// secret inside the `oauth2` client: no `Debug`.
pub(crate) struct OAuthCodeFlow {
    id: ProviderId,
    display_name: &'static str,
    refresh_refused: &'static str,
    token_endpoint: &'static str,
    client: Client,
    http: reqwest::Client,
    scopes: &'static [&'static str],
    extra_params: &'static [(&'static str, &'static str)],
}

impl OAuthCodeFlow {
    /// The flow of `spec`.
    ///
    /// # Errors
    /// [`ConfigError`] when the provider id is invalid or TLS cannot be set up.
    pub(crate) fn new(spec: FlowSpec<'_>) -> Result<Self, ConfigError> {
        let transport = ReqwestTransport::new(spec.http)
            .map_err(|e| ConfigError::Invalid { name: "HTTP client", reason: e.to_string() })?;
        let id = ProviderId::new(spec.provider)
            .map_err(|e| ConfigError::Invalid { name: "provider id", reason: e.to_string() })?;
        let client = BasicClient::new(ClientId::new(spec.client_id.to_owned()))
            .set_auth_uri(spec.auth_url)
            .set_token_uri(spec.token_url)
            .set_redirect_uri(spec.redirect);
        let client = match spec.client_auth {
            #[cfg(any(feature = "spotify", feature = "tidal"))]
            ClientAuth::BasicWithSecret => client,
            #[cfg(feature = "youtube_music")]
            ClientAuth::RequestBody => client.set_auth_type(AuthType::RequestBody),
        };
        let client = match (spec.client_secret, spec.client_auth) {
            (Some(secret), _) => client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned())),
            #[cfg(any(feature = "spotify", feature = "tidal"))]
            (None, ClientAuth::BasicWithSecret) => client.set_auth_type(AuthType::RequestBody),
            #[cfg(feature = "youtube_music")]
            (None, ClientAuth::RequestBody) => client,
        };
        Ok(Self {
            id,
            display_name: spec.display_name,
            refresh_refused: spec.refresh_refused,
            token_endpoint: spec.token_endpoint,
            client,
            http: transport.client().clone(),
            scopes: spec.scopes,
            extra_params: spec.extra_params,
        })
    }

    /// The provider id.
    pub(crate) fn provider(&self) -> &ProviderId {
        &self.id
    }

    /// The shared reqwest client (rustls, the adapter's timeouts).
    #[cfg(feature = "youtube_music")]
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A fresh authorize URL with `state`, a PKCE S256 challenge, the scopes and the extra
    /// parameters.
    pub(crate) fn authorization_request(&self) -> AuthorizationRequest {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes.iter().map(|s| Scope::new((*s).to_owned())));
        for (name, value) in self.extra_params {
            request = request.add_extra_param(*name, *value);
        }
        let (url, state) = request.set_pkce_challenge(challenge).url();
        AuthorizationRequest {
            url: url.to_string(),
            state: state.secret().clone(),
            pkce_verifier: Some(SecretString::from(verifier.secret().clone())),
        }
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub(crate) async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet, ProviderError> {
        let mut request = self.client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(verifier) = pkce_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()));
        }
        let http = self.http_fn();
        let response = request.request_async(&http).await.map_err(|e| self.map_error(e, false))?;
        Ok(self.token_set(&response))
    }

    /// Refreshes: the new refresh token when the service rotates it, else `None` (the caller
    /// keeps its own). `invalid_grant` is `NeedsReauth`.
    pub(crate) async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let http = self.http_fn();
        let response = self
            .client
            .exchange_refresh_token(&token)
            .request_async(&http)
            .await
            .map_err(|e| self.map_error(e, true))?;
        Ok(self.token_set(&response))
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
        let endpoint = self.token_endpoint;
        match err {
            RequestTokenError::ServerResponse(response) => {
                let description =
                    response.error_description().map(|d| redact_text(&d.chars().take(200).collect::<String>()));
                match response.error() {
                    BasicErrorResponseType::InvalidGrant if refreshing => ProviderError::NeedsReauth {
                        provider,
                        reason: format!(
                            "{} refused the refresh token ({}){}",
                            self.display_name,
                            self.refresh_refused,
                            description.map(|d| format!(": {d}")).unwrap_or_default()
                        ),
                    },
                    other => ProviderError::InvalidInput {
                        provider,
                        endpoint: endpoint.into(),
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
                ProviderError::Transient { provider, endpoint: endpoint.into(), detail: e.to_string() }
            }
            // The body of a token response holds tokens: only the path of the bad field is kept.
            RequestTokenError::Parse(e, _body) => ProviderError::Protocol {
                provider,
                endpoint: endpoint.into(),
                detail: format!("the token response does not parse at `{}`", e.path()),
            },
            RequestTokenError::Other(message) => ProviderError::Protocol {
                provider,
                endpoint: endpoint.into(),
                detail: redact_text(&message.chars().take(200).collect::<String>()),
            },
        }
    }

    fn token_set(&self, response: &BasicTokenResponse) -> TokenSet {
        TokenSet {
            access_token: SecretString::from(response.access_token().secret().clone()),
            refresh_token: response.refresh_token().map(|t| SecretString::from(t.secret().clone())),
            expires_at: response.expires_in().and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| Utc::now() + d),
            scopes: match response.scopes() {
                Some(scopes) => scopes.iter().map(|s| s.to_string()).collect(),
                None => self.scopes.iter().map(|s| (*s).to_owned()).collect(),
            },
        }
    }
}
