//! Text → value parsers shared by every configuration source (TOML file, environment, flags);
//! each returns a message for the caller to wrap with the key's name. The key table
//! (`keys.rs`) names one of these per key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::IoBackend;

/// Parses an integer in `min..=max`.
pub(crate) fn parse_number<T>(value: &str, min: u64, max: u64) -> Result<T, String>
where
    T: TryFrom<u64>,
{
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("{n} is outside {min}..={max}"));
    }
    T::try_from(n).map_err(|_| format!("{n} is too large"))
}

/// Parses a byte size: a whole number with an optional `KiB`, `MiB` or `GiB` suffix.
pub(crate) fn parse_bytes(value: &str, min: u64, max: u64) -> Result<usize, String> {
    let v = value.trim();
    let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&v[..i], v[i..].trim()),
        None => (v, ""),
    };
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1024,
        "m" | "mib" | "mb" => 1024 * 1024,
        "g" | "gib" | "gb" => 1024 * 1024 * 1024,
        _ => return Err(format!("`{value}` is not a size like 65536, 64KiB or 4MiB")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{value}` is not a size like 65536, 64KiB or 4MiB"))?;
    let bytes = n
        .checked_mul(scale)
        .ok_or_else(|| format!("`{value}` is too large"))?;
    if bytes < min || bytes > max {
        return Err(format!("{bytes} bytes is outside {min}..={max}"));
    }
    usize::try_from(bytes).map_err(|_| format!("`{value}` is too large"))
}

/// Parses a duration such as `30s`, `500ms` or `2m`; a bare number means seconds.
pub(crate) fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(v)
        .map_err(|e| format!("`{value}` is not a duration like 30s or 500ms ({e})"))
}

/// Parses `true`/`false` (also `1`/`0`, `yes`/`no`).
pub(crate) fn parse_bool_flag(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{value}` is not true or false")),
    }
}

/// Parses the `compression` policy: `offered` (or `on`) or `off`.
pub(crate) fn compression(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "offered" | "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("`{value}` is not one of offered, off")),
    }
}

/// Parses `tls_kernel`: `auto` (hand TLS 1.3 sessions to kernel TLS where the kernel has it)
/// or `off` (always encrypt in userspace).
pub(crate) fn tls_kernel(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "auto" | "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("`{value}` is not one of auto, off")),
    }
}

/// Parses a socket address such as `127.0.0.1:8080`.
pub(crate) fn address(value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("`{value}` is not an address like 127.0.0.1:8080"))
}

/// Parses `auto`, `uring` (or `io_uring`) or `epoll`.
pub(crate) fn backend(value: &str) -> Result<IoBackend, String> {
    match value {
        "auto" => Ok(IoBackend::Auto),
        "uring" | "io_uring" => Ok(IoBackend::Uring),
        "epoll" => Ok(IoBackend::Epoll),
        _ => Err(format!("`{value}` is not one of auto, uring, epoll")),
    }
}

/// Parses an HTTP path starting with `/`; empty means none.
pub(crate) fn endpoint_path(value: &str) -> Result<Option<String>, String> {
    match value {
        "" => Ok(None),
        p if p.starts_with('/') => Ok(Some(p.to_string())),
        _ => Err(format!("`{value}` must start with `/`")),
    }
}

/// Parses a secret of at least 16 characters; empty means none.
pub(crate) fn secret(value: &str) -> Result<Option<String>, String> {
    match value {
        "" => Ok(None),
        k if k.len() < 16 => Err("use at least 16 characters".into()),
        k => Ok(Some(k.to_string())),
    }
}

/// Any text; empty means none.
pub(crate) fn optional_text(value: &str) -> Result<Option<String>, String> {
    Ok((!value.is_empty()).then(|| value.to_string()))
}

/// A file path; empty means none.
pub(crate) fn optional_path(value: &str) -> Result<Option<PathBuf>, String> {
    Ok((!value.is_empty()).then(|| PathBuf::from(value)))
}

/// `true`/`false` as an explicit choice (no value means "decide from other keys").
pub(crate) fn explicit_bool(value: &str) -> Result<Option<bool>, String> {
    parse_bool_flag(value).map(Some)
}

/// A comma-separated list of valid channel names, blanks dropped.
pub(crate) fn channel_list(value: &str) -> Result<Vec<String>, String> {
    let list = comma_list(value);
    match list.iter().find(|n| !crate::wire::channel::is_valid(n)) {
        Some(bad) => Err(format!("`{bad}` is not a valid channel name")),
        None => Ok(list),
    }
}

/// A comma-separated list of origins, blanks dropped (not checked: browsers send many forms).
pub(crate) fn origin_list(value: &str) -> Result<Vec<String>, String> {
    Ok(comma_list(value))
}

/// A comma-separated list of origins for CORS, each `scheme://host[:port]` or `*`.
pub(crate) fn cors_origin_list(value: &str) -> Result<Vec<String>, String> {
    let list = comma_list(value);
    match list.iter().find(|o| !is_origin_pattern(o)) {
        Some(bad) => Err(format!(
            "`{bad}` is not an origin (scheme://host[:port], or * for any)"
        )),
        None => Ok(list),
    }
}

/// The items of a comma-separated list, trimmed, blanks dropped.
fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect()
}

/// `*`, or an origin as browsers send it: `scheme://host[:port]` with no path.
fn is_origin_pattern(o: &str) -> bool {
    o == "*"
        || o.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !rest.is_empty()
                && !rest.contains(['/', '?', '#', ' '])
        })
}

/// The number of cores this process may run on (at least 1): the default shard count.
pub(crate) fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
