use std::time::Duration;

use super::fail::{self, Step};
use super::*;
use crate::config::IoBackend;

/// Three shards on loopback, an ephemeral port, no pinning.
fn config(io: IoBackend) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        shards: 3,
        io,
        pin_cores: false,
        drain_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// The backends this host can run.
fn backends() -> Vec<IoBackend> {
    let mut list = vec![IoBackend::Epoll];
    if crate::driver::uring::probe().is_ok() {
        list.push(IoBackend::Uring);
    }
    list
}

#[test]
fn a_start_failing_after_some_threads_spawned_leaves_none_running() {
    // Every shard, the distributor and the observer hold the server state until their thread
    // body ends: once the failed start returns, nobody may hold it any more. Deterministic: the
    // guard joins the threads before `start` returns; without it they would still be running.
    for io in backends() {
        for step in [
            Step::Shard(0),
            Step::Shard(1),
            Step::Shard(2),
            Step::Distributor,
            Step::Observer,
        ] {
            fail::fail_at(step);
            let err = Server::new(config(io)).start().err().expect("start fails");
            assert!(
                err.to_string()
                    .contains(&format!("failure forced after {step:?}")),
                "{io:?} {step:?}: {err}"
            );
            assert_eq!(
                fail::failed_state().strong_count(),
                0,
                "{io:?}: a thread still runs after a start failed after {step:?}"
            );
        }
    }
}

#[test]
fn a_failed_start_releases_the_address() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let on = |addr| Config {
        listen: addr,
        ..config(IoBackend::Epoll)
    };
    fail::fail_at(Step::Shard(1));
    assert!(Server::new(on(addr)).start().is_err());
    let server = Server::new(on(addr))
        .start()
        .expect("the address is free again");
    server.shutdown();
}

#[test]
fn a_successful_start_serves_and_stops() {
    let server = Server::new(config(IoBackend::Epoll)).start().unwrap();
    assert_eq!(server.connections_per_shard(), vec![0, 0, 0]);
    assert_eq!(server.shard_stats().len(), 3);
    assert_eq!(server.backend(), "epoll");
    server.shutdown();
}
