//! What carries a connection's WebSocket bytes: the plain TCP stream (`ws://`) or a TLS session
//! over it (`wss://`), both on a non-blocking mio socket. The TLS variant drives a
//! [`rustls::ClientConnection`] by hand (`read_tls` / `process_new_packets` / `reader` /
//! `writer` / `write_tls`; `rustls::Stream` is not made for non-blocking sockets in the middle
//! of a handshake): plaintext written before the handshake is done waits in rustls and goes out
//! with it, ciphertext goes out whenever the socket takes it ([`Transport::flush`]), and reads
//! hand on decrypted bytes in the caller's buffer, so what reads frames does not know which
//! variant it has. The plain variant is the stream and nothing else: no copy, no extra call.
//!
//! Roots of trust come from one PEM file only ([`client_config`]); the certificate is checked
//! against the URL's host (a DNS name, or an IP address against the certificate's IP SANs).

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// Bytes read from a TLS socket at once (then fed to rustls from memory): one `recv` brings
/// many records, instead of the 4 KiB rustls reads itself.
pub const CIPHER_CHUNK: usize = 64 * 1024;

/// A rustls client configuration (ring, TLS 1.2 and 1.3, ALPN `http/1.1`) whose only roots are
/// the certificates in the PEM file `ca_file`.
pub fn client_config(ca_file: &Path) -> Result<Arc<ClientConfig>, String> {
    let bad = |e: &dyn std::fmt::Display| format!("--tls-ca {}: {e}", ca_file.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| bad(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no CERTIFICATE in the file"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| bad(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a `wss://` connection needs: the configuration and the name the server's certificate
/// must have.
#[derive(Clone, Debug)]
pub struct TlsClient {
    /// Shared by every connection.
    pub config: Arc<ClientConfig>,
    /// The URL's host.
    pub name: ServerName<'static>,
}

impl TlsClient {
    /// `config` for connections to `host` (a DNS name or an IP address, no port or brackets).
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<TlsClient, String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("`{host}` is no TLS server name: {e}"))?;
        Ok(TlsClient { config, name })
    }

    /// A session for one new connection.
    pub fn session(&self) -> io::Result<ClientConnection> {
        let mut conn = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(io::Error::other)?;
        // whatever the caller writes is taken at once (it flushes, and waits itself if it must)
        conn.set_buffer_limit(None);
        Ok(conn)
    }
}

/// One connection's byte stream.
pub enum Transport {
    /// `ws://`: the socket.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<TlsConn>),
}

impl Transport {
    /// `stream` as it is, or with a TLS session of `tls` started on it (nothing is sent before
    /// the first [`Transport::write_all`] or [`Transport::flush`]).
    pub fn new(stream: TcpStream, tls: Option<&TlsClient>) -> io::Result<Transport> {
        Ok(match tls {
            None => Transport::Plain(stream),
            Some(t) => Transport::Tls(Box::new(TlsConn::new(stream, t.session()?))),
        })
    }

    /// The socket (to register it, set options, shut it down).
    #[inline]
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &mut t.sock,
        }
    }

    /// Writes `data`: straight to the socket, or into the TLS session (encrypted, or held until
    /// the handshake is done) and then as much ciphertext as the socket takes.
    #[inline]
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.write_all(data),
            Transport::Tls(t) => t.write_all(data),
        }
    }

    /// Sends pending TLS bytes until the socket would block (the next writable event resumes);
    /// nothing to do for a plain stream.
    #[inline]
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => t.flush(),
        }
    }

    /// Reads into `out` like a non-blocking socket read (`Ok(0)`: the peer closed;
    /// `WouldBlock`: nothing now). TLS reads ciphertext into `cipher` first
    /// ([`CIPHER_CHUNK`] bytes is right; unused for a plain stream). TLS errors (a certificate
    /// refused, a bad record) are `InvalidData`.
    #[inline]
    pub fn read(&mut self, out: &mut [u8], cipher: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(out),
            Transport::Tls(t) => t.read(out, cipher),
        }
    }

    /// After a read that did not fill its buffer: whether another read would still bring
    /// something without a new readiness event (a plain short read drained the socket).
    #[inline]
    pub fn more(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.more(),
        }
    }
}

/// A TLS session and its non-blocking socket.
pub struct TlsConn {
    conn: ClientConnection,
    sock: TcpStream,
    /// Ciphertext read but not yet taken by rustls (the caller's buffer filled up first).
    leftover: Vec<u8>,
    /// The peer closed (end of stream, or close_notify): nothing more is read from the
    /// socket; reads give the plaintext left, then 0.
    closed: bool,
}

impl TlsConn {
    /// `conn` over `sock`.
    pub fn new(sock: TcpStream, conn: ClientConnection) -> TlsConn {
        TlsConn {
            conn,
            sock,
            leftover: Vec::new(),
            closed: false,
        }
    }

    /// The socket.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// TLS bytes are waiting to be sent.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// The handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Puts `data` in the session (the caller flushes).
    pub fn buffer(&mut self, data: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(data)
    }

    /// Puts `data` in the session and flushes.
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.buffer(data)?;
        self.flush()
    }

    /// Writes ciphertext until there is none left or the socket would block.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// See [`Transport::more`].
    pub fn more(&self) -> bool {
        self.closed || !self.leftover.is_empty()
    }

    /// See [`Transport::read`]: decrypted bytes until `out` is full, the socket has nothing
    /// more (a short `recv`, or `WouldBlock`) or the peer closed.
    pub fn read(&mut self, out: &mut [u8], cipher: &mut [u8]) -> io::Result<usize> {
        let mut filled = self.plaintext(out)?;
        loop {
            if filled == out.len() || self.closed {
                return Ok(filled);
            }
            if !self.leftover.is_empty() {
                let pending = std::mem::take(&mut self.leftover);
                filled += self.feed(&pending, &mut out[filled..])?;
                continue;
            }
            let n = match self.sock.read(cipher) {
                Ok(0) => {
                    self.closed = true;
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            filled += self.feed(&cipher[..n], &mut out[filled..])?;
            if n < cipher.len() && self.leftover.is_empty() && !self.closed {
                // a short read emptied the socket (like the plain path's short read)
                return if filled > 0 {
                    Ok(filled)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
        }
    }

    /// Decrypted bytes rustls holds, into `out`.
    fn plaintext(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        match self.conn.reader().read(out) {
            Ok(0) => {
                self.closed = true; // close_notify
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Gives `data` (ciphertext) to rustls and its plaintext to `out`; what does not fit waits
    /// in `leftover`. Sends what the session has to say (handshake messages, the request held
    /// until the handshake was done, alerts).
    fn feed(&mut self, mut data: &[u8], out: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while !data.is_empty() {
            if filled == out.len() {
                self.leftover.extend_from_slice(data);
                break;
            }
            if self.conn.read_tls(&mut data)? == 0 {
                break; // after close_notify: the rest is ignored
            }
            match self.conn.process_new_packets() {
                // close_notify: what is decrypted is still handed on, then the end (this read
                // may have emptied the socket: no new event would say so)
                Ok(state) if state.peer_has_closed() => self.closed = true,
                Ok(_) => {}
                Err(e) => {
                    let _ = self.flush(); // the alert, if the socket takes it
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            filled += self.plaintext(&mut out[filled..])?;
        }
        self.flush()?;
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn the_ca_file_is_the_only_root_and_must_hold_a_certificate() {
        assert!(client_config(&fixture("ca.pem")).is_ok());
        let e = client_config(&fixture("nope.pem")).unwrap_err();
        assert!(e.starts_with("--tls-ca ") && e.contains("nope.pem"), "{e}");
        let e = client_config(&fixture("server-rsa.key")).unwrap_err();
        assert!(e.contains("no CERTIFICATE"), "{e}");
    }

    /// A blocking TLS server on another thread: reads `hello`, answers `len` patterned bytes
    /// and close_notify.
    fn serve_once(len: usize) -> std::net::SocketAddr {
        use rustls::pki_types::PrivateKeyDer;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let certs = CertificateDer::pem_file_iter(fixture("server-ecdsa.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(fixture("server-ecdsa.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        std::thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let mut s = rustls::StreamOwned::new(conn, sock);
            let mut hello = [0u8; 5];
            s.read_exact(&mut hello).unwrap();
            assert_eq!(&hello, b"hello");
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            s.write_all(&body).unwrap();
            s.conn.send_close_notify();
            s.flush().unwrap();
        });
        addr
    }

    #[test]
    fn reads_hand_on_everything_in_order_whatever_the_buffer_sizes() {
        use mio::{Events, Interest, Poll, Token};
        let config = client_config(&fixture("ca.pem")).unwrap();
        let tls = TlsClient::new(config, "localhost").unwrap();
        let len = 300_000;
        // (out, cipher): tiny ones leave ciphertext over and plaintext in rustls
        for (out_len, cipher_len) in [(7, 100), (5000, 333), (256 * 1024, CIPHER_CHUNK)] {
            let addr = serve_once(len);
            let mut t = Transport::new(TcpStream::connect(addr).unwrap(), Some(&tls)).unwrap();
            let mut poll = Poll::new().unwrap();
            poll.registry()
                .register(
                    t.socket(),
                    Token(0),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .unwrap();
            let mut events = Events::with_capacity(4);
            let (mut out, mut cipher) = (vec![0u8; out_len], vec![0u8; cipher_len]);
            let mut got = Vec::new();
            let mut wrote = false;
            'run: loop {
                poll.poll(&mut events, Some(Duration::from_secs(5)))
                    .unwrap();
                assert!(!events.is_empty(), "stalled after {} bytes", got.len());
                if !wrote {
                    // before the handshake: held, sent once it is done
                    t.write_all(b"hello").unwrap();
                    wrote = true;
                }
                t.flush().unwrap();
                loop {
                    match t.read(&mut out, &mut cipher) {
                        Ok(0) => break 'run,
                        Ok(n) => {
                            got.extend_from_slice(&out[..n]);
                            if n < out.len() && !t.more() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            assert_eq!(got.len(), len, "out {out_len}, cipher {cipher_len}");
            assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        }
    }

    #[test]
    fn names_are_dns_names_or_ip_addresses() {
        let config = client_config(&fixture("ca.pem")).unwrap();
        for host in ["localhost", "127.0.0.1", "::1", "example.com"] {
            assert!(TlsClient::new(config.clone(), host).is_ok(), "{host}");
        }
        assert!(matches!(
            TlsClient::new(config.clone(), "127.0.0.1").unwrap().name,
            ServerName::IpAddress(_)
        ));
        assert!(TlsClient::new(config, "bad name!").is_err());
    }
}
