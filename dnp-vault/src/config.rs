//! Configuration from the environment: which KMS, where its key lives, how big the
//! data-key cache is.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `KMS_PROVIDER` | `local` or `vault` | `local` |
//! | `LOCAL_KMS_KEY` | the local master key(s), base64 (see [`LocalKms`](crate::LocalKms)); wins over the file | unset |
//! | `LOCAL_KMS_KEY_FILE` | the local key file, created on first use with mode 0600 | `dnp-kms.key` |
//! | `VAULT_ADDR` | Vault/OpenBao address, e.g. `https://vault.internal:8200` | required for `vault` |
//! | `VAULT_TOKEN` | a token, or | |
//! | `VAULT_ROLE_ID` + `VAULT_SECRET_ID` | AppRole credentials | one of the two required |
//! | `VAULT_APPROLE_MOUNT` | where AppRole is mounted | `approle` |
//! | `VAULT_TRANSIT_MOUNT` | where Transit is mounted | `transit` |
//! | `VAULT_TRANSIT_KEY` | the Transit key name | `dnp` |
//! | `VAULT_TRANSIT_CREATE_KEY` | create the key when missing (`true`/`false`) | `true` |
//! | `VAULT_NAMESPACE` | Vault Enterprise / HCP namespace | unset |
//! | `DATA_KEY_CACHE_SIZE` | unwrapped data keys kept in memory (0 disables the cache) | `10000` |

use std::fmt;
#[cfg(feature = "local")]
use std::path::PathBuf;
use std::sync::Arc;

use dnp_core::{KmsError, KmsProvider};
#[cfg(feature = "vault")]
use secrecy::SecretString;

/// A configuration variable that is missing or malformed. Names the variable, never its
/// value when the value is a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    variable: String,
    problem: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self { variable: variable.to_owned(), problem: problem.into() }
    }

    /// The environment variable at fault.
    pub fn variable(&self) -> &str {
        &self.variable
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

/// Where [`LocalKms`](crate::LocalKms) gets its master key.
#[cfg(feature = "local")]
#[derive(Clone)]
#[non_exhaustive]
pub enum LocalKeySource {
    /// A key file, created on first use (mode 0600).
    File(PathBuf),
    /// Key material given directly (the value of `LOCAL_KMS_KEY`).
    Inline(secrecy::SecretString),
}

#[cfg(feature = "local")]
impl fmt::Debug for LocalKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// How [`VaultTransitKms`](crate::VaultTransitKms) logs in.
#[cfg(feature = "vault")]
#[derive(Clone)]
#[non_exhaustive]
pub enum VaultAuth {
    /// A fixed token (`VAULT_TOKEN`), used as is; its lifetime is the operator's business.
    Token(SecretString),
    /// AppRole: log in with a role id and secret id, renew the token before its lease
    /// ends, log in again when it can no longer be renewed.
    AppRole {
        /// The role id.
        role_id: String,
        /// The secret id.
        secret_id: SecretString,
        /// Where AppRole is mounted (`approle`).
        mount: String,
    },
}

#[cfg(feature = "vault")]
impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::AppRole { role_id, mount, .. } => f
                .debug_struct("AppRole")
                .field("role_id", role_id)
                .field("secret_id", &"<redacted>")
                .field("mount", mount)
                .finish(),
        }
    }
}

/// Configuration of [`VaultTransitKms`](crate::VaultTransitKms).
#[cfg(feature = "vault")]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VaultConfig {
    /// The server, e.g. `https://vault.internal:8200` (no trailing `/v1`).
    pub addr: String,
    /// How to authenticate.
    pub auth: VaultAuth,
    /// The Transit mount (`transit`).
    pub mount: String,
    /// The Transit key name.
    pub key: String,
    /// Create the key (type `aes256-gcm96`) when it does not exist.
    pub create_key_if_missing: bool,
    /// `X-Vault-Namespace`, for Vault Enterprise / HCP.
    pub namespace: Option<String>,
    /// TCP connect timeout.
    pub connect_timeout: std::time::Duration,
    /// Whole-request timeout.
    pub request_timeout: std::time::Duration,
}

#[cfg(feature = "vault")]
impl VaultConfig {
    /// A configuration with the defaults: mount `transit`, key creation on, 5 s connect
    /// and 30 s request timeouts.
    ///
    /// # Errors
    /// [`ConfigError`] when the address is not `http(s)://…` or the key name has characters
    /// other than `A-Z a-z 0-9 _ - .`.
    pub fn new(addr: impl Into<String>, auth: VaultAuth, key: impl Into<String>) -> Result<Self, ConfigError> {
        let config = Self {
            addr: addr.into().trim_end_matches('/').to_owned(),
            auth,
            mount: "transit".to_owned(),
            key: key.into(),
            create_key_if_missing: true,
            namespace: None,
            connect_timeout: std::time::Duration::from_secs(5),
            request_timeout: std::time::Duration::from_secs(30),
        };
        config.validate()?;
        Ok(config)
    }

    /// Sets the Transit mount.
    ///
    /// # Errors
    /// [`ConfigError`] for a mount with characters other than `A-Z a-z 0-9 _ - . /`.
    pub fn with_mount(mut self, mount: impl Into<String>) -> Result<Self, ConfigError> {
        self.mount = mount.into().trim_matches('/').to_owned();
        self.validate()?;
        Ok(self)
    }

    /// Whether to create the key when it is missing.
    pub fn with_create_key_if_missing(mut self, create: bool) -> Self {
        self.create_key_if_missing = create;
        self
    }

    /// Sets the timeouts.
    pub fn with_timeouts(mut self, connect: std::time::Duration, request: std::time::Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.addr.starts_with("http://") || self.addr.starts_with("https://")) || self.addr.len() <= 8 {
            return Err(ConfigError::new(
                "VAULT_ADDR",
                format!("{:?} is not an http:// or https:// address", self.addr),
            ));
        }
        let name_ok = |s: &str, slash: bool| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b) || (slash && b == b'/'))
                && !s.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..")
        };
        if !name_ok(&self.key, false) {
            return Err(ConfigError::new(
                "VAULT_TRANSIT_KEY",
                format!("{:?}: use 1-128 of A-Z a-z 0-9 _ - .", self.key),
            ));
        }
        if !name_ok(&self.mount, true) {
            return Err(ConfigError::new(
                "VAULT_TRANSIT_MOUNT",
                format!("{:?}: use 1-128 of A-Z a-z 0-9 _ - . /", self.mount),
            ));
        }
        if let VaultAuth::AppRole { mount, .. } = &self.auth
            && !name_ok(mount, true)
        {
            return Err(ConfigError::new(
                "VAULT_APPROLE_MOUNT",
                format!("{mount:?}: use 1-128 of A-Z a-z 0-9 _ - . /"),
            ));
        }
        Ok(())
    }
}

/// Which KMS to use, read from the environment by [`KmsConfig::from_env`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum KmsConfig {
    /// [`LocalKms`](crate::LocalKms).
    #[cfg(feature = "local")]
    Local(LocalKeySource),
    /// [`VaultTransitKms`](crate::VaultTransitKms).
    #[cfg(feature = "vault")]
    Vault(VaultConfig),
}

/// The default local key file.
pub const DEFAULT_LOCAL_KEY_FILE: &str = "dnp-kms.key";

impl KmsConfig {
    /// Reads `KMS_PROVIDER` and the variables of the chosen provider (table in the
    /// [module docs](self)).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is missing or malformed.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `get` (for tests and
    /// for servers with their own configuration layer).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is missing or malformed.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let provider = get("KMS_PROVIDER").unwrap_or_else(|| "local".to_owned());
        match provider.to_ascii_lowercase().as_str() {
            "local" => local_from_lookup(&get),
            "vault" | "openbao" => vault_from_lookup(&get),
            other => Err(ConfigError::new("KMS_PROVIDER", format!("{other:?} is not one of: local, vault"))),
        }
    }

    /// Builds the configured KMS.
    ///
    /// # Errors
    /// [`KmsError::Config`] for an unusable key file (world-readable, malformed) or HTTP
    /// client; a Vault server is not contacted until first use.
    pub fn build(self) -> Result<Arc<dyn KmsProvider>, KmsError> {
        match self {
            #[cfg(feature = "local")]
            Self::Local(source) => Ok(Arc::new(crate::LocalKms::from_source(source)?)),
            #[cfg(feature = "vault")]
            Self::Vault(config) => Ok(Arc::new(crate::VaultTransitKms::new(config)?)),
        }
    }
}

#[cfg(feature = "local")]
fn local_from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<KmsConfig, ConfigError> {
    if let Some(key) = get("LOCAL_KMS_KEY") {
        // Validate now so a bad value fails at startup, naming the variable.
        crate::kms::local::parse_inline(&key).map_err(|problem| ConfigError::new("LOCAL_KMS_KEY", problem))?;
        return Ok(KmsConfig::Local(LocalKeySource::Inline(key.into())));
    }
    let path = get("LOCAL_KMS_KEY_FILE").unwrap_or_else(|| DEFAULT_LOCAL_KEY_FILE.to_owned());
    Ok(KmsConfig::Local(LocalKeySource::File(PathBuf::from(path))))
}

#[cfg(not(feature = "local"))]
fn local_from_lookup(_: &impl Fn(&str) -> Option<String>) -> Result<KmsConfig, ConfigError> {
    Err(ConfigError::new("KMS_PROVIDER", "\"local\" needs dnp-vault built with the `local` feature"))
}

#[cfg(feature = "vault")]
fn vault_from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<KmsConfig, ConfigError> {
    let addr = get("VAULT_ADDR").ok_or_else(|| ConfigError::new("VAULT_ADDR", "required when KMS_PROVIDER=vault"))?;
    let auth = match (get("VAULT_TOKEN"), get("VAULT_ROLE_ID"), get("VAULT_SECRET_ID")) {
        (_, Some(role_id), Some(secret_id)) => VaultAuth::AppRole {
            role_id,
            secret_id: secret_id.into(),
            mount: get("VAULT_APPROLE_MOUNT").unwrap_or_else(|| "approle".to_owned()),
        },
        (_, Some(_), None) => {
            return Err(ConfigError::new("VAULT_SECRET_ID", "required with VAULT_ROLE_ID"));
        }
        (_, None, Some(_)) => {
            return Err(ConfigError::new("VAULT_ROLE_ID", "required with VAULT_SECRET_ID"));
        }
        (Some(token), None, None) => VaultAuth::Token(token.into()),
        (None, None, None) => {
            return Err(ConfigError::new("VAULT_TOKEN", "set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID"));
        }
    };
    let key = get("VAULT_TRANSIT_KEY").unwrap_or_else(|| "dnp".to_owned());
    let mut config = VaultConfig::new(addr, auth, key)?;
    if let Some(mount) = get("VAULT_TRANSIT_MOUNT") {
        config = config.with_mount(mount)?;
    }
    if let Some(create) = get("VAULT_TRANSIT_CREATE_KEY") {
        config.create_key_if_missing = parse_bool(&create)
            .ok_or_else(|| ConfigError::new("VAULT_TRANSIT_CREATE_KEY", format!("{create:?} is not true or false")))?;
    }
    config.namespace = get("VAULT_NAMESPACE");
    Ok(KmsConfig::Vault(config))
}

#[cfg(not(feature = "vault"))]
fn vault_from_lookup(_: &impl Fn(&str) -> Option<String>) -> Result<KmsConfig, ConfigError> {
    Err(ConfigError::new("KMS_PROVIDER", "\"vault\" needs dnp-vault built with the `vault` feature"))
}

#[cfg(feature = "vault")]
fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Reads `DATA_KEY_CACHE_SIZE` (default 10,000; 0 disables the cache).
///
/// # Errors
/// [`ConfigError`] when it is not a non-negative integer.
pub fn data_key_cache_size_from_env() -> Result<usize, ConfigError> {
    data_key_cache_size_from_lookup(|name| std::env::var(name).ok())
}

/// Like [`data_key_cache_size_from_env`], reading through `get`.
///
/// # Errors
/// [`ConfigError`] when it is not a non-negative integer.
pub fn data_key_cache_size_from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<usize, ConfigError> {
    match get("DATA_KEY_CACHE_SIZE").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => Ok(crate::DataKeyCache::DEFAULT_CAPACITY),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ConfigError::new("DATA_KEY_CACHE_SIZE", format!("{v:?} is not a non-negative integer"))),
    }
}

impl fmt::Display for KmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "local")]
            Self::Local(LocalKeySource::File(path)) => write!(f, "local key file {}", path.display()),
            #[cfg(feature = "local")]
            Self::Local(LocalKeySource::Inline(_)) => f.write_str("local key from LOCAL_KMS_KEY"),
            #[cfg(feature = "vault")]
            Self::Vault(c) => write!(f, "vault transit key {}/{} at {}", c.mount, c.key, c.addr),
            #[cfg(not(any(feature = "local", feature = "vault")))]
            _ => f.write_str("no KMS (dnp-vault built without `local` and `vault`)"),
        }
    }
}
