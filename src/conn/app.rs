//! What a connection hands up to the application (the shard) during
//! [`Conn::handle_input`](super::Conn::handle_input): upgrade requests it may refuse, the opened
//! connection, whole messages, plain HTTP requests.

use crate::protocol::handshake::HttpRequest;

/// An upgrade to the native endpoint, before the 101 is sent: the application may refuse it.
#[derive(Debug)]
pub struct UpgradeRequest {
    /// Query string of the upgrade URL, without `?`.
    pub query: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Origin` header.
    pub origin: Option<String>,
    /// Set (by [`refuse`](Self::refuse)) to answer with an HTTP error instead of the 101.
    pub refusal: Option<UpgradeRefusal>,
}

impl UpgradeRequest {
    /// Refuses the upgrade with HTTP `status` and a JSON error body carrying `message`.
    pub fn refuse(&mut self, status: u16, message: impl Into<String>) {
        self.refusal = Some(UpgradeRefusal {
            status,
            message: message.into(),
        });
    }
}

/// Why the application refused an upgrade: what the client gets instead of the 101.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRefusal {
    /// The HTTP status (400, 401, 403).
    pub status: u16,
    /// The message of the JSON error body.
    pub message: String,
}

/// What a connection hands up to the application.
#[derive(Debug)]
pub enum AppEvent<'a> {
    /// An upgrade request to the native endpoint, before it is accepted.
    Upgrade(&'a mut UpgradeRequest),
    /// The upgrade to the native endpoint completed; `query` is the request's query string.
    Opened {
        /// Query string of the upgrade URL, without `?`.
        query: Option<&'a str>,
        /// permessage-deflate was agreed.
        deflate: bool,
    },
    /// A whole text or binary message on the native endpoint (mutable for in-place parsing).
    Message(&'a mut [u8]),
    /// A plain HTTP request; the application queues exactly one complete response, or sets
    /// `owed` and gives it later with [`Conn::answer_http`](super::Conn::answer_http).
    Http {
        /// The request.
        request: &'a HttpRequest,
        /// Set by the application when it answers later.
        owed: &'a mut bool,
    },
}
