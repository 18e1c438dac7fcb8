//! One connection's TLS state, sans-IO: ciphertext the socket received goes in
//! ([`TlsSession::read_ciphertext`]) and comes out as plaintext for the connection; what the
//! connection would send is encrypted into one buffer ([`TlsSession::poll_transmit`]) that the
//! driver writes, and only once all of it is written are the connection's plaintext bytes
//! reported sent ([`TlsSession::handle_sent`]), so its outbox, queue cap and slow-consumer rule
//! work in plaintext bytes exactly as without TLS. A connection encrypts at most one send batch
//! ahead (bounded by the outbox's per-send limits), lazily, when the socket can take it.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use rustls::{ServerConfig, ServerConnection};

use crate::conn::{Conn, SendBatch};

/// Plaintext read out of rustls per call.
const READ_CHUNK: usize = 16 * 1024;

/// The peer broke the TLS protocol (or the handshake failed); the connection must close.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

/// One connection's TLS session.
pub struct TlsSession {
    tls: ServerConnection,
    /// Ciphertext being written: the whole buffer, and how much of it is written.
    pending: Bytes,
    written: usize,
    /// Plaintext bytes of the connection's outbox that `pending` carries.
    carried: usize,
    /// `close_notify` was queued.
    close_notified: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.tls.is_handshaking())
            .field("pending", &(self.pending.len() - self.written))
            .finish()
    }
}

impl TlsSession {
    /// A server session under `config` (the certificate current at accept time).
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, TlsError> {
        let mut tls = ServerConnection::new(config).map_err(|e| TlsError(e.to_string()))?;
        // Bounded by the caller instead: one send batch at a time goes in.
        tls.set_buffer_limit(None);
        Ok(TlsSession {
            tls,
            pending: Bytes::new(),
            written: 0,
            carried: 0,
            close_notified: false,
        })
    }

    /// Feeds received ciphertext; appends the plaintext it yields to `plain`. `Ok(false)`: the
    /// peer sent `close_notify` (no more input will come).
    pub fn read_ciphertext(
        &mut self,
        mut data: &[u8],
        plain: &mut Vec<u8>,
    ) -> Result<bool, TlsError> {
        let mut open = true;
        while !data.is_empty() {
            let before = data.len();
            match self.tls.read_tls(&mut data) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(_) => {}
                // The plaintext buffer is full: drain it below, then go on.
                Err(e) if e.kind() == io::ErrorKind::Other => {}
                Err(e) => return Err(TlsError(e.to_string())),
            }
            let state = self
                .tls
                .process_new_packets()
                .map_err(|e| TlsError(e.to_string()))?;
            if state.peer_has_closed() {
                open = false;
            }
            let drained = plain.len();
            self.drain_plaintext(plain)?;
            // Neither input taken nor plaintext given: rustls cannot go on (never spin on it).
            if data.len() == before && plain.len() == drained {
                return Err(TlsError("TLS input not consumed".into()));
            }
        }
        Ok(open)
    }

    fn drain_plaintext(&mut self, plain: &mut Vec<u8>) -> Result<(), TlsError> {
        loop {
            let at = plain.len();
            plain.resize(at + READ_CHUNK, 0);
            let got = self.tls.reader().read(&mut plain[at..]);
            match got {
                Ok(n) => {
                    plain.truncate(at + n);
                    if n == 0 {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    plain.truncate(at);
                    return Ok(());
                }
                Err(e) => {
                    plain.truncate(at);
                    // A peer that closed without close_notify: what was decrypted stays valid.
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        return Ok(());
                    }
                    return Err(TlsError(e.to_string()));
                }
            }
        }
    }

    /// Whether there is ciphertext to write (handshake records, alerts, or the rest of a send).
    pub fn wants_send(&self) -> bool {
        self.written < self.pending.len() || self.tls.wants_write()
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// Fills `batch` with the next ciphertext to write: the rest of the previous buffer, or
    /// the connection's next send batch encrypted (through `scratch`, a shard-wide buffer) with
    /// whatever records rustls has queued. Returns whether there is anything.
    pub fn poll_transmit(
        &mut self,
        conn: &Conn,
        batch: &mut SendBatch,
        scratch: &mut Vec<u8>,
    ) -> bool {
        if self.written == self.pending.len() {
            batch.clear();
            // Handshake first: application data waits until the session can carry it.
            if !self.tls.is_handshaking() && conn.poll_transmit(batch) {
                scratch.clear();
                for slice in batch.slices() {
                    scratch.extend_from_slice(slice);
                }
                self.carried = batch.len;
                // Cannot fail: the buffer limit is off, so rustls takes everything.
                let _ = self.tls.writer().write_all(scratch);
            }
            let mut out = Vec::with_capacity(scratch.len().min(1 << 20) + 256);
            while self.tls.wants_write() {
                if self.tls.write_tls(&mut out).is_err() {
                    break;
                }
            }
            self.pending = Bytes::from(out);
            self.written = 0;
        }
        batch.clear();
        if self.written < self.pending.len() {
            batch.bufs.push(self.pending.clone());
            batch.offset = self.written;
            batch.len = self.pending.len() - self.written;
        }
        batch.len > 0
    }

    /// Records that the driver wrote `n` ciphertext bytes; returns how many plaintext bytes of
    /// the connection's outbox are now written (all the buffer carried, once it is all out).
    pub fn handle_sent(&mut self, n: usize) -> usize {
        self.written = (self.written + n).min(self.pending.len());
        if self.written < self.pending.len() {
            return 0;
        }
        self.pending = Bytes::new();
        self.written = 0;
        std::mem::take(&mut self.carried)
    }

    /// Queues `close_notify` once (before the write side is shut); returns whether it did now.
    pub fn close_notify(&mut self) -> bool {
        if self.close_notified {
            return false;
        }
        self.close_notified = true;
        self.tls.send_close_notify();
        true
    }
}
