//! The node's UDP sockets: one, or one per address family for a dual-stack node (BEP 32).
//!
//! Every datagram leaves through the socket of its destination's family. A destination of a
//! family we have no socket for cannot be reached: it is dropped and counted
//! ([`IoStats::unroutable`](crate::IoStats::unroutable)), never sent to the wrong socket.

use std::future::pending;
use std::io;
use std::net::SocketAddr;

use mycel_dht::Transmit;
use tokio::net::UdpSocket;

use crate::handle::IoCounters;
use crate::udp::send_all;
use crate::NetError;

/// Socket buffer size asked of the kernel (it may grant less): a busy node receives bursts
/// far larger than the default ~200 KiB holds.
const SOCKET_BUFFER: usize = 4 << 20;

/// An address family, naming one of the sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

/// At most one socket per family; at least one socket.
pub(crate) struct Sockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    /// The bound addresses, in the order they were asked for.
    local: Vec<SocketAddr>,
    /// Drained datagrams of each family, reused between flushes.
    out4: Vec<Transmit>,
    out6: Vec<Transmit>,
}

impl Sockets {
    /// Binds one socket per address. `listen` must hold one address, or two of different
    /// families. With two, the IPv6 socket is IPv6-only, so both may share a port.
    pub fn bind(listen: &[SocketAddr]) -> Result<Self, NetError> {
        let invalid = |reason| NetError::InvalidListen { addrs: listen.to_vec(), reason };
        match listen {
            [] => return Err(invalid("no address to listen on")),
            [_] => {}
            [a, b] if a.is_ipv4() == b.is_ipv4() => {
                return Err(invalid("at most one address per family (one IPv4, one IPv6)"))
            }
            [_, _] => {}
            _ => return Err(invalid("at most two addresses: one IPv4 and one IPv6")),
        }
        let dual = listen.len() == 2;
        let mut sockets = Sockets { v4: None, v6: None, local: Vec::new(), out4: Vec::new(), out6: Vec::new() };
        for &addr in listen {
            let bind_err = |source: io::Error| NetError::Bind { addr, source };
            let socket = bind_udp(addr, dual).map_err(bind_err)?;
            sockets.local.push(socket.local_addr().map_err(bind_err)?);
            if addr.is_ipv4() {
                sockets.v4 = Some(socket);
            } else {
                sockets.v6 = Some(socket);
            }
        }
        Ok(sockets)
    }

    /// The bound addresses, in the order of `listen`.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// One socket of each family.
    pub fn is_dual_stack(&self) -> bool {
        self.v4.is_some() && self.v6.is_some()
    }

    /// Whether datagrams to `addr` can be sent.
    pub fn reaches(&self, addr: &SocketAddr) -> bool {
        if addr.is_ipv4() {
            self.v4.is_some()
        } else {
            self.v6.is_some()
        }
    }

    /// The socket of a family.
    pub fn socket(&self, family: Family) -> Option<&UdpSocket> {
        match family {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }

    /// Waits until a socket has something to read; says which (or the error waiting on it).
    pub async fn readable(&self) -> (Family, io::Result<()>) {
        tokio::select! {
            ready = readable(self.v4.as_ref()) => (Family::V4, ready),
            ready = readable(self.v6.as_ref()) => (Family::V6, ready),
        }
    }

    /// Sends the datagrams, each through the socket of its destination's family.
    pub async fn send(&mut self, transmits: impl Iterator<Item = Transmit>, io: &IoCounters) {
        self.out4.clear();
        self.out6.clear();
        let mut unroutable = 0;
        for t in transmits {
            match (t.dst.is_ipv4(), &self.v4, &self.v6) {
                (true, Some(_), _) => self.out4.push(t),
                (false, _, Some(_)) => self.out6.push(t),
                _ => unroutable += 1,
            }
        }
        IoCounters::add(&io.unroutable, unroutable);
        for (socket, out) in [(&self.v4, &self.out4), (&self.v6, &self.out6)] {
            let Some(socket) = socket else { continue };
            if out.is_empty() {
                continue;
            }
            let (sent, bytes, errors) = send_all(socket, out).await;
            IoCounters::add(&io.datagrams_sent, sent);
            IoCounters::add(&io.bytes_sent, bytes);
            IoCounters::add(&io.send_errors, errors);
        }
    }
}

/// Waits on a socket's readiness; forever when there is no socket.
async fn readable(socket: Option<&UdpSocket>) -> io::Result<()> {
    match socket {
        Some(socket) => socket.readable().await,
        None => pending().await,
    }
}

/// Binds a non-blocking UDP socket with large kernel buffers; `v6_only` for the IPv6 socket of
/// a dual-stack node (a lone IPv6 socket keeps the system's default).
fn bind_udp(addr: SocketAddr, v6_only: bool) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() && v6_only {
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
