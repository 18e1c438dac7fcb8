//! The one declaration of every configuration key: name, type, default, parser (which is the
//! validation of a single value), documentation. Everything else — the [`Config`] fields, their
//! defaults, [`Config::set`] (used by the TOML file, the environment and the flags), the flags
//! and their `--help` text, and the tables in README.md and tuning/config.md — is derived from
//! it. Rules that involve several keys live in `check.rs`.
//!
//! A `default` written as text is parsed like a configured value; a default given as an
//! expression carries the words the docs show instead (`=> "number of cores"`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::schema::declare_keys;
use super::values::{self, parse_bool_flag, parse_bytes, parse_duration, parse_number};
use super::{ClusterConfig, IoBackend, Namespaces};

declare_keys! {
    listen: SocketAddr {
        default: "127.0.0.1:8080",
        parse: values::address,
        doc: "address every shard listens on (`SO_REUSEPORT`); port 0 picks one",
        tuning: "address of every shard's `SO_REUSEPORT` listener; WebSocket at `/ws`, HTTP API on other paths",
    }
    shards: usize {
        default: values::available_cores() => "number of cores",
        parse: |v| parse_number(v, 1, 1024),
        doc: "shard threads, pinned round-robin to cores",
        tuning: "shard threads; shard k is pinned to the k-th allowed core",
    }
    io: IoBackend {
        default: "auto",
        parse: values::backend,
        doc: "`auto` (io_uring, else epoll with a warning), `uring` (fail if unavailable), `epoll`",
        tuning: "`auto` (io_uring, else epoll with a warning), `uring`, `epoll`",
    }
    tick_hz: u32 {
        default: "60",
        parse: |v| parse_number(v, 0, 10_000),
        doc: "frame clock rate; `0` is immediate mode (events go out as they arrive, batching what is queued)",
        tuning: "frame clock; every subscriber with new events gets one send per tick (fewer when the shard is saturated: then connections are served round-robin, at most 256 sends per loop turn, each send carrying everything queued). `0` = immediate mode",
    }
    max_message_bytes: usize {
        default: "65536",
        parse: |v| parse_bytes(v, 125, 1 << 30),
        doc: "largest client message after reassembly (`64KiB` style sizes accepted); bigger closes with 1009",
        tuning: "largest client message; also the most a connection buffers for one incoming message",
    }
    max_queued_bytes: usize {
        default: "4194304",
        parse: |v| parse_bytes(v, 1024, 1 << 40),
        doc: "outbound bytes queued per connection; a connection with data waiting that would pass it is closed with 1008 (slow consumer)",
        tuning: "outbound bytes waiting per connection before it is closed as a slow consumer (1008)",
    }
    compression: bool {
        default: "offered",
        parse: values::compression,
        doc: "`offered`: permessage-deflate for clients that offer it (each event compressed once, shared by all of them); `off`: never",
        tuning: "`offered` (permessage-deflate when the client offers it; compressed once per event) or `off`",
    }
    compression_level: u32 {
        default: "2",
        parse: |v| parse_number(v, 1, 9),
        doc: "DEFLATE level for compressed events, 1 (fastest, static codes only: ~0.78 of the size) to 9; 2 and up give ~0.61 for ~8 µs per event (`cargo bench --bench deflate`)",
        tuning: "DEFLATE level, 1 to 9; level 1 uses static Huffman codes only and saves little on short events, 2 is the default, higher levels buy almost nothing (benches/RESULTS.md)",
    }
    tls_cert_file: Option<PathBuf> {
        default: None => "none",
        parse: values::optional_path,
        doc: "PEM certificate chain for `wss://` (leaf first); with `tls_key_file`, the listener speaks TLS only. Read again on SIGHUP",
        tuning: "PEM certificate chain: set with `tls_key_file` to serve `wss://` directly (reloaded on SIGHUP)",
    }
    tls_key_file: Option<PathBuf> {
        default: None => "none",
        parse: values::optional_path,
        doc: "PEM private key (RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or SEC1) of `tls_cert_file`",
        tuning: "PEM private key of `tls_cert_file`",
    }
    tls_kernel: bool {
        default: "auto",
        parse: values::tls_kernel,
        doc: "`auto`: after the handshake, TLS 1.3 sessions go to kernel TLS where the kernel has it (`CONFIG_TLS`), so events are sent by reference and the kernel encrypts them; `off`: rustls encrypts every send in userspace",
        tuning: "`auto` (kernel TLS for TLS 1.3 sessions where the kernel has the `tls` module; one log line says which) or `off`",
    }
    max_connections: usize {
        default: "100000",
        parse: |v| parse_number(v, 1, 100_000_000),
        doc: "connections at once server-wide; beyond, an upgrade gets `reconnect{after_ms}` (1-5 s) and close 1013",
        tuning: "connections at once; beyond, upgrades get a `reconnect` hint and close 1013",
    }
    ping_interval: Duration {
        default: "30s",
        parse: parse_duration,
        doc: "server WebSocket ping period",
        tuning: "WebSocket ping period",
    }
    pong_timeout: Duration {
        default: "10s",
        parse: parse_duration,
        doc: "a ping unanswered this long closes the connection (1008)",
        tuning: "unanswered ping → close 1008",
    }
    handshake_timeout: Duration {
        default: "10s",
        parse: parse_duration,
        doc: "a connection that has not completed its upgrade by then is dropped",
        tuning: "time to complete the upgrade, or an HTTP request; idle keep-alive HTTP connections close after it too",
    }
    drain_timeout: Duration {
        default: "10s",
        parse: parse_duration,
        doc: "how long SIGINT/SIGTERM waits for connections to close after sending 1001",
        tuning: "graceful shutdown window: clients get `reconnect` hints spread over it, then close 1001",
    }
    echo_path: Option<String> {
        default: None => "off",
        parse: values::endpoint_path,
        doc: "path of an echo endpoint for conformance suites (e.g. `/echo` for Autobahn's fuzzingclient)",
        tuning: "echo endpoint for conformance suites",
    }
    pin_cores: bool {
        default: "true",
        parse: parse_bool_flag,
        doc: "pin shard threads to cores",
        tuning: "pin shards to cores",
    }
    api_key: Option<String> {
        default: None => "none",
        parse: values::secret,
        doc: "bearer key (16+ characters) required by `/api/v1/*` and `/metrics`",
        tuning: "bearer key for `/api/v1/*` and `/metrics` (16+ characters)",
    }
    insecure_api: bool {
        default: "false",
        parse: parse_bool_flag,
        flag: switch,
        doc: "allow a non-loopback `listen` without `api_key` (otherwise the start is refused)",
        tuning: "allow a non-loopback `listen` without `api_key`",
    }
    max_http_body_bytes: usize {
        default: "1048576",
        parse: |v| parse_bytes(v, 64, 1 << 30),
        doc: "largest HTTP request body; bigger is 413",
        tuning: "largest HTTP request body (413 beyond)",
    }
    status_interval: Duration {
        default: "5s",
        parse: parse_duration,
        doc: "period of the built-in `system.status` channel (`0` = off)",
        tuning: "`system.status` period (`0` = off)",
    }
    heartbeat_interval: Duration {
        default: "10s",
        parse: parse_duration,
        doc: "period of the built-in `heartbeat` channel (`0` = off)",
        tuning: "`heartbeat` period (`0` = off)",
    }
    default_channels: Vec<String> {
        default: Vec::new() => "none",
        parse: values::channel_list,
        doc: "channels every connection joins on connect, or on its first `auth` (TOML list or comma-separated; reported by a `subscribed` with `\"default\":true`)",
        tuning: "channels joined on connect",
    }
    welcome: Option<String> {
        default: None => "none",
        parse: values::optional_text,
        doc: "text of a `notification` sent right after `connected`",
        tuning: "notification text sent after `connected`",
    }
    jwt_secret: Option<String> {
        default: None => "none",
        parse: values::secret,
        doc: "HS256 secret for client tokens (16+ characters)",
        tuning: "HS256 secret for client tokens",
    }
    jwt_public_key_file: Option<PathBuf> {
        default: None => "none",
        parse: values::optional_path,
        doc: "PEM public key for RS256 (RSA) or ES256 (EC P-256) tokens",
        tuning: "PEM public key (RS256 / ES256)",
    }
    allow_anonymous: Option<bool> {
        default: None => "true without a key, else false",
        parse: values::explicit_bool,
        doc: "connections without a token",
        tuning: "connections without a token",
    }
    auth_timeout: Duration {
        default: "5s",
        parse: parse_duration,
        doc: "time to send `{\"type\":\"auth\"}` when a token is required",
        tuning: "time for the `auth` message when a token is required",
    }
    allowed_origins: Vec<String> {
        default: Vec::new() => "any",
        parse: values::origin_list,
        doc: "browser origins allowed to connect (others: HTTP 403)",
        tuning: "browser origins allowed (others: 403)",
    }
    cors_origins: Vec<String> {
        default: Vec::new() => "none",
        parse: values::cors_origin_list,
        doc: "browser origins that may call the HTTP API (CORS; `*` = any; see docs/http-api.md)",
        tuning: "browser origins that may call the HTTP API (`*` = any)",
    }
    max_subscriptions: usize {
        default: "1000",
        parse: |v| parse_number(v, 1, 1_000_000),
        doc: "subscriptions per connection (`LIMIT_EXCEEDED` beyond)",
        tuning: "subscriptions per connection",
    }
    max_channels: usize {
        default: "100000",
        // Bounded by the registry's hard cap: a larger value would be capped silently.
        parse: |v| parse_number(v, 1, crate::limits::MAX_CHANNELS as u64),
        doc: "channels clients may create server-wide (`LIMIT_EXCEEDED` beyond; at most 1,000,000)",
        tuning: "channels clients may create server-wide",
    }
    ;
    /// `[namespaces.NAME]` tables (TOML file only; they keep their own shape, see
    /// `namespaces.rs`).
    namespaces: Namespaces = Namespaces::default(),
    /// The `[cluster]` table (TOML file only, see `cluster.rs`); `None`: single-node mode.
    cluster: Option<ClusterConfig> = None,
    /// The TOML file this configuration was read from, if any (for the startup line).
    config_file: Option<PathBuf> = None,
}
