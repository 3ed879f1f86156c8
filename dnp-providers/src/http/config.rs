//! Settings of the HTTP stack.

use std::time::Duration;

/// A configuration value that is missing or does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{name} is not set")]
    Missing {
        /// The variable.
        name: &'static str,
    },
    /// A variable is set to something that cannot be used.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why (never the value itself when it may be a secret).
        reason: String,
    },
}

/// A token-bucket rate: `per_second` requests a second on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second (at least 1).
    pub per_second: u32,
    /// Requests allowed back to back (at least 1).
    pub burst: u32,
}

/// Settings of the circuit breaker of one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit (`CIRCUIT_BREAKER_THRESHOLD`, default 5).
    pub threshold: u32,
    /// The failures must fall within this window of the first one (default 1 minute).
    pub window: Duration,
    /// How long the circuit stays open before one probe is let through (default 30 s).
    pub open_for: Duration,
    /// Successful probes in a row that close the circuit again (default 3).
    pub close_after: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { threshold: 5, window: Duration::from_secs(60), open_for: Duration::from_secs(30), close_after: 3 }
    }
}

/// Settings of an [`ApiClient`](super::ApiClient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Time to establish a connection (default 5 s).
    pub connect_timeout: Duration,
    /// Time for a whole request, body included (default 30 s).
    pub request_timeout: Duration,
    /// Retries of a transient failure (5xx, timeout, connection error), default 3.
    pub max_retries: u32,
    /// Retries after 429 answers, each after the service's `Retry-After` (default 10).
    pub max_rate_limit_retries: u32,
    /// The first backoff of a transient retry; doubles each attempt (default 250 ms).
    pub backoff_base: Duration,
    /// The longest backoff (default 10 s).
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is not waited out: the call returns `RateLimited`
    /// so the caller (a job queue) can reschedule (default 120 s).
    pub max_retry_after: Duration,
    /// The rate for the whole provider (all connections of this process).
    pub provider_rate: RateLimit,
    /// The rate for one connection.
    pub connection_rate: RateLimit,
    /// Requests one scan sends at once.
    pub concurrency: usize,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            max_rate_limit_retries: 10,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(120),
            provider_rate: RateLimit { per_second: 100, burst: 50 },
            connection_rate: RateLimit { per_second: 20, burst: 20 },
            concurrency: 8,
            breaker: BreakerConfig::default(),
            user_agent: concat!("dnp/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl HttpConfig {
    /// The defaults, with `CIRCUIT_BREAKER_THRESHOLD` read from the environment when set.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the variable is not a whole number of at least 1.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`HttpConfig::from_env`], reading variables through `lookup` (for tests).
    ///
    /// # Errors
    /// See [`HttpConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(raw) = lookup("CIRCUIT_BREAKER_THRESHOLD") {
            let threshold: u32 = raw.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "CIRCUIT_BREAKER_THRESHOLD",
                reason: format!("{raw:?} is not a whole number"),
            })?;
            if threshold == 0 {
                return Err(ConfigError::Invalid {
                    name: "CIRCUIT_BREAKER_THRESHOLD",
                    reason: "must be at least 1".into(),
                });
            }
            config.breaker.threshold = threshold;
        }
        Ok(config)
    }
}

/// Configuration variables read through a lookup (the process environment, or a test's
/// list): values are trimmed, and a blank one counts as unset.
#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music", feature = "apple_music"))]
pub(crate) struct EnvVars<F>(pub(crate) F);

#[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music", feature = "apple_music"))]
impl<F: Fn(&str) -> Option<String>> EnvVars<F> {
    /// `name`'s value, `None` when unset or blank.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// `name`'s value.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when it is unset or blank.
    pub(crate) fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing { name })
    }
}

/// A lookup over `vars` (name, value), for tests of `from_lookup`.
#[cfg(all(test, any(feature = "spotify", feature = "tidal", feature = "youtube_music", feature = "apple_music")))]
pub(crate) fn lookup_in(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_threshold_comes_from_the_environment() {
        let config = HttpConfig::from_lookup(|n| (n == "CIRCUIT_BREAKER_THRESHOLD").then(|| "7".to_owned())).unwrap();
        assert_eq!(config.breaker.threshold, 7);
        assert_eq!(HttpConfig::from_lookup(|_| None).unwrap().breaker.threshold, 5);
        let err = HttpConfig::from_lookup(|_| Some("many".into())).unwrap_err();
        assert!(err.to_string().contains("CIRCUIT_BREAKER_THRESHOLD"), "{err}");
        assert!(HttpConfig::from_lookup(|_| Some("0".into())).is_err());
    }

    #[cfg(any(feature = "spotify", feature = "tidal", feature = "youtube_music", feature = "apple_music"))]
    #[test]
    fn env_vars_trim_values_and_treat_blank_as_unset() {
        let vars = EnvVars(lookup_in(&[("SET", "  value "), ("BLANK", "   ")]));
        assert_eq!(vars.optional("SET").as_deref(), Some("value"));
        assert_eq!(vars.optional("BLANK"), None);
        assert_eq!(vars.optional("UNSET"), None);
        assert_eq!(vars.required("SET").unwrap(), "value");
        assert_eq!(vars.required("BLANK"), Err(ConfigError::Missing { name: "BLANK" }));
    }
}
