//! A service's gauges read from its `/metrics` (Prometheus text): only the lines of the
//! series a sample holds are read, and a line that cannot be read is skipped.

use platform::telemetry::catalogue;

use super::{ConsumerLag, ServiceGauges};

/// order-service's gauge of its oldest PENDING order (set every 10 s).
pub const PENDING_OLDEST_AGE: &str = catalogue::ORDERS_PENDING_OLDEST_AGE.name;
pub(super) const LAG_SECONDS: &str = catalogue::CONSUMER_LAG_SECONDS.name;
const LAG_RECORDS: &str = catalogue::CONSUMER_LAG_RECORDS.name;
pub(super) const OUTBOX_ROWS: &str = catalogue::OUTBOX_ROWS.name;
const OUTBOX_OLDEST_AGE: &str = catalogue::OUTBOX_OLDEST_AGE.name;
const READY: &str = catalogue::READY.name;

/// The series a sample reads from `/metrics`; the lines of any other are skipped.
const WANTED: [&str; 6] = [
    LAG_SECONDS,
    LAG_RECORDS,
    OUTBOX_ROWS,
    OUTBOX_OLDEST_AGE,
    PENDING_OLDEST_AGE,
    READY,
];

impl ServiceGauges {
    /// `consumer`'s entry, added if it has none yet.
    fn consumer_mut(&mut self, consumer: &str) -> &mut ConsumerLag {
        let at = match self.consumers.iter().position(|c| c.consumer == consumer) {
            Some(at) => at,
            None => {
                self.consumers.push(ConsumerLag {
                    consumer: consumer.to_string(),
                    lag_seconds: None,
                    lag_records: None,
                });
                self.consumers.len() - 1
            }
        };
        &mut self.consumers[at]
    }
}

/// One line of Prometheus text: a series' name, its labels and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Line<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl Line<'_> {
    /// The value of its label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one line of Prometheus text, `name{key="value",…} value [timestamp]`, when its
/// series is one of `wanted`. None for a comment (`#`), a blank line, another series, a
/// value that is not a finite number, or a line it cannot read: such a line is skipped,
/// and the rest of the text still counts.
pub fn parse_line<'a>(line: &'a str, wanted: &[&str]) -> Option<Line<'a>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, rest) = line.split_at(name_end);
    if !wanted.contains(&name) {
        return None;
    }
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inside) => labels(inside)?,
        None => (Vec::new(), rest),
    };
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    value.is_finite().then_some(Line {
        name,
        labels,
        value,
    })
}

/// A series' labels, read from just after its `{`: each `key="value"` (the value's `\\`,
/// `\"` and `\n` unescaped), and what follows the closing `}`.
fn labels(mut text: &str) -> Option<(Vec<(&str, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, after) = text.split_once('=')?;
        let quoted = after.trim_start().strip_prefix('"')?;
        let mut chars = quoted.char_indices();
        let mut value = String::new();
        let end = loop {
            let (at, c) = chars.next()?;
            match c {
                '"' => break at,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key.trim(), value));
        // Past the closing quote (one byte).
        text = &quoted[end + 1..];
    }
}

/// A service's gauges from its `/metrics` text.
pub fn read_gauges(text: &str) -> ServiceGauges {
    let mut gauges = ServiceGauges::default();
    for line in text.lines().filter_map(|l| parse_line(l, &WANTED)) {
        match line.name {
            LAG_SECONDS | LAG_RECORDS => {
                let Some(consumer) = line.label("consumer") else {
                    continue;
                };
                let lag = gauges.consumer_mut(consumer);
                if line.name == LAG_SECONDS {
                    // The oldest record behind, whichever partition it is on.
                    let most = lag.lag_seconds.map_or(line.value, |s| s.max(line.value));
                    lag.lag_seconds = Some(most);
                } else {
                    lag.lag_records = Some(lag.lag_records.unwrap_or(0.0) + line.value);
                }
            }
            OUTBOX_ROWS => gauges.outbox_rows = Some(line.value),
            OUTBOX_OLDEST_AGE => gauges.outbox_oldest_age_seconds = Some(line.value),
            PENDING_OLDEST_AGE => gauges.pending_oldest_age_seconds = Some(line.value),
            READY => gauges.ready = Some(line.value >= 1.0),
            _ => {}
        }
    }
    gauges
}
