//! [`SqlTokenStore`]: the encrypted [`TokenStore`] over SQLite or PostgreSQL.

mod dialect;

/// The table where [`SqlTokenStore::migrate`] records its migrations (not sqlx's default
/// `_sqlx_migrations`, which the application's own migrations use).
pub const MIGRATIONS_TABLE: &str = dialect::MIGRATIONS_TABLE;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dnp_core::{
    Connection, ConnectionId, ConnectionStatus, KmsError, KmsProvider, ProviderId, StoreError, TokenSet, TokenStore,
    UserId, WrappedKey,
};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use uuid::Uuid;

use crate::cache::DataKeyCache;
use crate::envelope::{Aad, DataKeyCipher, Field};

/// The pool of one of the supported databases.
#[derive(Clone)]
enum Backend {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool and `$d` to its dialect module.
macro_rules! with_backend {
    ($backend:expr, $pool:ident, $d:ident => $body:expr) => {
        match $backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite($pool) => {
                #[allow(unused_imports)]
                use dialect::sqlite as $d;
                $body
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres($pool) => {
                #[allow(unused_imports)]
                use dialect::postgres as $d;
                $body
            }
        }
    };
}

const SELECT_SECRET_BY_ID: &str = "SELECT c.id, c.user_id, c.provider, c.status, c.expires_at, c.last_used_at, \
     c.scopes, c.created_at, c.updated_at, c.access_token_encrypted, c.refresh_token_encrypted, c.data_key_id, \
     d.kms_key_id, d.wrapped FROM connections c LEFT JOIN data_keys d ON d.id = c.data_key_id WHERE c.id = $1";
const SELECT_SECRET_BY_OWNER: &str = "SELECT c.id, c.user_id, c.provider, c.status, c.expires_at, c.last_used_at, \
     c.scopes, c.created_at, c.updated_at, c.access_token_encrypted, c.refresh_token_encrypted, c.data_key_id, \
     d.kms_key_id, d.wrapped FROM connections c LEFT JOIN data_keys d ON d.id = c.data_key_id \
     WHERE c.user_id = $1 AND c.provider = $2";
const SELECT_BY_ID: &str = "SELECT id, user_id, provider, status, expires_at, last_used_at, scopes, created_at, \
     updated_at FROM connections WHERE id = $1";
const SELECT_BY_OWNER: &str = "SELECT id, user_id, provider, status, expires_at, last_used_at, scopes, created_at, \
     updated_at FROM connections WHERE user_id = $1 AND provider = $2";
const LIST_BY_USER: &str = "SELECT id, user_id, provider, status, expires_at, last_used_at, scopes, created_at, \
     updated_at FROM connections WHERE user_id = $1 ORDER BY provider";
const EXPIRING: &str = "SELECT id, user_id, provider, status, expires_at, last_used_at, scopes, created_at, \
     updated_at FROM connections WHERE status <> 'needs_reauth' AND expires_at IS NOT NULL AND expires_at < $1 \
     ORDER BY expires_at, id LIMIT $2";
const INSERT_DATA_KEY: &str = "INSERT INTO data_keys (id, kms_key_id, wrapped, created_at) VALUES ($1, $2, $3, $4)";
const INSERT_CONNECTION: &str = "INSERT INTO connections (id, user_id, provider, access_token_encrypted, \
     refresh_token_encrypted, data_key_id, expires_at, status, last_used_at, scopes, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', NULL, $8, $9, $9) ON CONFLICT (user_id, provider) DO NOTHING";
const REPLACE_TOKENS: &str = "UPDATE connections SET access_token_encrypted = $1, refresh_token_encrypted = $2, \
     expires_at = $3, scopes = $4, status = 'active', updated_at = $5 WHERE id = $6 AND data_key_id = $7 \
     RETURNING id, user_id, provider, status, expires_at, last_used_at, scopes, created_at, updated_at";
const UPDATE_TOKENS: &str = "UPDATE connections SET access_token_encrypted = $1, \
     refresh_token_encrypted = COALESCE($2, refresh_token_encrypted), expires_at = $3, scopes = $4, \
     status = 'active', updated_at = $5 WHERE id = $6 AND data_key_id = $7 \
     RETURNING id, user_id, provider, status, expires_at, last_used_at, scopes, created_at, updated_at";
const TOUCH: &str = "UPDATE connections SET last_used_at = $1 WHERE id = $2";
const SET_STATUS: &str = "UPDATE connections SET status = $1, updated_at = $2 WHERE id = $3";
const DELETE_CONNECTION: &str = "DELETE FROM connections WHERE id = $1 RETURNING data_key_id";
const DELETE_DATA_KEY: &str = "DELETE FROM data_keys WHERE id = $1";
const STALE_DATA_KEYS: &str =
    "SELECT id, kms_key_id, wrapped FROM data_keys WHERE kms_key_id <> $1 AND id > $2 ORDER BY id LIMIT $3";
const CONNECTION_OF_DATA_KEY: &str = "SELECT id FROM connections WHERE data_key_id = $1";
const REWRAP_DATA_KEY: &str = "UPDATE data_keys SET kms_key_id = $1, wrapped = $2, rewrapped_at = $3 \
     WHERE id = $4 AND kms_key_id = $5";

/// How many times `save` retries when a concurrent save or delete of the same connection
/// wins the race.
const SAVE_ATTEMPTS: usize = 8;

/// A row that does not decode (a value no version of dnp-vault writes).
#[derive(Debug, thiserror::Error)]
#[error("connection row {connection}: {problem}")]
struct CorruptRow {
    connection: String,
    problem: String,
}

fn corrupt(connection: impl fmt::Display, problem: impl Into<String>) -> StoreError {
    StoreError::backend(CorruptRow { connection: connection.to_string(), problem: problem.into() })
}

fn db_err(err: sqlx::Error) -> StoreError {
    StoreError::backend(err)
}

/// Now, to the microsecond both databases keep.
fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

fn parse_status(connection: Uuid, s: &str) -> Result<ConnectionStatus, StoreError> {
    Ok(match s {
        "active" => ConnectionStatus::Active,
        "expiring_soon" => ConnectionStatus::ExpiringSoon,
        "needs_reauth" => ConnectionStatus::NeedsReauth,
        "error" => ConnectionStatus::Error,
        other => return Err(corrupt(connection, format!("unknown status {other:?}"))),
    })
}

fn scopes_json(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_else(|_| "[]".to_owned())
}

/// Decodes the non-secret columns of a `connections` row.
fn decode_conn<'r, R, T>(row: &'r R, from_ts: fn(T) -> Result<DateTime<Utc>, String>) -> Result<Connection, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    Uuid: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: Uuid = row.try_get("id").map_err(db_err)?;
    let get_ts = |col: &'static str| -> Result<Option<DateTime<Utc>>, StoreError> {
        row.try_get::<Option<T>, _>(col)
            .map_err(db_err)?
            .map(from_ts)
            .transpose()
            .map_err(|e| corrupt(id, format!("{col}: {e}")))
    };
    let required = |col: &'static str| get_ts(col)?.ok_or_else(|| corrupt(id, format!("{col} is NULL")));
    let provider: String = row.try_get("provider").map_err(db_err)?;
    let status: String = row.try_get("status").map_err(db_err)?;
    let scopes: String = row.try_get("scopes").map_err(db_err)?;
    Ok(Connection {
        id: ConnectionId(id),
        user_id: UserId(row.try_get("user_id").map_err(db_err)?),
        provider: ProviderId::new(provider).map_err(|e| corrupt(id, e.to_string()))?,
        status: parse_status(id, &status)?,
        expires_at: get_ts("expires_at")?,
        last_used_at: get_ts("last_used_at")?,
        scopes: serde_json::from_str(&scopes).map_err(|e| corrupt(id, format!("scopes: {e}")))?,
        created_at: required("created_at")?,
        updated_at: required("updated_at")?,
    })
}

/// A `connections` row with its ciphertexts and its data key.
struct SecretRow {
    conn: Connection,
    access: Vec<u8>,
    refresh: Option<Vec<u8>>,
    data_key_id: Uuid,
    wrapped: Option<WrappedKey>,
}

fn decode_secret_row<'r, R, T>(
    row: &'r R,
    from_ts: fn(T) -> Result<DateTime<Utc>, String>,
) -> Result<SecretRow, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    Uuid: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let conn = decode_conn(row, from_ts)?;
    let key_id: Option<String> = row.try_get("kms_key_id").map_err(db_err)?;
    let wrapped: Option<Vec<u8>> = row.try_get("wrapped").map_err(db_err)?;
    Ok(SecretRow {
        access: row.try_get("access_token_encrypted").map_err(db_err)?,
        refresh: row.try_get("refresh_token_encrypted").map_err(db_err)?,
        data_key_id: row.try_get("data_key_id").map_err(db_err)?,
        wrapped: key_id.zip(wrapped).map(|(key_id, ciphertext)| WrappedKey { key_id, ciphertext }),
        conn,
    })
}

/// The two ciphertexts of a token set.
struct Sealed {
    access: Vec<u8>,
    refresh: Option<Vec<u8>>,
}

/// What [`SqlTokenStore::rewrap_data_keys`] or [`SqlTokenStore::rotate_all`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct RotationReport {
    /// The KMS key version new data keys are wrapped with, which every data key now uses
    /// (except those in `failed`).
    pub key_id: String,
    /// How many stored data keys were re-wrapped.
    pub rewrapped: u64,
    /// Data keys the KMS could not unwrap (corrupt, or wrapped by a key version it no
    /// longer has): [`StoreError::Crypto`] naming the connection of each. They were
    /// skipped; the rest were re-wrapped.
    pub failed: Vec<StoreError>,
}

/// The encrypted [`TokenStore`] over SQL: SQLite (feature `sqlite`) or PostgreSQL
/// (feature `postgres`), on a pool the application already has.
///
/// Each connection row has its own data key (DEK), generated by the KMS when the row is
/// created and stored wrapped in `data_keys` (referenced by `data_key_id`); the access and
/// refresh tokens are sealed under it as [envelopes](crate::envelope) bound to the user,
/// connection, provider and field. Unwrapped DEKs are kept in a [`DataKeyCache`].
///
/// Undecryptable data (a corrupt ciphertext, a ciphertext moved from another row, an
/// unknown key version, a missing data key) is [`StoreError::Crypto`] naming the
/// connection and the field, never a secret. A KMS that cannot be reached is
/// [`StoreError::Kms`] (retryable).
///
/// # Schema and migrations
/// [`migrate`](Self::migrate) creates `data_keys` and `connections` (unique on
/// `(user_id, provider)`, indexed on `(user_id, provider)` and `expires_at`). It keeps its
/// own migration history in `_dnp_vault_migrations`, so it runs beside the application's
/// own sqlx migrations (`_sqlx_migrations`) in the same database without their versions
/// colliding; run both, in any order, at every start: it is idempotent.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use dnp_core::{TokenStore, TokenSet, UserId};
/// use dnp_vault::{LocalKms, SqlTokenStore};
///
/// let pool = sqlx::SqlitePool::connect("sqlite://dnp.db?mode=rwc").await?;
/// let store = SqlTokenStore::sqlite(pool, Arc::new(LocalKms::open("dnp-kms.key")?));
/// store.migrate().await?;
/// let tokens = TokenSet { access_token: "BQD…".to_owned().into(), refresh_token: None, expires_at: None, scopes: vec![] };
/// let conn = store.save(UserId::new_random(), &"spotify".parse()?, &tokens).await?;
/// let back = store.tokens(conn.id).await?;
/// # Ok(()) }
/// ```
pub struct SqlTokenStore {
    backend: Backend,
    kms: Arc<dyn KmsProvider>,
    cache: DataKeyCache,
}

impl fmt::Debug for SqlTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTokenStore")
            .field("backend", &self.backend_name())
            .field("kms", &self.kms)
            .field("cache", &self.cache)
            .finish()
    }
}

impl SqlTokenStore {
    /// A store on an SQLite pool, with a [`DataKeyCache`] of the default capacity.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(pool: sqlx::SqlitePool, kms: Arc<dyn KmsProvider>) -> Self {
        Self { backend: Backend::Sqlite(pool), kms, cache: DataKeyCache::default() }
    }

    /// A store on a PostgreSQL pool, with a [`DataKeyCache`] of the default capacity.
    #[cfg(feature = "postgres")]
    pub fn postgres(pool: sqlx::PgPool, kms: Arc<dyn KmsProvider>) -> Self {
        Self { backend: Backend::Postgres(pool), kms, cache: DataKeyCache::default() }
    }

    /// Replaces the data-key cache (e.g. one sized by `DATA_KEY_CACHE_SIZE`, see
    /// [`data_key_cache_size_from_env`](crate::config::data_key_cache_size_from_env)).
    pub fn with_cache(mut self, cache: DataKeyCache) -> Self {
        self.cache = cache;
        self
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The data-key cache (for its [stats](DataKeyCache::stats)).
    pub fn cache(&self) -> &DataKeyCache {
        &self.cache
    }

    /// The KMS.
    pub fn kms(&self) -> &Arc<dyn KmsProvider> {
        &self.kms
    }

    /// Creates or upgrades the schema (see [Schema and migrations](Self#schema-and-migrations)).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database refuses.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        with_backend!(&self.backend, pool, d => d::migrator().run(pool).await.map_err(StoreError::backend))
    }

    fn aad<'a>(conn: &'a Connection, field: Field) -> Aad<'a> {
        Aad { user: conn.user_id, connection: conn.id, provider: &conn.provider, field }
    }

    fn seal(cipher: &DataKeyCipher, conn: &Connection, tokens: &TokenSet) -> Result<Sealed, StoreError> {
        let seal_one = |field: Field, token: &SecretString| {
            cipher.seal(&Self::aad(conn, field), token.expose_secret().as_bytes()).map_err(|e| StoreError::Crypto {
                connection: conn.id,
                field: field.as_str(),
                reason: e.to_string(),
            })
        };
        Ok(Sealed {
            access: seal_one(Field::AccessToken, &tokens.access_token)?,
            refresh: tokens.refresh_token.as_ref().map(|t| seal_one(Field::RefreshToken, t)).transpose()?,
        })
    }

    fn open(
        cipher: &DataKeyCipher,
        conn: &Connection,
        field: Field,
        envelope: &[u8],
    ) -> Result<SecretString, StoreError> {
        let crypto = |reason: String| StoreError::Crypto { connection: conn.id, field: field.as_str(), reason };
        let plain = cipher.open(&Self::aad(conn, field), envelope).map_err(|e| crypto(e.to_string()))?;
        let text = std::str::from_utf8(&plain).map_err(|_| crypto("the decrypted token is not UTF-8".to_owned()))?;
        Ok(SecretString::from(text))
    }

    /// The cipher of a row's data key: cached, or unwrapped by the KMS.
    async fn cipher_for(&self, row: &SecretRow) -> Result<Arc<DataKeyCipher>, StoreError> {
        let connection = row.conn.id;
        let Some(wrapped) = &row.wrapped else {
            return Err(StoreError::Crypto {
                connection,
                field: "data_key",
                reason: format!("data key {} is missing", row.data_key_id),
            });
        };
        self.cache.get_or_unwrap(row.data_key_id, wrapped, &*self.kms).await.map_err(|e| match e {
            KmsError::KeyNotFound { .. } | KmsError::InvalidWrappedKey { .. } => StoreError::Crypto {
                connection,
                field: "data_key",
                reason: format!("data key {} ({}): {e}", row.data_key_id, wrapped.key_id),
            },
            other => StoreError::Kms(other),
        })
    }

    async fn secret_row_by_id(&self, id: ConnectionId) -> Result<Option<SecretRow>, StoreError> {
        with_backend!(&self.backend, pool, d => {
            let row = sqlx::query(SELECT_SECRET_BY_ID).bind(id.0).fetch_optional(pool).await.map_err(db_err)?;
            row.as_ref().map(|r| decode_secret_row(r, d::from_ts)).transpose()
        })
    }

    async fn secret_row_by_owner(&self, user: UserId, provider: &ProviderId) -> Result<Option<SecretRow>, StoreError> {
        with_backend!(&self.backend, pool, d => {
            let row = sqlx::query(SELECT_SECRET_BY_OWNER)
                .bind(user.0)
                .bind(provider.as_str())
                .fetch_optional(pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(|r| decode_secret_row(r, d::from_ts)).transpose()
        })
    }

    /// Writes new ciphertexts to an existing row; `None` when the row (with that data key)
    /// no longer exists.
    async fn write_tokens(
        &self,
        row: &SecretRow,
        tokens: &TokenSet,
        keep_refresh: bool,
    ) -> Result<Option<Connection>, StoreError> {
        let cipher = self.cipher_for(row).await?;
        let sealed = Self::seal(&cipher, &row.conn, tokens)?;
        let sql = if keep_refresh { UPDATE_TOKENS } else { REPLACE_TOKENS };
        let at = now();
        with_backend!(&self.backend, pool, d => {
            let updated = sqlx::query(sql)
                .bind(sealed.access)
                .bind(sealed.refresh)
                .bind(tokens.expires_at.map(|t| d::ts(truncate(t))))
                .bind(scopes_json(&tokens.scopes))
                .bind(d::ts(at))
                .bind(row.conn.id.0)
                .bind(row.data_key_id)
                .fetch_optional(pool)
                .await
                .map_err(db_err)?;
            updated.as_ref().map(|r| decode_conn(r, d::from_ts)).transpose()
        })
    }

    /// Creates a new row with a new data key; `None` when a concurrent save created the
    /// connection first.
    async fn insert_new(
        &self,
        user: UserId,
        provider: &ProviderId,
        tokens: &TokenSet,
    ) -> Result<Option<Connection>, StoreError> {
        let at = now();
        let conn = Connection {
            id: ConnectionId::new_random(),
            user_id: user,
            provider: provider.clone(),
            status: ConnectionStatus::Active,
            expires_at: tokens.expires_at.map(truncate),
            last_used_at: None,
            scopes: tokens.scopes.clone(),
            created_at: at,
            updated_at: at,
        };
        let data_key = self.kms.generate_data_key().await?;
        let data_key_id = Uuid::new_v4();
        let cipher = Arc::new(DataKeyCipher::new(&data_key.plaintext));
        drop(data_key.plaintext);
        let sealed = Self::seal(&cipher, &conn, tokens)?;
        let inserted = with_backend!(&self.backend, pool, d => {
            let mut tx = pool.begin().await.map_err(db_err)?;
            sqlx::query(INSERT_DATA_KEY)
                .bind(data_key_id)
                .bind(&data_key.wrapped.key_id)
                .bind(&data_key.wrapped.ciphertext)
                .bind(d::ts(at))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let done = sqlx::query(INSERT_CONNECTION)
                .bind(conn.id.0)
                .bind(user.0)
                .bind(provider.as_str())
                .bind(sealed.access)
                .bind(sealed.refresh)
                .bind(data_key_id)
                .bind(conn.expires_at.map(d::ts))
                .bind(scopes_json(&conn.scopes))
                .bind(d::ts(at))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if done.rows_affected() == 1 {
                tx.commit().await.map_err(db_err)?;
                true
            } else {
                tx.rollback().await.map_err(db_err)?;
                false
            }
        });
        if !inserted {
            return Ok(None);
        }
        self.cache.insert(data_key_id, cipher);
        Ok(Some(conn))
    }

    /// Re-wraps every stored data key that is not wrapped by the KMS key's newest version,
    /// `page_size` at a time. Tokens are not re-encrypted: data keys do not change, only
    /// their wrapping.
    ///
    /// Resumable: an interrupted run leaves every key either old or new, and the next run
    /// rewraps only what is still old. Safe beside live traffic (each update checks the key
    /// was not changed meanwhile). A data key the KMS cannot unwrap is skipped and listed in
    /// [`RotationReport::failed`].
    ///
    /// # Errors
    /// [`StoreError::Kms`] when the KMS fails (what was done so far stays done; run again),
    /// [`StoreError::Backend`].
    pub async fn rewrap_data_keys(&self, page_size: u32) -> Result<RotationReport, StoreError> {
        let page_size = page_size.max(1);
        // A fresh data key is wrapped by the newest version: that names the target.
        let newest = self.kms.generate_data_key().await?.wrapped.key_id;
        let mut cursor = Uuid::nil();
        let mut report = RotationReport { key_id: newest, rewrapped: 0, failed: Vec::new() };
        loop {
            let page = self.stale_page(&report.key_id, cursor, page_size).await?;
            let Some((last, _)) = page.last() else { break };
            cursor = *last;
            for (id, old) in &page {
                let new = match self.kms.rewrap(old).await {
                    Ok(new) => new,
                    Err(e @ (KmsError::KeyNotFound { .. } | KmsError::InvalidWrappedKey { .. })) => {
                        let connection = self.connection_of_data_key(*id).await?;
                        tracing::warn!(data_key = %id, %connection, error = %e, "data key cannot be re-wrapped");
                        report.failed.push(StoreError::Crypto {
                            connection,
                            field: "data_key",
                            reason: format!("data key {id} ({}) cannot be re-wrapped: {e}", old.key_id),
                        });
                        continue;
                    }
                    Err(e) => return Err(StoreError::Kms(e)),
                };
                let updated = with_backend!(&self.backend, pool, d => {
                    sqlx::query(REWRAP_DATA_KEY)
                        .bind(&new.key_id)
                        .bind(&new.ciphertext)
                        .bind(d::ts(now()))
                        .bind(id)
                        .bind(&old.key_id)
                        .execute(pool)
                        .await
                        .map_err(db_err)?
                        .rows_affected()
                });
                report.rewrapped += updated;
            }
            if page.len() < page_size as usize {
                break;
            }
        }
        tracing::info!(rewrapped = report.rewrapped, failed = report.failed.len(), key = %report.key_id, "data keys re-wrapped");
        Ok(report)
    }

    /// Data keys not wrapped by `newest`, after `cursor` in id order.
    async fn stale_page(&self, newest: &str, cursor: Uuid, limit: u32) -> Result<Vec<(Uuid, WrappedKey)>, StoreError> {
        with_backend!(&self.backend, pool, _d => {
            let rows = sqlx::query(STALE_DATA_KEYS)
                .bind(newest)
                .bind(cursor)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get("id").map_err(db_err)?,
                        WrappedKey {
                            key_id: r.try_get("kms_key_id").map_err(db_err)?,
                            ciphertext: r.try_get("wrapped").map_err(db_err)?,
                        },
                    ))
                })
                .collect()
        })
    }

    /// The connection using data key `id` (nil when none does).
    async fn connection_of_data_key(&self, id: Uuid) -> Result<ConnectionId, StoreError> {
        let found: Option<Uuid> = with_backend!(&self.backend, pool, _d => {
            sqlx::query_scalar(CONNECTION_OF_DATA_KEY).bind(id).fetch_optional(pool).await.map_err(db_err)?
        });
        Ok(ConnectionId(found.unwrap_or_else(Uuid::nil)))
    }

    /// Rotates the KMS key, then [re-wraps](Self::rewrap_data_keys) every stored data key
    /// with the new version. If it is interrupted after the rotation, resume with
    /// [`rewrap_data_keys`](Self::rewrap_data_keys) (rotating again is harmless too).
    ///
    /// # Errors
    /// As [`rewrap_data_keys`](Self::rewrap_data_keys), and [`StoreError::Kms`] when the
    /// rotation is refused.
    pub async fn rotate_all(&self, page_size: u32) -> Result<RotationReport, StoreError> {
        let rotated = self.kms.rotate_key().await?;
        let report = self.rewrap_data_keys(page_size).await?;
        if report.key_id != rotated {
            tracing::warn!(rotated = %rotated, newest = %report.key_id, "the KMS key was rotated again meanwhile");
        }
        Ok(report)
    }
}

fn not_found(id: ConnectionId) -> StoreError {
    StoreError::NotFound { what: format!("connection {id}") }
}

#[async_trait]
impl TokenStore for SqlTokenStore {
    async fn save(&self, user: UserId, provider: &ProviderId, tokens: &TokenSet) -> Result<Connection, StoreError> {
        for _ in 0..SAVE_ATTEMPTS {
            let saved = match self.secret_row_by_owner(user, provider).await? {
                Some(row) => self.write_tokens(&row, tokens, false).await?,
                None => self.insert_new(user, provider, tokens).await?,
            };
            if let Some(conn) = saved {
                return Ok(conn);
            }
        }
        Err(StoreError::Conflict { what: format!("connection of user {user} to {provider} kept changing during save") })
    }

    async fn connection(&self, id: ConnectionId) -> Result<Connection, StoreError> {
        with_backend!(&self.backend, pool, d => {
            let row = sqlx::query(SELECT_BY_ID).bind(id.0).fetch_optional(pool).await.map_err(db_err)?;
            row.as_ref().map(|r| decode_conn(r, d::from_ts)).transpose()?.ok_or_else(|| not_found(id))
        })
    }

    async fn find(&self, user: UserId, provider: &ProviderId) -> Result<Option<Connection>, StoreError> {
        with_backend!(&self.backend, pool, d => {
            let row = sqlx::query(SELECT_BY_OWNER)
                .bind(user.0)
                .bind(provider.as_str())
                .fetch_optional(pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(|r| decode_conn(r, d::from_ts)).transpose()
        })
    }

    async fn list(&self, user: UserId) -> Result<Vec<Connection>, StoreError> {
        with_backend!(&self.backend, pool, d => {
            let rows = sqlx::query(LIST_BY_USER).bind(user.0).fetch_all(pool).await.map_err(db_err)?;
            rows.iter().map(|r| decode_conn(r, d::from_ts)).collect()
        })
    }

    async fn tokens(&self, id: ConnectionId) -> Result<TokenSet, StoreError> {
        let row = self.secret_row_by_id(id).await?.ok_or_else(|| not_found(id))?;
        let cipher = self.cipher_for(&row).await?;
        let access_token = Self::open(&cipher, &row.conn, Field::AccessToken, &row.access)?;
        let refresh_token =
            row.refresh.as_deref().map(|r| Self::open(&cipher, &row.conn, Field::RefreshToken, r)).transpose()?;
        with_backend!(&self.backend, pool, d => {
            sqlx::query(TOUCH).bind(d::ts(now())).bind(id.0).execute(pool).await.map_err(db_err)?;
        });
        Ok(TokenSet { access_token, refresh_token, expires_at: row.conn.expires_at, scopes: row.conn.scopes })
    }

    async fn update_tokens(&self, id: ConnectionId, tokens: &TokenSet) -> Result<Connection, StoreError> {
        let row = self.secret_row_by_id(id).await?.ok_or_else(|| not_found(id))?;
        self.write_tokens(&row, tokens, true).await?.ok_or_else(|| not_found(id))
    }

    async fn set_status(&self, id: ConnectionId, status: ConnectionStatus) -> Result<(), StoreError> {
        let done = with_backend!(&self.backend, pool, d => {
            sqlx::query(SET_STATUS)
                .bind(status.as_str())
                .bind(d::ts(now()))
                .bind(id.0)
                .execute(pool)
                .await
                .map_err(db_err)?
                .rows_affected()
        });
        if done == 0 { Err(not_found(id)) } else { Ok(()) }
    }

    async fn expiring_before(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Connection>, StoreError> {
        with_backend!(&self.backend, pool, d => {
            let rows = sqlx::query(EXPIRING)
                .bind(d::ts(truncate(before)))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(db_err)?;
            rows.iter().map(|r| decode_conn(r, d::from_ts)).collect()
        })
    }

    async fn delete(&self, id: ConnectionId) -> Result<(), StoreError> {
        let data_key = with_backend!(&self.backend, pool, _d => {
            let mut tx = pool.begin().await.map_err(db_err)?;
            let row = sqlx::query(DELETE_CONNECTION).bind(id.0).fetch_optional(&mut *tx).await.map_err(db_err)?;
            let data_key: Option<Uuid> = row.map(|r| r.try_get("data_key_id")).transpose().map_err(db_err)?;
            if let Some(key) = data_key {
                sqlx::query(DELETE_DATA_KEY).bind(key).execute(&mut *tx).await.map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            data_key
        });
        if let Some(key) = data_key {
            self.cache.remove(key);
        }
        Ok(())
    }
}
