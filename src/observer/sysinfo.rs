//! Host figures for `system.status`, read from /proc (Linux only, which framecast targets).

use std::fs;

/// CPU time counters from the first line of /proc/stat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    /// Jiffies spent busy.
    pub busy: u64,
    /// Jiffies in all.
    pub total: u64,
}

/// Reads /proc/stat's aggregate CPU line.
pub(crate) fn cpu_times() -> CpuTimes {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_cpu_line(text.lines().next().unwrap_or(""))
}

/// Parses `cpu  user nice system idle iowait irq softirq steal ...`.
pub(crate) fn parse_cpu_line(line: &str) -> CpuTimes {
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    }
}

/// Busy percentage between two readings.
pub(crate) fn cpu_usage(before: CpuTimes, after: CpuTimes) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    after.busy.saturating_sub(before.busy) as f64 * 100.0 / total as f64
}

/// (total, used) memory in bytes from /proc/meminfo (used = total - available).
pub(crate) fn memory() -> (u64, u64) {
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    parse_meminfo(&text)
}

/// Parses MemTotal and MemAvailable (kB) from /proc/meminfo text.
pub(crate) fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let total = field("MemTotal:");
    (total, total.saturating_sub(field("MemAvailable:")))
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn load_average() -> [f64; 3] {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|x| x.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// The host name.
pub(crate) fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_splits_busy_from_idle_and_iowait() {
        let t = parse_cpu_line("cpu  100 0 50 800 50 0 0 0 0 0");
        assert_eq!(
            t,
            CpuTimes {
                busy: 150,
                total: 1000
            }
        );
        let later = parse_cpu_line("cpu  200 0 100 1600 100 0 0 0 0 0");
        assert!((cpu_usage(t, later) - 15.0).abs() < 1e-9);
    }

    #[test]
    fn meminfo_gives_total_and_used_bytes() {
        let (total, used) =
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 250 kB\n");
        assert_eq!((total, used), (1_024_000, 768_000));
    }
}
