//! Which dead letters a bulk redrive takes: by error class (`kafka_dlt-exception-fqcn`),
//! original topic, when they were dead-lettered, order id range and text in the error.
//! Every criterion given must hold; none given takes every dead letter.

use std::time::Duration;

use contracts::Topics;
use messaging::record::Record;

use crate::read::LetterHeaders;

/// What a dead letter must match (each `None` matches anything).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The error class, exactly (`openorder.SimulatedFailure`).
    pub class: Option<String>,
    /// The topic the record came from, with or without the deployment's prefix.
    pub original_topic: Option<String>,
    /// Dead-lettered at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Dead-lettered before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// The order id in this range, both ends included.
    pub order_ids: Option<(i64, i64)>,
    /// Text the error (class and message) contains, case ignored.
    pub text: Option<String>,
}

impl Filter {
    /// Does it take every dead letter?
    pub fn is_empty(&self) -> bool {
        self == &Filter::default()
    }

    /// Does `letter` (a dead letter of `topics`' deployment) match?
    pub fn matches(&self, letter: &Record, topics: &Topics) -> bool {
        if let Some(class) = &self.class {
            if letter.header(contracts::headers::DLT_EXCEPTION_FQCN) != Some(class.as_str()) {
                return false;
            }
        }
        if let Some(original) = &self.original_topic {
            let theirs = letter.original_topic();
            if theirs != *original && topics.unprefixed(&theirs) != original.as_str() {
                return false;
            }
        }
        if self.since_ms.is_some() || self.until_ms.is_some() {
            let Some(at) = letter.timestamp else {
                return false;
            };
            if self.since_ms.is_some_and(|since| at < since)
                || self.until_ms.is_some_and(|until| at >= until)
            {
                return false;
            }
        }
        if let Some((low, high)) = self.order_ids {
            if !letter
                .order_id()
                .is_some_and(|id| (low..=high).contains(&id))
            {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let error = letter.dead_letter_error().to_lowercase();
            if !error.contains(&text.to_lowercase()) {
                return false;
            }
        }
        true
    }
}

/// `A-B` (both included) or a single id `A`: an order id range.
pub fn parse_order_ids(text: &str) -> Result<(i64, i64), String> {
    let text = text.trim();
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.trim(), high.trim()),
        None => (text, text),
    };
    let parse = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("{text:?} is not an order id range (say 100-200, or 150)"))
    };
    let (low, high) = (parse(low)?, parse(high)?);
    if low > high {
        return Err(format!("{text:?}: the range's start is after its end"));
    }
    Ok((low, high))
}

/// A time as ms since the epoch: RFC 3339 (`2026-11-24T10:00:00Z`), or an age (`90s`,
/// `15m`, `2h`, `7d`) meaning that long before `now_ms`.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    let age: Duration = store::retention::parse_age(text).map_err(|_| {
        format!(
            "{text:?} is neither an RFC 3339 time (2026-11-24T10:00:00Z) nor an age (15m, 2h, 7d)"
        )
    })?;
    Ok(now_ms - age.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(class: &str, message: &str, key: &str, at: i64) -> Record {
        Record {
            topic: "t1.order.created.DLT".into(),
            partition: 0,
            offset: 3,
            timestamp: Some(at),
            key: Some(key.as_bytes().to_vec()),
            payload: Some(format!(r#"{{"orderId":{key}}}"#).into_bytes()),
            headers: vec![
                (
                    contracts::headers::DLT_ORIGINAL_TOPIC.into(),
                    Some(b"t1.order.created".to_vec()),
                ),
                (
                    contracts::headers::DLT_EXCEPTION_FQCN.into(),
                    Some(class.as_bytes().to_vec()),
                ),
                (
                    contracts::headers::DLT_EXCEPTION_MESSAGE.into(),
                    Some(message.as_bytes().to_vec()),
                ),
            ],
        }
    }

    fn topics() -> Topics {
        Topics::with_prefix("t1.")
    }

    #[test]
    fn an_empty_filter_takes_every_dead_letter() {
        let filter = Filter::default();
        assert!(filter.is_empty());
        assert!(filter.matches(&letter("x", "y", "7", 0), &topics()));
    }

    #[test]
    fn each_criterion_narrows_and_all_must_hold() {
        let simulated = letter(
            "openorder.SimulatedFailure",
            "order 7 has an item with SKU FAIL",
            "7",
            1_000,
        );
        let undecodable = letter(
            "openorder.UndecodableRecord",
            "value is not a valid OrderCreated",
            "12",
            5_000,
        );
        let t = topics();
        let by_class = Filter {
            class: Some("openorder.SimulatedFailure".into()),
            ..Default::default()
        };
        assert!(by_class.matches(&simulated, &t));
        assert!(!by_class.matches(&undecodable, &t));

        for original in ["t1.order.created", "order.created"] {
            let by_topic = Filter {
                original_topic: Some(original.into()),
                ..Default::default()
            };
            assert!(by_topic.matches(&simulated, &t), "{original}");
        }
        let other_topic = Filter {
            original_topic: Some("order.cancelled".into()),
            ..Default::default()
        };
        assert!(!other_topic.matches(&simulated, &t));

        let window = Filter {
            since_ms: Some(1_000),
            until_ms: Some(5_000),
            ..Default::default()
        };
        assert!(window.matches(&simulated, &t), "since is included");
        assert!(!window.matches(&undecodable, &t), "until is not");

        let ids = Filter {
            order_ids: Some((10, 20)),
            ..Default::default()
        };
        assert!(!ids.matches(&simulated, &t));
        assert!(ids.matches(&undecodable, &t));

        let text = Filter {
            text: Some("sku fail".into()),
            ..Default::default()
        };
        assert!(text.matches(&simulated, &t), "case is ignored");
        assert!(!text.matches(&undecodable, &t));

        let both = Filter {
            class: Some("openorder.SimulatedFailure".into()),
            order_ids: Some((10, 20)),
            ..Default::default()
        };
        assert!(!both.matches(&simulated, &t));
        assert!(!both.matches(&undecodable, &t));
    }

    #[test]
    fn order_id_ranges_and_times_parse() {
        assert_eq!(parse_order_ids("100-200"), Ok((100, 200)));
        assert_eq!(parse_order_ids(" 150 "), Ok((150, 150)));
        assert!(parse_order_ids("200-100").is_err());
        assert!(parse_order_ids("a-b").is_err());
        assert_eq!(parse_time("2026-11-24T10:00:00Z", 0), Ok(1_795_514_400_000));
        assert_eq!(parse_time("2h", 10_000_000), Ok(10_000_000 - 7_200_000));
        assert!(parse_time("yesterday", 0).is_err());
    }
}
