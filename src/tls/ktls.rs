//! Whether this host's kernel can take over a TLS session (kernel TLS, `CONFIG_TLS`): probed
//! once at start on a loopback socket pair with `setsockopt(TCP_ULP, "tls")`. Where it cannot,
//! framecast encrypts in userspace and says so in one log line.

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// Whether the kernel TLS module answers on this host; `Err` says why not.
pub(crate) fn probe() -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("probe socket: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let client = TcpStream::connect(addr).map_err(|e| format!("probe connect: {e}"))?;
    let (_server, _) = listener
        .accept()
        .map_err(|e| format!("probe accept: {e}"))?;
    let ulp = b"tls";
    // SAFETY: `client` owns the descriptor for the whole call; the option value is a valid
    // buffer of `ulp.len()` bytes that outlives it.
    let rc = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_ULP,
            ulp.as_ptr().cast(),
            ulp.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    Err(match e.raw_os_error() {
        Some(libc::ENOENT) => {
            format!("setsockopt(TCP_ULP, \"tls\"): {e}: the kernel has no TLS module (CONFIG_TLS)")
        }
        _ => format!("setsockopt(TCP_ULP, \"tls\"): {e}"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_probe_answers_either_way_and_says_why_not() {
        match super::probe() {
            Ok(()) => {}
            Err(why) => assert!(why.contains("TCP_ULP"), "{why}"),
        }
    }
}
