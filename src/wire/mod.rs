//! The native JSON protocol (docs/protocol.md): client commands validated and read in place into
//! typed requests, and the server's replies and events encoded into complete WebSocket frames.
#![forbid(unsafe_code)]

pub mod channel;
pub mod command;
pub mod event;
pub mod json;
pub mod reply;

/// Current wall-clock time in RFC 3339 with milliseconds (`2026-11-22T03:55:34.123Z`).
pub fn timestamp() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
