//! When a consumer's backlog clears, from the rate its lag moved over the last minute.

use std::fmt;
use std::time::Duration;

use super::Point;

/// The span of samples a backlog's rate is read from ([`clearing`]).
const RATE_OVER_MS: i64 = 60_000;

/// When a consumer's backlog clears, at the rate it moved over the last minute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clearing {
    /// No record behind.
    CaughtUp,
    /// It falls: cleared in about this long, at that rate.
    In(Duration),
    /// It grows by this many records a second.
    Growing(f64),
    /// It holds (moved by less than one record over the minute).
    NotDraining,
}

impl fmt::Display for Clearing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CaughtUp => f.write_str("caught up"),
            Self::In(left) => {
                // Rounded up: "0 s" would say it is cleared.
                let whole = left
                    .as_secs()
                    .saturating_add(u64::from(left.subsec_nanos() > 0));
                let seconds = i64::try_from(whole).unwrap_or(i64::MAX);
                write!(f, "clears in about {}", crate::age(seconds))
            }
            Self::Growing(rate) if *rate < 1.0 => write!(f, "growing by {rate:.2} records/s"),
            Self::Growing(rate) => write!(f, "growing by {rate:.1} records/s"),
            Self::NotDraining => f.write_str("not draining"),
        }
    }
}

/// When the backlog whose records lag is `series` clears: caught up when the latest lag is
/// 0; else from the slope of the line fitted (least squares) to the samples of the minute
/// before the latest: falling at r records/s, it clears in lag / r; growing, or moving by
/// less than one record over the samples' span, it does not. None while there is no lag
/// read, or one sample only of a lag above 0 (no rate yet). Gaps are skipped.
pub fn clearing(series: &[Point]) -> Option<Clearing> {
    let points: Vec<(i64, f64)> = series
        .iter()
        .filter_map(|&(at, value)| value.map(|v| (at, v)))
        .collect();
    let &(last_at, lag) = points.last()?;
    if lag <= 0.0 {
        return Some(Clearing::CaughtUp);
    }
    // Seconds before the latest sample (0 for it, negative before).
    let recent: Vec<(f64, f64)> = points
        .iter()
        .filter(|(at, _)| *at >= last_at - RATE_OVER_MS)
        .map(|&(at, v)| ((at - last_at) as f64 / 1000.0, v))
        .collect();
    let spanned = -recent.first()?.0;
    if recent.len() < 2 || spanned <= 0.0 {
        return None;
    }
    let rate = slope(&recent)?;
    let clearing = if rate * spanned <= -1.0 {
        let left = Duration::try_from_secs_f64(lag / -rate).unwrap_or(Duration::MAX);
        Clearing::In(left)
    } else if rate * spanned >= 1.0 {
        Clearing::Growing(rate)
    } else {
        Clearing::NotDraining
    };
    Some(clearing)
}

/// The slope of the least-squares line through `points` (None when they share one x).
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut xx, mut xy) = (0.0, 0.0);
    for (x, y) in points {
        xx += (x - mean_x) * (x - mean_x);
        xy += (x - mean_x) * (y - mean_y);
    }
    (xx > 0.0).then(|| xy / xx)
}
