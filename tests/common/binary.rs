//! The `framecast` binary as a child process: started with flags (and optionally an open-files
//! limit), its stderr read on a thread, its address taken from the "framecast listening" line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Log lines kept for assertions (the rest are only counted).
const KEPT_LINES: usize = 1000;

/// A running `framecast` with its log.
pub struct ServerProcess {
    child: Child,
    lines_rx: Receiver<String>,
    /// Lines read so far (the first [`KEPT_LINES`]).
    pub lines: Vec<String>,
    /// Every line read so far, kept or not.
    pub line_count: usize,
}

/// `framecast` with `args` and, if given, RLIMIT_NOFILE set to `nofile` = (soft, hard).
pub fn command(args: &[&str], nofile: Option<(u64, u64)>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framecast"));
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null());
    if let Some((soft, hard)) = nofile {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: the closure runs in the forked child before exec and only calls setrlimit,
        // which is async-signal-safe, on a struct it owns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    cmd
}

impl ServerProcess {
    /// Spawns `cmd` with stderr piped and a thread forwarding its lines.
    pub fn spawn(mut cmd: Command) -> ServerProcess {
        let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn framecast");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        ServerProcess {
            child,
            lines_rx,
            lines: Vec::new(),
            line_count: 0,
        }
    }

    /// Starts `framecast` on an ephemeral loopback port and waits until it listens.
    pub fn start(args: &[&str], nofile: Option<(u64, u64)>) -> (ServerProcess, SocketAddr) {
        let mut all = vec!["--listen", "127.0.0.1:0", "--log-level", "info"];
        all.extend_from_slice(args);
        let mut server = ServerProcess::spawn(command(&all, nofile));
        let line = server
            .wait_for_line(Duration::from_secs(20), |l| {
                l.contains("framecast listening")
            })
            .unwrap_or_else(|| panic!("server did not start: {:?}", server.lines));
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .expect("addr= in the listening line")
            .parse()
            .unwrap();
        (server, addr)
    }

    fn take(&mut self, line: String) {
        self.line_count += 1;
        if self.lines.len() < KEPT_LINES {
            self.lines.push(line);
        }
    }

    /// Reads lines until one matches (returned) or `timeout` passes (`None`).
    pub fn wait_for_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        if let Some(l) = self.lines.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines_rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = pred(&line);
                    self.take(line.clone());
                    if hit {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Takes in every line written so far.
    pub fn read_available(&mut self) {
        while let Ok(line) = self.lines_rx.try_recv() {
            self.take(line);
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread ends at EOF; give it the rest of the log.
                while let Ok(line) = self.lines_rx.recv_timeout(Duration::from_secs(5)) {
                    self.take(line);
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        // SAFETY: kill takes no pointers; the pid is our own child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
