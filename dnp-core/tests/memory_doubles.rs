//! The contracts of the in-memory `JobQueue`, `TokenStore` and `TokenSource` over them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use dnp_core::memory::{MemoryJobQueue, MemoryTokenStore};
use dnp_core::*;
use secrecy::{ExposeSecret, SecretString};

fn no_backoff() -> MemoryJobQueue {
    MemoryJobQueue::with_backoff(Backoff { base: Duration::ZERO, max: Duration::ZERO })
}

fn job(kind: &str) -> NewJob {
    NewJob::new(kind, serde_json::json!({"kind": kind}))
}

#[tokio::test]
async fn the_same_idempotency_key_yields_the_same_job() {
    let q = MemoryJobQueue::new();
    let owner = UserId::new_random();
    let a = q.enqueue(job("scan").with_owner(owner).with_idempotency_key("scan:1")).await.expect("enqueue");
    let b = q.enqueue(job("other").with_owner(owner).with_idempotency_key("scan:1")).await.expect("enqueue");
    assert_eq!(a.id, b.id);
    assert_eq!(b.kind, "scan", "the existing job, unchanged");
    assert_eq!(q.list_by_owner(owner, 10, None).await.expect("list").len(), 1);
    let c = q.enqueue(job("scan").with_idempotency_key("scan:2")).await.expect("enqueue");
    assert_ne!(a.id, c.id);
}

#[tokio::test]
async fn reserve_takes_the_highest_priority_due_job_once() {
    let q = MemoryJobQueue::new();
    let low = q.enqueue(job("low")).await.expect("enqueue");
    let high = q.enqueue(job("high").with_priority(5)).await.expect("enqueue");
    let later = q.enqueue(job("later").with_priority(9).with_run_at(Utc::now() + chrono::Duration::hours(1))).await;
    later.expect("enqueue");
    let first = q.reserve("w1", Duration::from_secs(60)).await.expect("reserve").expect("a job");
    assert_eq!(first.job.id, high.id);
    assert_eq!(first.job.attempts, 1);
    assert_eq!(first.job.status, JobStatus::Running);
    let second = q.reserve("w2", Duration::from_secs(60)).await.expect("reserve").expect("a job");
    assert_eq!(second.job.id, low.id);
    assert!(q.reserve("w3", Duration::from_secs(60)).await.expect("reserve").is_none(), "the future job is not due");
    let depth = q.depth().await.expect("depth");
    let later_depth = depth.iter().find(|d| d.kind == "later").expect("listed");
    assert_eq!((later_depth.queued, later_depth.running), (1, 0));
    assert_eq!(depth.iter().map(|d| d.running).sum::<u64>(), 2);
}

#[tokio::test]
async fn an_expired_lease_is_lost_to_the_next_worker() {
    let q = MemoryJobQueue::new();
    q.enqueue(job("scan")).await.expect("enqueue");
    let stale = q.reserve("w1", Duration::ZERO).await.expect("reserve").expect("a job");
    let fresh = q.reserve("w2", Duration::from_secs(60)).await.expect("reserve").expect("re-leased");
    assert_eq!(fresh.job.id, stale.job.id);
    assert_eq!(fresh.job.attempts, 2);
    assert_ne!(fresh.token, stale.token);
    for result in [
        q.heartbeat(&stale, Duration::from_secs(60)).await.map(|_| ()),
        q.progress(&stale, JobProgress { done: 1, total: None, message: "x".into() }).await,
        q.complete(&stale).await,
        q.fail(&stale, "boom", true).await.map(|_| ()),
        q.cancelled(&stale).await,
    ] {
        assert!(matches!(result, Err(StoreError::LeaseLost { job }) if job == stale.job.id));
    }
    assert_eq!(q.heartbeat(&fresh, Duration::from_secs(60)).await.expect("held"), Heartbeat::Continue);
    q.progress(&fresh, JobProgress { done: 3, total: Some(10), message: "page 3".into() }).await.expect("held");
    q.complete(&fresh).await.expect("held");
    let done = q.get(fresh.job.id).await.expect("get").expect("exists");
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.progress.map(|p| p.done), Some(3));
    assert!(matches!(q.complete(&fresh).await, Err(StoreError::LeaseLost { .. })), "a finished job has no lease");
}

#[tokio::test]
async fn retryable_failures_requeue_until_the_attempts_run_out() {
    let q = no_backoff();
    let id = q.enqueue(job("enforce").with_max_attempts(2)).await.expect("enqueue").id;
    let lease = q.reserve("w", Duration::from_secs(60)).await.expect("reserve").expect("job");
    let after = q.fail(&lease, "503 from the service", true).await.expect("held");
    assert_eq!(after.status, JobStatus::Queued);
    assert_eq!(after.last_error.as_deref(), Some("503 from the service"));
    let lease = q.reserve("w", Duration::from_secs(60)).await.expect("reserve").expect("requeued");
    assert_eq!(lease.job.attempts, 2);
    let after = q.fail(&lease, "503 again", true).await.expect("held");
    assert_eq!(after.status, JobStatus::Dead);
    assert!(q.reserve("w", Duration::from_secs(60)).await.expect("reserve").is_none());
    assert_eq!(q.get(id).await.expect("get").map(|j| j.status), Some(JobStatus::Dead));

    let id = q.enqueue(job("enforce")).await.expect("enqueue").id;
    let lease = q.reserve("w", Duration::from_secs(60)).await.expect("reserve").expect("job");
    assert_eq!(lease.job.id, id);
    assert_eq!(q.fail(&lease, "invalid input", false).await.expect("held").status, JobStatus::Dead, "permanent");
}

#[tokio::test]
async fn a_failed_attempt_waits_for_its_backoff() {
    let q = MemoryJobQueue::new();
    q.enqueue(job("scan")).await.expect("enqueue");
    let lease = q.reserve("w", Duration::from_secs(60)).await.expect("reserve").expect("job");
    let before = Utc::now();
    let after = q.fail(&lease, "timeout", true).await.expect("held");
    // Default backoff: 2 s after the first failure, jittered down to no less than half.
    assert!(after.run_at >= before + chrono::Duration::milliseconds(999), "{:?}", after.run_at - before);
    assert!(after.run_at <= Utc::now() + chrono::Duration::seconds(2));
    assert!(q.reserve("w", Duration::from_secs(60)).await.expect("reserve").is_none());
    assert_eq!(Backoff::default().delay(30, 1.0), Backoff::default().max, "capped");
    assert_eq!(Backoff::default().delay(1, 0.0), Duration::from_secs(1));
}

#[tokio::test]
async fn cancel_stops_queued_jobs_at_once_and_flags_running_ones() {
    let q = no_backoff();
    let queued = q.enqueue(job("a")).await.expect("enqueue");
    assert_eq!(q.cancel(queued.id).await.expect("cancel").status, JobStatus::Cancelled);

    let running = q.enqueue(job("b")).await.expect("enqueue");
    let lease = q.reserve("w", Duration::from_secs(60)).await.expect("reserve").expect("job");
    assert_eq!(lease.job.id, running.id, "the cancelled job is not handed out");
    let flagged = q.cancel(running.id).await.expect("cancel");
    assert_eq!(flagged.status, JobStatus::Running);
    assert!(flagged.cancel_requested);
    assert_eq!(q.heartbeat(&lease, Duration::from_secs(60)).await.expect("held"), Heartbeat::CancelRequested);
    // A retryable failure after a cancel request does not requeue.
    let other = q.enqueue(job("c")).await.expect("enqueue");
    let other_lease = q.reserve("w", Duration::from_secs(60)).await.expect("reserve").expect("job");
    q.cancel(other.id).await.expect("cancel");
    assert_eq!(q.fail(&other_lease, "stopped", true).await.expect("held").status, JobStatus::Dead);

    q.cancelled(&lease).await.expect("held");
    let done = q.get(running.id).await.expect("get").expect("exists");
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_eq!(q.cancel(running.id).await.expect("cancel").status, JobStatus::Cancelled, "finished: unchanged");
    assert!(matches!(q.cancel(JobId::new_random()).await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn list_by_owner_is_newest_first_with_limit_and_cursor() {
    let q = MemoryJobQueue::new();
    let owner = UserId::new_random();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(q.enqueue(job(&format!("j{n}")).with_owner(owner)).await.expect("enqueue"));
        q.enqueue(job("someone else's").with_owner(UserId::new_random())).await.expect("enqueue");
        std::thread::sleep(Duration::from_millis(2));
    }
    q.enqueue(job("nobody's")).await.expect("enqueue");
    let all = q.list_by_owner(owner, 10, None).await.expect("list");
    assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), ids.iter().rev().map(|j| j.id).collect::<Vec<_>>());
    let page = q.list_by_owner(owner, 2, None).await.expect("list");
    assert_eq!(page.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>(), ["j4", "j3"]);
    let next = q.list_by_owner(owner, 2, Some(page[1].created_at)).await.expect("list");
    assert_eq!(next.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>(), ["j2", "j1"]);
    assert!(q.list_by_owner(UserId::new_random(), 10, None).await.expect("list").is_empty());
}

// --- token store -----------------------------------------------------------------------

fn tokens(access: &str, refresh: Option<&str>, expires_in_secs: Option<i64>) -> TokenSet {
    TokenSet {
        access_token: SecretString::from(access.to_owned()),
        refresh_token: refresh.map(|r| SecretString::from(r.to_owned())),
        expires_at: expires_in_secs.map(|s| Utc::now() + chrono::Duration::seconds(s)),
        scopes: vec!["user-library-modify".into()],
    }
}

fn spotify() -> ProviderId {
    "spotify".parse().expect("valid")
}

#[tokio::test]
async fn save_creates_then_replaces_one_connection_per_user_and_provider() {
    let store = MemoryTokenStore::new();
    let user = UserId::new_random();
    let first = store.save(user, &spotify(), &tokens("a1", Some("r1"), Some(3600))).await.expect("save");
    assert_eq!(first.status, ConnectionStatus::Active);
    store.set_status(first.id, ConnectionStatus::NeedsReauth).await.expect("status");
    let second = store.save(user, &spotify(), &tokens("a2", Some("r2"), Some(3600))).await.expect("save");
    assert_eq!(second.id, first.id);
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second.status, ConnectionStatus::Active);
    assert_eq!(store.tokens(first.id).await.expect("tokens").access_token.expose_secret(), "a2");
    assert!(store.connection(first.id).await.expect("connection").last_used_at.is_some(), "reading records use");
    store.save(user, &"tidal".parse().expect("valid"), &tokens("t", None, None)).await.expect("save");
    let list = store.list(user).await.expect("list");
    assert_eq!(list.iter().map(|c| c.provider.as_str()).collect::<Vec<_>>(), ["spotify", "tidal"]);
    assert_eq!(store.find(user, &spotify()).await.expect("find").map(|c| c.id), Some(first.id));
    assert!(store.find(UserId::new_random(), &spotify()).await.expect("find").is_none());
}

#[tokio::test]
async fn update_tokens_keeps_the_old_refresh_token_when_none_is_returned() {
    let store = MemoryTokenStore::new();
    let conn = store.save(UserId::new_random(), &spotify(), &tokens("a1", Some("r1"), Some(10))).await.expect("save");
    store.set_status(conn.id, ConnectionStatus::ExpiringSoon).await.expect("status");
    let updated = store.update_tokens(conn.id, &tokens("a2", None, Some(3600))).await.expect("update");
    assert_eq!(updated.status, ConnectionStatus::Active);
    let now = store.tokens(conn.id).await.expect("tokens");
    assert_eq!(now.access_token.expose_secret(), "a2");
    assert_eq!(now.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()), Some("r1".to_owned()));
    store.update_tokens(conn.id, &tokens("a3", Some("r2"), Some(3600))).await.expect("update");
    let rotated = store.tokens(conn.id).await.expect("tokens");
    assert_eq!(rotated.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()), Some("r2".to_owned()));
}

#[tokio::test]
async fn expiring_before_lists_soonest_first_without_needs_reauth() {
    let store = MemoryTokenStore::new();
    let save = |secs: Option<i64>| {
        let store = &store;
        async move { store.save(UserId::new_random(), &spotify(), &tokens("a", Some("r"), secs)).await.expect("save") }
    };
    let late = save(Some(600)).await;
    let soon = save(Some(60)).await;
    let reauth = save(Some(30)).await;
    store.set_status(reauth.id, ConnectionStatus::NeedsReauth).await.expect("status");
    save(None).await;
    save(Some(7200)).await;
    let due = store.expiring_before(Utc::now() + chrono::Duration::seconds(900), 10).await.expect("list");
    assert_eq!(due.iter().map(|c| c.id).collect::<Vec<_>>(), [soon.id, late.id]);
    let one = store.expiring_before(Utc::now() + chrono::Duration::seconds(900), 1).await.expect("list");
    assert_eq!(one.iter().map(|c| c.id).collect::<Vec<_>>(), [soon.id]);
}

#[tokio::test]
async fn missing_connections_are_not_found_and_delete_is_idempotent() {
    let store = MemoryTokenStore::new();
    let conn =
        store.save(UserId::new_random(), &spotify(), &tokens("secret-access", Some("secret-refresh"), None)).await;
    let conn = conn.expect("save");
    let debug = format!("{store:?} {:?}", store.tokens(conn.id).await.expect("tokens"));
    assert!(!debug.contains("secret-access") && !debug.contains("secret-refresh"), "{debug}");
    store.delete(conn.id).await.expect("delete");
    store.delete(conn.id).await.expect("delete again");
    assert!(matches!(store.tokens(conn.id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.connection(conn.id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.update_tokens(conn.id, &tokens("x", None, None)).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.set_status(conn.id, ConnectionStatus::Error).await, Err(StoreError::NotFound { .. })));
}

/// A `ProviderAuth` that rotates refresh tokens and counts refreshes.
#[derive(Debug)]
struct RotatingAuth {
    refreshes: AtomicUsize,
    refuse: bool,
}

#[async_trait]
impl ProviderAuth for RotatingAuth {
    fn provider(&self) -> &ProviderId {
        static SPOTIFY: std::sync::OnceLock<ProviderId> = std::sync::OnceLock::new();
        SPOTIFY.get_or_init(spotify)
    }

    fn authorization_request(&self) -> Result<AuthorizationRequest, ProviderError> {
        Err(ProviderError::Unsupported { provider: spotify(), what: "authorize".into() })
    }

    async fn exchange_code(&self, _: &str, _: Option<&SecretString>) -> Result<TokenSet, ProviderError> {
        Err(ProviderError::Unsupported { provider: spotify(), what: "exchange".into() })
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        if self.refuse {
            return Err(ProviderError::NeedsReauth { provider: spotify(), reason: "invalid_grant".into() });
        }
        let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::task::yield_now().await;
        Ok(tokens(&format!("access-{n}"), Some(&format!("{}-next", refresh_token.expose_secret())), Some(3600)))
    }

    async fn revoke(&self, _: &TokenSet) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[tokio::test]
async fn the_stored_token_source_refreshes_once_and_persists_the_rotated_token() {
    let store = Arc::new(MemoryTokenStore::new());
    let conn =
        store.save(UserId::new_random(), &spotify(), &tokens("old", Some("r1"), Some(3600))).await.expect("save");
    let auth = Arc::new(RotatingAuth { refreshes: AtomicUsize::new(0), refuse: false });
    let source = StoredTokenSource::new(store.clone(), auth.clone(), conn.id);
    assert_eq!(source.access_token().await.expect("fresh").expose_secret(), "old", "valid: no refresh");
    // Two callers saw "old" refused at once: one refresh serves both.
    let old = SecretString::from("old".to_owned());
    let (a, b) = tokio::join!(source.refresh_after_unauthorized(&old), source.refresh_after_unauthorized(&old));
    assert_eq!(a.expect("refreshed").expose_secret(), "access-1");
    assert_eq!(b.expect("refreshed").expose_secret(), "access-1");
    assert_eq!(auth.refreshes.load(Ordering::SeqCst), 1);
    let stored = store.tokens(conn.id).await.expect("tokens");
    assert_eq!(stored.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()), Some("r1-next".to_owned()));

    // A token about to expire is refreshed before use.
    store.update_tokens(conn.id, &tokens("expiring", None, Some(60))).await.expect("update");
    assert_eq!(source.access_token().await.expect("refreshed").expose_secret(), "access-2");
}

#[tokio::test]
async fn a_refused_refresh_marks_the_connection_needs_reauth() {
    let store = Arc::new(MemoryTokenStore::new());
    let conn = store.save(UserId::new_random(), &spotify(), &tokens("old", Some("r1"), Some(10))).await.expect("save");
    let auth = Arc::new(RotatingAuth { refreshes: AtomicUsize::new(0), refuse: true });
    let source = StoredTokenSource::new(store.clone(), auth, conn.id);
    assert!(matches!(source.access_token().await, Err(ProviderError::NeedsReauth { .. })));
    assert_eq!(store.connection(conn.id).await.expect("connection").status, ConnectionStatus::NeedsReauth);
}
