//! The process's limit on open files, raised to what the system allows.
//!
//! Every HTTP connection, Kafka connection and database file holds a file descriptor. Many
//! Linux systems start processes with a soft limit of 1,024, below the 2,048 requests a
//! service takes in flight (`--max-in-flight-requests`): under overload, accepting a
//! connection would fail (`EMFILE`) before the limit could answer `503` at once. The soft
//! limit may be raised up to the hard limit without privilege, as Go's runtime, nginx
//! (`worker_rlimit_nofile`) and the JVM (`-XX:+MaxFDLimit`) do; so every `openorder`
//! command raises it at start, and the embedded broker, started by `openorder up`, inherits it.

/// The soft limit never asked for beyond this, even when the hard limit is unlimited.
const CEILING: u64 = 1 << 20;

/// Raises the soft limit on open files to the hard limit (at most [`CEILING`]) and returns
/// the limit now in force.
pub fn raise() -> std::io::Result<u64> {
    let mut limit = current()?;
    let wanted = limit.rlim_max.min(CEILING);
    if limit.rlim_cur >= wanted {
        return Ok(limit.rlim_cur);
    }
    limit.rlim_cur = wanted;
    set(&limit)?;
    Ok(wanted)
}

/// The soft and hard limits on open files.
#[allow(unsafe_code)]
fn current() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live, properly laid out struct the kernel fills.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

#[allow(unsafe_code)]
fn set(limit: &libc::rlimit) -> std::io::Result<()> {
    // SAFETY: `limit` is a live, properly laid out struct the kernel only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soft_and_hard() -> (u64, u64) {
        let limit = current().unwrap();
        (limit.rlim_cur, limit.rlim_max)
    }

    #[test]
    fn a_low_soft_limit_on_open_files_is_raised_to_the_hard_limit() {
        let (_, hard) = soft_and_hard();
        // Lowering the soft limit needs no privilege; 1,024 is far more than the tests
        // running beside this one hold open.
        set(&libc::rlimit {
            rlim_cur: 1024.min(hard),
            rlim_max: hard,
        })
        .unwrap();
        assert_eq!(soft_and_hard().0, 1024.min(hard));

        let raised = raise().unwrap();

        assert_eq!(raised, hard.min(CEILING));
        assert_eq!(soft_and_hard(), (hard.min(CEILING), hard));
    }
}
