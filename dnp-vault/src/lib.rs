//! # dnp-vault
//!
//! Where dnp keeps the OAuth tokens of its users' music services, so that nothing
//! readable ever reaches disk or logs: envelope encryption (AES-256-GCM) under per-row
//! data keys, the [`KmsProvider`]s that wrap those data keys, a cache of unwrapped data
//! keys, and the encrypted [`TokenStore`] over SQLite or PostgreSQL.
//!
//! ## Quick start
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dnp_core::{TokenSet, TokenStore, UserId};
//! use dnp_vault::{DataKeyCache, KmsConfig, SqlTokenStore, config};
//!
//! // KMS_PROVIDER=local (default) or vault, with its variables: see `config`.
//! let kms = KmsConfig::from_env()?.build()?;
//! let pool = sqlx::SqlitePool::connect("sqlite://dnp.db?mode=rwc").await?;
//! let store = SqlTokenStore::sqlite(pool, kms)
//!     .with_cache(DataKeyCache::new(config::data_key_cache_size_from_env()?));
//! store.migrate().await?; // idempotent; beside your own sqlx migrations
//!
//! let tokens = TokenSet {
//!     access_token: "BQDx…".to_owned().into(),
//!     refresh_token: Some("AQAy…".to_owned().into()),
//!     expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
//!     scopes: vec!["user-library-modify".into()],
//! };
//! let connection = store.save(UserId::new_random(), &"spotify".parse()?, &tokens).await?;
//! let back = store.tokens(connection.id).await?; // decrypted, in secrecy wrappers
//!
//! // Later, as an operator: rotate the KMS key and re-wrap every data key.
//! let report = store.rotate_all(500).await?;
//! println!("{} data keys now under {}", report.rewrapped, report.key_id);
//! # Ok(()) }
//! ```
//!
//! ## What is in it
//!
//! | item | what it is |
//! |---|---|
//! | [`envelope`] | the versioned byte format of one encrypted token and its associated data |
//! | [`LocalKms`] | master key in a 0600 file or `LOCAL_KMS_KEY`; versioned, rotatable (feature `local`) |
//! | [`VaultTransitKms`] | HashiCorp Vault / OpenBao Transit, token or AppRole auth (feature `vault`) |
//! | [`KmsConfig`] | picks and configures one of them from the environment |
//! | [`DataKeyCache`] | bounded LRU of unwrapped data keys, with hit/miss metrics |
//! | [`SqlTokenStore`] | the encrypted [`TokenStore`], migrations, key rotation (features `sqlite`, `postgres`) |
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `local` | yes | [`LocalKms`] |
//! | `sqlite` | yes | [`SqlTokenStore::sqlite`] (sqlx, bundled SQLite) |
//! | `vault` | no | [`VaultTransitKms`] (reqwest with rustls) |
//! | `postgres` | no | [`SqlTokenStore::postgres`] (sqlx, plain TCP or the application's TLS setup) |
//!
//! ## Why this design
//!
//! - **Envelope encryption.** Each connection row has its own 256-bit data key; only its
//!   wrapped form is stored. Tokens never travel to the KMS, the KMS key never leaves it,
//!   and rotating the KMS key re-wraps 32-byte data keys instead of re-encrypting every
//!   token.
//! - **Associated data binds each ciphertext to its place** (user, connection, provider,
//!   field): someone who can write the database cannot move a token to another account or
//!   swap an access token for a refresh token without decryption failing.
//! - **Typed, secret-free errors.** A corrupt row is a [`StoreError::Crypto`](dnp_core::StoreError::Crypto)
//!   naming the connection and field; KMS outages are retryable
//!   [`KmsError`](dnp_core::KmsError)s. Keys and tokens live in `secrecy` wrappers and are
//!   zeroized on drop; every type holding one has a hand-written `Debug`.
//! - **A cache in front of the KMS.** With Vault every unwrap is an HTTP round trip;
//!   cached, encrypting and decrypting a whole token set takes a few microseconds
//!   (`benches/vault.rs`).
//!
//! The threat model and the rotation procedure are in `docs/security.md`.

pub mod cache;
pub mod config;
pub mod envelope;
mod kms;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod store;

pub use cache::{CacheStats, DataKeyCache};
#[cfg(feature = "local")]
pub use config::LocalKeySource;
pub use config::{ConfigError, KmsConfig};
#[cfg(feature = "vault")]
pub use config::{VaultAuth, VaultConfig};
pub use envelope::{DataKeyCipher, EnvelopeError};
#[cfg(feature = "local")]
pub use kms::local::LocalKms;
#[cfg(feature = "vault")]
pub use kms::vault::VaultTransitKms;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use store::{MIGRATIONS_TABLE, RotationReport, SqlTokenStore};

#[cfg(doc)]
use dnp_core::{KmsProvider, TokenStore};
