//! The `framecast` binary: flags, environment and TOML file → [`framecast::Config`], logging,
//! then run a [`framecast::Server`] until SIGINT/SIGTERM and shut it down gracefully.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 in mimalloc v2's `mi_option_t`, between
/// `eager_commit_delay` = 14 and `use_numa_nodes` = 16, which libmimalloc-sys exports).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Return freed pages to the OS at once instead of 10 ms later. mimalloc runs delayed purges
/// only on later allocator activity, so an idle shard kept its handshake garbage resident:
/// measured with 19000 idle connections, 1.24 KB → 0.84 KB RSS per connection, and no
/// measurable CPU change at 1M deliveries/s (see benches/RESULTS.md).
fn tune_allocator() {
    // SAFETY: mi_option_set/get only write and read an integer in mimalloc's option table;
    // both are safe to call at any time from any thread.
    let delay = unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
    };
    debug_assert_eq!(delay, 0, "mimalloc option index changed");
}

/// Keep the heap in 4 KiB pages. mimalloc marks its whole 1 GiB arena `MADV_HUGEPAGE`, so with
/// THP in `madvise` (or `always`) mode every 2 MiB region it touches becomes resident in full,
/// and a heap of small per-connection records scattered over it is charged whole huge pages:
/// with 19000 idle connections 0.94 → 0.64 KB RSS per connection and a 14.6 → 9.0 MB baseline
/// (benches/RESULTS.md). Failing (a kernel without it) only costs that memory.
fn opt_out_of_huge_pages() -> std::io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes a flag of this
    // process's memory descriptor; no memory is read or written through the arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Real-time WebSocket event-streaming server. Every key can also be set in the TOML file given
/// with --config and as a FRAMECAST_* environment variable; flags win over the environment,
/// which wins over the file.
#[derive(Debug, Parser)]
#[command(name = "framecast", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (keys as below, e.g. `tick_hz = 60`).
    #[arg(long, env = "FRAMECAST_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "FRAMECAST_LISTEN")]
    listen: Option<String>,
    /// Number of shards (threads pinned to cores) [default: number of cores].
    #[arg(long, env = "FRAMECAST_SHARDS")]
    shards: Option<String>,
    /// I/O backend: auto, uring or epoll [default: auto].
    #[arg(long, env = "FRAMECAST_IO")]
    io: Option<String>,
    /// Frame clock ticks per second; 0 sends every event at once [default: 60].
    #[arg(long, env = "FRAMECAST_TICK_HZ")]
    tick_hz: Option<String>,
    /// Largest client message, e.g. 65536 or 64KiB; bigger closes with 1009 [default: 64KiB].
    #[arg(long, env = "FRAMECAST_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<String>,
    /// Outbound bytes queued per connection before it is closed as slow (1008) [default: 4MiB].
    #[arg(long, env = "FRAMECAST_MAX_QUEUED_BYTES")]
    max_queued_bytes: Option<String>,
    /// Connections at once; beyond, upgrades get HTTP 503 [default: 100000].
    #[arg(long, env = "FRAMECAST_MAX_CONNECTIONS")]
    max_connections: Option<String>,
    /// Server ping period, e.g. 30s [default: 30s].
    #[arg(long, env = "FRAMECAST_PING_INTERVAL")]
    ping_interval: Option<String>,
    /// Time for a pong before the connection is closed [default: 10s].
    #[arg(long, env = "FRAMECAST_PONG_TIMEOUT")]
    pong_timeout: Option<String>,
    /// Time for the HTTP upgrade of a new connection [default: 10s].
    #[arg(long, env = "FRAMECAST_HANDSHAKE_TIMEOUT")]
    handshake_timeout: Option<String>,
    /// Time a graceful shutdown waits for connections to close [default: 10s].
    #[arg(long, env = "FRAMECAST_DRAIN_TIMEOUT")]
    drain_timeout: Option<String>,
    /// Serve an echo endpoint at this path for conformance suites [default: off].
    #[arg(long, env = "FRAMECAST_ECHO_PATH")]
    echo_path: Option<String>,
    /// Pin shard threads to cores: true or false [default: true].
    #[arg(long, env = "FRAMECAST_PIN_CORES")]
    pin_cores: Option<String>,
    /// Bearer key required by /api/v1/* and /metrics (16+ characters) [default: none].
    #[arg(long, env = "FRAMECAST_API_KEY")]
    api_key: Option<String>,
    /// Serve the HTTP API on a non-loopback address without an api_key: true or false.
    #[arg(long, env = "FRAMECAST_INSECURE_API", num_args = 0..=1, default_missing_value = "true")]
    insecure_api: Option<String>,
    /// Largest HTTP request body; bigger is 413 [default: 1MiB].
    #[arg(long, env = "FRAMECAST_MAX_HTTP_BODY_BYTES")]
    max_http_body_bytes: Option<String>,
    /// Period of the built-in system.status channel; 0 disables it [default: 5s].
    #[arg(long, env = "FRAMECAST_STATUS_INTERVAL")]
    status_interval: Option<String>,
    /// Period of the built-in heartbeat channel; 0 disables it [default: 10s].
    #[arg(long, env = "FRAMECAST_HEARTBEAT_INTERVAL")]
    heartbeat_interval: Option<String>,
    /// Comma-separated channels every connection is subscribed to on connect [default: none].
    #[arg(long, env = "FRAMECAST_DEFAULT_CHANNELS")]
    default_channels: Option<String>,
    /// Text of a welcome notification sent after `connected` [default: none].
    #[arg(long, env = "FRAMECAST_WELCOME")]
    welcome: Option<String>,
    /// HS256 secret for client JWTs (16+ characters) [default: none].
    #[arg(long, env = "FRAMECAST_JWT_SECRET")]
    jwt_secret: Option<String>,
    /// PEM public key file for RS256/ES256 client JWTs [default: none].
    #[arg(long, env = "FRAMECAST_JWT_PUBLIC_KEY_FILE")]
    jwt_public_key_file: Option<String>,
    /// Allow connections without a token: true or false [default: true only without a key].
    #[arg(long, env = "FRAMECAST_ALLOW_ANONYMOUS")]
    allow_anonymous: Option<String>,
    /// Time to send {"type":"auth"} when a token is required [default: 5s].
    #[arg(long, env = "FRAMECAST_AUTH_TIMEOUT")]
    auth_timeout: Option<String>,
    /// Comma-separated browser origins allowed to connect [default: any].
    #[arg(long, env = "FRAMECAST_ALLOWED_ORIGINS")]
    allowed_origins: Option<String>,
    /// Comma-separated browser origins that may call the HTTP API (CORS; * = any) [default: none].
    #[arg(long, env = "FRAMECAST_CORS_ORIGINS")]
    cors_origins: Option<String>,
    /// Subscriptions per connection [default: 1000].
    #[arg(long, env = "FRAMECAST_MAX_SUBSCRIPTIONS")]
    max_subscriptions: Option<String>,
    /// Channels server-wide that clients may create by subscribing [default: 100000].
    #[arg(long, env = "FRAMECAST_MAX_CHANNELS")]
    max_channels: Option<String>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, env = "FRAMECAST_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format: text or json.
    #[arg(long, env = "FRAMECAST_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

impl Cli {
    fn overrides(&self) -> [(&'static str, &Option<String>); 28] {
        [
            ("listen", &self.listen),
            ("shards", &self.shards),
            ("io", &self.io),
            ("tick_hz", &self.tick_hz),
            ("max_message_bytes", &self.max_message_bytes),
            ("max_queued_bytes", &self.max_queued_bytes),
            ("max_connections", &self.max_connections),
            ("ping_interval", &self.ping_interval),
            ("pong_timeout", &self.pong_timeout),
            ("handshake_timeout", &self.handshake_timeout),
            ("drain_timeout", &self.drain_timeout),
            ("echo_path", &self.echo_path),
            ("pin_cores", &self.pin_cores),
            ("api_key", &self.api_key),
            ("insecure_api", &self.insecure_api),
            ("max_http_body_bytes", &self.max_http_body_bytes),
            ("status_interval", &self.status_interval),
            ("heartbeat_interval", &self.heartbeat_interval),
            ("default_channels", &self.default_channels),
            ("welcome", &self.welcome),
            ("jwt_secret", &self.jwt_secret),
            ("jwt_public_key_file", &self.jwt_public_key_file),
            ("allow_anonymous", &self.allow_anonymous),
            ("auth_timeout", &self.auth_timeout),
            ("allowed_origins", &self.allowed_origins),
            ("cors_origins", &self.cors_origins),
            ("max_subscriptions", &self.max_subscriptions),
            ("max_channels", &self.max_channels),
        ]
    }
}

fn init_logging(level: &str, format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("invalid value for `log_level`: `{level}`"))?;
    // Colours only for a terminal: journald, files and pipes get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        "text" => builder.init(),
        "json" => builder.json().init(),
        other => anyhow::bail!("invalid value for `log_format`: `{other}` is not text or json"),
    }
    Ok(())
}

/// Exit with the error's whole chain on one line and status 1: never a backtrace, whatever
/// `RUST_BACKTRACE` says (a configuration mistake is not a crash).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("framecast: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tune_allocator();
    let huge_pages = opt_out_of_huge_pages();
    // Each connection is a descriptor: allow as many as the hard limit lets us (the startup
    // line reports how many connections that makes, as `fd_connections`).
    let nofile = framecast::driver::fd_limit::raise_soft_to_hard();
    let cli = Cli::parse();
    init_logging(&cli.log_level, &cli.log_format)?;
    if let Err(error) = huge_pages {
        tracing::warn!(%error, "could not opt out of transparent huge pages; RSS may be higher");
    }
    match nofile {
        Ok(limit) => tracing::debug!(soft = limit.soft, hard = limit.hard, "open-files limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-files limit"),
    }
    let mut config = framecast::Config::default();
    if let Some(path) = &cli.config {
        config.apply_file(path)?;
    }
    for (key, value) in cli.overrides() {
        if let Some(value) = value {
            config.set(key, value)?;
        }
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    let server = framecast::Server::new(config).start()?;
    if let Some(signal) = signals.forever().next() {
        tracing::info!(signal, "shutting down");
    }
    server.shutdown();
    Ok(())
}
