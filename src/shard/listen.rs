//! Listeners: one SO_REUSEPORT socket per shard on the same address, so the kernel spreads new
//! connections over shards by 4-tuple hash and no accept ever crosses threads.
//!
//! SO_REUSEPORT alone would also let a second framecast (any process of the same user) join
//! the group, and the kernel would quietly split connections between the two servers. So the
//! address is first claimed by an [`AddrClaim`]: a socket bound *without* SO_REUSEPORT (but
//! with SO_REUSEADDR, so connections of an earlier run in TIME_WAIT do not block a restart),
//! never listening, held for the server's lifetime. Linux refuses that bind with EADDRINUSE
//! while any socket listens on the address, reuseport or not; the claim itself does not stop
//! the shards' reuseport sockets from binding (it is not listening and has SO_REUSEADDR).
//! What it cannot catch: two servers that both claim the address before either listens.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

/// Backlog of each listener (the kernel caps it at `net.core.somaxconn`).
pub(crate) const BACKLOG: i32 = 4096;

/// A bound, non-listening socket that keeps another server from listening on the address
/// (see the module doc). Hold it as long as the shards listen.
#[derive(Debug)]
pub(crate) struct AddrClaim {
    _socket: Socket,
    addr: SocketAddr,
}

impl AddrClaim {
    /// The claimed address (with the real port when 0 was asked for).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Claims `addr`: fails with [`io::ErrorKind::AddrInUse`] if something listens there.
pub(crate) fn claim(addr: SocketAddr) -> io::Result<AddrClaim> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    let addr = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("claim socket has no IP address"))?;
    Ok(AddrClaim {
        _socket: socket,
        addr,
    })
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds `count` listeners on the address `claim` holds.
pub(crate) fn bind_shards(claim: &AddrClaim, count: usize) -> io::Result<Vec<TcpListener>> {
    (0..count).map(|_| bind_one(claim.addr())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn the_claim_lets_the_shards_bind_and_keeps_a_second_claim_out() {
        let first = claim(loopback()).unwrap();
        let shards = bind_shards(&first, 2).unwrap();
        assert_eq!(shards[0].local_addr().unwrap(), first.addr());
        let second = claim(first.addr()).unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn a_plain_listener_elsewhere_keeps_the_claim_out() {
        let other = std::net::TcpListener::bind(loopback()).unwrap();
        let err = claim(other.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn the_address_can_be_claimed_again_once_the_listeners_are_gone() {
        let first = claim(loopback()).unwrap();
        let addr = first.addr();
        drop(bind_shards(&first, 2).unwrap());
        drop(first);
        claim(addr).unwrap();
    }
}
