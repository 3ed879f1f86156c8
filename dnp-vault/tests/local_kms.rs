//! LocalKms: key file creation and permissions, inline keys, versions and rotation,
//! typed errors for bad wrapped keys.
#![cfg(feature = "local")]

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use dnp_core::{KmsError, KmsProvider, WrappedKey};
use dnp_vault::LocalKms;
use secrecy::{ExposeSecret, SecretString};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn key_file_is_created_on_first_use_with_mode_0600_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/dnp-kms.key");
    let kms = LocalKms::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key file mode");
    let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "created directory mode");
    assert_eq!(kms.versions(), vec![1]);
    let key = kms.generate_data_key().await.unwrap();
    assert_eq!(key.wrapped.key_id, "local:v1");
    assert_eq!(key.wrapped.ciphertext.len(), 65);
    drop(kms);

    // A second open (a restart) reads the same key and unwraps what the first wrapped.
    let again = LocalKms::open(&path).unwrap();
    let unwrapped = again.decrypt_data_key(&key.wrapped).await.unwrap();
    assert_eq!(unwrapped.expose_secret(), key.plaintext.expose_secret());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("dnp-local-kms v1"));
    assert_eq!(no_temp_files(dir.path().join("keys")), 1, "only the key file is left");
}

fn no_temp_files(dir: std::path::PathBuf) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[tokio::test]
async fn a_world_readable_key_file_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.key");
    LocalKms::open(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = LocalKms::open(&path).unwrap_err();
    let KmsError::Config { detail } = &err else { panic!("expected Config, got {err:?}") };
    assert!(detail.contains("accessible to other users") && detail.contains("chmod 600"), "{detail}");
    assert!(detail.contains(&path.display().to_string()), "names the file: {detail}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    LocalKms::open(&path).unwrap();
}

#[tokio::test]
async fn a_malformed_key_file_names_the_line_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.key");
    let secret = b64(&[9u8; 31]);
    std::fs::write(&path, format!("dnp-local-kms v1\n1 {secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = LocalKms::open(&path).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("31 bytes"), "{err}");
    assert!(!err.contains(&secret), "the key never appears in the error");

    std::fs::write(&path, "not a key file\n").unwrap();
    let err = LocalKms::open(&path).unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("header"), "{err}");
}

#[tokio::test]
async fn rotation_adds_a_version_new_keys_use_it_old_ones_still_unwrap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.key");
    let kms = LocalKms::open(&path).unwrap();
    let old = kms.generate_data_key().await.unwrap();
    assert_eq!(kms.rotate_key().await.unwrap(), "local:v2");
    assert_eq!(kms.versions(), vec![1, 2]);
    let new = kms.generate_data_key().await.unwrap();
    assert_eq!(new.wrapped.key_id, "local:v2");
    assert_eq!(kms.decrypt_data_key(&old.wrapped).await.unwrap().expose_secret(), old.plaintext.expose_secret());

    let rewrapped = kms.rewrap(&old.wrapped).await.unwrap();
    assert_eq!(rewrapped.key_id, "local:v2");
    assert_ne!(rewrapped.ciphertext, old.wrapped.ciphertext);
    assert_eq!(kms.decrypt_data_key(&rewrapped).await.unwrap().expose_secret(), old.plaintext.expose_secret());

    // The rotation was persisted atomically: a restart sees both versions, mode kept.
    let reopened = LocalKms::open(&path).unwrap();
    assert_eq!(reopened.versions(), vec![1, 2]);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(reopened.decrypt_data_key(&rewrapped).await.unwrap().expose_secret(), old.plaintext.expose_secret());
    assert!(!path.with_file_name("kms.key.lock").exists(), "the rotation lock is released");
}

#[tokio::test]
async fn another_process_rotation_is_picked_up_when_a_newer_version_is_met() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.key");
    let a = LocalKms::open(&path).unwrap();
    let b = LocalKms::open(&path).unwrap();
    a.rotate_key().await.unwrap();
    let from_a = a.generate_data_key().await.unwrap();
    assert_eq!(from_a.wrapped.key_id, "local:v2");
    // b has not seen v2 yet: it re-reads the file when it meets it.
    assert_eq!(b.versions(), vec![1]);
    assert_eq!(b.decrypt_data_key(&from_a.wrapped).await.unwrap().expose_secret(), from_a.plaintext.expose_secret());
    assert_eq!(b.versions(), vec![1, 2]);
}

#[tokio::test]
async fn a_rotation_in_progress_elsewhere_is_refused_not_raced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.key");
    let kms = LocalKms::open(&path).unwrap();
    std::fs::write(dir.path().join("kms.key.lock"), b"").unwrap();
    let err = kms.rotate_key().await.unwrap_err();
    assert!(matches!(&err, KmsError::Config { detail } if detail.contains("in progress")), "{err:?}");
    assert_eq!(kms.versions(), vec![1]);
}

#[tokio::test]
async fn inline_keys_single_and_versioned() {
    let single = SecretString::from(b64(&[1u8; 32]));
    let kms = LocalKms::from_inline(&single).unwrap();
    assert_eq!(kms.versions(), vec![1]);
    let wrapped = kms.generate_data_key().await.unwrap();

    let versioned = SecretString::from(format!("1:{},2:{}", b64(&[1u8; 32]), b64(&[2u8; 32])));
    let kms2 = LocalKms::from_inline(&versioned).unwrap();
    assert_eq!(kms2.versions(), vec![1, 2]);
    // The same v1 key unwraps what the single-key KMS wrapped; new keys use v2.
    assert_eq!(
        kms2.decrypt_data_key(&wrapped.wrapped).await.unwrap().expose_secret(),
        wrapped.plaintext.expose_secret()
    );
    assert_eq!(kms2.generate_data_key().await.unwrap().wrapped.key_id, "local:v2");

    let err = kms.rotate_key().await.unwrap_err();
    assert!(matches!(&err, KmsError::Config { detail } if detail.contains("LOCAL_KMS_KEY")), "{err:?}");

    for bad in ["not base64!!", &b64(&[1u8; 16]), "1:abc,1:def", "0:AAAA"] {
        let err = LocalKms::from_inline(&SecretString::from(bad.to_owned())).unwrap_err().to_string();
        assert!(err.contains("LOCAL_KMS_KEY"), "{err}");
        assert!(!err.contains(bad), "the value never appears in the error: {err}");
    }
}

#[tokio::test]
async fn bad_wrapped_keys_are_typed_errors() {
    let kms = LocalKms::in_memory().unwrap();
    let good = kms.generate_data_key().await.unwrap().wrapped;

    let mut flipped = good.clone();
    flipped.ciphertext[30] ^= 1;
    assert!(matches!(kms.decrypt_data_key(&flipped).await, Err(KmsError::InvalidWrappedKey { .. })));

    let truncated = WrappedKey { key_id: good.key_id.clone(), ciphertext: good.ciphertext[..40].to_vec() };
    assert!(matches!(kms.decrypt_data_key(&truncated).await, Err(KmsError::InvalidWrappedKey { .. })));

    // Relabelling the version is caught: v1's bytes claiming v2 fail once v2 exists...
    let mut unknown = good.clone();
    unknown.ciphertext[1..5].copy_from_slice(&7u32.to_be_bytes());
    match kms.decrypt_data_key(&unknown).await {
        Err(KmsError::KeyNotFound { key }) => assert_eq!(key, "local:v7"),
        other => panic!("expected KeyNotFound, got {other:?}"),
    }
    kms.rotate_key().await.unwrap();
    let mut relabelled = good.clone();
    relabelled.ciphertext[1..5].copy_from_slice(&2u32.to_be_bytes());
    assert!(matches!(kms.decrypt_data_key(&relabelled).await, Err(KmsError::InvalidWrappedKey { .. })));

    // ...and another KMS's wrapped keys do not unwrap.
    let other = LocalKms::in_memory().unwrap();
    assert!(matches!(other.decrypt_data_key(&good).await, Err(KmsError::InvalidWrappedKey { .. })));
    assert!(kms.health().await.is_ok());
}

#[tokio::test]
async fn debug_shows_versions_and_source_never_keys() {
    let secret = b64(&[0x5au8; 32]);
    let kms = LocalKms::from_inline(&SecretString::from(secret.clone())).unwrap();
    let text = format!("{kms:?}");
    assert!(text.contains("LOCAL_KMS_KEY") && text.contains("versions"), "{text}");
    assert!(!text.contains(&secret) && !text.contains("90, 90"), "{text}");
}
