//! `/health`, `/ready` and `/metrics`.

use std::path::Path;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(metrics_text))
}

/// Liveness: the process answers.
async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Readiness: the database, Redis (when used) and the key service answer.
async fn ready(State(state): State<AppState>) -> Response {
    let mut checks = serde_json::Map::new();
    let mut ok = true;
    let db = match tokio::time::timeout(std::time::Duration::from_secs(5), state.db().ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database failed");
            ok = false;
            "unavailable".to_owned()
        }
        Err(_) => {
            ok = false;
            "timeout".to_owned()
        }
    };
    checks.insert("database".into(), json!(db));
    if let Some(redis) = &state.backends().redis_check {
        let r = match redis.check().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "readiness: redis failed");
                ok = false;
                "unavailable"
            }
        };
        checks.insert(redis.name().to_owned(), json!(r));
    }
    if let Some(kms) = &state.backends().kms {
        let r = match kms.health().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "readiness: key service failed");
                ok = false;
                "unavailable"
            }
        };
        checks.insert(format!("kms_{}", kms.name()), json!(r));
    }
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(json!({"status": if ok { "ready" } else { "not_ready" }, "checks": checks}))).into_response()
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The HTTP latency histogram's buckets, in milliseconds.
pub(crate) const LATENCY_BUCKETS_MS: [f64; 7] = [10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0];

/// Installs the process-wide Prometheus recorder (once; later calls return the same).
pub fn install_metrics() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("http_request_duration_milliseconds".into()), &LATENCY_BUCKETS_MS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let Some(handle) = install_metrics() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable").into_response();
    };
    sample_gauges(&state).await;
    let body = handle.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Reads the current values of the gauges; nothing here is estimated.
async fn sample_gauges(state: &AppState) {
    if let Some(cpu) = process_cpu_seconds() {
        metrics::gauge!("process_cpu_seconds_total").set(cpu);
    }
    if let Some(rss) = process_resident_bytes() {
        metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
    }
    let dir = state.config().data_dir.clone();
    if let Ok(Some(bytes)) = tokio::task::spawn_blocking(move || dir_size(&dir)).await {
        metrics::gauge!("data_dir_disk_usage_bytes").set(bytes as f64);
    }
    let (size, idle) = state.db().pool_stats();
    metrics::gauge!("db_pool_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(size.saturating_sub(idle as u32) as f64);
    if let Some(redis) = &state.backends().redis_check {
        for (name, value) in redis.gauges().await {
            metrics::gauge!(name).set(value);
        }
    }
    match state.queue().depth().await {
        Ok(depths) => {
            // Every job type this server runs is reported, at 0 when none is waiting, so
            // that a type whose jobs all finished does not keep its last value.
            let mut kinds: std::collections::BTreeMap<String, (u64, u64)> =
                crate::jobs::ALL_KINDS.iter().map(|k| ((*k).to_owned(), (0, 0))).collect();
            for d in depths {
                kinds.insert(d.kind, (d.queued, d.running));
            }
            for (kind, (queued, running)) in kinds {
                metrics::gauge!("job_queue_depth", "kind" => kind.clone(), "state" => "queued").set(queued as f64);
                metrics::gauge!("job_queue_depth", "kind" => kind, "state" => "running").set(running as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "queue depth unavailable"),
    }
}

/// CPU time of the process (user + system), from `/proc/self/stat`, whose clock ticks
/// are `USER_HZ` (100 on Linux, fixed by its ABI).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Resident memory, from `VmRSS` in `/proc/self/status`.
fn process_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes used by the files under `dir`; `None` when it does not exist.
fn dir_size(dir: &Path) -> Option<u64> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    if !meta.is_dir() {
        return Some(meta.len());
    }
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_read_from_proc() {
        let cpu = process_cpu_seconds().expect("cpu");
        assert!(cpu >= 0.0);
        let rss = process_resident_bytes().expect("rss");
        assert!(rss > 1024 * 1024, "a test process uses more than 1 MiB: {rss}");
    }

    #[test]
    fn dir_size_adds_up_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0u8; 234]).unwrap();
        assert_eq!(dir_size(dir.path()), Some(1234));
        assert_eq!(dir_size(&dir.path().join("missing")), None);
    }
}
