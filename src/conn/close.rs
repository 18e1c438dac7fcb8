//! Why a connection ends ([`CloseReason`], counted per reason) and a close the application
//! orders ([`CloseOrder`]).

use crate::protocol::message::CloseCode;

/// Why a connection ended, for counting and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Normal close handshake (either side started it).
    Normal,
    /// The peer closed the TCP connection or it failed.
    PeerGone,
    /// The client broke the protocol.
    ProtocolError,
    /// The outbound queue passed its cap.
    SlowConsumer,
    /// No upgrade request in time.
    HandshakeTimeout,
    /// No pong in time.
    PongTimeout,
    /// Answered with an HTTP error instead of an upgrade.
    Rejected,
    /// A plain HTTP connection ended (after `Connection: close` or when idle).
    HttpDone,
    /// The server is shutting down.
    Shutdown,
    /// Bad, missing or expired token (close 4001).
    AuthFailed,
    /// Sustained publishing over the rate limit (close 1008).
    Abuse,
}

impl CloseReason {
    /// Every reason, in [`index`](Self::index) order.
    pub const ALL: [CloseReason; 11] = [
        CloseReason::Normal,
        CloseReason::PeerGone,
        CloseReason::ProtocolError,
        CloseReason::SlowConsumer,
        CloseReason::HandshakeTimeout,
        CloseReason::PongTimeout,
        CloseReason::Rejected,
        CloseReason::HttpDone,
        CloseReason::Shutdown,
        CloseReason::AuthFailed,
        CloseReason::Abuse,
    ];

    /// Position in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|&r| r == self).expect("listed")
    }

    /// snake_case name for metrics and events.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Normal => "normal",
            CloseReason::PeerGone => "peer_gone",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::PongTimeout => "pong_timeout",
            CloseReason::Rejected => "rejected",
            CloseReason::HttpDone => "http_done",
            CloseReason::Shutdown => "shutdown",
            CloseReason::AuthFailed => "auth_failed",
            CloseReason::Abuse => "abuse",
        }
    }
}

/// A close the application asks for (a command handler, a limit): the code and text to send,
/// and why, for counting.
#[derive(Clone, Copy, Debug)]
pub struct CloseOrder {
    /// Close code.
    pub code: CloseCode,
    /// Reason text.
    pub text: &'static str,
    /// Why, for counting.
    pub reason: CloseReason,
}
