//! The epoll backend (through mio, edge-triggered): for hosts where io_uring is blocked (container
//! seccomp profiles) or too old. When a socket is ready it performs the read or write itself and
//! reports the same events as the io_uring backend.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream as StdStream;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::accept::AcceptGate;
use super::{Driver, Event, EventFd, SendBatch, SendStatus, Slot};
use crate::limits::{EPOLL_READ_SCRATCH_BYTES, MAX_IOVECS_PER_SEND};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// A shard's epoll loop.
pub struct EpollDriver {
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    accept_gate: AcceptGate,
    /// The listener may have connections waiting that no readiness edge will announce.
    accept_retry: bool,
    waker: Arc<EventFd>,
    conns: Vec<Option<TcpStream>>,
    scratch: Box<[u8]>,
    pending: Vec<Event>,
    pool: Vec<SendBatch>,
}

impl EpollDriver {
    /// Builds the loop around the shard's (non-blocking) listener and wake-up eventfd.
    pub fn new(listener: std::net::TcpListener, waker: Arc<EventFd>) -> io::Result<EpollDriver> {
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

    fn accept_all(&mut self, out: &mut Vec<Event>) {
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

impl Driver for EpollDriver {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<()> {
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
                Token(slot) => {
                    let slot = slot as Slot;
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        out.push(Event::Input { slot, token: 0 });
                    }
                    if ev.is_writable() {
                        out.push(Event::Writable(slot));
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

    fn register(&mut self, slot: Slot, fd: OwnedFd) -> io::Result<()> {
        let mut stream = TcpStream::from_std(StdStream::from(fd));
        self.poll.registry().register(
            &mut stream,
            Token(slot as usize),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let i = slot as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(stream);
        Ok(())
    }

    fn read_input(&mut self, slot: Slot, _token: u32, on_data: &mut dyn FnMut(&mut [u8])) -> bool {
        let Some(Some(stream)) = self.conns.get_mut(slot as usize) else {
            return false;
        };
        loop {
            match stream.read(&mut self.scratch) {
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

    fn send(&mut self, slot: Slot, mut batch: SendBatch) -> SendStatus {
        let Some(Some(stream)) = self.conns.get_mut(slot as usize) else {
            return SendStatus::Failed(io::ErrorKind::NotConnected.into());
        };
        let mut iov = [IoSlice::new(&[]); MAX_IOVECS_PER_SEND];
        let mut count = 0;
        for (dst, src) in iov.iter_mut().zip(batch.slices()) {
            *dst = IoSlice::new(src);
            count += 1;
        }
        let mut slices = &mut iov[..count];
        let mut written = 0;
        let status = loop {
            if written == batch.len {
                break SendStatus::Done(written);
            }
            match stream.write_vectored(slices) {
                Ok(0) => break SendStatus::Failed(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    IoSlice::advance_slices(&mut slices, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    break SendStatus::Blocked(written)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break SendStatus::Failed(e),
            }
        };
        batch.clear();
        self.pool.push(batch);
        status
    }

    fn shutdown_write(&mut self, slot: Slot) {
        if let Some(Some(stream)) = self.conns.get(slot as usize) {
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
    }

    fn close(&mut self, slot: Slot) {
        if let Some(entry) = self.conns.get_mut(slot as usize) {
            if let Some(mut stream) = entry.take() {
                let _ = self.poll.registry().deregister(&mut stream);
                self.accept_gate.on_descriptor_freed();
            }
        }
        self.pending.push(Event::Closed(slot));
    }

    fn stop_accepting(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
    }
}
