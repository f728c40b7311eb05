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
    /// CPU seconds per 1,000 orders completed in the span (0 when none completed).
    pub cpu_seconds_per_1000_orders: f64,
}

/// CPU ticks of `pid`: its own (utime + stime), and with `reaped` those of its children
/// that have ended too (cutime + cstime).
fn ticks_of(pid: u32, reaped: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14 to 17 of the line, 12 to 15 after the name.
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let own = field(11)? + field(12)?;
    Some(if reaped {
        own + field(13)? + field(14)?
    } else {
        own
    })
}

/// CPU ticks of `pid`, or with `tree` of it and every child it has had (a PostgreSQL server:
/// its backends come and go with their connections; an ended one's ticks are the parent's
/// cutime, a running one's its own).
fn cpu_ticks(pid: u32, tree: bool) -> Option<u64> {
    if !tree {
        return ticks_of(pid, false);
    }
    let children: u64 = children(pid)
        .into_iter()
        .filter_map(|c| ticks_of(c, true))
        .sum();
    Some(ticks_of(pid, true)? + children)
}

/// The process listening on TCP `port` of this host (from `/proc/net/tcp`, `tcp6` and each
/// process's open sockets), or `None` if there is none or its sockets cannot be read (a
/// server of another user's, without the rights to see it).
pub fn listening_on(port: u16) -> Option<u32> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let local = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
                    // State 0A is LISTEN; field 10 the socket's inode.
                    (local == port && *f.get(3)? == "0A")
                        .then(|| f.get(9).map(|i| i.to_string()))?
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|fds| {
                    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                        .any(|link| wanted.iter().any(|w| link.as_os_str() == w.as_str()))
                })
                .unwrap_or(false)
        })
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
    /// Each process with its children (see [`cpu_ticks`]).
    trees: bool,
}

impl Span {
    pub fn start(processes: &[(String, u32)]) -> Self {
        Self::starting(processes, false)
    }

    /// As [`Span::start`], counting each process's children in it too (servers that serve
    /// each connection in a process of its own).
    pub fn start_trees(processes: &[(String, u32)]) -> Self {
        Self::starting(processes, true)
    }

    fn starting(processes: &[(String, u32)], trees: bool) -> Self {
        Self {
            started: std::time::Instant::now(),
            start: processes
                .iter()
                .map(|(n, p)| (n.clone(), *p, cpu_ticks(*p, trees).unwrap_or(0)))
                .collect(),
            trees,
        }
    }

    /// What each process used since the start, `orders` orders having completed meanwhile.
    pub fn finish(&self, orders: usize) -> Vec<ProcessUse> {
        let wall = self.started.elapsed().as_secs_f64();
        self.start
            .iter()
            .map(|(name, pid, ticks)| {
                let now = cpu_ticks(*pid, self.trees).unwrap_or(*ticks);
                let cpu = now.saturating_sub(*ticks) as f64 / TICKS_PER_SECOND;
                ProcessUse {
                    name: name.clone(),
                    pid: *pid,
                    peak_rss_mib: peak_rss_kib(*pid).unwrap_or(0) as f64 / 1024.0,
                    cpu_seconds: cpu,
                    cpu_percent: if wall > 0.0 { 100.0 * cpu / wall } else { 0.0 },
                    cpu_seconds_per_1000_orders: if orders > 0 {
                        1000.0 * cpu / orders as f64
                    } else {
                        0.0
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_listening_on_a_port_is_found_by_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listening_on(port), Some(std::process::id()));
        drop(listener);
        assert_eq!(listening_on(port), None, "nobody listens once it is closed");
    }

    #[test]
    fn a_trees_cpu_counts_the_children_that_have_ended() {
        let me = std::process::id();
        let (own, tree) = (cpu_ticks(me, false).unwrap(), cpu_ticks(me, true).unwrap());
        // A child that spins for a while, then ends and is reaped.
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        let children = (cpu_ticks(me, true).unwrap() - tree)
            .saturating_sub(cpu_ticks(me, false).unwrap() - own);
        assert!(
            children >= 5,
            "the ended child's CPU ({children} ticks) is the tree's"
        );
    }
}
