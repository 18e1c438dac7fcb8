//! Subscriber connections for the load generator: one mio loop per worker thread drives many
//! non-blocking connections through connect → upgrade → subscribe (if the server needs a
//! message for that) → read, counting every `T=<digits>` marker in every data frame and
//! recording publish-to-receive latency from it. Nothing else about the server's messages is
//! assumed: a framecast `event` envelope and a raw peer's rebroadcast bytes are read alike.
//! With `--deflate` the upgrade offers permessage-deflate, and a connection whose server agreed
//! reads compressed messages decompressed ([`crate::receive`]). Over `wss://` every connection
//! is a TLS session on its socket ([`Transport`]): the upgrade request waits in it until the
//! handshake is done, and what is read is decrypted into the same buffer frames are parsed from.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::deflate;
use super::frames::{for_each_marker, parse_server_frame, put_client_frame, Opcode};
use super::inflate::Shared;
use super::now_ns;
use super::receive::Receiver;
use super::template::Template;
use super::transport::{TlsClient, Transport, CIPHER_CHUNK};

/// Counters one worker shares with the coordinator.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Connections subscribed and reading.
    pub ready: AtomicU64,
    /// Messages received (any time): `T=` markers in data frames.
    pub delivered: AtomicU64,
    /// Data frames without a marker (welcome and acknowledgement messages, ...).
    pub other_frames: AtomicU64,
    /// Connections that failed to connect or upgrade.
    pub errors: AtomicU64,
    /// Connections lost after they were ready (protocol errors included).
    pub disconnects: AtomicU64,
    /// Connections on which the server agreed to permessage-deflate.
    pub deflate_negotiated: AtomicU64,
    /// WebSocket bytes of the frames received (headers and payloads as read, control frames
    /// included).
    pub wire_bytes: AtomicU64,
    /// Data payload bytes received, compressed messages counted decompressed.
    pub payload_bytes: AtomicU64,
    /// Compressed messages received (and inflated).
    pub compressed_msgs: AtomicU64,
    /// Compressed messages whose text the inflate cache already had.
    pub inflate_cache_hits: AtomicU64,
}

/// What a worker needs to know.
pub struct WorkerPlan {
    /// Server address.
    pub addr: SocketAddr,
    /// Host header and path of the WebSocket endpoint.
    pub host: String,
    /// Path of the WebSocket endpoint.
    pub path: String,
    /// `wss://`: the TLS configuration and server name.
    pub tls: Option<TlsClient>,
    /// (connection index, channel) for each connection this worker opens.
    pub conns: Vec<(usize, String)>,
    /// How many connections may be connecting at once.
    pub concurrency: usize,
    /// Connection i binds to 127.0.0.(2 + i mod K) first when K > 0 (see [`source_ip`]).
    pub source_ips: u32,
    /// The message each subscriber sends once upgraded (`{CHANNEL}` = its channel), if any.
    pub subscribe: Option<Template>,
    /// Offer permessage-deflate in the upgrade.
    pub deflate: bool,
    /// The first `Sec-WebSocket-Extensions` answer any subscriber got (values comma-joined).
    pub extensions_answer: Arc<OnceLock<String>>,
    /// Record latencies only while set.
    pub measuring: Arc<AtomicBool>,
    /// Stop when set.
    pub stop: Arc<AtomicBool>,
    /// Shared counters.
    pub counters: Arc<WorkerCounters>,
}

#[derive(PartialEq, Eq)]
enum State {
    Connecting,
    Upgrading,
    Open,
    Dead,
}

struct Sub {
    stream: Transport,
    state: State,
    carry: Vec<u8>,
    channel: String,
    receiver: Receiver,
}

const SCRATCH: usize = 256 * 1024;

/// Runs one worker until `stop`; returns its latency histogram (microseconds).
pub fn run_worker(mut plan: WorkerPlan) -> io::Result<Histogram<u64>> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4096);
    let mut subs: Vec<Sub> = Vec::with_capacity(plan.conns.len());
    let mut next = 0;
    let mut in_progress = 0;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut scratch = vec![0u8; SCRATCH];
    let mut cipher = vec![0u8; if plan.tls.is_some() { CIPHER_CHUNK } else { 0 }];
    let mut shared = Shared::new();
    let mut warned = false;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: bG9hZGdlbmVyYXRvcjEyMw==\r\n{}\r\n",
        plan.path,
        plan.host,
        deflate::offer_line(plan.deflate)
    );
    let mut out = Vec::new();
    while !plan.stop.load(Ordering::Relaxed) {
        while in_progress < plan.concurrency && next < plan.conns.len() {
            let (index, channel) = &plan.conns[next];
            next += 1;
            match connect(plan.addr, source_ip(*index, plan.source_ips))
                .and_then(|s| Transport::new(s, plan.tls.as_ref()))
            {
                Ok(mut stream) => {
                    let token = Token(subs.len());
                    // (edge-triggered: a writable event each time the socket takes bytes again,
                    // which is what resumes a TLS flush that would have blocked)
                    poll.registry().register(
                        stream.socket(),
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    subs.push(Sub {
                        stream,
                        state: State::Connecting,
                        carry: Vec::new(),
                        channel: channel.clone(),
                        receiver: Receiver::new(None),
                    });
                    in_progress += 1;
                }
                Err(_) => {
                    plan.counters.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        let measuring = plan.measuring.load(Ordering::Relaxed);
        for ev in events.iter() {
            let sub = &mut subs[ev.token().0];
            if sub.state == State::Connecting && (ev.is_writable() || ev.is_error()) {
                if sub.stream.socket().peer_addr().is_err() {
                    sub.state = State::Dead;
                    in_progress -= 1;
                    plan.counters.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let _ = sub.stream.socket().set_nodelay(true);
                // (TLS: the ClientHello goes out, the request waits for the handshake)
                if sub.stream.write_all(request.as_bytes()).is_err() {
                    sub.state = State::Dead;
                    in_progress -= 1;
                    plan.counters.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                sub.state = State::Upgrading;
            } else if sub.state != State::Dead && sub.stream.flush().is_err() {
                // TLS bytes left over from a write that would have blocked (nothing for ws://)
                fail(sub, &mut in_progress, &plan.counters);
                continue;
            }
            if !(ev.is_readable() || ev.is_read_closed()) || sub.state == State::Dead {
                continue;
            }
            loop {
                let n = match sub.stream.read(&mut scratch, &mut cipher) {
                    Ok(0) => {
                        fail(sub, &mut in_progress, &plan.counters);
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        // TLS: a certificate refused, a bad record
                        warn_once(&mut warned, "TLS", &e);
                        fail(sub, &mut in_progress, &plan.counters);
                        break;
                    }
                    Err(_) => {
                        fail(sub, &mut in_progress, &plan.counters);
                        break;
                    }
                };
                if sub.state == State::Upgrading || !sub.carry.is_empty() {
                    sub.carry.extend_from_slice(&scratch[..n]);
                    if sub.state == State::Upgrading
                        && !sub.carry.windows(4).any(|w| w == b"\r\n\r\n")
                    {
                        continue;
                    }
                }
                let carried = std::mem::take(&mut sub.carry);
                let data: &[u8] = if carried.is_empty() {
                    &scratch[..n]
                } else {
                    &carried
                };
                let mut used = 0;
                if sub.state == State::Upgrading {
                    let end = data
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .expect("checked above");
                    if !data.starts_with(b"HTTP/1.1 101") {
                        sub.state = State::Dead;
                        in_progress -= 1;
                        plan.counters.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    used = end + 4;
                    let head = String::from_utf8_lossy(&data[..end]);
                    let values = deflate::extension_values(&head);
                    if !values.is_empty() {
                        let _ = plan.extensions_answer.set(values.join(", "));
                    }
                    match deflate::parse_answer(&values, plan.deflate) {
                        Ok(agreed) => {
                            if agreed.is_some() {
                                plan.counters
                                    .deflate_negotiated
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            sub.receiver = Receiver::new(agreed.as_ref());
                        }
                        Err(e) => {
                            warn_once(&mut warned, "upgrade answer", &e);
                            fail(sub, &mut in_progress, &plan.counters);
                            break;
                        }
                    }
                    if let Some(t) = plan.subscribe.as_mut() {
                        let msg = t.render_string(0, 0, &sub.channel);
                        out.clear();
                        put_client_frame(&mut out, Opcode::Text, msg.as_bytes(), [1, 2, 3, 4]);
                        let _ = sub.stream.write_all(&out);
                    }
                    sub.state = State::Open;
                    in_progress -= 1;
                    plan.counters.ready.fetch_add(1, Ordering::Relaxed);
                }
                let now = if measuring { now_ns() } else { 0 };
                let mut got = Got::default();
                let mut pongs: Vec<Vec<u8>> = Vec::new();
                let mut broken = None;
                while let Some((frame, len)) = parse_server_frame(&data[used..]) {
                    used += len;
                    got.wire += len as u64;
                    match sub.receiver.frame(&frame, &mut shared) {
                        // text, binary and their continuations; compressed messages inflated
                        Ok(Some(d)) => {
                            let n = for_each_marker(d.payload, |t| {
                                if measuring {
                                    let _ = hist.record((now.saturating_sub(t) / 1000).max(1));
                                }
                            });
                            got.delivered += n;
                            got.other += u64::from(n == 0);
                            got.payload += d.payload.len() as u64;
                            got.compressed += u64::from(d.compressed);
                            got.cached += u64::from(d.cached);
                        }
                        Ok(None) if frame.opcode == Opcode::Ping as u8 => {
                            pongs.push(frame.payload.to_vec());
                        }
                        Ok(None) => {}
                        Err(e) => {
                            broken = Some(e);
                            break;
                        }
                    }
                }
                got.add_to(&plan.counters);
                if let Some(e) = broken {
                    warn_once(&mut warned, "protocol error", &e);
                    fail(sub, &mut in_progress, &plan.counters);
                    break;
                }
                sub.carry.extend_from_slice(&data[used..]);
                for p in pongs {
                    out.clear();
                    put_client_frame(&mut out, Opcode::Pong, &p, [5, 6, 7, 8]);
                    let _ = sub.stream.write_all(&out);
                }
                if n < SCRATCH && !sub.stream.more() {
                    break;
                }
            }
        }
    }
    Ok(hist)
}

/// The loopback source address of connection `index` with `k` source addresses: more than the
/// ~28k connections one address has ports for, and cheaper port searches long before that.
pub fn source_ip(index: usize, k: u32) -> Option<Ipv4Addr> {
    (k > 0).then(|| {
        let n = 2 + (index as u32 % k);
        Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8)
    })
}

/// A non-blocking connect, from `src` if given.
fn connect(addr: SocketAddr, src: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let Some(ip) = src else {
        return TcpStream::connect(addr);
    };
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.bind(&SocketAddr::new(ip.into(), 0).into())?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        // EINPROGRESS: completion is reported as writable, like mio's own connect
        Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
}

/// What one read brought, added to the shared counters once per read.
#[derive(Default)]
struct Got {
    delivered: u64,
    other: u64,
    wire: u64,
    payload: u64,
    compressed: u64,
    cached: u64,
}

impl Got {
    fn add_to(&self, c: &WorkerCounters) {
        c.delivered.fetch_add(self.delivered, Ordering::Relaxed);
        c.wire_bytes.fetch_add(self.wire, Ordering::Relaxed);
        c.payload_bytes.fetch_add(self.payload, Ordering::Relaxed);
        for (n, counter) in [
            (self.other, &c.other_frames),
            (self.compressed, &c.compressed_msgs),
            (self.cached, &c.inflate_cache_hits),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// Logs the first connection failure of a worker (the others are only counted).
fn warn_once(warned: &mut bool, what: &str, e: &dyn std::fmt::Display) {
    if !std::mem::replace(warned, true) {
        tracing::warn!(error = %e, "subscriber connection ended: {what} (further ones counted only)");
    }
}

/// Ends a connection: counted as an error before it was ready, as a disconnect after.
fn fail(sub: &mut Sub, in_progress: &mut usize, counters: &WorkerCounters) {
    match sub.state {
        State::Open => {
            counters.disconnects.fetch_add(1, Ordering::Relaxed);
        }
        State::Connecting | State::Upgrading => {
            *in_progress -= 1;
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        State::Dead => {}
    }
    sub.state = State::Dead;
    let _ = sub.stream.socket().shutdown(std::net::Shutdown::Both);
}

/// Waits until `ready` connections are subscribed or `timeout` passes.
pub fn wait_ready(counters: &[Arc<WorkerCounters>], want: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let ready: u64 = counters
            .iter()
            .map(|c| c.ready.load(Ordering::Relaxed))
            .sum();
        let failed: u64 = counters
            .iter()
            .map(|c| c.errors.load(Ordering::Relaxed))
            .sum();
        if ready + failed >= want || Instant::now() >= deadline {
            return ready;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_cycle_from_127_0_0_2() {
        assert_eq!(source_ip(0, 0), None);
        let ips: Vec<_> = (0..5)
            .map(|i| source_ip(i, 4).unwrap().to_string())
            .collect();
        assert_eq!(
            ips,
            [
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.4",
                "127.0.0.5",
                "127.0.0.2"
            ]
        );
        assert_eq!(source_ip(300, 1000).unwrap(), Ipv4Addr::new(127, 0, 1, 46));
    }

    #[test]
    fn a_bound_connect_completes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut poll = Poll::new().unwrap();
        let mut s = connect(addr, Some(Ipv4Addr::new(127, 0, 0, 3))).unwrap();
        poll.registry()
            .register(&mut s, Token(0), Interest::WRITABLE)
            .unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.3");
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(events.iter().any(|e| e.is_writable()));
        assert!(s.peer_addr().is_ok());
    }
}
