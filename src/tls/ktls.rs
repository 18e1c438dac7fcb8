//! Kernel TLS (`CONFIG_TLS`): once a TLS 1.3 handshake is done, the kernel takes over the
//! session's *send* direction (`setsockopt(TCP_ULP, "tls")` then `SOL_TLS`/`TLS_TX` with the
//! traffic key), so the shared pre-serialized frames are written to the socket as they are and
//! the kernel encrypts them on their way out: no per-connection userspace copy. The receive
//! direction stays in userspace ([`super::record_open`]), where records already read before the
//! handover are, and where control records (alerts, key updates) are easy to see.
//!
//! [`probe`] asks the kernel once at start which ciphers it takes; where it takes none,
//! framecast encrypts in userspace and says so in one log line. The other functions are the
//! socket options and the one message (a `close_notify` alert) the kernel path needs; they are
//! the only system calls of the TLS layer, made by the shard on its own thread.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use rustls::ConnectionTrafficSecrets;

/// `SOL_TLS` socket option level (linux/socket.h).
const SOL_TLS: libc::c_int = 282;
/// `TLS_TX`: the send direction's crypto state (linux/tls.h).
const TLS_TX: libc::c_int = 1;
/// `TLS_SET_RECORD_TYPE`: a control message naming the record type of one `sendmsg`.
const TLS_SET_RECORD_TYPE: libc::c_int = 1;
/// `TLS_1_3_VERSION` (linux/tls.h).
const TLS_1_3_VERSION: u16 = 0x0304;
/// TLS record content type of an alert.
const ALERT: u8 = 21;

/// A cipher the kernel can run a TLS 1.3 send direction with (linux/tls.h `TLS_CIPHER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KernelCipher {
    /// `TLS_CIPHER_AES_GCM_128`.
    Aes128Gcm = 51,
    /// `TLS_CIPHER_AES_GCM_256`.
    Aes256Gcm = 52,
    /// `TLS_CIPHER_CHACHA20_POLY1305`.
    Chacha20Poly1305 = 54,
}

impl KernelCipher {
    const ALL: [KernelCipher; 3] = [
        KernelCipher::Aes128Gcm,
        KernelCipher::Aes256Gcm,
        KernelCipher::Chacha20Poly1305,
    ];

    fn key_len(self) -> usize {
        match self {
            KernelCipher::Aes128Gcm => 16,
            KernelCipher::Aes256Gcm | KernelCipher::Chacha20Poly1305 => 32,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8 - 51)
    }

    fn of(secrets: &ConnectionTrafficSecrets) -> Option<KernelCipher> {
        match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { .. } => Some(KernelCipher::Aes128Gcm),
            ConnectionTrafficSecrets::Aes256Gcm { .. } => Some(KernelCipher::Aes256Gcm),
            ConnectionTrafficSecrets::Chacha20Poly1305 { .. } => {
                Some(KernelCipher::Chacha20Poly1305)
            }
            _ => None,
        }
    }
}

/// The ciphers this host's kernel takes a TLS 1.3 send direction with ([`probe`]); empty where
/// it has no TLS module or `tls_kernel = "off"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelSupport(u8);

impl KernelSupport {
    /// No kernel TLS: every session stays in userspace.
    pub(crate) const NONE: KernelSupport = KernelSupport(0);
    /// Every cipher (tests of the handover without a kernel).
    #[cfg(test)]
    pub(crate) const ALL: KernelSupport = KernelSupport(0b1011);

    /// Whether the kernel takes any cipher at all.
    pub(crate) fn any(self) -> bool {
        self.0 != 0
    }

    /// Whether the kernel takes `cipher`.
    pub(crate) fn has(self, cipher: KernelCipher) -> bool {
        self.0 & cipher.bit() != 0
    }

    /// The cipher names, for the start-up log line.
    pub(crate) fn names(self) -> String {
        let names: Vec<&str> = KernelCipher::ALL
            .iter()
            .filter(|c| self.has(**c))
            .map(|c| match c {
                KernelCipher::Aes128Gcm => "AES-128-GCM",
                KernelCipher::Aes256Gcm => "AES-256-GCM",
                KernelCipher::Chacha20Poly1305 => "CHACHA20-POLY1305",
            })
            .collect();
        names.join(", ")
    }
}

/// Which ciphers the kernel takes, tried on loopback socket pairs (one per cipher: a socket's
/// `TLS_TX` is set once) with a throwaway key; `Err` says why none (no `CONFIG_TLS`, ...).
pub(crate) fn probe() -> Result<KernelSupport, String> {
    let mut support = KernelSupport::NONE;
    let mut last_error = String::new();
    for cipher in KernelCipher::ALL {
        let (client, _server) = loopback_pair().map_err(|e| format!("probe socket: {e}"))?;
        let seq = 0;
        let tried = set_ulp(client.as_fd()).and_then(|()| {
            let key = vec![0x5a; cipher.key_len()];
            set_tx(client.as_fd(), cipher, &key, &[0xa5; 12], seq)
        });
        match tried {
            Ok(()) => support.0 |= cipher.bit(),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(format!(
                    "setsockopt(TCP_ULP, \"tls\"): {e}: the kernel has no TLS module (CONFIG_TLS)"
                ));
            }
            Err(e) => last_error = format!("setsockopt(SOL_TLS, TLS_TX): {e}"),
        }
    }
    if support.any() {
        Ok(support)
    } else {
        Err(last_error)
    }
}

fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// Hands the send direction of `fd` to the kernel with the session's transmit secrets at
/// record sequence number `seq`. Once this returns `Ok`, everything written to `fd` is sent
/// as TLS application-data records; on `Err` the socket may be half set up and the session is
/// lost (the caller closes the connection).
pub(crate) fn enable_tx(
    fd: BorrowedFd<'_>,
    secrets: &ConnectionTrafficSecrets,
    seq: u64,
) -> io::Result<()> {
    let (cipher, key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (KernelCipher::of(secrets), key.as_ref(), iv.as_ref())
        }
        _ => (None, &[][..], &[][..]),
    };
    let (Some(cipher), Ok(iv)) = (cipher, <&[u8; 12]>::try_from(iv)) else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "cipher not offered to the kernel",
        ));
    };
    set_ulp(fd)?;
    set_tx(fd, cipher, key, iv, seq)
}

fn set_ulp(fd: BorrowedFd<'_>) -> io::Result<()> {
    setsockopt(fd, libc::SOL_TCP, libc::TCP_ULP, b"tls")
}

/// `SOL_TLS`/`TLS_TX` with the kernel's `tls12_crypto_info_*` layout for TLS 1.3: version and
/// cipher (native u16s), then for AES-GCM the nonce's last 8 bytes, the key, the nonce's first
/// 4 bytes ("salt") and the big-endian record sequence; for ChaCha20 the whole 12-byte nonce,
/// the key, no salt, the sequence. No padding: every field after the two u16s is bytes.
fn set_tx(
    fd: BorrowedFd<'_>,
    cipher: KernelCipher,
    key: &[u8],
    iv: &[u8; 12],
    seq: u64,
) -> io::Result<()> {
    let mut info = Vec::with_capacity(56);
    info.extend_from_slice(&TLS_1_3_VERSION.to_ne_bytes());
    info.extend_from_slice(&(cipher as u16).to_ne_bytes());
    match cipher {
        KernelCipher::Aes128Gcm | KernelCipher::Aes256Gcm => {
            info.extend_from_slice(&iv[4..]);
            info.extend_from_slice(key);
            info.extend_from_slice(&iv[..4]);
        }
        KernelCipher::Chacha20Poly1305 => {
            info.extend_from_slice(iv);
            info.extend_from_slice(key);
        }
    }
    info.extend_from_slice(&seq.to_be_bytes());
    let result = setsockopt(fd, SOL_TLS, TLS_TX, &info);
    // The key has been copied into the kernel; do not leave it in a freed heap block.
    info.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&info);
    result
}

fn setsockopt(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    // SAFETY: `fd` is borrowed (its owner keeps it open for the call); `value` is a live
    // buffer of `value.len()` bytes, only read by the kernel during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends a `close_notify` alert on a socket whose send direction the kernel runs: one 2-byte
/// alert record (level warning, description close_notify) through a `TLS_SET_RECORD_TYPE`
/// control message. Non-blocking; the caller makes sure no other send is in flight.
pub(crate) fn send_close_notify(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut alert = [1u8, 0u8];
    let mut iov = libc::iovec {
        iov_base: alert.as_mut_ptr().cast(),
        iov_len: alert.len(),
    };
    // Room for one control message with one byte of data, aligned as cmsghdr needs.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(1) } as usize;
    debug_assert!(space <= std::mem::size_of_val(&control));
    // SAFETY: `msghdr` is plain data; zeroed is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at `control` (live, `space` bytes, 8-aligned) for the whole block,
    // so CMSG_FIRSTHDR returns a header inside it with room for CMSG_LEN(1) bytes; `alert`
    // and `iov` outlive the sendmsg call, which only reads them; `fd` is borrowed for it.
    let rc = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = SOL_TLS;
        (*cmsg).cmsg_type = TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = ALERT;
        libc::sendmsg(
            fd.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether a session on `version` with `secrets` can go to a kernel that supports `support`.
pub(crate) fn takes(
    support: KernelSupport,
    version: Option<rustls::ProtocolVersion>,
    cipher: Option<KernelCipher>,
) -> bool {
    version == Some(rustls::ProtocolVersion::TLSv1_3) && cipher.is_some_and(|c| support.has(c))
}

/// The kernel cipher of a negotiated rustls cipher suite, if the kernel path knows it.
pub(crate) fn cipher_of(suite: rustls::SupportedCipherSuite) -> Option<KernelCipher> {
    use rustls::CipherSuite as S;
    match suite.suite() {
        S::TLS13_AES_128_GCM_SHA256 => Some(KernelCipher::Aes128Gcm),
        S::TLS13_AES_256_GCM_SHA384 => Some(KernelCipher::Aes256Gcm),
        S::TLS13_CHACHA20_POLY1305_SHA256 => Some(KernelCipher::Chacha20Poly1305),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_answers_either_way_and_says_why_not() {
        match probe() {
            Ok(support) => assert!(support.any() && !support.names().is_empty()),
            Err(why) => assert!(why.contains("TCP_ULP") || why.contains("TLS_TX"), "{why}"),
        }
    }

    #[test]
    fn support_is_a_set_of_ciphers() {
        let mut s = KernelSupport::NONE;
        assert!(!s.any());
        s.0 |= KernelCipher::Aes256Gcm.bit();
        assert!(s.has(KernelCipher::Aes256Gcm) && !s.has(KernelCipher::Aes128Gcm));
        assert_eq!(s.names(), "AES-256-GCM");
        assert!(takes(
            s,
            Some(rustls::ProtocolVersion::TLSv1_3),
            Some(KernelCipher::Aes256Gcm)
        ));
        assert!(!takes(
            s,
            Some(rustls::ProtocolVersion::TLSv1_2),
            Some(KernelCipher::Aes256Gcm)
        ));
        assert!(!takes(
            s,
            Some(rustls::ProtocolVersion::TLSv1_3),
            Some(KernelCipher::Aes128Gcm)
        ));
    }
}
