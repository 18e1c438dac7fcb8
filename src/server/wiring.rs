//! What each part of the server takes from the checked configuration: the connection settings,
//! the server-wide state, and the parts every shard is built from.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::backend::Backend;
use crate::auth::Policy;
use crate::config::ValidConfig;
use crate::conn::ConnSettings;
use crate::distributor::{DistributorStats, Ingress, ShardMsg};
use crate::protocol::handshake::Routes;
use crate::shard::{ShardControl, ShardParts, ShardStats};
use crate::status::{ClusterStats, ServerState};
use crate::tls::CertStore;

/// The path of the native WebSocket endpoint.
pub(crate) const WS_PATH: &str = "/ws";

impl From<&ValidConfig> for ConnSettings {
    fn from(config: &ValidConfig) -> ConnSettings {
        ConnSettings {
            max_message_bytes: config.max_message_bytes,
            max_queued_bytes: config.max_queued_bytes,
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            handshake_timeout: config.handshake_timeout,
            routes: Routes {
                ws_path: WS_PATH.into(),
                echo_path: config.echo_path.clone(),
                max_body: config.max_http_body_bytes,
                deflate: config.compression,
            },
        }
    }
}

/// The server-wide read side for `config` on `backend`, with fresh counters for every shard.
pub(super) fn server_state(
    config: &ValidConfig,
    backend: Backend,
    cluster: Option<Arc<ClusterStats>>,
) -> ServerState {
    ServerState {
        started: Instant::now(),
        backend: backend.name(),
        tick_hz: config.tick_hz,
        shards: (0..config.shards)
            .map(|_| Arc::new(ShardStats::default()))
            .collect(),
        distributor: Arc::new(DistributorStats::default()),
        channels: Default::default(),
        draining: Default::default(),
        api_key: config.api_key.clone(),
        cors_origins: config.cors_origins.clone(),
        rates: Default::default(),
        cluster,
    }
}

/// What every shard shares; [`parts`](Self::parts) adds what is one shard's own.
pub(super) struct ShardCommon {
    config: ValidConfig,
    settings: ConnSettings,
    policy: Arc<Policy>,
    state: Arc<ServerState>,
    ingress: Ingress,
    connections: Arc<AtomicUsize>,
    tls: Option<Arc<CertStore>>,
}

impl ShardCommon {
    /// The shared parts for a server running `config`.
    pub(super) fn new(
        config: &ValidConfig,
        policy: Arc<Policy>,
        state: Arc<ServerState>,
        ingress: Ingress,
    ) -> ShardCommon {
        ShardCommon {
            config: config.clone(),
            settings: ConnSettings::from(config),
            policy,
            state,
            ingress,
            connections: Arc::new(AtomicUsize::new(0)),
            tls: None,
        }
    }

    /// Serves `wss://` with the certificates of `tls`.
    pub(super) fn with_tls(mut self, tls: Option<Arc<CertStore>>) -> ShardCommon {
        self.tls = tls;
        self
    }

    /// Shard `id`'s parts, reading `batches` from the distributor and `control` from the server.
    pub(super) fn parts(
        &self,
        id: usize,
        batches: Receiver<ShardMsg>,
        control: Receiver<ShardControl>,
    ) -> ShardParts {
        let c = &self.config;
        ShardParts {
            id,
            settings: self.settings.clone(),
            tick_hz: c.tick_hz,
            ingress: self.ingress.clone(),
            batches,
            control,
            stats: self.state.shards[id].clone(),
            connections: self.connections.clone(),
            max_connections: c.max_connections,
            state: self.state.clone(),
            default_channels: c.default_channels.clone(),
            welcome: c.welcome.clone(),
            policy: self.policy.clone(),
            auth_timeout: c.auth_timeout,
            tls: self.tls.clone(),
        }
    }
}

/// How long the cluster's event stream keeps a channel's batches: as many as the largest
/// `history_size` or `cluster.retained_batches`, whichever is more (so the head — seq and
/// epoch — survives, and a paused node can catch up), for as long as the
/// longest `history_ttl` when every namespace with history has one. Each node trims its own
/// history per namespace exactly.
pub(super) fn retention(
    namespaces: &crate::config::Namespaces,
    retained_batches: u32,
) -> crate::cluster::Retention {
    let with_history: Vec<_> = namespaces
        .iter()
        .map(|(_, ns)| ns)
        .filter(|ns| ns.history_size > 0)
        .collect();
    let max_msgs = with_history
        .iter()
        .map(|ns| ns.history_size)
        .max()
        .unwrap_or(0)
        .max(retained_batches)
        .max(1);
    let max_age =
        if !with_history.is_empty() && with_history.iter().all(|ns| !ns.history_ttl.is_zero()) {
            with_history
                .iter()
                .map(|ns| ns.history_ttl)
                .max()
                .unwrap_or_default()
        } else {
            std::time::Duration::ZERO
        };
    crate::cluster::Retention {
        max_msgs_per_subject: i64::from(max_msgs),
        max_age,
    }
}
