//! Server CPU time and resident memory from /proc, when the load generator runs on the server's
//! host and is given its PID; per-core busy time from /proc/stat, so a run shows whether the
//! server's core (kernel network work included) or the load generator's own core was the limit.

use std::fs;

/// /proc reports CPU times in USER_HZ, 100 per second on Linux.
const USER_HZ: f64 = 100.0;

/// (CPU seconds used, resident bytes) of process `pid`.
pub fn sample(pid: u32) -> Option<(f64, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(((utime + stime) / USER_HZ, rss_kb * 1024))
}

/// Per-core (busy, total) jiffies from /proc/stat; busy counts user, nice, system, irq and
/// softirq (loopback TCP work is softirq and is charged to no process), total adds idle, iowait
/// and steal.
pub fn cpu_jiffies() -> Vec<(u64, u64)> {
    fs::read_to_string("/proc/stat")
        .map(|s| parse_cpu_jiffies(&s))
        .unwrap_or_default()
}

fn parse_cpu_jiffies(stat: &str) -> Vec<(u64, u64)> {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let busy = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?;
            Some((busy, busy + f.get(3)? + f.get(4)? + f.get(7)?))
        })
        .collect()
}

/// Busy % of each core between two [`cpu_jiffies`] samples.
pub fn busy_percent(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|(&(b0, t0), &(b1, t1))| {
            let total = t1.saturating_sub(t0);
            if total == 0 {
                0.0
            } else {
                b1.saturating_sub(b0) as f64 * 100.0 / total as f64
            }
        })
        .collect()
}

/// The one core `pid` (or this process, with `None`) may run on, if its affinity is one core.
pub fn single_core(pid: Option<u32>) -> Option<usize> {
    let path = pid.map_or("/proc/self/status".to_string(), |p| {
        format!("/proc/{p}/status")
    });
    let status = fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_can_be_sampled() {
        let (cpu, rss) = sample(std::process::id()).expect("/proc is readable");
        assert!(cpu >= 0.0);
        assert!(rss > 0);
        assert!(!cpu_jiffies().is_empty());
    }

    #[test]
    fn per_core_busy_counts_irq_and_softirq() {
        let a = parse_cpu_jiffies(
            "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 10 0 10 100 0 0 0 0 0 0\ncpu1 0 0 0 200 0 0 0 0 0 0\nintr 1\n",
        );
        let b = parse_cpu_jiffies(
            "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 30 0 20 150 0 5 15 0 0 0\ncpu1 0 0 0 300 0 0 0 0 0 0\n",
        );
        assert_eq!(a, [(20, 120), (0, 200)]);
        assert_eq!(busy_percent(&a, &b), [50.0, 0.0]);
    }
}
