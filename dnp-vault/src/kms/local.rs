//! [`LocalKms`]: a versioned master key kept in a local file or given by the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, Generate, KeyInit};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use dnp_core::{DataKey, DataKeyBytes, KmsError, KmsProvider, WrappedKey};
use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use crate::config::LocalKeySource;

/// First content line of a key file.
const FILE_HEADER: &str = "dnp-local-kms v1";
/// Format byte of a wrapped data key.
const WRAP_FORMAT: u8 = 1;
/// Wrapped key: format (1) + version (4) + nonce (12) + key (32) + tag (16).
const WRAPPED_LEN: usize = 1 + 4 + 12 + 32 + 16;

/// One master key version.
struct MasterKey {
    raw: SecretBox<[u8; 32]>,
    cipher: Aes256Gcm,
}

impl MasterKey {
    fn new(raw: SecretBox<[u8; 32]>) -> Self {
        let cipher = Aes256Gcm::new(raw.expose_secret().into());
        Self { raw, cipher }
    }

    fn random() -> Result<Self, KmsError> {
        Ok(Self::new(random_key()?))
    }
}

type Ring = BTreeMap<u32, MasterKey>;

#[derive(Clone)]
enum Source {
    File(PathBuf),
    Inline,
    Memory,
}

/// The embedded KMS: AES-256-GCM key wrapping under a master key held by this process.
///
/// The master key has versions. New data keys are wrapped with the newest; any version
/// still present unwraps. [`rotate_key`](KmsProvider::rotate_key) adds a version.
///
/// # Where the master key comes from
/// - A key file ([`LocalKms::open`], `LOCAL_KMS_KEY_FILE`): created on first use with mode
///   0600 (its directory 0700), holding every version. A file that other users may read
///   is refused with [`KmsError::Config`]: fix it with `chmod 600`. Rotation rewrites the
///   file atomically under a lock file (`<file>.lock`). Several processes may share the
///   file; one that meets a version it does not know re-reads the file.
///
///   ```text
///   # comments and blank lines are ignored
///   dnp-local-kms v1
///   1 <base64 of 32 random bytes>
///   2 <base64 of 32 random bytes>
///   ```
/// - An environment variable (`LOCAL_KMS_KEY`): either one base64 key (version 1) or
///   `1:<base64>,2:<base64>,…`. Such keys are rotated by the operator: add a version to
///   the variable, restart, then rewrap
///   ([`SqlTokenStore::rewrap_data_keys`](crate::SqlTokenStore::rewrap_data_keys));
///   `rotate_key` says so in a [`KmsError::Config`].
/// - Memory ([`LocalKms::in_memory`]): a random key that dies with the process, for tests.
///
/// # Wrapped key format
/// `WrappedKey::key_id` is `local:v<N>`; `WrappedKey::ciphertext` is 65 bytes:
/// format `0x01`, version N (u32 big-endian), a random 12-byte nonce, then the 32-byte
/// data key encrypted with AES-256-GCM and its 16-byte tag. The associated data is
/// `"dnp-local-kms" || 0x01 || N (u32 BE)`, so a wrapped key cannot be relabelled as
/// another version.
pub struct LocalKms {
    source: Source,
    ring: RwLock<Ring>,
    rotation: Mutex<()>,
}

impl fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let versions: Vec<u32> = self.read_ring().keys().copied().collect();
        let source = match &self.source {
            Source::File(p) => format!("file {}", p.display()),
            Source::Inline => "LOCAL_KMS_KEY".to_owned(),
            Source::Memory => "memory".to_owned(),
        };
        f.debug_struct("LocalKms").field("source", &source).field("versions", &versions).finish()
    }
}

impl LocalKms {
    /// Opens the key file at `path`, creating it (mode 0600) with one fresh key when it does
    /// not exist.
    ///
    /// # Errors
    /// [`KmsError::Config`] when the file is readable by other users, malformed, or cannot
    /// be read or created; the message names the file and line, never key material.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, KmsError> {
        let path = path.as_ref().to_path_buf();
        let ring = match read_key_file(&path) {
            Ok(ring) => ring,
            Err(FileError::Missing) => create_key_file(&path)?,
            Err(FileError::Kms(e)) => return Err(e),
        };
        Ok(Self { source: Source::File(path), ring: RwLock::new(ring), rotation: Mutex::new(()) })
    }

    /// A KMS over keys given inline: one base64 key, or `1:<base64>,2:<base64>,…` (the
    /// format of `LOCAL_KMS_KEY`).
    ///
    /// # Errors
    /// [`KmsError::Config`] when the value does not parse (the message never repeats it).
    pub fn from_inline(value: &secrecy::SecretString) -> Result<Self, KmsError> {
        let keys = parse_inline(value.expose_secret())
            .map_err(|problem| KmsError::Config { detail: format!("LOCAL_KMS_KEY: {problem}") })?;
        let ring = keys.into_iter().map(|(v, k)| (v, MasterKey::new(k))).collect();
        Ok(Self { source: Source::Inline, ring: RwLock::new(ring), rotation: Mutex::new(()) })
    }

    /// A KMS with a random master key that lives only in this process (tests, benches).
    /// Rotation works, in memory.
    ///
    /// # Errors
    /// [`KmsError::Config`] when the system random number generator fails.
    pub fn in_memory() -> Result<Self, KmsError> {
        let ring = BTreeMap::from([(1, MasterKey::random()?)]);
        Ok(Self { source: Source::Memory, ring: RwLock::new(ring), rotation: Mutex::new(()) })
    }

    /// From a configured source.
    ///
    /// # Errors
    /// As [`open`](Self::open) and [`from_inline`](Self::from_inline).
    pub fn from_source(source: LocalKeySource) -> Result<Self, KmsError> {
        match source {
            LocalKeySource::File(path) => Self::open(path),
            LocalKeySource::Inline(value) => Self::from_inline(&value),
        }
    }

    /// The key versions held, oldest first.
    pub fn versions(&self) -> Vec<u32> {
        self.read_ring().keys().copied().collect()
    }

    /// Re-reads the key file (after another process rotated). A no-op for other sources.
    ///
    /// # Errors
    /// As [`open`](Self::open); the keys held stay as they were.
    pub fn reload(&self) -> Result<(), KmsError> {
        let Source::File(path) = &self.source else { return Ok(()) };
        let fresh = match read_key_file(path) {
            Ok(ring) => ring,
            Err(FileError::Missing) => {
                return Err(KmsError::Config { detail: format!("key file {} disappeared", path.display()) });
            }
            Err(FileError::Kms(e)) => return Err(e),
        };
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        for (version, key) in fresh {
            ring.entry(version).or_insert(key);
        }
        Ok(())
    }

    fn read_ring(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    fn wrap_with_newest(&self, key: &[u8; 32]) -> Result<WrappedKey, KmsError> {
        let ring = self.read_ring();
        let (&version, master) = ring
            .last_key_value()
            .ok_or_else(|| KmsError::Config { detail: "the local KMS holds no key".to_owned() })?;
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.push(WRAP_FORMAT);
        out.extend_from_slice(&version.to_be_bytes());
        let nonce = <[u8; 12]>::try_generate().map_err(|_| rng_failed())?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key);
        let tag = master
            .cipher
            .encrypt_inout_detached((&nonce).into(), &wrap_aad(version), (&mut out[17..]).into())
            .map_err(|_| KmsError::Config { detail: "AES-GCM refused to wrap a 32-byte key".to_owned() })?;
        out.extend_from_slice(&tag);
        Ok(WrappedKey { key_id: key_id(version), ciphertext: out })
    }

    fn unwrap_key(&self, wrapped: &WrappedKey) -> Result<DataKeyBytes, KmsError> {
        let c = &wrapped.ciphertext;
        if c.len() != WRAPPED_LEN || c[0] != WRAP_FORMAT {
            return Err(KmsError::InvalidWrappedKey {
                detail: format!("not a local KMS wrapped key ({} bytes, format byte {:?})", c.len(), c.first()),
            });
        }
        let version = u32::from_be_bytes([c[1], c[2], c[3], c[4]]);
        if !self.read_ring().contains_key(&version) {
            // Another process may have rotated: look again before giving up.
            self.reload()?;
        }
        let ring = self.read_ring();
        let master = ring.get(&version).ok_or_else(|| KmsError::KeyNotFound { key: key_id(version) })?;
        let nonce: &[u8; 12] = c[5..17].try_into().map_err(|_| invalid("bad nonce"))?;
        let tag: &[u8; 16] = c[49..65].try_into().map_err(|_| invalid("bad tag"))?;
        let mut buf = Zeroizing::new([0u8; 32]);
        buf.copy_from_slice(&c[17..49]);
        master
            .cipher
            .decrypt_inout_detached(nonce.into(), &wrap_aad(version), buf.as_mut_slice().into(), tag.into())
            .map_err(|_| invalid("authentication failed (corrupt, or wrapped by another master key)"))?;
        Ok(SecretBox::init_with_mut(|k: &mut [u8; 32]| k.copy_from_slice(&*buf)))
    }

    fn rotate_file(&self, path: &Path) -> Result<u32, KmsError> {
        let _guard = self.rotation.lock().unwrap_or_else(|e| e.into_inner());
        let lock_path = sibling(path, ".lock");
        let lock = std::fs::OpenOptions::new().write(true).create_new(true).open(&lock_path);
        match lock {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(KmsError::Config {
                    detail: format!(
                        "a rotation of {} is in progress ({} exists); if none is running, remove that file",
                        path.display(),
                        lock_path.display()
                    ),
                });
            }
            Err(e) => return Err(file_err(&lock_path, "create", &e)),
        }
        let result = (|| {
            // Start from the file (another process may have rotated), plus what we hold.
            self.reload()?;
            let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
            let next = ring.keys().next_back().map_or(1, |v| v + 1);
            let mut new_ring: Vec<(u32, &SecretBox<[u8; 32]>)> = ring.iter().map(|(v, k)| (*v, &k.raw)).collect();
            let fresh = MasterKey::random()?;
            new_ring.push((next, &fresh.raw));
            write_key_file_atomically(path, &new_ring)?;
            ring.insert(next, fresh);
            Ok(next)
        })();
        let _ = std::fs::remove_file(&lock_path);
        result
    }
}

#[async_trait]
impl KmsProvider for LocalKms {
    fn name(&self) -> &str {
        "local"
    }

    async fn generate_data_key(&self) -> Result<DataKey, KmsError> {
        let plaintext = random_key()?;
        let wrapped = self.wrap_with_newest(plaintext.expose_secret())?;
        Ok(DataKey { plaintext, wrapped })
    }

    async fn decrypt_data_key(&self, wrapped: &WrappedKey) -> Result<DataKeyBytes, KmsError> {
        self.unwrap_key(wrapped)
    }

    async fn rotate_key(&self) -> Result<String, KmsError> {
        let version = match &self.source {
            Source::File(path) => self.rotate_file(path)?,
            Source::Memory => {
                let _guard = self.rotation.lock().unwrap_or_else(|e| e.into_inner());
                let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
                let next = ring.keys().next_back().map_or(1, |v| v + 1);
                ring.insert(next, MasterKey::random()?);
                next
            }
            Source::Inline => {
                return Err(KmsError::Config {
                    detail: "keys given by LOCAL_KMS_KEY are rotated by the operator: add a version \
                             (`1:<old>,2:<new>`), restart, then rewrap the data keys"
                        .to_owned(),
                });
            }
        };
        tracing::info!(key = %key_id(version), "local KMS key rotated");
        Ok(key_id(version))
    }

    async fn rewrap(&self, wrapped: &WrappedKey) -> Result<WrappedKey, KmsError> {
        let key = self.unwrap_key(wrapped)?;
        self.wrap_with_newest(key.expose_secret())
    }

    async fn health(&self) -> Result<(), KmsError> {
        if self.read_ring().is_empty() {
            return Err(KmsError::Config { detail: "the local KMS holds no key".to_owned() });
        }
        Ok(())
    }
}

fn key_id(version: u32) -> String {
    format!("local:v{version}")
}

fn wrap_aad(version: u32) -> [u8; 18] {
    let mut aad = [0u8; 18];
    aad[..13].copy_from_slice(b"dnp-local-kms");
    aad[13] = WRAP_FORMAT;
    aad[14..].copy_from_slice(&version.to_be_bytes());
    aad
}

fn invalid(detail: &str) -> KmsError {
    KmsError::InvalidWrappedKey { detail: detail.to_owned() }
}

fn rng_failed() -> KmsError {
    KmsError::Config { detail: "the system random number generator failed".to_owned() }
}

fn random_key() -> Result<SecretBox<[u8; 32]>, KmsError> {
    let random = Zeroizing::new(<[u8; 32]>::try_generate().map_err(|_| rng_failed())?);
    Ok(SecretBox::init_with_mut(|k: &mut [u8; 32]| k.copy_from_slice(&*random)))
}

fn decode_key(b64: &str) -> Result<SecretBox<[u8; 32]>, String> {
    let bytes = Zeroizing::new(
        STANDARD_PAD_INDIFFERENT.decode(b64.trim()).map_err(|_| "a key is not valid base64".to_owned())?,
    );
    if bytes.len() != 32 {
        return Err(format!("a key decodes to {} bytes; it must be 32 (AES-256)", bytes.len()));
    }
    Ok(SecretBox::init_with_mut(|k: &mut [u8; 32]| k.copy_from_slice(&bytes)))
}

/// Parses the value of `LOCAL_KMS_KEY`: one base64 key, or `N:<base64>` items separated
/// by commas. Errors never repeat the value.
pub(crate) fn parse_inline(value: &str) -> Result<BTreeMap<u32, SecretBox<[u8; 32]>>, String> {
    let value = value.trim();
    if !value.contains(':') {
        return Ok(BTreeMap::from([(1, decode_key(value)?)]));
    }
    let mut keys = BTreeMap::new();
    for (i, item) in value.split(',').enumerate() {
        let (version, key) = item.split_once(':').ok_or_else(|| format!("item {} is not `version:base64`", i + 1))?;
        let version: u32 = version
            .trim()
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("item {}: the version is not a positive integer", i + 1))?;
        let key = decode_key(key).map_err(|e| format!("item {}: {e}", i + 1))?;
        if keys.insert(version, key).is_some() {
            return Err(format!("version {version} appears twice"));
        }
    }
    Ok(keys)
}

enum FileError {
    Missing,
    Kms(KmsError),
}

fn file_err(path: &Path, what: &str, e: &std::io::Error) -> KmsError {
    KmsError::Config { detail: format!("cannot {what} key file {}: {e}", path.display()) }
}

fn read_key_file(path: &Path) -> Result<Ring, FileError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FileError::Missing),
        Err(e) => return Err(FileError::Kms(file_err(path, "open", &e))),
    };
    let meta = file.metadata().map_err(|e| FileError::Kms(file_err(path, "inspect", &e)))?;
    if !meta.is_file() {
        return Err(FileError::Kms(KmsError::Config { detail: format!("{} is not a regular file", path.display()) }));
    }
    check_permissions(path, &meta).map_err(FileError::Kms)?;
    let mut text = Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut &file, &mut text).map_err(|e| FileError::Kms(file_err(path, "read", &e)))?;
    parse_key_file(&text).map(|keys| keys.into_iter().map(|(v, k)| (v, MasterKey::new(k))).collect()).map_err(
        |problem| FileError::Kms(KmsError::Config { detail: format!("key file {}: {problem}", path.display()) }),
    )
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &std::fs::Metadata) -> Result<(), KmsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(KmsError::Config {
            detail: format!(
                "key file {} is accessible to other users (mode {mode:03o}); refusing to use it. \
                 Run `chmod 600 {}` (and consider the key exposed)",
                path.display(),
                path.display()
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path, _: &std::fs::Metadata) -> Result<(), KmsError> {
    Ok(())
}

fn parse_key_file(text: &str) -> Result<BTreeMap<u32, SecretBox<[u8; 32]>>, String> {
    let mut lines =
        text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    match lines.next() {
        Some((_, FILE_HEADER)) => {}
        Some((n, _)) => return Err(format!("line {n}: expected the header `{FILE_HEADER}`")),
        None => return Err("empty: no header and no key".to_owned()),
    }
    let mut keys = BTreeMap::new();
    for (n, line) in lines {
        let (version, key) =
            line.split_once(char::is_whitespace).ok_or_else(|| format!("line {n}: expected `version base64-key`"))?;
        let version: u32 = version
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("line {n}: the version is not a positive integer"))?;
        let key = decode_key(key).map_err(|e| format!("line {n}: {e}"))?;
        if keys.insert(version, key).is_some() {
            return Err(format!("line {n}: version {version} appears twice"));
        }
    }
    if keys.is_empty() {
        return Err("holds no key".to_owned());
    }
    Ok(keys)
}

fn render_key_file(keys: &[(u32, &SecretBox<[u8; 32]>)]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::from(
        "# dnp local KMS master keys: one `version base64-key` per line, newest last.\n\
         # Keep this file secret (mode 0600) and backed up: without it no stored token can be decrypted.\n",
    ));
    text.push_str(FILE_HEADER);
    text.push('\n');
    for (version, key) in keys {
        let b64 = Zeroizing::new(STANDARD.encode(key.expose_secret()));
        text.push_str(&format!("{version} "));
        text.push_str(&b64);
        text.push('\n');
    }
    text
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes a new file next to `path` with mode 0600 and syncs it; returns its path.
fn write_temp(path: &Path, keys: &[(u32, &SecretBox<[u8; 32]>)]) -> Result<PathBuf, KmsError> {
    let tmp = sibling(path, &format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(|e| file_err(&tmp, "create", &e))?;
    let text = render_key_file(keys);
    let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_err(&tmp, "write", &e));
    }
    Ok(tmp)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

fn write_key_file_atomically(path: &Path, keys: &[(u32, &SecretBox<[u8; 32]>)]) -> Result<(), KmsError> {
    let tmp = write_temp(path, keys)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_err(path, "replace", &e));
    }
    sync_dir(path);
    Ok(())
}

fn create_key_file(path: &Path) -> Result<Ring, KmsError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| KmsError::Config {
            detail: format!("cannot create directory {} for the key file: {e}", dir.display()),
        })?;
    }
    let first = MasterKey::random()?;
    let tmp = write_temp(path, &[(1, &first.raw)])?;
    // Publish with a hard link: it fails if another process created the file meanwhile,
    // in which case theirs wins and we read it.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path);
            tracing::info!(path = %path.display(), "created a new local KMS key file; back it up");
            Ok(BTreeMap::from([(1, first)]))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read_key_file(path) {
            Ok(ring) => Ok(ring),
            Err(FileError::Missing) => {
                Err(KmsError::Config { detail: format!("key file {} vanished", path.display()) })
            }
            Err(FileError::Kms(e)) => Err(e),
        },
        Err(e) => Err(file_err(path, "create", &e)),
    }
}
