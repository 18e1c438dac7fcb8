//! The native JSON protocol (docs/protocol.md): client commands validated and read in place into
//! typed requests, and the server's replies and events encoded into complete WebSocket frames.
#![forbid(unsafe_code)]

pub mod binary_event;
pub mod channel;
pub mod command;
pub(crate) mod compat;
pub mod event;
pub(crate) mod json;
pub mod reply;

use std::time::{Duration, SystemTime};

/// A moment on the wall clock. Read by the thread that owns a loop (a shard, the distributor,
/// the observer) and passed in: nothing in `wire` reads a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallTime {
    unix_ms: u64,
}

impl WallTime {
    /// The moment `t` (the Unix epoch for a time before it).
    pub fn of(t: SystemTime) -> WallTime {
        let unix_ms = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        WallTime { unix_ms }
    }

    /// The moment `unix_ms` milliseconds after the Unix epoch.
    pub const fn from_unix_ms(unix_ms: u64) -> WallTime {
        WallTime { unix_ms }
    }

    /// Milliseconds since the Unix epoch (`server_time_ms`, clock-offset estimates).
    pub fn unix_ms(self) -> u64 {
        self.unix_ms
    }

    /// Whole seconds since the Unix epoch (JWT `exp`).
    pub fn unix_secs(self) -> u64 {
        self.unix_ms / 1000
    }

    /// The moment an RFC 3339 time names (`None` if it is not one).
    pub fn parse_rfc3339(text: &str) -> Option<WallTime> {
        humantime::parse_rfc3339_weak(text).ok().map(WallTime::of)
    }

    /// RFC 3339 with milliseconds (`2026-11-22T03:55:34.123Z`).
    pub fn rfc3339(self) -> String {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(self.unix_ms);
        humantime::format_rfc3339_millis(t).to_string()
    }
}
