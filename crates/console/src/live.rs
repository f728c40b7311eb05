//! What updates without a reload, as server-sent events:
//! - `/live`: the overview's figures every 2 s (services' health, outbox backlog and age,
//!   consumer lag, records and events/s per topic, dead letters kept: a [`Snapshot`],
//!   gathered by `console_data::snapshot`). Work is shared: a snapshot younger than a second
//!   and a half is sent again rather than read again, and nothing is read while nobody
//!   watches.
//! - `/topics/{topic}/tail`: the records a topic receives, as they come; at most
//!   [`TAIL_MAX`] a half-second (past that it says how many it skipped), so a browser tailing
//!   a busy topic costs the broker a bounded read. One reader per topic serves every viewer
//!   of it ([`Tails`]), and tails are bounded in all and per session.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Serialize;

use axum::http::StatusCode;
use platform::http::Problem;

use crate::records::RecordView;
use crate::session::Session;
use crate::Shared;

pub use console_data::snapshot::{Live, ServiceFigures, Snapshot, TopicFigures};

/// How often `/live` sends the overview's figures.
const EVERY: Duration = Duration::from_secs(2);

/// `GET /live`: the overview's figures, every 2 s.
pub async fn stream(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let token = session.token().map(str::to_string);
    let stopping = console.stopping.clone().cancelled_owned();
    let events = stream::unfold(true, move |first| {
        let (console, token) = (console.clone(), token.clone());
        async move {
            if !first {
                tokio::time::sleep(EVERY).await;
            }
            let snapshot = console.live.snapshot(&console, token.as_deref()).await;
            let event = Event::default()
                .event("overview")
                .json_data(&*snapshot)
                .unwrap_or_else(|_| Event::default().comment("unserializable"));
            Some((Ok(event), false))
        }
    })
    .take_until(stopping);
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Most records `/topics/{topic}/tail` sends a half-second.
pub const TAIL_MAX: usize = 50;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TailBatch {
    records: Vec<RecordView>,
    /// Records that arrived but were not sent (past [`TAIL_MAX`]).
    skipped: i64,
}

/// Most live tails open at once, over every viewer.
pub const MAX_TAILS: usize = 64;
/// Most live tails one session keeps open at once.
pub const MAX_TAILS_PER_SESSION: usize = 4;

/// The live tails: one reader per tailed topic, shared by everyone watching it (its reads
/// go out to every viewer), and bounds on how many may be open ([`MAX_TAILS`] in all,
/// [`MAX_TAILS_PER_SESSION`] per session). A topic's reader stops when its last viewer
/// leaves.
#[derive(Default)]
pub struct Tails {
    topics: std::sync::Mutex<HashMap<String, std::sync::Weak<TopicTail>>>,
    open: std::sync::Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_session: HashMap<String, usize>,
}

/// One topic's shared reader: what it reads goes to every subscriber.
struct TopicTail {
    sent: tokio::sync::broadcast::Sender<Arc<TailMessage>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for TopicTail {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What a topic's reader read in one look.
enum TailMessage {
    Records(String),
    Failure(String),
}

/// A place among the open tails, given back when the viewer's stream ends.
struct TailSlot {
    console: Shared,
    session: String,
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut open = self.console.tails.open.lock().expect("never poisoned");
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_session.get_mut(&self.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_session.remove(&self.session);
            }
        }
    }
}

impl Tails {
    /// A place for `session`'s new tail, or the problem that refuses it.
    fn admit(console: &Shared, session: &str) -> Result<TailSlot, Problem> {
        let mut open = console.tails.open.lock().expect("never poisoned");
        let mine = open.by_session.get(session).copied().unwrap_or(0);
        if mine >= MAX_TAILS_PER_SESSION {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-tails",
                "Too many live tails",
                format!("this session has {MAX_TAILS_PER_SESSION} live tails open already; close one first"),
            )
            .retry_after(5));
        }
        if open.total >= MAX_TAILS {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-tails",
                "Too many live tails",
                format!("the console serves {MAX_TAILS} live tails at once; retry later"),
            )
            .retry_after(5));
        }
        open.total += 1;
        *open.by_session.entry(session.to_string()).or_default() += 1;
        Ok(TailSlot {
            console: console.clone(),
            session: session.to_string(),
        })
    }

    /// The shared reader of `topic`, started if nobody watches it yet.
    fn reader(console: &Shared, topic: &str) -> Arc<TopicTail> {
        let mut topics = console.tails.topics.lock().expect("never poisoned");
        if let Some(tail) = topics.get(topic).and_then(std::sync::Weak::upgrade) {
            return tail;
        }
        topics.retain(|_, tail| tail.strong_count() > 0);
        let (sent, _) = tokio::sync::broadcast::channel(8);
        let tail = Arc::new(TopicTail {
            sent: sent.clone(),
            stop: console.stopping.child_token(),
        });
        topics.insert(topic.to_string(), Arc::downgrade(&tail));
        tokio::spawn(read_tail(
            console.clone(),
            topic.to_string(),
            sent,
            tail.stop.clone(),
        ));
        tail
    }
}

/// A topic's reader: every half-second, what arrived since the last look, to every viewer.
async fn read_tail(
    console: Shared,
    topic: String,
    sent: tokio::sync::broadcast::Sender<Arc<TailMessage>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ends: Option<HashMap<i32, i64>> = None;
    loop {
        let read = {
            let (console, topic, ends) = (console.clone(), topic.clone(), ends.clone());
            crate::blocking(move || tail_once(&console, &topic, ends))
        };
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            read = read => match read {
                Ok((batch, new_ends)) => {
                    let first = ends.is_none();
                    ends = Some(new_ends);
                    if first || (batch.records.is_empty() && batch.skipped == 0) {
                        None
                    } else {
                        serde_json::to_string(&batch).ok().map(TailMessage::Records)
                    }
                }
                Err(err) => Some(TailMessage::Failure(format!("{err:#}"))),
            },
        };
        if let Some(message) = message {
            // Nobody listening is no error: the last viewer is leaving.
            let _ = sent.send(Arc::new(message));
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// `GET /topics/{topic}/tail`: new records of `topic` as they arrive, from the topic's
/// shared reader ([`Tails`]); refused (a problem) past the bounds on open tails.
pub async fn tail(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Path(topic): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let slot = Tails::admit(&console, &session.id)?;
    let reader = Tails::reader(&console, &topic);
    let received = reader.sent.subscribe();
    let stopping = console.stopping.clone().cancelled_owned();
    let first = Event::default().comment("waiting");
    // The slot and the reader live as long as the stream: dropped with it, they give the
    // place back and (for the last viewer) stop the topic's reader.
    let events = stream::once(async move { Ok(first) })
        .chain(stream::unfold(
            (received, slot, reader),
            |(mut received, slot, reader)| async move {
                let event = match received.recv().await {
                    Ok(message) => match &*message {
                        TailMessage::Records(json) => {
                            Event::default().event("records").data(json.as_str())
                        }
                        TailMessage::Failure(error) => {
                            Event::default().event("failure").data(error.as_str())
                        }
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        Event::default().event("records").data(format!(
                            "{{\"records\":[],\"skipped\":{}}}",
                            missed * TAIL_MAX as u64
                        ))
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                };
                Some((Ok(event), (received, slot, reader)))
            },
        ))
        .take_until(stopping);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// What arrived on `topic` since `ends` (None: nothing yet, only the ends now).
fn tail_once(
    console: &Shared,
    topic: &str,
    ends: Option<HashMap<i32, i64>>,
) -> anyhow::Result<(TailBatch, HashMap<i32, i64>)> {
    let info = console
        .readers
        .topic(topic)?
        .ok_or_else(|| anyhow::anyhow!("no topic {topic}"))?;
    let now: HashMap<i32, i64> = info
        .partitions
        .iter()
        .map(|p| (p.partition, p.high))
        .collect();
    let Some(ends) = ends else {
        return Ok((
            TailBatch {
                records: Vec::new(),
                skipped: 0,
            },
            now,
        ));
    };
    let mut ranges = Vec::new();
    let (mut room, mut skipped) = (TAIL_MAX as i64, 0);
    for p in &info.partitions {
        let before = ends.get(&p.partition).copied().unwrap_or(p.high);
        let arrived = (p.high - before).max(0);
        let take = arrived.min(room);
        skipped += arrived - take;
        room -= take;
        if take > 0 {
            ranges.push((p.partition, p.high - take, p.high));
        }
    }
    let records = console.readers.ranges(topic, &ranges)?;
    Ok((TailBatch { records, skipped }, now))
}
