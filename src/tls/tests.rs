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

use super::{CertStore, Goodbye, KernelSupport, TlsSession};
use crate::conn::{Admission, AppEvent, Conn, SendBatch};
use crate::testing::{settings, UPGRADE};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn client() -> ClientConnection {
    client_of(rustls::DEFAULT_VERSIONS)
}

fn client_of(versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConnection {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    ClientConnection::new(Arc::new(config), name).unwrap()
}

fn server() -> TlsSession {
    server_with(KernelSupport::NONE)
}

/// A session that goes to the kernel after its handshake where `kernel` takes its cipher.
fn server_with(kernel: KernelSupport) -> TlsSession {
    let store = CertStore::load(
        &fixture("server-ecdsa.pem"),
        &fixture("server-ecdsa.key"),
        kernel,
    )
    .unwrap();
    TlsSession::new(store.current(), kernel).unwrap()
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
        assert!(tls.read_ciphertext(&mut hello, &mut plain).unwrap());
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
    assert!(tls.read_ciphertext(&mut record, &mut plain).unwrap());
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
    assert!(tls.read_ciphertext(&mut junk.to_vec(), &mut plain).is_err());
    let mut tls = server_with(KernelSupport::ALL);
    assert!(tls.read_ciphertext(&mut junk.to_vec(), &mut plain).is_err());
}

/// The client's upgrade through the session, and the 101 back (in userspace).
fn upgrade(client: &mut ClientConnection, tls: &mut TlsSession, conn: &mut Conn) {
    let now = Instant::now();
    let settings = settings(1 << 20);
    client.writer().write_all(UPGRADE).unwrap();
    let mut record = Vec::new();
    client.write_tls(&mut record).unwrap();
    let mut plain = Vec::new();
    // One byte at a time: the session cuts records itself.
    for byte in record.chunks_mut(1) {
        assert!(tls.read_ciphertext(byte, &mut plain).unwrap());
    }
    conn.handle_input(&mut plain, now, &settings, &mut |_, _: AppEvent<'_>| {});
    let answer = flush(tls, conn);
    client.read_tls(&mut &answer[..]).unwrap();
    client.process_new_packets().unwrap();
    let mut response = vec![0; 4096];
    let n = client.reader().read(&mut response).unwrap();
    assert!(response[..n].starts_with(b"HTTP/1.1 101"));
    assert!(response[..n].ends_with(b"\r\n\r\n"), "all of it read");
}

#[test]
fn after_the_handshake_a_tls13_session_goes_to_the_kernel_with_keys_the_client_accepts() {
    let now = Instant::now();
    let settings = settings(1 << 20);
    let mut conn = Conn::new(now, &settings, Admission::Admit);
    let (mut client, mut tls) = (client(), server_with(KernelSupport::ALL));
    handshake(&mut client, &mut tls, &mut conn);
    upgrade(&mut client, &mut tls, &mut conn);
    assert!(tls.can_hand_over());
    let mut handed = None;
    tls.hand_over(|secrets, seq| {
        handed = Some(super::record_open::seal(
            secrets,
            seq,
            23,
            b"sealed by the kernel",
            0,
        ));
        Ok(())
    })
    .unwrap();
    assert!(tls.is_kernel() && !tls.can_hand_over() && !tls.wants_send());
    // What "the kernel" seals with the handed key and sequence, the client reads.
    client.read_tls(&mut &handed.unwrap()[..]).unwrap();
    client.process_new_packets().unwrap();
    let mut got = vec![0; 20];
    client.reader().read_exact(&mut got).unwrap();
    assert_eq!(got, b"sealed by the kernel");
    // The client's records are opened here, however the reads cut them.
    let frame = [0x81u8, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    client.writer().write_all(&frame).unwrap();
    client.writer().write_all(&frame).unwrap();
    let mut records = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut records).unwrap();
    }
    let mut plain = Vec::new();
    let (a, b) = records.split_at_mut(7);
    assert!(tls.read_ciphertext(a, &mut plain).unwrap());
    assert!(tls.read_ciphertext(b, &mut plain).unwrap());
    assert_eq!(plain, [frame, frame].concat());
    // Sends are the connection's own bytes, counted as written as they go.
    conn.handle_input(&mut plain, now, &settings, &mut |_, _: AppEvent<'_>| {});
    let mut batch = SendBatch::default();
    let mut scratch = Vec::new();
    let queued = conn.queued();
    if queued > 0 {
        assert!(tls.poll_transmit(&conn, &mut batch, &mut scratch));
        assert_eq!(batch.len, queued);
        assert_eq!(tls.handle_sent(batch.len), queued);
    }
    // Goodbyes: ours through the kernel, the client's ends input.
    assert_eq!(tls.close_notify(), Goodbye::ByKernel);
    assert_eq!(tls.close_notify(), Goodbye::Said);
    client.send_close_notify();
    let mut alert = Vec::new();
    client.write_tls(&mut alert).unwrap();
    assert!(!tls.read_ciphertext(&mut alert, &mut plain).unwrap());
}

/// A connection, a client, and a session that can go to the kernel, past their handshake.
fn ready_for_the_kernel() -> (Conn, ClientConnection, TlsSession) {
    let settings = settings(1 << 20);
    let mut conn = Conn::new(Instant::now(), &settings, Admission::Admit);
    let (mut client, mut tls) = (client(), server_with(KernelSupport::ALL));
    handshake(&mut client, &mut tls, &mut conn);
    assert!(tls.can_hand_over());
    (conn, client, tls)
}

#[test]
fn near_the_ciphers_record_limit_a_kernel_session_asks_to_close() {
    let (_conn, _client, mut tls) = ready_for_the_kernel();
    tls.hand_over(|_, _| Ok(())).unwrap();
    tls.set_record_limit(80);
    assert!(!tls.key_exhausted());
    for _ in 0..70 {
        tls.handle_sent(100);
    }
    assert!(
        tls.key_exhausted(),
        "70 of 80 records leaves less than an eighth"
    );
}

#[test]
fn a_failed_handover_loses_the_session_instead_of_sending_in_the_clear() {
    let (conn, _client, mut tls) = ready_for_the_kernel();
    let failed = tls.hand_over(|_, _| Err(std::io::Error::other("ENOMEM")));
    assert!(failed.unwrap_err().to_string().contains("ENOMEM"));
    let mut batch = SendBatch::default();
    assert!(!tls.poll_transmit(&conn, &mut batch, &mut Vec::new()));
    assert!(tls
        .read_ciphertext(&mut [23, 3, 3, 0, 1, 0], &mut Vec::new())
        .is_err());
}

#[test]
fn tls12_sessions_and_hosts_without_kernel_tls_stay_in_userspace() {
    let now = Instant::now();
    let settings = settings(1 << 20);
    for (mut client, mut tls) in [
        (
            client_of(&[&rustls::version::TLS12]),
            server_with(KernelSupport::ALL),
        ),
        (client(), server()),
    ] {
        let mut conn = Conn::new(now, &settings, Admission::Admit);
        handshake(&mut client, &mut tls, &mut conn);
        upgrade(&mut client, &mut tls, &mut conn);
        assert!(!tls.can_hand_over() && !tls.is_kernel());
    }
}
