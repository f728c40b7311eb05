//! The tests of the history module: reading `/metrics`, the samples kept, the gaps, and
//! when a backlog clears.

use super::metrics::{LAG_SECONDS, OUTBOX_ROWS};
use super::sampler::service_sample;
use super::*;

/// `/metrics` as a service serves it, with lines of other series and a few it cannot
/// read.
const METRICS: &str = "\
# HELP openorder_consumer_lag_records Records of the partition the consumer has not applied yet.
# TYPE openorder_consumer_lag_records gauge
openorder_consumer_lag_records{consumer=\"inventory-order-events\",topic=\"order.created\",partition=\"0\"} 4
openorder_consumer_lag_records{consumer=\"inventory-order-events\",topic=\"order.created\",partition=\"1\"} 6
openorder_consumer_lag_records{consumer=\"inventory-order-cancelled\",topic=\"order.cancelled\",partition=\"0\"} 0
# TYPE openorder_consumer_lag_seconds gauge
openorder_consumer_lag_seconds{consumer=\"inventory-order-events\",topic=\"order.created\",partition=\"0\"} 2.5
openorder_consumer_lag_seconds{consumer=\"inventory-order-events\",topic=\"order.created\",partition=\"1\"} 7.25
openorder_consumer_lag_seconds{consumer=\"inventory-order-cancelled\",topic=\"order.cancelled\",partition=\"0\"} 0
openorder_consumer_lag_seconds{topic=\"order.created\",partition=\"2\"} 99
openorder_outbox_oldest_age_seconds 1.5
openorder_outbox_rows 3
openorder_outbox_rows_broken
openorder_ready NaN
openorder_ready 1
openorder_records_dead_lettered_total{topic=\"order.created\",class=\"x\"} 12
openorder_http_request_duration_seconds_bucket{route=\"/metrics\",le=\"0.001\"} 2
";

fn lag(consumer: &str, seconds: f64, records: f64) -> ConsumerLag {
    ConsumerLag {
        consumer: consumer.into(),
        lag_seconds: Some(seconds),
        lag_records: Some(records),
    }
}

fn one_in(topic: &str) -> TopicCount {
    TopicCount {
        topic: topic.to_string(),
        records: 1,
    }
}

fn sample(at_ms: i64) -> Sample {
    Sample {
        at_ms,
        ..Default::default()
    }
}

#[test]
fn a_metrics_line_is_read_with_its_labels_and_value_when_its_series_is_wanted() {
    let wanted = [LAG_SECONDS, OUTBOX_ROWS];
    let line = parse_line(
        "openorder_consumer_lag_seconds{consumer=\"c\",partition=\"0\"} 1.5 1700000000000",
        &wanted,
    )
    .expect("a wanted line");
    assert_eq!(line.name, LAG_SECONDS);
    assert_eq!(line.label("consumer"), Some("c"));
    assert_eq!(line.label("partition"), Some("0"));
    assert_eq!(line.value, 1.5);
    let bare = parse_line("openorder_outbox_rows 3", &wanted).expect("no labels");
    assert_eq!((bare.labels.len(), bare.value), (0, 3.0));
}

#[test]
fn a_label_value_keeps_its_escaped_quotes_backslashes_commas_and_braces() {
    let line = parse_line(
        r#"openorder_outbox_rows{a="x\"y",b="back\\slash",c="one,two}",d="line\nbreak",} 2"#,
        &[OUTBOX_ROWS],
    )
    .expect("read");
    assert_eq!(line.label("a"), Some("x\"y"));
    assert_eq!(line.label("b"), Some("back\\slash"));
    assert_eq!(line.label("c"), Some("one,two}"));
    assert_eq!(line.label("d"), Some("line\nbreak"));
    assert_eq!(line.value, 2.0);
}

#[test]
fn comments_other_series_and_lines_that_cannot_be_read_are_skipped() {
    let wanted = [OUTBOX_ROWS];
    for line in [
        "",
        "   ",
        "# HELP openorder_outbox_rows Rows.",
        "# TYPE openorder_outbox_rows gauge",
        "openorder_outbox_rows_total 3",
        "openorder_ready 1",
        "openorder_outbox_rows",
        "openorder_outbox_rows three",
        "openorder_outbox_rows NaN",
        "openorder_outbox_rows +Inf",
        "openorder_outbox_rows{a=\"unterminated} 3",
        "openorder_outbox_rows{a=unquoted} 3",
        "openorder_outbox_rows{a=\"x\"}",
    ] {
        assert_eq!(parse_line(line, &wanted), None, "{line:?}");
    }
}

#[test]
fn a_services_gauges_are_its_consumers_most_lag_in_seconds_and_summed_records() {
    let gauges = read_gauges(METRICS);
    assert_eq!(
        gauges.consumers,
        [
            lag("inventory-order-events", 7.25, 10.0),
            lag("inventory-order-cancelled", 0.0, 0.0),
        ]
    );
    assert_eq!(gauges.outbox_rows, Some(3.0));
    assert_eq!(gauges.outbox_oldest_age_seconds, Some(1.5));
    assert_eq!(gauges.pending_oldest_age_seconds, None, "not served");
    assert_eq!(gauges.ready, Some(true));
}

#[test]
fn the_history_keeps_the_last_180_samples_and_none_older_than_15_minutes() {
    let mut samples = VecDeque::new();
    for i in 0..200 {
        keep(&mut samples, sample(i * 1_000));
    }
    assert_eq!(samples.len(), KEPT);
    assert_eq!(samples.front().map(|s| s.at_ms), Some(20_000));
    keep(&mut samples, sample(199_000 + WINDOW_MS - 1_000));
    assert_eq!(
        samples.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
        [198_000, 199_000, 199_000 + WINDOW_MS - 1_000],
        "older than 15 minutes before the newest: dropped"
    );
}

#[test]
fn a_service_that_does_not_answer_leaves_a_gap_not_a_zero() {
    let answered = |at_ms: i64, records: f64| Sample {
        at_ms,
        services: vec![service_sample(
            "inventory-service",
            Ok(format!(
                "openorder_consumer_lag_records{{consumer=\"c\",partition=\"0\"}} {records}\n"
            )),
        )],
        ..Default::default()
    };
    let away = Sample {
        at_ms: 2_000,
        services: vec![service_sample(
            "inventory-service",
            Err(anyhow::anyhow!("http://x/metrics unreachable")),
        )],
        ..Default::default()
    };
    let samples = [answered(1_000, 3.0), away, answered(3_000, 1.0)];
    let records = series(&samples, |s| s.consumer("c").and_then(|c| c.lag_records));
    assert_eq!(
        records,
        [(1_000, Some(3.0)), (2_000, None), (3_000, Some(1.0))]
    );
    assert_eq!(
        consumers(&samples),
        [("inventory-service".to_string(), "c".to_string())]
    );
    assert_eq!(
        samples[1].services[0].error.as_deref(),
        Some("http://x/metrics unreachable")
    );
}

#[test]
fn the_dead_letter_topics_are_those_any_sample_counted() {
    let counted = |at_ms: i64, topics: &[&str]| {
        let counts = topics.iter().map(|t| one_in(t)).collect();
        Sample {
            at_ms,
            dead_letters: Some(counts),
            ..Default::default()
        }
    };
    let samples = [
        counted(0, &["order.created.DLT"]),
        sample(1_000),
        counted(2_000, &["payment.DLT", "order.created.DLT"]),
    ];
    assert_eq!(
        dead_letter_topics(&samples),
        ["order.created.DLT", "payment.DLT"]
    );
    assert_eq!(samples[0].dead_letters_in("payment.DLT"), None);
    assert_eq!(samples[2].dead_letters_in("payment.DLT"), Some(1.0));
}

/// A lag in records sampled every 5 s for a minute, from `first` by `step` a sample.
fn every_5_s(first: f64, step: f64) -> Vec<Point> {
    (0..=12)
        .map(|i| (i * 5_000, Some(first + step * i as f64)))
        .collect()
}

#[test]
fn a_backlog_at_zero_is_caught_up() {
    assert_eq!(clearing(&every_5_s(120.0, -10.0)), Some(Clearing::CaughtUp));
    assert_eq!(clearing(&[(0, Some(0.0))]), Some(Clearing::CaughtUp));
}

#[test]
fn a_falling_backlog_clears_in_its_lag_over_the_rate_it_falls_at() {
    // 130 records a minute ago, falling by 2 a second: 10 left, 5 s to go.
    let Some(Clearing::In(left)) = clearing(&every_5_s(130.0, -10.0)) else {
        panic!("a falling backlog clears");
    };
    assert!((left.as_secs_f64() - 5.0).abs() < 0.01, "{left:?}");
    assert_eq!(Clearing::In(left).to_string(), "clears in about 5 s");
}

#[test]
fn a_growing_backlog_says_by_how_much_and_one_that_holds_is_not_draining() {
    let Some(Clearing::Growing(rate)) = clearing(&every_5_s(10.0, 5.0)) else {
        panic!("a growing backlog");
    };
    assert!((rate - 1.0).abs() < 1e-9, "{rate}");
    assert_eq!(
        Clearing::Growing(rate).to_string(),
        "growing by 1.0 records/s"
    );
    assert_eq!(clearing(&every_5_s(7.0, 0.0)), Some(Clearing::NotDraining));
    assert_eq!(Clearing::NotDraining.to_string(), "not draining");
}

#[test]
fn only_the_last_minute_counts_and_gaps_are_skipped() {
    // It fell fast long ago, and has held at 40 for the last minute, with gaps.
    let mut series: Vec<Point> = (0..12)
        .map(|i| (i * 5_000, Some(400.0 - 30.0 * i as f64)))
        .collect();
    series.extend((0..=12).map(|i| {
        let at = 120_000 + i * 5_000;
        (at, (i % 3 != 1).then_some(40.0))
    }));
    assert_eq!(clearing(&series), Some(Clearing::NotDraining));
}

#[test]
fn there_is_no_estimate_without_a_rate() {
    assert_eq!(clearing(&[]), None);
    assert_eq!(clearing(&[(0, None), (5_000, None)]), None);
    assert_eq!(clearing(&[(0, None), (5_000, Some(3.0))]), None);
    assert_eq!(
        clearing(&[(0, Some(9.0)), (90_000, Some(3.0))]),
        None,
        "the one before is more than a minute older"
    );
}

#[test]
fn the_sample_interval_is_read_as_other_durations_and_not_shorter_than_100_ms() {
    assert_eq!(parse_every("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_every("200ms"), Ok(Duration::from_millis(200)));
    assert!(parse_every("50ms").is_err());
    assert!(parse_every("often").is_err());
    assert_eq!(HistoryArgs::default().console_history_every, EVERY);
}
