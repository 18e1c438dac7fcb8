//! Every fixed cap in one place: sizes that bound memory or work per connection, per shard or
//! per tick and that are not (yet) worth a configuration key.

/// Largest HTTP request head (request line + headers) accepted before an upgrade; more is 431.
pub const MAX_HTTP_HEAD_BYTES: usize = 8 * 1024;
/// Most headers parsed in one HTTP request (a browser sends about 15; proxies and CDNs add more,
/// so 32 refused real upgrades). Beyond, 431.
pub(crate) const MAX_HTTP_HEADERS: usize = 64;
/// Most iovec entries gathered into one vectored send.
pub(crate) const MAX_IOVECS_PER_SEND: usize = 64;
/// Most bytes gathered into one vectored send.
pub(crate) const MAX_BYTES_PER_SEND: usize = 1024 * 1024;
/// Most channels the distributor tracks server-wide; publishes to new channels beyond are dropped.
pub(crate) const MAX_CHANNELS: usize = 1_000_000;
/// Bytes of publications waiting in the ingress before publishers are told OVERLOADED.
pub(crate) const MAX_INGRESS_BYTES: usize = 256 * 1024 * 1024;
/// Most bytes one HTTP broadcast may cause the distributor to encode (data bytes × channels):
/// each channel's event is its own frame, so a 1 MiB body to 1000 channels would be 1 GiB of
/// copies. Beyond, the request is answered 413 and nothing is published.
pub(crate) const MAX_BROADCAST_BYTES: usize = 64 * 1024 * 1024;
/// Tick batches that may wait in one shard's inbox before the distributor drops and counts one.
pub(crate) const SHARD_INBOX_BATCHES: usize = 4096;
/// How long a connection in the close handshake waits for the peer before the socket is closed.
pub(crate) const CLOSE_HANDSHAKE_TIMEOUT_MS: u64 = 2000;
/// Bytes per provided receive buffer in an io_uring buffer ring.
pub(crate) const RECV_BUFFER_BYTES: usize = 4096;
/// Buffers in one shard's io_uring buffer ring (a power of two). The kernel takes them in ring
/// order, so every buffer is eventually touched: this is resident memory per shard
/// (256 × 4 KiB = 1 MiB). Running out only re-arms a receive (ENOBUFS), it loses nothing.
pub(crate) const RECV_BUFFERS_PER_SHARD: u16 = 256;
/// Bytes of the per-shard read scratch buffer the epoll backend reads into.
pub(crate) const EPOLL_READ_SCRATCH_BYTES: usize = 64 * 1024;
/// Sends a shard starts per loop turn (one per connection, oldest output first). A turn stays
/// about a millisecond of kernel send work, so input, tick batches and the distributor's thread
/// get the core between chunks; under overload connections are served round-robin. Measured on
/// W2 light (5000 subscribers, one shard): p50 63 → 28 ms against no limit (benches/RESULTS.md).
pub const SENDS_PER_TURN: usize = 256;
/// A partial-frame buffer above this capacity is released once it drains (keeps idle conns small).
pub(crate) const RETAINED_PARTIAL_BYTES: usize = 4096;
/// Most keys a `snapshot = true` channel keeps (the oldest key is forgotten beyond).
pub const MAX_SNAPSHOT_KEYS: usize = 10_000;
/// Deepest rate step: a lagging or `max_hz` subscriber of a conflated channel gets every
/// 2nd, 4th, 8th or 16th tick (60 Hz → 30, 15, 7.5, 3.75 Hz).
pub(crate) const MAX_RATE_LEVEL: u8 = 4;
/// Tick batches kept for a shard whose inbox is full before tick batches are dropped.
pub(crate) const SHARD_BACKLOG_BATCHES: usize = 1024;
/// Most bytes of missed events one `subscribe` with `since` may replay (beyond, that channel is
/// answered `recovered: false`). Replayed frames are shared with the history; this bounds the
/// queue entries and the time one client's recovery occupies its socket.
pub(crate) const MAX_RECOVERY_BYTES: usize = 64 * 1024 * 1024;
