//! The `framecast` binary: flags, environment and TOML file → [`framecast::Config`], logging,
//! then run a [`framecast::Server`] until SIGINT/SIGTERM and shut it down gracefully.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

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
    // Every configuration key as `--<key>` / `FRAMECAST_<KEY>`, from the library's key table.
    #[command(flatten)]
    keys: framecast::config::KeyFlags,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, env = "FRAMECAST_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format: text or json.
    #[arg(long, env = "FRAMECAST_LOG_FORMAT", default_value = "text")]
    log_format: String,
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
    let nofile = framecast::internals::driver::fd_limit::raise_soft_to_hard();
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
    cli.keys.apply(&mut config)?;
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing signal handlers")?;
    let server = framecast::Server::new(config).start()?;
    for signal in signals.forever() {
        if signal != SIGHUP {
            tracing::info!(signal, "shutting down");
            break;
        }
        match server.reload_tls() {
            Ok(true) => tracing::info!("SIGHUP: TLS certificate reloaded; new connections get it"),
            Ok(false) => tracing::info!("SIGHUP: nothing to reload (no tls_cert_file)"),
            Err(error) => {
                tracing::error!(%error, "SIGHUP: TLS reload failed; the old certificate stays")
            }
        }
    }
    server.shutdown();
    Ok(())
}
