//! VaultTransitKms against a real OpenBao/Vault (`DNP_TEST_VAULT_ADDR`,
//! `DNP_TEST_VAULT_TOKEN`, transit enabled at `transit/`): token and AppRole auth, token
//! renewal, rotation and rewrap, typed errors when Vault is down, sealed or refuses us.
//! The sealed test starts its own throwaway `bao server -dev` (the `bao` binary must be on
//! PATH, as scripts/test makes sure).
#![cfg(feature = "vault")]

use std::time::Duration;

use dnp_core::{KmsError, KmsProvider, WrappedKey};
use dnp_vault::{VaultAuth, VaultConfig, VaultTransitKms};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use uuid::Uuid;

fn vault_env() -> (String, SecretString) {
    let addr = std::env::var("DNP_TEST_VAULT_ADDR")
        .expect("DNP_TEST_VAULT_ADDR is not set: run scripts/test (it starts OpenBao and sets it)");
    let token = std::env::var("DNP_TEST_VAULT_TOKEN")
        .expect("DNP_TEST_VAULT_TOKEN is not set: run scripts/test (it starts OpenBao and sets it)");
    (addr.trim_end_matches('/').to_owned(), SecretString::from(token))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// Raw admin calls, for setting up policies and AppRoles.
async fn admin(addr: &str, token: &SecretString, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let mut request =
        client.request(method, format!("{addr}/v1/{path}")).header("X-Vault-Token", token.expose_secret());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin call");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "admin {path}: HTTP {status}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn token_kms(addr: &str, token: &SecretString, key: &str) -> VaultTransitKms {
    let config = VaultConfig::new(addr, VaultAuth::Token(token.clone()), key).unwrap();
    VaultTransitKms::new(config).unwrap()
}

#[tokio::test]
async fn token_auth_generate_decrypt_rotate_rewrap() {
    let (addr, token) = vault_env();
    let key = unique("dnp-test");
    let kms = token_kms(&addr, &token, &key);
    kms.health().await.unwrap();

    let first = kms.generate_data_key().await.unwrap(); // creates the key
    assert_eq!(first.wrapped.key_id, format!("vault:transit/{key}:v1"));
    assert!(first.wrapped.ciphertext.starts_with(b"vault:v1:"));
    let again = kms.decrypt_data_key(&first.wrapped).await.unwrap();
    assert_eq!(again.expose_secret(), first.plaintext.expose_secret());
    let second = kms.generate_data_key().await.unwrap();
    assert_ne!(second.plaintext.expose_secret(), first.plaintext.expose_secret(), "fresh keys");

    assert_eq!(kms.rotate_key().await.unwrap(), format!("vault:transit/{key}:v2"));
    assert_eq!(kms.generate_data_key().await.unwrap().wrapped.key_id, format!("vault:transit/{key}:v2"));
    let rewrapped = kms.rewrap(&first.wrapped).await.unwrap();
    assert_eq!(rewrapped.key_id, format!("vault:transit/{key}:v2"));
    assert!(rewrapped.ciphertext.starts_with(b"vault:v2:"));
    assert_eq!(kms.decrypt_data_key(&rewrapped).await.unwrap().expose_secret(), first.plaintext.expose_secret());
    assert_eq!(kms.decrypt_data_key(&first.wrapped).await.unwrap().expose_secret(), first.plaintext.expose_secret());

    // Bad wrapped keys are typed errors.
    let mut tampered = first.wrapped.clone();
    let last = tampered.ciphertext.len() - 3;
    tampered.ciphertext[last] = if tampered.ciphertext[last] == b'A' { b'B' } else { b'A' };
    assert!(matches!(kms.decrypt_data_key(&tampered).await, Err(KmsError::InvalidWrappedKey { .. })));
    let foreign = WrappedKey { key_id: "local:v1".into(), ciphertext: vec![1; 65] };
    assert!(matches!(kms.decrypt_data_key(&foreign).await, Err(KmsError::InvalidWrappedKey { .. })));
    let too_new = WrappedKey {
        key_id: "x".into(),
        ciphertext: b"vault:v9:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==".to_vec(),
    };
    assert!(matches!(kms.decrypt_data_key(&too_new).await, Err(KmsError::InvalidWrappedKey { .. })));
}

#[tokio::test]
async fn a_missing_key_is_not_created_when_creation_is_off() {
    let (addr, token) = vault_env();
    let key = unique("dnp-absent");
    let config =
        VaultConfig::new(&addr, VaultAuth::Token(token.clone()), &key).unwrap().with_create_key_if_missing(false);
    let kms = VaultTransitKms::new(config).unwrap();
    match kms.generate_data_key().await {
        Err(KmsError::KeyNotFound { key: k }) => assert_eq!(k, format!("transit/{key}")),
        other => panic!("expected KeyNotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_token_is_permission_denied_and_never_echoed() {
    let (addr, _) = vault_env();
    let bad = SecretString::from("s.not-a-real-token-123456".to_owned());
    let kms = token_kms(&addr, &bad, &unique("dnp-test"));
    let err = kms.generate_data_key().await.unwrap_err();
    assert!(matches!(err, KmsError::PermissionDenied { .. }), "{err:?}");
    assert!(!format!("{err} {err:?} {kms:?}").contains("not-a-real-token"));
}

/// Forwards every connection accepted on `listener` to `target`.
async fn forward(listener: tokio::net::TcpListener, target: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { return };
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test]
async fn vault_down_is_unavailable_then_the_same_kms_recovers_when_it_is_up() {
    let (addr, token) = vault_env();
    let target = addr.trim_start_matches("http://").to_owned();
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = VaultConfig::new(format!("http://127.0.0.1:{port}"), VaultAuth::Token(token), unique("dnp-updown"))
        .unwrap()
        .with_timeouts(Duration::from_secs(2), Duration::from_secs(5));
    let kms = VaultTransitKms::new(config).unwrap();

    for err in [kms.generate_data_key().await.unwrap_err(), kms.health().await.unwrap_err()] {
        assert!(matches!(&err, KmsError::Unavailable { detail } if detail.contains("connect")), "{err:?}");
        assert_eq!(err.retry(), dnp_core::Retry::Backoff, "retryable");
    }
    let wrapped = WrappedKey { key_id: "x".into(), ciphertext: b"vault:v1:AAAA".to_vec() };
    assert!(matches!(kms.decrypt_data_key(&wrapped).await, Err(KmsError::Unavailable { .. })));

    // Vault comes up on that address: the same instance works.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let proxy = tokio::spawn(forward(listener, target));
    kms.health().await.unwrap();
    let key = kms.generate_data_key().await.unwrap();
    assert_eq!(kms.decrypt_data_key(&key.wrapped).await.unwrap().expose_secret(), key.plaintext.expose_secret());
    proxy.abort();
}

struct AppRole {
    mount: String,
    role: String,
    key: String,
}

/// Enables AppRole at a unique mount with a role limited to one transit key.
async fn approle(addr: &str, token: &SecretString, token_ttl: &str, token_max_ttl: &str, secret_uses: u32) -> AppRole {
    use reqwest::Method;
    let id = Uuid::new_v4().simple().to_string();
    let (mount, role, key, policy) =
        (format!("approle-{id}"), format!("dnp-{id}"), format!("dnp-key-{id}"), format!("dnp-{id}"));
    admin(addr, token, Method::POST, &format!("sys/auth/{mount}"), Some(json!({ "type": "approle" }))).await;
    let rules = format!(
        r#"path "transit/keys/{key}" {{ capabilities = ["read", "create", "update"] }}
path "transit/keys/{key}/rotate" {{ capabilities = ["update"] }}
path "transit/datakey/wrapped/{key}" {{ capabilities = ["update"] }}
path "transit/decrypt/{key}" {{ capabilities = ["update"] }}
path "transit/rewrap/{key}" {{ capabilities = ["update"] }}"#
    );
    admin(addr, token, Method::PUT, &format!("sys/policies/acl/{policy}"), Some(json!({ "policy": rules }))).await;
    admin(
        addr,
        token,
        Method::POST,
        &format!("auth/{mount}/role/{role}"),
        Some(json!({
            "token_policies": [policy],
            "token_ttl": token_ttl,
            "token_max_ttl": token_max_ttl,
            "secret_id_num_uses": secret_uses,
        })),
    )
    .await;
    AppRole { mount, role, key }
}

async fn approle_kms(addr: &str, token: &SecretString, r: &AppRole) -> (VaultTransitKms, String) {
    use reqwest::Method;
    let role_id = admin(addr, token, Method::GET, &format!("auth/{}/role/{}/role-id", r.mount, r.role), None).await;
    let secret = admin(addr, token, Method::POST, &format!("auth/{}/role/{}/secret-id", r.mount, r.role), None).await;
    let secret_id = secret["data"]["secret_id"].as_str().unwrap().to_owned();
    let auth = VaultAuth::AppRole {
        role_id: role_id["data"]["role_id"].as_str().unwrap().to_owned(),
        secret_id: SecretString::from(secret_id.clone()),
        mount: r.mount.clone(),
    };
    (VaultTransitKms::new(VaultConfig::new(addr, auth, &r.key).unwrap()).unwrap(), secret_id)
}

#[tokio::test]
async fn approle_logs_in_and_renews_its_token_before_the_lease_ends() {
    let (addr, token) = vault_env();
    // A 6 s token, renewable for two minutes, from a secret id good for ONE login: every
    // call after the first lease must ride on renewals.
    let role = approle(&addr, &token, "6s", "120s", 1).await;
    let (kms, secret_id) = approle_kms(&addr, &token, &role).await;
    let key = kms.generate_data_key().await.unwrap();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(14) {
        let back = kms.decrypt_data_key(&key.wrapped).await.unwrap();
        assert_eq!(back.expose_secret(), key.plaintext.expose_secret());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(kms.rotate_key().await.unwrap().ends_with(":v2"));
    assert!(kms.rewrap(&key.wrapped).await.unwrap().key_id.ends_with(":v2"));
    assert!(!format!("{kms:?}").contains(&secret_id), "{kms:?}");
}

#[tokio::test]
async fn approle_logs_in_again_when_the_token_reaches_its_max_ttl() {
    let (addr, token) = vault_env();
    let role = approle(&addr, &token, "2s", "3s", 0).await;
    let (kms, _) = approle_kms(&addr, &token, &role).await;
    let key = kms.generate_data_key().await.unwrap();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(7) {
        kms.decrypt_data_key(&key.wrapped).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_wrong_secret_id_is_permission_denied() {
    let (addr, token) = vault_env();
    let role = approle(&addr, &token, "60s", "120s", 0).await;
    let role_id =
        admin(&addr, &token, reqwest::Method::GET, &format!("auth/{}/role/{}/role-id", role.mount, role.role), None)
            .await;
    let auth = VaultAuth::AppRole {
        role_id: role_id["data"]["role_id"].as_str().unwrap().to_owned(),
        secret_id: SecretString::from("00000000-0000-0000-0000-000000000000".to_owned()),
        mount: role.mount.clone(),
    };
    let kms = VaultTransitKms::new(VaultConfig::new(&addr, auth, &role.key).unwrap()).unwrap();
    let err = kms.generate_data_key().await.unwrap_err();
    assert!(matches!(err, KmsError::PermissionDenied { .. }), "{err:?}");
    assert!(matches!(kms.health().await, Err(KmsError::PermissionDenied { .. })));
}

/// A throwaway `bao server -dev`, killed on drop.
struct DevServer {
    child: tokio::process::Child,
    addr: String,
    token: SecretString,
}

impl DevServer {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let token = format!("root-{}", Uuid::new_v4().simple());
        let bin = std::env::var("DNP_TEST_BAO_BIN").unwrap_or_else(|_| "bao".to_owned());
        let child = tokio::process::Command::new(&bin)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{bin} server -dev` ({e}): run scripts/test, which installs OpenBao")
            });
        let addr = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = client.get(format!("{addr}/v1/sys/health")).send().await
                && r.status().is_success()
            {
                return Self { child, addr, token: SecretString::from(token) };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("bao dev server did not come up on {addr}");
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn a_sealed_vault_is_a_typed_sealed_error() {
    let server = DevServer::start().await;
    admin(&server.addr, &server.token, reqwest::Method::POST, "sys/mounts/transit", Some(json!({ "type": "transit" })))
        .await;
    let kms = token_kms(&server.addr, &server.token, "dnp");
    let key = kms.generate_data_key().await.unwrap();
    kms.health().await.unwrap();

    admin(&server.addr, &server.token, reqwest::Method::PUT, "sys/seal", None).await;
    assert_eq!(kms.health().await.unwrap_err(), KmsError::Sealed);
    let err = kms.decrypt_data_key(&key.wrapped).await.unwrap_err();
    assert_eq!(err, KmsError::Sealed);
    assert_eq!(err.retry(), dnp_core::Retry::Backoff);
    assert_eq!(kms.generate_data_key().await.unwrap_err(), KmsError::Sealed);
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_store_over_vault_transit_rotates_and_rewraps() {
    use dnp_core::{TokenSet, TokenStore, UserId};
    use std::sync::Arc;
    let (addr, token) = vault_env();
    let kms: Arc<dyn KmsProvider> = Arc::new(token_kms(&addr, &token, &unique("dnp-store")));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("dnp.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let store = dnp_vault::SqlTokenStore::sqlite(pool.clone(), kms.clone());
    store.migrate().await.unwrap();
    let mut saved = Vec::new();
    for i in 0..4 {
        let set = TokenSet {
            access_token: SecretString::from(format!("vault-access-{i}")),
            refresh_token: Some(SecretString::from(format!("vault-refresh-{i}"))),
            expires_at: None,
            scopes: vec![],
        };
        saved.push(store.save(UserId::new_random(), &"spotify".parse().unwrap(), &set).await.unwrap().id);
    }
    let report = store.rotate_all(3).await.unwrap();
    assert!(report.key_id.ends_with(":v2"), "{report:?}");
    assert_eq!(report.rewrapped, 4);
    let fresh = dnp_vault::SqlTokenStore::sqlite(pool, kms);
    for (i, id) in saved.iter().enumerate() {
        let back = fresh.tokens(*id).await.unwrap();
        assert_eq!(back.access_token.expose_secret(), format!("vault-access-{i}"));
    }
    assert_eq!(fresh.cache().stats().misses, 4, "each read went to Vault once");
}
