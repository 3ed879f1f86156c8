//! [`AppleMusicConfig`]: the MusicKit key that signs developer tokens, the page that gets a
//! Music User Token from MusicKit JS, and the base URL.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::http::{ConfigError, EnvVars, HttpConfig};

/// The longest validity Apple accepts for a developer token: 15,777,000 s (about six
/// months) between `iat` and `exp`.
pub const MAX_DEVELOPER_TOKEN_TTL: Duration = Duration::from_secs(15_777_000);

/// How dnp talks to Apple Music.
///
/// - The developer token is an ES256 JWT dnp signs itself with the team's MusicKit
///   private key (`APPLE_MUSIC_TEAM_ID`, `APPLE_MUSIC_KEY_ID`, and `APPLE_MUSIC_PRIVATE_KEY`
///   (the `.p8` file's PEM text) or `APPLE_MUSIC_PRIVATE_KEY_FILE` (its path)).
/// - The Music User Token comes from MusicKit JS in the user's browser: dnp sends the user
///   to its own MusicKit page (`APPLE_MUSIC_CONNECT_URL`, default
///   `{PUBLIC_BASE_URL}/connect/apple-music`), which calls `MusicKit.authorize()` and posts
///   the token back with the `state`.
///
/// `Debug` never prints the private key.
#[derive(Clone)]
pub struct AppleMusicConfig {
    /// The Apple Developer team id (`APPLE_MUSIC_TEAM_ID`), 10 characters: the token's `iss`.
    pub team_id: String,
    /// The MusicKit key's id (`APPLE_MUSIC_KEY_ID`), 10 characters: the token's `kid`.
    pub key_id: String,
    /// The MusicKit private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, the `.p8` file).
    pub private_key: SecretString,
    /// The Apple Music API base (`APPLE_MUSIC_API_BASE_URL`, default
    /// [`Self::DEFAULT_API_BASE_URL`]); paths below it start with `/v1`.
    pub api_base_url: String,
    /// The page that obtains a Music User Token with MusicKit JS (`APPLE_MUSIC_CONNECT_URL`):
    /// the server's own page in production, the emulator's stand-in in tests and the demo.
    pub connect_url: String,
    /// Where that page sends the user back with `code` (the Music User Token) and `state`
    /// (`APPLE_MUSIC_REDIRECT_URI`); passed to the page as `redirect_uri` when set.
    pub redirect_uri: Option<String>,
    /// The storefront of catalog requests (search, ISRC lookup, links), e.g. `us`
    /// (`APPLE_MUSIC_STOREFRONT`, default `us`).
    pub storefront: String,
    /// How long a developer token is valid (default 12 hours, at most
    /// [`MAX_DEVELOPER_TOKEN_TTL`]).
    pub developer_token_ttl: Duration,
    /// How long before expiry a developer token is replaced (default 10 minutes).
    pub developer_token_margin: Duration,
    /// The HTTP stack's settings.
    pub http: HttpConfig,
}

impl fmt::Debug for AppleMusicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppleMusicConfig")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("private_key", &"[redacted]")
            .field("api_base_url", &self.api_base_url)
            .field("connect_url", &self.connect_url)
            .field("redirect_uri", &self.redirect_uri)
            .field("storefront", &self.storefront)
            .field("developer_token_ttl", &self.developer_token_ttl)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl AppleMusicConfig {
    /// The real Apple Music API.
    pub const DEFAULT_API_BASE_URL: &'static str = "https://api.music.apple.com";
    /// The path of the server's MusicKit page below `PUBLIC_BASE_URL`.
    pub const CONNECT_PATH: &'static str = "/connect/apple-music";

    /// A configuration for the real API.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a team or key id that is not 10 letters and digits, a
    /// private key that is not a P-256 PKCS#8 PEM, or a connect URL that is not http(s).
    pub fn new(
        team_id: impl Into<String>,
        key_id: impl Into<String>,
        private_key: SecretString,
        connect_url: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let config = Self {
            team_id: team_id.into(),
            key_id: key_id.into(),
            private_key,
            api_base_url: Self::DEFAULT_API_BASE_URL.to_owned(),
            connect_url: connect_url.into(),
            redirect_uri: None,
            storefront: "us".to_owned(),
            developer_token_ttl: Duration::from_secs(12 * 3600),
            developer_token_margin: Duration::from_secs(600),
            http: default_http(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Points the adapter at another API base and connect page (an emulator).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when a URL is not absolute http(s).
    pub fn with_base_urls(mut self, api: impl Into<String>, connect: impl Into<String>) -> Result<Self, ConfigError> {
        self.api_base_url = api.into();
        self.connect_url = connect.into();
        self.validate()?;
        Ok(self)
    }

    /// Reads `APPLE_MUSIC_TEAM_ID`, `APPLE_MUSIC_KEY_ID`, `APPLE_MUSIC_PRIVATE_KEY` or
    /// `APPLE_MUSIC_PRIVATE_KEY_FILE`, `APPLE_MUSIC_API_BASE_URL`, `APPLE_MUSIC_CONNECT_URL`
    /// (else `PUBLIC_BASE_URL` + `/connect/apple-music`), `APPLE_MUSIC_REDIRECT_URI`,
    /// `APPLE_MUSIC_STOREFRONT` and the HTTP stack's `CIRCUIT_BREAKER_THRESHOLD`.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] for an unset id, key or connect page,
    /// [`ConfigError::Invalid`] for values Apple would refuse or a key file that cannot be read.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`AppleMusicConfig::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// See [`AppleMusicConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = EnvVars(&lookup);
        let team_id = vars.required("APPLE_MUSIC_TEAM_ID")?;
        let key_id = vars.required("APPLE_MUSIC_KEY_ID")?;
        let private_key =
            match (vars.optional("APPLE_MUSIC_PRIVATE_KEY"), vars.optional("APPLE_MUSIC_PRIVATE_KEY_FILE")) {
                (Some(pem), _) => SecretString::from(pem.replace("\\n", "\n")),
                (None, Some(path)) => {
                    SecretString::from(std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
                        name: "APPLE_MUSIC_PRIVATE_KEY_FILE",
                        reason: format!("cannot read it: {e}"),
                    })?)
                }
                (None, None) => return Err(ConfigError::Missing { name: "APPLE_MUSIC_PRIVATE_KEY" }),
            };
        let connect_url = match (vars.optional("APPLE_MUSIC_CONNECT_URL"), vars.optional("PUBLIC_BASE_URL")) {
            (Some(url), _) => url,
            (None, Some(base)) => format!("{}{}", base.trim_end_matches('/'), Self::CONNECT_PATH),
            (None, None) => return Err(ConfigError::Missing { name: "APPLE_MUSIC_CONNECT_URL" }),
        };
        let config = Self {
            team_id,
            key_id,
            private_key,
            api_base_url: vars
                .optional("APPLE_MUSIC_API_BASE_URL")
                .unwrap_or_else(|| Self::DEFAULT_API_BASE_URL.to_owned()),
            connect_url,
            redirect_uri: vars.optional("APPLE_MUSIC_REDIRECT_URI"),
            storefront: vars.optional("APPLE_MUSIC_STOREFRONT").unwrap_or_else(|| "us".to_owned()).to_ascii_lowercase(),
            developer_token_ttl: Duration::from_secs(12 * 3600),
            developer_token_margin: Duration::from_secs(600),
            http: with_apple_rates(HttpConfig::from_lookup(&lookup)?),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values Apple would refuse.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable (never the key itself).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [("APPLE_MUSIC_TEAM_ID", &self.team_id), ("APPLE_MUSIC_KEY_ID", &self.key_id)] {
            if value.len() != 10 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ConfigError::Invalid { name, reason: "must be 10 letters and digits".into() });
            }
        }
        jsonwebtoken::EncodingKey::from_ec_pem(self.private_key.expose_secret().as_bytes()).map_err(|_| {
            ConfigError::Invalid {
                name: "APPLE_MUSIC_PRIVATE_KEY",
                reason: "not a P-256 private key in PKCS#8 PEM form (the MusicKit .p8 file)".into(),
            }
        })?;
        for (name, value) in
            [("APPLE_MUSIC_API_BASE_URL", &self.api_base_url), ("APPLE_MUSIC_CONNECT_URL", &self.connect_url)]
        {
            let url = Url::parse(value).map_err(|e| ConfigError::Invalid { name, reason: e.to_string() })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid { name, reason: "must be an http(s) URL".into() });
            }
        }
        if let Some(uri) = &self.redirect_uri {
            let url = Url::parse(uri)
                .map_err(|e| ConfigError::Invalid { name: "APPLE_MUSIC_REDIRECT_URI", reason: e.to_string() })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid {
                    name: "APPLE_MUSIC_REDIRECT_URI",
                    reason: "must be http(s)".into(),
                });
            }
        }
        if self.storefront.len() != 2 || !self.storefront.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(ConfigError::Invalid {
                name: "APPLE_MUSIC_STOREFRONT",
                reason: "a storefront is a two-letter country code such as `us`".into(),
            });
        }
        if self.developer_token_ttl > MAX_DEVELOPER_TOKEN_TTL || self.developer_token_ttl < Duration::from_secs(60) {
            return Err(ConfigError::Invalid {
                name: "developer token lifetime",
                reason: format!("must be between 60 s and {} s", MAX_DEVELOPER_TOKEN_TTL.as_secs()),
            });
        }
        if self.developer_token_margin >= self.developer_token_ttl {
            return Err(ConfigError::Invalid {
                name: "developer token margin",
                reason: "must be shorter than the token's lifetime".into(),
            });
        }
        Ok(())
    }
}

/// Apple limits requests per developer token, which every connection of a deployment
/// shares; the HTTP stack keys its per-connection bucket by the token it authenticates
/// with (the developer token here), so that bucket is app-wide too: give it the provider's
/// rate.
fn with_apple_rates(mut http: HttpConfig) -> HttpConfig {
    http.connection_rate = http.provider_rate;
    http
}

fn default_http() -> HttpConfig {
    with_apple_rates(HttpConfig::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::lookup_in;

    /// A throwaway P-256 key for tests (generated for them; it signs nothing real).
    pub(crate) const TEST_KEY: &str = include_str!("testdata/test_key.p8");

    #[test]
    fn reads_the_environment_with_real_defaults() {
        let config = AppleMusicConfig::from_lookup(lookup_in(&[
            ("APPLE_MUSIC_TEAM_ID", "ABCDE12345"),
            ("APPLE_MUSIC_KEY_ID", "KEY1234567"),
            ("APPLE_MUSIC_PRIVATE_KEY", TEST_KEY),
            ("PUBLIC_BASE_URL", "https://dnp.example/"),
        ]))
        .unwrap();
        assert_eq!(config.api_base_url, "https://api.music.apple.com");
        assert_eq!(config.connect_url, "https://dnp.example/connect/apple-music");
        assert_eq!(config.storefront, "us");
        assert_eq!(config.http.connection_rate, config.http.provider_rate);
        let debug = format!("{config:?}");
        assert!(!debug.contains("PRIVATE KEY") && !debug.contains(TEST_KEY.lines().nth(1).unwrap()), "{debug}");
    }

    #[test]
    fn the_key_may_come_from_a_file_or_with_escaped_newlines() {
        let dir = std::env::temp_dir().join(format!("dnp-apple-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("AuthKey.p8");
        std::fs::write(&path, TEST_KEY).unwrap();
        let from_file = AppleMusicConfig::from_lookup(lookup_in(&[
            ("APPLE_MUSIC_TEAM_ID", "ABCDE12345"),
            ("APPLE_MUSIC_KEY_ID", "KEY1234567"),
            ("APPLE_MUSIC_PRIVATE_KEY_FILE", path.to_str().unwrap()),
            ("APPLE_MUSIC_CONNECT_URL", "http://127.0.0.1:8080/connect/apple-music"),
        ]));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(from_file.is_ok(), "{from_file:?}");
        let escaped = TEST_KEY.replace('\n', "\\n");
        assert!(
            AppleMusicConfig::from_lookup(lookup_in(&[
                ("APPLE_MUSIC_TEAM_ID", "ABCDE12345"),
                ("APPLE_MUSIC_KEY_ID", "KEY1234567"),
                ("APPLE_MUSIC_PRIVATE_KEY", &escaped),
                ("PUBLIC_BASE_URL", "https://dnp.example"),
            ]))
            .is_ok()
        );
    }

    #[test]
    fn missing_and_invalid_values_are_named_without_the_key() {
        let err = AppleMusicConfig::from_lookup(lookup_in(&[("APPLE_MUSIC_KEY_ID", "KEY1234567")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "APPLE_MUSIC_TEAM_ID" });
        let err = AppleMusicConfig::from_lookup(lookup_in(&[
            ("APPLE_MUSIC_TEAM_ID", "ABCDE12345"),
            ("APPLE_MUSIC_KEY_ID", "KEY1234567"),
            ("PUBLIC_BASE_URL", "https://dnp.example"),
        ]))
        .unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "APPLE_MUSIC_PRIVATE_KEY" });
        let bad_key = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
        let err = AppleMusicConfig::new("ABCDE12345", "KEY1234567", SecretString::from(bad_key), "https://x.test/c")
            .unwrap_err();
        assert!(err.to_string().contains("APPLE_MUSIC_PRIVATE_KEY") && !err.to_string().contains("bm90"), "{err}");
        let err =
            AppleMusicConfig::new("short", "KEY1234567", SecretString::from(TEST_KEY), "https://x.test/c").unwrap_err();
        assert!(err.to_string().contains("APPLE_MUSIC_TEAM_ID"), "{err}");
        let mut config =
            AppleMusicConfig::new("ABCDE12345", "KEY1234567", SecretString::from(TEST_KEY), "https://x.test/c")
                .unwrap();
        config.developer_token_ttl = MAX_DEVELOPER_TOKEN_TTL + Duration::from_secs(1);
        assert!(config.validate().is_err(), "a token valid longer than Apple allows");
    }
}
