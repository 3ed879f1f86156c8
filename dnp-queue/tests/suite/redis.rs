//! `RedisJobQueue`: a unique key prefix per test on `DNP_TEST_REDIS_URL`, every key under
//! it deleted afterwards (also when the test fails).
#![cfg(feature = "redis")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use dnp_core::JobQueue;
use dnp_queue::{RedisJobQueue, RedisQueueOptions};

fn url() -> String {
    std::env::var("DNP_TEST_REDIS_URL")
        .unwrap_or_else(|_| panic!("DNP_TEST_REDIS_URL is unset: run scripts/test (it starts Redis and sets it)"))
}

/// Deletes every key under the prefix when dropped.
pub(crate) struct Prefix(pub String);

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(url()) else { return };
        let Ok(mut conn) = client.get_connection() else { return };
        let pattern = format!("{}*", self.0);
        let mut cursor = 0u64;
        loop {
            let step: redis::RedisResult<(u64, Vec<String>)> =
                redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).query(&mut conn);
            let Ok((next, keys)) = step else { return };
            if !keys.is_empty() {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

pub(crate) async fn fresh_redis(options: RedisQueueOptions) -> (RedisJobQueue, Prefix) {
    let prefix = format!("dnp:test:{}:", uuid::Uuid::new_v4().simple());
    let q = RedisJobQueue::connect(&url(), options.with_prefix(&prefix).with_backoff(crate::checks::test_backoff()))
        .await
        .expect("connect to DNP_TEST_REDIS_URL");
    (q, Prefix(prefix))
}

async fn fresh() -> (Arc<dyn JobQueue>, Prefix) {
    let (q, p) = fresh_redis(RedisQueueOptions::default()).await;
    (Arc::new(q), p)
}

contract_tests!(fresh);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_lost_on_last_attempt_is_dead() {
    let (q, _guard) = fresh().await;
    crate::checks::lease_lost_on_last_attempt_is_dead(q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cleanup_deletes_only_old_finished_jobs_by_scan() {
    let (q, _guard) = fresh_redis(RedisQueueOptions::default().with_cleanup_batch(10)).await;
    let redis_q = q.clone();
    crate::checks::cleanup_deletes_only_old_finished_jobs(Arc::new(q), move |cutoff| {
        let redis_q = redis_q.clone();
        async move { redis_q.cleanup(cutoff).await }
    })
    .await;
}

/// With 10,000 jobs queued, listing one user's jobs reads that user's sorted set and the
/// hashes of the listed jobs, and no other key. Checked on the server: after the keys have
/// been idle for 2 s, `OBJECT IDLETIME` (which does not touch) is 0 exactly for the keys the
/// listing read. A listing that scanned, or read any other index, would reset theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_jobs_listing_reads_only_the_owner_index() {
    let (q, prefix) = fresh_redis(RedisQueueOptions::default()).await;
    let (owner, expected) = crate::checks::ten_thousand_jobs_one_users_listing(Arc::new(q.clone())).await;
    let mut conn = redis::Client::open(url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let policy: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy").query_async(&mut conn).await.unwrap();
    assert!(!policy.get(1).is_some_and(|p| p.contains("lfu")), "OBJECT IDLETIME needs an LRU policy: {policy:?}");

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let listed = q.list_by_owner(owner, 20, None).await.unwrap();
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), expected);

    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", prefix.0))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert!(keys.len() > 10_000, "{} keys", keys.len());
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("OBJECT").arg("IDLETIME").arg(k);
    }
    let idle: Vec<u64> = pipe.query_async(&mut conn).await.unwrap();
    let read: HashSet<String> = keys.iter().zip(&idle).filter(|(_, i)| **i == 0).map(|(k, _)| k.clone()).collect();
    let mut expected_read: HashSet<String> = expected.iter().map(|id| q.job_key(*id)).collect();
    expected_read.insert(q.owner_key(owner));
    let extra: Vec<&String> = read.difference(&expected_read).collect();
    let missing: Vec<&String> = expected_read.difference(&read).collect();
    assert!(extra.is_empty(), "the listing read keys besides the owner's index and the listed jobs: {extra:?}");
    assert!(missing.is_empty(), "keys the listing should have read look idle: {missing:?}");
}

#[tokio::test]
async fn an_unreachable_redis_is_a_backend_error_without_the_password() {
    let err = RedisJobQueue::connect("redis://:hunter2@127.0.0.1:1/", RedisQueueOptions::default()).await.unwrap_err();
    assert!(matches!(err, dnp_core::StoreError::Backend(_)), "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}
