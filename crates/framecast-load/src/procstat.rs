//! Server CPU time and resident memory from /proc, when the load generator runs on the server's
//! host and is given its PID.

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

#[cfg(test)]
mod tests {
    #[test]
    fn own_process_can_be_sampled() {
        let (cpu, rss) = super::sample(std::process::id()).expect("/proc is readable");
        assert!(cpu >= 0.0);
        assert!(rss > 0);
    }
}
