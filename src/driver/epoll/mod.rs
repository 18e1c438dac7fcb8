//! The epoll backend (through mio, edge-triggered): for hosts where io_uring is blocked (container
//! seccomp profiles) or too old. When a socket is ready it performs the read or write itself and
//! reports the same events as the io_uring backend: a send the socket cannot take at once stays
//! with the driver (it owns the batch, as io_uring does) and is continued on the next writable
//! edge; [`Event::Sent`] reports it once it is written or failed.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream as StdStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::accept::AcceptGate;
use super::{ConnId, Driver, Event, EventFd, SendBatch, Slot};
use crate::conn_id::Gen;
use crate::limits::{EPOLL_READ_SCRATCH_BYTES, MAX_IOVECS_PER_SEND};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// epoll reports readiness, not bytes: the input handle says "this socket is readable", and
/// [`Driver::read_input`] reads it until it would block.
#[derive(Debug)]
pub(crate) struct Readable;

/// One registered connection: 16 bytes, since there is one per connection and idle memory per
/// connection is a figure users compare (the slot is its index; a send the socket could not take
/// at once is boxed, which happens only when the socket is full).
struct EpollConn {
    gen: Gen,
    stream: TcpStream,
    /// The send the socket could not take at once.
    held: Option<Box<HeldSend>>,
}

/// A send waiting for its socket to drain: the batch, and how much of it is written.
struct HeldSend {
    batch: SendBatch,
    written: usize,
}

/// How far [`write_batch`] got.
enum Progress {
    /// All of the batch is written.
    Written,
    /// The socket is full; more on its next writable edge.
    Blocked,
    /// The socket failed.
    Failed(io::Error),
}

/// A shard's epoll loop.
pub(crate) struct EpollDriver {
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    accept_gate: AcceptGate,
    /// The listener may have connections waiting that no readiness edge will announce.
    accept_retry: bool,
    waker: Arc<EventFd>,
    conns: Vec<Option<EpollConn>>,
    scratch: Box<[u8]>,
    pending: Vec<Event<Readable>>,
    pool: Vec<SendBatch>,
}

impl EpollDriver {
    /// Builds the loop around the shard's (non-blocking) listener and wake-up eventfd.
    pub(crate) fn new(
        listener: std::net::TcpListener,
        waker: Arc<EventFd>,
    ) -> io::Result<EpollDriver> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        poll.registry()
            .register(&mut SourceFd(&waker.as_raw_fd()), WAKER, Interest::READABLE)?;
        Ok(EpollDriver {
            poll,
            events: Events::with_capacity(1024),
            listener: Some(listener),
            accept_gate: AcceptGate::default(),
            accept_retry: false,
            waker,
            conns: Vec::new(),
            scratch: vec![0u8; EPOLL_READ_SCRATCH_BYTES].into_boxed_slice(),
            pending: Vec::new(),
            pool: Vec::new(),
        })
    }

    fn accept_all(&mut self, out: &mut Vec<Event<Readable>>) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    self.accept_gate.on_success();
                    out.push(Event::Accepted(OwnedFd::from(stream)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors or memory: paused. Anything else (an aborted
                    // handshake): next loop turn. Either way retried without waiting for an
                    // edge, once per turn at most.
                    self.accept_gate.on_error(&e, "epoll", Instant::now());
                    self.accept_retry = true;
                    return;
                }
            }
        }
    }
}

impl EpollConn {
    /// Writes `batch` from byte `written` on: the [`Event::Sent`] once it is all written or
    /// failed, or `None` with the rest held for the next writable edge.
    fn write(
        &mut self,
        id: ConnId,
        mut batch: SendBatch,
        mut written: usize,
        pool: &mut Vec<SendBatch>,
    ) -> Option<Event<Readable>> {
        let result = match write_batch(&mut self.stream, &batch, &mut written) {
            Progress::Blocked => {
                self.held = Some(Box::new(HeldSend { batch, written }));
                return None;
            }
            Progress::Written => Ok(written),
            Progress::Failed(e) => Err(e),
        };
        batch.clear();
        pool.push(batch);
        Some(Event::Sent { conn: id, result })
    }

    /// Writes on after a writable edge.
    fn continue_send(&mut self, id: ConnId, pool: &mut Vec<SendBatch>) -> Option<Event<Readable>> {
        let held = self.held.take()?;
        let HeldSend { batch, written } = *held;
        self.write(id, batch, written, pool)
    }

    /// The connection's current slot entry (`None` when `id` is gone).
    fn of(conns: &mut [Option<EpollConn>], id: ConnId) -> Option<&mut EpollConn> {
        conns
            .get_mut(id.slot as usize)?
            .as_mut()
            .filter(|c| c.gen == id.gen)
    }
}

/// Writes `batch` from byte `written` on, until it is all written, the socket is full or fails;
/// `written` counts what went.
fn write_batch(stream: &mut TcpStream, batch: &SendBatch, written: &mut usize) -> Progress {
    let mut iov = [IoSlice::new(&[]); MAX_IOVECS_PER_SEND];
    let mut count = 0;
    for (dst, src) in iov.iter_mut().zip(batch.slices()) {
        *dst = IoSlice::new(src);
        count += 1;
    }
    let mut slices = &mut iov[..count];
    IoSlice::advance_slices(&mut slices, *written);
    loop {
        if *written == batch.len {
            return Progress::Written;
        }
        match stream.write_vectored(slices) {
            Ok(0) => return Progress::Failed(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *written += n;
                IoSlice::advance_slices(&mut slices, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Progress::Failed(e),
        }
    }
}

impl Driver for EpollDriver {
    type Input = Readable;

    fn name(&self) -> &'static str {
        "epoll"
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<Event<Readable>>,
    ) -> io::Result<()> {
        let mut timeout = if self.pending.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        let now = Instant::now();
        let resume = if self.accept_retry && self.accept_gate.is_open(now) {
            // An accept failed last turn for another reason than a resource (an aborted
            // handshake), or a pause just ran out: retry now, not at the caller's timeout.
            Some(Duration::ZERO)
        } else {
            self.accept_gate.wait_hint(now)
        };
        if let Some(resume) = resume {
            timeout = Some(timeout.map_or(resume, |t| t.min(resume)));
        }
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        out.append(&mut self.pending);
        let mut accept = false;
        for ev in self.events.iter() {
            match ev.token() {
                LISTENER => accept = true,
                WAKER => {
                    self.waker.drain();
                    out.push(Event::Wake);
                }
                Token(token) => {
                    let slot = token as Slot;
                    let Some(Some(conn)) = self.conns.get_mut(slot as usize) else {
                        continue;
                    };
                    let id = ConnId::new(slot, conn.gen);
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        out.push(Event::Input {
                            conn: id,
                            data: Readable,
                        });
                    }
                    if ev.is_writable() {
                        if let Some(event) = conn.continue_send(id, &mut self.pool) {
                            out.push(event);
                        }
                    }
                }
            }
        }
        self.accept_retry |= accept;
        if self.accept_retry && self.accept_gate.is_open(Instant::now()) {
            self.accept_retry = false;
            self.accept_all(out);
        }
        Ok(())
    }

    fn register(&mut self, id: ConnId, fd: OwnedFd) -> io::Result<()> {
        let mut stream = TcpStream::from_std(StdStream::from(fd));
        self.poll.registry().register(
            &mut stream,
            Token(id.slot as usize),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let i = id.slot as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(EpollConn {
            gen: id.gen,
            stream,
            held: None,
        });
        Ok(())
    }

    fn read_input<F: FnMut(&mut [u8])>(
        &mut self,
        id: ConnId,
        _data: Readable,
        mut on_data: F,
    ) -> bool {
        let Some(conn) = EpollConn::of(&mut self.conns, id) else {
            return false;
        };
        loop {
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => return false,
                Ok(n) => {
                    on_data(&mut self.scratch[..n]);
                    if n < self.scratch.len() {
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    fn batch(&mut self) -> SendBatch {
        self.pool.pop().unwrap_or_default()
    }

    fn send(&mut self, id: ConnId, mut batch: SendBatch) {
        let Some(conn) = EpollConn::of(&mut self.conns, id) else {
            batch.clear();
            self.pool.push(batch);
            self.pending.push(Event::Sent {
                conn: id,
                result: Err(io::ErrorKind::NotConnected.into()),
            });
            return;
        };
        if conn.held.is_some() {
            batch.clear();
            self.pool.push(batch);
            self.pending.push(Event::Sent {
                conn: id,
                result: Err(io::Error::other("a send is already in flight")),
            });
            return;
        }
        // Most sends go at once; the event is reported at the next `wait`, as io_uring's is.
        if let Some(event) = conn.write(id, batch, 0, &mut self.pool) {
            self.pending.push(event);
        }
    }

    fn shutdown_write(&mut self, id: ConnId) {
        if let Some(conn) = EpollConn::of(&mut self.conns, id) {
            let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        }
    }

    fn close(&mut self, id: ConnId) {
        if let Some(entry) = self.conns.get_mut(id.slot as usize) {
            if entry.as_ref().is_some_and(|c| c.gen == id.gen) {
                if let Some(mut conn) = entry.take() {
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                    self.accept_gate.on_descriptor_freed();
                    if let Some(held) = conn.held.take() {
                        let mut batch = held.batch;
                        batch.clear();
                        self.pool.push(batch);
                        self.pending.push(Event::Sent {
                            conn: id,
                            result: Err(io::ErrorKind::ConnectionAborted.into()),
                        });
                    }
                }
            }
        }
        self.pending.push(Event::Closed(id));
    }

    fn stop_accepting(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
    }

    fn socket(&self, id: ConnId) -> Option<BorrowedFd<'_>> {
        let conn = self.conns.get(id.slot as usize)?.as_ref()?;
        (conn.gen == id.gen).then(|| conn.stream.as_fd())
    }
}

#[cfg(test)]
mod tests;
