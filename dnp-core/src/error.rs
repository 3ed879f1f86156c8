//! Errors, named by meaning. Each knows whether it may be retried, and after how long.

use std::time::Duration;

use crate::id::ProviderId;

/// Whether an operation that failed may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Permanent: trying again gives the same error.
    Never,
    /// Temporary: try again after a backoff of the caller's choosing.
    Backoff,
    /// Temporary: try again after exactly this long (a `Retry-After`).
    After(Duration),
}

/// An error from a music service, through its adapter.
///
/// Every variant names what it means, not where it came from; the HTTP status or SDK error
/// that caused it is kept as text in `detail` with tokens and query strings removed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The item (track, album, artist, playlist) does not exist at the service.
    #[error("{provider}: {what} not found")]
    NotFound {
        /// The provider.
        provider: ProviderId,
        /// What was missing, e.g. `playlist 37i9dQZF1DX` (ids only, never tokens).
        what: String,
    },
    /// The user must connect again: the refresh token was refused, revoked or expired.
    #[error("{provider}: the connection needs to be authorized again ({reason})")]
    NeedsReauth {
        /// The provider.
        provider: ProviderId,
        /// Why, in words a user can read.
        reason: String,
    },
    /// The service asked us to slow down.
    #[error("{provider}: rate limited{}", retry_after.map(|d| format!(", retry after {} s", d.as_secs_f64())).unwrap_or_default())]
    RateLimited {
        /// The provider.
        provider: ProviderId,
        /// The service's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// A usage quota is spent (e.g. YouTube's daily units); retrying before it resets fails.
    #[error("{provider}: quota exceeded{}", retry_after.map(|d| format!(", resets in {} s", d.as_secs())).unwrap_or_default())]
    QuotaExceeded {
        /// The provider.
        provider: ProviderId,
        /// How long until the quota resets, when known.
        retry_after: Option<Duration>,
    },
    /// The circuit breaker for this provider is open: calls fail at once until it recovers.
    #[error("{provider}: service unavailable (circuit open)")]
    ProviderUnavailable {
        /// The provider.
        provider: ProviderId,
        /// When the breaker will let a probe through.
        retry_after: Option<Duration>,
    },
    /// The service's API cannot do this at all.
    #[error("{provider}: {what} is not supported by the service's API")]
    Unsupported {
        /// The provider.
        provider: ProviderId,
        /// What was asked.
        what: String,
    },
    /// The resource changed under us (a playlist's snapshot id no longer matches).
    #[error("{provider}: conflict: {what}")]
    Conflict {
        /// The provider.
        provider: ProviderId,
        /// What changed.
        what: String,
    },
    /// The request was refused as invalid (our bug or bad user input), e.g. HTTP 400.
    #[error("{provider}: invalid request to {endpoint}: {detail}")]
    InvalidInput {
        /// The provider.
        provider: ProviderId,
        /// The endpoint template, e.g. `DELETE /me/library`.
        endpoint: String,
        /// The service's message.
        detail: String,
    },
    /// A temporary failure: a 5xx, a timeout, a reset connection.
    #[error("{provider}: temporary failure at {endpoint}: {detail}")]
    Transient {
        /// The provider.
        provider: ProviderId,
        /// The endpoint template.
        endpoint: String,
        /// What happened.
        detail: String,
    },
    /// The service answered something we cannot read (malformed or unexpected JSON).
    #[error("{provider}: unexpected response from {endpoint}: {detail}")]
    Protocol {
        /// The provider.
        provider: ProviderId,
        /// The endpoint template.
        endpoint: String,
        /// What was wrong, e.g. the serde path and message.
        detail: String,
    },
}

impl ProviderError {
    /// Whether and when the failed call may be tried again.
    pub fn retry(&self) -> Retry {
        match self {
            Self::RateLimited { retry_after: Some(d), .. } => Retry::After(*d),
            Self::RateLimited { retry_after: None, .. } | Self::Transient { .. } => Retry::Backoff,
            Self::QuotaExceeded { retry_after: Some(d), .. }
            | Self::ProviderUnavailable { retry_after: Some(d), .. } => Retry::After(*d),
            Self::ProviderUnavailable { retry_after: None, .. } => Retry::Backoff,
            _ => Retry::Never,
        }
    }

    /// Whether the error is temporary.
    pub fn is_retryable(&self) -> bool {
        self.retry() != Retry::Never
    }

    /// A short machine-readable code (`not_found`, `needs_reauth`, `rate_limited`…), stable
    /// across versions: the server puts it in its JSON errors and the action log.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::NeedsReauth { .. } => "needs_reauth",
            Self::RateLimited { .. } => "rate_limited",
            Self::QuotaExceeded { .. } => "quota_exceeded",
            Self::ProviderUnavailable { .. } => "provider_unavailable",
            Self::Unsupported { .. } => "unsupported",
            Self::Conflict { .. } => "conflict",
            Self::InvalidInput { .. } => "invalid_input",
            Self::Transient { .. } => "transient",
            Self::Protocol { .. } => "protocol",
        }
    }
}

/// Bad input handed to dnp: a malformed id, a JSON document that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A provider id that is not 1-32 of `a-z0-9_` starting with a letter.
    #[error("invalid provider id {id:?}: use 1-32 lowercase letters, digits or '_', starting with a letter")]
    InvalidProviderId {
        /// The id as given.
        id: String,
    },
    /// A provider id that is well formed but names no registered adapter.
    #[error("unknown provider {id:?}")]
    UnknownProvider {
        /// The id as given.
        id: String,
    },
    /// A UUID-based id that does not parse.
    #[error("invalid {kind}: {value:?} is not a UUID")]
    InvalidId {
        /// Which id type.
        kind: &'static str,
        /// The value (at most 64 characters of it).
        value: String,
    },
    /// A JSON document that does not match its schema.
    #[error("invalid {document} at {path} (line {line}, column {column}): {message}")]
    Json {
        /// What was being read (`library snapshot`, `DNP list`).
        document: &'static str,
        /// The path of the field, e.g. `liked_tracks[3].track.artists[0].role`.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// A value that parses but is not allowed (a negative position, an empty name…).
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
}

/// An error from a storage backend: the token store, the action log, the job queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist (or belongs to someone else).
    #[error("{what} not found")]
    NotFound {
        /// What was looked up (ids only).
        what: String,
    },
    /// A concurrent change won, or a uniqueness rule was broken.
    #[error("conflict: {what}")]
    Conflict {
        /// What conflicted.
        what: String,
    },
    /// A lease was lost: the job was re-leased to another worker, completed or cancelled.
    #[error("lease lost on job {job}")]
    LeaseLost {
        /// The job.
        job: crate::JobId,
    },
    /// Bad input to the store.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Encryption or decryption failed; names the connection, never the secret.
    #[error("cannot decrypt {field} of connection {connection}: {reason}")]
    Crypto {
        /// The connection whose data failed.
        connection: crate::ConnectionId,
        /// Which field (`access_token`, `refresh_token`).
        field: &'static str,
        /// Why (corrupt ciphertext, unknown key version, missing data key…).
        reason: String,
    },
    /// The key management service failed.
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// The backend (database, Redis) failed; temporary unless stated.
    #[error("storage backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(err))
    }

    /// Whether the operation may be retried.
    pub fn retry(&self) -> Retry {
        match self {
            Self::Backend(_) => Retry::Backoff,
            Self::Kms(k) => k.retry(),
            _ => Retry::Never,
        }
    }
}

/// An error from a key management service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// The KMS cannot be reached or answered 5xx.
    #[error("key service unavailable: {detail}")]
    Unavailable {
        /// What happened (no secrets).
        detail: String,
    },
    /// The KMS is sealed (Vault/OpenBao) and must be unsealed by an operator.
    #[error("key service is sealed")]
    Sealed,
    /// Our credentials were refused.
    #[error("key service refused our credentials: {detail}")]
    PermissionDenied {
        /// What happened.
        detail: String,
    },
    /// The named key or key version does not exist.
    #[error("key {key} not found")]
    KeyNotFound {
        /// The key name and version.
        key: String,
    },
    /// A wrapped key that does not unwrap (corrupt, or wrapped by another key).
    #[error("wrapped data key is invalid: {detail}")]
    InvalidWrappedKey {
        /// What was wrong.
        detail: String,
    },
    /// The KMS configuration is wrong (missing key file, bad key length…).
    #[error("key service misconfigured: {detail}")]
    Config {
        /// What is wrong and how to fix it.
        detail: String,
    },
}

impl KmsError {
    /// Whether the operation may be retried.
    pub fn retry(&self) -> Retry {
        match self {
            Self::Unavailable { .. } | Self::Sealed => Retry::Backoff,
            _ => Retry::Never,
        }
    }
}
