//! [`Threads`]: the guard that owns every thread of a server — shards, distributor, observer —
//! from the moment each is spawned. Dropping it stops them all in shutdown order, so a start
//! that fails half-way (an early `?`) leaves nothing running, and a running server stops the
//! same way.

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::backend::Backend;
use super::fail::{self, Step};
use super::wiring::ShardCommon;
use super::StartError;
use crate::distributor::{Distributor, Ingress, ShardLink};
use crate::driver::EventFd;
use crate::limits::SHARD_INBOX_BATCHES;
use crate::observer::Observer;
use crate::shard::ShardControl;
use crate::status::ServerState;

/// One spawned shard: how to tell it to stop, and its thread.
struct ShardThread {
    control: Sender<ShardControl>,
    waker: Arc<EventFd>,
    thread: JoinHandle<()>,
}

/// Every thread of one server; stops them when dropped.
pub(super) struct Threads {
    shards: Vec<ShardThread>,
    distributor: Option<JoinHandle<()>>,
    observer: Option<Observer>,
    /// Cluster mode's bridge thread (stopped after the distributor).
    bridge: Option<crate::cluster::Bridge>,
    ingress: Ingress,
    state: Arc<ServerState>,
    drain_timeout: Duration,
    ready_tx: Option<Sender<std::io::Result<()>>>,
    ready_rx: Receiver<std::io::Result<()>>,
}

impl Threads {
    /// No thread yet; `drain_timeout` bounds the shards' drain when they are stopped.
    pub(super) fn new(ingress: Ingress, state: Arc<ServerState>, drain_timeout: Duration) -> Self {
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
        Threads {
            shards: Vec::new(),
            distributor: None,
            observer: None,
            bridge: None,
            ingress,
            state,
            drain_timeout,
            ready_tx: Some(ready_tx),
            ready_rx,
        }
    }

    /// Spawns shard `id` on `listener`, pinned to `core` if given; returns the distributor's
    /// link to it.
    pub(super) fn spawn_shard(
        &mut self,
        id: usize,
        listener: TcpListener,
        backend: Backend,
        core: Option<core_affinity::CoreId>,
        common: &ShardCommon,
    ) -> Result<ShardLink, StartError> {
        let waker = Arc::new(EventFd::new().map_err(StartError::Shard)?);
        let (batch_tx, batch_rx) = crossbeam_channel::bounded(SHARD_INBOX_BATCHES);
        let (control, control_rx) = crossbeam_channel::unbounded();
        let parts = common.parts(id, batch_rx, control_rx);
        let ready = self.ready_tx.clone().expect("shards spawn before waiting");
        let shard_waker = waker.clone();
        let thread = std::thread::Builder::new()
            .name(format!("framecast-shard-{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                backend.run_shard(listener, shard_waker, parts, ready);
            })
            .map_err(StartError::Shard)?;
        self.shards.push(ShardThread {
            control,
            waker: waker.clone(),
            thread,
        });
        fail::point(Step::Shard(id), &self.state)?;
        Ok(ShardLink::new(batch_tx, waker))
    }

    /// Takes ownership of the cluster bridge, if any.
    pub(super) fn own_bridge(&mut self, bridge: Option<crate::cluster::Bridge>) {
        self.bridge = bridge;
    }

    /// Spawns the distributor's thread.
    pub(super) fn spawn_distributor(&mut self, distributor: Distributor) -> Result<(), StartError> {
        let thread = std::thread::Builder::new()
            .name("framecast-distributor".into())
            .spawn(move || distributor.run())
            .map_err(StartError::Shard)?;
        self.distributor = Some(thread);
        fail::point(Step::Distributor, &self.state)
    }

    /// Starts the observer (rates and the built-in channels).
    pub(super) fn start_observer(
        &mut self,
        status_interval: Duration,
        heartbeat_interval: Duration,
    ) -> Result<(), StartError> {
        let observer = Observer::start(
            self.state.clone(),
            self.ingress.clone(),
            status_interval,
            heartbeat_interval,
        )
        .map_err(StartError::Shard)?;
        self.observer = Some(observer);
        fail::point(Step::Observer, &self.state)
    }

    /// Waits until every shard has its driver (or one failed, or a shard thread died).
    pub(super) fn wait_ready(&mut self) -> Result<(), StartError> {
        self.ready_tx = None; // so a shard thread that dies without a word ends the wait
        for _ in 0..self.shards.len() {
            match self.ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(StartError::Shard(e)),
                Err(_) => {
                    return Err(StartError::Shard(std::io::Error::other(
                        "a shard thread exited",
                    )))
                }
            }
        }
        Ok(())
    }

    /// Graceful stop: shards stop accepting, close every connection with 1001 and exit within
    /// `drain_timeout`; then the observer and the distributor stop. Blocks until all are joined;
    /// does nothing the second time.
    pub(super) fn stop(&mut self) {
        if self.shards.is_empty()
            && self.distributor.is_none()
            && self.observer.is_none()
            && self.bridge.is_none()
        {
            return;
        }
        self.state.draining.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + self.drain_timeout;
        for shard in &self.shards {
            let _ = shard.control.send(ShardControl::Shutdown { deadline });
            shard.waker.wake();
        }
        for shard in self.shards.drain(..) {
            let _ = shard.thread.join();
        }
        if let Some(mut o) = self.observer.take() {
            o.stop();
        }
        self.ingress.stop();
        if let Some(d) = self.distributor.take() {
            let _ = d.join();
        }
        drop(self.bridge.take());
        tracing::info!("framecast stopped");
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop();
    }
}
