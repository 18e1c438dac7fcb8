//! WebSocket protocol, sans-IO: bytes in, frames and messages out, and server frames encoded
//! once for every client. Nothing here sees a socket or reads a clock.
//!
//! - [`handshake`]: the HTTP/1.1 request that opens a connection, and the responses to it;
//! - [`frame`]: client frame headers (parsed by tungstenite) and server frame encoding;
//! - [`deflate`] and [`compress`]: permessage-deflate negotiation, inflating client messages,
//!   and server frames compressed once for every connection that agreed to it;
//! - [`mask`]: client payload unmasking;
//! - [`message`]: reassembly of fragmented messages, UTF-8 and size checks, close codes.
#![forbid(unsafe_code)]

pub mod compress;
pub(crate) mod deflate;
pub mod frame;
pub mod handshake;
pub(crate) mod mask;
pub mod message;
