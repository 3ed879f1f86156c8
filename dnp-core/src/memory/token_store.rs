use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::id::{ConnectionId, ProviderId, UserId};
use crate::provider::TokenSet;
use crate::token::{Connection, ConnectionStatus, TokenStore};

/// A [`TokenStore`] in memory (tokens in `secrecy` wrappers, not encrypted).
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    rows: Mutex<BTreeMap<ConnectionId, (Connection, TokenSet)>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn not_found(id: ConnectionId) -> StoreError {
        StoreError::NotFound { what: format!("connection {id}") }
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn save(&self, user: UserId, provider: &ProviderId, tokens: &TokenSet) -> Result<Connection, StoreError> {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let now = Utc::now();
        let existing =
            rows.values().find(|(c, _)| c.user_id == user && c.provider == *provider).map(|(c, _)| c.clone());
        let conn = Connection {
            id: existing.as_ref().map_or_else(ConnectionId::new_random, |c| c.id),
            user_id: user,
            provider: provider.clone(),
            status: ConnectionStatus::Active,
            expires_at: tokens.expires_at,
            last_used_at: existing.as_ref().and_then(|c| c.last_used_at),
            scopes: tokens.scopes.clone(),
            created_at: existing.as_ref().map_or(now, |c| c.created_at),
            updated_at: now,
        };
        rows.insert(conn.id, (conn.clone(), tokens.clone()));
        Ok(conn)
    }

    async fn connection(&self, id: ConnectionId) -> Result<Connection, StoreError> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.get(&id).map(|(c, _)| c.clone()).ok_or_else(|| Self::not_found(id))
    }

    async fn find(&self, user: UserId, provider: &ProviderId) -> Result<Option<Connection>, StoreError> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        Ok(rows.values().find(|(c, _)| c.user_id == user && c.provider == *provider).map(|(c, _)| c.clone()))
    }

    async fn list(&self, user: UserId) -> Result<Vec<Connection>, StoreError> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Connection> =
            rows.values().filter(|(c, _)| c.user_id == user).map(|(c, _)| c.clone()).collect();
        list.sort_by(|a, b| a.provider.cmp(&b.provider));
        Ok(list)
    }

    async fn tokens(&self, id: ConnectionId) -> Result<TokenSet, StoreError> {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let (conn, tokens) = rows.get_mut(&id).ok_or_else(|| Self::not_found(id))?;
        conn.last_used_at = Some(Utc::now());
        Ok(tokens.clone())
    }

    async fn update_tokens(&self, id: ConnectionId, new: &TokenSet) -> Result<Connection, StoreError> {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let (conn, tokens) = rows.get_mut(&id).ok_or_else(|| Self::not_found(id))?;
        let refresh = new.refresh_token.clone().or_else(|| tokens.refresh_token.clone());
        *tokens = TokenSet { refresh_token: refresh, ..new.clone() };
        conn.expires_at = new.expires_at;
        conn.scopes = new.scopes.clone();
        conn.status = ConnectionStatus::Active;
        conn.updated_at = Utc::now();
        Ok(conn.clone())
    }

    async fn set_status(&self, id: ConnectionId, status: ConnectionStatus) -> Result<(), StoreError> {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let (conn, _) = rows.get_mut(&id).ok_or_else(|| Self::not_found(id))?;
        conn.status = status;
        conn.updated_at = Utc::now();
        Ok(())
    }

    async fn expiring_before(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Connection>, StoreError> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Connection> = rows
            .values()
            .map(|(c, _)| c)
            .filter(|c| c.status != ConnectionStatus::NeedsReauth && c.expires_at.is_some_and(|t| t < before))
            .cloned()
            .collect();
        list.sort_by_key(|c| c.expires_at);
        list.truncate(limit as usize);
        Ok(list)
    }

    async fn delete(&self, id: ConnectionId) -> Result<(), StoreError> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        Ok(())
    }
}
