//! `openorder bench`: end-to-end throughput, latency and memory, beside the limits they are
//! compared with, measured in one run on one machine.
//!
//! It starts the system under test itself (`openorder up` on the embedded defaults, or the
//! three services as processes against an external Kafka and PostgreSQL: `system`), warms
//! it up, drives it open loop over HTTP ([`driver`]), observes each order's decision on the
//! result topics, samples the processes' memory and CPU ([`procstat`]), then measures the
//! broker's raw rate and the HTTP ceiling ([`limits`]), and writes `report.json` and
//! `chart.svg` ([`report`]) and a summary table. With `--soak`, one long run with every
//! retention window shortened, sampled each `--sample-every` ([`soak`]): memory, disk,
//! throughput. [`measure`] is the run step by step, [`args`] its flags.
//!
//! [`run`] is `openorder bench`: it runs inside the `openorder` binary, whose executable it
//! starts again as `up` or as each service ([`harness::up`], [`harness::cluster`]).

pub mod args;
pub mod console;
pub mod driver;
pub mod limits;
pub mod measure;
pub mod procstat;
pub mod report;
pub mod soak;
mod summary;
mod system;

use std::time::Duration;

use anyhow::Context;

pub use args::BenchArgs;
pub use measure::Report;

/// The SKUs bench orders use (stocked generously before the run).
pub const SKUS: [&str; 8] = [
    "BENCH-0", "BENCH-1", "BENCH-2", "BENCH-3", "BENCH-4", "BENCH-5", "BENCH-6", "BENCH-7",
];

/// `openorder bench`: starts the system, measures, stops it, and writes and prints what
/// was measured.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir =
        std::env::temp_dir().join(format!("openorder-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let kept = || format!("the bench's files are kept in {}", dir.display());
    let mut system = system::start_system(&args, &dir, &http)
        .await
        .with_context(kept)?;
    let result = measure::measure(&args, &system, &http).await;
    system.stop().await;
    let report = result.with_context(kept)?;
    summary::write(&args.out, &report, args.rate)?;
    summary::print_summary(&report);
    println!("bench: report in {}", args.out.display());
    // The system's databases, up to a gigabyte after a minute at 5,000/s.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
