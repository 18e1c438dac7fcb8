//! The receive direction of a session whose send direction the kernel took over: TLS 1.3
//! records decrypted in place with the client's traffic key (RFC 8446 §5.2-5.3: the nonce is
//! the IV xor the record's sequence number, the additional data its header, the content type
//! the last non-zero byte of the plaintext). Clients send little (commands, pings), so this is
//! off the hot path.
//!
//! What is not application data: a `close_notify` ends input; any other alert, and any
//! post-handshake message (a key update above all: the secrets to follow it are gone with the
//! rustls session), fail the session, and the connection closes.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;

use super::record::HEADER;
use super::session::TlsError;

const APPLICATION_DATA: u8 = 23;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
/// Largest TLS 1.3 ciphertext body: 2^14 + 256.
const MAX_BODY: usize = (1 << 14) + 256;

/// What one record carried.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened<'a> {
    /// Application data (maybe empty).
    Data(&'a [u8]),
    /// The peer's `close_notify`: no more input.
    Closed,
}

/// The receive key and the next record's sequence number.
pub(crate) struct RecordOpener {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl std::fmt::Debug for RecordOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordOpener")
            .field("seq", &self.seq)
            .finish()
    }
}

impl RecordOpener {
    /// An opener for the client's traffic `secrets`, starting at record `seq`.
    pub(crate) fn new(secrets: &ConnectionTrafficSecrets, seq: u64) -> Result<Self, TlsError> {
        let (algorithm, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(TlsError::new("cipher not supported after the handover")),
        };
        let key = UnboundKey::new(algorithm, key.as_ref())
            .map_err(|_| TlsError::new("bad receive key"))?;
        let iv = <[u8; 12]>::try_from(iv.as_ref()).map_err(|_| TlsError::new("bad IV"))?;
        Ok(RecordOpener {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// Decrypts one whole record (header first) in place.
    pub(crate) fn open<'a>(&mut self, record: &'a mut [u8]) -> Result<Opened<'a>, TlsError> {
        let (header, body) = record.split_at_mut(HEADER);
        if header[0] != APPLICATION_DATA || body.len() > MAX_BODY {
            return Err(TlsError::new("unexpected TLS 1.3 record"));
        }
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&*header),
                body,
            )
            .map_err(|_| TlsError::new("record failed to decrypt"))?;
        self.seq += 1;
        let Some(end) = plain.iter().rposition(|b| *b != 0) else {
            return Err(TlsError::new("record without a content type"));
        };
        let (content, kind) = (&plain[..end], plain[end]);
        match kind {
            APPLICATION_DATA => Ok(Opened::Data(content)),
            ALERT if content == [1, 0] || content == [2, 0] => Ok(Opened::Closed),
            ALERT => Err(TlsError::new(format!("peer sent alert {content:?}"))),
            HANDSHAKE if content.first() == Some(&24) => Err(TlsError::new(
                "peer sent a key update, which this session cannot follow once the kernel \
                 encrypts (the client reconnects)",
            )),
            HANDSHAKE => Err(TlsError::new("unexpected post-handshake message")),
            _ => Err(TlsError::new("unexpected inner content type")),
        }
    }
}

/// A TLS 1.3 record as a peer (or the kernel) seals it with `secrets` at `seq`: `kind` inside,
/// then `pad` zeros of padding.
#[cfg(test)]
pub(crate) fn seal(
    secrets: &ConnectionTrafficSecrets,
    seq: u64,
    kind: u8,
    content: &[u8],
    pad: usize,
) -> Vec<u8> {
    let opener = RecordOpener::new(secrets, seq).unwrap();
    let mut nonce = opener.iv;
    for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    let mut body = content.to_vec();
    body.push(kind);
    body.extend(std::iter::repeat_n(0, pad));
    let len = (body.len() + 16) as u16;
    let header = [APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8];
    let tag = opener
        .key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header),
            &mut body,
        )
        .unwrap();
    [&header[..], &body, tag.as_ref()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::cipher::{AeadKey, Iv};

    fn secrets() -> ConnectionTrafficSecrets {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        ConnectionTrafficSecrets::Aes256Gcm {
            key: AeadKey::from(key),
            iv: Iv::new([9; 12]),
        }
    }

    fn seal(seq: u64, kind: u8, content: &[u8], pad: usize) -> Vec<u8> {
        super::seal(&secrets(), seq, kind, content, pad)
    }

    #[test]
    fn records_open_in_sequence_with_padding_removed() {
        let mut opener = RecordOpener::new(&secrets(), 3).unwrap();
        let mut a = seal(3, 23, b"hello", 0);
        let mut b = seal(4, 23, b"world", 7);
        assert_eq!(opener.open(&mut a).unwrap(), Opened::Data(b"hello"));
        assert_eq!(opener.open(&mut b).unwrap(), Opened::Data(b"world"));
    }

    #[test]
    fn a_record_out_of_sequence_or_tampered_fails() {
        let mut opener = RecordOpener::new(&secrets(), 0).unwrap();
        assert!(opener.open(&mut seal(1, 23, b"skipped one", 0)).is_err());
        let mut opener = RecordOpener::new(&secrets(), 0).unwrap();
        let mut r = seal(0, 23, b"x", 0);
        r[6] ^= 1;
        assert!(opener.open(&mut r).is_err());
    }

    #[test]
    fn close_notify_ends_input_and_a_key_update_fails_the_session() {
        let mut opener = RecordOpener::new(&secrets(), 0).unwrap();
        assert_eq!(
            opener.open(&mut seal(0, 21, &[1, 0], 0)).unwrap(),
            Opened::Closed
        );
        let update = [24, 0, 0, 1, 0];
        let err = opener.open(&mut seal(1, 22, &update, 0)).unwrap_err();
        assert!(err.to_string().contains("key update"), "{err}");
    }
}
