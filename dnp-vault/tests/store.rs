//! The shared SqlTokenStore suite: every check is a plain async fn run against SQLite and
//! PostgreSQL (`DNP_TEST_POSTGRES_URL`, an admin URL: each test creates its own database
//! and drops it). Then SQLite-only checks: restarts, and no plaintext in the files.
#![cfg(all(feature = "local", any(feature = "sqlite", feature = "postgres")))]

use std::sync::Arc;

use chrono::{Duration, Utc};
use dnp_core::{ConnectionId, ConnectionStatus, KmsProvider, ProviderId, StoreError, TokenSet, TokenStore, UserId};
use dnp_vault::{DataKeyCache, LocalKms, SqlTokenStore};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

enum Db {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool, #[allow(dead_code)] tempfile::TempDir),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool, #[allow(dead_code)] PgDatabase),
}

/// A database created for one test, dropped when the test ends (even if it fails).
#[cfg(feature = "postgres")]
struct PgDatabase {
    admin_url: String,
    name: String,
}

#[cfg(feature = "postgres")]
impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}

struct Harness {
    store: Arc<SqlTokenStore>,
    kms: Arc<LocalKms>,
    db: Db,
}

const SPOTIFY: &str = "spotify";

fn provider(id: &str) -> ProviderId {
    id.parse().unwrap()
}

fn tokens(tag: &str, refresh: bool, expires_in_minutes: Option<i64>) -> TokenSet {
    TokenSet {
        access_token: SecretString::from(format!("access-{tag}-{}", Uuid::new_v4().simple())),
        refresh_token: refresh.then(|| SecretString::from(format!("refresh-{tag}-{}", Uuid::new_v4().simple()))),
        expires_at: expires_in_minutes.map(|m| Utc::now() + Duration::minutes(m)),
        scopes: vec!["user-library-read".to_owned(), "user-library-modify".to_owned()],
    }
}

fn same_secret(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret() == b.expose_secret()
}

macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite($pool, _) => $body,
            #[cfg(feature = "postgres")]
            Db::Postgres($pool, _) => $body,
        }
    };
}

impl Harness {
    #[cfg(feature = "sqlite")]
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite_pool(&dir.path().join("dnp.db")).await;
        let kms = Arc::new(LocalKms::open(dir.path().join("kms.key")).unwrap());
        let store = SqlTokenStore::sqlite(pool.clone(), kms.clone());
        store.migrate().await.unwrap();
        Self { store: Arc::new(store), kms, db: Db::Sqlite(pool, dir) }
    }

    #[cfg(feature = "postgres")]
    async fn postgres() -> Self {
        use sqlx::Connection;
        use std::str::FromStr;
        let admin_url = std::env::var("DNP_TEST_POSTGRES_URL")
            .expect("DNP_TEST_POSTGRES_URL is not set: run scripts/test (it starts PostgreSQL and sets it)");
        let name = format!("dnp_vault_test_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect to DNP_TEST_POSTGRES_URL");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
        let guard = PgDatabase { admin_url: admin_url.clone(), name: name.clone() };
        let options = sqlx::postgres::PgConnectOptions::from_str(&admin_url).unwrap().database(&name);
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(8).connect_with(options).await.unwrap();
        let kms = Arc::new(LocalKms::in_memory().unwrap());
        let store = SqlTokenStore::postgres(pool.clone(), kms.clone());
        store.migrate().await.unwrap();
        Self { store: Arc::new(store), kms, db: Db::Postgres(pool, guard) }
    }

    /// Another store on the same database and KMS, with an empty data-key cache.
    fn fresh_store(&self) -> SqlTokenStore {
        let kms: Arc<dyn KmsProvider> = self.kms.clone();
        on_db!(&self.db, pool => {
            #[allow(clippy::useless_conversion)]
            let store = make_store(pool.clone().into(), kms);
            store
        })
    }

    async fn blob(&self, column: &str, id: ConnectionId) -> Option<Vec<u8>> {
        let sql = format!("SELECT {column} AS v FROM connections WHERE id = $1");
        on_db!(&self.db, pool => sqlx::query(AssertSqlSafe(sql)).bind(id.0).fetch_one(pool).await.unwrap().get("v"))
    }

    async fn set_blob(&self, column: &str, id: ConnectionId, value: Option<Vec<u8>>) {
        let sql = format!("UPDATE connections SET {column} = $1 WHERE id = $2");
        on_db!(&self.db, pool => {
            let done = sqlx::query(AssertSqlSafe(sql)).bind(value).bind(id.0).execute(pool).await.unwrap();
            assert_eq!(done.rows_affected(), 1);
        });
    }

    async fn set_uuid(&self, column: &str, id: ConnectionId, value: Uuid) {
        let sql = format!("UPDATE connections SET {column} = $1 WHERE id = $2");
        on_db!(&self.db, pool => {
            let done = sqlx::query(AssertSqlSafe(sql)).bind(value).bind(id.0).execute(pool).await.unwrap();
            assert_eq!(done.rows_affected(), 1);
        });
    }

    async fn data_key_id(&self, id: ConnectionId) -> Uuid {
        on_db!(&self.db, pool => sqlx::query("SELECT data_key_id FROM connections WHERE id = $1")
            .bind(id.0).fetch_one(pool).await.unwrap().get("data_key_id"))
    }

    async fn wrapped(&self, data_key: Uuid) -> (String, Vec<u8>) {
        on_db!(&self.db, pool => {
            let row = sqlx::query("SELECT kms_key_id, wrapped FROM data_keys WHERE id = $1")
                .bind(data_key).fetch_one(pool).await.unwrap();
            (row.get("kms_key_id"), row.get("wrapped"))
        })
    }

    async fn set_wrapped(&self, data_key: Uuid, key_id: &str, wrapped: Vec<u8>) {
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE data_keys SET kms_key_id = $1, wrapped = $2 WHERE id = $3")
                .bind(key_id).bind(wrapped).bind(data_key).execute(pool).await.unwrap();
        });
    }

    async fn data_key_ids_by_version(&self) -> Vec<String> {
        on_db!(&self.db, pool => sqlx::query("SELECT kms_key_id FROM data_keys ORDER BY id")
            .fetch_all(pool).await.unwrap().iter().map(|r| r.get::<String, _>("kms_key_id")).collect())
    }

    async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        on_db!(&self.db, pool => sqlx::query(AssertSqlSafe(sql)).fetch_one(pool).await.unwrap().get("n"))
    }

    /// Deletes a data key behind the store's back (foreign keys off for that statement).
    async fn delete_data_key_bypassing_fk(&self, data_key: Uuid) {
        match &self.db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(pool, _) => {
                let mut conn = pool.acquire().await.unwrap();
                sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await.unwrap();
                sqlx::query("DELETE FROM data_keys WHERE id = $1").bind(data_key).execute(&mut *conn).await.unwrap();
                sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await.unwrap();
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(pool, _) => {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
                sqlx::query("DELETE FROM data_keys WHERE id = $1").bind(data_key).execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
            }
        }
    }
}

enum AnyPool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for AnyPool {
    fn from(p: sqlx::SqlitePool) -> Self {
        Self::Sqlite(p)
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for AnyPool {
    fn from(p: sqlx::PgPool) -> Self {
        Self::Postgres(p)
    }
}

fn make_store(pool: AnyPool, kms: Arc<dyn KmsProvider>) -> SqlTokenStore {
    match pool {
        #[cfg(feature = "sqlite")]
        AnyPool::Sqlite(p) => SqlTokenStore::sqlite(p, kms),
        #[cfg(feature = "postgres")]
        AnyPool::Postgres(p) => SqlTokenStore::postgres(p, kms),
    }
}

#[cfg(feature = "sqlite")]
async fn sqlite_pool(path: &std::path::Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(30));
    sqlx::sqlite::SqlitePoolOptions::new().max_connections(4).connect_with(options).await.unwrap()
}

// ---------------------------------------------------------------------------------------
// The shared suite.

async fn save_and_read_back(h: Harness) {
    let user = UserId::new_random();
    let set = tokens("a", true, Some(60));
    let saved = h.store.save(user, &provider(SPOTIFY), &set).await.unwrap();
    assert_eq!(saved.user_id, user);
    assert_eq!(saved.status, ConnectionStatus::Active);
    assert_eq!(saved.scopes, set.scopes);
    assert_eq!(saved.last_used_at, None);
    assert_eq!(h.store.connection(saved.id).await.unwrap(), saved, "returned connection equals stored");
    assert_eq!(h.store.find(user, &provider(SPOTIFY)).await.unwrap(), Some(saved.clone()));
    assert_eq!(h.store.find(user, &provider("tidal")).await.unwrap(), None);

    let back = h.store.tokens(saved.id).await.unwrap();
    assert!(same_secret(&back.access_token, &set.access_token));
    assert!(same_secret(back.refresh_token.as_ref().unwrap(), set.refresh_token.as_ref().unwrap()));
    assert_eq!(back.expires_at, saved.expires_at);
    assert_eq!(back.scopes, set.scopes);
    let used = h.store.connection(saved.id).await.unwrap().last_used_at.expect("tokens() records last_used_at");
    assert!(used >= saved.created_at);

    // A fresh store (restart, empty cache) decrypts through the KMS.
    let fresh = h.fresh_store();
    let again = fresh.tokens(saved.id).await.unwrap();
    assert!(same_secret(&again.access_token, &set.access_token));
    assert_eq!(fresh.cache().stats().misses, 1);
}

async fn save_again_replaces_the_tokens_of_the_same_connection(h: Harness) {
    let user = UserId::new_random();
    let first = h.store.save(user, &provider(SPOTIFY), &tokens("first", true, Some(5))).await.unwrap();
    let data_keys = h.count("data_keys").await;
    let second_set = tokens("second", false, None);
    let second = h.store.save(user, &provider(SPOTIFY), &second_set).await.unwrap();
    assert_eq!(second.id, first.id, "one connection per (user, provider)");
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at >= first.updated_at);
    assert_eq!(second.expires_at, None);
    assert_eq!(h.count("data_keys").await, data_keys, "the row keeps its data key");
    let back = h.store.tokens(first.id).await.unwrap();
    assert!(same_secret(&back.access_token, &second_set.access_token));
    assert!(back.refresh_token.is_none(), "save replaces the whole token set");
    assert_eq!(h.store.list(user).await.unwrap().len(), 1);
}

async fn update_tokens_keeps_the_refresh_token_when_none_and_reactivates(h: Harness) {
    let user = UserId::new_random();
    let original = tokens("orig", true, Some(1));
    let conn = h.store.save(user, &provider(SPOTIFY), &original).await.unwrap();
    h.store.set_status(conn.id, ConnectionStatus::NeedsReauth).await.unwrap();
    assert_eq!(h.store.connection(conn.id).await.unwrap().status, ConnectionStatus::NeedsReauth);

    let refreshed = tokens("refreshed", false, Some(60));
    let updated = h.store.update_tokens(conn.id, &refreshed).await.unwrap();
    assert_eq!(updated.status, ConnectionStatus::Active);
    assert_eq!(
        updated.expires_at,
        refreshed.expires_at.map(|t| chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap())
    );
    let back = h.store.tokens(conn.id).await.unwrap();
    assert!(same_secret(&back.access_token, &refreshed.access_token));
    assert!(same_secret(back.refresh_token.as_ref().unwrap(), original.refresh_token.as_ref().unwrap()));

    let rotated = tokens("rotated", true, Some(60));
    h.store.update_tokens(conn.id, &rotated).await.unwrap();
    let back = h.fresh_store().tokens(conn.id).await.unwrap();
    assert!(same_secret(back.refresh_token.as_ref().unwrap(), rotated.refresh_token.as_ref().unwrap()));
}

async fn missing_connections_are_not_found_and_delete_is_idempotent(h: Harness) {
    let id = ConnectionId::new_random();
    assert!(matches!(h.store.connection(id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(h.store.tokens(id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(h.store.update_tokens(id, &tokens("x", false, None)).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(h.store.set_status(id, ConnectionStatus::Error).await, Err(StoreError::NotFound { .. })));
    h.store.delete(id).await.unwrap();

    let conn = h.store.save(UserId::new_random(), &provider(SPOTIFY), &tokens("d", true, None)).await.unwrap();
    assert_eq!(h.count("data_keys").await, 1);
    h.store.delete(conn.id).await.unwrap();
    h.store.delete(conn.id).await.unwrap();
    assert!(matches!(h.store.tokens(conn.id).await, Err(StoreError::NotFound { .. })));
    assert_eq!(h.count("connections").await, 0);
    assert_eq!(h.count("data_keys").await, 0, "the data key goes with its connection");
}

async fn expiring_before_is_soonest_first_skips_needs_reauth_and_limits(h: Harness) {
    let now = Utc::now();
    let mut ids = Vec::new();
    for (i, minutes) in [30i64, 5, 90, 10].iter().enumerate() {
        let mut set = tokens(&format!("e{i}"), true, None);
        set.expires_at = Some(now + Duration::minutes(*minutes));
        ids.push(h.store.save(UserId::new_random(), &provider(SPOTIFY), &set).await.unwrap().id);
    }
    h.store.save(UserId::new_random(), &provider(SPOTIFY), &tokens("never", true, None)).await.unwrap();
    h.store.set_status(ids[3], ConnectionStatus::NeedsReauth).await.unwrap();

    let soon = h.store.expiring_before(now + Duration::minutes(60), 10).await.unwrap();
    assert_eq!(soon.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[1], ids[0]]);
    let one = h.store.expiring_before(now + Duration::minutes(120), 1).await.unwrap();
    assert_eq!(one.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[1]]);
    assert!(h.store.expiring_before(now, 10).await.unwrap().is_empty());
}

async fn list_is_per_user_ordered_by_provider(h: Harness) {
    let (alice, bob) = (UserId::new_random(), UserId::new_random());
    for p in ["tidal", "apple_music", "spotify"] {
        h.store.save(alice, &provider(p), &tokens(p, false, None)).await.unwrap();
    }
    h.store.save(bob, &provider("spotify"), &tokens("bob", false, None)).await.unwrap();
    let providers: Vec<String> =
        h.store.list(alice).await.unwrap().into_iter().map(|c| c.provider.to_string()).collect();
    assert_eq!(providers, vec!["apple_music", "spotify", "tidal"]);
    assert_eq!(h.store.list(bob).await.unwrap().len(), 1);
    assert!(h.store.list(UserId::new_random()).await.unwrap().is_empty());
}

fn expect_crypto(
    result: Result<TokenSet, StoreError>,
    connection: ConnectionId,
    field: &str,
    secrets: &[&SecretString],
) {
    match result {
        Err(err @ StoreError::Crypto { .. }) => {
            let StoreError::Crypto { connection: c, field: f, .. } = &err else { unreachable!() };
            assert_eq!(*c, connection, "names the connection");
            assert_eq!(*f, field);
            let text = format!("{err} {err:?}");
            assert!(text.contains(&connection.to_string()), "the message names the connection: {text}");
            for secret in secrets {
                assert!(!text.contains(secret.expose_secret()), "the message never contains a token: {text}");
            }
        }
        Err(other) => panic!("expected StoreError::Crypto for {field}, got {other:?}"),
        Ok(_) => panic!("expected StoreError::Crypto for {field}, but it decrypted"),
    }
}

async fn ciphertexts_moved_to_another_row_user_or_field_fail(h: Harness) {
    let (alice, bob) = (UserId::new_random(), UserId::new_random());
    let a_set = tokens("alice", true, None);
    let b_set = tokens("bob", true, None);
    let a = h.store.save(alice, &provider(SPOTIFY), &a_set).await.unwrap();
    let b = h.store.save(bob, &provider(SPOTIFY), &b_set).await.unwrap();
    let secrets = [&a_set.access_token, &b_set.access_token];

    // Alice's access token copied into Bob's row (Bob's data key): fails.
    let a_access = h.blob("access_token_encrypted", a.id).await;
    h.set_blob("access_token_encrypted", b.id, a_access.clone()).await;
    expect_crypto(h.store.tokens(b.id).await, b.id, "access_token", &secrets);

    // ...and with Alice's data key pointed at too: still fails (the AAD names Alice's row).
    let a_key = h.data_key_id(a.id).await;
    let b_key = h.data_key_id(b.id).await;
    h.set_uuid("data_key_id", b.id, a_key).await;
    expect_crypto(h.fresh_store().tokens(b.id).await, b.id, "access_token", &secrets);
    h.set_uuid("data_key_id", b.id, b_key).await;
    h.store.save(bob, &provider(SPOTIFY), &b_set).await.unwrap();
    assert!(h.store.tokens(b.id).await.is_ok(), "restored");

    // Refresh token copied into the access token field of the same row: fails.
    let a_refresh = h.blob("refresh_token_encrypted", a.id).await;
    h.set_blob("access_token_encrypted", a.id, a_refresh).await;
    expect_crypto(h.store.tokens(a.id).await, a.id, "access_token", &secrets);
    h.set_blob("access_token_encrypted", a.id, a_access).await;
    assert!(h.store.tokens(a.id).await.is_ok(), "restored");

    // The row handed to another user: fails.
    h.set_uuid("user_id", a.id, UserId::new_random().0).await;
    expect_crypto(h.store.tokens(a.id).await, a.id, "access_token", &secrets);
}

async fn corrupt_or_truncated_ciphertext_is_a_typed_error_naming_the_connection(h: Harness) {
    let set = tokens("corrupt", true, None);
    let conn = h.store.save(UserId::new_random(), &provider(SPOTIFY), &set).await.unwrap();
    let secrets = [&set.access_token, set.refresh_token.as_ref().unwrap()];
    let original = h.blob("refresh_token_encrypted", conn.id).await.unwrap();

    let mut flipped = original.clone();
    flipped[20] ^= 0x40;
    h.set_blob("refresh_token_encrypted", conn.id, Some(flipped)).await;
    expect_crypto(h.store.tokens(conn.id).await, conn.id, "refresh_token", &secrets);

    h.set_blob("refresh_token_encrypted", conn.id, Some(original[..10].to_vec())).await;
    expect_crypto(h.store.tokens(conn.id).await, conn.id, "refresh_token", &secrets);

    let mut versioned = original.clone();
    versioned[0] = 9;
    h.set_blob("refresh_token_encrypted", conn.id, Some(versioned)).await;
    expect_crypto(h.store.tokens(conn.id).await, conn.id, "refresh_token", &secrets);

    h.set_blob("refresh_token_encrypted", conn.id, Some(original)).await;
    assert!(h.store.tokens(conn.id).await.is_ok());
}

async fn unknown_key_version_or_missing_data_key_is_a_typed_error(h: Harness) {
    let set = tokens("keys", true, None);
    let conn = h.store.save(UserId::new_random(), &provider(SPOTIFY), &set).await.unwrap();
    let secrets = [&set.access_token];
    let data_key = h.data_key_id(conn.id).await;
    let (key_id, wrapped) = h.wrapped(data_key).await;
    assert_eq!(key_id, "local:v1");

    // The wrapped key claims a version the KMS never had.
    let mut unknown = wrapped.clone();
    unknown[1..5].copy_from_slice(&99u32.to_be_bytes());
    h.set_wrapped(data_key, "local:v99", unknown).await;
    let result = h.fresh_store().tokens(conn.id).await;
    expect_crypto(result, conn.id, "data_key", &secrets);
    let err = h.fresh_store().tokens(conn.id).await.unwrap_err().to_string();
    assert!(err.contains("local:v99"), "names the key version: {err}");

    // A wrapped key that is garbage.
    h.set_wrapped(data_key, "local:v1", vec![1, 2, 3]).await;
    expect_crypto(h.fresh_store().tokens(conn.id).await, conn.id, "data_key", &secrets);
    h.set_wrapped(data_key, &key_id, wrapped).await;
    assert!(h.fresh_store().tokens(conn.id).await.is_ok(), "restored");

    // The data key row is gone.
    h.delete_data_key_bypassing_fk(data_key).await;
    expect_crypto(h.fresh_store().tokens(conn.id).await, conn.id, "data_key", &secrets);
    let err = h.fresh_store().tokens(conn.id).await.unwrap_err().to_string();
    assert!(err.contains("missing") && err.contains(&data_key.to_string()), "{err}");
}

async fn concurrent_writers_lose_nothing(h: Harness) {
    const USERS: usize = 12;
    const UPDATES: usize = 12;
    let shared_user = UserId::new_random();
    let first = tokens("shared-0", true, Some(60));
    let shared = h.store.save(shared_user, &provider(SPOTIFY), &first).await.unwrap();
    let racing_user = UserId::new_random();

    let mut tasks = tokio::task::JoinSet::new();
    // Different connections, created concurrently.
    for i in 0..USERS {
        let store = h.store.clone();
        tasks.spawn(async move {
            let user = UserId::new_random();
            let set = tokens(&format!("u{i}"), true, Some(30));
            let conn = store.save(user, &provider(SPOTIFY), &set).await?;
            let back = store.tokens(conn.id).await?;
            assert!(same_secret(&back.access_token, &set.access_token));
            Ok::<_, StoreError>(None)
        });
    }
    // The same connection, refreshed concurrently.
    for i in 0..UPDATES {
        let store = h.store.clone();
        tasks.spawn(async move {
            let set = tokens(&format!("shared-{}", i + 1), i % 2 == 0, Some(60));
            store.update_tokens(shared.id, &set).await?;
            Ok(Some(set.access_token.expose_secret().to_owned()))
        });
    }
    // The same (user, provider) created by several tasks at once.
    for i in 0..6 {
        let store = h.store.clone();
        tasks.spawn(async move {
            store.save(racing_user, &provider("tidal"), &tokens(&format!("race{i}"), true, None)).await?;
            Ok(None)
        });
    }
    let mut written = vec![first.access_token.expose_secret().to_owned()];
    while let Some(done) = tasks.join_next().await {
        if let Some(token) = done.unwrap().unwrap() {
            written.push(token);
        }
    }
    let final_set = h.store.tokens(shared.id).await.unwrap();
    assert!(written.contains(&final_set.access_token.expose_secret().to_owned()), "one of the written sets, whole");
    assert!(final_set.refresh_token.is_some());
    assert_eq!(h.store.list(racing_user).await.unwrap().len(), 1, "racing saves made one connection");
    h.store.tokens(h.store.list(racing_user).await.unwrap()[0].id).await.unwrap();
    assert_eq!(h.count("connections").await, (USERS + 2) as i64);
    assert_eq!(h.count("data_keys").await, (USERS + 2) as i64, "no orphan data keys from lost races");
}

async fn rotation_rewraps_every_data_key_without_reencrypting_tokens(h: Harness) {
    let mut conns = Vec::new();
    for i in 0..23 {
        let set = tokens(&format!("rot{i}"), true, None);
        let conn = h.store.save(UserId::new_random(), &provider(SPOTIFY), &set).await.unwrap();
        let access = h.blob("access_token_encrypted", conn.id).await.unwrap();
        conns.push((conn.id, set, access));
    }
    let report = h.store.rotate_all(5).await.unwrap();
    assert_eq!(report.key_id, "local:v2");
    assert_eq!(report.rewrapped, 23);
    assert!(report.failed.is_empty());
    assert!(h.data_key_ids_by_version().await.iter().all(|v| v == "local:v2"));
    let fresh = h.fresh_store();
    for (id, set, access) in &conns {
        assert_eq!(h.blob("access_token_encrypted", *id).await.as_ref(), Some(access), "token not re-encrypted");
        assert!(same_secret(&fresh.tokens(*id).await.unwrap().access_token, &set.access_token));
    }
    assert_eq!(h.store.rewrap_data_keys(5).await.unwrap().rewrapped, 0, "nothing left to do");

    // Interrupted: the key rotated, then 9 keys were re-wrapped before a crash. The next
    // run finishes the other 14.
    h.kms.rotate_key().await.unwrap();
    for (id, _, _) in conns.iter().take(9) {
        let dk = h.data_key_id(*id).await;
        let (key_id, wrapped) = h.wrapped(dk).await;
        let new = h.kms.rewrap(&dnp_core::WrappedKey { key_id, ciphertext: wrapped }).await.unwrap();
        h.set_wrapped(dk, &new.key_id, new.ciphertext).await;
    }
    let report = h.store.rewrap_data_keys(4).await.unwrap();
    assert_eq!((report.key_id.as_str(), report.rewrapped), ("local:v3", 14));
    let fresh = h.fresh_store();
    for (id, set, _) in &conns {
        assert!(same_secret(&fresh.tokens(*id).await.unwrap().access_token, &set.access_token));
    }

    // A data key the KMS cannot unwrap is reported (naming its connection) and skipped.
    h.kms.rotate_key().await.unwrap();
    let broken = conns[0].0;
    let dk = h.data_key_id(broken).await;
    h.set_wrapped(dk, "local:v3", vec![0u8; 65]).await;
    let report = h.store.rewrap_data_keys(100).await.unwrap();
    assert_eq!(report.rewrapped, 22);
    assert_eq!(report.failed.len(), 1);
    assert!(matches!(&report.failed[0], StoreError::Crypto { connection, .. } if *connection == broken));
}

async fn migrate_is_idempotent_and_coexists_with_application_migrations(h: Harness) {
    use sqlx::SqlSafeStr;
    let app = || {
        sqlx::migrate::Migrator::with_migrations(vec![sqlx::migrate::Migration::new(
            1,
            "app users".into(),
            sqlx::migrate::MigrationType::Simple,
            "CREATE TABLE app_users (id TEXT PRIMARY KEY)".into_sql_str(),
            false,
        )])
    };
    on_db!(&h.db, pool => {
        app().run(pool).await.expect("the application's migrator runs beside ours");
        h.store.migrate().await.unwrap();
        app().run(pool).await.expect("and again, after ours");
        h.store.migrate().await.unwrap();
        let ours: i64 = sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM {}", dnp_vault::MIGRATIONS_TABLE)))
            .fetch_one(pool).await.unwrap().get("n");
        let theirs: i64 = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations").fetch_one(pool).await.unwrap().get("n");
        assert_eq!((ours, theirs), (1, 1), "each history has only its own version 1");
    });
    h.store.save(UserId::new_random(), &provider(SPOTIFY), &tokens("m", false, None)).await.unwrap();
}

async fn the_data_key_cache_saves_kms_calls(h: Harness) {
    let conn = h.store.save(UserId::new_random(), &provider(SPOTIFY), &tokens("c", true, None)).await.unwrap();
    h.store.tokens(conn.id).await.unwrap();
    h.store.tokens(conn.id).await.unwrap();
    let stats = h.store.cache().stats();
    assert_eq!((stats.hits, stats.misses), (2, 0), "a new row's key is cached when it is made");

    let small = h.fresh_store().with_cache(DataKeyCache::new(1));
    let other = h.store.save(UserId::new_random(), &provider(SPOTIFY), &tokens("o", true, None)).await.unwrap();
    small.tokens(conn.id).await.unwrap(); // miss
    small.tokens(conn.id).await.unwrap(); // hit
    small.tokens(other.id).await.unwrap(); // miss, evicts conn's key
    small.tokens(conn.id).await.unwrap(); // miss
    let stats = small.cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.len), (1, 3, 1));

    let none = h.fresh_store().with_cache(DataKeyCache::new(0));
    none.tokens(conn.id).await.unwrap();
    none.tokens(conn.id).await.unwrap();
    assert_eq!(none.cache().stats().misses, 2, "capacity 0 disables caching");
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Harness::sqlite().await).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Harness::postgres().await).await;
                }
            )*
        }
    };
}

suite!(
    save_and_read_back,
    save_again_replaces_the_tokens_of_the_same_connection,
    update_tokens_keeps_the_refresh_token_when_none_and_reactivates,
    missing_connections_are_not_found_and_delete_is_idempotent,
    expiring_before_is_soonest_first_skips_needs_reauth_and_limits,
    list_is_per_user_ordered_by_provider,
    ciphertexts_moved_to_another_row_user_or_field_fail,
    corrupt_or_truncated_ciphertext_is_a_typed_error_naming_the_connection,
    unknown_key_version_or_missing_data_key_is_a_typed_error,
    concurrent_writers_lose_nothing,
    rotation_rewraps_every_data_key_without_reencrypting_tokens,
    migrate_is_idempotent_and_coexists_with_application_migrations,
    the_data_key_cache_saves_kms_calls,
);

// ---------------------------------------------------------------------------------------
// SQLite only: the file on disk.

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, key) = (dir.path().join("dnp.db"), dir.path().join("kms.key"));
    let mut saved = Vec::new();
    {
        let pool = sqlite_pool(&db).await;
        let store = SqlTokenStore::sqlite(pool.clone(), Arc::new(LocalKms::open(&key).unwrap()));
        store.migrate().await.unwrap();
        for i in 0..5 {
            let set = tokens(&format!("restart{i}"), i % 2 == 0, Some(10 + i));
            let conn = store.save(UserId::new_random(), &provider(SPOTIFY), &set).await.unwrap();
            saved.push((conn, set));
        }
        store.set_status(saved[1].0.id, ConnectionStatus::NeedsReauth).await.unwrap();
        drop(store);
        pool.close().await;
    }
    let pool = sqlite_pool(&db).await;
    let store = SqlTokenStore::sqlite(pool, Arc::new(LocalKms::open(&key).unwrap()));
    store.migrate().await.unwrap();
    for (i, (conn, set)) in saved.iter().enumerate() {
        let back = store.connection(conn.id).await.unwrap();
        let expected_status = if i == 1 { ConnectionStatus::NeedsReauth } else { ConnectionStatus::Active };
        assert_eq!(back.status, expected_status);
        assert_eq!(back.created_at, conn.created_at);
        assert_eq!(back.expires_at, conn.expires_at);
        let t = store.tokens(conn.id).await.unwrap();
        assert!(same_secret(&t.access_token, &set.access_token));
        assert_eq!(t.refresh_token.is_some(), set.refresh_token.is_some());
        if let (Some(a), Some(b)) = (&t.refresh_token, &set.refresh_token) {
            assert!(same_secret(a, b));
        }
    }
}

#[cfg(feature = "sqlite")]
fn database_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("dnp.db"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[cfg(feature = "sqlite")]
fn assert_absent(files: &[(String, Vec<u8>)], needles: &[String]) {
    for (name, bytes) in files {
        for needle in needles {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "plaintext token found in {name}");
        }
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_never_hold_a_plaintext_token() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite_pool(&dir.path().join("dnp.db")).await;
    let store = SqlTokenStore::sqlite(pool.clone(), Arc::new(LocalKms::open(dir.path().join("kms.key")).unwrap()));
    store.migrate().await.unwrap();
    let mut needles = Vec::new();
    let mut ids = Vec::new();
    for i in 0..20 {
        let set = tokens(&format!("plain{i}"), true, Some(60));
        needles.push(set.access_token.expose_secret().to_owned());
        needles.push(set.refresh_token.as_ref().unwrap().expose_secret().to_owned());
        ids.push(store.save(UserId::new_random(), &provider(SPOTIFY), &set).await.unwrap().id);
    }
    for id in ids.iter().take(10) {
        let set = tokens("refreshed", true, Some(60));
        needles.push(set.access_token.expose_secret().to_owned());
        needles.push(set.refresh_token.as_ref().unwrap().expose_secret().to_owned());
        store.update_tokens(*id, &set).await.unwrap();
    }
    store.delete(ids[15]).await.unwrap();

    // While open: the main file, the WAL and its index.
    let files = database_files(dir.path());
    assert!(files.iter().any(|(n, b)| n.ends_with("-wal") && !b.is_empty()), "the WAL holds the writes");
    // The scan can find what it looks for: the provider name is stored in the clear.
    assert!(files.iter().any(|(_, b)| b.windows(7).any(|w| w == b"spotify")), "the scan sees row data");
    assert_absent(&files, &needles);

    // After a checkpoint and close, the main file.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&pool).await.unwrap();
    drop(store);
    pool.close().await;
    let files = database_files(dir.path());
    assert!(files.iter().any(|(n, b)| n.ends_with("dnp.db") && b.len() > 4096));
    assert_absent(&files, &needles);
}
