//! `/`: the README's diagram, live. Each service with its health and outbox, each topic as
//! an arrow from its writer to its readers with events/s, records kept and each reading
//! group's lag; dead letters waiting. The figures update through `/live`. Below, "Lag in
//! time": small charts of the last minutes ([`crate::history`], drawn by
//! [`super::chart`]) of each consumer's lag in seconds (with when its backlog clears),
//! each outbox's oldest row, the oldest PENDING order and the dead letters kept in each
//! dead-letter topic; they are drawn as the page is asked for, and a reload draws them
//! again.

use std::time::Duration;

use axum::extract::State;
use axum::Extension;
use contracts::topics::{Writer, MAP};
use maud::{html, Markup};

use super::chart::{self, Unit};

use crate::history::{self, Point, Sample};
use crate::live::Snapshot;
use crate::session::Session;
use crate::Shared;

pub async fn page(State(console): State<Shared>, Extension(session): Extension<Session>) -> Markup {
    let snapshot = console.live.snapshot(&console, session.token()).await;
    let charts = lag_in_time(&console.history.samples(), console.history.every());
    super::page("Overview", "/", &session, body(&console, &snapshot, charts))
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "…".into(), |r| format!("{r:.1}"))
}

fn body(console: &Shared, s: &Snapshot, charts: Markup) -> Markup {
    let prefix = console.prefix();
    html! {
        div #overview data-live="overview" {
            @if let Some(err) = &s.broker_error {
                (super::notice("error", &format!("The broker could not be read: {err}")))
            }
            section.services {
                @for svc in &s.services {
                    div.service data-service=(svc.name) {
                        h2 { (svc.name) }
                        p {
                            span.health data-live=(format!("service:{}:ready", svc.name))
                                class=(if svc.ready { "up" } else { "down" }) {
                                (if svc.ready { "ready" } else { "not ready" })
                            }
                        }
                        p { "outbox: " span data-live=(format!("service:{}:outbox", svc.name)) {
                            (svc.outbox_pending.map_or("-".to_string(), |n| n.to_string()))
                        } " pending, oldest "
                            span data-live=(format!("service:{}:outboxAge", svc.name)) {
                                (svc.outbox_oldest_age_ms.map_or("-".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0)))
                            }
                        }
                    }
                }
            }
            h2 { "The flow" }
            table.flow {
                thead { tr { th { "writer" } th { "topic" } th { "readers" } th.num { "events/s" } th.num { "records kept" } th { "lag by group" } } }
                tbody {
                    @for flow in MAP {
                        @let name = format!("{prefix}{}", flow.topic);
                        @let figures = s.topics.iter().find(|t| t.name == name);
                        tr {
                            td { (match flow.writer { Writer::Outbox(svc) => svc.name(), Writer::DeadLetters => "consumers that give up" }) }
                            td { a href=(format!("/topics/{}", super::encode(&name))) { (flow.topic) } " " span.event { (flow.event) } }
                            td { (flow.readers.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")) }
                            td.num data-live=(format!("topic:{name}:rate")) { (rate(figures.and_then(|t| t.per_second))) }
                            td.num data-live=(format!("topic:{name}:records")) { (figures.map_or(0, |t| t.records)) }
                            td data-live=(format!("topic:{name}:lag")) {
                                (figures.map(|t| t.groups.iter().map(|(g, l)| format!("{g}: {l}")).collect::<Vec<_>>().join(", ")).unwrap_or_default())
                            }
                        }
                    }
                }
            }
            p.deadletters {
                "Dead letters kept: "
                a href="/dead-letters" { b data-live="deadLetters" { (s.dead_letters) } }
            }
            p.small { "Updated " span data-live="at" { (super::time(Some(s.at_ms))) } " UTC, every 2 s." }
            (charts)
        }
    }
}

/// One chart of "Lag in time".
#[derive(Debug)]
pub struct Panel {
    /// Its `data-chart`: `<kind>:<name>` (`consumer:inventory-order-events`,
    /// `outbox:order-service`, `pending:order-service`, `dead-letters:<topic>`).
    pub id: String,
    pub caption: String,
    /// Its `<title>`.
    pub title: String,
    /// What is said under it: when a consumer's backlog clears, an outbox's rows.
    pub note: Option<String>,
    pub series: Vec<Point>,
    pub unit: Unit,
}

/// The charts of `samples`: each consumer's lag in seconds, with when its backlog clears
/// ([`history::clearing`]); each service's outbox's oldest row, with its rows now;
/// order-service's oldest PENDING order; the dead letters kept in each dead-letter topic.
pub fn panels(samples: &[Sample]) -> Vec<Panel> {
    let mut panels = Vec::new();
    for (service, consumer) in history::consumers(samples) {
        let seconds = history::series(samples, |s| s.consumer(&consumer)?.lag_seconds);
        let records = history::series(samples, |s| s.consumer(&consumer)?.lag_records);
        let clears = history::clearing(&records)
            .map_or_else(|| "no estimate yet".to_string(), |c| c.to_string());
        panels.push(Panel {
            id: format!("consumer:{consumer}"),
            caption: format!("{consumer} ({service})"),
            title: format!("{consumer}: lag in seconds"),
            note: Some(clears),
            series: seconds,
            unit: Unit::Seconds,
        });
    }
    let latest = match samples.last() {
        Some(sample) => sample.services.as_slice(),
        None => &[],
    };
    for service in latest.iter().map(|s| s.name.as_str()) {
        let age = history::series(samples, |s| s.gauges(service)?.outbox_oldest_age_seconds);
        let rows = samples.last().and_then(|s| s.gauges(service)?.outbox_rows);
        panels.push(Panel {
            id: format!("outbox:{service}"),
            caption: format!("{service}: outbox"),
            title: format!("{service}: age of the outbox's oldest row, in seconds"),
            note: Some(format!("{} rows now", chart::figure(rows, Unit::Records))),
            series: age,
            unit: Unit::Seconds,
        });
    }
    let order = "order-service";
    panels.push(Panel {
        id: format!("pending:{order}"),
        caption: "oldest PENDING order".into(),
        title: "age of the oldest PENDING order, in seconds".into(),
        note: None,
        series: history::series(samples, |s| s.gauges(order)?.pending_oldest_age_seconds),
        unit: Unit::Seconds,
    });
    for topic in history::dead_letter_topics(samples) {
        panels.push(Panel {
            id: format!("dead-letters:{topic}"),
            caption: topic.clone(),
            title: format!("dead letters kept in {topic}"),
            note: None,
            series: history::series(samples, |s| s.dead_letters_in(&topic)),
            unit: Unit::Records,
        });
    }
    panels
}

/// Why the latest sample has gaps: each service that did not answer, and the brokers.
fn gaps(samples: &[Sample]) -> Vec<String> {
    let Some(latest) = samples.last() else {
        return Vec::new();
    };
    let mut why = Vec::new();
    for service in &latest.services {
        if let Some(error) = &service.error {
            why.push(format!("{}: {error}", service.name));
        }
    }
    if let Some(error) = &latest.broker_error {
        why.push(format!("dead letters: {error}"));
    }
    why
}

/// `every` as a person says it: `500 ms`, `5 s`, `1 min`.
fn interval(every: Duration) -> String {
    if every < Duration::from_secs(1) || every.subsec_millis() != 0 {
        format!("{} ms", every.as_millis())
    } else {
        super::age(i64::try_from(every.as_secs()).unwrap_or(i64::MAX))
    }
}

/// "Lag in time": the charts of `samples`, taken every `every`, over their common span.
fn lag_in_time(samples: &[Sample], every: Duration) -> Markup {
    let kept = every.saturating_mul(history::KEPT as u32);
    let window = kept.min(Duration::from_millis(history::WINDOW_MS as u64));
    html! {
        section #lag-in-time {
            h2 { "Lag in time" }
            p.small {
                "The last " (interval(window)) ", sampled every " (interval(every))
                " (drawn as this page loads: reload for newer). A gap is a service that did \
                 not answer. When a backlog clears is read from the rate its records fell at \
                 over the last minute."
            }
            @if let Some(span) = history::span(samples) {
                @for why in gaps(samples) {
                    p.small.gap { "Not read: " (why) }
                }
                div.charts {
                    @for panel in panels(samples) {
                        figure.chart {
                            figcaption { (panel.caption) }
                            (chart::chart(&panel.id, &panel.title, &panel.series, span, panel.unit))
                            @if let Some(note) = &panel.note {
                                p.note { (note) }
                            }
                        }
                    }
                }
            } @else {
                p.small { "No sample yet: the first is taken one interval after the console starts." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ConsumerLag, ServiceGauges, ServiceSample, TopicCount};

    fn service(name: &str, gauges: ServiceGauges) -> ServiceSample {
        ServiceSample {
            name: name.into(),
            gauges: Some(gauges),
            error: None,
        }
    }

    /// order-service with an outbox and a PENDING order, inventory-service's consumer
    /// `lag` behind, one dead letter.
    fn sample(at_ms: i64, lag: f64) -> Sample {
        let order = ServiceGauges {
            outbox_rows: Some(2.0),
            outbox_oldest_age_seconds: Some(0.5),
            pending_oldest_age_seconds: Some(3.0),
            ..Default::default()
        };
        let consumer = ConsumerLag {
            consumer: "inventory-order-events".into(),
            lag_seconds: Some(lag),
            lag_records: Some(lag),
        };
        let inventory = ServiceGauges {
            consumers: vec![consumer],
            ..Default::default()
        };
        let letters = TopicCount {
            topic: "order.created.DLT".into(),
            records: 1,
        };
        Sample {
            at_ms,
            services: vec![
                service("order-service", order),
                service("inventory-service", inventory),
            ],
            dead_letters: Some(vec![letters]),
            broker_error: None,
        }
    }

    #[test]
    fn each_consumer_outbox_pending_order_and_dead_letter_topic_has_a_chart() {
        let samples = [sample(0, 4.0), sample(5_000, 0.0)];
        let ids: Vec<String> = panels(&samples).into_iter().map(|p| p.id).collect();
        assert_eq!(
            ids,
            [
                "consumer:inventory-order-events",
                "outbox:order-service",
                "outbox:inventory-service",
                "pending:order-service",
                "dead-letters:order.created.DLT",
            ]
        );
        let html = lag_in_time(&samples, Duration::from_secs(5)).into_string();
        assert!(html.contains("The last 15 min"), "{html}");
        assert!(html.contains("sampled every 5 s"), "{html}");
        assert!(
            html.contains(r#"data-chart="consumer:inventory-order-events""#),
            "{html}"
        );
        assert!(html.contains("caught up"), "{html}");
        assert!(html.contains("2 rows now"), "{html}");
    }

    #[test]
    fn before_the_first_sample_the_overview_says_so_and_names_what_did_not_answer_after() {
        let html = lag_in_time(&[], Duration::from_millis(500)).into_string();
        assert!(html.contains("No sample yet"), "{html}");
        assert!(html.contains("sampled every 500 ms"), "{html}");
        let mut away = sample(0, 1.0);
        away.services[1] = ServiceSample {
            name: "inventory-service".into(),
            gauges: None,
            error: Some("http://127.0.0.1:8082/metrics unreachable".into()),
        };
        let html = lag_in_time(&[away], Duration::from_secs(5)).into_string();
        assert!(
            html.contains("Not read: inventory-service: http://127.0.0.1:8082/metrics"),
            "{html}"
        );
    }
}
