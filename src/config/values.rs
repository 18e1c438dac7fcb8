//! Text → value parsers shared by every configuration source; each returns a message for the
//! caller to wrap with the key's name.

use std::time::Duration;

/// Parses an integer in `min..=max`.
pub fn parse_number<T>(value: &str, min: u64, max: u64) -> Result<T, String>
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
pub fn parse_bytes(value: &str, min: u64, max: u64) -> Result<usize, String> {
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
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(v)
        .map_err(|e| format!("`{value}` is not a duration like 30s or 500ms ({e})"))
}

/// Parses `true`/`false` (also `1`/`0`, `yes`/`no`).
pub fn parse_bool_flag(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{value}` is not true or false")),
    }
}
