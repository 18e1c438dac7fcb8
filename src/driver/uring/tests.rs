//! The driver against a real ring and loopback sockets: ownership at drop, stale completions and
//! a full submission queue.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use io_uring::opcode;

use super::user_data::Op;
use super::ProvidedBuf;
use super::{UringDriver, SQ_ENTRIES};
use crate::driver::{ConnId, Driver, Event, EventFd};
use crate::testing::batch_of;

const DEADLINE: Duration = Duration::from_secs(10);

fn driver() -> (UringDriver, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let waker = Arc::new(EventFd::new().unwrap());
    (UringDriver::new(listener, waker).unwrap(), addr)
}

/// Turns the loop until `pick` takes an event (other events are dropped; received bytes are
/// consumed after `pick` saw their event), or panics.
fn wait_for<T>(d: &mut UringDriver, mut pick: impl FnMut(&Event<ProvidedBuf>) -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    let mut events = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "event in time");
        d.wait(Some(Duration::from_millis(50)), &mut events)
            .unwrap();
        for event in events.drain(..) {
            let found = pick(&event);
            if let Event::Input { conn, data } = event {
                d.read_input(conn, data, |_| {});
            }
            if let Some(found) = found {
                return found;
            }
        }
    }
}

/// Connects a client and registers the server side as connection `id`.
fn connect(d: &mut UringDriver, addr: std::net::SocketAddr, id: ConnId) -> TcpStream {
    let client = TcpStream::connect(addr).unwrap();
    let mut events = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let fd = loop {
        assert!(Instant::now() < deadline, "accepted in time");
        d.wait(Some(Duration::from_millis(50)), &mut events)
            .unwrap();
        if let Some(i) = events.iter().position(|e| matches!(e, Event::Accepted(_))) {
            let Event::Accepted(fd) = events.swap_remove(i) else {
                unreachable!()
            };
            break fd;
        }
    };
    d.register(id, fd).unwrap();
    client
}

/// The first connection in `slot`.
fn id(slot: u32) -> ConnId {
    ConnId::new(slot, 1)
}

/// Sends `frame` to a client that never reads, again after each short write, until one send
/// stays in the kernel (the socket buffers are full).
fn send_until_one_stays(d: &mut UringDriver, conn: ConnId, frame: &Bytes) {
    let mut sent = 0;
    // Ends only when a send stays in flight (the assert inside fails the test otherwise).
    loop {
        assert!(
            sent < frame.len(),
            "a client that never reads took all of it"
        );
        let mut batch = batch_of(frame);
        batch.offset = sent;
        batch.len -= sent;
        let before = d.in_flight();
        d.send(conn, batch);
        assert_eq!(d.in_flight(), before + 1, "the send is in the kernel");
        let mut events = Vec::new();
        d.wait(Some(Duration::from_millis(200)), &mut events)
            .unwrap();
        match events.iter().find_map(|e| match e {
            Event::Sent { result, .. } => Some(result.as_ref().map(|n| *n).unwrap()),
            _ => None,
        }) {
            Some(n) => sent += n,
            None => return,
        }
    }
}

#[test]
fn dropping_the_driver_with_sends_and_receives_in_flight_reaps_every_completion() {
    let (mut d, addr) = driver();
    let _client = connect(&mut d, addr, id(0));
    // 64 MiB to a client that never reads: once the socket buffers are full the send stays
    // in the kernel.
    let frame = Bytes::from(vec![7u8; 64 << 20]);
    send_until_one_stays(&mut d, id(0), &frame);
    // Accept, wake-up read, the connection's receive and its send are all in the kernel.
    assert_eq!(d.in_flight(), 4);
    assert!(
        !frame.is_unique(),
        "the driver holds the frame of the send in flight"
    );

    assert_eq!(d.cancel_and_reap(DEADLINE), 0, "every operation completed");
    drop(d);
    assert!(
        frame.is_unique(),
        "the send's frame was released, not leaked"
    );
}

#[test]
fn dropping_a_driver_that_never_waited_still_reaps_what_it_queued() {
    let (mut d, addr) = driver();
    let _client = connect(&mut d, addr, id(3));
    let frame = Bytes::from_static(b"queued, never submitted by a wait");
    d.send(id(3), batch_of(&frame));
    assert!(d.in_flight() >= 2, "receive and send queued");
    assert_eq!(d.cancel_and_reap(DEADLINE), 0);
}

#[test]
fn a_completion_for_a_reused_slot_is_dropped_and_counted() {
    let (mut d, addr) = driver();
    let first = connect(&mut d, addr, id(0));
    let old = id(0);
    d.close(old);
    drop(first);
    wait_for(&mut d, |e| {
        matches!(e, Event::Closed(c) if *c == old).then_some(())
    });
    let new = old.next();
    let mut second = connect(&mut d, addr, new);
    assert_eq!(d.conns[0].id, new, "the slot serves the new connection");

    // Completions of the first connection's send and receive, as if they had come late (counted
    // as in flight, as they would have been).
    d.in_flight += 2;
    d.on_completion(Op::Send(old).encode(), 100, 0);
    d.on_completion(Op::Recv(old).encode(), 0, 0);
    assert!(
        d.pending.is_empty(),
        "nothing reported for the old connection"
    );
    assert_eq!(d.stale_completions(), 2);

    // The new connection is untouched: it still receives.
    second.write_all(b"hello").unwrap();
    let got = wait_for(&mut d, |e| match e {
        Event::Input { conn, data } if *conn == new => Some(data.len),
        Event::PeerClosed(_) => panic!("the stale completion closed the new connection"),
        _ => None,
    });
    assert_eq!(got, 5);
}

#[test]
fn more_operations_than_the_submission_queue_holds_all_complete() {
    let (mut d, _addr) = driver();
    let mut events = Vec::new();
    d.wait(Some(Duration::ZERO), &mut events).unwrap();
    let baseline = d.in_flight();
    // Three times the queue (and more than the completion queue) in one go: `push` must submit
    // when full and reap when the kernel is busy, never spin or drop one.
    let count = 3 * SQ_ENTRIES as usize + 20_000;
    for _ in 0..count {
        let nop = opcode::Nop::new().build().user_data(Op::Cancel.encode());
        // SAFETY: a no-op points at no memory.
        unsafe { d.push(&nop) }.unwrap();
    }
    let deadline = Instant::now() + DEADLINE;
    while d.in_flight() > baseline {
        assert!(Instant::now() < deadline, "every no-op completed");
        d.wait(Some(Duration::from_millis(10)), &mut events)
            .unwrap();
        events.clear();
    }
    assert_eq!(d.in_flight(), baseline);
}

#[test]
fn a_closed_connection_reports_closed_once_nothing_is_in_flight() {
    let (mut d, addr) = driver();
    let mut client = connect(&mut d, addr, id(1));
    d.close(id(1));
    wait_for(&mut d, |e| {
        matches!(e, Event::Closed(c) if *c == id(1)).then_some(())
    });
    assert_eq!(
        d.in_flight(),
        2,
        "only accept and the wake-up read are left"
    );
    let mut buf = [0u8; 1];
    assert_eq!(
        client.read(&mut buf).unwrap_or(0),
        0,
        "the client sees the close"
    );
}

#[test]
fn closing_mid_send_reports_the_send_then_closed_and_releases_the_batch() {
    let (mut d, addr) = driver();
    let _client = connect(&mut d, addr, id(2));
    let frame = Bytes::from(vec![9u8; 64 << 20]);
    send_until_one_stays(&mut d, id(2), &frame);
    d.close(id(2));
    let mut order = Vec::new();
    wait_for(&mut d, |e| {
        match e {
            Event::Sent { conn, .. } if *conn == id(2) => order.push("sent"),
            Event::Closed(conn) if *conn == id(2) => order.push("closed"),
            _ => {}
        }
        order.contains(&"closed").then_some(())
    });
    assert_eq!(
        order,
        vec!["sent", "closed"],
        "one Sent for the send in flight, then Closed"
    );
    assert!(
        frame.is_unique(),
        "nothing of the send is held after the close"
    );
}
