//! Cluster mode as a user runs it: a real `nats-server` with JetStream (killed with -9 and
//! restarted on the same port and store), `framecast` nodes started from generated config
//! files, a plain HTTP/1.1 client for `/readyz`, `/api/v1/status` and `/api/v1/broadcast`, and a
//! WebSocket client whose socket is read on its own task (so a test never turns a subscriber
//! into a slow consumer) and whose messages are taken by what the test waits for.
//!
//! Everything that waits does so for a condition with a deadline, never for a fixed time.
#![allow(clippy::disallowed_methods)] // tests read the clock

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::binary::ServerProcess;
use super::Ws;

/// How long a node may take to answer `/readyz` with 200 (boot, replay, broker reconnects).
pub const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long one awaited WebSocket message may take on a loaded host.
pub const MSG_DEADLINE: Duration = Duration::from_secs(15);
/// How long one HTTP exchange may take.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------------

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "framecast-cluster-{}-{what}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs blocking work (process start/stop, waits on pipes) without stalling the runtime's
/// other tasks (subscriber readers, publishers).
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

// ---------------------------------------------------------------------------------------------
// nats-server
// ---------------------------------------------------------------------------------------------

/// Where `nats-server` is: on `PATH`, or in the sbin folders Debian's package uses (often not
/// on a non-root `PATH`).
fn nats_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// The `nats-server` binary, or `None` when the cluster tests are to be skipped (said once per
/// test binary on the real stderr). Panics instead when `FRAMECAST_REQUIRE_NATS=1`.
pub fn nats_or_skip() -> Option<PathBuf> {
    static SAID: std::sync::Once = std::sync::Once::new();
    if let Some(bin) = nats_binary() {
        return Some(bin);
    }
    if std::env::var("FRAMECAST_REQUIRE_NATS").as_deref() == Ok("1") {
        panic!(
            "FRAMECAST_REQUIRE_NATS=1 but nats-server is not on PATH (nor in /usr/sbin): \
             install it (Debian: apt-get install nats-server)"
        );
    }
    SAID.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "cluster tests skipped: nats-server not found (tests/run-all.sh installs Debian's nats-server)"
        );
    });
    None
}

/// A port free on 127.0.0.1 now, below the kernel's ephemeral range (so no connection or
/// `listen = ":0"` socket of this host takes it while the broker is down between a kill and a
/// restart), and never handed out twice by this test binary.
fn free_port() -> u16 {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    let span = u32::from(high - low);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let start = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(taken.len() as u32 * 104_729)
        % span;
    for i in 0..span {
        let port = low + ((start + i) % span) as u16;
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
    // No free port below the ephemeral range: fall back to one the kernel picks.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A `nats-server -js` child process with its own port and store directory.
pub struct NatsServer {
    bin: PathBuf,
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    starts: usize,
}

impl NatsServer {
    /// Starts a JetStream server on a free loopback port with a fresh store; `None` if
    /// `nats-server` is missing (the test then returns early: see [`nats_or_skip`]).
    pub fn start() -> Option<NatsServer> {
        let mut nats = NatsServer::stopped()?;
        blocking(|| {
            for _ in 0..5 {
                if nats.spawn() {
                    return;
                }
                // The port was taken between choosing and binding it: choose another.
                nats.port = free_port();
            }
            panic!("nats-server did not start: {}", nats.log_tail());
        });
        Some(nats)
    }

    /// A server that is not running yet: its port and store are chosen, [`restart`] starts it.
    ///
    /// [`restart`]: NatsServer::restart
    pub fn stopped() -> Option<NatsServer> {
        let bin = nats_or_skip()?;
        Some(NatsServer {
            bin,
            port: free_port(),
            dir: TempDir::new("nats"),
            child: None,
            starts: 0,
        })
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("nats-{n}.log"))
    }

    /// The end of the current (or last) run's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// One attempt to spawn the server on `self.port`: true once it accepts clients with
    /// JetStream on, false if it exited (port taken) or did not come up in 15 s.
    fn spawn(&mut self) -> bool {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("nats log file");
        let child = Command::new(&self.bin)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.as_mut().unwrap().try_wait() {
                self.child = None;
                return false;
            }
            if self.accepts_clients() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_child();
        false
    }

    /// Whether a TCP client on the port gets this server's `INFO` line with JetStream on.
    fn accepts_clients(&self) -> bool {
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let Ok(mut s) = StdTcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        while !buf.ends_with(b"\r\n") && buf.len() < 64 * 1024 {
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let line = String::from_utf8_lossy(&buf);
        line.starts_with("INFO ") && line.contains("\"jetstream\":true")
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// `kill -9`: no shutdown, no flush beyond what the store already holds.
    pub fn kill9(&mut self) {
        blocking(|| self.kill_child());
    }

    /// Starts the server again on the same port with the same store (what it committed before
    /// is kept). Retries while the port is still held by the dying process.
    pub fn restart(&mut self) {
        blocking(|| {
            self.kill_child();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if self.spawn() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            panic!(
                "nats-server did not restart on port {}: {}",
                self.port,
                self.log_tail()
            );
        });
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill_child();
    }
}

// ---------------------------------------------------------------------------------------------
// Node configuration
// ---------------------------------------------------------------------------------------------

/// One node's configuration file, as the spec's example: namespaces `chat` (history), `quiet`
/// (`echo = false`, history), `pos` (`snapshot = true`) and a `[cluster]` table.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub node: String,
    pub urls: Vec<String>,
    pub stream: String,
    pub replicas: u32,
    pub storage: String,
    pub commit_timeout: String,
    pub max_pending_bytes: String,
    pub max_lag: u64,
    /// Extra top-level keys (`status_interval = "1s"`), written before the tables.
    pub extra: String,
    /// Replaces the `[namespaces.*]` tables, when set.
    pub namespaces: Option<String>,
    /// Extra `[cluster]` keys (`retained_batches = 5`).
    pub extra_cluster: String,
}

/// The namespaces every test node has unless a test replaces them.
const DEFAULT_NAMESPACES: &str = "[namespaces.chat]
history_size = 1000

[namespaces.quiet]
echo = false
history_size = 1000

[namespaces.pos]
snapshot = true
";

impl NodeConfig {
    pub fn new(node: &str, nats_url: &str) -> NodeConfig {
        NodeConfig {
            node: node.to_string(),
            urls: vec![nats_url.to_string()],
            stream: "fctest".to_string(),
            replicas: 1,
            storage: "file".to_string(),
            commit_timeout: "2s".to_string(),
            max_pending_bytes: "16MiB".to_string(),
            max_lag: 10_000,
            extra: String::new(),
            namespaces: None,
            extra_cluster: String::new(),
        }
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        let urls: Vec<String> = self.urls.iter().map(|u| format!("{u:?}")).collect();
        format!(
            r#"listen = "127.0.0.1:0"
shards = 1
tick_hz = 60
{extra}

{namespaces}
[cluster]
urls = [{urls}]
node = "{node}"
stream = "{stream}"
replicas = {replicas}
storage = "{storage}"
commit_timeout = "{commit_timeout}"
max_pending_bytes = "{max_pending_bytes}"
max_lag = {max_lag}
{extra_cluster}"#,
            extra = self.extra,
            namespaces = self.namespaces.as_deref().unwrap_or(DEFAULT_NAMESPACES),
            extra_cluster = self.extra_cluster,
            urls = urls.join(", "),
            node = self.node,
            stream = self.stream,
            replicas = self.replicas,
            storage = self.storage,
            commit_timeout = self.commit_timeout,
            max_pending_bytes = self.max_pending_bytes,
            max_lag = self.max_lag,
        )
    }

    /// Writes the file into `dir` and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}.toml", self.node));
        std::fs::write(&path, self.toml()).expect("write node config");
        path
    }
}

// ---------------------------------------------------------------------------------------------
// framecast nodes
// ---------------------------------------------------------------------------------------------

/// A `framecast --config FILE` child process in cluster mode. Its address changes on every
/// start (`listen` is port 0); the config file stays the same.
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    config: PathBuf,
    process: Option<ServerProcess>,
    /// Log lines of earlier runs (before a kill), for failure messages.
    past: Vec<String>,
    _dir: TempDir,
}

impl Node {
    /// Starts a node and waits until it listens (not until it is ready: see [`Node::wait_ready`]).
    pub fn start(config: &NodeConfig) -> Node {
        let dir = TempDir::new(&format!("node-{}", config.node));
        let path = config.write(dir.path());
        let (process, addr) = blocking(|| spawn_node(&path));
        Node {
            name: config.node.clone(),
            addr,
            config: path,
            process: Some(process),
            past: Vec::new(),
            _dir: dir,
        }
    }

    /// The child's pid (panics if it is not running).
    pub fn pid(&self) -> i32 {
        self.process.as_ref().expect("node running").pid() as i32
    }

    /// Sends `signal` to the node.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill takes no pointers; the pid is our own child's.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// `kill -9` and wait for the exit.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            // SAFETY: as in `signal`.
            unsafe { libc::kill(p.pid() as i32, libc::SIGKILL) };
            blocking(|| p.wait_exit(Duration::from_secs(15)))
                .unwrap_or_else(|| panic!("node {} survived SIGKILL", self.name));
            self.past.append(&mut p.lines);
        }
    }

    /// Starts the node again from the same config file (killing it first if it runs).
    pub fn restart(&mut self) {
        self.kill9();
        let (process, addr) = blocking(|| spawn_node(&self.config));
        self.process = Some(process);
        self.addr = addr;
    }

    /// The last log lines (this run's, or the last run's), for failure messages.
    pub fn log_tail(&mut self) -> String {
        let lines: &[String] = match self.process.as_mut() {
            Some(p) => {
                p.read_available();
                &p.lines
            }
            None => &self.past,
        };
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `GET /readyz` status (0 when the node does not answer).
    pub async fn readyz(&self) -> u16 {
        try_http(self.addr, "GET", "/readyz", None)
            .await
            .map_or(0, |(status, _)| status)
    }

    /// Waits until `/readyz` answers 200 (the node has replayed the stream and is connected).
    pub async fn wait_ready(&mut self) {
        self.wait_readyz(200, READY_DEADLINE).await;
    }

    /// Waits until `/readyz` answers `want`.
    pub async fn wait_readyz(&mut self, want: u16, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let mut last = 0;
        while tokio::time::Instant::now() < deadline {
            last = self.readyz().await;
            if last == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = try_http(self.addr, "GET", "/api/v1/status", None).await;
        let log = self.log_tail();
        panic!(
            "node {}: /readyz still {last} (want {want}) after {within:?}; status: {status:?}\nlog:\n{}",
            self.name,
            log
        );
    }

    /// `GET path` → (status, body as JSON, `Null` if it is not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = http(self.addr, "GET", path, None).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// `GET /api/v1/status` (must answer 200).
    pub async fn status(&self) -> Value {
        let (code, body) = self.get("/api/v1/status").await;
        assert_eq!(code, 200, "node {} /api/v1/status: {body}", self.name);
        body
    }

    /// `POST /api/v1/broadcast` of `data` (raw JSON text) to `channel`, with `key` if given.
    pub async fn broadcast(&self, channel: &str, data: &str, key: Option<&str>) -> (u16, Value) {
        let key = key.map_or(String::new(), |k| format!(r#","key":{k:?}"#));
        let body =
            format!(r#"{{"channel":{channel:?},"event_type":"message","data":{data}{key}}}"#);
        let (status, body) = http(self.addr, "POST", "/api/v1/broadcast", Some(&body)).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Broadcasts and requires 202 `published`; returns the event's seq.
    pub async fn broadcast_ok(&self, channel: &str, data: &str, key: Option<&str>) -> u64 {
        let (status, body) = self.broadcast(channel, data, key).await;
        assert_eq!(status, 202, "node {} broadcast {data}: {body}", self.name);
        assert_eq!(body["status"], "published", "{body}");
        assert_eq!(body["channels"], serde_json::json!([channel]), "{body}");
        body["seqs"][0]
            .as_u64()
            .unwrap_or_else(|| panic!("202 without seqs[0]: {body}"))
    }
}

fn spawn_node(config: &Path) -> (ServerProcess, SocketAddr) {
    ServerProcess::start(&["--config", config.to_str().expect("UTF-8 path")], None)
}

/// Starts one node per name on `nats` (default config) and waits until every one is ready.
pub async fn start_cluster(nats: &NatsServer, names: &[&str]) -> Vec<Node> {
    start_cluster_with(names, |name| NodeConfig::new(name, &nats.url())).await
}

/// Starts one node per name with `config(name)` and waits until every one is ready.
pub async fn start_cluster_with(names: &[&str], config: impl Fn(&str) -> NodeConfig) -> Vec<Node> {
    let mut nodes: Vec<Node> = names.iter().map(|n| Node::start(&config(n))).collect();
    for node in &mut nodes {
        node.wait_ready().await;
    }
    nodes
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// One HTTP/1.1 exchange on a fresh connection: (status, body). Errors when the server does
/// not answer within [`HTTP_DEADLINE`].
pub async fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut tmp = [0u8; 8192];
        let eof = || std::io::Error::new(ErrorKind::UnexpectedEof, "response cut short");
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Err(eof());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, head.clone()))?;
        let length = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        });
        let start = head_end + 4;
        match length {
            Some(n) => {
                while buf.len() < start + n {
                    let got = s.read(&mut tmp).await?;
                    if got == 0 {
                        return Err(eof());
                    }
                    buf.extend_from_slice(&tmp[..got]);
                }
                buf.truncate(start + n);
            }
            None => {
                s.read_to_end(&mut buf).await?;
            }
        }
        Ok((status, String::from_utf8_lossy(&buf[start..]).into_owned()))
    };
    tokio::time::timeout(HTTP_DEADLINE, exchange)
        .await
        .map_err(|_| std::io::Error::new(ErrorKind::TimedOut, "no HTTP answer in time"))?
}

/// [`try_http`] that panics on a transport error.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    try_http(addr, method, path, body)
        .await
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// WebSocket clients
// ---------------------------------------------------------------------------------------------

/// A message as received: its exact text and its parsed form.
#[derive(Clone, Debug)]
pub struct Msg {
    pub text: String,
    pub v: Value,
}

impl Msg {
    fn parse(text: String) -> Msg {
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON {text}: {e}"));
        Msg { text, v }
    }

    pub fn kind(&self) -> &str {
        self.v["type"].as_str().unwrap_or("")
    }
}

/// An `event` message, with `data` exactly as the server sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub channel: String,
    pub seq: u64,
    /// The `data` bytes as sent.
    pub data: String,
    pub key: Option<String>,
    pub snapshot: bool,
    /// The whole message as received.
    pub text: String,
}

impl Event {
    pub fn from_msg(m: &Msg) -> Event {
        assert_eq!(m.kind(), "event", "{}", m.text);
        let raw: HashMap<String, Box<RawValue>> =
            serde_json::from_str(&m.text).expect("event fields");
        Event {
            channel: m.v["channel"].as_str().expect("channel").to_string(),
            seq: m.v["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("event without seq: {}", m.text)),
            data: raw
                .get("data")
                .unwrap_or_else(|| panic!("event without data: {}", m.text))
                .get()
                .to_string(),
            key: m.v["key"].as_str().map(str::to_string),
            snapshot: m.v["snapshot"] == true,
            text: m.text.clone(),
        }
    }
}

/// (seq, data) of each event, the list compared across nodes.
pub fn seq_data(events: &[Event]) -> Vec<(u64, String)> {
    events.iter().map(|e| (e.seq, e.data.clone())).collect()
}

/// The seqs of `events`.
pub fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// A WebSocket client: its socket is read continuously by a task; [`Client::take`] hands out
/// the first message matching what the caller waits for and keeps the others, in order.
pub struct Client {
    pub name: String,
    pub hello: Value,
    sink: SplitSink<Ws, Message>,
    rx: mpsc::UnboundedReceiver<String>,
    pending: VecDeque<Msg>,
    reader: tokio::task::JoinHandle<()>,
}

impl Client {
    /// Connects to `node`'s `/ws` and reads `connected`.
    pub async fn connect(node: &Node, name: &str) -> Client {
        Client::connect_addr(node.addr, &format!("{name}@{}", node.name)).await
    }

    pub async fn connect_addr(addr: SocketAddr, name: &str) -> Client {
        let (ws, hello) = super::connect(addr).await;
        let (sink, mut stream) = ws.split();
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let text = match msg {
                    Ok(Message::Text(t)) => t.to_string(),
                    Ok(Message::Binary(b)) => String::from_utf8(b.to_vec()).expect("UTF-8"),
                    Ok(Message::Close(frame)) => {
                        let code = frame.map_or(1005, |f| u16::from(f.code));
                        format!(r#"{{"type":"__closed","code":{code}}}"#)
                    }
                    Ok(_) => continue,
                    Err(e) => format!(r#"{{"type":"__closed","error":{:?}}}"#, e.to_string()),
                };
                if tx.send(text).is_err() {
                    return;
                }
            }
        });
        Client {
            name: name.to_string(),
            hello,
            sink,
            rx,
            pending: VecDeque::new(),
            reader,
        }
    }

    /// Sends `text` as a text message.
    pub async fn send_text(&mut self, text: String) {
        self.sink
            .send(Message::text(text))
            .await
            .unwrap_or_else(|e| panic!("{}: send: {e}", self.name));
    }

    /// `subscribe` to `channels` (with `since` if given: `{"chat:x":{"seq":5,"epoch":"…"}}`);
    /// returns the `subscribed` reply (panics on an error reply).
    pub async fn subscribe(&mut self, channels: &[&str], since: Option<Value>) -> Value {
        let mut req = serde_json::json!({"type":"subscribe","channels":channels});
        if let Some(since) = since {
            req["since"] = since;
        }
        self.send_text(req.to_string()).await;
        let reply = self
            .take("subscribed", MSG_DEADLINE, |m| {
                matches!(m.kind(), "subscribed" | "error")
            })
            .await;
        assert_eq!(reply.kind(), "subscribed", "{}: {}", self.name, reply.text);
        reply.v
    }

    /// `publish` of `data` (raw JSON text) to `channel` with string `id`.
    pub async fn publish(&mut self, channel: &str, data: &str, id: &str) {
        self.send_text(format!(
            r#"{{"type":"publish","channel":{channel:?},"data":{data},"id":{id:?}}}"#
        ))
        .await;
    }

    /// The `published` or `error` reply to request `id`.
    /// The next message of type `kind` (`gap`, ...).
    pub async fn message(&mut self, kind: &str) -> Msg {
        self.take(&format!("a `{kind}` message"), MSG_DEADLINE, |m| {
            m.kind() == kind
        })
        .await
    }

    pub async fn reply(&mut self, id: &str) -> Msg {
        self.reply_within(id, MSG_DEADLINE).await
    }

    pub async fn reply_within(&mut self, id: &str, within: Duration) -> Msg {
        self.take(&format!("reply to {id}"), within, |m| {
            matches!(m.kind(), "published" | "error") && m.v["id"] == id
        })
        .await
    }

    /// The `published` reply to `id`'s seq (panics on anything else).
    pub async fn published_seq(&mut self, id: &str) -> u64 {
        let r = self.reply(id).await;
        assert_eq!(r.kind(), "published", "{}: {}", self.name, r.text);
        r.v["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("published without seq: {}", r.text))
    }

    /// The next event on `channel`.
    pub async fn event(&mut self, channel: &str) -> Event {
        let m = self
            .take(&format!("an event on {channel}"), MSG_DEADLINE, |m| {
                m.kind() == "event" && m.v["channel"] == channel
            })
            .await;
        Event::from_msg(&m)
    }

    /// Events on `channel` until one with seq ≥ `last` (a `gap` on it fails the test).
    pub async fn events_through(&mut self, channel: &str, last: u64) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::new();
        loop {
            let what = format!(
                "event on {channel} up to seq {last} (have {} events, last seq {:?})",
                out.len(),
                out.last().map(|e| e.seq)
            );
            let m = self
                .take(&what, MSG_DEADLINE, |m| {
                    matches!(m.kind(), "event" | "gap") && m.v["channel"] == channel
                })
                .await;
            assert_eq!(
                m.kind(),
                "event",
                "{}: gap on a reliable channel after seqs {:?}: {}",
                self.name,
                seqs(&out),
                m.text
            );
            let e = Event::from_msg(&m);
            let done = e.seq >= last;
            out.push(e);
            if done {
                return out;
            }
        }
    }

    /// The first message (already kept or arriving within `within`) that `pred` accepts; the
    /// others are kept for later calls. Panics with `what` on a timeout or a closed connection.
    pub async fn take(&mut self, what: &str, within: Duration, pred: impl Fn(&Msg) -> bool) -> Msg {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(text)) => {
                    let m = Msg::parse(text);
                    if m.kind() == "__closed" {
                        panic!(
                            "{}: connection closed while waiting for {what}: {}",
                            self.name, m.text
                        );
                    }
                    if pred(&m) {
                        return m;
                    }
                    self.pending.push_back(m);
                }
                Ok(None) => panic!("{}: connection ended while waiting for {what}", self.name),
                Err(_) => {
                    let kept: Vec<&str> = self
                        .pending
                        .iter()
                        .rev()
                        .take(5)
                        .map(|m| m.text.as_str())
                        .collect();
                    panic!(
                        "{}: no {what} within {within:?}; last unconsumed messages: {kept:?}",
                        self.name
                    )
                }
            }
        }
    }

    /// Forgets every message received so far.
    pub fn discard_received(&mut self) {
        self.drain();
        self.pending.clear();
    }

    /// Moves every message that has arrived so far into the kept list and returns that list.
    pub fn drain(&mut self) -> &VecDeque<Msg> {
        while let Ok(text) = self.rx.try_recv() {
            self.pending.push_back(Msg::parse(text));
        }
        &self.pending
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
