//! One connection's TLS state, sans-IO: ciphertext the socket received goes in
//! ([`TlsSession::read_ciphertext`]) and comes out as plaintext for the connection; what the
//! connection would send is encrypted into one buffer ([`TlsSession::poll_transmit`]) that the
//! driver writes, and only once all of it is written are the connection's plaintext bytes
//! reported sent ([`TlsSession::handle_sent`]), so its outbox, queue cap and slow-consumer rule
//! work in plaintext bytes exactly as without TLS. A connection encrypts at most one send batch
//! ahead (bounded by the outbox's per-send limits), lazily, when the socket can take it.
//!
//! Where the kernel has TLS ([`super::ktls`]), a TLS 1.3 session is handed over once its
//! handshake is done and nothing is buffered ([`TlsSession::can_hand_over`],
//! [`TlsSession::hand_over`]): from then on the kernel encrypts what the connection sends (its
//! batches go to the socket as they are, shared frames by reference) and received records are
//! opened here ([`super::record_open`]). rustls is fed whole records only on such hosts, so no
//! half record is lost with it.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use rustls::{ConnectionTrafficSecrets, ServerConfig, ServerConnection};

use super::ktls::{self, KernelSupport};
use super::record::{Piece, Reassembly};
use super::record_open::{Opened, RecordOpener};
use crate::conn::{Conn, SendBatch};

/// Plaintext read out of rustls per call.
const READ_CHUNK: usize = 16 * 1024;
/// Most plaintext bytes in one TLS record: a send of `n` bytes makes at most `1 + n / this`
/// records (the kernel closes a record at the end of every send).
const RECORD_PLAINTEXT: usize = 1 << 14;

/// The peer broke the TLS protocol (or the handshake failed); the connection must close.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

impl TlsError {
    pub(crate) fn new(why: impl Into<String>) -> TlsError {
        TlsError(why.into())
    }
}

/// What [`TlsSession::close_notify`] asks of the shard before it shuts the write side.
#[derive(Debug, PartialEq, Eq)]
pub enum Goodbye {
    /// The alert is queued as ciphertext: send it first (the session wants to send).
    Queued,
    /// The kernel encrypts: send the alert record on the socket ([`ktls::send_close_notify`]).
    ByKernel,
    /// Already said (or the session cannot say it): shut the write side.
    Said,
}

/// One connection's TLS session.
#[derive(Debug)]
pub struct TlsSession {
    /// On hosts with kernel TLS: the record a read split (rustls gets whole records only).
    rx: Reassembly,
    state: State,
    /// `close_notify` was sent or queued.
    close_notified: bool,
}

/// Who encrypts and decrypts.
enum State {
    /// rustls, both directions (boxed: a kernel session frees it all).
    Userspace(Box<Userspace>),
    /// The kernel encrypts; received records are opened here (boxed: ring's key schedule).
    Kernel(Box<KernelSend>),
    /// The handover failed half way: the session is lost (the connection closes).
    Lost,
}

struct Userspace {
    tls: ServerConnection,
    /// Ciphertext being written: the whole buffer, and how much of it is written.
    pending: Bytes,
    written: usize,
    /// Plaintext bytes of the connection's outbox that `pending` carries.
    carried: usize,
    /// What the kernel could take this session with (nothing once known it never will).
    kernel: KernelSupport,
}

struct KernelSend {
    opener: RecordOpener,
    /// Records sent under the transmit key (an upper bound), and where the cipher's
    /// confidentiality limit asks for a new key: the connection closes before it.
    records: u64,
    record_limit: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Userspace(u) => f
                .debug_struct("Userspace")
                .field("handshaking", &u.tls.is_handshaking())
                .field("pending", &(u.pending.len() - u.written))
                .finish(),
            State::Kernel(k) => f
                .debug_struct("Kernel")
                .field("records", &k.records)
                .finish(),
            State::Lost => f.write_str("Lost"),
        }
    }
}

impl TlsSession {
    /// A server session under `config` (the certificate current at accept time), to be handed
    /// to the kernel if `kernel` takes its cipher (`config` then allows secret extraction).
    pub fn new(config: Arc<ServerConfig>, kernel: KernelSupport) -> Result<TlsSession, TlsError> {
        let mut tls = ServerConnection::new(config).map_err(|e| TlsError(e.to_string()))?;
        // Bounded by the caller instead: one send batch at a time goes in.
        tls.set_buffer_limit(None);
        Ok(TlsSession {
            rx: Reassembly::default(),
            state: State::Userspace(Box::new(Userspace {
                tls,
                pending: Bytes::new(),
                written: 0,
                carried: 0,
                kernel,
            })),
            close_notified: false,
        })
    }

    /// Feeds received ciphertext; appends the plaintext it yields to `plain`. `Ok(false)`: the
    /// peer sent `close_notify` (no more input will come).
    pub fn read_ciphertext(
        &mut self,
        data: &mut [u8],
        plain: &mut Vec<u8>,
    ) -> Result<bool, TlsError> {
        let TlsSession { rx, state, .. } = self;
        if let State::Userspace(u) = state {
            if !u.kernel.any() && rx.is_empty() {
                // Never handed over: rustls reassembles records itself.
                return u.feed(data, plain);
            }
        }
        let mut open = true;
        rx.split(data, |piece| match (&mut *state, piece) {
            (State::Userspace(u), Piece::Record(bytes) | Piece::NotTls(bytes)) => {
                open = u.feed(bytes, plain)?;
                Ok(open)
            }
            (State::Kernel(k), Piece::Record(record)) => match k.opener.open(record)? {
                Opened::Data(data) => {
                    plain.extend_from_slice(data);
                    Ok(true)
                }
                Opened::Closed => {
                    open = false;
                    Ok(false)
                }
            },
            (State::Kernel(_), Piece::NotTls(_)) => Err(TlsError::new("not a TLS record")),
            (State::Lost, _) => Err(TlsError::new("session lost")),
        })?;
        Ok(open)
    }

    /// Whether there is ciphertext to write (handshake records, alerts, or the rest of a send).
    pub fn wants_send(&self) -> bool {
        match &self.state {
            State::Userspace(u) => u.written < u.pending.len() || u.tls.wants_write(),
            State::Kernel(_) | State::Lost => false,
        }
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        match &self.state {
            State::Userspace(u) => u.tls.is_handshaking(),
            State::Kernel(_) | State::Lost => false,
        }
    }

    /// Whether the kernel encrypts this session's sends.
    pub fn is_kernel(&self) -> bool {
        matches!(self.state, State::Kernel(_))
    }

    /// Fills `batch` with the next bytes to write: in userspace, the rest of the previous
    /// ciphertext buffer, or the connection's next send batch encrypted (through `scratch`, a
    /// shard-wide buffer) with whatever records rustls has queued; once the kernel encrypts,
    /// the connection's batch as it is. Returns whether there is anything.
    pub fn poll_transmit(
        &mut self,
        conn: &Conn,
        batch: &mut SendBatch,
        scratch: &mut Vec<u8>,
    ) -> bool {
        match &mut self.state {
            State::Userspace(u) => u.poll_transmit(conn, batch, scratch),
            State::Kernel(_) => {
                batch.clear();
                conn.poll_transmit(batch)
            }
            State::Lost => {
                batch.clear();
                false
            }
        }
    }

    /// Records that the driver wrote `n` bytes; returns how many plaintext bytes of the
    /// connection's outbox are now written (in userspace: all the buffer carried, once it is
    /// all out).
    pub fn handle_sent(&mut self, n: usize) -> usize {
        match &mut self.state {
            State::Userspace(u) => u.handle_sent(n),
            State::Kernel(k) => {
                k.records += 1 + (n / RECORD_PLAINTEXT) as u64;
                n
            }
            State::Lost => 0,
        }
    }

    /// Says goodbye once, before the write side is shut: see [`Goodbye`].
    pub fn close_notify(&mut self) -> Goodbye {
        if std::mem::replace(&mut self.close_notified, true) {
            return Goodbye::Said;
        }
        match &mut self.state {
            State::Userspace(u) => {
                u.tls.send_close_notify();
                Goodbye::Queued
            }
            State::Kernel(_) => Goodbye::ByKernel,
            State::Lost => Goodbye::Said,
        }
    }

    /// Whether the session can go to the kernel now: handshake done, TLS 1.3 with a cipher the
    /// kernel takes, and nothing buffered in rustls (all its ciphertext, session tickets
    /// included, written; all its plaintext read). The caller also makes sure no send is in
    /// flight. Once the handshake shows the session can never go, it stops asking.
    pub fn can_hand_over(&mut self) -> bool {
        let State::Userspace(u) = &mut self.state else {
            return false;
        };
        if !u.kernel.any() || u.tls.is_handshaking() {
            return false;
        }
        let cipher = u.tls.negotiated_cipher_suite().and_then(ktls::cipher_of);
        if !ktls::takes(u.kernel, u.tls.protocol_version(), cipher) {
            u.kernel = KernelSupport::NONE;
            return false;
        }
        u.written == u.pending.len() && u.carried == 0 && !u.tls.wants_write()
    }

    /// Takes the session's secrets out of rustls and gives the transmit ones, with their
    /// record sequence number, to `enable` (which sets up the kernel's send direction); the
    /// receive ones stay here. On error the session is lost and the connection must close.
    pub fn hand_over(
        &mut self,
        enable: impl FnOnce(&ConnectionTrafficSecrets, u64) -> io::Result<()>,
    ) -> Result<(), TlsError> {
        let State::Userspace(u) = std::mem::replace(&mut self.state, State::Lost) else {
            return Err(TlsError::new("not a userspace session"));
        };
        let record_limit = u
            .tls
            .negotiated_cipher_suite()
            .and_then(|s| s.tls13())
            .map_or(u64::MAX, |s| s.common.confidentiality_limit);
        let secrets = u
            .tls
            .dangerous_extract_secrets()
            .map_err(|e| TlsError(format!("secret extraction: {e}")))?;
        let (rx_seq, rx) = &secrets.rx;
        let opener = RecordOpener::new(rx, *rx_seq)?;
        let (tx_seq, tx) = &secrets.tx;
        enable(tx, *tx_seq).map_err(|e| TlsError(format!("kernel TLS: {e}")))?;
        self.state = State::Kernel(Box::new(KernelSend {
            opener,
            records: *tx_seq,
            record_limit,
        }));
        Ok(())
    }

    /// Whether the kernel-encrypted session is near its cipher's confidentiality limit (the
    /// kernel cannot take a new key here): the connection should close and the client
    /// reconnect. Leaves an eighth of the limit for what is in flight and the close.
    pub fn key_exhausted(&self) -> bool {
        match &self.state {
            State::Kernel(k) => k.records >= k.record_limit - k.record_limit / 8,
            State::Userspace(_) | State::Lost => false,
        }
    }

    /// Moves the record count near the limit (a test of what happens there).
    #[cfg(test)]
    pub(crate) fn set_record_limit(&mut self, limit: u64) {
        if let State::Kernel(k) = &mut self.state {
            k.record_limit = limit;
        }
    }
}

impl Userspace {
    fn feed(&mut self, mut data: &[u8], plain: &mut Vec<u8>) -> Result<bool, TlsError> {
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

    fn poll_transmit(&mut self, conn: &Conn, batch: &mut SendBatch, scratch: &mut Vec<u8>) -> bool {
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

    fn handle_sent(&mut self, n: usize) -> usize {
        self.written = (self.written + n).min(self.pending.len());
        if self.written < self.pending.len() {
            return 0;
        }
        self.pending = Bytes::new();
        self.written = 0;
        std::mem::take(&mut self.carried)
    }
}
