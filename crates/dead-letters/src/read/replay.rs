//! Replaying: the dead letters a [`ReplayRequest`] selects (one, one order's, or all of a
//! topic; one of them edited), or those a [`RedriveRequest`]'s filter matches, each sent
//! back to its original topic (see [`crate::read`]).

use serde::{Deserialize, Serialize};

use super::{
    edit, listed, read_all, read_with_ledger, send_all, Filter, Listing, Sending, MAX_PER_REQUEST,
};
use kafka_clients::KafkaArgs;
use messaging::record::Record;

/// The [`Sending`] a person's request asks for: a [`ReplayRequest`] and a
/// [`RedriveRequest`] name these fields alike (dry run, force, cap, rate, who asked);
/// `$edit`, the edit of the one dead letter selected.
macro_rules! sending_of {
    ($request:expr, $edit:expr) => {
        Sending {
            dry_run: $request.dry_run,
            force: $request.force,
            max_replays: $request.max_replays,
            rate: $request.rate,
            by: &$request.by,
            edit: $edit,
        }
    };
}

/// Which dead letters to replay.
#[derive(Clone, Debug)]
pub enum Selection {
    Position { partition: i32, offset: i64 },
    OrderId(i64),
    All,
}

/// What to do and under which limits.
#[derive(Clone, Debug)]
pub struct ReplayRequest {
    pub topic: String,
    pub selection: Selection,
    pub dry_run: bool,
    /// Replay even dead letters the ledger says were replayed already.
    pub force: bool,
    /// Largest `openorder-replay-count` a replayed record may carry.
    pub max_replays: u32,
    /// Who asked (for the ledger).
    pub by: String,
    /// A JSON merge patch (RFC 7396) to apply to the value before it is sent: one dead
    /// letter only ([`Selection::Position`]), and the edited value must pass its event's
    /// JSON Schema ([`InvalidEdit`](super::InvalidEdit) otherwise, and nothing is sent).
    pub patch: Option<serde_json::Value>,
    /// Most records sent a second (None: as fast as the broker takes them).
    pub rate: Option<f64>,
}

/// What happened to one selected dead letter.
// Deserialize: the console reads `POST /admin/dlt/replay`'s answer into it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResult {
    pub position: String,
    pub order_id: Option<i64>,
    pub target_topic: String,
    pub replay_count: u32,
    /// `replayed`, `would-replay` (dry run), `already-replayed`, `over-cap`,
    /// `value-omitted` (the dead letter has no value to replay: republish the original
    /// from its topic instead).
    pub outcome: String,
    /// Sent (or, in a dry run, would be sent) with its value edited by a patch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
}

/// Replays the selected dead letters (see [`crate::read`]). Blocking reads,
/// async produce.
pub async fn replay(
    args: &KafkaArgs,
    request: &ReplayRequest,
) -> anyhow::Result<Vec<ReplayResult>> {
    let topic = request.topic.clone();
    let (letters, done) =
        read_with_ledger(&args.broker, move |args| read_all(args, &topic)).await?;
    let selected: Vec<&Record> = letters
        .iter()
        .filter(|d| match request.selection {
            Selection::Position { partition, offset } => {
                d.partition == partition && d.offset == offset
            }
            Selection::OrderId(id) => d.order_id() == Some(id),
            Selection::All => true,
        })
        .take(MAX_PER_REQUEST)
        .collect();
    if let Selection::Position { partition, offset } = request.selection {
        anyhow::ensure!(
            !selected.is_empty(),
            "no dead letter at {}/{partition}/{offset}",
            request.topic
        );
    }
    let edited = match &request.patch {
        None => None,
        Some(patch) => {
            anyhow::ensure!(
                matches!(request.selection, Selection::Position { .. }),
                "a patch edits one dead letter: select it by partition and offset"
            );
            let letter: &Record = selected.first().expect("ensured above");
            Some(edit(letter, &args.topics(), patch).map_err(anyhow::Error::new)?)
        }
    };
    let how = sending_of!(request, edited.as_ref());
    send_all(args, &selected, &done, &how).await
}

/// Which dead letters a bulk redrive takes, and how it sends them.
#[derive(Clone, Debug)]
pub struct RedriveRequest {
    /// One topic (a DLT, or a parking lot); None: every DLT, or every parking lot with
    /// `parked`.
    pub topic: Option<String>,
    pub parked: bool,
    pub filter: Filter,
    /// Count and list what would go; send nothing.
    pub dry_run: bool,
    /// Replay even dead letters the ledger says were replayed already.
    pub force: bool,
    /// Largest `openorder-replay-count` a replayed record may carry.
    pub max_replays: u32,
    /// Most records sent a second (None: as fast as the broker takes them).
    pub rate: Option<f64>,
    /// Most dead letters taken (at most [`MAX_PER_REQUEST`]); the rest of what matched is
    /// counted, not taken.
    pub limit: usize,
    /// Who asked (for the ledger).
    pub by: String,
}

/// What a bulk redrive did (or, dry, would do).
// Deserialize: the console reads `POST /admin/dlt/redrive`'s answer into it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedriveReport {
    pub dry_run: bool,
    /// Dead letters the filter matched.
    pub matched: usize,
    /// Of those, the ones taken (at most the limit), each with its outcome in `results`.
    pub selected: usize,
    /// Sent (0 in a dry run).
    pub replayed: usize,
    /// That a dry run would send (0 otherwise): its `would-replay` results.
    pub would_replay: usize,
    /// More matched than the limit took.
    pub truncated: bool,
    /// How long the redrive took, reading included (ms).
    pub elapsed_ms: u64,
    pub results: Vec<ReplayResult>,
}

/// Replays the dead letters `request`'s filter matches (see [`crate::read`]).
/// Blocking reads, async produce.
pub async fn redrive(args: &KafkaArgs, request: &RedriveRequest) -> anyhow::Result<RedriveReport> {
    let started = std::time::Instant::now();
    let listing = Listing {
        topic: request.topic.clone(),
        parked: request.parked,
        filter: request.filter.clone(),
        max: usize::MAX,
    };
    let (letters, done) =
        read_with_ledger(&args.broker, move |args| listed(args, &listing)).await?;
    let limit = request.limit.min(MAX_PER_REQUEST);
    let selected: Vec<&Record> = letters.iter().take(limit).collect();
    let how = sending_of!(request, None);
    let results = send_all(args, &selected, &done, &how).await?;
    let replayed = results.iter().filter(|r| r.outcome == "replayed").count();
    let would_replay = results
        .iter()
        .filter(|r| r.outcome == "would-replay")
        .count();
    Ok(RedriveReport {
        dry_run: request.dry_run,
        matched: letters.len(),
        selected: selected.len(),
        replayed,
        would_replay,
        truncated: letters.len() > selected.len(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        results,
    })
}
