//! The envelope: how one token is encrypted under a data key.
//!
//! # Byte layout (format version 1)
//!
//! ```text
//! offset  length  content
//! 0       1       format version, 0x01
//! 1       12      nonce: 96 random bits, fresh for every encryption
//! 13      n       AES-256-GCM ciphertext of the n-byte plaintext
//! 13+n    16      GCM authentication tag
//! ```
//!
//! An envelope is therefore exactly 29 bytes longer than its plaintext.
//!
//! # Associated data
//!
//! Every envelope is bound to the row and field it belongs to by GCM's associated data
//! (authenticated, not stored). For format version 1 it is the byte string
//!
//! ```text
//! 0x01                                  format version
//! u32 BE length (16) || user id         the UUID's 16 bytes
//! u32 BE length (16) || connection id   the UUID's 16 bytes
//! u32 BE length || provider id          UTF-8, e.g. "spotify"
//! u32 BE length || field name           UTF-8: "access_token" or "refresh_token"
//! ```
//!
//! Every part is length-prefixed, so no two different tuples encode to the same bytes.
//! An envelope copied to another user, connection, provider or field fails to open.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, Generate, KeyInit};
use dnp_core::{ConnectionId, DataKeyBytes, ProviderId, UserId};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

/// The envelope format this version writes (and the only one it reads).
pub const FORMAT_VERSION: u8 = 1;

/// Nonce length in bytes (96 bits).
pub const NONCE_LEN: usize = 12;

/// GCM tag length in bytes.
pub const TAG_LEN: usize = 16;

/// Bytes an envelope adds to its plaintext: version, nonce and tag.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Which secret of a connection an envelope holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The OAuth access token.
    AccessToken,
    /// The OAuth refresh token.
    RefreshToken,
}

impl Field {
    /// The field's name, as bound into the associated data and named in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// The associated data of one envelope: who and what it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    /// The user owning the connection.
    pub user: UserId,
    /// The connection (row) the envelope is stored in.
    pub connection: ConnectionId,
    /// The provider of the connection.
    pub provider: &'a ProviderId,
    /// The field.
    pub field: Field,
}

impl Aad<'_> {
    /// The encoded associated data (see the [module docs](self)).
    pub fn encode(&self) -> Vec<u8> {
        let provider = self.provider.as_str().as_bytes();
        let field = self.field.as_str().as_bytes();
        let mut out = Vec::with_capacity(1 + 4 * 4 + 16 + 16 + provider.len() + field.len());
        out.push(FORMAT_VERSION);
        for part in [self.user.0.as_bytes().as_slice(), self.connection.0.as_bytes(), provider, field] {
            // Parts are at most a few dozen bytes: a provider id is at most 32 characters.
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }
}

/// Why an envelope could not be made or opened. Never contains key or plaintext bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Shorter than the smallest possible envelope.
    #[error("corrupt ciphertext: {len} bytes is shorter than the {OVERHEAD}-byte minimum")]
    Truncated {
        /// The length found.
        len: usize,
    },
    /// A format version this build does not know.
    #[error("corrupt ciphertext or unknown envelope format version {version}")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// Authentication failed: the ciphertext was altered, belongs to another row, user or
    /// field, or was encrypted under another data key.
    #[error("ciphertext failed authentication (altered, moved from another row or field, or another data key)")]
    Rejected,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The plaintext is too long for one envelope.
    #[error("plaintext too long")]
    TooLong,
}

/// AES-256-GCM under one data key, with its key schedule expanded once.
///
/// The key schedule is zeroized on drop. `Debug` prints no key material.
///
/// ```
/// use dnp_vault::envelope::{Aad, DataKeyCipher, Field};
/// use dnp_core::{ConnectionId, ProviderId, UserId};
///
/// let key = secrecy::SecretBox::new(Box::new([7u8; 32]));
/// let cipher = DataKeyCipher::new(&key);
/// let provider: ProviderId = "spotify".parse().unwrap();
/// let aad = Aad { user: UserId::new_random(), connection: ConnectionId::new_random(), provider: &provider, field: Field::AccessToken };
/// let sealed = cipher.seal(&aad, b"BQD...token").unwrap();
/// assert_eq!(&cipher.open(&aad, &sealed).unwrap()[..], b"BQD...token");
/// let other = Aad { field: Field::RefreshToken, ..aad };
/// assert!(cipher.open(&other, &sealed).is_err());
/// ```
pub struct DataKeyCipher {
    aead: Aes256Gcm,
}

impl fmt::Debug for DataKeyCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeyCipher").field("algorithm", &"AES-256-GCM").finish_non_exhaustive()
    }
}

impl DataKeyCipher {
    /// A cipher under `key`.
    pub fn new(key: &DataKeyBytes) -> Self {
        Self::from_key(key.expose_secret())
    }

    pub(crate) fn from_key(key: &[u8; 32]) -> Self {
        let key: &aes_gcm::Key<Aes256Gcm> = key.into();
        Self { aead: Aes256Gcm::new(key) }
    }

    /// Encrypts `plaintext` into a new envelope bound to `aad`, with a fresh random nonce.
    ///
    /// # Errors
    /// [`EnvelopeError::Random`] when the system RNG fails.
    pub fn seal(&self, aad: &Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let nonce = <[u8; NONCE_LEN]>::try_generate().map_err(|_| EnvelopeError::Random)?;
        seal_with_nonce(&self.aead, &nonce, &aad.encode(), plaintext)
    }

    /// Decrypts an envelope made by [`seal`](Self::seal) with the same key and `aad`.
    ///
    /// The plaintext is zeroized when the returned buffer is dropped.
    ///
    /// # Errors
    /// [`EnvelopeError::Truncated`], [`EnvelopeError::UnknownVersion`] or
    /// [`EnvelopeError::Rejected`].
    pub fn open(&self, aad: &Aad<'_>, envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        open_raw(&self.aead, &aad.encode(), envelope)
    }
}

fn seal_with_nonce(
    aead: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    let tag = aead
        .encrypt_inout_detached(nonce.into(), aad, (&mut out[1 + NONCE_LEN..]).into())
        .map_err(|_| EnvelopeError::TooLong)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

fn open_raw(aead: &Aes256Gcm, aad: &[u8], envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if envelope.len() < OVERHEAD {
        return Err(EnvelopeError::Truncated { len: envelope.len() });
    }
    if envelope[0] != FORMAT_VERSION {
        return Err(EnvelopeError::UnknownVersion { version: envelope[0] });
    }
    let (nonce, rest) = envelope[1..].split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| EnvelopeError::Truncated { len: envelope.len() })?;
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| EnvelopeError::Truncated { len: envelope.len() })?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    aead.decrypt_inout_detached(nonce.into(), aad, buf.as_mut_slice().into(), tag.into())
        .map_err(|_| EnvelopeError::Rejected)?;
    Ok(buf)
}

/// Known-answer test hooks: the envelope code path with a caller-chosen nonce and raw
/// associated data. Never use a chosen nonce outside tests: reusing one under the same
/// key breaks AES-GCM.
#[doc(hidden)]
pub mod kat {
    use super::*;

    /// Seals with an explicit nonce and raw associated data.
    pub fn seal_with_nonce(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        super::seal_with_nonce(&DataKeyCipher::from_key(key).aead, nonce, aad, plaintext).unwrap_or_else(|_| Vec::new())
    }

    /// Opens with raw associated data.
    pub fn open(key: &[u8; 32], aad: &[u8], envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        super::open_raw(&DataKeyCipher::from_key(key).aead, aad, envelope)
    }
}
