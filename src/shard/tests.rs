//! The shard loop on a fake driver and a simulated clock, as quinn tests its endpoint: events go
//! in as values, sends and closes come out as records, and time moves only when a test moves it
//! (to exactly the deadline the shard asked to sleep until). Deterministic: no sockets, no
//! sleeps, no scheduler luck.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{unbounded, Sender};

use super::*;
use crate::auth::Policy;
use crate::conn::SendBatch;
use crate::distributor::ingress::IngressRx;
use crate::distributor::{DistributorStats, Ingress};
use crate::testing::{client_frame, UPGRADE};

/// What the shard did to the "sockets".
#[derive(Debug, Clone, PartialEq, Eq)]
enum Io {
    /// A vectored send began with these bytes.
    Send(ConnId, Vec<u8>),
    /// The write side was shut down.
    ShutdownWrite(ConnId),
    /// The connection was closed.
    Close(ConnId),
}

/// A driver that records what the shard asks of it; the test decides when sends complete.
#[derive(Default)]
struct FakeDriver {
    log: Vec<Io>,
    registered: Vec<ConnId>,
    /// Sends begun and not yet completed by the test.
    in_flight: VecDeque<(ConnId, usize)>,
    /// Events the driver itself owes the shard (`Closed` after `close`).
    owed: Vec<Event<Vec<u8>>>,
}

impl Driver for FakeDriver {
    type Input = Vec<u8>;

    fn name(&self) -> &'static str {
        "fake"
    }

    fn wait(&mut self, _: Option<Duration>, events: &mut Vec<Event<Vec<u8>>>) -> io::Result<()> {
        events.append(&mut self.owed);
        Ok(())
    }

    fn register(&mut self, conn: ConnId, _fd: OwnedFd) -> io::Result<()> {
        self.registered.push(conn);
        Ok(())
    }

    fn read_input<F: FnMut(&mut [u8])>(
        &mut self,
        _conn: ConnId,
        mut data: Vec<u8>,
        mut on_data: F,
    ) -> bool {
        on_data(&mut data);
        true
    }

    fn batch(&mut self) -> SendBatch {
        SendBatch::default()
    }

    fn send(&mut self, conn: ConnId, batch: SendBatch) {
        assert!(
            self.in_flight.iter().all(|(c, _)| *c != conn),
            "a second send for {conn:?} while one is in flight"
        );
        let bytes: Vec<u8> = batch.slices().flatten().copied().collect();
        self.in_flight.push_back((conn, bytes.len()));
        self.log.push(Io::Send(conn, bytes));
    }

    fn shutdown_write(&mut self, conn: ConnId) {
        self.log.push(Io::ShutdownWrite(conn));
    }

    fn close(&mut self, conn: ConnId) {
        self.log.push(Io::Close(conn));
        self.owed.push(Event::Closed(conn));
    }

    fn stop_accepting(&mut self) {}
    fn socket(&self, _: ConnId) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

/// A shard on a fake driver, with its own clock.
struct Sim {
    shard: Shard<FakeDriver>,
    now: Instant,
    wall: SystemTime,
    events: Vec<Event<Vec<u8>>>,
    control: Sender<ShardControl>,
    _batches: Sender<crate::distributor::ShardMsg>,
    _ingress: IngressRx,
}

impl Sim {
    fn new(policy: Policy) -> Sim {
        let (ingress, ingress_rx) = Ingress::new();
        let (batches_tx, batches) = unbounded();
        let (control, control_rx) = unbounded();
        let stats = Arc::new(ShardStats::default());
        let state = Arc::new(ServerState {
            started: Instant::now(),
            backend: "fake",
            tick_hz: 60,
            shards: vec![stats.clone()],
            distributor: Arc::new(DistributorStats::default()),
            channels: Default::default(),
            draining: Default::default(),
            api_key: None,
            cors_origins: Vec::new(),
            rates: Default::default(),
            cluster: None,
        });
        let parts = ShardParts {
            id: 0,
            settings: crate::testing::settings(1 << 20),
            tick_hz: 60,
            ingress,
            batches,
            control: control_rx,
            stats,
            connections: Arc::new(AtomicUsize::new(0)),
            max_connections: 10_000,
            state,
            default_channels: Vec::new(),
            welcome: None,
            policy: Arc::new(policy),
            auth_timeout: Duration::from_secs(5),
            tls: None,
        };
        let now = Instant::now();
        Sim {
            shard: Shard::starting_at(FakeDriver::default(), parts, now),
            now,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            events: Vec::new(),
            control,
            _batches: batches_tx,
            _ingress: ingress_rx,
        }
    }

    fn open_policy() -> Policy {
        Policy::from_config(&crate::Config::default()).expect("default policy")
    }

    /// One turn at the current time, with `events` plus whatever the driver owes.
    fn turn(&mut self, events: Vec<Event<Vec<u8>>>) -> Turn {
        self.shard
            .driver
            .wait(None, &mut self.events)
            .expect("fake wait");
        self.events.extend(events);
        self.shard.turn(self.now, self.wall, &mut self.events)
    }

    /// How long the shard asks to sleep now (`None`: until an event).
    fn timeout(&self) -> Option<Duration> {
        self.shard.st.timeout(self.now)
    }

    /// Sleeps as the shard asked (exactly to its deadline), then turns.
    fn sleep(&mut self) -> Duration {
        let nap = self.timeout().expect("a deadline to sleep until");
        self.now += nap;
        self.wall += nap;
        self.turn(Vec::new());
        nap
    }

    /// Accepts one connection; returns its id.
    fn accept(&mut self) -> ConnId {
        let fd = OwnedFd::from(File::open("/dev/null").expect("a descriptor"));
        self.turn(vec![Event::Accepted(fd)]);
        *self.shard.driver.registered.last().expect("registered")
    }

    fn input(&mut self, conn: ConnId, bytes: &[u8]) {
        self.turn(vec![Event::Input {
            conn,
            data: bytes.to_vec(),
        }]);
    }

    /// Completes the oldest send in flight in full.
    fn complete_send(&mut self) {
        let (conn, n) = self
            .shard
            .driver
            .in_flight
            .pop_front()
            .expect("a send in flight");
        self.turn(vec![Event::Sent {
            conn,
            result: Ok(n),
        }]);
    }

    /// Completes every send in flight (and the ones they lead to) in full.
    fn complete_all_sends(&mut self) {
        while !self.shard.driver.in_flight.is_empty() {
            self.complete_send();
        }
    }

    /// Takes what the shard did since the last call.
    fn io(&mut self) -> Vec<Io> {
        std::mem::take(&mut self.shard.driver.log)
    }

    fn live(&mut self, conn: ConnId) -> bool {
        self.shard.st.table.get_id_mut(conn).is_some()
    }
}

/// An upgraded native connection whose 101 and `connected` were written.
fn opened(sim: &mut Sim) -> ConnId {
    let conn = sim.accept();
    sim.input(conn, UPGRADE);
    sim.complete_all_sends();
    let sent = sim.io();
    assert!(
        matches!(&sent[0], Io::Send(c, b) if *c == conn && b.starts_with(b"HTTP/1.1 101")),
        "{sent:?}"
    );
    conn
}

fn sends_of(io: &[Io]) -> Vec<&[u8]> {
    (io.iter())
        .filter_map(|x| match x {
            Io::Send(_, bytes) => Some(bytes.as_slice()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_idle_shard_sleeps_until_an_event_not_on_an_interval() {
    let mut sim = Sim::new(Sim::open_policy());
    sim.turn(Vec::new());
    assert_eq!(sim.timeout(), None);
}

#[test]
fn a_silent_connection_is_closed_exactly_at_the_handshake_deadline() {
    let mut sim = Sim::new(Sim::open_policy());
    let conn = sim.accept();
    assert_eq!(sim.timeout(), Some(Duration::from_secs(10)));
    sim.now += Duration::from_secs(10) - Duration::from_millis(1);
    sim.turn(Vec::new());
    assert!(sim.io().is_empty(), "nothing happens a millisecond early");
    assert_eq!(sim.sleep(), Duration::from_millis(1));
    assert_eq!(sim.io(), vec![Io::Close(conn)]);
    sim.turn(Vec::new());
    assert!(
        !sim.live(conn),
        "the slot is free once the driver reported it closed"
    );
}

#[test]
fn an_open_connection_is_pinged_on_time_and_closed_when_no_pong_comes() {
    let mut sim = Sim::new(Sim::open_policy());
    let conn = opened(&mut sim);
    assert_eq!(sim.sleep(), Duration::from_secs(30), "sleeps to the ping");
    assert_eq!(sends_of(&sim.io()), vec![&[0x89, 0x00][..]], "a ping");
    sim.complete_all_sends();
    assert_eq!(
        sim.sleep(),
        Duration::from_secs(10),
        "then to the pong deadline"
    );
    let io = sim.io();
    let close = sends_of(&io)[0];
    assert_eq!(&close[..4], &[0x88, 14, 0x03, 0xF0], "close 1008");
    assert_eq!(&close[4..], b"pong timeout");
    sim.complete_all_sends();
    assert_eq!(
        sim.sleep(),
        Duration::from_secs(2),
        "then to the close deadline"
    );
    assert_eq!(sim.io(), vec![Io::Close(conn)]);
}

#[test]
fn a_pong_stops_the_pong_deadline_and_the_next_ping_comes_an_interval_later() {
    let mut sim = Sim::new(Sim::open_policy());
    let conn = opened(&mut sim);
    sim.sleep();
    sim.complete_all_sends();
    sim.io();
    sim.now += Duration::from_secs(1);
    sim.input(conn, &client_frame(0x8A, b""));
    assert_eq!(
        sim.timeout(),
        Some(Duration::from_secs(29)),
        "no pong deadline left"
    );
    sim.sleep();
    assert_eq!(sends_of(&sim.io()), vec![&[0x89, 0x00][..]]);
    assert!(sim.live(conn));
}

#[test]
fn a_connection_that_must_authenticate_is_closed_4001_at_the_auth_deadline() {
    let mut policy = Sim::open_policy();
    policy.anonymous = false;
    let mut sim = Sim::new(policy);
    let conn = opened(&mut sim);
    assert_eq!(
        sim.timeout(),
        Some(Duration::from_secs(5)),
        "auth_timeout, before the ping"
    );
    sim.sleep();
    let io = sim.io();
    let close = sends_of(&io)[0];
    assert_eq!(&close[2..4], &4001u16.to_be_bytes());
    assert_eq!(&close[4..], b"authentication timeout");
    assert!(sim.live(conn), "the close handshake runs first");
}

#[test]
fn one_send_at_a_time_and_the_close_frame_goes_after_what_was_queued() {
    let mut sim = Sim::new(Sim::open_policy());
    let conn = opened(&mut sim);
    // Two requests in one read: both replies are queued while no send is in flight...
    let mut two = client_frame(0x81, br#"{"type":"ping","id":1}"#);
    two.extend(client_frame(0x81, br#"{"type":"ping","id":2}"#));
    sim.input(conn, &two);
    let first = sim.io();
    assert_eq!(sends_of(&first).len(), 1, "one send carries both replies");
    // ...then the peer closes while that send is in flight: the shard answers the close only
    // after the send completes (the fake driver asserts one send at a time).
    sim.input(conn, &client_frame(0x88, &1000u16.to_be_bytes()));
    assert!(
        sim.io().is_empty(),
        "nothing sent while the first send is in flight"
    );
    sim.complete_send();
    let io = sim.io();
    assert_eq!(
        sends_of(&io),
        vec![&[0x88, 0x02, 0x03, 0xE8][..]],
        "the close reply"
    );
    sim.complete_send();
    assert_eq!(
        sim.io(),
        vec![Io::Close(conn)],
        "closed once the close reply is written"
    );
}

#[test]
fn shutdown_sends_going_away_and_the_loop_exits_once_every_connection_closed() {
    let mut sim = Sim::new(Sim::open_policy());
    let conn = opened(&mut sim);
    let deadline = sim.now + Duration::from_secs(5);
    sim.control
        .send(ShardControl::Shutdown { deadline })
        .unwrap();
    assert_eq!(sim.turn(Vec::new()), Turn::Continue);
    let io = sim.io();
    let sent = sends_of(&io);
    let close = sent[0];
    let at = close
        .windows(2)
        .position(|w| w == [0x88, 22])
        .expect("a close frame after the reconnect hint");
    assert_eq!(&close[at + 2..at + 4], &1001u16.to_be_bytes());
    sim.complete_send();
    sim.input(conn, &client_frame(0x88, &1001u16.to_be_bytes()));
    assert_eq!(sim.io(), vec![Io::Close(conn)]);
    assert_eq!(sim.turn(Vec::new()), Turn::Exit);
}

#[test]
fn a_turn_sends_to_at_most_sends_per_turn_connections_oldest_first_and_the_rest_next_turn() {
    use crate::limits::SENDS_PER_TURN;
    let mut sim = Sim::new(Sim::open_policy());
    let conns: Vec<ConnId> = (0..SENDS_PER_TURN + 10).map(|_| opened(&mut sim)).collect();
    // Every connection sends a ping in the same read batch (one turn), in this order.
    let ping = client_frame(0x81, br#"{"type":"ping"}"#);
    let events = (conns.iter())
        .map(|&conn| Event::Input {
            conn,
            data: ping.clone(),
        })
        .collect();
    sim.turn(events);
    let order = |io: Vec<Io>| -> Vec<ConnId> {
        (io.into_iter())
            .filter_map(|x| match x {
                Io::Send(c, _) => Some(c),
                _ => None,
            })
            .collect()
    };
    let first = order(sim.io());
    assert_eq!(
        first,
        conns[..SENDS_PER_TURN],
        "the oldest first, capped per turn"
    );
    assert_eq!(sim.timeout(), Some(Duration::ZERO), "sends left: no sleep");
    sim.turn(Vec::new());
    assert_eq!(
        order(sim.io()),
        conns[SENDS_PER_TURN..],
        "the rest on the next turn"
    );
}
