//! `/topics` and `/topics/{topic}`: every topic with its partitions, watermarks, records
//! and the groups reading it; a topic's records from the newest, an offset or a time,
//! filtered by key, event type or text, and tailed live.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};

use crate::records::{Browse, Filter, From, Page, RecordView, TopicInfo, Value};
use crate::session::Session;
use crate::Shared;

pub async fn list(State(console): State<Shared>, Extension(session): Extension<Session>) -> Markup {
    let snapshot = console.live.snapshot(&console, session.token()).await;
    let c = console.clone();
    let topics = crate::blocking(move || c.readers.topics()).await;
    let body = match topics {
        Err(err) => super::notice("error", &format!("The broker could not be read: {err:#}")),
        Ok(topics) => html! {
            table.topics {
                thead { tr { th { "topic" } th.num { "partitions" } th.num { "records kept" } th { "low … high by partition" } th { "read by (lag)" } } }
                tbody {
                    @for t in &topics {
                        @let groups = snapshot.topics.iter().find(|f| f.name == t.name).map(|f| f.groups.clone()).unwrap_or_default();
                        tr {
                            td { a href=(format!("/topics/{}", super::encode(&t.name))) { (t.name) } }
                            td.num { (t.partitions.len()) }
                            td.num { (t.records) }
                            td { (watermarks(t)) }
                            td { (groups.iter().map(|(g, l)| format!("{g} ({l})")).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
        },
    };
    super::page("Topics", "/topics", &session, body)
}

fn watermarks(t: &TopicInfo) -> String {
    t.partitions
        .iter()
        .map(|p| format!("[{}] {} … {}", p.partition, p.low, p.high))
        .collect::<Vec<_>>()
        .join("  ")
}

/// The query of a topic page (every field optional).
pub fn browse_query(q: &HashMap<String, String>) -> Result<Browse, String> {
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let number = |k: &str| -> Result<Option<i64>, String> {
        get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("{k} must be a whole number, got {v:?}"))
            })
            .transpose()
    };
    let partition = number("partition")?
        .map(|p| i32::try_from(p).map_err(|_| "partition out of range".to_string()))
        .transpose()?;
    let from = match (number("offset")?, get("time")) {
        (Some(o), _) => From::Offset(o),
        (None, Some(t)) => From::Time(parse_time(t)?),
        (None, None) => From::Newest,
    };
    let limit = number("limit")?
        .unwrap_or(50)
        .clamp(1, crate::records::MAX_PAGE as i64) as usize;
    Ok(Browse {
        partition,
        from,
        limit,
        filter: Filter {
            key: get("key").map(str::to_string),
            event_type: get("type").map(str::to_string),
            text: get("q").map(str::to_string),
        },
    })
}

/// `2026-12-01T10:00`, `2026-12-01T10:00:00Z`, with an offset, or milliseconds since the epoch.
fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    Err(format!(
        "time must be like 2026-12-01T10:00 (UTC) or RFC 3339, got {text:?}"
    ))
}

pub async fn browse(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Path(topic): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match browse_query(&q) {
        Ok(query) => query,
        Err(err) => {
            return super::page(&topic, "/topics", &session, super::notice("error", &err))
                .into_response()
        }
    };
    let (c, t) = (console.clone(), topic.clone());
    let found = crate::blocking(move || c.readers.browse(&t, &query)).await;
    let body = match found {
        Err(err) => super::notice("error", &format!("The broker could not be read: {err:#}")),
        Ok(None) => super::notice("error", &format!("There is no topic {topic:?}.")),
        Ok(Some((info, page))) => html! {
            p { (info.partitions.len()) " partition(s), " (info.records) " record(s) kept: " (watermarks(&info)) }
            (form(&topic, &q))
            (records(&page))
            section #tail data-topic=(topic) hidden {
                h2 { "Live tail" }
                p.small #tail-status { "waiting for records…" }
                div #tail-records {}
            }
        },
    };
    super::page(&topic, "/topics", &session, body).into_response()
}

fn form(topic: &str, q: &HashMap<String, String>) -> Markup {
    let v = |k: &str| q.get(k).cloned().unwrap_or_default();
    html! {
        form.browse method="get" action=(format!("/topics/{}", super::encode(topic))) {
            label { "partition " input type="number" name="partition" min="0" value=(v("partition")); }
            label { "from offset " input type="number" name="offset" min="0" value=(v("offset")); }
            label { "or from time (UTC) " input type="text" name="time" placeholder="2026-12-01T10:00" value=(v("time")); }
            label { "key " input type="text" name="key" value=(v("key")); }
            label { "event type " input type="text" name="type" placeholder="order.created" value=(v("type")); }
            label { "text " input type="text" name="q" value=(v("q")); }
            label { "records " input type="number" name="limit" min="1" max="500" value=(q.get("limit").cloned().unwrap_or_else(|| "50".into())); }
            button type="submit" { "Show" }
            " "
            button type="button" #tail-start { "Live tail" }
        }
    }
}

/// A page of records as a list, each with every header and its value.
pub fn records(page: &Page) -> Markup {
    html! {
        p.small {
            (page.records.len()) " record(s) shown, " (page.scanned) " read"
            @if page.cut_short { " (the read stopped at its bound: narrow the search, or page on by offset)" }
        }
        @if let (Some(first), Some(last)) = (page.records.iter().map(|r| r.offset).min(), page.records.iter().map(|r| r.offset).max()) {
            @if let Some(one) = page.records.first().filter(|_| page.records.iter().all(|r| r.partition == page.records[0].partition)) {
                p.paging {
                    a href=(format!("/topics/{}?partition={}&offset={}&limit={}", super::encode(&one.topic), one.partition, (first - page.records.len() as i64).max(0), page.records.len())) { "← older" }
                    " · "
                    a href=(format!("/topics/{}?partition={}&offset={}&limit={}", super::encode(&one.topic), one.partition, last + 1, page.records.len())) { "newer →" }
                }
            }
        }
        div.records { @for r in &page.records { (record(r)) } }
    }
}

/// One record: position, time, key, headers, value.
pub fn record(r: &RecordView) -> Markup {
    html! {
        article.record id=(format!("r-{}-{}", r.partition, r.offset)) {
            header {
                a href=(super::record_link(&r.topic, r.partition, r.offset)) { "partition " (r.partition) " · offset " (r.offset) }
                " · " (super::time(r.timestamp_ms)) " UTC"
                " · key " code.key { (r.key.as_deref().unwrap_or("(none)")) }
                @if let Some(t) = &r.event_type { " · " span.event { (t) } }
                " · " (r.value_bytes) " bytes"
            }
            @if !r.headers.is_empty() {
                table.headers { @for h in &r.headers { tr { th { (h.name) } td { code { (h.value) } } } } }
            }
            @match &r.value {
                Value::None => p.small { "(no value)" },
                Value::Json(text) => pre.value.json { (text) },
                Value::Text(text) => pre.value.text { (text) },
                Value::Hex(text) => pre.value.hex { (text) },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_topic_pages_query_says_where_to_start_and_what_to_keep() {
        let b = browse_query(&q(&[])).unwrap();
        assert_eq!((b.from, b.limit, b.partition), (From::Newest, 50, None));
        let b = browse_query(&q(&[("partition", "2"), ("offset", "10"), ("key", "42")])).unwrap();
        assert_eq!((b.from, b.partition), (From::Offset(10), Some(2)));
        assert_eq!(b.filter.key.as_deref(), Some("42"));
        let b = browse_query(&q(&[("time", "2026-12-01T10:00")])).unwrap();
        assert_eq!(b.from, From::Time(1_796_119_200_000));
        assert!(browse_query(&q(&[("offset", "ten")]))
            .unwrap_err()
            .contains("offset"));
        assert!(browse_query(&q(&[("time", "yesterday")])).is_err());
        assert_eq!(browse_query(&q(&[("limit", "100000")])).unwrap().limit, 500);
    }
}
