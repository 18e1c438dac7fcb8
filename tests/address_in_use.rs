//! One server per address: every shard listens with SO_REUSEPORT, which alone would let a second
//! server share the port (the kernel splitting connections between the two). Starting where
//! someone already listens fails, naming the address, in the embedding API and in the binary;
//! a restart on the address of a server that stopped works (TIME_WAIT does not block it).
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::time::Duration;

use common::binary::{command, ServerProcess};
use common::*;
use framecast::{IoBackend, Server, StartError};

fn on(addr: std::net::SocketAddr) -> framecast::Config {
    framecast::Config {
        listen: addr,
        ..config(IoBackend::Epoll)
    }
}

#[test]
fn a_second_server_in_the_same_process_on_the_same_address_fails_naming_it() {
    let first = start(config(IoBackend::Epoll));
    let addr = first.local_addr();
    match Server::new(on(addr)).start() {
        Err(e @ StartError::AddrInUse { addr: named }) => {
            assert_eq!(named, addr);
            let text = e.to_string();
            assert!(
                text.contains(&addr.to_string()) && text.contains("in use"),
                "{text}"
            );
        }
        Err(other) => panic!("expected AddrInUse, got {other}"),
        Ok(_) => panic!("a second server started on {addr}"),
    }
}

#[test]
fn starting_where_another_program_listens_fails_with_address_in_use() {
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = other.local_addr().unwrap();
    assert!(matches!(
        Server::new(on(addr)).start(),
        Err(StartError::AddrInUse { addr: named }) if named == addr
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarts_on_the_address_of_one_that_stopped_despite_time_wait() {
    let first = start(config(IoBackend::Epoll));
    let addr = first.local_addr();
    // The server closes these connections first, so its side of each waits in TIME_WAIT.
    let (mut a, _) = connect(addr).await;
    let (mut b, _) = connect(addr).await;
    let stopping = tokio::task::spawn_blocking(move || first.shutdown());
    assert_eq!(close_code(&mut a).await, 1001);
    assert_eq!(close_code(&mut b).await, 1001);
    stopping.await.unwrap();
    drop((a, b));
    let second = Server::new(on(addr))
        .start()
        .expect("restart on the same address");
    let (_c, _) = connect(second.local_addr()).await;
}

#[test]
fn a_second_framecast_binary_on_the_same_address_exits_with_address_in_use() {
    let (_first, addr) = ServerProcess::start(&["--shards", "2"], None);
    let listen = addr.to_string();
    let mut second = ServerProcess::spawn(command(&["--listen", &listen, "--shards", "2"], None));
    let status = second
        .wait_exit(Duration::from_secs(20))
        .expect("the second server exits by itself");
    assert!(!status.success(), "exit status {status}");
    let log = second.lines.join("\n");
    assert!(
        log.contains(&listen) && log.contains("address in use"),
        "{log}"
    );
}
