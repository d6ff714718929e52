//! Batched UDP I/O: `recvmmsg` and `sendmmsg` move up to [`BATCH`] datagrams per system call.
//! On loopback under load the kernel's per-call cost, not the node, bounds the query rate.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use mycel_dht::Transmit;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call.
pub(crate) const BATCH: usize = 32;
/// Largest datagram we read; KRPC messages stay well under it (a longer one is truncated and
/// then rejected by the node as malformed).
pub(crate) const DATAGRAM: usize = 2048;

/// Receive buffers for one batch.
pub(crate) struct RecvBatch {
    bufs: Vec<[u8; DATAGRAM]>,
    /// (length, source) of each datagram of the last batch.
    pub got: Vec<(usize, SocketAddr)>,
}

impl RecvBatch {
    pub fn new() -> Self {
        RecvBatch { bufs: vec![[0u8; DATAGRAM]; BATCH], got: Vec::with_capacity(BATCH) }
    }

    /// The bytes of datagram `i` of the last batch.
    pub fn datagram(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.got[i].0]
    }
}

/// Receives what is queued, up to a batch, without waiting. `Ok(0)`: nothing was queued.
pub(crate) fn try_recv_batch(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    batch.got.clear();
    let fd = socket.as_raw_fd();
    let got = &mut batch.got;
    let bufs = &mut batch.bufs;
    let res = socket.try_io(Interest::READABLE, || {
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs.iter_mut().map(|b| [IoSliceMut::new(&mut b[..])]).collect();
        let results =
            recvmmsg(fd, &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None).map_err(io::Error::from)?;
        for r in results {
            if let Some(addr) = r.address.as_ref().and_then(to_socket_addr) {
                got.push((r.bytes.min(DATAGRAM), addr));
            } else {
                got.push((0, SocketAddr::from(([0, 0, 0, 0], 0))));
            }
        }
        Ok(())
    });
    match res {
        Ok(()) => Ok(batch.got.len()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// Sends the datagrams, a batch per system call; waits for the socket when its buffer is full.
/// Returns (datagrams sent, bytes sent, errors).
pub(crate) async fn send_all(socket: &UdpSocket, transmits: &[Transmit]) -> (u64, u64, u64) {
    let (mut sent, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut rest = transmits;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(BATCH)];
        match socket.try_io(Interest::WRITABLE, || send_chunk(socket, chunk)) {
            Ok(n) if n > 0 => {
                sent += n as u64;
                bytes += chunk[..n].iter().map(|t| t.payload.len() as u64).sum::<u64>();
                rest = &rest[n..];
            }
            Ok(_) => rest = &rest[1..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if socket.writable().await.is_err() {
                    errors += rest.len() as u64;
                    break;
                }
            }
            Err(_) => {
                // The first datagram of the chunk failed (say, an unreachable address):
                // count it and go on with the rest.
                errors += 1;
                rest = &rest[1..];
            }
        }
    }
    (sent, bytes, errors)
}

fn send_chunk(socket: &UdpSocket, chunk: &[Transmit]) -> io::Result<usize> {
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
    let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|t| [IoSlice::new(&t.payload)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = chunk.iter().map(|t| Some(SockaddrStorage::from(t.dst))).collect();
    let results = sendmmsg(socket.as_raw_fd(), &mut headers, &slices, addrs, [], MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    Ok(results.count())
}

fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}
