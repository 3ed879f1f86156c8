//! [`SpotifyConfig`]: the app's credentials, its redirect URI and the base URLs.

use std::fmt;

use secrecy::SecretString;
use url::Url;

use crate::http::{ConfigError, EnvVars, HttpConfig};

/// How dnp talks to Spotify: the app registered in the Spotify developer dashboard, the
/// redirect URI registered there, and the base URLs (the real services by default; an
/// emulator's in tests, benchmarks and the demo).
///
/// `Debug` never prints the client secret.
#[derive(Clone)]
pub struct SpotifyConfig {
    /// The app's client id (`SPOTIFY_CLIENT_ID`).
    pub client_id: String,
    /// The app's client secret (`SPOTIFY_CLIENT_SECRET`); `None` for a public client that
    /// relies on PKCE alone (the client id is then sent in the token request body).
    pub client_secret: Option<SecretString>,
    /// The redirect URI registered for the app (`SPOTIFY_REDIRECT_URI`): HTTPS, or
    /// `http://` with a loopback IP literal (`127.0.0.1`, `[::1]`). Spotify refuses
    /// `localhost`.
    pub redirect_uri: String,
    /// The Web API base (`SPOTIFY_API_BASE_URL`, default [`Self::DEFAULT_API_BASE_URL`]).
    pub api_base_url: String,
    /// The accounts service base (`SPOTIFY_ACCOUNTS_BASE_URL`, default
    /// [`Self::DEFAULT_ACCOUNTS_BASE_URL`]): `/authorize` and `/api/token` below it.
    pub accounts_base_url: String,
    /// The HTTP stack's settings.
    pub http: HttpConfig,
}

impl fmt::Debug for SpotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpotifyConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_uri", &self.redirect_uri)
            .field("api_base_url", &self.api_base_url)
            .field("accounts_base_url", &self.accounts_base_url)
            .field("http", &self.http)
            .finish()
    }
}

impl SpotifyConfig {
    /// The real Web API.
    pub const DEFAULT_API_BASE_URL: &'static str = "https://api.spotify.com/v1";
    /// The real accounts service.
    pub const DEFAULT_ACCOUNTS_BASE_URL: &'static str = "https://accounts.spotify.com";

    /// A configuration for the real services.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for an empty client id or a redirect URI Spotify refuses.
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
            accounts_base_url: Self::DEFAULT_ACCOUNTS_BASE_URL.to_owned(),
            http: HttpConfig::default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Points the adapter at other base URLs (an emulator).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when a URL is not absolute http(s).
    pub fn with_base_urls(mut self, api: impl Into<String>, accounts: impl Into<String>) -> Result<Self, ConfigError> {
        self.api_base_url = api.into();
        self.accounts_base_url = accounts.into();
        self.validate()?;
        Ok(self)
    }

    /// Reads `SPOTIFY_CLIENT_ID`, `SPOTIFY_CLIENT_SECRET` (optional), `SPOTIFY_REDIRECT_URI`,
    /// `SPOTIFY_API_BASE_URL`, `SPOTIFY_ACCOUNTS_BASE_URL` and the HTTP stack's
    /// `CIRCUIT_BREAKER_THRESHOLD`.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] for an unset client id or redirect URI,
    /// [`ConfigError::Invalid`] for values Spotify would refuse.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`SpotifyConfig::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// See [`SpotifyConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = EnvVars(&lookup);
        let client_id = vars.required("SPOTIFY_CLIENT_ID")?;
        let redirect_uri = vars.required("SPOTIFY_REDIRECT_URI")?;
        let config = Self {
            client_id,
            client_secret: vars.optional("SPOTIFY_CLIENT_SECRET").map(SecretString::from),
            redirect_uri,
            api_base_url: vars
                .optional("SPOTIFY_API_BASE_URL")
                .unwrap_or_else(|| Self::DEFAULT_API_BASE_URL.to_owned()),
            accounts_base_url: vars
                .optional("SPOTIFY_ACCOUNTS_BASE_URL")
                .unwrap_or_else(|| Self::DEFAULT_ACCOUNTS_BASE_URL.to_owned()),
            http: HttpConfig::from_lookup(&lookup)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values Spotify would refuse.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::Missing { name: "SPOTIFY_CLIENT_ID" });
        }
        check_redirect_uri(&self.redirect_uri)?;
        for (name, value) in
            [("SPOTIFY_API_BASE_URL", &self.api_base_url), ("SPOTIFY_ACCOUNTS_BASE_URL", &self.accounts_base_url)]
        {
            let url = Url::parse(value).map_err(|e| ConfigError::Invalid { name, reason: e.to_string() })?;
            if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
                return Err(ConfigError::Invalid { name, reason: "must be an http(s) URL without a query".into() });
            }
        }
        Ok(())
    }
}

/// Spotify's redirect URI rules: HTTPS, or plain HTTP to a loopback IP literal;
/// `localhost` is refused; no fragment.
///
/// # Errors
/// [`ConfigError::Invalid`] saying which rule the URI breaks.
pub fn check_redirect_uri(uri: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid { name: "SPOTIFY_REDIRECT_URI", reason: reason.to_owned() };
    let url = Url::parse(uri).map_err(|e| invalid(&e.to_string()))?;
    if url.fragment().is_some() {
        return Err(invalid("a redirect URI may not have a fragment"));
    }
    let host = url.host().ok_or_else(|| invalid("a redirect URI needs a host"))?;
    let loopback_ip = match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(_) => false,
    };
    if matches!(host, url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost")) {
        return Err(invalid("Spotify refuses `localhost`: use the loopback IP literal http://127.0.0.1:PORT/…"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback_ip => Ok(()),
        "http" => Err(invalid("plain http is allowed only to a loopback IP literal (127.0.0.1 or [::1])")),
        _ => Err(invalid("use https, or http to a loopback IP literal")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::lookup_in;

    #[test]
    fn reads_the_environment_with_real_defaults() {
        let config = SpotifyConfig::from_lookup(lookup_in(&[
            ("SPOTIFY_CLIENT_ID", "abc"),
            ("SPOTIFY_CLIENT_SECRET", "very-secret-value"),
            ("SPOTIFY_REDIRECT_URI", "http://127.0.0.1:8080/callback"),
        ]))
        .unwrap();
        assert_eq!(config.api_base_url, "https://api.spotify.com/v1");
        assert_eq!(config.accounts_base_url, "https://accounts.spotify.com");
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret-value"), "{debug}");
        assert!(debug.contains("[redacted]"));

        let emulated = SpotifyConfig::from_lookup(lookup_in(&[
            ("SPOTIFY_CLIENT_ID", "abc"),
            ("SPOTIFY_REDIRECT_URI", "https://dnp.example/callback"),
            ("SPOTIFY_API_BASE_URL", "http://127.0.0.1:9000/v1"),
            ("SPOTIFY_ACCOUNTS_BASE_URL", "http://127.0.0.1:9001"),
        ]))
        .unwrap();
        assert_eq!(emulated.api_base_url, "http://127.0.0.1:9000/v1");
        assert!(emulated.client_secret.is_none());
    }

    #[test]
    fn missing_and_invalid_values_are_named() {
        let err = SpotifyConfig::from_lookup(lookup_in(&[("SPOTIFY_REDIRECT_URI", "https://x.test/cb")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "SPOTIFY_CLIENT_ID" });
        let err = SpotifyConfig::from_lookup(lookup_in(&[("SPOTIFY_CLIENT_ID", "a")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "SPOTIFY_REDIRECT_URI" });
        let bad_base = lookup_in(&[
            ("SPOTIFY_CLIENT_ID", "a"),
            ("SPOTIFY_REDIRECT_URI", "https://x.test/cb"),
            ("SPOTIFY_API_BASE_URL", "not a url"),
        ]);
        assert!(SpotifyConfig::from_lookup(bad_base).unwrap_err().to_string().contains("SPOTIFY_API_BASE_URL"));
    }

    #[test]
    fn redirect_uris_follow_spotify_rules() {
        assert!(check_redirect_uri("https://dnp.example/callback").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8888/callback").is_ok());
        assert!(check_redirect_uri("http://[::1]:8888/callback").is_ok());
        let localhost = check_redirect_uri("http://localhost:8888/callback").unwrap_err();
        assert!(localhost.to_string().contains("localhost"), "{localhost}");
        assert!(check_redirect_uri("http://dnp.example/callback").is_err());
        assert!(check_redirect_uri("https://dnp.example/cb#frag").is_err());
        assert!(check_redirect_uri("myapp://callback").is_err());
    }
}
