//! The embedding API and the wiring: [`Server::start`] binds one listener per shard, picks the
//! I/O backend, starts the distributor and the pinned shard threads, and returns a
//! [`ServerHandle`] to publish, inspect and shut down. Shutdown order: shards stop accepting and
//! close every connection with 1001 (up to `drain_timeout`), then the distributor stops.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;
use serde::Serialize;
use thiserror::Error;

use crate::config::{Config, ConfigError, IoBackend};
use crate::conn::ConnSettings;
use crate::distributor::{Distributor, DistributorStats, Ingress, PublishError, ShardLink};
use crate::driver::epoll::EpollDriver;
use crate::driver::uring::UringDriver;
use crate::driver::EventFd;
use crate::limits::SHARD_INBOX_BATCHES;
use crate::observer::Observer;
use crate::protocol::handshake::Routes;
use crate::shard::{listen, Shard, ShardControl, ShardParts, ShardStats};
use crate::status::ServerState;

/// Why the server did not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Something already listens on the address: another framecast, another program, or
    /// another [`Server`] in this process. Stop it or pick another `listen` address.
    #[error("cannot listen on {addr}: address in use (another server listens there)")]
    AddrInUse {
        /// The configured address.
        addr: SocketAddr,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// `io = "uring"` was asked for and io_uring is not available.
    #[error("io_uring is not available ({0}); use --io epoll or --io auto")]
    UringUnavailable(std::io::Error),
    /// A thread or driver could not be created.
    #[error("cannot start shard: {0}")]
    Shard(std::io::Error),
}

/// A configured server, not yet started.
#[derive(Debug, Clone)]
pub struct Server {
    config: Config,
}

struct ShardRef {
    control: Sender<ShardControl>,
    waker: Arc<EventFd>,
    stats: Arc<ShardStats>,
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    backend: &'static str,
    ingress: Ingress,
    shards: Vec<ShardRef>,
    threads: Vec<JoinHandle<()>>,
    distributor: Option<JoinHandle<()>>,
    observer: Option<Observer>,
    state: Arc<ServerState>,
    config: Config,
    /// Keeps other servers off the address while the shards listen (dropped after them).
    _claim: listen::AddrClaim,
}

// Starting and stopping the threads is timed against the clock.
#[allow(clippy::disallowed_methods)]
impl Server {
    /// A server with this configuration.
    pub fn new(config: Config) -> Server {
        Server { config }
    }

    /// Binds, spawns the distributor and the shards, and returns once every shard is ready.
    pub fn start(self) -> Result<ServerHandle, StartError> {
        let config = self.config;
        config.check()?;
        let use_uring = match config.io {
            IoBackend::Epoll => false,
            IoBackend::Uring => {
                crate::driver::uring::probe().map_err(StartError::UringUnavailable)?;
                true
            }
            IoBackend::Auto => match crate::driver::uring::probe() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring unavailable, falling back to epoll");
                    false
                }
            },
        };
        let bind_error = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::AddrInUse => StartError::AddrInUse {
                addr: config.listen,
            },
            _ => StartError::Bind {
                addr: config.listen,
                source,
            },
        };
        let claim = listen::claim(config.listen).map_err(bind_error)?;
        let listeners = listen::bind_shards(&claim, config.shards).map_err(bind_error)?;
        let addr = claim.addr();
        let (ingress, ingress_rx) = Ingress::new();
        let connections = Arc::new(AtomicUsize::new(0));
        let settings = ConnSettings {
            max_message_bytes: config.max_message_bytes,
            max_queued_bytes: config.max_queued_bytes,
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            handshake_timeout: config.handshake_timeout,
            routes: Routes {
                ws_path: "/ws".into(),
                echo_path: config.echo_path.clone(),
                max_body: config.max_http_body_bytes,
            },
        };
        let policy = Arc::new(crate::auth::Policy::from_config(&config)?);
        let backend = if use_uring { "io_uring" } else { "epoll" };
        let shard_stats: Vec<Arc<ShardStats>> = (0..config.shards)
            .map(|_| Arc::new(ShardStats::default()))
            .collect();
        let state = Arc::new(ServerState {
            started: Instant::now(),
            backend,
            tick_hz: config.tick_hz,
            shards: shard_stats.clone(),
            distributor: Arc::new(DistributorStats::default()),
            channels: Default::default(),
            draining: Default::default(),
            api_key: config.api_key.clone(),
            cors_origins: config.cors_origins.clone(),
            rates: Default::default(),
        });
        let cores = if config.pin_cores {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut links = Vec::new();
        let mut shards = Vec::new();
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
        for (id, listener) in listeners.into_iter().enumerate() {
            let waker = Arc::new(EventFd::new().map_err(StartError::Shard)?);
            let (batch_tx, batch_rx) = crossbeam_channel::bounded(SHARD_INBOX_BATCHES);
            let (control_tx, control_rx) = crossbeam_channel::unbounded();
            let stats = shard_stats[id].clone();
            links.push(ShardLink::new(batch_tx, waker.clone()));
            let parts = ShardParts {
                id,
                settings: settings.clone(),
                tick_hz: config.tick_hz,
                ingress: ingress.clone(),
                batches: batch_rx,
                control: control_rx,
                stats: stats.clone(),
                connections: connections.clone(),
                max_connections: config.max_connections,
                state: state.clone(),
                default_channels: config.default_channels.clone(),
                welcome: config.welcome.clone(),
                policy: policy.clone(),
                auth_timeout: config.auth_timeout,
            };
            let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
            let ready = ready_tx.clone();
            let shard_waker = waker.clone();
            let thread = std::thread::Builder::new()
                .name(format!("framecast-shard-{id}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    let result = if use_uring {
                        match UringDriver::new(listener, shard_waker) {
                            Ok(d) => {
                                let _ = ready.send(Ok(()));
                                Shard::new(d, parts).run()
                            }
                            Err(e) => Err(e),
                        }
                    } else {
                        match EpollDriver::new(listener, shard_waker) {
                            Ok(d) => {
                                let _ = ready.send(Ok(()));
                                Shard::new(d, parts).run()
                            }
                            Err(e) => Err(e),
                        }
                    };
                    if let Err(e) = result {
                        tracing::error!(shard = id, error = %e, "shard stopped with an error");
                        let _ = ready.send(Err(e));
                    }
                })
                .map_err(StartError::Shard)?;
            threads.push(thread);
            shards.push(ShardRef {
                control: control_tx,
                waker,
                stats,
            });
        }
        drop(ready_tx);
        let distributor = Distributor::new(
            ingress_rx,
            ingress.clone(),
            links,
            config.tick_period(),
            state.clone(),
            policy.namespaces.clone(),
            config.max_channels,
        );
        let distributor = std::thread::Builder::new()
            .name("framecast-distributor".into())
            .spawn(move || distributor.run())
            .map_err(StartError::Shard)?;
        let observer = Observer::start(
            state.clone(),
            ingress.clone(),
            config.status_interval,
            config.heartbeat_interval,
        )
        .map_err(StartError::Shard)?;
        let mut handle = ServerHandle {
            addr,
            backend,
            ingress,
            shards,
            threads,
            distributor: Some(distributor),
            observer: Some(observer),
            state,
            config,
            _claim: claim,
        };
        for _ in 0..handle.shards.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    handle.stop();
                    return Err(StartError::Shard(e));
                }
                Err(_) => {
                    handle.stop();
                    return Err(StartError::Shard(std::io::Error::other(
                        "a shard thread exited",
                    )));
                }
            }
        }
        let c = &handle.config;
        let shards = handle.shards.len();
        let fd_connections = crate::driver::fd_limit::connection_capacity(shards);
        tracing::info!(
            %addr,
            backend,
            shards,
            tick_hz = c.tick_hz,
            fd_connections,
            config = c.config_file.as_ref().map_or("none (defaults, environment, flags)".into(), |p| p.display().to_string()),
            auth = c.auth_mode(),
            "framecast listening"
        );
        Ok(handle)
    }
}

#[allow(clippy::disallowed_methods)]
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

    /// A cloneable way to publish from other threads.
    pub fn ingress(&self) -> Ingress {
        self.ingress.clone()
    }

    /// Open connections per shard (including ones still in the HTTP upgrade).
    pub fn connections_per_shard(&self) -> Vec<u64> {
        self.shards
            .iter()
            .map(|s| ShardStats::get(&s.stats.connections))
            .collect()
    }

    /// Every shard's counters.
    pub fn shard_stats(&self) -> Vec<Arc<ShardStats>> {
        self.shards.iter().map(|s| s.stats.clone()).collect()
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
        self.stop();
    }

    fn stop(&mut self) {
        if self.distributor.is_none() && self.threads.is_empty() {
            return;
        }
        self.state
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let deadline = Instant::now() + self.config.drain_timeout;
        for shard in &self.shards {
            let _ = shard.control.send(ShardControl::Shutdown { deadline });
            shard.waker.wake();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if let Some(mut o) = self.observer.take() {
            o.stop();
        }
        self.ingress.stop();
        if let Some(d) = self.distributor.take() {
            let _ = d.join();
        }
        tracing::info!("framecast stopped");
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
