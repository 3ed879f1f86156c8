//! The shared job-queue suite, run against every backend: `MemoryJobQueue`, SQLite,
//! PostgreSQL (`DNP_TEST_POSTGRES_URL`) and Redis (`DNP_TEST_REDIS_URL`). Run it with
//! `scripts/test -p dnp-queue`, which starts the services and sets the variables.

/// One `#[tokio::test]` per shared check, for the backend whose fixture is `$fresh`
/// (an async fn returning `(Arc<dyn JobQueue>, guard)`).
macro_rules! contract_tests {
    ($fresh:path) => {
        contract_tests!(@each $fresh;
            enqueue_and_get,
            idempotency_key_yields_the_same_job,
            priorities_then_run_at_order,
            run_at_is_respected,
            retry_with_backoff_then_dead,
            cancel_queued_and_running,
            stale_lease_is_lost,
            heartbeat_keeps_the_lease,
            progress_is_visible_while_running,
            list_by_owner_order_and_pagination,
            depth_per_kind,
            worker_killed_mid_job_is_released_and_completes_once,
            enqueue_many_keeps_idempotency_keys,
            complete_and_reserve_moves_to_the_next_job,
            complete_and_reserve_with_a_stale_lease_completes_nothing,
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn eight_workers_race_with_complete_and_reserve() {
            let (q, _guard) = $fresh().await;
            crate::checks::workers_race_with_complete_and_reserve(q, 8, 300).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn two_workers_race_for_one_job() {
            let (q, _guard) = $fresh().await;
            crate::checks::workers_race_for_one_job(q, 2).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn eight_workers_race_for_one_job() {
            let (q, _guard) = $fresh().await;
            crate::checks::workers_race_for_one_job(q, 8).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn eight_workers_race_for_many_jobs() {
            let (q, _guard) = $fresh().await;
            crate::checks::workers_race_for_many_jobs(q, 8, 300).await;
        }
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let (q, _guard) = $fresh().await;
                crate::checks::$check(q).await;
            }
        )*
    };
}

mod checks;
mod memory;
mod no_keys_command;
mod postgres;
mod redis;
mod sqlite;

#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_backend_is_built() {
    panic!("the PostgreSQL tests need --features postgres: run scripts/test (it uses --all-features)");
}

#[cfg(not(feature = "redis"))]
#[test]
fn redis_backend_is_built() {
    panic!("the Redis tests need --features redis: run scripts/test (it uses --all-features)");
}
