//! The data-key cache reports through the `metrics` facade, and no secret-holding type
//! prints a secret in its `Debug` output.

#[cfg(feature = "local")]
mod metrics_facade {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use dnp_core::KmsProvider;
    use dnp_vault::DataKeyCache;
    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

    #[derive(Default)]
    struct CountingRecorder {
        counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
        described: Mutex<Vec<String>>,
    }

    impl CountingRecorder {
        fn get(&self, name: &str) -> u64 {
            self.counters.lock().unwrap().get(name).map_or(0, |c| c.load(Ordering::Relaxed))
        }
    }

    impl Recorder for CountingRecorder {
        fn describe_counter(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
            self.described.lock().unwrap().push(key.as_str().to_owned());
        }
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let counter = self.counters.lock().unwrap().entry(key.name().to_owned()).or_default().clone();
            Counter::from_arc(counter)
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn cache_hits_and_misses_are_counted_through_the_metrics_facade() {
        let recorder = CountingRecorder::default();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let kms = dnp_vault::LocalKms::in_memory().unwrap();
        let cache = DataKeyCache::new(2);
        let keys: Vec<_> = [0, 1, 2].iter().map(|_| uuid::Uuid::new_v4()).collect();
        let mut wrapped = Vec::new();
        for _ in &keys {
            wrapped.push(kms.generate_data_key().await.unwrap().wrapped);
        }
        cache.get_or_unwrap(keys[0], &wrapped[0], &kms).await.unwrap(); // miss
        cache.get_or_unwrap(keys[0], &wrapped[0], &kms).await.unwrap(); // hit
        cache.get_or_unwrap(keys[1], &wrapped[1], &kms).await.unwrap(); // miss
        cache.get_or_unwrap(keys[2], &wrapped[2], &kms).await.unwrap(); // miss, evicts keys[0]
        cache.get_or_unwrap(keys[0], &wrapped[0], &kms).await.unwrap(); // miss again
        cache.get_or_unwrap(keys[2], &wrapped[2], &kms).await.unwrap(); // hit
        assert_eq!(recorder.get("data_key_cache_hits"), 2);
        assert_eq!(recorder.get("data_key_cache_misses"), 4);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.len, stats.capacity), (2, 4, 2, 2));
        // The counters are described once, when a cache is made under this recorder.
        let _another = DataKeyCache::new(1);
        assert!(recorder.described.lock().unwrap().contains(&"data_key_cache_hits".to_owned()));

        // A KMS error is not cached and counts a miss.
        let bad = dnp_core::WrappedKey { key_id: "local:v1".into(), ciphertext: vec![0; 3] };
        assert!(cache.get_or_unwrap(uuid::Uuid::new_v4(), &bad, &kms).await.is_err());
        assert_eq!(recorder.get("data_key_cache_misses"), 5);
        assert_eq!(cache.stats().len, 2);
    }
}

#[cfg(any(feature = "vault", feature = "local"))]
use dnp_core::KmsProvider;
use dnp_vault::DataKeyCache;
use secrecy::{SecretBox, SecretString};

const TOKEN: &str = "hvs.SECRET-TOKEN-VALUE-0123456789";
const SECRET_ID: &str = "SECRET-ID-VALUE-9876543210";
const KEY_B64: &str = "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo="; // 32 × 0x5a

fn assert_clean(what: &str, text: &str) {
    for secret in [TOKEN, SECRET_ID, KEY_B64, "90, 90, 90", "5a5a5a", "access-SECRET", "refresh-SECRET"] {
        assert!(!text.contains(secret), "{what} Debug leaks {secret:?}: {text}");
    }
}

#[tokio::test]
async fn debug_output_of_every_secret_holding_type_has_no_secret() {
    let key = SecretBox::new(Box::new([0x5au8; 32]));
    assert_clean("DataKeyCipher", &format!("{:?}", dnp_vault::DataKeyCipher::new(&key)));
    assert_clean("DataKeyCache", &format!("{:?}", DataKeyCache::new(3)));
    let tokens = dnp_core::TokenSet {
        access_token: SecretString::from("access-SECRET".to_owned()),
        refresh_token: Some(SecretString::from("refresh-SECRET".to_owned())),
        expires_at: None,
        scopes: vec![],
    };
    assert_clean("TokenSet", &format!("{tokens:?}"));

    #[cfg(feature = "local")]
    {
        let inline = SecretString::from(KEY_B64.to_owned());
        let kms = dnp_vault::LocalKms::from_inline(&inline).unwrap();
        assert_clean("LocalKms", &format!("{kms:?}"));
        let data_key = kms.generate_data_key().await.unwrap();
        assert_clean("DataKey", &format!("{data_key:?}"));
        assert_eq!(secrecy::ExposeSecret::expose_secret(&data_key.plaintext).len(), 32);
        let source = dnp_vault::LocalKeySource::Inline(inline);
        assert_clean("LocalKeySource", &format!("{source:?}"));
        assert_clean("KmsConfig", &format!("{:?}", dnp_vault::KmsConfig::Local(source.clone())));
        assert_clean("KmsConfig Display", &dnp_vault::KmsConfig::Local(source).to_string());

        #[cfg(feature = "sqlite")]
        {
            let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
            let store = dnp_vault::SqlTokenStore::sqlite(pool, std::sync::Arc::new(kms));
            assert_clean("SqlTokenStore", &format!("{store:?}"));
        }
    }

    #[cfg(feature = "vault")]
    {
        use dnp_vault::{VaultAuth, VaultConfig, VaultTransitKms};
        for auth in [
            VaultAuth::Token(SecretString::from(TOKEN.to_owned())),
            VaultAuth::AppRole {
                role_id: "role".into(),
                secret_id: SecretString::from(SECRET_ID.to_owned()),
                mount: "approle".into(),
            },
        ] {
            assert_clean("VaultAuth", &format!("{auth:?}"));
            let config = VaultConfig::new("http://127.0.0.1:1", auth, "dnp").unwrap();
            assert_clean("VaultConfig", &format!("{config:?}"));
            assert_clean("KmsConfig", &format!("{:?}", dnp_vault::KmsConfig::Vault(config.clone())));
            let kms = VaultTransitKms::new(config).unwrap();
            assert_clean("VaultTransitKms", &format!("{kms:?}"));
            // Errors from a failed call carry no credential either.
            let err = kms.generate_data_key().await.unwrap_err();
            assert_clean("KmsError", &format!("{err:?} {err}"));
        }
    }
}
