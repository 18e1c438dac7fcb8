//! The TLS session as the shard drives it, with a rustls client in memory (no sockets): the
//! handshake, an upgrade read through it, and the connection's plaintext reported sent only once
//! all of its ciphertext is written, however the writes are split.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::{CertStore, TlsSession};
use crate::conn::{Admission, AppEvent, Conn, SendBatch};
use crate::testing::{settings, UPGRADE};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn client() -> ClientConnection {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    ClientConnection::new(Arc::new(config), name).unwrap()
}

fn server() -> TlsSession {
    let store =
        CertStore::load(&fixture("server-ecdsa.pem"), &fixture("server-ecdsa.key")).unwrap();
    TlsSession::new(store.current()).unwrap()
}

/// Everything the session has to send now, as the driver would write it whole.
fn flush(tls: &mut TlsSession, conn: &mut Conn) -> Vec<u8> {
    let mut out = Vec::new();
    let mut batch = SendBatch::default();
    let mut scratch = Vec::new();
    while tls.poll_transmit(conn, &mut batch, &mut scratch) {
        out.extend(batch.slices().flatten());
        let plain = tls.handle_sent(batch.len);
        conn.handle_sent(plain);
    }
    out
}

/// Runs the handshake between `client` and `tls` to completion.
fn handshake(client: &mut ClientConnection, tls: &mut TlsSession, conn: &mut Conn) {
    for _ in 0..10 {
        let mut hello = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut hello).unwrap();
        }
        let mut plain = Vec::new();
        assert!(tls.read_ciphertext(&hello, &mut plain).unwrap());
        assert!(plain.is_empty(), "no application data during the handshake");
        let answer = flush(tls, conn);
        client.read_tls(&mut &answer[..]).unwrap();
        client.process_new_packets().unwrap();
        if !client.is_handshaking() && !tls.is_handshaking() {
            return;
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn an_upgrade_goes_through_and_plaintext_counts_as_sent_only_once_all_ciphertext_is_written() {
    let now = Instant::now();
    let settings = settings(1 << 20);
    let mut conn = Conn::new(now, &settings, Admission::Admit);
    let (mut client, mut tls) = (client(), server());
    handshake(&mut client, &mut tls, &mut conn);
    // The upgrade, encrypted by the client, reaches the connection as plaintext.
    client.writer().write_all(UPGRADE).unwrap();
    let mut record = Vec::new();
    client.write_tls(&mut record).unwrap();
    let mut plain = Vec::new();
    assert!(tls.read_ciphertext(&record, &mut plain).unwrap());
    assert_eq!(plain, UPGRADE);
    conn.handle_input(&mut plain, now, &settings, &mut |_, _: AppEvent<'_>| {});
    assert!(conn.has_output(), "the 101 is queued");
    let queued = conn.queued();
    // The 101 goes out in three partial writes: the outbox keeps it until the last.
    let mut batch = SendBatch::default();
    let mut scratch = Vec::new();
    assert!(tls.poll_transmit(&conn, &mut batch, &mut scratch));
    let ciphertext: Vec<u8> = batch.slices().flatten().copied().collect();
    assert!(ciphertext.len() > queued, "records add their overhead");
    let third = ciphertext.len() / 3;
    assert_eq!(tls.handle_sent(third), 0);
    assert_eq!(conn.queued(), queued);
    assert!(tls.poll_transmit(&conn, &mut batch, &mut scratch));
    assert_eq!(
        batch.len,
        ciphertext.len() - third,
        "the rest, not a new encryption"
    );
    assert_eq!(tls.handle_sent(third), 0);
    assert_eq!(tls.handle_sent(ciphertext.len() - 2 * third), queued);
    conn.handle_sent(queued);
    assert!(!conn.has_output() && !tls.wants_send());
    client.read_tls(&mut &ciphertext[..]).unwrap();
    client.process_new_packets().unwrap();
    let mut response = vec![0; queued];
    client.reader().read_exact(&mut response).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 101"));
}

#[test]
fn garbage_instead_of_a_client_hello_is_an_error_not_a_spin() {
    let mut tls = server();
    let mut plain = Vec::new();
    let junk = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(tls.read_ciphertext(junk, &mut plain).is_err());
}
