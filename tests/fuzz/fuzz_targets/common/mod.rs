//! Shared by the fuzz targets: the server's default limits, a policy with a JWT secret and a few
//! namespaces, an embedded server (the only public way to get an `Ingress`), and JSON checks.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use framecast::internals::auth::Policy;
use framecast::internals::conn::ConnSettings;
use framecast::internals::distributor::Ingress;
use framecast::internals::protocol::handshake::Routes;
use framecast::internals::status::ServerState;
use framecast::{Config, IoBackend, Server, ServerHandle};

/// The configured default: 64 KiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// HS256 secret of the fuzzing policy; make_corpus.py signs its seed tokens with it.
pub const JWT_SECRET: &str = "fuzz-secret-0123456789abcdef";

/// Configuration the embedded server and the policies are built from.
pub const CONFIG_TOML: &str = r#"
jwt_secret = "fuzz-secret-0123456789abcdef"
allow_anonymous = true
echo_path = "/echo"
[namespaces.rate]
publish_rate = 5
[namespaces.priv]
subscribe = "token"
[namespaces.auth]
subscribe = "authenticated"
[namespaces.session]
echo = false
[namespaces.ro]
publish = false
[namespaces.pos]
delivery = "conflated"
"#;

/// The server's connection settings with every default of `Config::default()` (and `/echo`).
pub fn settings() -> ConnSettings {
    let c = Config::default();
    ConnSettings {
        max_message_bytes: c.max_message_bytes,
        max_queued_bytes: c.max_queued_bytes,
        ping_interval: c.ping_interval,
        pong_timeout: c.pong_timeout,
        handshake_timeout: c.handshake_timeout,
        routes: Routes {
            ws_path: "/ws".into(),
            echo_path: Some("/echo".into()),
            max_body: c.max_http_body_bytes,
            deflate: c.compression,
        },
    }
}

pub fn config(anonymous: bool) -> Config {
    let mut c = Config::default();
    c.apply_toml(CONFIG_TOML, "fuzz")
        .expect("fuzz config parses");
    c.allow_anonymous = Some(anonymous);
    c
}

/// What the targets take from one embedded server, started once per process.
pub struct Embedded {
    pub ingress: Ingress,
    pub state: Arc<ServerState>,
    /// Anonymous connections allowed (the default without a key).
    pub open: Policy,
    /// A token is required (`allow_anonymous = false`).
    pub strict: Policy,
    /// The server, kept (reachable, so LeakSanitizer is quiet) and never dropped.
    _server: Keep,
}

/// Holds the handle only so it lives as long as the process; nothing ever reads it.
struct Keep(#[allow(dead_code)] ServerHandle);
// SAFETY: the handle is never accessed through a shared reference (not even dropped: statics
// are not), so sharing `Keep` between threads can cause no data race.
unsafe impl Sync for Keep {}

/// `Ingress::new` is `pub(crate)`: the only public way to get one is a running server. One
/// epoll shard on an ephemeral loopback port, no built-in channels, never shut down (its
/// handle is kept for the life of the process), so its distributor keeps draining what the targets publish.
pub fn embedded() -> &'static Embedded {
    static E: OnceLock<Embedded> = OnceLock::new();
    E.get_or_init(|| {
        let mut c = config(true);
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.shards = 1;
        c.io = IoBackend::Epoll;
        c.pin_cores = false;
        c.status_interval = Duration::ZERO;
        c.heartbeat_interval = Duration::ZERO;
        let handle = Server::new(c).start().expect("embedded server starts");
        Embedded {
            ingress: handle.ingress(),
            state: handle.state(),
            _server: Keep(handle),
            open: Policy::from_config(&config(true)).unwrap(),
            strict: Policy::from_config(&config(false)).unwrap(),
        }
    })
}

/// Panics unless `bytes` is one valid JSON text (what every subscriber's parser must accept).
pub fn assert_json(what: &str, bytes: &[u8]) {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        panic!(
            "{what} is not valid JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
    }
}

/// Splits one complete unmasked server frame into (opcode, payload); panics if malformed.
pub fn server_frame_parts(frame: &[u8]) -> (u8, &[u8]) {
    assert!(frame.len() >= 2, "server frame shorter than a header");
    assert_eq!(
        frame[0] & 0xF0,
        0x80,
        "server frame not FIN or with RSV bits"
    );
    assert_eq!(frame[1] & 0x80, 0, "server frame is masked");
    let (len, head) = match frame[1] & 0x7F {
        126 => (u16::from_be_bytes([frame[2], frame[3]]) as usize, 4),
        127 => (
            u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    assert_eq!(head + len, frame.len(), "server frame length mismatch");
    (frame[0] & 0x0F, &frame[head..])
}

/// Checks a server reply frame: a final text frame whose payload is a JSON object.
pub fn assert_text_json_frame(what: &str, frame: &[u8]) {
    let (op, payload) = server_frame_parts(frame);
    assert_eq!(op, 1, "{what}: not a text frame");
    assert_json(what, payload);
}

/// xorshift64*: reproducible pseudo-random read sizes from the input's first byte.
pub struct Rng(u64);
impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Chunk lengths for the stream: a mix of tiny reads (splitting headers) and big ones.
pub fn chunking(mode: u8, len: usize) -> (Vec<usize>, usize) {
    if mode == 0 {
        return (vec![len], len.max(1));
    }
    let max_chunk = if mode & 0x80 != 0 { 64 * 1024 } else { 4096 };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (u64::from(mode) << 32) ^ len as u64);
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        let r = rng.next();
        let n = match r % 4 {
            0 => 1 + (r >> 8) as usize % 3,
            1 => 1 + (r >> 8) as usize % 20,
            _ => 1 + (r >> 8) as usize % max_chunk,
        }
        .min(left);
        out.push(n);
        left -= n;
    }
    (out, max_chunk)
}
