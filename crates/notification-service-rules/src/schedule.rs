//! When a notice goes: a user's quiet hours (in their own time zone), the kinds they marked
//! critical, and their digest window ([`crate::preferences::Timing`]), turned into a due
//! time. Everything here is a pure function of `now` and the settings, so that tests drive
//! it with explicit times; the one place the service reads the time is [`Clock`].
//!
//! - **Quiet hours** `start`–`end` (local times of day, `end` may be before `start`: the
//!   hours wrap midnight) hold a notice due inside them until the first instant their end
//!   comes in the user's zone. Daylight saving time is the zone's: a quiet end that falls
//!   in the hour skipped in spring is the instant the clocks jump past it; one that comes
//!   twice in autumn is the first after `now`.
//! - **Critical** kinds go at once, quiet hours and digest windows notwithstanding.
//! - **Digests**: the first notice for a user and channel opens a window of
//!   `digestMinutes`; notices routed while it is open (and its delivery not yet claimed)
//!   join it, and it goes as one message when it closes (or, if it closes inside quiet
//!   hours, when they end).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Where the service reads the time: the system clock, or one set by hand (tests move it
/// instead of sleeping). The dispatcher and the routing of notices read it here only.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Set: the time, in ms since the epoch, until moved.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock standing at `at` until [`Clock::set`] or [`Clock::advance`] move it
    /// (clones share it).
    pub fn manual(at: DateTime<Utc>) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(at.timestamp_millis()))),
        }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            Some(ms) => DateTime::from_timestamp_millis(ms.load(Ordering::SeqCst))
                .expect("a manual clock holds a representable time"),
            None => Utc::now(),
        }
    }

    /// Now, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Sets a manual clock to `at` (a system clock is not moved).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(ms) = &self.manual {
            ms.store(at.timestamp_millis(), Ordering::SeqCst);
        }
    }

    /// Moves a manual clock on by `by` (a system clock is not moved).
    pub fn advance(&self, by: Duration) {
        if let Some(ms) = &self.manual {
            ms.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
        }
    }
}

/// Quiet hours: from `start` to `end`, local times of day (`end` before `start` wraps
/// midnight; they never are equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quiet {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// A user's timing settings, checked and parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    /// Quiet hours and the zone they are in.
    pub quiet: Option<(Tz, Quiet)>,
    /// Template kinds (`order.failed`, …) that go at once.
    pub critical: Vec<String>,
    /// The digest window, if the user wants digests.
    pub digest: Option<Duration>,
}

/// Why a delivery waits past the time it was routed (stored with it, shown by the API).
pub const HELD_QUIET: &str = "quietHours";
pub const HELD_DIGEST: &str = "digest";

/// How one channel's delivery of a notice routed at `now` goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Due at this time (`now`, or the end of quiet hours: then `held` says so).
    Due {
        at: DateTime<Utc>,
        held: Option<&'static str>,
    },
    /// Gathered into the user's open digest for the channel, or opens one that is due at
    /// `window_due` ([`Schedule::window_due`]).
    Digest { window_due: DateTime<Utc> },
}

impl Schedule {
    /// Whether the schedule changes anything (no quiet hours, no digest: every notice goes
    /// at once, as without settings).
    pub fn is_plain(&self) -> bool {
        self.quiet.is_none() && self.digest.is_none()
    }

    /// Whether notices of template kind `kind` go at once whatever the hour.
    pub fn is_critical(&self, kind: &str) -> bool {
        self.critical.iter().any(|k| k == kind)
    }

    /// The earliest a message may go that would go at `at`: the end of the quiet hours `at`
    /// is inside, else `at`.
    pub fn not_before(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        match &self.quiet {
            Some((zone, quiet)) => quiet_end(at, *zone, *quiet).unwrap_or(at),
            None => at,
        }
    }

    /// When a digest window opened at `opened` goes: its end, or the end of the quiet hours
    /// that end falls into.
    pub fn window_due(&self, opened: DateTime<Utc>) -> DateTime<Utc> {
        self.not_before(opened + self.digest.unwrap_or_else(Duration::zero))
    }

    /// How a notice of template kind `kind` routed at `now` goes.
    pub fn decide(&self, kind: &str, now: DateTime<Utc>) -> Decision {
        if self.is_critical(kind) {
            return Decision::Due {
                at: now,
                held: None,
            };
        }
        if self.digest.is_some() {
            return Decision::Digest {
                window_due: self.window_due(now),
            };
        }
        let at = self.not_before(now);
        Decision::Due {
            at,
            held: (at > now).then_some(HELD_QUIET),
        }
    }
}

/// Whether a notice routed at `now` joins an open digest window due at `due` (one whose
/// delivery has not been claimed yet): while it is still to come.
pub fn joins(due: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now < due
}

/// If `now` is inside the quiet hours `quiet` in `zone`, the instant they end (later than
/// `now`); None if it is not.
pub fn quiet_end(now: DateTime<Utc>, zone: Tz, quiet: Quiet) -> Option<DateTime<Utc>> {
    if quiet.start == quiet.end {
        return None;
    }
    let local = now.with_timezone(&zone);
    let (date, time) = (local.date_naive(), local.time());
    let end_date = if quiet.start < quiet.end {
        // Within one day: [start, end).
        if !(quiet.start <= time && time < quiet.end) {
            return None;
        }
        date
    } else if time >= quiet.start {
        // Wrapping midnight, before it: ends tomorrow.
        date.succ_opt()?
    } else if time < quiet.end {
        // Wrapping midnight, after it: ends today.
        date
    } else {
        return None;
    };
    Some(first_at_or_after(zone, end_date, quiet.end, now))
}

/// The first instant later than `after` at which the clocks in `zone` show `time` on
/// `date`; if that time is skipped there (a daylight-saving gap), the instant the clocks
/// jump past it; if it comes twice, the first one later than `after`.
fn first_at_or_after(
    zone: Tz,
    date: NaiveDate,
    time: NaiveTime,
    after: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut local = NaiveDateTime::new(date, time);
    // A gap is at most a few hours long (usually one); step through it by minutes.
    for _ in 0..(48 * 60) {
        let candidates: Vec<DateTime<Utc>> = match zone.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            chrono::LocalResult::Ambiguous(a, b) => {
                vec![a.with_timezone(&Utc), b.with_timezone(&Utc)]
            }
            chrono::LocalResult::None => Vec::new(),
        };
        if let Some(first) = candidates.into_iter().filter(|t| *t > after).min() {
            return first;
        }
        if zone.from_local_datetime(&local).earliest().is_some() {
            // It exists but is not later than `after` (cannot happen for a quiet end
            // computed from a time inside the quiet hours, but never loop on it).
            break;
        }
        local += Duration::minutes(1);
    }
    after
}

/// `HH:MM` (00:00 to 23:59), as the API takes times of day; None if it is not one.
pub fn parse_time_of_day(text: &str) -> Option<NaiveTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = &text[range];
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (hour, minute) = (digits(0..2)?, digits(3..5)?);
    NaiveTime::from_hms_opt(hour, minute, 0)
}

#[cfg(test)]
mod tests;
