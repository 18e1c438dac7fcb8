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
#![warn(unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Tests may read the clock; the server's code is handed the time (clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub(crate) mod auth;
pub(crate) mod clock;
pub(crate) mod cluster;
pub mod config;
pub(crate) mod conn;
pub(crate) mod conn_id;
pub(crate) mod distributor;
pub(crate) mod driver;
pub(crate) mod epoch;
pub(crate) mod fanout;
pub(crate) mod http;
#[doc(hidden)]
pub mod internals;
pub(crate) mod limits;
pub(crate) mod log_limit;
pub(crate) mod observer;
pub(crate) mod protocol;
pub(crate) mod server;
pub(crate) mod shard;
pub(crate) mod status;
pub(crate) mod table;
#[cfg(test)]
mod testing;
pub(crate) mod tls;
pub use tls::TlsConfigError;
pub(crate) mod wire;

pub use config::{Config, ConfigError, IoBackend};
pub use distributor::PublishError;
pub use server::{Server, ServerHandle, StartError};
