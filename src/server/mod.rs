//! The embedding API and the wiring: [`Server::start`] checks the configuration, binds one
//! listener per shard, picks the I/O backend, starts the pinned shard threads, the distributor
//! and the observer, and returns a [`ServerHandle`] to publish, inspect and shut down.
//! Every thread is owned by a guard from the moment it is spawned (`threads.rs`), so a start
//! that fails part-way stops what it started. Shutdown order: shards stop accepting and close
//! every connection with 1001 (up to `drain_timeout`), then the observer and the distributor.
// Starting and stopping the threads is timed against the clock.
#![allow(clippy::disallowed_methods)]

mod backend;
mod error;
mod fail;
mod handle;
#[cfg(test)]
mod tests;
mod threads;
mod wiring;

use std::sync::Arc;

use crate::auth::Policy;
use crate::config::{Config, ConfigError};
use crate::distributor::{Distributor, Ingress};
use crate::shard::listen;
use crate::tls::{CertStore, KernelSupport, TlsConfigError};
use backend::Backend;
use threads::Threads;
use wiring::ShardCommon;

pub use error::StartError;
pub use handle::ServerHandle;

/// A configured server, not yet started.
#[derive(Debug, Clone)]
pub struct Server {
    config: Config,
}

impl Server {
    /// A server with this configuration.
    pub fn new(config: Config) -> Server {
        Server { config }
    }

    /// Binds, spawns the shards, the distributor and the observer, and returns once every
    /// shard is ready. On any error, whatever was already started is stopped again.
    pub fn start(self) -> Result<ServerHandle, StartError> {
        let config = self.config.check()?;
        let backend = Backend::choose(config.io)?;
        let bind_error = |e| StartError::bind(config.listen, e);
        let claim = listen::claim(config.listen).map_err(bind_error)?;
        let listeners = listen::bind_shards(&claim, config.shards).map_err(bind_error)?;
        let policy = Arc::new(Policy::from_config(&config)?);
        let tls = tls_store(&config)?;
        let (ingress, ingress_rx) = Ingress::new();
        let cluster = match &config.cluster {
            Some(c) => {
                let retention = wiring::retention(&policy.namespaces, c.retained_batches);
                let started = crate::cluster::start(c, retention, ingress.cluster_sink())
                    .map_err(StartError::Shard)?;
                Some(started)
            }
            None => None,
        };
        let cluster_stats = cluster.as_ref().map(|(link, _)| link.stats.clone());
        let state = Arc::new(wiring::server_state(&config, backend, cluster_stats));
        let common = ShardCommon::new(&config, policy.clone(), state.clone(), ingress.clone())
            .with_tls(tls.clone());
        let mut threads = Threads::new(ingress.clone(), state.clone(), config.drain_timeout);
        let (cluster_link, bridge) = cluster.unzip();
        threads.own_bridge(bridge);
        let cores = pinned_cores(&config);
        let mut links = Vec::with_capacity(listeners.len());
        for (id, listener) in listeners.into_iter().enumerate() {
            let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
            links.push(threads.spawn_shard(id, listener, backend, core, &common)?);
        }
        threads.spawn_distributor(
            Distributor::new(
                ingress_rx,
                ingress.clone(),
                links,
                config.tick_period(),
                state.clone(),
                policy.namespaces.clone(),
                config.max_channels,
            )
            .with_cluster(cluster_link)
            .with_compression(config.compression.then_some(config.compression_level)),
        )?;
        threads.start_observer(config.status_interval, config.heartbeat_interval)?;
        threads.wait_ready()?;
        announce(&config, claim.addr(), backend, tls.is_some());
        Ok(ServerHandle {
            threads,
            addr: claim.addr(),
            backend: backend.name(),
            ingress,
            state,
            config,
            tls,
            _claim: claim,
        })
    }
}

/// The cores shard threads are pinned to, round-robin (none when `pin_cores` is off).
fn pinned_cores(config: &Config) -> Vec<core_affinity::CoreId> {
    if config.pin_cores {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// The certificate store for `wss://` (`None` without `tls_cert_file`); says once whether the
/// kernel could take over the encryption. The error names the key of the file at fault.
fn tls_store(config: &Config) -> Result<Option<Arc<CertStore>>, StartError> {
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Ok(None);
    };
    let kernel = kernel_tls(config.tls_kernel);
    let store = CertStore::load(cert, key, kernel).map_err(|e| {
        let key = match &e {
            TlsConfigError::File { key, .. } => key,
            TlsConfigError::Pair { .. } => "tls_key_file",
        };
        ConfigError::invalid(key, e.to_string())
    })?;
    Ok(Some(Arc::new(store)))
}

/// What the kernel takes TLS sessions with (nothing with `tls_kernel = "off"`), said in one
/// line either way.
fn kernel_tls(wanted: bool) -> KernelSupport {
    if !wanted {
        tracing::info!("tls_kernel = \"off\": encrypting in userspace (rustls)");
        return KernelSupport::NONE;
    }
    match crate::tls::ktls::probe() {
        Ok(support) => {
            tracing::info!(
                ciphers = %support.names(),
                "kernel TLS available: TLS 1.3 sessions go to the kernel after their handshake"
            );
            support
        }
        Err(why) => {
            tracing::info!(reason = %why, "kernel TLS unavailable: encrypting in userspace (rustls)");
            KernelSupport::NONE
        }
    }
}

/// The startup line.
fn announce(config: &Config, addr: std::net::SocketAddr, backend: Backend, tls: bool) {
    let fd_connections = crate::driver::fd_limit::connection_capacity(config.shards);
    let file = config.config_file.as_ref();
    tracing::info!(
        %addr,
        backend = backend.name(),
        shards = config.shards,
        tick_hz = config.tick_hz,
        fd_connections,
        config = file.map_or("none (defaults, environment, flags)".into(), |p| p.display().to_string()),
        auth = config.auth_mode(),
        scheme = if tls { "wss" } else { "ws" },
        "framecast listening"
    );
}
