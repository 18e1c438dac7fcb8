//! The epoll driver against loopback sockets: it completes sends the way io_uring does (it holds
//! a batch the socket could not take until it is written, reports one `Sent` for it) and gives a
//! held batch back when the connection closes mid-send.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{EpollDriver, Readable};
use crate::driver::{ConnId, Driver, Event, EventFd};
use crate::testing::batch_of;

const DEADLINE: Duration = Duration::from_secs(10);

fn driver() -> (EpollDriver, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let waker = Arc::new(EventFd::new().unwrap());
    (EpollDriver::new(listener, waker).unwrap(), addr)
}

/// Turns the loop, collecting events, until `done` says so (or panics at the deadline).
fn turn_until(
    d: &mut EpollDriver,
    mut done: impl FnMut(&[Event<Readable>]) -> bool,
) -> Vec<Event<Readable>> {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "the event came in time");
        let mut events = Vec::new();
        d.wait(Some(Duration::from_millis(20)), &mut events)
            .unwrap();
        seen.extend(events);
        if done(&seen) {
            return seen;
        }
    }
}

fn connect(d: &mut EpollDriver, addr: std::net::SocketAddr, id: ConnId) -> TcpStream {
    let client = TcpStream::connect(addr).unwrap();
    let mut events = turn_until(d, |e| e.iter().any(|e| matches!(e, Event::Accepted(_))));
    let i = events
        .iter()
        .position(|e| matches!(e, Event::Accepted(_)))
        .unwrap();
    let Event::Accepted(fd) = events.swap_remove(i) else {
        unreachable!()
    };
    d.register(id, fd).unwrap();
    client
}

fn sent(events: &[Event<Readable>], id: ConnId) -> Vec<usize> {
    (events.iter())
        .filter_map(|e| match e {
            Event::Sent { conn, result } if *conn == id => {
                Some(*result.as_ref().expect("the send succeeded"))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_send_larger_than_the_socket_takes_is_held_until_written_and_reported_once() {
    let (mut d, addr) = driver();
    let id = ConnId::new(0, 1);
    let mut client = connect(&mut d, addr, id);
    let frame = Bytes::from(vec![b'x'; 64 << 20]);
    d.send(id, batch_of(&frame));
    let events = turn_until(&mut d, |_| true);
    assert!(
        sent(&events, id).is_empty(),
        "64 MiB do not fit in loopback buffers at once"
    );
    assert!(!frame.is_unique(), "the driver holds the batch");

    // The client reads everything; the driver writes the rest on writable edges.
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        while total < 64 << 20 {
            total += client.read(&mut buf).unwrap();
        }
        total
    });
    let events = turn_until(&mut d, |e| !sent(e, id).is_empty());
    assert_eq!(
        sent(&events, id),
        vec![64 << 20],
        "one Sent, for the whole batch"
    );
    assert_eq!(reader.join().unwrap(), 64 << 20);
    assert!(
        frame.is_unique(),
        "the batch went back to the pool, cleared"
    );
}

#[test]
fn closing_mid_send_reports_the_send_failed_then_closed_and_releases_the_batch() {
    let (mut d, addr) = driver();
    let id = ConnId::new(2, 5);
    let _client = connect(&mut d, addr, id);
    let frame = Bytes::from(vec![b'y'; 64 << 20]);
    d.send(id, batch_of(&frame));
    turn_until(&mut d, |_| true);
    d.close(id);
    let events = turn_until(&mut d, |e| e.iter().any(|e| matches!(e, Event::Closed(_))));
    let order: Vec<&str> = (events.iter())
        .filter_map(|e| match e {
            Event::Sent { conn, result } if *conn == id && result.is_err() => Some("sent-err"),
            Event::Closed(conn) if *conn == id => Some("closed"),
            _ => None,
        })
        .collect();
    assert_eq!(order, vec!["sent-err", "closed"]);
    assert!(
        frame.is_unique(),
        "nothing of the send is held after the close"
    );
}

#[test]
fn events_for_an_earlier_connection_in_the_slot_name_it_not_the_new_one() {
    let (mut d, addr) = driver();
    let old = ConnId::new(0, 1);
    let _first = connect(&mut d, addr, old);
    d.close(old);
    let new = old.next();
    let _second = connect(&mut d, addr, new);
    // A send for the gone connection fails as such; the new connection is not touched.
    d.send(old, batch_of(&Bytes::from_static(b"late")));
    let events = turn_until(&mut d, |e| {
        e.iter().any(|e| matches!(e, Event::Sent { .. }))
    });
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Sent { conn, result: Err(_) } if *conn == old)));
    assert!(sent(&events, new).is_empty());
}

#[test]
fn a_registered_connection_costs_its_socket_a_generation_and_a_pointer() {
    // 16 bytes in release builds; mio's socket carries a selector id in debug builds.
    let socket = std::mem::size_of::<mio::net::TcpStream>();
    assert!(std::mem::size_of::<Option<super::EpollConn>>() <= socket + 16);
}
