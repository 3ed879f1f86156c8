//! The reference: dnp-core's `MemoryJobQueue`.

use std::sync::Arc;

use dnp_core::JobQueue;
use dnp_core::memory::MemoryJobQueue;

async fn fresh() -> (Arc<dyn JobQueue>, ()) {
    (Arc::new(MemoryJobQueue::with_backoff(crate::checks::test_backoff())), ())
}

contract_tests!(fresh);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_jobs_one_users_listing() {
    let (q, _guard) = fresh().await;
    crate::checks::ten_thousand_jobs_one_users_listing(q).await;
}
