//! TLS termination (`wss://`), between a shard's driver and its sans-IO connections: rustls
//! decrypts what the socket received into the bytes [`crate::conn::Conn`] reads, and encrypts
//! what the connection would send into one buffer the driver writes. The handshake stays
//! sans-IO: ciphertext in, ciphertext out, no socket in this module.
//!
//! Userspace encryption costs one copy per connection per send (the shared frames are encrypted
//! separately for every subscriber); kernel TLS, where the kernel has it, would keep shared-frame
//! sends, and [`ktls`] says whether this host has it.

pub(crate) mod certs;
pub(crate) mod ktls;
pub(crate) mod session;
#[cfg(test)]
mod tests;

pub(crate) use certs::CertStore;
pub use certs::TlsConfigError;
pub(crate) use session::TlsSession;
