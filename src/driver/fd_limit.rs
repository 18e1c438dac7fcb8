//! The process's open-files limit (RLIMIT_NOFILE), which caps connections: each is one
//! descriptor. Distributions start processes with a soft limit of 1024 and a much higher hard
//! limit; the binary raises the soft limit to the hard one at start
//! ([`raise_soft_to_hard`]), and the startup log says how many connections the limit allows
//! ([`connection_capacity`]).

use std::io;

/// Descriptors the server needs besides its connections: standard streams, signal pipe, files
/// read for status, plus [`FDS_PER_SHARD`] per shard.
pub const FD_RESERVE: u64 = 16;
/// Descriptors of one shard besides its connections: listener, ring or epoll, wake-up eventfd,
/// and one spare.
pub const FDS_PER_SHARD: u64 = 4;

/// RLIMIT_NOFILE: the soft limit applies, the hard limit is how far it may be raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// Current (soft) limit.
    pub soft: u64,
    /// Ceiling (hard limit).
    pub hard: u64,
}

/// The current limit.
pub fn current() -> io::Result<FdLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FdLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Raises the soft limit to the hard limit (a process may do so without privileges); returns the
/// limit now in force. Call before starting the server: shards size their io_uring
/// registered-file tables from it.
pub fn raise_soft_to_hard() -> io::Result<FdLimit> {
    let limit = current()?;
    // An unlimited hard limit still cannot pass the kernel's fs.nr_open.
    let target = if limit.hard == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        limit.hard
    };
    if limit.soft >= target {
        return Ok(limit);
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: limit.hard,
    };
    // SAFETY: setrlimit reads one rlimit from the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    current()
}

/// Roughly how many connections `shards` shards can hold open at once under the current
/// limit: the soft limit minus [`FD_RESERVE`] and [`FDS_PER_SHARD`] per shard (0 when unknown).
pub fn connection_capacity(shards: usize) -> u64 {
    current().map_or(0, |l| capacity(l.soft, shards))
}

fn capacity(soft: u64, shards: usize) -> u64 {
    soft.saturating_sub(FD_RESERVE + FDS_PER_SHARD * shards as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_the_limit_minus_the_reserve() {
        assert_eq!(capacity(1024, 2), 1024 - 16 - 8);
        assert_eq!(capacity(10, 4), 0);
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_limit() {
        let raised = raise_soft_to_hard().unwrap();
        if raised.hard != libc::RLIM_INFINITY {
            assert_eq!(raised.soft, raised.hard);
        }
        assert_eq!(current().unwrap(), raised);
    }
}
