//! [`YouTubeMusicConfig`]: the Google Cloud project's OAuth client, its redirect URI, the
//! base URLs and the daily quota.

use std::fmt;

use secrecy::SecretString;
use url::Url;

use super::quota::DEFAULT_DAILY_QUOTA;
use crate::http::{ConfigError, EnvVars, HttpConfig};

/// How dnp talks to YouTube: the OAuth client of a Google Cloud project with the YouTube
/// Data API v3 enabled, the redirect URI registered for it, the base URLs (Google's by
/// default; an emulator's in tests, benchmarks and the demo) and the project's daily quota.
///
/// `Debug` never prints the client secret.
#[derive(Clone)]
pub struct YouTubeMusicConfig {
    /// The OAuth client id (`YOUTUBE_CLIENT_ID`), `….apps.googleusercontent.com`.
    pub client_id: String,
    /// The OAuth client secret (`YOUTUBE_CLIENT_SECRET`). Google issues one to every client
    /// type (web and desktop); it goes in the token request body.
    pub client_secret: Option<SecretString>,
    /// The redirect URI registered for the client (`YOUTUBE_REDIRECT_URI`): `https://`, or
    /// `http://` to a loopback host (`localhost`, `127.0.0.1`, `[::1]`).
    pub redirect_uri: String,
    /// The Data API base (`YOUTUBE_API_BASE_URL`, default [`Self::DEFAULT_API_BASE_URL`]).
    pub api_base_url: String,
    /// The authorization endpoint (`GOOGLE_AUTH_URL`, default [`Self::DEFAULT_AUTH_URL`]).
    pub auth_url: String,
    /// The token endpoint (`GOOGLE_TOKEN_URL`, default [`Self::DEFAULT_TOKEN_URL`]).
    pub token_url: String,
    /// The revocation endpoint (`GOOGLE_REVOKE_URL`, default [`Self::DEFAULT_REVOKE_URL`]).
    pub revoke_url: String,
    /// The project's units a day (`YOUTUBE_DAILY_QUOTA`, default 10,000).
    pub daily_quota: u64,
    /// The HTTP stack's settings.
    pub http: HttpConfig,
}

impl fmt::Debug for YouTubeMusicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YouTubeMusicConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_uri", &self.redirect_uri)
            .field("api_base_url", &self.api_base_url)
            .field("auth_url", &self.auth_url)
            .field("token_url", &self.token_url)
            .field("revoke_url", &self.revoke_url)
            .field("daily_quota", &self.daily_quota)
            .field("http", &self.http)
            .finish()
    }
}

impl YouTubeMusicConfig {
    /// The real Data API.
    pub const DEFAULT_API_BASE_URL: &'static str = "https://www.googleapis.com/youtube/v3";
    /// Google's authorization endpoint.
    pub const DEFAULT_AUTH_URL: &'static str = "https://accounts.google.com/o/oauth2/v2/auth";
    /// Google's token endpoint.
    pub const DEFAULT_TOKEN_URL: &'static str = "https://oauth2.googleapis.com/token";
    /// Google's revocation endpoint.
    pub const DEFAULT_REVOKE_URL: &'static str = "https://oauth2.googleapis.com/revoke";

    /// A configuration for Google's real services and the default quota.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for an empty client id or a redirect URI Google refuses.
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
            auth_url: Self::DEFAULT_AUTH_URL.to_owned(),
            token_url: Self::DEFAULT_TOKEN_URL.to_owned(),
            revoke_url: Self::DEFAULT_REVOKE_URL.to_owned(),
            daily_quota: DEFAULT_DAILY_QUOTA,
            http: HttpConfig::default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Points the adapter at another Data API and another OAuth server laid out as the
    /// emulator is: `{auth_base}/o/oauth2/v2/auth`, `{auth_base}/token`, `{auth_base}/revoke`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when a URL is not absolute http(s).
    pub fn with_base_urls(mut self, api: impl Into<String>, auth_base: &str) -> Result<Self, ConfigError> {
        self.api_base_url = api.into();
        let (auth, token, revoke) = auth_urls_below(auth_base);
        self.auth_url = auth;
        self.token_url = token;
        self.revoke_url = revoke;
        self.validate()?;
        Ok(self)
    }

    /// Reads `YOUTUBE_CLIENT_ID`, `YOUTUBE_CLIENT_SECRET` (optional), `YOUTUBE_REDIRECT_URI`,
    /// `YOUTUBE_API_BASE_URL`, `YOUTUBE_DAILY_QUOTA`, the OAuth endpoints and the HTTP
    /// stack's `CIRCUIT_BREAKER_THRESHOLD`.
    ///
    /// The OAuth endpoints: `GOOGLE_AUTH_BASE_URL` sets all three below one base, as the
    /// emulator serves them (`/o/oauth2/v2/auth`, `/token`, `/revoke`); `GOOGLE_AUTH_URL`,
    /// `GOOGLE_TOKEN_URL` and `GOOGLE_REVOKE_URL` set one each and win over the base.
    /// Unset, they are Google's.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] for an unset client id or redirect URI,
    /// [`ConfigError::Invalid`] for values Google would refuse or a quota that is not a
    /// whole number of at least 1.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`YouTubeMusicConfig::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// See [`YouTubeMusicConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = EnvVars(&lookup);
        let client_id = vars.required("YOUTUBE_CLIENT_ID")?;
        let redirect_uri = vars.required("YOUTUBE_REDIRECT_URI")?;
        let (mut auth_url, mut token_url, mut revoke_url) = (
            Self::DEFAULT_AUTH_URL.to_owned(),
            Self::DEFAULT_TOKEN_URL.to_owned(),
            Self::DEFAULT_REVOKE_URL.to_owned(),
        );
        if let Some(base) = vars.optional("GOOGLE_AUTH_BASE_URL") {
            (auth_url, token_url, revoke_url) = auth_urls_below(&base);
        }
        let daily_quota = match vars.optional("YOUTUBE_DAILY_QUOTA") {
            None => DEFAULT_DAILY_QUOTA,
            Some(raw) => raw.replace(['_', ','], "").parse::<u64>().ok().filter(|q| *q > 0).ok_or_else(|| {
                ConfigError::Invalid {
                    name: "YOUTUBE_DAILY_QUOTA",
                    reason: format!("{raw:?} is not a whole number of units of at least 1"),
                }
            })?,
        };
        let config = Self {
            client_id,
            client_secret: vars.optional("YOUTUBE_CLIENT_SECRET").map(SecretString::from),
            redirect_uri,
            api_base_url: vars
                .optional("YOUTUBE_API_BASE_URL")
                .unwrap_or_else(|| Self::DEFAULT_API_BASE_URL.to_owned()),
            auth_url: vars.optional("GOOGLE_AUTH_URL").unwrap_or(auth_url),
            token_url: vars.optional("GOOGLE_TOKEN_URL").unwrap_or(token_url),
            revoke_url: vars.optional("GOOGLE_REVOKE_URL").unwrap_or(revoke_url),
            daily_quota,
            http: HttpConfig::from_lookup(&lookup)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values Google would refuse.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::Missing { name: "YOUTUBE_CLIENT_ID" });
        }
        if self.daily_quota == 0 {
            return Err(ConfigError::Invalid { name: "YOUTUBE_DAILY_QUOTA", reason: "must be at least 1".into() });
        }
        check_redirect_uri(&self.redirect_uri)?;
        for (name, value) in [
            ("YOUTUBE_API_BASE_URL", &self.api_base_url),
            ("GOOGLE_AUTH_URL", &self.auth_url),
            ("GOOGLE_TOKEN_URL", &self.token_url),
            ("GOOGLE_REVOKE_URL", &self.revoke_url),
        ] {
            let url = Url::parse(value).map_err(|e| ConfigError::Invalid { name, reason: e.to_string() })?;
            if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
                return Err(ConfigError::Invalid { name, reason: "must be an http(s) URL without a query".into() });
            }
        }
        Ok(())
    }
}

/// The three OAuth endpoints below one base, as the emulator serves them.
fn auth_urls_below(base: &str) -> (String, String, String) {
    let base = base.trim_end_matches('/');
    (format!("{base}/o/oauth2/v2/auth"), format!("{base}/token"), format!("{base}/revoke"))
}

/// Google's redirect URI rules for OAuth clients: `https://` with a host, or plain
/// `http://` to a loopback host (`localhost`, `127.0.0.1`, `[::1]`); no fragment.
///
/// # Errors
/// [`ConfigError::Invalid`] saying which rule the URI breaks.
pub fn check_redirect_uri(uri: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid { name: "YOUTUBE_REDIRECT_URI", reason: reason.to_owned() };
    let url = Url::parse(uri).map_err(|e| invalid(&e.to_string()))?;
    if url.fragment().is_some() {
        return Err(invalid("a redirect URI may not have a fragment"));
    }
    let host = url.host().ok_or_else(|| invalid("a redirect URI needs a host"))?;
    let loopback = match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(invalid("plain http is allowed only to localhost or a loopback IP")),
        _ => Err(invalid("use https, or http to a loopback host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::lookup_in;

    #[test]
    fn reads_the_environment_with_google_defaults() {
        let config = YouTubeMusicConfig::from_lookup(lookup_in(&[
            ("YOUTUBE_CLIENT_ID", "123.apps.googleusercontent.com"),
            ("YOUTUBE_CLIENT_SECRET", "GOCSPX-very-secret-value"),
            ("YOUTUBE_REDIRECT_URI", "http://localhost:8080/callback"),
        ]))
        .unwrap();
        assert_eq!(config.api_base_url, "https://www.googleapis.com/youtube/v3");
        assert_eq!(config.auth_url, "https://accounts.google.com/o/oauth2/v2/auth");
        assert_eq!(config.token_url, "https://oauth2.googleapis.com/token");
        assert_eq!(config.revoke_url, "https://oauth2.googleapis.com/revoke");
        assert_eq!(config.daily_quota, 10_000);
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret-value"), "{debug}");
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn base_urls_and_quota_are_configurable() {
        let config = YouTubeMusicConfig::from_lookup(lookup_in(&[
            ("YOUTUBE_CLIENT_ID", "abc"),
            ("YOUTUBE_REDIRECT_URI", "https://dnp.example/callback"),
            ("YOUTUBE_API_BASE_URL", "http://127.0.0.1:9000/youtube/v3"),
            ("GOOGLE_AUTH_BASE_URL", "http://127.0.0.1:9000/"),
            ("GOOGLE_REVOKE_URL", "http://127.0.0.1:9001/revoke"),
            ("YOUTUBE_DAILY_QUOTA", "1_000_000"),
        ]))
        .unwrap();
        assert_eq!(config.api_base_url, "http://127.0.0.1:9000/youtube/v3");
        assert_eq!(config.auth_url, "http://127.0.0.1:9000/o/oauth2/v2/auth");
        assert_eq!(config.token_url, "http://127.0.0.1:9000/token");
        assert_eq!(config.revoke_url, "http://127.0.0.1:9001/revoke", "the explicit URL wins over the base");
        assert_eq!(config.daily_quota, 1_000_000);
        assert!(config.client_secret.is_none());
    }

    #[test]
    fn missing_and_invalid_values_are_named() {
        let err =
            YouTubeMusicConfig::from_lookup(lookup_in(&[("YOUTUBE_REDIRECT_URI", "https://x.test/cb")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "YOUTUBE_CLIENT_ID" });
        let err = YouTubeMusicConfig::from_lookup(lookup_in(&[("YOUTUBE_CLIENT_ID", "a")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "YOUTUBE_REDIRECT_URI" });
        for (name, value) in
            [("YOUTUBE_DAILY_QUOTA", "lots"), ("YOUTUBE_DAILY_QUOTA", "0"), ("YOUTUBE_API_BASE_URL", "not a url")]
        {
            let err = YouTubeMusicConfig::from_lookup(lookup_in(&[
                ("YOUTUBE_CLIENT_ID", "a"),
                ("YOUTUBE_REDIRECT_URI", "https://x.test/cb"),
                (name, value),
            ]))
            .unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn redirect_uris_follow_google_rules() {
        assert!(check_redirect_uri("https://dnp.example/callback").is_ok());
        assert!(check_redirect_uri("http://localhost:8080/callback").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/callback").is_ok());
        assert!(check_redirect_uri("http://[::1]:8080/callback").is_ok());
        assert!(check_redirect_uri("http://dnp.example/callback").is_err());
        assert!(check_redirect_uri("https://dnp.example/cb#frag").is_err());
        assert!(check_redirect_uri("com.example.app:/callback").is_err());
    }
}
