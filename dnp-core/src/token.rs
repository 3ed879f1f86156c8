//! The [`TokenStore`] of encrypted token sets per connection, and
//! [`StoredTokenSource`], which refreshes through a [`ProviderAuth`] single-flight.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{ProviderError, StoreError};
use crate::id::{ConnectionId, ProviderId, UserId};
use crate::provider::{ProviderAuth, TokenSet, TokenSource};

/// The health of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Tokens valid.
    Active,
    /// The access token expires soon and the refresh job has not refreshed it yet.
    ExpiringSoon,
    /// The user must connect again.
    NeedsReauth,
    /// The last use failed for another reason.
    Error,
}

impl ConnectionStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ExpiringSoon => "expiring_soon",
            Self::NeedsReauth => "needs_reauth",
            Self::Error => "error",
        }
    }
}

/// A user's connection to a provider, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// The connection id.
    pub id: ConnectionId,
    /// The user.
    pub user_id: UserId,
    /// The provider.
    pub provider: ProviderId,
    /// Health.
    pub status: ConnectionStatus,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the tokens were last read for use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// When the connection was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Encrypted storage of token sets, one connection per (user, provider).
///
/// # Contract
/// - Tokens are encrypted before they reach storage; nothing readable is ever written.
/// - `save` creates the connection or replaces its tokens (status `active`).
/// - `update_tokens` replaces the tokens after a refresh; a `None` refresh token keeps the
///   stored one. It is atomic: a reader sees the old set or the new, never half.
/// - Reading a missing connection is [`StoreError::NotFound`]; `delete` is idempotent.
/// - `expiring_before` lists connections that are not `needs_reauth` whose access
///   token expires before the instant, soonest first (uses an index, never a scan).
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// Creates or replaces the connection of `user` to `provider`.
    async fn save(&self, user: UserId, provider: &ProviderId, tokens: &TokenSet) -> Result<Connection, StoreError>;
    /// A connection by id.
    async fn connection(&self, id: ConnectionId) -> Result<Connection, StoreError>;
    /// The connection of `user` to `provider`, if any.
    async fn find(&self, user: UserId, provider: &ProviderId) -> Result<Option<Connection>, StoreError>;
    /// All of `user`'s connections, by provider.
    async fn list(&self, user: UserId) -> Result<Vec<Connection>, StoreError>;
    /// The decrypted tokens; records `last_used_at`.
    async fn tokens(&self, id: ConnectionId) -> Result<TokenSet, StoreError>;
    /// Replaces the tokens after a refresh and marks the connection active.
    async fn update_tokens(&self, id: ConnectionId, tokens: &TokenSet) -> Result<Connection, StoreError>;
    /// Sets the status.
    async fn set_status(&self, id: ConnectionId, status: ConnectionStatus) -> Result<(), StoreError>;
    /// Connections whose token expires before `before`, at most `limit`.
    async fn expiring_before(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Connection>, StoreError>;
    /// Deletes the connection and its tokens.
    async fn delete(&self, id: ConnectionId) -> Result<(), StoreError>;
}

/// A [`TokenSource`] over a [`TokenStore`] and a [`ProviderAuth`]: refreshes a margin
/// before expiry, behind an async mutex, and persists a rotated refresh token before the
/// new access token is used. A refused refresh marks the connection `needs_reauth`.
pub struct StoredTokenSource {
    store: Arc<dyn TokenStore>,
    auth: Arc<dyn ProviderAuth>,
    connection: ConnectionId,
    margin: Duration,
    lock: futures::lock::Mutex<()>,
}

impl fmt::Debug for StoredTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokenSource").field("connection", &self.connection).finish_non_exhaustive()
    }
}

impl StoredTokenSource {
    /// A token source for `connection`, refreshing 5 minutes before expiry.
    pub fn new(store: Arc<dyn TokenStore>, auth: Arc<dyn ProviderAuth>, connection: ConnectionId) -> Self {
        Self { store, auth, connection, margin: Duration::minutes(5), lock: futures::lock::Mutex::new(()) }
    }

    fn store_err(&self, err: StoreError) -> ProviderError {
        ProviderError::Transient {
            provider: self.auth.provider().clone(),
            endpoint: "token store".into(),
            detail: err.to_string(),
        }
    }

    /// Refreshes unless the stored token already differs from `stale` (someone else did).
    async fn refresh(&self, stale: Option<&SecretString>) -> Result<SecretString, ProviderError> {
        let _guard = self.lock.lock().await;
        let current = self.store.tokens(self.connection).await.map_err(|e| self.store_err(e))?;
        let fresh_enough = current.expires_at.is_none_or(|t| t > Utc::now() + self.margin);
        match stale {
            Some(stale) if current.access_token.expose_secret() != stale.expose_secret() => {
                return Ok(current.access_token);
            }
            None if fresh_enough => return Ok(current.access_token),
            _ => {}
        }
        let Some(refresh_token) = &current.refresh_token else {
            let _ = self.store.set_status(self.connection, crate::ConnectionStatus::NeedsReauth).await;
            return Err(ProviderError::NeedsReauth {
                provider: self.auth.provider().clone(),
                reason: "the access token expired and there is no refresh token".into(),
            });
        };
        match self.auth.refresh(refresh_token).await {
            Ok(new) => {
                self.store.update_tokens(self.connection, &new).await.map_err(|e| self.store_err(e))?;
                Ok(new.access_token)
            }
            Err(err @ ProviderError::NeedsReauth { .. }) => {
                let _ = self.store.set_status(self.connection, crate::ConnectionStatus::NeedsReauth).await;
                Err(err)
            }
            Err(err) => Err(err),
        }
    }
}

#[async_trait]
impl TokenSource for StoredTokenSource {
    async fn access_token(&self) -> Result<SecretString, ProviderError> {
        let current = self.store.tokens(self.connection).await.map_err(|e| self.store_err(e))?;
        if current.expires_at.is_none_or(|t| t > Utc::now() + self.margin) {
            return Ok(current.access_token);
        }
        self.refresh(None).await
    }

    async fn refresh_after_unauthorized(&self, rejected: &SecretString) -> Result<SecretString, ProviderError> {
        self.refresh(Some(rejected)).await
    }
}
