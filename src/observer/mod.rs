//! The observer thread: once a second it turns counters into rates for `/api/v1/status`, and it
//! publishes the built-in channels the seeds rely on — `system.status` (SigmaVault's host
//! figures) every `status_interval` and `heartbeat` every `heartbeat_interval` — through the
//! same ingress as any publisher. It never touches a connection.
// The observer owns its thread and its clock.
#![allow(clippy::disallowed_methods)]

pub(crate) mod sysinfo;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::wire::WallTime;

use serde_json::json;

use crate::distributor::Ingress;
use crate::status::ServerState;

/// Built-in channel names.
pub(crate) const STATUS_CHANNEL: &str = crate::wire::channel::STATUS_CHANNEL;
/// Built-in heartbeat channel.
pub(crate) const HEARTBEAT_CHANNEL: &str = crate::wire::channel::HEARTBEAT_CHANNEL;

/// A running observer; stops when dropped or [`stop`](Self::stop)ped.
pub(crate) struct Observer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Observer {
    /// Starts the thread; a zero interval disables that channel.
    pub(crate) fn start(
        state: Arc<ServerState>,
        ingress: Ingress,
        status_interval: Duration,
        heartbeat_interval: Duration,
    ) -> std::io::Result<Observer> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("framecast-observer".into())
            .spawn(move || run(&state, &ingress, status_interval, heartbeat_interval, &flag))?;
        Ok(Observer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn next_due(interval: Duration, now: Instant) -> Option<Instant> {
    (!interval.is_zero()).then(|| now + interval)
}

fn run(
    state: &ServerState,
    ingress: &Ingress,
    status_every: Duration,
    heartbeat_every: Duration,
    stop: &AtomicBool,
) {
    let start = Instant::now();
    let mut next_rates = start + Duration::from_secs(1);
    let mut next_status = next_due(status_every, start);
    let mut next_heartbeat = next_due(heartbeat_every, start);
    let mut last = (
        start,
        state.distributor.events_in.load(Ordering::Relaxed),
        state.totals(),
    );
    let mut cpu = sysinfo::cpu_times();
    let hostname = sysinfo::hostname();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_rates {
            next_rates = now + Duration::from_secs(1);
            let events = state.distributor.events_in.load(Ordering::Relaxed);
            let totals = state.totals();
            let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
            state.rates.set(
                (events - last.1) as f64 / secs,
                totals.frames_out.saturating_sub(last.2.frames_out) as f64 / secs,
                totals.bytes_out.saturating_sub(last.2.bytes_out) as f64 / secs,
            );
            last = (now, events, totals);
        }
        if let Some(due) = next_status.filter(|&d| now >= d) {
            next_status = Some(due + status_every).map(|n| n.max(now));
            let cpu_now = sysinfo::cpu_times();
            let (total, used) = sysinfo::memory();
            let data = json!({
                "hostname": hostname,
                "uptime": state.uptime_seconds(),
                "cpu_usage": sysinfo::cpu_usage(cpu, cpu_now),
                "memory_used": used,
                "memory_total": total,
                "memory_pct": if total > 0 { used as f64 * 100.0 / total as f64 } else { 0.0 },
                "load_average": sysinfo::load_average(),
                "connections": state.totals().connections,
                "events_per_sec": state.rates.events_in(),
                "timestamp": WallTime::of(SystemTime::now()).unix_secs(),
                "node": state.cluster.as_ref().map(|c| c.node.as_str()),
            });
            cpu = cpu_now;
            let _ = ingress.publish_json(
                STATUS_CHANNEL,
                STATUS_CHANNEL,
                data.to_string().into_bytes(),
            );
        }
        if let Some(due) = next_heartbeat.filter(|&d| now >= d) {
            next_heartbeat = Some(due + heartbeat_every).map(|n| n.max(now));
            let wall = WallTime::of(SystemTime::now());
            let data = json!({"server_time": wall.rfc3339(), "unix_ms": wall.unix_ms()});
            let _ = ingress.publish_json(
                HEARTBEAT_CHANNEL,
                HEARTBEAT_CHANNEL,
                data.to_string().into_bytes(),
            );
        }
        let wake = [Some(next_rates), next_status, next_heartbeat]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_rates);
        std::thread::park_timeout(wake.saturating_duration_since(Instant::now()));
    }
}
