//! Configuration from the environment, read once at start into one typed [`Config`].
//!
//! Every variable is listed in `docs/operations.md`. A bad value is a [`ConfigError`] that
//! names the variable and says what is wrong; `dnp-server` prints it and exits non-zero.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// What the process is started as: some settings are required only in some modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `dnp-server serve`: the HTTP API (and, in the embedded default, a worker).
    Serve,
    /// `dnp-server worker`: background jobs only.
    Worker,
    /// `dnp-server migrate`: apply database migrations and exit.
    Migrate,
    /// `dnp-server demo`: everything in-process with generated secrets.
    Demo,
}

/// A configuration variable that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {var}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: String,
    /// What is wrong with it, and what would be right.
    pub problem: String,
}

impl ConfigError {
    /// An error about `var`.
    pub fn new(var: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { var: var.into(), problem: problem.into() }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole configuration of a server or worker process.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`: `sqlite:…` or `postgres://…` (default: a SQLite file in the data dir).
    pub database_url: SecretString,
    /// `DATA_DIR`: where the embedded default keeps its files (default `./.dnp-data`).
    pub data_dir: PathBuf,
    /// `REDIS_URL`: when set, the job queue lives in Redis.
    pub redis_url: Option<SecretString>,
    /// `PUBLIC_BASE_URL`: the URL users reach the server at, without a trailing `/`.
    pub public_base_url: String,
    /// `SESSION_SECRET`: signs access tokens and seals short-lived server-side secrets.
    pub session_secret: SecretString,
    /// `SESSION_SECRET_PREVIOUS`: the secret before a rotation, still accepted for reading.
    pub session_secret_previous: Option<SecretString>,
    /// `BIND_ADDR`: where `serve` listens (default `127.0.0.1:8080`).
    pub bind_addr: SocketAddr,
    /// `TOKEN_REFRESH_INTERVAL_HOURS`: how often the token refresh sweep runs (default 1).
    pub token_refresh_interval: Duration,
    /// `ACCESS_TOKEN_TTL_MINUTES` (default 15).
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL_DAYS` (default 30).
    pub refresh_token_ttl: Duration,
    /// `SESSION_CHECK_CACHE_SECONDS`: how long a server trusts that a session it just found
    /// live in the database is still live (default 5; 0 asks the database on every request).
    /// Signing out takes effect at once on the server that handled it and within this many
    /// seconds on the others.
    pub session_check_cache: Duration,
    /// `MAX_BODY_BYTES`: the largest request body accepted (default 1 MiB).
    pub max_body_bytes: usize,
    /// `RUN_WORKER`: whether `serve` also runs a worker (default: yes for the embedded
    /// SQLite setup, no otherwise).
    pub run_worker_in_serve: bool,
    /// `WORKER_CONCURRENCY`: jobs a worker runs at once (default 4).
    pub worker_concurrency: usize,
    /// `LOGIN_RATE_PER_MINUTE`: login attempts per account and per address (default 10).
    pub login_rate_per_minute: u32,
    /// `LOG_FORMAT`: `text` or `json` (default `text`). `RUST_LOG` filters as usual.
    pub log_format: LogFormat,
    /// `TRUST_PROXY_HEADERS`: take the client address from `X-Forwarded-For` (default false).
    pub trust_proxy_headers: bool,
    /// The key service (`KMS_PROVIDER`, `LOCAL_KMS_KEY_FILE`, `VAULT_*`: see dnp-vault). The
    /// local key file defaults to `DATA_DIR/dnp-kms.key`.
    pub kms: dnp_vault::KmsConfig,
    /// `DATA_KEY_CACHE_SIZE`: unwrapped data keys kept in memory (default 10,000).
    pub data_key_cache_size: usize,
    /// The job queue (`REDIS_URL`, `JOB_LEASE_SECONDS`, `JOB_MAX_ATTEMPTS`,
    /// `QUEUE_CLEANUP_BATCH`: see dnp-queue).
    pub queue: dnp_queue::QueueConfig,
    /// Each music service's client settings; a service whose client id is unset is off.
    pub providers: ProviderSettings,
    /// Email notifications (`SMTP_URL`, `SMTP_FROM`, `SMTP_TIMEOUT_SECONDS`): off when
    /// `SMTP_URL` is unset.
    pub smtp: Option<SmtpSettings>,
    /// Sign-in with Google, Apple and GitHub (see [`crate::idp::IdentityProviders`]).
    pub identity_providers: crate::idp::IdentityProviders,
}

/// How email notifications are sent. Debug shows the server, never the credentials.
#[derive(Clone)]
pub struct SmtpSettings {
    /// `SMTP_URL`: `smtps://user:pass@host:465` (TLS from the start),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or `smtp://host:25` (no TLS,
    /// no credentials: a local relay only).
    pub url: SecretString,
    /// `SMTP_FROM`: the sender, e.g. `dnp <dnp@example.org>`.
    pub from: String,
    /// `SMTP_TIMEOUT_SECONDS`: the longest one send may take (default 10).
    pub timeout: Duration,
    host: String,
    port: Option<u16>,
    tls: &'static str,
    authenticated: bool,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("authenticated", &self.authenticated)
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SmtpSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let Some(raw) = get("SMTP_URL") else {
            return Ok(None);
        };
        let bad = |problem: &str| {
            ConfigError::new(
                "SMTP_URL",
                format!(
                    "{problem}; use smtps://user:password@host:465, smtp://user:password@host:587?tls=required or smtp://host:25"
                ),
            )
        };
        // Never echo the value: it may hold the password.
        let url = url::Url::parse(&raw).map_err(|_| bad("is not a URL"))?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("names no host"))?.to_owned();
        let tls_param = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let tls = match (url.scheme(), tls_param.as_deref()) {
            ("smtps", None) => "wrapper",
            ("smtp", Some("required")) => "starttls",
            ("smtp", Some("opportunistic")) => "opportunistic",
            ("smtp", None) => "none",
            ("smtp" | "smtps", Some(_)) => return Err(bad("its tls parameter must be required or opportunistic")),
            _ => return Err(bad("must start with smtp:// or smtps://")),
        };
        let authenticated = url.password().is_some();
        if authenticated && tls == "none" {
            return Err(bad("credentials would travel unencrypted: add ?tls=required or use smtps://"));
        }
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&raw)
            .map_err(|_| bad("is not accepted by the SMTP client"))?;
        let from = get("SMTP_FROM").ok_or_else(|| {
            ConfigError::new("SMTP_FROM", "is required when SMTP_URL is set, e.g. dnp <dnp@example.org>")
        })?;
        if from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::new(
                "SMTP_FROM",
                format!("{from:?} is not an address such as dnp@example.org or dnp <dnp@example.org>"),
            ));
        }
        let seconds = parse_num::<u64>(get, "SMTP_TIMEOUT_SECONDS", 10, 1, 300)?;
        Ok(Some(Self {
            url: SecretString::from(raw),
            from,
            timeout: Duration::from_secs(seconds),
            host,
            port: url.port(),
            tls,
            authenticated,
        }))
    }
}

/// The music services' client settings.
#[derive(Clone, Debug, Default)]
pub struct ProviderSettings {
    /// Spotify (`SPOTIFY_CLIENT_ID`, `SPOTIFY_CLIENT_SECRET`, `SPOTIFY_REDIRECT_URI` (default
    /// `PUBLIC_BASE_URL/api/v1/connections/spotify/callback`), `SPOTIFY_API_BASE_URL`,
    /// `SPOTIFY_ACCOUNTS_BASE_URL`).
    pub spotify: Option<dnp_providers::spotify::SpotifyConfig>,
    /// YouTube Music (`YOUTUBE_CLIENT_ID`, `YOUTUBE_CLIENT_SECRET`, `YOUTUBE_REDIRECT_URI`
    /// (default `PUBLIC_BASE_URL/api/v1/connections/youtube_music/callback`),
    /// `YOUTUBE_API_BASE_URL`, `GOOGLE_AUTH_BASE_URL`, `YOUTUBE_DAILY_QUOTA`).
    pub youtube_music: Option<dnp_providers::youtube_music::YouTubeMusicConfig>,
    /// TIDAL (`TIDAL_CLIENT_ID`, `TIDAL_CLIENT_SECRET`, `TIDAL_REDIRECT_URI` (default
    /// `PUBLIC_BASE_URL/api/v1/connections/tidal/callback`), `TIDAL_API_BASE_URL`,
    /// `TIDAL_AUTH_BASE_URL`, `TIDAL_AUTHORIZE_URL`).
    pub tidal: Option<dnp_providers::tidal::TidalConfig>,
    /// Apple Music (`APPLE_MUSIC_TEAM_ID`, `APPLE_MUSIC_KEY_ID`, `APPLE_MUSIC_PRIVATE_KEY` or
    /// `APPLE_MUSIC_PRIVATE_KEY_FILE`, `APPLE_MUSIC_CONNECT_URL` (default
    /// `PUBLIC_BASE_URL/connect/apple-music`), `APPLE_MUSIC_REDIRECT_URI` (default
    /// `PUBLIC_BASE_URL/api/v1/connections/apple_music/callback`), `APPLE_MUSIC_API_BASE_URL`,
    /// `APPLE_MUSIC_STOREFRONT`).
    pub apple_music: Option<dnp_providers::apple_music::AppleMusicConfig>,
}

fn provider_error(e: dnp_providers::http::ConfigError) -> ConfigError {
    match e {
        dnp_providers::http::ConfigError::Missing { name } => ConfigError::new(name, "is not set"),
        dnp_providers::http::ConfigError::Invalid { name, reason } => ConfigError::new(name, reason),
        other => ConfigError::new("provider settings", other.to_string()),
    }
}

/// The default redirect URI of provider `id`: the server's own callback route.
pub(crate) fn default_redirect_uri(public_base_url: &str, id: &str) -> String {
    format!("{public_base_url}/api/v1/connections/{id}/callback")
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database", &self.database_kind())
            .field("data_dir", &self.data_dir)
            .field("redis", &self.redis_url.is_some())
            .field("public_base_url", &self.public_base_url)
            .field("bind_addr", &self.bind_addr)
            .field("token_refresh_interval", &self.token_refresh_interval)
            .field("run_worker_in_serve", &self.run_worker_in_serve)
            .field("smtp", &self.smtp)
            .finish_non_exhaustive()
    }
}

const MIN_SECRET_BYTES: usize = 32;

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable that is wrong.
    pub fn from_env(mode: Mode) -> Result<Self, ConfigError> {
        Self::from_lookup(mode, |name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable that is wrong.
    pub fn from_lookup(mode: Mode, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "./.dnp-data".to_owned()));
        let database_url = match get("DATABASE_URL") {
            Some(url) => {
                if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(ConfigError::new(
                        "DATABASE_URL",
                        "must start with sqlite: or postgres:// (e.g. sqlite://./.dnp-data/dnp.db or postgres://user@host/db)",
                    ));
                }
                url
            }
            None => format!("sqlite://{}", data_dir.join("dnp.db").display()),
        };
        // Its scheme (redis://, rediss://, redis+unix://, unix://) is checked once, by the
        // queue's configuration below.
        let redis_url = get("REDIS_URL").map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());

        let bind_addr: SocketAddr = match get("BIND_ADDR") {
            Some(v) => v.parse().map_err(|_| {
                ConfigError::new("BIND_ADDR", format!("{v:?} is not an address and port such as 127.0.0.1:8080"))
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };

        let public_base_url = match get("PUBLIC_BASE_URL") {
            Some(v) => {
                let v = v.trim_end_matches('/').to_owned();
                let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
                match rest {
                    Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ']) => v,
                    _ => {
                        return Err(ConfigError::new(
                            "PUBLIC_BASE_URL",
                            "must be an absolute http:// or https:// URL such as https://dnp.example.org",
                        ));
                    }
                }
            }
            None => format!("http://{bind_addr}"),
        };

        let session_secret = match get("SESSION_SECRET") {
            Some(s) if s.len() < MIN_SECRET_BYTES => {
                return Err(ConfigError::new(
                    "SESSION_SECRET",
                    format!(
                        "must be at least {MIN_SECRET_BYTES} bytes long (it is {}); generate one with `openssl rand -base64 48`",
                        s.len()
                    ),
                ));
            }
            Some(s) => SecretString::from(s),
            None if matches!(mode, Mode::Serve) => {
                return Err(ConfigError::new(
                    "SESSION_SECRET",
                    format!(
                        "is required by `serve`: set at least {MIN_SECRET_BYTES} random bytes, e.g. `openssl rand -base64 48`"
                    ),
                ));
            }
            // Workers and migrate sign nothing a browser keeps; the demo makes its own.
            None => SecretString::from(random_secret()),
        };
        let session_secret_previous = match get("SESSION_SECRET_PREVIOUS") {
            Some(s) if s.len() < MIN_SECRET_BYTES => {
                return Err(ConfigError::new(
                    "SESSION_SECRET_PREVIOUS",
                    format!("must be at least {MIN_SECRET_BYTES} bytes long like SESSION_SECRET"),
                ));
            }
            other => other.map(SecretString::from),
        };

        let hours = parse_num::<u64>(&get, "TOKEN_REFRESH_INTERVAL_HOURS", 1, 1, 24 * 7)?;
        let access_minutes = parse_num::<u64>(&get, "ACCESS_TOKEN_TTL_MINUTES", 15, 1, 24 * 60)?;
        let refresh_days = parse_num::<u64>(&get, "REFRESH_TOKEN_TTL_DAYS", 30, 1, 365)?;
        let session_check_seconds = parse_num::<u64>(&get, "SESSION_CHECK_CACHE_SECONDS", 5, 0, 300)?;
        let max_body_bytes = parse_num::<usize>(&get, "MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024)?;
        let worker_concurrency = parse_num::<usize>(&get, "WORKER_CONCURRENCY", 4, 1, 256)?;
        let login_rate_per_minute = parse_num::<u32>(&get, "LOGIN_RATE_PER_MINUTE", 10, 1, 10_000)?;
        let embedded = database_url.starts_with("sqlite:") && redis_url.is_none();
        let run_worker_in_serve = parse_bool(&get, "RUN_WORKER", embedded)?;
        let trust_proxy_headers = parse_bool(&get, "TRUST_PROXY_HEADERS", false)?;
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new("LOG_FORMAT", format!("{other:?} is neither \"text\" nor \"json\"")));
            }
        };

        let key_file = data_dir.join(dnp_vault::config::DEFAULT_LOCAL_KEY_FILE).display().to_string();
        let kms_lookup = |name: &str| match (name, get(name)) {
            ("LOCAL_KMS_KEY_FILE", None) => Some(key_file.clone()),
            (_, v) => v,
        };
        let kms =
            dnp_vault::KmsConfig::from_lookup(kms_lookup).map_err(|e| ConfigError::new(e.variable(), e.problem()))?;
        let data_key_cache_size = dnp_vault::config::data_key_cache_size_from_lookup(get)
            .map_err(|e| ConfigError::new(e.variable(), e.problem()))?;
        let queue = dnp_queue::QueueConfig::from_lookup(get).map_err(|e| match e {
            dnp_queue::ConfigError::Invalid { variable, reason, .. } => ConfigError::new(variable, reason),
            other => ConfigError::new("queue", other.to_string()),
        })?;

        // A service is on when its client id is set; its redirect URI defaults to our callback.
        let with_redirect = |id_var: &str, redirect_var: &'static str, provider: &str| {
            get(id_var).map(|_| {
                let redirect = default_redirect_uri(&public_base_url, provider);
                move |name: &str| match (name, get(name)) {
                    (n, None) if n == redirect_var => Some(redirect.clone()),
                    (_, v) => v,
                }
            })
        };
        let spotify = with_redirect("SPOTIFY_CLIENT_ID", "SPOTIFY_REDIRECT_URI", "spotify")
            .map(|lookup| dnp_providers::spotify::SpotifyConfig::from_lookup(lookup).map_err(provider_error))
            .transpose()?;
        let youtube_music = with_redirect("YOUTUBE_CLIENT_ID", "YOUTUBE_REDIRECT_URI", "youtube_music")
            .map(|lookup| dnp_providers::youtube_music::YouTubeMusicConfig::from_lookup(lookup).map_err(provider_error))
            .transpose()?;
        let apple_music = with_redirect("APPLE_MUSIC_TEAM_ID", "APPLE_MUSIC_REDIRECT_URI", "apple_music")
            .map(|lookup| {
                let base = public_base_url.clone();
                let lookup = move |name: &str| match (name, lookup(name)) {
                    ("PUBLIC_BASE_URL", None) => Some(base.clone()),
                    (_, v) => v,
                };
                dnp_providers::apple_music::AppleMusicConfig::from_lookup(lookup).map_err(provider_error)
            })
            .transpose()?;
        let tidal = with_redirect("TIDAL_CLIENT_ID", "TIDAL_REDIRECT_URI", "tidal")
            .map(|lookup| dnp_providers::tidal::TidalConfig::from_lookup(lookup).map_err(provider_error))
            .transpose()?;

        let smtp = SmtpSettings::from_lookup(&get)?;

        let identity_providers = crate::idp::IdentityProviders::from_lookup(&get)?;
        Ok(Self {
            identity_providers,
            smtp,
            providers: ProviderSettings { spotify, youtube_music, tidal, apple_music },
            kms,
            data_key_cache_size,
            queue,
            database_url: SecretString::from(database_url),
            data_dir,
            redis_url: redis_url.map(SecretString::from),
            public_base_url,
            session_secret,
            session_secret_previous,
            bind_addr,
            token_refresh_interval: Duration::from_secs(hours * 3600),
            access_token_ttl: Duration::from_secs(access_minutes * 60),
            refresh_token_ttl: Duration::from_secs(refresh_days * 86_400),
            session_check_cache: Duration::from_secs(session_check_seconds),
            max_body_bytes,
            run_worker_in_serve,
            worker_concurrency,
            login_rate_per_minute,
            log_format,
            trust_proxy_headers,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn database_kind(&self) -> &'static str {
        if self.database_url.expose_secret().starts_with("sqlite:") { "sqlite" } else { "postgres" }
    }

    /// Whether cookies must carry `Secure` (the public URL is https).
    pub fn secure_cookies(&self) -> bool {
        self.public_base_url.starts_with("https://")
    }
}

fn parse_num<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => match v.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(ConfigError::new(var, format!("{v:?} is not a whole number from {min} to {max}"))),
        },
    }
}

fn parse_bool(get: &impl Fn(&str) -> Option<String>, var: &str, default: bool) -> Result<bool, ConfigError> {
    match get(var).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError::new(var, format!("{other:?} is not a boolean (use true or false)"))),
    }
}

/// 48 random bytes, base64url: a fresh secret for processes that need one but were given none.
pub(crate) fn random_secret() -> String {
    crate::crypto::random_token(48)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(mode: Mode, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(mode, |k| map.get(k).cloned())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123";

    #[test]
    fn serve_requires_a_session_secret() {
        let err = cfg(Mode::Serve, &[]).unwrap_err();
        assert_eq!(err.var, "SESSION_SECRET");
        assert!(err.to_string().contains("required"));
        assert!(cfg(Mode::Worker, &[]).is_ok());
    }

    #[test]
    fn a_short_session_secret_is_refused_with_its_length() {
        let err = cfg(Mode::Serve, &[("SESSION_SECRET", "short")]).unwrap_err();
        assert_eq!(err.var, "SESSION_SECRET");
        assert!(err.problem.contains("at least 32"), "{}", err.problem);
        assert!(!err.to_string().contains("short\""), "the secret itself must not be echoed");
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = cfg(Mode::Serve, &[("SESSION_SECRET", SECRET)]).unwrap();
        assert_eq!(c.database_kind(), "sqlite");
        assert!(c.database_url.expose_secret().ends_with("dnp.db"));
        assert!(c.run_worker_in_serve);
        assert_eq!(c.public_base_url, "http://127.0.0.1:8080");
        assert_eq!(c.token_refresh_interval, Duration::from_secs(3600));
    }

    #[test]
    fn redis_may_be_reached_over_tcp_tls_or_a_unix_socket() {
        for url in ["redis://h:6379/", "rediss://h/", "redis+unix:///run/redis.sock", "unix:///run/redis.sock"] {
            let c = cfg(Mode::Serve, &[("SESSION_SECRET", SECRET), ("REDIS_URL", url)])
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(c.redis_url.is_some(), "{url}");
        }
        let blank = cfg(Mode::Serve, &[("SESSION_SECRET", SECRET), ("REDIS_URL", " ")]).expect("blank is unset");
        assert!(blank.redis_url.is_none());
    }

    #[test]
    fn each_bad_variable_is_named() {
        let cases = [
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("BIND_ADDR", "nowhere"),
            ("PUBLIC_BASE_URL", "example.org"),
            ("TOKEN_REFRESH_INTERVAL_HOURS", "0"),
            ("TOKEN_REFRESH_INTERVAL_HOURS", "x"),
            ("MAX_BODY_BYTES", "12"),
            ("RUN_WORKER", "maybe"),
            ("LOG_FORMAT", "xml"),
        ];
        for (var, value) in cases {
            let err = cfg(Mode::Serve, &[("SESSION_SECRET", SECRET), (var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{value}");
        }
    }

    #[test]
    fn postgres_and_redis_turn_the_embedded_worker_off() {
        let c = cfg(
            Mode::Serve,
            &[("SESSION_SECRET", SECRET), ("DATABASE_URL", "postgres://u@h/db"), ("REDIS_URL", "redis://h/")],
        )
        .unwrap();
        assert_eq!(c.database_kind(), "postgres");
        assert!(!c.run_worker_in_serve);
        let debug = format!("{c:?}");
        assert!(!debug.contains("u@h"), "Debug must not print the database URL: {debug}");
    }

    #[test]
    fn smtp_is_off_unless_configured_and_needs_a_sender() {
        assert!(cfg(Mode::Worker, &[]).unwrap().smtp.is_none());
        let err = cfg(Mode::Worker, &[("SMTP_URL", "smtps://u:pw@mail.example.org:465")]).unwrap_err();
        assert_eq!(err.var, "SMTP_FROM");
        let c = cfg(
            Mode::Worker,
            &[("SMTP_URL", "smtp://mail.example.org:587?tls=required"), ("SMTP_FROM", "dnp <dnp@example.org>")],
        )
        .unwrap();
        let smtp = c.smtp.expect("configured");
        assert_eq!(smtp.timeout, Duration::from_secs(10));
        assert_eq!(smtp.tls, "starttls");
    }

    #[test]
    fn each_bad_smtp_variable_is_named_without_echoing_the_password() {
        let cases = [
            ("SMTP_URL", "http://u:hunter2secret@mail.example.org"),
            ("SMTP_URL", "smtp://u:hunter2secret@mail.example.org:25"),
            ("SMTP_URL", "smtp://u:hunter2secret@mail.example.org?tls=sometimes"),
            ("SMTP_URL", "not a url hunter2secret"),
            ("SMTP_FROM", "nobody"),
            ("SMTP_TIMEOUT_SECONDS", "0"),
        ];
        for (var, value) in cases {
            let mut vars =
                vec![("SMTP_URL", "smtps://u:hunter2secret@mail.example.org"), ("SMTP_FROM", "dnp@example.org")];
            vars.retain(|(k, _)| *k != var);
            vars.push((var, value));
            let err = cfg(Mode::Worker, &vars).unwrap_err();
            assert_eq!(err.var, var, "{value}");
            assert!(!err.to_string().contains("hunter2secret"), "{err}");
        }
    }
}
