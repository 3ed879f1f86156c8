//! The backend-neutral form of a stored job, time helpers and the retry jitter.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dnp_core::{Job, JobId, JobProgress, JobStatus, StoreError, UserId};
use uuid::Uuid;

/// A stored value that does not decode: a row or hash written by something else.
#[derive(Debug)]
pub(crate) struct Corrupt(pub(crate) String);

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt job record: {}", self.0)
    }
}

impl std::error::Error for Corrupt {}

pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::backend(Corrupt(what.into()))
}

/// Microseconds since the Unix epoch: the unit every backend stores times in, so that
/// SQLite, PostgreSQL and Redis scores compare the same way.
pub(crate) fn to_us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Now, in microseconds.
pub(crate) fn now_us() -> i64 {
    to_us(Utc::now())
}

/// A duration in microseconds, saturating.
pub(crate) fn dur_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A number in `[0, 1)` from the random bits of a lease token (a v4 UUID): the jitter
/// of the retry delay, fresh for every attempt, without a random number generator.
pub(crate) fn jitter(token: Uuid) -> f64 {
    let b = token.as_bytes();
    f64::from(u16::from_le_bytes([b[0], b[1]])) / 65536.0
}

pub(crate) fn parse_status(s: &str) -> Result<JobStatus, StoreError> {
    Ok(match s {
        "queued" => JobStatus::Queued,
        "running" => JobStatus::Running,
        "succeeded" => JobStatus::Succeeded,
        "dead" => JobStatus::Dead,
        "cancelled" => JobStatus::Cancelled,
        other => return Err(corrupt(format!("unknown status {other:?}"))),
    })
}

/// A job as its columns or hash fields hold it.
#[derive(Debug, Default)]
pub(crate) struct RawJob {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) payload: String,
    pub(crate) owner: Option<String>,
    pub(crate) status: String,
    pub(crate) priority: i64,
    pub(crate) attempts: i64,
    pub(crate) max_attempts: i64,
    pub(crate) run_at_us: i64,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) progress_done: Option<i64>,
    pub(crate) progress_total: Option<i64>,
    pub(crate) progress_message: Option<String>,
    pub(crate) last_error: Option<String>,
    pub(crate) cancel_requested: bool,
    pub(crate) worker: Option<String>,
    pub(crate) lease_expires_us: Option<i64>,
    pub(crate) created_us: i64,
    pub(crate) updated_us: i64,
}

fn uuid(field: &str, s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|_| corrupt(format!("{field} is not a UUID")))
}

fn int<T: TryFrom<i64>>(field: &str, v: i64) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| corrupt(format!("{field} out of range: {v}")))
}

impl RawJob {
    pub(crate) fn into_job(self) -> Result<Job, StoreError> {
        let payload = serde_json::from_str(&self.payload).map_err(|e| corrupt(format!("payload: {e}")))?;
        let progress = match self.progress_done {
            Some(done) => Some(JobProgress {
                done: int("progress_done", done)?,
                total: self.progress_total.map(|t| int("progress_total", t)).transpose()?,
                message: self.progress_message.unwrap_or_default(),
            }),
            None => None,
        };
        Ok(Job {
            id: JobId(uuid("id", &self.id)?),
            kind: self.kind,
            payload,
            owner: self.owner.as_deref().map(|o| uuid("owner", o).map(UserId)).transpose()?,
            status: parse_status(&self.status)?,
            priority: int("priority", self.priority)?,
            attempts: int("attempts", self.attempts)?,
            max_attempts: int("max_attempts", self.max_attempts)?,
            run_at: from_us(self.run_at_us),
            idempotency_key: self.idempotency_key,
            progress,
            last_error: self.last_error,
            cancel_requested: self.cancel_requested,
            worker: self.worker,
            lease_expires_at: self.lease_expires_us.map(from_us),
            created_at: from_us(self.created_us),
            updated_at: from_us(self.updated_us),
        })
    }
}

/// The message a job gets when its lease ran out after its last attempt.
pub(crate) const LEASE_EXPIRED_ON_LAST_ATTEMPT: &str =
    "the worker's lease expired during the last attempt (worker lost); not retried";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_microsecond_precision() {
        let t = Utc::now();
        let back = from_us(to_us(t));
        assert_eq!(to_us(back), to_us(t));
        assert!((t - back).num_microseconds().unwrap_or(i64::MAX).abs() < 1);
    }

    #[test]
    fn jitter_stays_in_unit_interval() {
        for _ in 0..1000 {
            let j = jitter(Uuid::new_v4());
            assert!((0.0..1.0).contains(&j));
        }
        assert_eq!(jitter(Uuid::nil()), 0.0);
    }

    #[test]
    fn corrupt_status_is_a_typed_error_not_a_panic() {
        let raw = RawJob {
            id: Uuid::new_v4().to_string(),
            payload: "null".into(),
            status: "exploded".into(),
            ..RawJob::default()
        };
        assert!(matches!(raw.into_job(), Err(StoreError::Backend(_))));
    }

    #[test]
    fn negative_attempts_are_a_typed_error() {
        let raw = RawJob {
            id: Uuid::new_v4().to_string(),
            payload: "{}".into(),
            status: "queued".into(),
            attempts: -1,
            ..RawJob::default()
        };
        assert!(matches!(raw.into_job(), Err(StoreError::Backend(_))));
    }
}
