//! The YouTube Data API's daily quota: what each call costs, when the day ends (midnight
//! Pacific time), and [`QuotaMeter`], the adapter's count of the units spent today.
//!
//! # The arithmetic
//! A Google Cloud project gets 10,000 units a day by default (`YOUTUBE_DAILY_QUOTA` when
//! Google granted more). Every list call costs [`LIST_COST`] (1 unit, up to 50 items), every
//! write ([`WRITE_COST`]: `videos.rate`, `playlistItems.insert/delete`,
//! `subscriptions.insert/delete`) 50 units and changes one item, a search [`SEARCH_COST`]
//! (100 units). So a day holds at most `10,000 / 50 = 200` writes, fewer after a scan: a
//! scan of 2,000 liked videos, 20 playlists of 100 items and 300 subscriptions reads
//! `40 + 1 + 20 × (2 + 2) + 6 = 127` pages (each playlist page also reads its videos'
//! durations), leaving 7,873 units, 157 writes.
//!
//! # When the day ends
//! The quota resets at midnight Pacific time: 08:00 UTC while Pacific Standard Time holds
//! (UTC−8), 07:00 UTC during Pacific Daylight Time (UTC−7), which runs from the second
//! Sunday of March, 02:00 local, to the first Sunday of November, 02:00 local (the US rule
//! since 2007). Both transitions fall at 2 a.m., so local midnight is never ambiguous.
//!
//! # What the meter knows
//! The quota belongs to the Google Cloud project (the client id), not to a user: every
//! connection of the process shares one [`QuotaMeter`]. It counts what this process sent;
//! other processes using the same project (more server replicas, a script) spend units it
//! does not see, which the Google Cloud console shows. When Google answers `quotaExceeded`,
//! the meter is set to spent until the reset, whatever it counted.
//!
//! # Which clock
//! The meter and the emulator read the time from a [`QuotaClock`]: the system clock, or in
//! tests a fixed instant, so that a test never depends on how close to midnight Pacific it
//! happens to run (a run a minute before the reset would see the quota come back mid-test).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};

/// Units a day a project gets unless Google granted more.
pub const DEFAULT_DAILY_QUOTA: u64 = 10_000;
/// Units one list call costs (`videos.list`, `playlists.list`, `playlistItems.list`,
/// `subscriptions.list`, `channels.list`).
pub const LIST_COST: u64 = 1;
/// Units one write costs (`videos.rate`, `playlistItems.insert`/`delete`,
/// `subscriptions.insert`/`delete`).
pub const WRITE_COST: u64 = 50;
/// Units one `search.list` call costs.
pub const SEARCH_COST: u64 = 100;

/// Whether `utc` falls in Pacific Daylight Time (UTC−7) rather than Standard Time (UTC−8).
pub fn is_pacific_daylight_time(utc: DateTime<Utc>) -> bool {
    let year = utc.year();
    // 02:00 PST on the second Sunday of March is 10:00 UTC; 02:00 PDT on the first
    // Sunday of November is 09:00 UTC.
    let start = nth_sunday(year, 3, 2).and_then(|d| d.and_hms_opt(10, 0, 0));
    let end = nth_sunday(year, 11, 1).and_then(|d| d.and_hms_opt(9, 0, 0));
    match (start, end) {
        (Some(start), Some(end)) => {
            let t = utc.naive_utc();
            t >= start && t < end
        }
        _ => false,
    }
}

fn nth_sunday(year: i32, month: u32, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, n)
}

/// The UTC offset of Pacific time at `utc`, in hours (−7 or −8).
pub fn pacific_offset_hours(utc: DateTime<Utc>) -> i64 {
    if is_pacific_daylight_time(utc) { -7 } else { -8 }
}

/// The quota day `utc` belongs to: the date in Pacific time.
pub fn quota_day(utc: DateTime<Utc>) -> NaiveDate {
    (utc + ChronoDuration::hours(pacific_offset_hours(utc))).date_naive()
}

/// When the quota day of `utc` ends: the next midnight Pacific time, in UTC.
pub fn next_reset(utc: DateTime<Utc>) -> DateTime<Utc> {
    let next_day = quota_day(utc).succ_opt().unwrap_or(NaiveDate::MAX);
    let midnight: NaiveDateTime = next_day.and_time(chrono::NaiveTime::MIN);
    // Local midnight is 07:00 UTC under PDT, 08:00 UTC under PST; exactly one is consistent.
    let as_daylight = Utc.from_utc_datetime(&(midnight + ChronoDuration::hours(7)));
    if is_pacific_daylight_time(as_daylight) {
        as_daylight
    } else {
        Utc.from_utc_datetime(&(midnight + ChronoDuration::hours(8)))
    }
}

/// How long from `utc` until the quota resets.
pub fn until_reset(utc: DateTime<Utc>) -> Duration {
    (next_reset(utc) - utc).to_std().unwrap_or(Duration::ZERO)
}

/// Where the quota reads the time: the system clock ([`QuotaClock::system`], the default)
/// or, in tests, a clock of the caller's ([`QuotaClock::fixed`], [`QuotaClock::from_fn`]).
/// Cheap to clone.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use dnp_providers::youtube_music::quota::{QuotaClock, until_reset};
///
/// let noon = Utc.with_ymd_and_hms(2026, 1, 15, 20, 0, 0).unwrap(); // 12:00 PST
/// let clock = QuotaClock::fixed(noon);
/// assert_eq!(until_reset(clock.now()).as_secs(), 12 * 3600);
/// ```
#[derive(Clone, Default)]
pub struct QuotaClock(Option<Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>>);

impl QuotaClock {
    /// The system clock ([`Utc::now`]).
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that always says `at`.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self::from_fn(move || at)
    }

    /// A clock that asks `now`.
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(now)))
    }

    /// The time now by this clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.0.as_ref().map_or_else(Utc::now, |now| now())
    }
}

impl fmt::Debug for QuotaClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "QuotaClock(custom)" } else { "QuotaClock(system)" })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Day {
    day: NaiveDate,
    used: u64,
}

/// The units this process spent today of a project's daily quota. Thread-safe; share one
/// per client id.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use dnp_providers::youtube_music::quota::QuotaMeter;
///
/// let meter = QuotaMeter::new(10_000);
/// let noon = Utc.with_ymd_and_hms(2026, 1, 15, 20, 0, 0).unwrap(); // 12:00 PST
/// meter.reserve_at(noon, 50).unwrap();
/// assert_eq!(meter.remaining_at(noon), 9_950);
/// let after_midnight = Utc.with_ymd_and_hms(2026, 1, 16, 8, 0, 1).unwrap(); // 00:00:01 PST
/// assert_eq!(meter.remaining_at(after_midnight), 10_000);
/// ```
#[derive(Debug)]
pub struct QuotaMeter {
    daily: u64,
    clock: QuotaClock,
    state: Mutex<Day>,
}

impl QuotaMeter {
    /// A meter of `daily_units` a day on the system clock, nothing spent.
    pub fn new(daily_units: u64) -> Self {
        Self::with_clock(daily_units, QuotaClock::system())
    }

    /// A meter of `daily_units` a day that reads the time from `clock`, nothing spent.
    pub fn with_clock(daily_units: u64, clock: QuotaClock) -> Self {
        Self { daily: daily_units, clock, state: Mutex::new(Day { day: NaiveDate::MIN, used: 0 }) }
    }

    /// Units a day.
    pub fn daily_units(&self) -> u64 {
        self.daily
    }

    /// The time now by the meter's clock (what the `_at` methods are called with).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn today(&self, now: DateTime<Utc>) -> std::sync::MutexGuard<'_, Day> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let day = quota_day(now);
        if state.day != day {
            *state = Day { day, used: 0 };
        }
        state
    }

    /// Units spent on the quota day of `now`.
    pub fn used_at(&self, now: DateTime<Utc>) -> u64 {
        self.today(now).used
    }

    /// Units left on the quota day of `now`.
    pub fn remaining_at(&self, now: DateTime<Utc>) -> u64 {
        self.daily.saturating_sub(self.used_at(now))
    }

    /// Units left today (by the meter's clock).
    pub fn remaining(&self) -> u64 {
        self.remaining_at(self.now())
    }

    /// Counts `units` as spent on the day of `now` if they are left.
    ///
    /// # Errors
    /// How long until the reset, when fewer than `units` are left (nothing is counted).
    pub fn reserve_at(&self, now: DateTime<Utc>, units: u64) -> Result<(), Duration> {
        let mut state = self.today(now);
        if state.used.saturating_add(units) > self.daily {
            return Err(until_reset(now));
        }
        state.used += units;
        Ok(())
    }

    /// Gives back `units` reserved on the day of `now` for a call that never reached the
    /// service (the circuit breaker refused it).
    pub fn refund_at(&self, now: DateTime<Utc>, units: u64) {
        let mut state = self.today(now);
        state.used = state.used.saturating_sub(units);
    }

    /// Marks the day of `now` spent (the service answered `quotaExceeded`); returns how
    /// long until the reset.
    pub fn exhaust_at(&self, now: DateTime<Utc>) -> Duration {
        self.today(now).used = self.daily;
        until_reset(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().unwrap()
    }

    #[test]
    fn daylight_time_follows_the_us_rule() {
        // 2026: DST from Sunday 8 March 10:00 UTC to Sunday 1 November 09:00 UTC.
        assert!(!is_pacific_daylight_time(utc(2026, 3, 8, 9, 59)));
        assert!(is_pacific_daylight_time(utc(2026, 3, 8, 10, 0)));
        assert!(is_pacific_daylight_time(utc(2026, 7, 4, 12, 0)));
        assert!(is_pacific_daylight_time(utc(2026, 11, 1, 8, 59)));
        assert!(!is_pacific_daylight_time(utc(2026, 11, 1, 9, 0)));
        assert!(!is_pacific_daylight_time(utc(2026, 12, 25, 12, 0)));
        // 2027: 14 March to 7 November.
        assert!(!is_pacific_daylight_time(utc(2027, 3, 13, 12, 0)));
        assert!(is_pacific_daylight_time(utc(2027, 3, 14, 10, 0)));
        assert!(!is_pacific_daylight_time(utc(2027, 11, 7, 9, 0)));
    }

    #[test]
    fn the_day_ends_at_midnight_pacific() {
        // Winter: midnight PST is 08:00 UTC.
        assert_eq!(quota_day(utc(2026, 1, 15, 7, 59)), NaiveDate::from_ymd_opt(2026, 1, 14).unwrap());
        assert_eq!(quota_day(utc(2026, 1, 15, 8, 0)), NaiveDate::from_ymd_opt(2026, 1, 15).unwrap());
        assert_eq!(next_reset(utc(2026, 1, 15, 7, 0)), utc(2026, 1, 15, 8, 0));
        assert_eq!(next_reset(utc(2026, 1, 15, 8, 0)), utc(2026, 1, 16, 8, 0));
        // Summer: midnight PDT is 07:00 UTC.
        assert_eq!(next_reset(utc(2026, 7, 4, 12, 0)), utc(2026, 7, 5, 7, 0));
        assert_eq!(until_reset(utc(2026, 7, 5, 6, 30)), Duration::from_secs(30 * 60));
        // The night DST begins: Saturday 7 March 2026 is PST, its midnight 08:00 UTC.
        assert_eq!(next_reset(utc(2026, 3, 7, 20, 0)), utc(2026, 3, 8, 8, 0));
        // Sunday 8 March: the next midnight (9 March) is PDT, 07:00 UTC; the day is 23 h.
        assert_eq!(next_reset(utc(2026, 3, 8, 8, 0)), utc(2026, 3, 9, 7, 0));
        // The night DST ends: Sunday 1 November's midnight is still PDT (07:00 UTC)...
        assert_eq!(next_reset(utc(2026, 10, 31, 20, 0)), utc(2026, 11, 1, 7, 0));
        // ...and Monday 2 November's is PST (08:00 UTC): a 25-hour day.
        assert_eq!(next_reset(utc(2026, 11, 1, 7, 0)), utc(2026, 11, 2, 8, 0));
    }

    #[test]
    fn the_meter_counts_reserves_refunds_and_resets() {
        let meter = QuotaMeter::new(120);
        let t = utc(2026, 1, 15, 20, 0);
        assert_eq!(meter.remaining_at(t), 120);
        meter.reserve_at(t, 50).unwrap();
        meter.reserve_at(t, 50).unwrap();
        let err = meter.reserve_at(t, 50).unwrap_err();
        assert_eq!(err, Duration::from_secs(12 * 3600), "from 12:00 PST to midnight");
        assert_eq!(meter.used_at(t), 100);
        meter.reserve_at(t, 20).unwrap();
        meter.refund_at(t, 20);
        assert_eq!(meter.remaining_at(t), 20);
        assert_eq!(meter.exhaust_at(t), Duration::from_secs(12 * 3600));
        assert_eq!(meter.remaining_at(t), 0);
        assert_eq!(meter.remaining_at(utc(2026, 1, 16, 8, 0)), 120, "a new day");
    }
}
