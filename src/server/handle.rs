//! [`ServerHandle`]: a running server, to publish into, inspect and shut down.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use super::threads::Threads;
use crate::config::{Config, ValidConfig};
use crate::distributor::{DistributorStats, Ingress, PublishError};
use crate::shard::{listen, ShardStats};
use crate::status::ServerState;
use crate::tls::{CertStore, TlsConfigError};

/// A running server; dropping it shuts it down as [`shutdown`](Self::shutdown) does.
pub struct ServerHandle {
    // Field order is drop order: the threads stop before the address is released.
    pub(super) threads: Threads,
    pub(super) addr: SocketAddr,
    pub(super) backend: &'static str,
    pub(super) ingress: Ingress,
    pub(super) state: Arc<ServerState>,
    pub(super) config: ValidConfig,
    /// `wss://`: the certificates new connections get.
    pub(super) tls: Option<Arc<CertStore>>,
    /// Keeps other servers off the address while the shards listen (dropped after them).
    pub(super) _claim: listen::AddrClaim,
}

impl ServerHandle {
    /// The address the server listens on (with the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The I/O backend in use: `io_uring` or `epoll`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Publishes `data` (serialized as JSON) to `channel` with `event_type`, through the same
    /// distributor and frame clock as client publishes.
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event_type: &str,
        data: &T,
    ) -> Result<(), PublishError> {
        self.publish_with(channel, event_type, None, data)
    }

    /// Publishes with a conflation / snapshot `key` (see `docs/protocol.md`).
    pub fn publish_keyed<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event_type: &str,
        key: &str,
        data: &T,
    ) -> Result<(), PublishError> {
        self.publish_with(channel, event_type, Some(key), data)
    }

    /// Publishes a binary event: `data` is raw bytes, delivered as a binary frame to
    /// connections that opened with `?binary=1` and in base64 to the others (see
    /// `docs/protocol.md`, "Binary events"); `key` as for [`publish_keyed`](Self::publish_keyed).
    pub fn publish_binary(
        &self,
        channel: &str,
        event_type: &str,
        key: Option<&str>,
        data: impl Into<bytes::Bytes>,
    ) -> Result<(), PublishError> {
        (self.ingress).publish_binary_to_all(&[channel], event_type, key, data.into())
    }

    fn publish_with<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event_type: &str,
        key: Option<&str>,
        data: &T,
    ) -> Result<(), PublishError> {
        let json =
            serde_json::to_vec(data).map_err(|e| PublishError::InvalidData(e.to_string()))?;
        self.ingress.publish_keyed(channel, event_type, key, json)
    }

    /// Reads `tls_cert_file` and `tls_key_file` again: connections accepted from now on are
    /// served the new certificate, open ones keep theirs. `Ok(false)` without TLS; on error the
    /// old certificate stays.
    pub fn reload_tls(&self) -> Result<bool, TlsConfigError> {
        match &self.tls {
            Some(store) => store.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// A cloneable way to publish from other threads.
    pub fn ingress(&self) -> Ingress {
        self.ingress.clone()
    }

    /// Open connections per shard (including ones still in the HTTP upgrade).
    pub fn connections_per_shard(&self) -> Vec<u64> {
        self.state
            .shards
            .iter()
            .map(|s| ShardStats::get(&s.connections))
            .collect()
    }

    /// Every shard's counters.
    pub fn shard_stats(&self) -> Vec<Arc<ShardStats>> {
        self.state.shards.clone()
    }

    /// The distributor's counters.
    pub fn distributor_stats(&self) -> Arc<DistributorStats> {
        self.state.distributor.clone()
    }

    /// The server's read side (what the HTTP API reports).
    pub fn state(&self) -> Arc<ServerState> {
        self.state.clone()
    }

    /// Graceful shutdown: stop accepting, close every connection with 1001, wait up to
    /// `drain_timeout`, stop the distributor. Blocks until done.
    pub fn shutdown(mut self) {
        self.threads.stop();
    }
}
