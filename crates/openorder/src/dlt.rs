//! `openorder dlt list | show | replay`: dead letters from the command line
//! (the same operations as inventory-service's `/admin/dlt` API, from
//! [`platform::dead_letters::read`]). Each takes the broker connection's flags only
//! ([`BrokerArgs`]); `replay` creates its ledger topic with the services' topic settings
//! at their defaults (or their environment variables).

use clap::{Args, Subcommand};
use platform::dead_letters::read::{self, ReplayRequest, Selection};
use platform::kafka::{BrokerArgs, KafkaArgs};

#[derive(Args, Debug)]
pub struct DltArgs {
    #[command(subcommand)]
    command: DltCommand,
}

#[derive(Subcommand, Debug)]
enum DltCommand {
    /// A table of dead letters: position, order, error, attempts, origin, age.
    List {
        /// Only this DLT topic (default: every `*.DLT` topic).
        #[arg(long)]
        topic: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
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
    /// Republish dead letters to their original topic.
    Replay {
        /// The DLT topic, e.g. `order.created.DLT`.
        topic: String,
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
        #[command(flatten)]
        broker: BrokerArgs,
    },
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

pub async fn run(args: DltArgs) -> anyhow::Result<()> {
    match args.command {
        DltCommand::List {
            topic,
            json,
            broker,
        } => {
            let summaries = tokio::task::spawn_blocking(move || {
                read::summaries(&broker, topic.as_deref(), usize::MAX)
            })
            .await??;
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
            println!("{} dead letter(s)", summaries.len());
        }
        DltCommand::Show {
            topic,
            position,
            broker,
        } => {
            let (partition, offset) = parse_position(&position)?;
            let letters = {
                let topic = topic.clone();
                tokio::task::spawn_blocking(move || read::read_all(&broker, &topic)).await??
            };
            let letter = letters
                .iter()
                .find(|d| d.partition == partition && d.offset == offset)
                .ok_or_else(|| anyhow::anyhow!("no dead letter at {topic} {partition}:{offset}"))?;
            println!("{}", serde_json::to_string_pretty(&letter.detail())?);
        }
        DltCommand::Replay {
            topic,
            offset,
            order_id,
            all,
            dry_run,
            force,
            max_replays,
            broker,
        } => {
            let selection = match (offset, order_id, all) {
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
                dry_run,
                force,
                max_replays,
                by: std::env::var("USER").unwrap_or_else(|_| "cli".into()),
            };
            let results = read::replay(&KafkaArgs::from_broker(broker), &request).await?;
            for r in &results {
                println!(
                    "{:<16} {} → {} (order {}, replay #{})",
                    r.outcome,
                    r.position,
                    r.target_topic,
                    r.order_id
                        .map(|id| id.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.replay_count
                );
            }
            let replayed = results.iter().filter(|r| r.outcome == "replayed").count();
            println!("{replayed} replayed, {} selected", results.len());
        }
    }
    Ok(())
}
