//! KmsConfig::from_lookup: the right provider, and typed errors naming the variable.

use std::collections::HashMap;

use dnp_vault::{KmsConfig, config};

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| map.get(name).cloned()
}

#[cfg(feature = "local")]
#[test]
fn local_is_the_default_with_a_key_file() {
    let config = KmsConfig::from_lookup(lookup(&[])).unwrap();
    match &config {
        KmsConfig::Local(dnp_vault::LocalKeySource::File(path)) => {
            assert_eq!(path, std::path::Path::new(config::DEFAULT_LOCAL_KEY_FILE));
        }
        other => panic!("expected the local key file, got {other:?}"),
    }
    let config = KmsConfig::from_lookup(lookup(&[("LOCAL_KMS_KEY_FILE", "/var/lib/dnp/kms.key")])).unwrap();
    assert_eq!(config.to_string(), "local key file /var/lib/dnp/kms.key");
}

#[cfg(feature = "local")]
#[test]
fn local_inline_key_is_validated_and_redacted() {
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    let config = KmsConfig::from_lookup(lookup(&[("KMS_PROVIDER", "local"), ("LOCAL_KMS_KEY", key)])).unwrap();
    assert!(!format!("{config:?} {config}").contains(key));
    config.build().unwrap();

    let err = KmsConfig::from_lookup(lookup(&[("LOCAL_KMS_KEY", "dG9vIHNob3J0")])).unwrap_err();
    assert_eq!(err.variable(), "LOCAL_KMS_KEY");
    assert!(!err.to_string().contains("dG9vIHNob3J0"));
}

#[test]
fn unknown_provider_names_kms_provider() {
    let err = KmsConfig::from_lookup(lookup(&[("KMS_PROVIDER", "aws")])).unwrap_err();
    assert_eq!(err.variable(), "KMS_PROVIDER");
    assert!(err.to_string().contains("local, vault"), "{err}");
}

#[cfg(feature = "vault")]
#[test]
fn vault_needs_an_address_and_credentials() {
    let err = KmsConfig::from_lookup(lookup(&[("KMS_PROVIDER", "vault")])).unwrap_err();
    assert_eq!(err.variable(), "VAULT_ADDR");
    let err = KmsConfig::from_lookup(lookup(&[("KMS_PROVIDER", "vault"), ("VAULT_ADDR", "http://127.0.0.1:8200")]))
        .unwrap_err();
    assert_eq!(err.variable(), "VAULT_TOKEN");
    let err = KmsConfig::from_lookup(lookup(&[
        ("KMS_PROVIDER", "vault"),
        ("VAULT_ADDR", "http://127.0.0.1:8200"),
        ("VAULT_ROLE_ID", "role"),
    ]))
    .unwrap_err();
    assert_eq!(err.variable(), "VAULT_SECRET_ID");
    let err = KmsConfig::from_lookup(lookup(&[
        ("KMS_PROVIDER", "vault"),
        ("VAULT_ADDR", "vault.internal:8200"),
        ("VAULT_TOKEN", "t"),
    ]))
    .unwrap_err();
    assert_eq!(err.variable(), "VAULT_ADDR");
    let err = KmsConfig::from_lookup(lookup(&[
        ("KMS_PROVIDER", "vault"),
        ("VAULT_ADDR", "http://127.0.0.1:8200"),
        ("VAULT_TOKEN", "t"),
        ("VAULT_TRANSIT_KEY", "../sys/seal"),
    ]))
    .unwrap_err();
    assert_eq!(err.variable(), "VAULT_TRANSIT_KEY");
    let err = KmsConfig::from_lookup(lookup(&[
        ("KMS_PROVIDER", "vault"),
        ("VAULT_ADDR", "http://127.0.0.1:8200"),
        ("VAULT_TOKEN", "t"),
        ("VAULT_TRANSIT_CREATE_KEY", "maybe"),
    ]))
    .unwrap_err();
    assert_eq!(err.variable(), "VAULT_TRANSIT_CREATE_KEY");
}

#[cfg(feature = "vault")]
#[test]
fn vault_approle_config_with_defaults_and_overrides() {
    let config = KmsConfig::from_lookup(lookup(&[
        ("KMS_PROVIDER", "vault"),
        ("VAULT_ADDR", "https://vault.internal:8200/"),
        ("VAULT_ROLE_ID", "role-123"),
        ("VAULT_SECRET_ID", "secret-id-value"),
        ("VAULT_TRANSIT_MOUNT", "kms/transit"),
        ("VAULT_TRANSIT_KEY", "dnp-tokens"),
    ]))
    .unwrap();
    let KmsConfig::Vault(vault) = &config else { panic!("expected vault") };
    assert_eq!(vault.addr, "https://vault.internal:8200");
    assert_eq!(vault.mount, "kms/transit");
    assert_eq!(vault.key, "dnp-tokens");
    assert!(vault.create_key_if_missing);
    assert!(
        matches!(&vault.auth, dnp_vault::VaultAuth::AppRole { role_id, mount, .. } if role_id == "role-123" && mount == "approle")
    );
    let text = format!("{config:?}");
    assert!(!text.contains("secret-id-value"), "{text}");

    let token = KmsConfig::from_lookup(lookup(&[
        ("KMS_PROVIDER", "vault"),
        ("VAULT_ADDR", "http://127.0.0.1:8200"),
        ("VAULT_TOKEN", "hvs.very-secret-token"),
    ]))
    .unwrap();
    let KmsConfig::Vault(vault) = &token else { panic!("expected vault") };
    assert_eq!(vault.mount, "transit");
    assert_eq!(vault.key, "dnp");
    assert!(!format!("{token:?}").contains("very-secret-token"));
}

#[cfg(not(feature = "vault"))]
#[test]
fn vault_without_the_feature_says_which_feature() {
    let err = KmsConfig::from_lookup(lookup(&[("KMS_PROVIDER", "vault")])).unwrap_err();
    assert_eq!(err.variable(), "KMS_PROVIDER");
    assert!(err.to_string().contains("`vault` feature"));
}

#[test]
fn data_key_cache_size() {
    assert_eq!(config::data_key_cache_size_from_lookup(lookup(&[])).unwrap(), 10_000);
    assert_eq!(config::data_key_cache_size_from_lookup(lookup(&[("DATA_KEY_CACHE_SIZE", "50")])).unwrap(), 50);
    assert_eq!(config::data_key_cache_size_from_lookup(lookup(&[("DATA_KEY_CACHE_SIZE", "0")])).unwrap(), 0);
    let err = config::data_key_cache_size_from_lookup(lookup(&[("DATA_KEY_CACHE_SIZE", "-1")])).unwrap_err();
    assert_eq!(err.variable(), "DATA_KEY_CACHE_SIZE");
}
