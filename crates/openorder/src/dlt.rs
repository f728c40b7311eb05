//! `openorder dlt list | show | replay`: dead letters from the command line
//! (the same operations as inventory-service's `/admin/dlt` API, from
//! [`platform::dead_letters::read`]). Each takes the broker connection's flags only
//! ([`BrokerArgs`]); `replay` creates its ledger topic with the services' topic settings
//! at their defaults (or their environment variables).
//!
//! `list --parked` lists the parking lots; the filter's flags (`--class`, `--original-topic`,
//! `--since`, `--until`, `--order-ids`, `--match`) narrow a list, and make `replay` a bulk
//! redrive of what they match (`--dry-run` counts and lists it, `--rate` paces it).
//! `replay --offset P:O --patch FILE|JSON` edits one dead letter's value before it goes.

use clap::{Args, Subcommand};
use platform::dead_letters::filter::{parse_order_ids, parse_time};
use platform::dead_letters::read::{
    self, Filter, Listing, RedriveRequest, ReplayRequest, ReplayResult, Selection,
};
use platform::kafka::{BrokerArgs, KafkaArgs};

/// Which dead letters: every flag given must hold.
#[derive(Args, Debug, Default)]
#[command(next_help_heading = "Filter")]
struct FilterArgs {
    /// Only dead letters of this error class (`kafka_dlt-exception-fqcn`), exactly.
    #[arg(long)]
    class: Option<String>,
    /// Only records that came from this topic (with or without the prefix).
    #[arg(long)]
    original_topic: Option<String>,
    /// Dead-lettered at or after: RFC 3339 (`2026-11-24T10:00:00Z`) or an age (`2h` ago).
    #[arg(long)]
    since: Option<String>,
    /// Dead-lettered before: RFC 3339 or an age.
    #[arg(long)]
    until: Option<String>,
    /// Order ids `A-B` (both included), or one id.
    #[arg(long, value_parser = parse_order_ids)]
    order_ids: Option<(i64, i64)>,
    /// Text the error (class and message) contains, case ignored.
    #[arg(long = "match")]
    text: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> anyhow::Result<Filter> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let time = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<i64>> {
            v.as_deref()
                .map(|v| parse_time(v, now_ms).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
                .transpose()
        };
        Ok(Filter {
            class: self.class.clone(),
            original_topic: self.original_topic.clone(),
            since_ms: time("--since", &self.since)?,
            until_ms: time("--until", &self.until)?,
            order_ids: self.order_ids,
            text: self.text.clone(),
        })
    }
}

/// `--rate`: records a second, more than 0.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 10_000.0 => Ok(r),
        _ => Err(format!(
            "{s:?}: records a second, more than 0 and at most 10000"
        )),
    }
}

/// `--patch`: JSON given inline (it starts with `{`), or a file holding it (`-`: standard input).
fn read_patch(arg: &str) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    let text = if arg.trim_start().starts_with('{') {
        arg.to_string()
    } else if arg == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("Failed to read the patch from standard input")?
    } else {
        std::fs::read_to_string(arg)
            .with_context(|| format!("Failed to read the patch file {arg}"))?
    };
    serde_json::from_str(&text).context("The patch is not JSON (a JSON merge patch, RFC 7396)")
}

#[derive(Args, Debug)]
pub struct DltArgs {
    #[command(subcommand)]
    command: DltCommand,
}

#[derive(Subcommand, Debug)]
enum DltCommand {
    /// A table of dead letters: position, order, error, attempts, origin, age.
    List {
        /// Only this DLT (or parking-lot) topic (default: every `*.DLT` topic).
        #[arg(long)]
        topic: Option<String>,
        /// The parking lots (`*.PARKED`: records that failed again after a replay) instead.
        #[arg(long)]
        parked: bool,
        /// JSON instead of a table (with each record's history of replays).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// One dead letter with all its headers and its value pretty-printed.
    Show {
        /// The DLT topic, e.g. `order.created.DLT`.
        topic: String,
        /// `partition:offset`, as `list` prints it.
        position: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Republish dead letters to their original topic: one (edited with `--patch`), an
    /// order's, all of a topic, or what the filter's flags match.
    Replay(ReplayArgs),
}

/// What `dlt replay` replays, and how.
#[derive(Args, Debug)]
struct ReplayArgs {
    /// The DLT (or parking-lot) topic, e.g. `order.created.DLT`; with the filter's
    /// flags it may be left out: every DLT (every parking lot with `--parked`).
    topic: Option<String>,
    /// One dead letter, `partition:offset`.
    #[arg(long, group = "which")]
    offset: Option<String>,
    /// Every dead letter of this order.
    #[arg(long, group = "which")]
    order_id: Option<i64>,
    /// Every dead letter of the topic.
    #[arg(long, group = "which")]
    all: bool,
    /// Print what would be replayed and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replay even dead letters the ledger says were replayed already.
    #[arg(long)]
    force: bool,
    /// Refuse records that would be replayed more often than this.
    #[arg(long, env = "OPENORDER_MAX_REPLAYS", default_value_t = 3)]
    max_replays: u32,
    /// Edit and retry: a JSON merge patch (RFC 7396) for the value of the one dead
    /// letter `--offset` names, inline (`'{"items":[{"sku":"ABC-001","qty":2}]}'`) or a
    /// file (`-`: standard input). The edited value must pass its event's schema.
    #[arg(long, requires = "offset")]
    patch: Option<String>,
    /// At most this many records a second.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// With the filter's flags and no topic: every parking lot instead of every DLT.
    #[arg(long)]
    parked: bool,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    broker: BrokerArgs,
}

fn print_results(results: &[ReplayResult]) {
    for r in results {
        println!(
            "{:<16} {} → {} (order {}, replay #{}{})",
            r.outcome,
            r.position,
            r.target_topic,
            r.order_id
                .map(|id| id.to_string())
                .unwrap_or_else(|| "-".into()),
            r.replay_count,
            if r.edited { ", edited" } else { "" }
        );
    }
}

fn parse_position(s: &str) -> anyhow::Result<(i32, i64)> {
    let (p, o) = s
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("expected partition:offset, got {s:?}"))?;
    Ok((p.parse()?, o.parse()?))
}

fn age(timestamp_ms: Option<i64>) -> String {
    let Some(ts) = timestamp_ms else {
        return "-".into();
    };
    let secs = ((chrono::Utc::now().timestamp_millis() - ts) / 1000).max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// `openorder dlt`: runs the subcommand given.
pub async fn run(args: DltArgs) -> anyhow::Result<()> {
    match args.command {
        DltCommand::List {
            topic,
            parked,
            json,
            filter,
            broker,
        } => {
            let listing = Listing {
                topic,
                parked,
                filter: filter.filter()?,
                max: usize::MAX,
            };
            list(broker, listing, json).await
        }
        DltCommand::Show {
            topic,
            position,
            broker,
        } => show(broker, topic, &position).await,
        DltCommand::Replay(replay) => {
            let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            let filter = replay.filter.filter()?;
            if !filter.is_empty() || (replay.parked && replay.topic.is_none()) {
                redrive(replay, filter, by).await
            } else {
                replay_selected(replay, by).await
            }
        }
    }
}

/// `dlt list`: what `listing` selects, as a table or (`json`) as JSON.
async fn list(broker: BrokerArgs, listing: Listing, json: bool) -> anyhow::Result<()> {
    let parked = listing.parked;
    let summaries =
        tokio::task::spawn_blocking(move || read::summaries_of(&broker, &listing)).await??;
    if json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
        return Ok(());
    }
    println!(
        "{:<28} {:>9} {:>10} {:>8} {:>7} {:<32} {:>5}  ERROR",
        "TOPIC", "POSITION", "ORDER", "ATTEMPTS", "REPLAYS", "ORIGINAL", "AGE"
    );
    for s in &summaries {
        let original = match (s.original_partition, s.original_offset) {
            (Some(p), Some(o)) => format!("{}@{p}:{o}", s.original_topic),
            _ => s.original_topic.clone(),
        };
        println!(
            "{:<28} {:>9} {:>10} {:>8} {:>7} {:<32} {:>5}  {}",
            truncate(&s.topic, 28),
            format!("{}:{}", s.partition, s.offset),
            s.key.clone().unwrap_or_else(|| "-".into()),
            s.attempts
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            s.replayed,
            truncate(&original, 32),
            age(s.timestamp_ms),
            truncate(&s.error, 80),
        );
    }
    println!(
        "{} {}",
        summaries.len(),
        if parked {
            "parked record(s)"
        } else {
            "dead letter(s)"
        }
    );
    Ok(())
}

/// `dlt show`: the dead letter of `topic` at `position`, in full.
async fn show(broker: BrokerArgs, topic: String, position: &str) -> anyhow::Result<()> {
    let (partition, offset) = parse_position(position)?;
    let letters = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || read::read_all(&broker, &topic)).await??
    };
    let letter = letters
        .iter()
        .find(|d| d.partition == partition && d.offset == offset)
        .ok_or_else(|| anyhow::anyhow!("no dead letter at {topic} {partition}:{offset}"))?;
    println!("{}", serde_json::to_string_pretty(&read::detail(letter))?);
    Ok(())
}

/// `dlt replay` with the filter's flags (or `--parked` without a topic): a bulk redrive of
/// what `filter` matches, replayed `by` the user.
async fn redrive(replay: ReplayArgs, filter: Filter, by: String) -> anyhow::Result<()> {
    anyhow::ensure!(
        replay.offset.is_none() && replay.order_id.is_none(),
        "the filter's flags select by themselves: leave out --offset and --order-id"
    );
    let dry_run = replay.dry_run;
    let request = RedriveRequest {
        topic: replay.topic,
        parked: replay.parked,
        filter,
        dry_run,
        force: replay.force,
        max_replays: replay.max_replays,
        rate: replay.rate,
        limit: read::MAX_PER_REQUEST,
        by,
    };
    let report = read::redrive(&KafkaArgs::from_broker(replay.broker), &request).await?;
    print_results(&report.results);
    let done = if dry_run {
        format!("{} would be replayed", report.would_replay)
    } else {
        format!("{} replayed", report.replayed)
    };
    println!(
        "{} matched, {} selected{}, {done} in {:.1} s",
        report.matched,
        report.selected,
        if report.truncated {
            format!(" (at most {} a time)", read::MAX_PER_REQUEST)
        } else {
            String::new()
        },
        report.elapsed_ms as f64 / 1000.0
    );
    Ok(())
}

/// `dlt replay TOPIC` with `--offset` (maybe `--patch`), `--order-id` or `--all`, replayed
/// `by` the user.
async fn replay_selected(replay: ReplayArgs, by: String) -> anyhow::Result<()> {
    let Some(topic) = replay.topic else {
        anyhow::bail!(
            "say which topic (e.g. order.created.DLT), or filter with --class, --match, …"
        )
    };
    let patch = replay.patch.as_deref().map(read_patch).transpose()?;
    let selection = match (replay.offset, replay.order_id, replay.all) {
        (Some(position), _, _) => {
            let (partition, offset) = parse_position(&position)?;
            Selection::Position { partition, offset }
        }
        (None, Some(id), _) => Selection::OrderId(id),
        (None, None, true) => Selection::All,
        (None, None, false) => {
            anyhow::bail!("say which: --offset P:O, --order-id ID or --all")
        }
    };
    let request = ReplayRequest {
        topic,
        selection,
        dry_run: replay.dry_run,
        force: replay.force,
        max_replays: replay.max_replays,
        by,
        patch,
        rate: replay.rate,
    };
    let results = match read::replay(&KafkaArgs::from_broker(replay.broker), &request).await {
        Ok(results) => results,
        Err(err) => {
            if let Some(invalid) = err.downcast_ref::<read::InvalidEdit>() {
                eprintln!("{}; nothing was sent", invalid.reason);
                for (pointer, message) in &invalid.errors {
                    let pointer = if pointer.is_empty() {
                        "/"
                    } else {
                        pointer.as_str()
                    };
                    eprintln!("  {pointer}: {message}");
                }
            }
            return Err(err);
        }
    };
    print_results(&results);
    let replayed = results.iter().filter(|r| r.outcome == "replayed").count();
    println!("{replayed} replayed, {} selected", results.len());
    Ok(())
}
