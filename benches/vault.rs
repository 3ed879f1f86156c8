//! The vault's hot path: encrypting and decrypting one connection's token set.
//!
//! cargo bench -p dnp-benches --bench vault
//!
//! - `token_set_cached_dek`: what a token read/refresh costs once the connection's data key
//!   is in the `DataKeyCache`: a cache lookup, then sealing the access and refresh tokens
//!   (fresh nonces) and opening both again. Target: under 10 µs.
//! - `token_set_cache_miss_local_kms`: the same after a cache miss: `LocalKms` unwraps the
//!   data key (AES-256-GCM) and the AES key schedule is expanded again.
//! - `new_data_key_local_kms`: a new connection's data key (random key, wrapped).
//!
//! Figures are recorded in docs/performance.md (## Vault).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dnp_core::{ConnectionId, KmsProvider, ProviderId, UserId};
use dnp_vault::envelope::{Aad, Field};
use dnp_vault::{DataKeyCache, LocalKms};
use secrecy::ExposeSecret;

/// Runs a future that never waits (LocalKms does no I/O), without an async runtime.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

// Realistic sizes: Spotify access tokens are ~300 characters, refresh tokens ~130.
fn token(prefix: &str, len: usize) -> String {
    let mut t = String::from(prefix);
    while t.len() < len {
        t.push_str("x9Qa");
    }
    t.truncate(len);
    t
}

fn vault(c: &mut Criterion) {
    let kms = LocalKms::in_memory().expect("in-memory LocalKms");
    let data_key = ready(kms.generate_data_key()).expect("data key");
    let data_key_id = ConnectionId::new_random().0;
    let provider: ProviderId = "spotify".parse().expect("provider id");
    let (user, connection) = (UserId::new_random(), ConnectionId::new_random());
    let access_aad = Aad { user, connection, provider: &provider, field: Field::AccessToken };
    let refresh_aad = Aad { field: Field::RefreshToken, ..access_aad };
    let access = token("BQD", 300);
    let refresh = token("AQA", 131);

    let cache = DataKeyCache::new(DataKeyCache::DEFAULT_CAPACITY);
    cache.insert(data_key_id, std::sync::Arc::new(dnp_vault::DataKeyCipher::new(&data_key.plaintext)));
    let no_cache = DataKeyCache::new(0);

    let round_trip = |cache: &DataKeyCache| {
        let cipher = ready(cache.get_or_unwrap(data_key_id, &data_key.wrapped, &kms)).expect("unwrap");
        let sealed_access = cipher.seal(&access_aad, access.as_bytes()).expect("seal");
        let sealed_refresh = cipher.seal(&refresh_aad, refresh.as_bytes()).expect("seal");
        let a = cipher.open(&access_aad, black_box(&sealed_access)).expect("open");
        let r = cipher.open(&refresh_aad, black_box(&sealed_refresh)).expect("open");
        a.len() + r.len()
    };
    assert_eq!(round_trip(&cache), access.len() + refresh.len());

    let mut group = c.benchmark_group("vault");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.bench_function("token_set_cached_dek", |b| b.iter(|| black_box(round_trip(black_box(&cache)))));
    group.bench_function("token_set_cache_miss_local_kms", |b| b.iter(|| black_box(round_trip(black_box(&no_cache)))));
    group.bench_function("new_data_key_local_kms", |b| {
        b.iter(|| {
            let key = ready(kms.generate_data_key()).expect("data key");
            black_box(key.plaintext.expose_secret()[0])
        })
    });
    group.finish();
}

criterion_group!(benches, vault);
criterion_main!(benches);
