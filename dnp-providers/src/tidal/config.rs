//! [`TidalConfig`]: the app's credentials, its redirect URI and the base URLs.

use std::fmt;

use secrecy::SecretString;
use url::Url;

use crate::http::{ConfigError, EnvVars, HttpConfig};

/// How dnp talks to TIDAL: the app registered at developer.tidal.com, the redirect URI
/// registered there, and the base URLs (the real services by default; an emulator's in
/// tests, benchmarks and the demo).
///
/// `Debug` never prints the client secret.
#[derive(Clone)]
pub struct TidalConfig {
    /// The app's client id (`TIDAL_CLIENT_ID`).
    pub client_id: String,
    /// The app's client secret (`TIDAL_CLIENT_SECRET`); `None` for a public client that
    /// relies on PKCE alone (the client id is then sent in the token request body).
    pub client_secret: Option<SecretString>,
    /// The redirect URI registered for the app (`TIDAL_REDIRECT_URI`): HTTPS, or plain
    /// HTTP to a loopback address.
    pub redirect_uri: String,
    /// The API base (`TIDAL_API_BASE_URL`, default [`Self::DEFAULT_API_BASE_URL`]).
    pub api_base_url: String,
    /// The token service base (`TIDAL_AUTH_BASE_URL`, default
    /// [`Self::DEFAULT_AUTH_BASE_URL`]): the token endpoint is `{base}/token`.
    pub auth_base_url: String,
    /// The login page users approve dnp on (`TIDAL_AUTHORIZE_URL`, default
    /// [`Self::DEFAULT_AUTHORIZE_URL`]).
    pub authorize_url: String,
    /// The HTTP stack's settings.
    pub http: HttpConfig,
}

impl fmt::Debug for TidalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TidalConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_uri", &self.redirect_uri)
            .field("api_base_url", &self.api_base_url)
            .field("auth_base_url", &self.auth_base_url)
            .field("authorize_url", &self.authorize_url)
            .field("http", &self.http)
            .finish()
    }
}

impl TidalConfig {
    /// The real API.
    pub const DEFAULT_API_BASE_URL: &'static str = "https://openapi.tidal.com/v2";
    /// The real token service (`/token` below it).
    pub const DEFAULT_AUTH_BASE_URL: &'static str = "https://auth.tidal.com/v1/oauth2";
    /// The real login page.
    pub const DEFAULT_AUTHORIZE_URL: &'static str = "https://login.tidal.com/authorize";

    /// A configuration for the real services.
    ///
    /// # Errors
    /// [`ConfigError`] for an empty client id or an unusable redirect URI.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: Option<SecretString>,
        redirect_uri: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let config = Self {
            client_id: client_id.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            api_base_url: Self::DEFAULT_API_BASE_URL.to_owned(),
            auth_base_url: Self::DEFAULT_AUTH_BASE_URL.to_owned(),
            authorize_url: Self::DEFAULT_AUTHORIZE_URL.to_owned(),
            http: HttpConfig::default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Points the adapter at other base URLs (an emulator): the API, the token service and
    /// the login page.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when a URL is not absolute http(s) without a query.
    pub fn with_base_urls(
        mut self,
        api: impl Into<String>,
        auth: impl Into<String>,
        authorize: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        self.api_base_url = api.into();
        self.auth_base_url = auth.into();
        self.authorize_url = authorize.into();
        self.validate()?;
        Ok(self)
    }

    /// Reads `TIDAL_CLIENT_ID`, `TIDAL_CLIENT_SECRET` (optional), `TIDAL_REDIRECT_URI`,
    /// `TIDAL_API_BASE_URL`, `TIDAL_AUTH_BASE_URL`, `TIDAL_AUTHORIZE_URL` and the HTTP
    /// stack's `CIRCUIT_BREAKER_THRESHOLD`.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] for an unset client id or redirect URI,
    /// [`ConfigError::Invalid`] for values TIDAL would refuse.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`TidalConfig::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// See [`TidalConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = EnvVars(&lookup);
        let client_id = vars.required("TIDAL_CLIENT_ID")?;
        let redirect_uri = vars.required("TIDAL_REDIRECT_URI")?;
        let config = Self {
            client_id,
            client_secret: vars.optional("TIDAL_CLIENT_SECRET").map(SecretString::from),
            redirect_uri,
            api_base_url: vars.optional("TIDAL_API_BASE_URL").unwrap_or_else(|| Self::DEFAULT_API_BASE_URL.to_owned()),
            auth_base_url: vars
                .optional("TIDAL_AUTH_BASE_URL")
                .unwrap_or_else(|| Self::DEFAULT_AUTH_BASE_URL.to_owned()),
            authorize_url: vars
                .optional("TIDAL_AUTHORIZE_URL")
                .unwrap_or_else(|| Self::DEFAULT_AUTHORIZE_URL.to_owned()),
            http: HttpConfig::from_lookup(&lookup)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values TIDAL would refuse.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::Missing { name: "TIDAL_CLIENT_ID" });
        }
        check_redirect_uri(&self.redirect_uri)?;
        for (name, value) in [
            ("TIDAL_API_BASE_URL", &self.api_base_url),
            ("TIDAL_AUTH_BASE_URL", &self.auth_base_url),
            ("TIDAL_AUTHORIZE_URL", &self.authorize_url),
        ] {
            let url = Url::parse(value).map_err(|e| ConfigError::Invalid { name, reason: e.to_string() })?;
            if !matches!(url.scheme(), "http" | "https") || url.query().is_some() || url.fragment().is_some() {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be an http(s) URL without a query or fragment".into(),
                });
            }
        }
        Ok(())
    }
}

/// The redirect URI rules dnp applies for TIDAL: an absolute `https://` URL, or plain
/// `http://` to a loopback address (`127.0.0.1`, `[::1]`, `localhost`) for local
/// development; no fragment.
///
/// # Errors
/// [`ConfigError::Invalid`] saying which rule the URI breaks.
pub fn check_redirect_uri(uri: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid { name: "TIDAL_REDIRECT_URI", reason: reason.to_owned() };
    let url = Url::parse(uri).map_err(|e| invalid(&format!("not an absolute URL ({e})")))?;
    if url.fragment().is_some() {
        return Err(invalid("a redirect URI may not have a fragment"));
    }
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(url::Host::Ipv4(ip))) if ip.is_loopback() => Ok(()),
        ("http", Some(url::Host::Ipv6(ip))) if ip.is_loopback() => Ok(()),
        ("http", Some(url::Host::Domain(d))) if d.eq_ignore_ascii_case("localhost") => Ok(()),
        ("http", _) => Err(invalid("plain http is only allowed to a loopback address")),
        _ => Err(invalid("the scheme must be https (or http to a loopback address)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::lookup_in;

    #[test]
    fn reads_the_environment_with_real_defaults() {
        let config = TidalConfig::from_lookup(lookup_in(&[
            ("TIDAL_CLIENT_ID", "abc"),
            ("TIDAL_CLIENT_SECRET", "very-secret-value"),
            ("TIDAL_REDIRECT_URI", "http://127.0.0.1:8080/callback"),
        ]))
        .unwrap();
        assert_eq!(config.api_base_url, "https://openapi.tidal.com/v2");
        assert_eq!(config.auth_base_url, "https://auth.tidal.com/v1/oauth2");
        assert_eq!(config.authorize_url, "https://login.tidal.com/authorize");
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret-value"), "{debug}");
        assert!(debug.contains("[redacted]"));

        let emulated = TidalConfig::from_lookup(lookup_in(&[
            ("TIDAL_CLIENT_ID", "abc"),
            ("TIDAL_REDIRECT_URI", "https://dnp.example/callback"),
            ("TIDAL_API_BASE_URL", "http://127.0.0.1:9000/v2"),
            ("TIDAL_AUTH_BASE_URL", "http://127.0.0.1:9000/v1/oauth2"),
            ("TIDAL_AUTHORIZE_URL", "http://127.0.0.1:9000/authorize"),
        ]))
        .unwrap();
        assert_eq!(emulated.api_base_url, "http://127.0.0.1:9000/v2");
        assert_eq!(emulated.authorize_url, "http://127.0.0.1:9000/authorize");
        assert!(emulated.client_secret.is_none());
    }

    #[test]
    fn missing_and_invalid_values_are_named() {
        let err = TidalConfig::from_lookup(lookup_in(&[("TIDAL_REDIRECT_URI", "https://x.test/cb")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "TIDAL_CLIENT_ID" });
        let err = TidalConfig::from_lookup(lookup_in(&[("TIDAL_CLIENT_ID", "a")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "TIDAL_REDIRECT_URI" });
        let bad = lookup_in(&[
            ("TIDAL_CLIENT_ID", "a"),
            ("TIDAL_REDIRECT_URI", "https://x.test/cb"),
            ("TIDAL_AUTHORIZE_URL", "https://login.test/authorize?x=1"),
        ]);
        assert!(TidalConfig::from_lookup(bad).unwrap_err().to_string().contains("TIDAL_AUTHORIZE_URL"));
    }

    #[test]
    fn redirect_uris_must_be_https_or_loopback() {
        assert!(check_redirect_uri("https://dnp.example/callback").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8888/callback").is_ok());
        assert!(check_redirect_uri("http://localhost:8888/callback").is_ok());
        assert!(check_redirect_uri("http://dnp.example/callback").is_err());
        assert!(check_redirect_uri("https://dnp.example/cb#frag").is_err());
        assert!(check_redirect_uri("tidal-app://callback").is_err());
    }
}
