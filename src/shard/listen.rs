//! Listeners: one SO_REUSEPORT socket per shard on the same address, so the kernel spreads new
//! connections over shards by 4-tuple hash and no accept ever crosses threads.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

/// Backlog of each listener (the kernel caps it at `net.core.somaxconn`).
pub const BACKLOG: i32 = 4096;

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

/// Binds `count` listeners on `addr`; when the port is 0 the first picks it and the rest join.
pub fn bind_shards(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let first = bind_one(addr)?;
    let actual = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind_one(actual)?);
    }
    Ok(all)
}
