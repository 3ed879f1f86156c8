//! `SqlJobQueue` on PostgreSQL: a uniquely named database per test, created from
//! `DNP_TEST_POSTGRES_URL` and dropped afterwards (also when the test fails).
#![cfg(feature = "postgres")]

use std::str::FromStr;
use std::sync::Arc;

use dnp_core::JobQueue;
use dnp_queue::SqlJobQueue;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// A database that exists while the value lives.
pub(crate) struct TestDb {
    admin: PgConnectOptions,
    name: String,
    pub(crate) pool: sqlx::PgPool,
}

fn admin_options() -> PgConnectOptions {
    let url = std::env::var("DNP_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("DNP_TEST_POSTGRES_URL is unset: run scripts/test (it starts PostgreSQL and sets it)")
    });
    PgConnectOptions::from_str(&url).expect("DNP_TEST_POSTGRES_URL is not a PostgreSQL URL").disable_statement_logging()
}

impl TestDb {
    pub(crate) async fn create() -> Self {
        let admin = admin_options();
        let name = format!("dnp_queue_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin.connect().await.expect("connect to DNP_TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
        conn.close().await.ok();
        let pool = PgPoolOptions::new().max_connections(10).connect_with(admin.clone().database(&name)).await.unwrap();
        Self { admin, name, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside the test's runtime: do the async work on a thread of its own.
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let mut conn = admin.connect().await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = joined {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

mod enabled {
    use super::*;

    pub(crate) async fn fresh_sql() -> (SqlJobQueue, TestDb) {
        let db = TestDb::create().await;
        let q = SqlJobQueue::postgres(db.pool.clone()).with_backoff(crate::checks::test_backoff());
        q.migrate().await.unwrap();
        (q, db)
    }

    async fn fresh() -> (Arc<dyn JobQueue>, TestDb) {
        let (q, db) = fresh_sql().await;
        (Arc::new(q), db)
    }

    contract_tests!(fresh);

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lease_lost_on_last_attempt_is_dead() {
        let (q, _guard) = fresh().await;
        crate::checks::lease_lost_on_last_attempt_is_dead(q).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn ten_thousand_jobs_listing_reads_only_the_owner_index() {
        let (q, db) = fresh_sql().await;
        let (owner, _) = crate::checks::ten_thousand_jobs_one_users_listing(Arc::new(q.clone())).await;
        sqlx::query("ANALYZE dnp_jobs").execute(&db.pool).await.unwrap();
        let plan = q.explain_list_by_owner(owner, 20).await.unwrap();
        assert!(plan.contains("Index Scan Backward using dnp_jobs_owner_created"), "plan:\n{plan}");
        assert!(!plan.contains("Seq Scan"), "plan:\n{plan}");
        assert!(!plan.contains("Sort"), "the index gives the order: plan:\n{plan}");
        // And as executed: the index scan returns the 20 rows listed, nothing filtered away.
        let analyzed: Vec<String> = sqlx::query_scalar(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id FROM dnp_jobs WHERE owner = $1::uuid \
             AND created_us < $2 ORDER BY created_us DESC, id DESC LIMIT 20",
        )
        .bind(owner.to_string())
        .bind(i64::MAX)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let analyzed = analyzed.join("\n");
        assert!(analyzed.contains("actual rows=20"), "{analyzed}");
        assert!(!analyzed.contains("Rows Removed by Filter"), "{analyzed}");
    }

    /// Regression: `reserve` found expired leases through an index on `(status, kind)`,
    /// reading every running job on every call (990 running jobs: 1.3 ms instead of 0.2).
    /// It must search `dnp_jobs_leased` for expired leases and `dnp_jobs_ready` for queued jobs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reserve_reads_expired_leases_by_the_leased_index() {
        let (q, db) = fresh_sql().await;
        crate::checks::many_running_few_queued(Arc::new(q.clone())).await;
        sqlx::query("ANALYZE dnp_jobs").execute(&db.pool).await.unwrap();
        let plan = q.explain_reserve().await.unwrap();
        assert!(plan.contains("Index Scan using dnp_jobs_ready"), "plan:\n{plan}");
        assert!(plan.contains("Index Scan using dnp_jobs_leased"), "expired leases: plan:\n{plan}");
        assert!(!plan.contains("Seq Scan") && !plan.contains("Bitmap"), "plan:\n{plan}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cleanup_deletes_only_old_finished_jobs() {
        let (q, _db) = fresh_sql().await;
        let sql = q.clone();
        crate::checks::cleanup_deletes_only_old_finished_jobs(Arc::new(q), move |cutoff| {
            let sql = sql.clone();
            async move { sql.cleanup(cutoff, 2).await }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn migrate_twice_and_concurrently_is_harmless() {
        let (q, db) = fresh_sql().await;
        let (a, b) = (q.clone(), q.clone());
        let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
        ra.unwrap();
        rb.unwrap();
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _dnp_queue_migrations").fetch_one(&db.pool).await.unwrap();
        assert_eq!(n, 2, "two migrations recorded, once each");
    }
}
