//! Peer connections: a reader task and a writer task per TCP stream, and dialing.

use std::collections::{BTreeMap, HashMap};
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mycel_mse::Cipher;
use mycel_swarm::PeerKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::encryption::{self, DialPolicy};
use super::{Encryption, PeerTransfer};

/// Time allowed for a TCP connect.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per connection.
const READ_BUF: usize = 256 * 1024;
/// A read at least this long hands its buffer over to the torrent task as it is (no copy)
/// and the reader takes a fresh one; a shorter one is copied out and the buffer reused, so
/// small reads do not each hold `READ_BUF` bytes while they wait in the channel. The
/// engine keeps `piece` blocks as slices of a handed-over buffer until they are written,
/// so the buffer is first trimmed to what was read (an in-place `realloc`).
const HAND_OVER: usize = 64 * 1024;
/// Queued outgoing bytes gathered into one vectored `write`.
const WRITE_BATCH: usize = 1024 * 1024;
/// Most buffers in one vectored `write`.
const WRITE_PARTS: usize = 64;

/// A connected peer socket ready for [`start`], with what an MSE handshake on it left: the
/// RC4 streams (`None`: plaintext, or no MSE at all) and the decrypted stream bytes read
/// past the handshake, which the connection delivers before anything it reads.
pub(crate) struct PeerStream {
    pub(crate) stream: TcpStream,
    /// Boxed: two RC4 states are about 520 bytes, and this rides in every `ConnEvent`
    /// slot of the torrent's channel.
    pub(crate) cipher: Option<Box<Cipher>>,
    pub(crate) leftover: Vec<u8>,
}

impl PeerStream {
    /// A stream without MSE.
    pub(crate) fn plain(stream: TcpStream) -> Self {
        PeerStream { stream, cipher: None, leftover: Vec::new() }
    }
}

/// What connections tell their torrent's task.
pub(crate) enum ConnEvent {
    /// A dial finished.
    Dialed { addr: SocketAddr, stream: Option<PeerStream> },
    /// The listener accepted a connection for this torrent; `initial` is the handshake it
    /// already read (decrypted).
    Incoming { stream: PeerStream, addr: SocketAddr, initial: Vec<u8> },
    /// Bytes from a peer.
    Bytes { key: PeerKey, data: Bytes },
    /// The connection is gone (EOF, error).
    Closed { key: PeerKey },
}

/// The torrent task's side of a connection. Dropping it closes the connection: the
/// writer flushes what it has and shuts the socket down, the reader is aborted.
pub(crate) struct Conn {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    reader: JoinHandle<()>,
}

impl Conn {
    /// Queues bytes for the peer.
    pub(crate) fn send(&self, data: Vec<u8>) {
        let _ = self.writer.send(data);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Starts the reader and writer tasks of a connected stream.
pub(crate) fn start(
    stream: PeerStream,
    key: PeerKey,
    events: mpsc::Sender<ConnEvent>,
    limiter: Option<Arc<RateLimiter>>,
) -> Conn {
    let PeerStream { stream, cipher, leftover } = stream;
    let _ = stream.set_nodelay(true);
    // After an MSE handshake: RC4 applied in place to every buffer read and written.
    let (mut encrypt, mut decrypt) = cipher
        .map(|c| {
            let Cipher { encrypt, decrypt } = *c;
            (encrypt, decrypt)
        })
        .unzip();
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let ev = events.clone();
    let reader = tokio::spawn(async move {
        // Read into spare capacity: no zeroing, and a long read is not copied again.
        let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
        if !leftover.is_empty() && ev.send(ConnEvent::Bytes { key, data: leftover.into() }).await.is_err() {
            return;
        }
        loop {
            buf.clear();
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Some(c) = &mut decrypt {
                        c.apply(&mut buf);
                    }
                    let data = if buf.len() >= HAND_OVER {
                        let mut full = std::mem::replace(&mut buf, Vec::with_capacity(READ_BUF));
                        full.shrink_to_fit();
                        Bytes::from(full)
                    } else {
                        Bytes::copy_from_slice(&buf)
                    };
                    if ev.send(ConnEvent::Bytes { key, data }).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = ev.send(ConnEvent::Closed { key }).await;
    });
    tokio::spawn(async move {
        let mut batch: Vec<Vec<u8>> = Vec::new();
        while let Some(first) = rx.recv().await {
            // Gather what is already queued: one vectored write per batch, not per block,
            // and no copy into one buffer.
            let mut len = first.len();
            batch.push(first);
            while len < WRITE_BATCH && batch.len() < WRITE_PARTS {
                match rx.try_recv() {
                    Ok(more) => {
                        len += more.len();
                        batch.push(more);
                    }
                    Err(_) => break,
                }
            }
            if let Some(c) = &mut encrypt {
                batch.iter_mut().for_each(|b| c.apply(b));
            }
            if let Some(l) = &limiter {
                l.take(len as u64).await;
            }
            if write_all_vectored(&mut wr, &batch).await.is_err() {
                let _ = events.send(ConnEvent::Closed { key }).await;
                return;
            }
            batch.clear();
        }
        let _ = wr.shutdown().await;
    });
    Conn { writer: tx, reader }
}

/// Writes every byte of `parts`, in order, with vectored writes.
async fn write_all_vectored(wr: &mut (impl AsyncWriteExt + Unpin), parts: &[Vec<u8>]) -> std::io::Result<()> {
    let (mut i, mut off) = (0, 0);
    while i < parts.len() {
        let slices: Vec<IoSlice<'_>> =
            std::iter::once(&parts[i][off..]).chain(parts[i + 1..].iter().map(|p| &p[..])).map(IoSlice::new).collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while i < parts.len() && n >= parts[i].len() - off {
            n -= parts[i].len() - off;
            i += 1;
            off = 0;
        }
        off += n;
    }
    Ok(())
}

/// Dials `addr` in the background; the outcome arrives as [`ConnEvent::Dialed`].
/// With `local`, the connection leaves from that IP (the session's listen IP), so peers
/// see the address they would dial back. With `policy` (the torrent's, when encryption
/// is not `Off`), the connection opens with an MSE handshake.
pub(crate) fn dial(
    addr: SocketAddr,
    local: Option<IpAddr>,
    policy: Option<DialPolicy>,
    events: mpsc::Sender<ConnEvent>,
) {
    tokio::spawn(async move {
        let stream = connect(addr, local).await;
        let stream = match (stream, policy) {
            (Some(s), Some(policy)) => match encryption::initiate(s, &policy).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "MSE handshake failed");
                    // Prefer: the peer may not speak MSE; dial again in plaintext.
                    match policy.mode {
                        Encryption::Prefer => connect(addr, local).await.map(PeerStream::plain),
                        _ => None,
                    }
                }
            },
            (s, _) => s.map(PeerStream::plain),
        };
        let _ = events.send(ConnEvent::Dialed { addr, stream }).await;
    });
}

/// A TCP connect within [`DIAL_TIMEOUT`]; `None` on failure.
async fn connect(addr: SocketAddr, local: Option<IpAddr>) -> Option<TcpStream> {
    tokio::time::timeout(DIAL_TIMEOUT, plain_connect(addr, local)).await.ok().and_then(Result::ok)
}

async fn plain_connect(addr: SocketAddr, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = local.filter(|ip| ip.is_ipv4() == addr.is_ipv4() && !ip.is_unspecified()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

/// A token bucket shared by the writers of one torrent.
pub(crate) struct RateLimiter {
    rate: u64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `rate` bytes per second, with a burst of a quarter second.
    pub(crate) fn new(rate: u64) -> Self {
        RateLimiter { rate, state: Mutex::new((rate as f64 / 4.0, Instant::now())) }
    }

    /// Waits until `n` bytes may go out.
    pub(crate) async fn take(&self, n: u64) {
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let burst = self.rate as f64 / 4.0;
            s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate as f64).min(burst);
            s.1 = now;
            s.0 -= n as f64;
            if s.0 < 0.0 {
                Duration::from_secs_f64(-s.0 / self.rate as f64)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Adds wire bytes to the counters of the connection's remote address.
pub(super) fn count(
    addrs: &HashMap<PeerKey, SocketAddr>,
    transfers: &mut BTreeMap<SocketAddr, PeerTransfer>,
    key: PeerKey,
    down: usize,
    up: usize,
) {
    if let Some(&addr) = addrs.get(&key) {
        let t = transfers.entry(addr).or_insert(PeerTransfer { addr, downloaded: 0, uploaded: 0 });
        t.downloaded += down as u64;
        t.uploaded += up as u64;
    }
}
