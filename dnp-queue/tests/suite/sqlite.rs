//! `SqlJobQueue` on SQLite: a file in a temporary directory per test.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use dnp_core::{JobQueue, NewJob};
use dnp_queue::{MIGRATIONS_TABLE, SqlJobQueue};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

async fn open(dir: &tempfile::TempDir) -> sqlx::SqlitePool {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}/dnp.db", dir.path().display()))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new().max_connections(8).connect_with(options).await.unwrap()
}

async fn fresh_sql() -> (SqlJobQueue, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let q = SqlJobQueue::sqlite(open(&dir).await).with_backoff(crate::checks::test_backoff());
    q.migrate().await.unwrap();
    (q, dir)
}

async fn fresh() -> (Arc<dyn JobQueue>, tempfile::TempDir) {
    let (q, dir) = fresh_sql().await;
    (Arc::new(q), dir)
}

contract_tests!(fresh);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_lost_on_last_attempt_is_dead() {
    let (q, _guard) = fresh().await;
    crate::checks::lease_lost_on_last_attempt_is_dead(q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_jobs_listing_reads_only_the_owner_index() {
    let (q, _dir) = fresh_sql().await;
    let (owner, _) = crate::checks::ten_thousand_jobs_one_users_listing(Arc::new(q.clone())).await;
    let plan = q.explain_list_by_owner(owner, 20).await.unwrap();
    assert!(plan.contains("USING INDEX dnp_jobs_owner_created"), "plan:\n{plan}");
    assert!(!plan.contains("SCAN"), "no scan of the table or of an index: plan:\n{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "the index gives the order, no sort: plan:\n{plan}");
}

/// Regression: `reserve` found expired leases through an index on `(status, kind)`, reading
/// every running job on every call. It must search `dnp_jobs_leased` (and `dnp_jobs_ready`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reserve_reads_expired_leases_by_the_leased_index() {
    let (q, _dir) = fresh_sql().await;
    crate::checks::many_running_few_queued(Arc::new(q.clone())).await;
    if let dnp_queue::SqlPool::Sqlite(p) = q.pool() {
        sqlx::query("ANALYZE").execute(p).await.unwrap();
    }
    let plan = q.explain_reserve().await.unwrap();
    assert!(plan.contains("SCAN dnp_jobs USING INDEX dnp_jobs_ready"), "queued jobs in index order: plan:\n{plan}");
    assert!(plan.contains("SEARCH dnp_jobs USING INDEX dnp_jobs_leased (lease_expires_us<?)"), "plan:\n{plan}");
    assert!(!plan.lines().any(|l| l.trim() == "SCAN dnp_jobs"), "no full scan: plan:\n{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent_and_coexist_with_other_migrators() {
    let dir = tempfile::tempdir().unwrap();
    let pool = open(&dir).await;
    // Another crate's sqlx migrations in the same database, in the default table.
    let other = sqlx::migrate::Migrator::with_migrations(vec![sqlx::migrate::Migration::new(
        1,
        "someone else's table".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str("CREATE TABLE other_things (id INTEGER PRIMARY KEY)"),
        false,
    )]);
    other.run(&pool).await.unwrap();
    let q = SqlJobQueue::sqlite(pool.clone());
    q.migrate().await.unwrap();
    q.migrate().await.unwrap();
    other.run(&pool).await.unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {MIGRATIONS_TABLE}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2, "two migrations recorded, once each");
    q.enqueue(NewJob::new("scan", serde_json::json!({}))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let q = SqlJobQueue::sqlite(open(&dir).await);
        q.migrate().await.unwrap();
        let id = q.enqueue(NewJob::new("scan", serde_json::json!({"n": 1}))).await.unwrap().id;
        if let dnp_queue::SqlPool::Sqlite(p) = q.pool() {
            p.close().await;
        }
        id
    };
    let q = SqlJobQueue::sqlite(open(&dir).await);
    q.migrate().await.unwrap();
    let lease = q.reserve("w", Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(lease.job.id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cleanup_deletes_only_old_finished_jobs() {
    let (q, _dir) = fresh_sql().await;
    let sql = q.clone();
    crate::checks::cleanup_deletes_only_old_finished_jobs(Arc::new(q), move |cutoff| {
        let sql = sql.clone();
        async move { sql.cleanup(cutoff, 2).await }
    })
    .await;
}
