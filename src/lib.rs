//! framecast: a real-time WebSocket event-streaming server for dedicated Linux hosts.
//!
//! ```text
//!  publish (client / HTTP / embedding)                         subscribers
//!        │                                                          ▲
//!        ▼                                                          │ one writev per conn per tick
//!  Ingress (lock-free queue) ──► Distributor ──tick──► TickBatch ──► Shard k: fanout → Outbox
//!                                 (frame clock, seq,   (one Bytes    (pinned thread, io_uring
//!                                  encode once,         per channel)   or epoll, sans-IO Conn)
//!                                  history, snapshot,
//!                                  conflation levels)
//!  subscribe ──► Ingress (Join) ──► Distributor ──► Joined (position, replay) in the same
//!                                                   ordered inbox as the tick batches
//! ```
//!
//! Modules follow the data path: [`config`] → [`shard`] (listeners, loop) and [`driver`]
//! (io_uring / epoll) → [`conn`] (sans-IO connection) → [`protocol`] (WebSocket) and [`wire`]
//! (JSON protocol) → [`distributor`] and [`clock`] → [`fanout`]. Beside the data path: [`http`]
//! (the HTTP API on the same port), [`status`] (what it reports) and [`observer`] (rates and the
//! built-in channels). [`server`] wires it together and is the embedding API.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Tests may read the clock; the server's code is handed the time (clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod auth;
pub mod clock;
pub mod config;
pub mod conn;
pub mod conn_id;
pub mod distributor;
pub mod driver;
pub mod fanout;
pub mod http;
pub mod limits;
pub mod log_limit;
pub mod observer;
pub mod protocol;
pub mod server;
pub mod shard;
pub mod status;
pub mod table;
#[cfg(test)]
mod testing;
pub mod wire;

pub use config::{Config, ConfigError, IoBackend};
pub use distributor::PublishError;
pub use server::{Server, ServerHandle, StartError};
