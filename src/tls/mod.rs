//! TLS termination (`wss://`), between a shard's driver and its sans-IO connections: rustls
//! decrypts what the socket received into the bytes [`crate::conn::Conn`] reads, and encrypts
//! what the connection would send into one buffer the driver writes. The handshake stays
//! sans-IO: ciphertext in, ciphertext out, no socket in this module.
//!
//! Userspace encryption costs one copy per connection per send (the shared frames are encrypted
//! separately for every subscriber). Where the kernel has TLS ([`ktls`]), each TLS 1.3 session
//! is handed to it after the handshake, so shared frames are sent by reference again and the
//! kernel encrypts them; received records are then opened in [`record_open`].

pub(crate) mod certs;
pub(crate) mod ktls;
mod record;
mod record_open;
pub(crate) mod session;
#[cfg(test)]
mod tests;

pub(crate) use certs::CertStore;
pub use certs::TlsConfigError;
pub(crate) use ktls::KernelSupport;
pub(crate) use session::{Goodbye, TlsSession};
