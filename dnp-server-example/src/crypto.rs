//! Small cryptographic helpers: random tokens, hashes of tokens stored server-side, and
//! sealing of short-lived server-side secrets (PKCE verifiers, TOTP secrets) under a key
//! derived from `SESSION_SECRET`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// `n` random bytes from the operating system.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // The OS generator failing is not something a server can continue after.
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    buf
}

/// A random URL-safe token of `n` random bytes.
pub(crate) fn random_token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

/// The SHA-256 of `value`, hex: how refresh tokens and OAuth states are stored.
pub(crate) fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Constant-time comparison of two byte strings.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Seals values with AES-256-GCM under keys derived from the session secrets: the current
/// one seals, the current or previous one opens (for rotation).
#[derive(Clone)]
pub(crate) struct Sealer {
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("keys", &self.keys.len()).finish()
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for k in &mut self.keys {
            k.zeroize();
        }
    }
}

const SEAL_VERSION: &str = "v1";

impl Sealer {
    /// A sealer over `current` and, after a rotation, `previous`.
    pub(crate) fn new(current: &SecretString, previous: Option<&SecretString>) -> Self {
        let derive = |s: &SecretString| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(b"dnp-server seal key v1\0");
            h.update(s.expose_secret().as_bytes());
            h.finalize().into()
        };
        let mut keys = vec![derive(current)];
        if let Some(p) = previous {
            keys.push(derive(p));
        }
        Self { keys }
    }

    /// Encrypts `plaintext`, bound to `aad` (e.g. `"pkce:<state hash>"`): `v1.<nonce>.<ct>`.
    pub(crate) fn seal(&self, plaintext: &str, aad: &str) -> String {
        let cipher = Aes256Gcm::new(&self.keys[0].into());
        let nonce_bytes = random_bytes(12);
        let nonce = Nonce::try_from(&nonce_bytes[..]).expect("12-byte nonce");
        let ct = cipher
            .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: aad.as_bytes() })
            .expect("AES-GCM encryption of a short value cannot fail");
        format!("{SEAL_VERSION}.{}.{}", URL_SAFE_NO_PAD.encode(nonce_bytes), URL_SAFE_NO_PAD.encode(ct))
    }

    /// Decrypts what [`Sealer::seal`] produced with the same `aad`; `None` when it does not
    /// open (corrupt, moved to another row, or sealed under a secret no longer configured).
    pub(crate) fn open(&self, sealed: &str, aad: &str) -> Option<SecretString> {
        let mut parts = sealed.split('.');
        if parts.next()? != SEAL_VERSION {
            return None;
        }
        let nonce_bytes = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
        let ct = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
        let nonce = Nonce::try_from(&nonce_bytes[..]).ok()?;
        self.keys.iter().find_map(|key| {
            let cipher = Aes256Gcm::new(&(*key).into());
            let plain = cipher.decrypt(&nonce, Payload { msg: &ct, aad: aad.as_bytes() }).ok()?;
            String::from_utf8(plain).ok().map(SecretString::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_aad_and_a_known_secret() {
        let a = SecretString::from("a".repeat(40));
        let b = SecretString::from("b".repeat(40));
        let sealer = Sealer::new(&a, None);
        let sealed = sealer.seal("verifier", "pkce:1");
        assert!(!sealed.contains("verifier"));
        assert_eq!(sealer.open(&sealed, "pkce:1").unwrap().expose_secret(), "verifier");
        assert!(sealer.open(&sealed, "pkce:2").is_none());
        assert!(Sealer::new(&b, None).open(&sealed, "pkce:1").is_none());
        // After rotating to b with a as previous, old values still open.
        assert_eq!(Sealer::new(&b, Some(&a)).open(&sealed, "pkce:1").unwrap().expose_secret(), "verifier");
        assert!(sealer.open("v1.garbage", "pkce:1").is_none());
        assert!(sealer.open("", "").is_none());
    }

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        assert_ne!(random_token(32), random_token(32));
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
