//! The executor against the in-memory provider and action log, with wrappers that fail,
//! rate limit, crash the log mid-batch, or apply a batch and lose the answer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use dnp_core::memory::{Fault, MemoryActionLog, MemoryProvider};
use dnp_core::*;
use uuid::Uuid;

fn spotify() -> ProviderId {
    "spotify".parse().expect("valid id")
}

fn credit(id: &str, name: &str, role: CreditRole) -> ArtistCredit {
    ArtistCredit { id: Some(id.to_owned()), name: name.to_owned(), role }
}

fn track(id: &str, title: &str, artists: Vec<ArtistCredit>) -> Track {
    Track { id: id.to_owned(), title: title.to_owned(), artists, album: None, isrc: None, duration_ms: None, url: None }
}

/// Seven liked tracks (four blocked), two albums (one blocked), two followed artists (one
/// blocked), and a playlist whose blocked track appears twice.
fn library() -> LibrarySnapshot {
    let blocked = || credit("bad", "Blocked Artist", CreditRole::Primary);
    let fine = || credit("ok", "Fine Artist", CreditRole::Primary);
    let t =
        |n: u32, bad: bool| track(&format!("t{n}"), &format!("Song {n}"), vec![if bad { blocked() } else { fine() }]);
    let liked = |n: u32, bad: bool| LikedTrack {
        track: t(n, bad),
        added_at: Some(Utc.timestamp_opt(1_700_000_000 - i64::from(n) * 60, 0).single().expect("valid")),
        entry_id: None,
        disliked: false,
    };
    let album = |id: &str, bad: bool| SavedAlbum {
        album: Album {
            id: id.to_owned(),
            title: format!("Album {id}"),
            artists: vec![if bad { blocked() } else { fine() }],
            url: None,
        },
        added_at: None,
    };
    let item = |pos: u32, n: u32, bad: bool| PlaylistItem {
        position: pos,
        track: t(n, bad),
        added_at: None,
        item_id: Some(format!("item{pos}")),
    };
    LibrarySnapshot {
        provider: spotify(),
        taken_at: None,
        liked_tracks: vec![
            liked(1, true),
            liked(2, false),
            liked(3, true),
            liked(4, true),
            liked(5, false),
            liked(6, true),
            liked(7, false),
        ],
        saved_albums: vec![album("al1", true), album("al2", false)],
        followed_artists: vec![
            FollowedArtist {
                artist: Artist { id: "bad".into(), name: "Blocked Artist".into(), url: None },
                entry_id: None,
            },
            FollowedArtist {
                artist: Artist { id: "ok".into(), name: "Fine Artist".into(), url: None },
                entry_id: None,
            },
        ],
        playlists: vec![Playlist {
            id: "pl1".into(),
            name: "Mix".into(),
            owned: true,
            collaborative: false,
            editable: true,
            version: Some("v1".into()),
            items: vec![item(0, 2, false), item(1, 3, true), item(2, 5, false), item(3, 3, true), item(4, 8, true)],
            url: None,
        }],
    }
}

fn dnp() -> DnpList {
    DnpList {
        entries: vec![DnpEntry {
            id: EntryId(Uuid::from_u128(1)),
            artist: ArtistIdentity::named("Blocked Artist").with_id(spotify(), "bad"),
            note: None,
            tags: vec![],
            added_at: Utc.timestamp_opt(1_600_000_000, 0).single().expect("valid"),
            source: EntrySource::Personal,
        }],
    }
}

/// Spotify-like capabilities with `batch` items a call for every kind.
fn caps(batch: u32) -> Capabilities {
    let pages =
        PageSizes { liked_tracks: 50, saved_albums: 50, followed_artists: 50, playlists: 50, playlist_items: 100 };
    let mut b = Capabilities::builder(pages);
    for kind in ActionKind::ALL {
        b = b.supported(kind, batch);
    }
    b.playlist_removal(PlaylistRemoval::ByItemId).build()
}

fn make_plan(snapshot: &LibrarySnapshot, capabilities: &Capabilities) -> Plan {
    plan(snapshot, &BlockedSet::for_provider(&dnp(), &spotify()), &EnforcementPolicy::default(), capabilities)
}

fn token() -> StaticToken {
    StaticToken::new(spotify(), "test-token".to_owned().into())
}

/// A provider whose catalog knows everything in `known` (so rollback can re-add it), holding
/// `current`.
fn provider_with(known: &LibrarySnapshot, current: LibrarySnapshot, caps: &Capabilities) -> MemoryProvider {
    let provider = MemoryProvider::new(known.clone(), caps.clone());
    provider.set_library(current);
    provider
}

fn ids(snapshot: &LibrarySnapshot) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    (
        snapshot.liked_tracks.iter().map(|l| l.track.id.clone()).collect(),
        snapshot.saved_albums.iter().map(|a| a.album.id.clone()).collect(),
        snapshot.followed_artists.iter().map(|a| a.artist.id.clone()).collect(),
    )
}

fn states(rows: &[LoggedAction]) -> BTreeMap<ActionId, ItemState> {
    rows.iter().map(|r| (r.action.id, r.state)).collect()
}

/// What a [`Scripted`] provider does on its next `apply` calls.
#[derive(Debug, Clone)]
enum Step {
    /// Apply normally.
    Pass,
    /// Refuse the call with this error (nothing applied).
    Refuse(ProviderError),
    /// Apply the batch, then fail with this error (the answer is lost in transit).
    ApplyThenFail(ProviderError),
}

/// A provider wrapper: scripted failures, a record of every action sent, and a check that
/// no action already confirmed in the log is ever sent again.
#[derive(Debug)]
struct Scripted {
    inner: MemoryProvider,
    script: Mutex<VecDeque<Step>>,
    sent: Mutex<Vec<ActionId>>,
    log: Option<(Arc<MemoryActionLog>, BatchId)>,
    resent_confirmed: Mutex<Vec<ActionId>>,
}

impl Scripted {
    fn new(inner: MemoryProvider) -> Self {
        Self { inner, script: Mutex::default(), sent: Mutex::default(), log: None, resent_confirmed: Mutex::default() }
    }

    fn watching(mut self, log: Arc<MemoryActionLog>, batch: BatchId) -> Self {
        self.log = Some((log, batch));
        self
    }

    fn then(self, step: Step) -> Self {
        self.script.lock().expect("lock").push_back(step);
        self
    }

    fn sent(&self) -> Vec<ActionId> {
        self.sent.lock().expect("lock").clone()
    }

    fn times_sent(&self, id: ActionId) -> usize {
        self.sent().iter().filter(|a| **a == id).count()
    }
}

#[async_trait]
impl Provider for Scripted {
    fn id(&self) -> &ProviderId {
        self.inner.id()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn scan(
        &self,
        auth: &dyn TokenSource,
        progress: &dyn ProgressSink,
    ) -> Result<LibrarySnapshot, ProviderError> {
        self.inner.scan(auth, progress).await
    }

    async fn apply(&self, auth: &dyn TokenSource, batch: &Batch) -> Result<Vec<ActionOutcome>, ProviderError> {
        if let Some((log, id)) = &self.log {
            let rows = states(&log.actions(*id).await.expect("log readable"));
            for a in &batch.actions {
                if rows.get(&a.id) == Some(&ItemState::Confirmed) {
                    self.resent_confirmed.lock().expect("lock").push(a.id);
                }
            }
        }
        let step = self.script.lock().expect("lock").pop_front().unwrap_or(Step::Pass);
        if let Step::Refuse(err) = step {
            return Err(err);
        }
        self.sent.lock().expect("lock").extend(batch.actions.iter().map(|a| a.id));
        let outcomes = self.inner.apply(auth, batch).await?;
        match step {
            Step::ApplyThenFail(err) => Err(err),
            _ => Ok(outcomes),
        }
    }

    async fn search_artists(
        &self,
        auth: &dyn TokenSource,
        query: &str,
        limit: u32,
    ) -> Result<Vec<ArtistCandidate>, ProviderError> {
        self.inner.search_artists(auth, query, limit).await
    }

    async fn track_by_isrc(&self, auth: &dyn TokenSource, isrc: &str) -> Result<Option<Track>, ProviderError> {
        self.inner.track_by_isrc(auth, isrc).await
    }
}

/// An action log that "crashes" (returns an error without writing) once it has taken
/// `updates` updates.
#[derive(Debug)]
struct CrashingLog {
    inner: Arc<MemoryActionLog>,
    updates_left: AtomicUsize,
}

impl CrashingLog {
    fn new(inner: Arc<MemoryActionLog>, updates: usize) -> Self {
        Self { inner, updates_left: AtomicUsize::new(updates) }
    }
}

#[async_trait]
impl ActionLog for CrashingLog {
    async fn record(&self, batch: BatchId, actions: &[Action]) -> Result<(), StoreError> {
        self.inner.record(batch, actions).await
    }

    async fn update(&self, batch: BatchId, updates: &[StateUpdate]) -> Result<(), StoreError> {
        if self.updates_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            return Err(StoreError::backend(std::io::Error::other("simulated crash")));
        }
        self.inner.update(batch, updates).await
    }

    async fn actions(&self, batch: BatchId) -> Result<Vec<LoggedAction>, StoreError> {
        self.inner.actions(batch).await
    }
}

fn transient() -> ProviderError {
    ProviderError::Transient { provider: spotify(), endpoint: "PUT /me/tracks".into(), detail: "timed out".into() }
}

#[tokio::test]
async fn failed_actions_are_collected_and_the_rest_runs() {
    let snapshot = library();
    let caps = caps(2);
    let plan = make_plan(&snapshot, &caps);
    let provider = MemoryProvider::new(snapshot, caps);
    provider.inject(Fault::FailItem("t3".into()));
    let log = MemoryActionLog::new();
    let report = Executor::new(&provider, &token(), &log)
        .execute(BatchId::new_random(), &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log works");
    // t3 is liked and twice in the playlist: three actions fail, the others are confirmed.
    assert_eq!(report.completion, Completion::Finished);
    assert_eq!(report.failed, 3);
    assert_eq!(report.confirmed, plan.summary.total_actions - 3);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].0.code, "not_found");
    assert_eq!(report.failures[0].1, 3);
    let after = provider.library();
    let (liked, albums, artists) = ids(&after);
    assert_eq!(liked, ["t2", "t3", "t5", "t7"].map(String::from).into());
    assert_eq!(albums, ["al2"].map(String::from).into());
    assert_eq!(artists, ["ok"].map(String::from).into());
    let tracks: Vec<&str> = after.playlists[0].items.iter().map(|i| i.track.id.as_str()).collect();
    assert_eq!(tracks, ["t2", "t3", "t5", "t3"]);
}

#[tokio::test(start_paused = true)]
async fn a_429_is_waited_out_for_exactly_its_retry_after() {
    let snapshot = library();
    let caps = caps(50);
    let plan = make_plan(&snapshot, &caps);
    let provider = MemoryProvider::new(snapshot, caps);
    provider.inject(Fault::RateLimited(Duration::from_secs(7)));
    let log = MemoryActionLog::new();
    let started = tokio::time::Instant::now();
    let report = Executor::new(&provider, &token(), &log)
        .execute(BatchId::new_random(), &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log works");
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert_eq!(report.completion, Completion::Finished);
    assert_eq!(report.calls, plan.batches.len() as u64 + 1);
    assert_eq!(provider.calls().len(), plan.batches.len() + 1);
    assert_eq!(report.confirmed, plan.summary.total_actions);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_longer_than_the_longest_wait_stops_the_run_resumably() {
    let snapshot = library();
    let caps = caps(50);
    let plan = make_plan(&snapshot, &caps);
    let provider = MemoryProvider::new(snapshot, caps);
    provider.inject(Fault::RateLimited(Duration::from_secs(3600)));
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    let report = Executor::new(&provider, &token(), &log)
        .execute(batch, &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(report.completion, Completion::ProviderUnavailable);
    assert_eq!(report.confirmed, 0);
    assert_eq!(report.not_run, plan.summary.total_actions);
    let rows = log.actions(batch).await.expect("log");
    assert!(rows.iter().all(|r| r.state == ItemState::Planned));
    let report = Executor::new(&provider, &token(), &log)
        .execute(batch, &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(report.confirmed, plan.summary.total_actions);
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_backoff() {
    let snapshot = library();
    let caps = caps(50);
    let plan = make_plan(&snapshot, &caps);
    let provider = MemoryProvider::new(snapshot, caps);
    provider.inject(Fault::Transient);
    provider.inject(Fault::Transient);
    let log = MemoryActionLog::new();
    let started = tokio::time::Instant::now();
    let report = Executor::new(&provider, &token(), &log)
        .execute(BatchId::new_random(), &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    // Backoff 500 ms, then 1 s.
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
    assert_eq!(report.calls, plan.batches.len() as u64 + 2);
    assert_eq!(report.confirmed, plan.summary.total_actions);
}

#[tokio::test]
async fn needs_reauth_stops_the_run_and_leaves_the_rest_planned() {
    let snapshot = library();
    let caps = caps(1);
    let plan = make_plan(&snapshot, &caps);
    assert!(plan.batches.len() >= 4);
    let reauth = ProviderError::NeedsReauth { provider: spotify(), reason: "refresh token revoked".into() };
    let provider = Scripted::new(MemoryProvider::new(snapshot, caps)).then(Step::Pass).then(Step::Refuse(reauth));
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    let report = Executor::new(&provider, &token(), &log)
        .execute(batch, &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(report.completion, Completion::NeedsReauth);
    assert_eq!(report.confirmed, 1);
    assert_eq!(report.calls, 2, "no call after the refusal");
    assert_eq!(report.not_run, plan.summary.total_actions - 1);
    let rows = log.actions(batch).await.expect("log");
    let first = plan.batches[0].actions[0].id;
    for row in &rows {
        let expected = if row.action.id == first { ItemState::Confirmed } else { ItemState::Planned };
        assert_eq!(row.state, expected, "{}", row.action.id);
    }

    // After the user reconnects, the same batch id resumes and finishes.
    let report = Executor::new(&provider, &token(), &log)
        .execute(batch, &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(report.completion, Completion::Finished);
    assert_eq!(report.confirmed, plan.summary.total_actions);
    let sent = provider.sent();
    assert_eq!(sent.len() as u64, plan.summary.total_actions, "every action applied once");
}

#[tokio::test]
async fn cancellation_takes_effect_between_batches() {
    let snapshot = library();
    let caps = caps(1);
    let plan = make_plan(&snapshot, &caps);
    let provider = MemoryProvider::new(snapshot.clone(), caps);
    let log = MemoryActionLog::new();
    let cancel = CancelFlag::new();
    let batch = BatchId::new_random();
    let cancel_after_first = |_: Progress| cancel.cancel();
    let report = Executor::new(&provider, &token(), &log).execute(batch, &plan, &cancel_after_first, &cancel).await;
    let report = report.expect("log");
    assert_eq!(report.completion, Completion::Cancelled);
    assert_eq!(report.calls, 1);
    assert_eq!(report.confirmed, 1);
    assert_eq!(report.not_run, plan.summary.total_actions - 1);
    let rows = log.actions(batch).await.expect("log");
    assert_eq!(rows.iter().filter(|r| r.state == ItemState::Cancelled).count() as u64, plan.summary.total_actions - 1);
    // Cancelled is final: running the batch again sends nothing.
    let again = Executor::new(&provider, &token(), &log)
        .execute(batch, &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(again.calls, 0);
    assert_eq!(provider.calls().len(), 1);
}

/// Runs `plan` with a log that crashes after `crash_after` updates, then resumes with a
/// working log. Returns the provider, the rows and the resumed report.
async fn crash_and_resume(
    known: &LibrarySnapshot,
    snapshot: &LibrarySnapshot,
    caps: &Capabilities,
    plan: &Plan,
    crash_after: usize,
) -> (Scripted, Vec<LoggedAction>, ExecutionReport, bool) {
    let log = Arc::new(MemoryActionLog::new());
    let batch = BatchId::new_random();
    let provider = Scripted::new(provider_with(known, snapshot.clone(), caps)).watching(log.clone(), batch);
    let crashing = CrashingLog::new(log.clone(), crash_after);
    let first =
        Executor::new(&provider, &token(), &crashing).execute(batch, plan, &NoProgress, &CancelFlag::new()).await;
    let crashed = first.is_err();
    let progress = Mutex::new(Vec::new());
    let record = |p: Progress| progress.lock().expect("lock").push(p);
    let report = Executor::new(&provider, &token(), log.as_ref())
        .execute(batch, plan, &record, &CancelFlag::new())
        .await
        .expect("the working log works");
    let rows = log.actions(batch).await.expect("log");
    let progress = progress.into_inner().expect("lock");
    if let Some(last) = progress.last() {
        assert_eq!(last.done, plan.summary.total_actions, "resumed progress reaches the total");
    }
    (provider, rows, report, crashed)
}

#[tokio::test]
async fn a_crash_at_any_point_resumes_without_repeating_a_confirmed_action() {
    let snapshot = library();
    let caps = caps(2);
    let plan = make_plan(&snapshot, &caps);
    let expected = {
        let provider = MemoryProvider::new(snapshot.clone(), caps.clone());
        let log = MemoryActionLog::new();
        Executor::new(&provider, &token(), &log)
            .execute(BatchId::new_random(), &plan, &NoProgress, &CancelFlag::new())
            .await
            .expect("log");
        provider.library()
    };
    // Two updates per batch (sent, then the outcomes): crash before each of them.
    let updates = 2 * plan.batches.len();
    for crash_after in 0..=updates {
        let (provider, rows, report, crashed) = crash_and_resume(&snapshot, &snapshot, &caps, &plan, crash_after).await;
        assert_eq!(crashed, crash_after < updates, "crash point {crash_after}");
        assert!(
            provider.resent_confirmed.lock().expect("lock").is_empty(),
            "crash point {crash_after}: a confirmed action was sent again"
        );
        assert_eq!(report.confirmed, plan.summary.total_actions, "crash point {crash_after}");
        assert!(rows.iter().all(|r| r.state == ItemState::Confirmed));
        assert_eq!(provider.inner.library(), expected, "crash point {crash_after}");
        // Only the batch that was in flight at the crash may have been sent twice.
        let in_flight = if crash_after % 2 == 1 { plan.batches[crash_after / 2].actions.len() } else { 0 };
        assert_eq!(provider.sent().len(), plan.summary.total_actions as usize + in_flight, "crash point {crash_after}");
    }
}

/// Enforces the library, then returns the rollback plan of what was confirmed.
async fn enforced_then_rollback_plan(caps: &Capabilities) -> (LibrarySnapshot, LibrarySnapshot, Plan) {
    let snapshot = library();
    let plan = make_plan(&snapshot, caps);
    let provider = MemoryProvider::new(snapshot.clone(), caps.clone());
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    Executor::new(&provider, &token(), &log).execute(batch, &plan, &NoProgress, &CancelFlag::new()).await.expect("log");
    let done = confirmed_actions(&log.actions(batch).await.expect("log"));
    let rollback = rollback_plan(&spotify(), batch, &done, caps);
    assert_eq!(rollback.rollback_of, Some(batch));
    (snapshot, provider.library(), rollback)
}

#[tokio::test]
async fn a_sent_insert_is_marked_indeterminate_and_never_sent_again() {
    let caps = caps(1);
    let (original, enforced, rollback) = enforced_then_rollback_plan(&caps).await;
    let inserts =
        rollback.batches.iter().position(|b| b.kind == ActionKind::InsertPlaylistItem).expect("an insert batch");
    assert!(rollback.batches.len() > inserts + 1, "more inserts follow the interrupted one");
    // Crash right after the first insert batch was marked sent and applied (before its outcome).
    let crash_after = 2 * inserts + 1;
    let (provider, rows, report, crashed) = crash_and_resume(&original, &enforced, &caps, &rollback, crash_after).await;
    assert!(crashed);
    let insert_ids: Vec<ActionId> = rollback.batches[inserts].actions.iter().map(|a| a.id).collect();
    let states = states(&rows);
    for id in &insert_ids {
        assert_eq!(states[id], ItemState::Indeterminate);
        assert_eq!(provider.times_sent(*id), 1, "{id} was sent again");
    }
    assert_eq!(report.indeterminate, insert_ids.len() as u64);
    assert!(rows.iter().filter(|r| r.state == ItemState::Indeterminate).all(|r| r.note.is_some()));
    // The first send did land: the playlist is whole again, no duplicate.
    assert_eq!(provider.inner.library().playlists, original.playlists);
}

#[tokio::test]
async fn a_sent_idempotent_action_is_sent_again_on_resume() {
    let snapshot = library();
    let caps = caps(50);
    let plan = make_plan(&snapshot, &caps);
    let (provider, rows, report, crashed) = crash_and_resume(&snapshot, &snapshot, &caps, &plan, 1).await;
    assert!(crashed);
    for a in &plan.batches[0].actions {
        assert_eq!(provider.times_sent(a.id), 2);
    }
    assert_eq!(report.confirmed, plan.summary.total_actions);
    assert!(rows.iter().all(|r| r.state == ItemState::Confirmed));
}

#[tokio::test]
async fn an_insert_whose_answer_was_lost_is_not_retried() {
    let caps = caps(50);
    let (original, enforced, rollback) = enforced_then_rollback_plan(&caps).await;
    let inserts =
        rollback.batches.iter().position(|b| b.kind == ActionKind::InsertPlaylistItem).expect("an insert batch");
    let mut provider = Scripted::new(provider_with(&original, enforced, &caps));
    for _ in 0..inserts {
        provider = provider.then(Step::Pass);
    }
    let provider = provider.then(Step::ApplyThenFail(transient()));
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    let report = Executor::new(&provider, &token(), &log)
        .execute(batch, &rollback, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(report.completion, Completion::ProviderUnavailable);
    let n = rollback.batches[inserts].actions.len() as u64;
    assert_eq!(report.indeterminate, n);
    for a in &rollback.batches[inserts].actions {
        assert_eq!(provider.times_sent(a.id), 1);
    }
    assert_eq!(provider.inner.library().playlists, original.playlists, "inserted once, not twice");
}

#[tokio::test(start_paused = true)]
async fn a_removal_whose_answer_was_lost_is_retried_and_confirmed() {
    let snapshot = library();
    let caps = caps(50);
    let plan = make_plan(&snapshot, &caps);
    let provider = Scripted::new(MemoryProvider::new(snapshot, caps)).then(Step::ApplyThenFail(transient()));
    let log = MemoryActionLog::new();
    let report = Executor::new(&provider, &token(), &log)
        .execute(BatchId::new_random(), &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(report.completion, Completion::Finished);
    assert_eq!(report.confirmed, plan.summary.total_actions);
    for a in &plan.batches[0].actions {
        assert_eq!(provider.times_sent(a.id), 2);
    }
}

#[tokio::test]
async fn a_permanent_batch_error_fails_that_batch_only() {
    let snapshot = library();
    let caps = caps(50);
    let plan = make_plan(&snapshot, &caps);
    let invalid =
        ProviderError::InvalidInput { provider: spotify(), endpoint: "DELETE /me/tracks".into(), detail: "bad".into() };
    let provider = Scripted::new(MemoryProvider::new(snapshot, caps)).then(Step::Refuse(invalid));
    let log = MemoryActionLog::new();
    let report = Executor::new(&provider, &token(), &log)
        .execute(BatchId::new_random(), &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    let first = plan.batches[0].actions.len() as u64;
    assert_eq!(report.completion, Completion::Finished);
    assert_eq!(report.failed, first);
    assert_eq!(report.confirmed, plan.summary.total_actions - first);
    assert_eq!(report.failures[0].0.code, "invalid_input");
    assert!(!report.failures[0].0.retryable);
}

#[tokio::test]
async fn rollback_runs_as_a_new_batch_and_restores_the_library() {
    let caps = caps(2);
    let (original, enforced, rollback) = enforced_then_rollback_plan(&caps).await;
    assert_ne!(ids(&enforced), ids(&original));
    let provider = provider_with(&original, enforced, &caps);
    let log = MemoryActionLog::new();
    let report = Executor::new(&provider, &token(), &log)
        .execute(BatchId::new_random(), &rollback, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(report.confirmed, rollback.summary.total_actions);
    assert!(rollback.actions().all(|a| a.inverse_of.is_some()));
    let restored = provider.library();
    assert_eq!(ids(&restored), ids(&original));
    assert_eq!(restored.playlists, original.playlists);
    assert!(diff(&original, &restored).is_empty());
}

/// Regression: a disliked track that enforcement unliked came back liked but unrated.
#[tokio::test]
async fn rollback_restores_the_dislike_rating_of_a_re_liked_track() {
    let caps = caps(50);
    let mut original = library();
    original.liked_tracks[0].disliked = true; // t1, by the blocked artist
    let plan = make_plan(&original, &caps);
    let provider = MemoryProvider::new(original.clone(), caps.clone());
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    Executor::new(&provider, &token(), &log).execute(batch, &plan, &NoProgress, &CancelFlag::new()).await.expect("log");
    assert!(provider.library().liked_tracks.iter().all(|l| l.track.id != "t1"));

    // The rollback is planned from the log alone: the before-state travels in the target.
    let done = confirmed_actions(&log.actions(batch).await.expect("log"));
    let rollback = rollback_plan(&spotify(), batch, &done, &caps);
    let report = Executor::new(&provider, &token(), &log)
        .execute(BatchId::new_random(), &rollback, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(report.confirmed, rollback.summary.total_actions);
    let restored = provider.library();
    let rated: Vec<(&str, bool)> = restored.liked_tracks.iter().map(|l| (l.track.id.as_str(), l.disliked)).collect();
    let before: Vec<(&str, bool)> = original.liked_tracks.iter().map(|l| (l.track.id.as_str(), l.disliked)).collect();
    assert_eq!(rated, before);
    assert_eq!(restored.liked_tracks, original.liked_tracks);
}

#[tokio::test]
async fn progress_is_monotonic_and_reaches_the_total() {
    let snapshot = library();
    let caps = caps(2);
    let plan = make_plan(&snapshot, &caps);
    let provider = MemoryProvider::new(snapshot, caps);
    provider.inject(Fault::FailItem("al1".into()));
    let log = MemoryActionLog::new();
    let seen = Mutex::new(Vec::new());
    let record = |p: Progress| seen.lock().expect("lock").push(p);
    Executor::new(&provider, &token(), &log)
        .execute(BatchId::new_random(), &plan, &record, &CancelFlag::new())
        .await
        .expect("log");
    let seen = seen.into_inner().expect("lock");
    assert_eq!(seen.len(), plan.batches.len(), "one report per call");
    assert!(seen.windows(2).all(|w| w[0].done < w[1].done));
    assert!(seen.iter().all(|p| p.total == Some(plan.summary.total_actions)));
    assert_eq!(seen.last().map(|p| p.done), Some(plan.summary.total_actions));
}

#[tokio::test]
async fn batches_beyond_todays_quota_wait_for_their_day() {
    let snapshot = library();
    let pages =
        PageSizes { liked_tracks: 50, saved_albums: 50, followed_artists: 50, playlists: 50, playlist_items: 50 };
    let mut b = Capabilities::builder(pages);
    for kind in ActionKind::ALL {
        b = b.supported(kind, 50).quota_cost(kind, 50);
    }
    let caps = b.quota(Quota { daily_units: 100, remaining_today: 100 }).build();
    let plan = make_plan(&snapshot, &caps);
    assert_eq!(plan.batches.len(), 4);
    assert_eq!(plan.summary.days, 2);
    let provider = MemoryProvider::new(snapshot, caps);
    let log = MemoryActionLog::new();
    let batch = BatchId::new_random();
    let today = Executor::new(&provider, &token(), &log)
        .execute(batch, &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(today.calls, 2);
    let tomorrow_count: u64 = plan.batches.iter().filter(|b| b.day == 1).map(|b| b.actions.len() as u64).sum();
    assert_eq!(today.not_run, tomorrow_count);
    let config = ExecutorConfig { through_day: 1, ..ExecutorConfig::default() };
    let tomorrow = Executor::new(&provider, &token(), &log)
        .with_config(config)
        .execute(batch, &plan, &NoProgress, &CancelFlag::new())
        .await
        .expect("log");
    assert_eq!(tomorrow.calls, 2);
    assert_eq!(tomorrow.confirmed, plan.summary.total_actions);
}
