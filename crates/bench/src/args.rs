//! The flags of `openorder bench`: what to run it on, at what rate and for how long, and
//! what else to measure beside it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use harness::cluster::BackendArgs;

use crate::driver;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Offered rate of the open-loop run, orders per second.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) rate: f64,

    /// Length of the open-loop run, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,

    /// Instead of one rate: raise the rate step by step (×1.5) and report the highest one
    /// sustained for a whole step: completions ≥ 95 % of the offered rate, nothing lost, and
    /// the backlog drained within 2 s of the step's end.
    #[arg(long, help_heading = "Saturation")]
    pub(crate) saturate: bool,

    /// Length of each saturation step, seconds.
    #[arg(
        long,
        default_value_t = 5.0,
        hide_short_help = true,
        help_heading = "Saturation"
    )]
    pub(crate) step_seconds: f64,

    /// Highest rate a saturation search tries.
    #[arg(
        long,
        default_value_t = 20_000.0,
        hide_short_help = true,
        help_heading = "Saturation"
    )]
    pub(crate) max_rate: f64,

    /// Raw records sent through the broker for its limit.
    #[arg(long, default_value_t = 20_000, hide_short_help = true)]
    pub(crate) raw_records: usize,

    /// Also read `order.created` to split the end-to-end time into hops (relay produced
    /// `order.created` / inventory produced the decision / decision seen). Off by default: the
    /// extra consumer makes the broker serve one more read per order.
    #[arg(long, hide_short_help = true)]
    pub(crate) hops: bool,

    /// Also post an order with an item of the `FAIL` SKU every this many seconds during the
    /// open-loop run (not counted in the figures): each is retried and dead-lettered while
    /// the measured orders go on, so a run with it beside one without shows what a failing
    /// record costs the others. 0: none.
    #[arg(long, default_value_t = 0.0, hide_short_help = true)]
    pub(crate) fail_every: f64,

    /// How the clients of the open-loop run learn each order's outcome: `fire` (take the
    /// 202 and go; the decision is seen on the result topics only), `prefer-wait` (POST with
    /// `Prefer: wait=10`: the answer comes with the decision), `poll` (after the 202,
    /// `GET /api/orders/{id}` every `--poll-every-ms` until it is decided). The report then
    /// says when each client knew, and how many requests that took.
    #[arg(long, value_enum, default_value = "fire", hide_short_help = true)]
    pub(crate) client: driver::Client,

    /// With `--client poll`: milliseconds between a client's reads of its order.
    #[arg(long, default_value_t = 100, hide_short_help = true)]
    pub(crate) poll_every_ms: u64,

    /// A soak instead: `--rate` for `--duration` seconds with every retention window
    /// (topics, dead letters, the embedded broker, dedupe marks, idempotency keys,
    /// notifications, orders) set to `--soak-window`, sampled every `--sample-every`
    /// seconds: RSS and CPU of every process, each data file's size, throughput, latency.
    #[arg(long, hide_short_help = true, help_heading = "Soak")]
    pub(crate) soak: bool,

    /// Every retention window of a soak (`3m`, `90s`).
    #[arg(long, default_value = "3m", value_parser = platform::retention::parse_age, hide_short_help = true, help_heading = "Soak")]
    pub(crate) soak_window: Duration,

    /// Seconds between a soak's samples.
    #[arg(
        long,
        default_value_t = 60.0,
        hide_short_help = true,
        help_heading = "Soak"
    )]
    pub(crate) sample_every: f64,

    /// Tail `order.created` in the console through the run, as a browser does (embedded
    /// only: the console runs in `up`); a run with it beside one without shows its cost.
    #[arg(long, hide_short_help = true, help_heading = "Console")]
    pub(crate) tail: bool,

    /// Instead of a run: fill a topic with this many records and time the console's pages
    /// of 100 on it (embedded only).
    #[arg(
        long,
        default_value_t = 0,
        hide_short_help = true,
        help_heading = "Console"
    )]
    pub(crate) console_records: usize,

    /// Instead of a run: open this many live tails of `order.created` through the console
    /// (each its own session, as that many browsers) while orders flow at 100/s for 20 s,
    /// then close them; prints `up`'s memory and threads before, with them open and after,
    /// and how many the console admitted (embedded only).
    #[arg(
        long,
        default_value_t = 0,
        hide_short_help = true,
        help_heading = "Console"
    )]
    pub(crate) console_tails: usize,

    /// Where report.json and chart.svg go.
    #[arg(long, default_value = "bench-report")]
    pub(crate) out: PathBuf,

    // Last: the flags after it would be listed under its heading.
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}
