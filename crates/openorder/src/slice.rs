//! Short scheduler slices for the threads that answer requests.
//!
//! On two cores the services, the broker and the clients take turns on the CPU. Linux's
//! fair scheduler (EEVDF) gives each thread a slice of 3 ms by default, and a thread woken
//! by a request may wait out most of the running thread's slice before it runs: that wait,
//! once or twice per request, was the tail of POST latency at 1,000 orders/s
//! (BENCHMARKS.md). A thread may ask for a shorter slice (`sched_setattr` with
//! `sched_runtime`, Linux 6.12 and later, no privilege needed). A short slice gives a
//! woken thread an earlier deadline, so it runs sooner; it does not change the thread's
//! share of the CPU. Older kernels ignore the request.

/// The slice the runtime's threads ask for. The kernel accepts 0.1 to 100 ms.
const SLICE: std::time::Duration = std::time::Duration::from_micros(300);

/// Asks the kernel to run the calling thread with [`SLICE`]. Best effort: a kernel that
/// refuses leaves the thread on the default slice, which only costs latency.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn shorten_this_threads_slice() {
    /// `struct sched_attr` of `sched_setattr(2)`, its first version (56 bytes).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: 0,
        sched_priority: 0,
        sched_runtime: SLICE.as_nanos() as u64,
        sched_deadline: 0,
        sched_period: 0,
        sched_util_min: 0,
        sched_util_max: 0,
    };
    // SAFETY: sched_setattr(2) on the calling thread (pid 0) reads `attr`, which lives
    // for the whole call and is laid out as the kernel's struct sched_attr.
    let result = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if result != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "the kernel kept its default scheduler slice for this thread"
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub fn shorten_this_threads_slice() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The slice this thread runs with, from `/proc/thread-self/sched` (`se.slice`, ns).
    fn current_slice() -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/sched")
            .ok()?
            .lines()
            .find(|line| line.starts_with("se.slice"))?
            .split(':')
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }

    /// Whether this kernel takes a slice per thread (Linux 6.12 and later).
    fn kernel_has_custom_slices() -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut numbers = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().unwrap_or(0));
        let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        (major, minor) >= (6, 12)
    }

    #[test]
    fn a_thread_that_asks_runs_with_the_short_slice_where_the_kernel_has_custom_slices() {
        if !kernel_has_custom_slices() {
            return;
        }
        std::thread::spawn(|| {
            let before = current_slice().expect("a 6.12 kernel shows se.slice");
            shorten_this_threads_slice();
            let after = current_slice().expect("se.slice was there a moment ago");
            assert_eq!(
                after,
                SLICE.as_nanos() as u64,
                "slice was {before} ns before"
            );
        })
        .join()
        .unwrap();
    }
}
