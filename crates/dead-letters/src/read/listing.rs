//! Listing dead letters: those a [`Listing`] names (a topic, or every DLT or parking lot,
//! through a filter), as records or as summaries with how often the replay ledger says
//! each was replayed.

use std::collections::HashMap;

use anyhow::Context;

use super::{
    dlt_topics, parked_topics, read_all, read_at_most, summary, Filter, LetterHeaders, Summary,
    LEDGER,
};
use kafka_clients::BrokerArgs;
use messaging::record::Record;

/// [`list`](super::list)'s dead letters (at most `max`) as summaries, each with how often
/// the ledger says it was replayed (blocking).
pub fn summaries(
    args: &BrokerArgs,
    topic: Option<&str>,
    max: usize,
) -> anyhow::Result<Vec<Summary>> {
    summaries_of(args, &Listing::of(topic, max))
}

/// Which dead letters a list shows.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// One topic (a DLT or a parking lot); None: every DLT, or every parking lot.
    pub topic: Option<String>,
    /// Every parking lot rather than every DLT (when no topic is named).
    pub parked: bool,
    pub filter: Filter,
    /// Most dead letters listed.
    pub max: usize,
}

impl Listing {
    /// `topic` (or every DLT), at most `max`, unfiltered.
    pub fn of(topic: Option<&str>, max: usize) -> Self {
        Self {
            topic: topic.map(str::to_string),
            max,
            ..Default::default()
        }
    }

    /// The topics it reads (blocking).
    fn topics(&self, args: &BrokerArgs) -> anyhow::Result<Vec<String>> {
        match &self.topic {
            Some(t) => Ok(vec![t.clone()]),
            None if self.parked => parked_topics(args),
            None => dlt_topics(args),
        }
    }
}

/// The dead letters `listing` names, in topic order, those its filter matches, at most
/// its `max` (blocking). Unfiltered, only that many are read.
pub fn listed(args: &BrokerArgs, listing: &Listing) -> anyhow::Result<Vec<Record>> {
    let topics = args.topics();
    let mut out = Vec::new();
    for t in listing.topics(args)? {
        let room = listing.max.saturating_sub(out.len());
        if room == 0 {
            break;
        }
        if listing.filter.is_empty() {
            out.extend(read_at_most(args, &t, room)?);
        } else {
            out.extend(
                read_all(args, &t)?
                    .into_iter()
                    .filter(|d| listing.filter.matches(d, &topics))
                    .take(room),
            );
        }
    }
    Ok(out)
}

/// [`listed`]'s dead letters as summaries, each with how often the ledger says it was
/// replayed (blocking).
pub fn summaries_of(args: &BrokerArgs, listing: &Listing) -> anyhow::Result<Vec<Summary>> {
    let letters = listed(args, listing)?;
    let replays = replays_by_position(args)?;
    Ok(letters
        .iter()
        .map(|d| Summary {
            replayed: replays.get(&d.position()).copied().unwrap_or(0),
            ..summary(d)
        })
        .collect())
}

/// How often the ledger says each dead letter (by its position, `topic/partition/offset`)
/// was replayed (blocking).
pub(crate) fn replays_by_position(args: &BrokerArgs) -> anyhow::Result<HashMap<String, u32>> {
    let mut replays = HashMap::new();
    for entry in read_all(args, &args.topics().group(LEDGER))? {
        if let Some(position) = entry.key_text() {
            *replays.entry(position).or_default() += 1;
        }
    }
    Ok(replays)
}

/// The dead letters `read` gives, and [`replays_by_position`], read together on a blocking
/// thread: what a replay or a redrive chooses from and checks against.
pub(crate) async fn read_with_ledger<F>(
    args: &BrokerArgs,
    read: F,
) -> anyhow::Result<(Vec<Record>, HashMap<String, u32>)>
where
    F: FnOnce(&BrokerArgs) -> anyhow::Result<Vec<Record>> + Send + 'static,
{
    let args = args.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let letters = read(&args)?;
        let done = replays_by_position(&args)?;
        Ok((letters, done))
    })
    .await
    .context("reader task panicked")?
}
