//! The bottom layer: one HTTP exchange. [`ReqwestTransport`] in production; tests
//! script their own to drive the layers above with a paused clock.

use std::fmt;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::config::HttpConfig;
use super::redact::{redact_text, redact_url};

/// One request as sent. `Debug` shows the method and the redacted URL only.
#[derive(Clone)]
pub struct TransportRequest {
    /// The method.
    pub method: Method,
    /// The full URL, query included.
    pub url: Url,
    /// The bearer token, when the request is authenticated.
    pub bearer: Option<SecretString>,
    /// A JSON body.
    pub json: Option<Vec<u8>>,
    /// Extra headers (`Idempotency-Key`, a JSON:API `Content-Type`). A `Content-Type`
    /// here replaces the default `application/json` of a JSON body.
    pub headers: Vec<(String, String)>,
    /// Headers whose values are secrets (Apple Music's `Music-User-Token`): sent marked
    /// sensitive, never printed.
    pub secret_headers: Vec<(String, SecretString)>,
}

impl fmt::Debug for TransportRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportRequest")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("authenticated", &self.bearer.is_some())
            .finish_non_exhaustive()
    }
}

/// A response: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct TransportResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// A failure below HTTP. Messages are redacted: no URL query, no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connect or request timeout passed.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made or broke.
    #[error("connection failed: {0}")]
    Connect(String),
    /// Anything else (a body that could not be read, a protocol error).
    #[error("{0}")]
    Other(String),
}

/// Sends one HTTP request.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Sends `request` and reads the whole response.
    async fn send(&self, request: TransportRequest) -> Result<TransportResponse, TransportError>;
}

/// [`Transport`] over a [`reqwest::Client`] with rustls and the configured timeouts.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A client with `config`'s timeouts and user agent.
    ///
    /// # Errors
    /// [`TransportError::Other`] when the TLS backend cannot be set up.
    pub fn new(config: &HttpConfig) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| map_reqwest(&e))?;
        Ok(Self { client })
    }

    /// The underlying client (shared with OAuth token requests).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// A reqwest error as text: URL without its query, sources appended, tokens removed (for
/// the OAuth token requests, which go through reqwest without a [`Transport`]).
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music"))]
pub(crate) fn transport_message(err: &reqwest::Error) -> String {
    map_reqwest(err).to_string()
}

/// A reqwest error as a [`TransportError`], its URL removed.
pub(crate) fn map_reqwest(err: &reqwest::Error) -> TransportError {
    if err.is_timeout() {
        return TransportError::Timeout;
    }
    // `without_url` drops the URL (and with it the query string) from the message.
    let mut message = err.to_string();
    if let Some(url) = err.url() {
        let full = url.as_str();
        message = message.replace(full, &redact_url(url));
    }
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    let message = redact_text(&message);
    if err.is_connect() { TransportError::Connect(message) } else { TransportError::Other(message) }
}

#[async_trait]
impl Transport for ReqwestTransport {
    async fn send(&self, request: TransportRequest) -> Result<TransportResponse, TransportError> {
        let is_get = request.method == Method::GET;
        let mut builder = self.client.request(request.method, request.url);
        if let Some(token) = &request.bearer {
            builder = builder.bearer_auth(token.expose_secret());
        }
        let custom_type = request.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        for (name, value) in &request.secret_headers {
            let mut value = reqwest::header::HeaderValue::from_str(value.expose_secret())
                .map_err(|_| TransportError::Other(format!("the {name} header holds characters HTTP refuses")))?;
            value.set_sensitive(true);
            builder = builder.header(name.as_str(), value);
        }
        if let Some(body) = request.json {
            if !custom_type {
                builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json");
            }
            builder = builder.body(body);
        } else if !is_get {
            // Some services answer 411 to a bodiless PUT or DELETE without this.
            builder = builder.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        let response = builder.send().await.map_err(|e| map_reqwest(&e.without_url()))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| map_reqwest(&e.without_url()))?;
        Ok(TransportResponse { status, headers, body: body.to_vec() })
    }
}
