//! Key management: the [`KmsProvider`] that generates and wraps data keys for envelope
//! encryption.

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretBox;
use serde::{Deserialize, Serialize};

use crate::error::KmsError;

/// A 256-bit data key in the clear: zeroized on drop, never printed.
pub type DataKeyBytes = SecretBox<[u8; 32]>;

/// A data key wrapped (encrypted) by the KMS: safe to store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The KMS key that wrapped it (name and, where the KMS has versions, version).
    pub key_id: String,
    /// The wrapped bytes, in the KMS's own format.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// A fresh data key: the clear key to encrypt with now, and its wrapped form to store.
pub struct DataKey {
    /// The clear key.
    pub plaintext: DataKeyBytes,
    /// The wrapped key.
    pub wrapped: WrappedKey,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").field("wrapped", &self.wrapped).finish_non_exhaustive()
    }
}

/// A key management service.
///
/// # Contract
/// - `generate_data_key` returns a new random 256-bit key and its wrapped form.
/// - `decrypt_data_key` unwraps a key wrapped by any version of the KMS key still kept;
///   a corrupt or foreign wrapped key is [`KmsError::InvalidWrappedKey`], never a panic.
/// - `rotate_key` makes a new key version the one new data keys are wrapped with; old
///   versions still unwrap. `rewrap` re-wraps a key with the newest version without
///   revealing it to the caller where the KMS supports that.
/// - Unreachable or sealed KMSs give [`KmsError::Unavailable`] / [`KmsError::Sealed`].
#[async_trait]
pub trait KmsProvider: Send + Sync + fmt::Debug {
    /// A short name for logs and metrics (`local`, `vault`).
    fn name(&self) -> &str;

    /// A new data key.
    async fn generate_data_key(&self) -> Result<DataKey, KmsError>;

    /// Unwraps a data key.
    async fn decrypt_data_key(&self, wrapped: &WrappedKey) -> Result<DataKeyBytes, KmsError>;

    /// Rotates the KMS key; returns the new version's id.
    async fn rotate_key(&self) -> Result<String, KmsError>;

    /// Re-wraps `wrapped` with the newest key version.
    async fn rewrap(&self, wrapped: &WrappedKey) -> Result<WrappedKey, KmsError>;

    /// Checks that the KMS answers (for `/ready`).
    async fn health(&self) -> Result<(), KmsError>;
}
