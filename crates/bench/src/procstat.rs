//! Peak memory and CPU of the processes under test, from `/proc` (Linux).

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessUse {
    pub name: String,
    pub pid: u32,
    /// Peak resident set (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// CPU seconds (user + system) spent during the measured span.
    pub cpu_seconds: f64,
    /// Average CPU over the span, in % of one core.
    pub cpu_percent: f64,
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// The resident set now (VmRSS), KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The children of `pid` (e.g. the embedded broker under `openorder up`).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// CPU measured from [`Span::start`] to [`Span::finish`] for a set of processes.
pub struct Span {
    started: std::time::Instant,
    start: Vec<(String, u32, u64)>,
}

impl Span {
    pub fn start(processes: &[(String, u32)]) -> Self {
        Self {
            started: std::time::Instant::now(),
            start: processes
                .iter()
                .map(|(n, p)| (n.clone(), *p, cpu_ticks(*p).unwrap_or(0)))
                .collect(),
        }
    }

    pub fn finish(&self) -> Vec<ProcessUse> {
        let wall = self.started.elapsed().as_secs_f64();
        self.start
            .iter()
            .map(|(name, pid, ticks)| {
                let cpu = cpu_ticks(*pid).unwrap_or(*ticks).saturating_sub(*ticks) as f64
                    / TICKS_PER_SECOND;
                ProcessUse {
                    name: name.clone(),
                    pid: *pid,
                    peak_rss_mib: peak_rss_kib(*pid).unwrap_or(0) as f64 / 1024.0,
                    cpu_seconds: cpu,
                    cpu_percent: if wall > 0.0 { 100.0 * cpu / wall } else { 0.0 },
                }
            })
            .collect()
    }
}
