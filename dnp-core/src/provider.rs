//! The provider SDK: [`Provider`] (scan, apply, search), [`ProviderAuth`] (OAuth) and the
//! [`TokenSource`] an adapter asks for access tokens.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::action::ActionOutcome;
use crate::capability::Capabilities;
use crate::error::{InputError, ProviderError};
use crate::id::ProviderId;
use crate::model::{LibrarySnapshot, Track};
use crate::plan::Batch;

/// Progress of long work (a scan, an enforcement): `done` of `total` units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Units done.
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
    /// What is happening, for people ("liked tracks: page 3 of 20").
    pub message: String,
}

/// Receives progress reports. Implemented for any `Fn(Progress) + Send + Sync`.
pub trait ProgressSink: Send + Sync {
    /// Called after each unit of work (a page, a batch). Must return quickly.
    fn report(&self, progress: Progress);
}

impl<F: Fn(Progress) + Send + Sync> ProgressSink for F {
    fn report(&self, progress: Progress) {
        self(progress)
    }
}

/// A [`ProgressSink`] that drops every report.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _: Progress) {}
}

/// An OAuth token set of one connection. `Debug` never prints the tokens.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, when the service issues one.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires, when known.
    pub expires_at: Option<DateTime<Utc>>,
    /// The scopes granted.
    pub scopes: Vec<String>,
}

/// Gives an adapter valid access tokens for one connection.
///
/// # Contract
/// - `access_token` returns a token valid for at least a short margin, refreshing first
///   when it is about to expire.
/// - After the service answers 401 to `rejected`, the adapter calls
///   `refresh_after_unauthorized(rejected)` once and retries once. Refreshing is
///   single-flight: when another task already replaced `rejected`, the newer token is
///   returned without a second refresh (a rotated refresh token is good only once).
/// - Both return [`ProviderError::NeedsReauth`] when the user must connect again.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A currently valid access token.
    async fn access_token(&self) -> Result<SecretString, ProviderError>;
    /// A new access token after the service refused `rejected`.
    async fn refresh_after_unauthorized(&self, rejected: &SecretString) -> Result<SecretString, ProviderError>;
}

/// A fixed access token that cannot be refreshed: for tests, scripts and embedders that
/// manage tokens themselves.
pub struct StaticToken {
    provider: ProviderId,
    token: SecretString,
}

impl StaticToken {
    /// Wraps a token of `provider`.
    pub fn new(provider: ProviderId, token: SecretString) -> Self {
        Self { provider, token }
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken").field("provider", &self.provider).finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenSource for StaticToken {
    async fn access_token(&self) -> Result<SecretString, ProviderError> {
        Ok(self.token.clone())
    }

    async fn refresh_after_unauthorized(&self, _: &SecretString) -> Result<SecretString, ProviderError> {
        Err(ProviderError::NeedsReauth {
            provider: self.provider.clone(),
            reason: "the access token was refused and cannot be refreshed".into(),
        })
    }
}

/// A candidate for "which artist at this service is the one I mean".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtistCandidate {
    /// The provider.
    pub provider: ProviderId,
    /// The artist's id there.
    pub id: String,
    /// The name there.
    pub name: String,
    /// How sure the match is, 0.0 to 1.0 (1.0: the normalized name is identical).
    pub confidence: f32,
    /// Extra facts that help a person choose (genres, follower count…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A link to the artist at the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An image of the artist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

/// A music service, through its official API.
///
/// # Contract
/// - `scan` reads the whole library, following every page; it reports progress after
///   each page; the snapshot's playlists list every item with its position.
/// - `apply` sends one [`Batch`] (one API call's worth, as planned within
///   [`Provider::capabilities`]) and returns exactly one [`ActionOutcome`] per action, in
///   the batch's order. Partial failure is normal and reported per action.
///   `Err` means nothing of the batch was applied (rate limited, breaker open,
///   needs re-authorization); the caller may retry the whole batch. The one exception an
///   adapter cannot avoid is a `Transient` error after the request left (a timeout): for
///   an idempotent kind a retry is harmless; a non-idempotent batch (playlist inserts) is
///   not retried by the executor but marked `indeterminate`. Adapters should therefore
///   not retry non-idempotent calls on their own either.
/// - Removing an item that is already gone is a confirmed outcome (idempotent); so is
///   adding one already present. Inserting a playlist item is not idempotent.
/// - A playlist item batch names its playlist's version when the plan was made; where
///   the service supports it, the adapter sends it and reports `conflict` when the
///   playlist changed in a way that makes the action unsafe.
/// - Adapters never log or return tokens, and strip query strings from errors.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The provider id.
    fn id(&self) -> &ProviderId;

    /// What the API can do. May change over time (a quota's remaining units).
    fn capabilities(&self) -> Capabilities;

    /// Reads the user's whole library.
    ///
    /// # Errors
    /// `NeedsReauth`, `RateLimited` (after the adapter's own retries), `ProviderUnavailable`,
    /// `Transient`, `Protocol` for a response that does not parse.
    async fn scan(&self, auth: &dyn TokenSource, progress: &dyn ProgressSink)
    -> Result<LibrarySnapshot, ProviderError>;

    /// Sends one batch.
    ///
    /// # Errors
    /// Only when nothing of the batch was applied; see the contract.
    async fn apply(&self, auth: &dyn TokenSource, batch: &Batch) -> Result<Vec<ActionOutcome>, ProviderError>;

    /// Searches the service's catalog for artists named `query`, best first, at most `limit`.
    async fn search_artists(
        &self,
        auth: &dyn TokenSource,
        query: &str,
        limit: u32,
    ) -> Result<Vec<ArtistCandidate>, ProviderError>;

    /// Finds a track by ISRC. `Ok(None)` when the catalog has none;
    /// `Err(Unsupported)` when the service has no ISRC lookup.
    async fn track_by_isrc(&self, auth: &dyn TokenSource, isrc: &str) -> Result<Option<Track>, ProviderError>;
}

/// What the user's browser must be sent to, and what to keep until the callback.
#[derive(Clone)]
pub struct AuthorizationRequest {
    /// The URL to redirect the user to.
    pub url: String,
    /// The `state` to check on the callback (single use).
    pub state: String,
    /// The PKCE verifier to send with the code, when the flow uses PKCE.
    pub pkce_verifier: Option<SecretString>,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest").field("url", &"[redacted]").finish_non_exhaustive()
    }
}

/// OAuth for one provider: authorize URL, code exchange, refresh, revoke.
///
/// # Contract
/// - `authorization_request` makes a fresh `state` and (where supported) PKCE S256
///   verifier each call; the caller stores them until the callback.
/// - `refresh` returns the new token set; when the service rotates refresh tokens, the
///   new one is in it and the caller must persist it at once (the old is spent). When the
///   service returns no new refresh token, `refresh_token` is `None` and the caller keeps
///   the old one.
/// - `invalid_grant` (refresh token expired, revoked or reused) is `NeedsReauth`.
/// - `revoke` is best effort; `Unsupported` where the service has no revocation.
#[async_trait]
pub trait ProviderAuth: Send + Sync + fmt::Debug {
    /// The provider id.
    fn provider(&self) -> &ProviderId;

    /// A new authorization request.
    fn authorization_request(&self) -> Result<AuthorizationRequest, ProviderError>;

    /// Exchanges the callback's `code`.
    async fn exchange_code(&self, code: &str, pkce_verifier: Option<&SecretString>) -> Result<TokenSet, ProviderError>;

    /// Refreshes with `refresh_token`.
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError>;

    /// Revokes the grant at the service.
    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ProviderError>;
}

/// The registered adapters, by id.
#[derive(Debug, Clone, Default)]
pub struct ProviderRegistry {
    providers: std::collections::BTreeMap<ProviderId, Arc<dyn Provider>>,
}

impl ProviderRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `provider` under its id, replacing any earlier one.
    pub fn register(&mut self, provider: Arc<dyn Provider>) {
        self.providers.insert(provider.id().clone(), provider);
    }

    /// The adapter for `id`.
    ///
    /// # Errors
    /// [`InputError::UnknownProvider`] when none is registered.
    pub fn get(&self, id: &str) -> Result<&Arc<dyn Provider>, InputError> {
        self.providers
            .iter()
            .find(|(k, _)| k.as_str() == id)
            .map(|(_, v)| v)
            .ok_or_else(|| InputError::UnknownProvider { id: id.chars().take(64).collect() })
    }

    /// The registered ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &ProviderId> {
        self.providers.keys()
    }
}
