//! Throughput of the job queue backends, and Redis latency for other clients meanwhile.
//!
//! DNP_TEST_CMD='cargo bench -p dnp-benches --bench queue' scripts/test
//! (or set DNP_TEST_POSTGRES_URL and DNP_TEST_REDIS_URL yourself and run
//! `cargo bench -p dnp-benches --bench queue`; `-- --jobs N --workers N --batch N
//! --backends sqlite,redis` change the run; `-- --one-at-a-time` enqueues with `enqueue` and
//! processes with `reserve` → `complete` instead, for comparison).
//!
//! For each backend: 4 producers enqueue 10,000 jobs with `enqueue_many`, 100 jobs per
//! call, then 4 workers drain them, each reserving once and then looping
//! `complete_and_reserve` (one commit per job on the SQL backend) until every job is done.
//! Prints jobs per second for each phase and end to end (10,000 / (enqueue time +
//! processing time)). Backends: `sqlite` (reference, WAL, synchronous=NORMAL), `postgres`
//! (the default and the headline: durable commits), `postgres-async` (a pool whose
//! sessions set `synchronous_commit = off`, for reference), `redis`. For Redis, another
//! client PINGs Redis in a loop from its own thread for the whole run and the latency of
//! its PINGs is printed (p50, p99, max). Targets: at least 2,000 jobs/s end to end on
//! `postgres` (durable) and `redis`; Redis PING max under 5 ms. Exits 1 when a target is
//! missed or a job was not done exactly once.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dnp_core::{JobQueue, NewJob};
use dnp_queue::{RedisJobQueue, RedisQueueOptions, SqlJobQueue};
use sqlx::{ConnectOptions, Connection};

const TARGET_JOBS_PER_SEC: f64 = 2000.0;
const TARGET_PING_MS: f64 = 5.0;

struct Args {
    jobs: usize,
    workers: usize,
    batch: usize,
    one_at_a_time: bool,
    backends: Vec<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        jobs: 10_000,
        workers: 4,
        batch: 100,
        one_at_a_time: false,
        backends: ["sqlite", "postgres", "postgres-async", "redis"].map(String::from).to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--jobs" => a.jobs = value("--jobs")?.parse().map_err(|_| "--jobs: not a number")?,
            "--workers" => a.workers = value("--workers")?.parse().map_err(|_| "--workers: not a number")?,
            "--one-at-a-time" => a.one_at_a_time = true,
            "--batch" => a.batch = value("--batch")?.parse().map_err(|_| "--batch: not a number")?,
            "--backends" => a.backends = value("--backends")?.split(',').map(str::to_owned).collect(),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    if a.jobs == 0 || a.workers == 0 || a.batch == 0 {
        return Err("--jobs, --workers and --batch must be at least 1".into());
    }
    Ok(a)
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is unset: run scripts/test (see the top of benches/queue.rs)"))
}

struct Figures {
    enqueue: Duration,
    process: Duration,
}

/// Enqueues the jobs with `workers` producers (`enqueue_many`, `batch` jobs per call), then
/// drains them with `workers` workers looping `complete_and_reserve` (with `--one-at-a-time`:
/// `enqueue` per job, and `reserve` → `complete`).
async fn run(q: Arc<dyn JobQueue>, a: &Args) -> Result<Figures, String> {
    let (jobs, workers, batch, single) = (a.jobs, a.workers, a.batch, a.one_at_a_time);
    let start = Instant::now();
    let mut producers = Vec::new();
    for p in 0..workers {
        let q = q.clone();
        producers.push(tokio::spawn(async move {
            let mine: Vec<usize> = (p..jobs).step_by(workers).collect();
            for chunk in mine.chunks(batch) {
                let batch = chunk
                    .iter()
                    .map(|&i| NewJob::new("bench", serde_json::json!({ "i": i })).with_priority((i % 3) as i32))
                    .collect();
                let stored = if single {
                    let mut stored = Vec::new();
                    for job in batch {
                        stored.push(q.enqueue(job).await.map_err(|e| e.to_string())?);
                    }
                    stored
                } else {
                    q.enqueue_many(batch).await.map_err(|e| e.to_string())?
                };
                if stored.len() != chunk.len() {
                    return Err(format!("enqueue_many returned {} jobs for {}", stored.len(), chunk.len()));
                }
            }
            Ok::<_, String>(())
        }));
    }
    for p in producers {
        p.await.map_err(|e| e.to_string())??;
    }
    let enqueue = start.elapsed();

    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut consumers = Vec::new();
    for w in 0..workers {
        let (q, done) = (q.clone(), done.clone());
        consumers.push(tokio::spawn(async move {
            let name = format!("bench-worker-{w}");
            let lease_for = Duration::from_secs(60);
            let mut next = None;
            while done.load(Ordering::SeqCst) < jobs as u64 {
                match next.take() {
                    Some(lease) => {
                        let lease: dnp_core::Lease = lease;
                        if lease.job.attempts != 1 {
                            return Err(format!("job {} handed out twice", lease.job.id));
                        }
                        // Completes this job and leases the next in one commit.
                        next = if single {
                            q.complete(&lease).await.map_err(|e| e.to_string())?;
                            None
                        } else {
                            q.complete_and_reserve(&lease, &name, lease_for).await.map_err(|e| e.to_string())?
                        };
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    None => {
                        next = q.reserve(&name, lease_for).await.map_err(|e| e.to_string())?;
                        if next.is_none() {
                            // Every remaining job is leased by another worker at this instant.
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
            }
            if let Some(lease) = next {
                return Err(format!("job {} leased after the last job was done", lease.job.id));
            }
            Ok::<_, String>(())
        }));
    }
    for c in consumers {
        c.await.map_err(|e| e.to_string())??;
    }
    let process = start.elapsed();
    let left: u64 = q.depth().await.map_err(|e| e.to_string())?.iter().map(|d| d.queued + d.running).sum();
    if done.load(Ordering::SeqCst) != jobs as u64 || left != 0 {
        return Err(format!("{} of {jobs} jobs done, {left} left in the queue", done.load(Ordering::SeqCst)));
    }
    Ok(Figures { enqueue, process })
}

fn report(backend: &str, jobs: usize, workers: usize, f: &Figures) -> f64 {
    let rate = |d: Duration| jobs as f64 / d.as_secs_f64();
    let end_to_end = rate(f.enqueue + f.process);
    println!(
        "{backend:<10} {jobs} jobs, {workers} workers: enqueue {:>7.0} jobs/s ({:.2} s), reserve+complete {:>7.0} jobs/s ({:.2} s), end to end {:>7.0} jobs/s",
        rate(f.enqueue),
        f.enqueue.as_secs_f64(),
        rate(f.process),
        f.process.as_secs_f64(),
        end_to_end
    );
    end_to_end
}

async fn sqlite(a: &Args) -> Result<f64, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{}/bench.db", dir.path().display()))
        .map_err(|e| e.to_string())?
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(a.workers as u32 + 1)
        .connect_with(options)
        .await
        .map_err(|e| e.to_string())?;
    let q = SqlJobQueue::sqlite(pool);
    q.migrate().await.map_err(|e| e.to_string())?;
    let f = run(Arc::new(q), a).await?;
    Ok(report("sqlite", a.jobs, a.workers, &f))
}

/// Transactions committed in database `name` so far (sessions report theirs when they end).
async fn commits(conn: &mut sqlx::PgConnection, name: &str) -> Result<i64, String> {
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut *conn).await.map_err(|e| e.to_string())?;
    sqlx::query_scalar::<_, i64>("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())
}

async fn postgres(a: &Args, synchronous_commit: bool) -> Result<f64, String> {
    let admin = sqlx::postgres::PgConnectOptions::from_str(&env("DNP_TEST_POSTGRES_URL")?)
        .map_err(|e| e.to_string())?
        .disable_statement_logging();
    let name = format!("dnp_queue_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = admin.connect().await.map_err(|e| e.to_string())?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        let mut options = admin.clone().database(&name);
        if !synchronous_commit {
            options = options.options([("synchronous_commit", "off")]);
        }
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(a.workers as u32 * 2)
            .connect_with(options.clone())
            .await
            .map_err(|e| e.to_string())?;
        let q = SqlJobQueue::postgres(pool.clone());
        q.migrate().await.map_err(|e| e.to_string())?;
        pool.close().await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(a.workers as u32 * 2)
            .connect_with(options)
            .await
            .map_err(|e| e.to_string())?;
        let mut stats = admin.connect().await.map_err(|e| e.to_string())?;
        let before = commits(&mut stats, &name).await?;
        let f = run(Arc::new(SqlJobQueue::postgres(pool.clone())), a).await;
        pool.close().await;
        // Sessions flush their statistics when they end; give the server a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = commits(&mut stats, &name).await?;
        stats.close().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((f?, after - before))
    }
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let label = if synchronous_commit { "postgres" } else { "postgres-async" };
    let (f, commits) = result?;
    let rate = report(label, a.jobs, a.workers, &f);
    println!(
        "{label:<10} {commits} commits in the bench's database during the run: {:.2} per job",
        commits as f64 / a.jobs as f64
    );
    Ok(rate)
}

async fn redis_bench(a: &Args) -> Result<(f64, f64), String> {
    let url = env("DNP_TEST_REDIS_URL")?;
    let prefix = format!("dnp:bench:{}:", uuid::Uuid::new_v4().simple());
    let q = RedisJobQueue::connect(&url, RedisQueueOptions::default().with_prefix(&prefix))
        .await
        .map_err(|e| e.to_string())?;

    // Another client: its own connection on its own OS thread (not this runtime, whose
    // scheduling would add to the figures), PINGing back to back. First for as long as the
    // run will take with no queue traffic (the machine's own baseline), then during the run.
    let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let ping_loop = |stop: Arc<AtomicBool>| -> Result<std::thread::JoinHandle<Result<Vec<Duration>, String>>, String> {
        let mut conn = client.get_connection().map_err(|e| e.to_string())?;
        Ok(std::thread::spawn(move || {
            let mut samples = Vec::with_capacity(100_000);
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut conn);
                samples.push(t.elapsed());
                if let Err(e) = pong {
                    return Err(e.to_string());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(samples)
        }))
    };
    let mut stats = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    let script_stats = |info: String| -> (u64, u64) {
        // `cmdstat_evalsha:calls=N,usec=M,...`
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_evalsha:"))
            .map(|l| {
                let field = |name: &str| {
                    l.split(',').find_map(|kv| kv.strip_prefix(name)).and_then(|v| v.parse().ok()).unwrap_or(0)
                };
                (field("calls="), field("usec="))
            })
            .unwrap_or((0, 0))
    };
    let before: String =
        redis::cmd("INFO").arg("commandstats").query_async(&mut stats).await.map_err(|e| e.to_string())?;

    let stop_baseline = Arc::new(AtomicBool::new(false));
    let baseline = ping_loop(stop_baseline.clone())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_baseline.store(true, Ordering::SeqCst);
    let baseline = baseline.join().map_err(|_| "the PING thread panicked".to_owned())??;

    let stop = Arc::new(AtomicBool::new(false));
    let pinger = ping_loop(stop.clone())?;
    let result = run(Arc::new(q.clone()), a).await;
    stop.store(true, Ordering::SeqCst);
    let samples = pinger.join().map_err(|_| "the PING thread panicked".to_owned())??;
    // Clean up the bench's keys (finished jobs and their indexes) by SCAN.
    q.cleanup(chrono::Utc::now() + chrono::Duration::hours(1)).await.map_err(|e| e.to_string())?;
    let f = result?;
    let rate = report("redis", a.jobs, a.workers, &f);
    let after: String =
        redis::cmd("INFO").arg("commandstats").query_async(&mut stats).await.map_err(|e| e.to_string())?;
    let ((c0, u0), (c1, u1)) = (script_stats(before), script_stats(after));
    let summary = |mut samples: Vec<Duration>| -> (usize, f64, f64, f64) {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let pct = |p: f64| ms(samples[((samples.len() - 1) as f64 * p).round() as usize]);
        (samples.len(), pct(0.50), pct(0.99), samples.last().map_or(0.0, |d| ms(*d)))
    };
    let (n, p50, p99, max) = summary(samples);
    println!(
        "redis      PING from another client during the run: {n} pings, p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms"
    );
    let (bn, b50, b99, bmax) = summary(baseline);
    println!(
        "redis      PING with no queue traffic (2 s before):  {bn} pings, p50 {b50:.3} ms, p99 {b99:.3} ms, max {bmax:.3} ms"
    );
    if c1 > c0 {
        println!(
            "redis      server time per queue script (EVALSHA, all clients of this server): {:.1} us over {} calls",
            (u1 - u0) as f64 / (c1 - c0) as f64,
            c1 - c0
        );
    }
    Ok((rate, max))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("queue bench: {e}");
            std::process::exit(2);
        }
    };
    if a.one_at_a_time {
        println!("one at a time: enqueue per job, reserve → complete");
    } else {
        println!("batched: enqueue_many of {} jobs, complete_and_reserve", a.batch);
    }
    let mut failed = Vec::new();
    for backend in &a.backends {
        let outcome = match backend.as_str() {
            "sqlite" => sqlite(&a).await.map(|_| ()), // for reference: no target
            // Durable commits: the headline figure.
            "postgres" => postgres(&a, true).await.map(|rate| {
                if rate < TARGET_JOBS_PER_SEC {
                    failed.push(format!("postgres: {rate:.0} jobs/s < {TARGET_JOBS_PER_SEC}"));
                }
            }),
            // Asynchronous commits, for reference: no target.
            "postgres-async" => postgres(&a, false).await.map(|_| ()),
            "redis" => redis_bench(&a).await.map(|(rate, max)| {
                if rate < TARGET_JOBS_PER_SEC {
                    failed.push(format!("redis: {rate:.0} jobs/s < {TARGET_JOBS_PER_SEC}"));
                }
                if max >= TARGET_PING_MS {
                    failed.push(format!("redis: PING max {max:.3} ms >= {TARGET_PING_MS} ms"));
                }
            }),
            other => Err(format!("unknown backend {other:?} (sqlite, postgres, postgres-async, redis)")),
        };
        if let Err(e) = outcome {
            failed.push(format!("{backend}: {e}"));
        }
    }
    if !failed.is_empty() {
        eprintln!("queue bench: targets missed or errors:\n  {}", failed.join("\n  "));
        std::process::exit(1);
    }
}
