//! One connection's TLS state, sans-IO, on rustls's unbuffered API: ciphertext the socket
//! received is decrypted where it lies ([`TlsSession::read_ciphertext`]) and the plaintext goes to
//! the connection; what the connection would send is encrypted into one buffer
//! ([`TlsSession::poll_transmit`]) that the driver writes, and only once all of it is written are
//! the connection's plaintext bytes reported sent ([`TlsSession::handle_sent`]), so its outbox,
//! queue cap and slow-consumer rule work in plaintext bytes exactly as without TLS.
//!
//! The session owns no read buffer: records are decrypted in the driver's receive buffer, and
//! only the tail of a record split across reads is kept (an idle connection keeps none). A
//! connection encrypts at most one send batch ahead (bounded by the outbox's per-send limits),
//! lazily, when the socket can take it.

use std::sync::Arc;

use bytes::Bytes;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;

use crate::conn::{Conn, SendBatch};

/// Room for record headers and tags per encryption, before rustls asks for the exact size.
const RECORD_OVERHEAD: usize = 64;

/// The peer broke the TLS protocol (or the handshake failed); the connection must close.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> TlsError {
        TlsError(e.to_string())
    }
}

/// One connection's TLS session.
pub struct TlsSession {
    tls: UnbufferedServerConnection,
    /// Received ciphertext that is not a whole record yet (empty, unallocated, between records).
    partial: Vec<u8>,
    /// Records rustls produced on its own (handshake, tickets, alerts), to go out next.
    queued: Vec<u8>,
    /// Ciphertext being written: the whole buffer, and how much of it is written.
    pending: Bytes,
    written: usize,
    /// Plaintext bytes of the connection's outbox that `pending` carries.
    carried: usize,
    /// The handshake is done: application data may be sent.
    established: bool,
    /// `close_notify` was queued.
    close_notified: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("established", &self.established)
            .field("pending", &(self.pending.len() - self.written))
            .finish()
    }
}

/// Appends what `encode` writes to `out`, growing it to the size rustls asks for.
fn append<E>(
    out: &mut Vec<u8>,
    hint: usize,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let at = out.len();
    out.resize(at + hint, 0);
    loop {
        match encode(&mut out[at..]) {
            Ok(n) => {
                out.truncate(at + n);
                return Ok(());
            }
            Err(e) => match required(&e) {
                Some(size) => out.resize(at + size, 0),
                None => {
                    out.truncate(at);
                    return Err(e);
                }
            },
        }
    }
}

fn encode_size(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encrypt_size(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

/// What one round of record processing ended in.
enum Step {
    /// Go on with the rest of the input.
    More,
    /// Nothing more to do until more input (or the handshake is done and none is left).
    Wait,
    /// The peer closed the session.
    Closed,
}

impl TlsSession {
    /// A server session under `config` (the certificate current at accept time).
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, TlsError> {
        Ok(TlsSession {
            tls: UnbufferedServerConnection::new(config)?,
            partial: Vec::new(),
            queued: Vec::new(),
            pending: Bytes::new(),
            written: 0,
            carried: 0,
            established: false,
            close_notified: false,
        })
    }

    /// Feeds received ciphertext (decrypted in place); appends the plaintext it yields to
    /// `plain`. `Ok(false)`: the peer closed the session (no more input will come).
    pub fn read_ciphertext(
        &mut self,
        data: &mut [u8],
        plain: &mut Vec<u8>,
    ) -> Result<bool, TlsError> {
        let mut partial = std::mem::take(&mut self.partial);
        let joined = !partial.is_empty();
        if joined {
            partial.extend_from_slice(data);
        }
        let buf: &mut [u8] = if joined { &mut partial } else { data };
        let mut at = 0;
        let mut open = true;
        let result = loop {
            let (discard, step) = match self.step(&mut buf[at..], plain) {
                Ok(x) => x,
                Err(e) => break Err(e),
            };
            at += discard;
            match step {
                Step::More => {}
                Step::Wait => break Ok(()),
                Step::Closed => {
                    open = false;
                    break Ok(());
                }
            }
        };
        // Keep only an unfinished record's bytes.
        let rest = &buf[at..];
        if joined {
            partial.drain(..at);
            if partial.is_empty() {
                partial = Vec::new();
            }
            self.partial = partial;
        } else if !rest.is_empty() {
            self.partial = rest.to_vec();
        }
        result.map(|()| open)
    }

    /// One call into rustls over `incoming`: returns the bytes of `incoming` it consumed and
    /// what to do next.
    fn step(
        &mut self,
        incoming: &mut [u8],
        plain: &mut Vec<u8>,
    ) -> Result<(usize, Step), TlsError> {
        let UnbufferedStatus { mut discard, state } = self.tls.process_tls_records(incoming);
        let step = match state? {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record?;
                    discard += record.discard;
                    plain.extend_from_slice(record.payload);
                }
                Step::More
            }
            ConnectionState::EncodeTlsData(mut data) => {
                append(&mut self.queued, 1024, |out| data.encode(out), encode_size)
                    .map_err(|e| TlsError(e.to_string()))?;
                Step::More
            }
            // The bytes are in `queued`, sent in order before anything encrypted later.
            ConnectionState::TransmitTlsData(data) => {
                data.done();
                Step::More
            }
            ConnectionState::WriteTraffic(_) => {
                self.established = true;
                Step::Wait
            }
            ConnectionState::PeerClosed | ConnectionState::Closed => Step::Closed,
            // BlockedHandshake: more input needed; early data is not enabled.
            _ => Step::Wait,
        };
        Ok((discard, step))
    }

    /// Whether there is ciphertext to write (handshake records, alerts, or the rest of a send).
    pub fn wants_send(&self) -> bool {
        self.written < self.pending.len() || !self.queued.is_empty()
    }

    /// Bytes of receive buffer the session holds (a split record's head, else none).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.partial.capacity()
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        !self.established
    }

    /// Fills `batch` with the next ciphertext to write: the rest of the previous buffer, or the
    /// records rustls queued and the connection's next send batch encrypted (through `scratch`,
    /// a shard-wide buffer). Returns whether there is anything.
    pub fn poll_transmit(
        &mut self,
        conn: &Conn,
        batch: &mut SendBatch,
        scratch: &mut Vec<u8>,
    ) -> bool {
        if self.written == self.pending.len() {
            let mut out = std::mem::take(&mut self.queued);
            batch.clear();
            // Application data waits until the session can carry it.
            if self.established && conn.poll_transmit(batch) {
                scratch.clear();
                for slice in batch.slices() {
                    scratch.extend_from_slice(slice);
                }
                if self.encrypt(scratch, &mut out) {
                    self.carried = batch.len;
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

    /// Encrypts `plain` onto `out` (after any records rustls wants to send first); whether it
    /// did (not: the session cannot carry data now).
    fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> bool {
        loop {
            let UnbufferedStatus { state, .. } = self.tls.process_tls_records(&mut []);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    if append(out, 1024, |o| data.encode(o), encode_size).is_err() {
                        return false;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(data)) => data.done(),
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let hint = plain.len() + RECORD_OVERHEAD * (1 + plain.len() / 16384);
                    return append(out, hint, |o| traffic.encrypt(plain, o), encrypt_size).is_ok();
                }
                _ => return false,
            }
        }
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
        if self.close_notified || !self.established {
            return false;
        }
        self.close_notified = true;
        let UnbufferedStatus { state, .. } = self.tls.process_tls_records(&mut []);
        if let Ok(ConnectionState::WriteTraffic(mut traffic)) = state {
            let queued = &mut self.queued;
            return append(queued, 64, |o| traffic.queue_close_notify(o), encrypt_size).is_ok();
        }
        false
    }
}
