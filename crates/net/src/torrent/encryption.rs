//! Message Stream Encryption on sockets: runs the sans-IO [`mycel_mse::Handshake`] over a
//! `TcpStream` (responder in `session::route`, initiator in `conn::dial`). What a finished
//! handshake leaves (its RC4 streams, the bytes read past it) travels with the socket as a
//! [`PeerStream`] to `conn::start`; a torrent's dials get their [`DialPolicy`] (SKEY, mode)
//! from its task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mycel_mse::{CryptoSet, Established, Handshake, Method};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::conn::PeerStream;
use super::Encryption;

/// Time an MSE handshake may take, either role.
pub(crate) const MSE_TIMEOUT: Duration = Duration::from_secs(10);

/// MSE handshakes of a session, by outcome.
#[derive(Debug, Default)]
pub(crate) struct MseCounters {
    pub(crate) plaintext: AtomicU64,
    pub(crate) rc4: AtomicU64,
    pub(crate) failed: AtomicU64,
}

impl MseCounters {
    fn record(&self, r: &std::io::Result<Established>) {
        let c = match r {
            Ok(e) if e.method == Method::Rc4 => &self.rc4,
            Ok(_) => &self.plaintext,
            Err(_) => &self.failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a torrent's dials run MSE: made by `add_torrent` when encryption is not `Off`, kept
/// by the torrent task and passed to each `conn::dial`.
#[derive(Clone)]
pub(crate) struct DialPolicy {
    pub(crate) skey: [u8; 20],
    pub(crate) mode: Encryption,
    pub(crate) counters: Arc<MseCounters>,
}

/// A seed for a sans-IO engine, from the OS random generator.
pub(crate) fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// What a mode offers or accepts: `Require` RC4 only, otherwise both.
fn crypto_set(mode: Encryption) -> CryptoSet {
    if mode == Encryption::Require {
        CryptoSet::RC4
    } else {
        CryptoSet::ALL
    }
}

/// Responds to an incoming MSE handshake whose first bytes (`first`) were already read.
/// `Require` allows RC4 only; otherwise plaintext is taken when offered.
pub(crate) async fn respond(
    stream: &mut TcpStream,
    first: &[u8],
    skeys: Vec<[u8; 20]>,
    mode: Encryption,
    counters: &MseCounters,
) -> std::io::Result<Established> {
    let hs = Handshake::responder(skeys, crypto_set(mode), Method::Plaintext, seed());
    run_counted(stream, hs, first, counters).await
}

/// Runs the initiator for `policy` on a connected stream; on success the stream goes on
/// with the ciphers (RC4) and the early bytes, for `conn::start`.
pub(crate) async fn initiate(mut stream: TcpStream, policy: &DialPolicy) -> std::io::Result<PeerStream> {
    let hs = Handshake::initiator(policy.skey, crypto_set(policy.mode), seed());
    let est = run_counted(&mut stream, hs, &[], &policy.counters).await?;
    Ok(PeerStream { stream, cipher: est.cipher.map(Box::new), leftover: est.payload })
}

/// [`run`] within [`MSE_TIMEOUT`], its outcome counted.
async fn run_counted(
    stream: &mut TcpStream,
    hs: Handshake,
    first: &[u8],
    counters: &MseCounters,
) -> std::io::Result<Established> {
    let r = match tokio::time::timeout(MSE_TIMEOUT, run(stream, hs, first)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    };
    counters.record(&r);
    r
}

/// Drives `hs` over `stream` until it is established.
async fn run(stream: &mut TcpStream, mut hs: Handshake, first: &[u8]) -> std::io::Result<Established> {
    let mse = |e: mycel_mse::MseError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    // Each step is one small write answering the peer's: without this, Nagle holds it for
    // the peer's delayed ACK (about 40 ms on Linux).
    let _ = stream.set_nodelay(true);
    if !first.is_empty() {
        hs.handle_bytes(first).map_err(mse)?;
    }
    // Small reads: whatever comes past the handshake is payload, kept but not wanted here.
    let mut buf = vec![0u8; 2048];
    loop {
        if let Some(out) = hs.poll_transmit() {
            stream.write_all(&out).await?;
        }
        if let Some(est) = hs.poll_established() {
            return Ok(est);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hs.handle_bytes(&buf[..n]).map_err(mse)?;
    }
}

#[cfg(test)]
mod tests {
    use mycel_swarm::PeerKey;
    use tokio::net::TcpListener;

    use tokio::sync::mpsc;

    use super::super::conn::{self, ConnEvent};
    use super::*;

    const SKEY: [u8; 20] = [3; 20];

    async fn connected() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr")).await.expect("connect");
        let (s, _) = l.accept().await.expect("accept");
        (c, s)
    }

    /// The responder's half of `session::route`: the first byte, then MSE.
    async fn accept(b: &mut TcpStream, mode: Encryption, counters: &MseCounters) -> std::io::Result<Established> {
        let mut first = [0u8; 1];
        b.read_exact(&mut first).await?;
        respond(b, &first, vec![[9; 20], SKEY], mode, counters).await
    }

    async fn next_bytes(rx: &mut mpsc::Receiver<ConnEvent>) -> Vec<u8> {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(ConnEvent::Bytes { data, .. })) => data.to_vec(),
            _ => panic!("no bytes from the connection"),
        }
    }

    #[tokio::test]
    async fn rc4_connection_carries_bytes_both_ways_through_reader_and_writer() {
        let (a, mut b) = connected().await;
        let counters = Arc::new(MseCounters::default());
        let policy = DialPolicy { skey: SKEY, mode: Encryption::Require, counters: counters.clone() };
        let (ra, rb) = tokio::join!(initiate(a, &policy), accept(&mut b, Encryption::Off, &counters));
        let a = ra.expect("initiator");
        let est = rb.expect("responder");
        assert_eq!((est.method, est.info_hash), (mycel_mse::Method::Rc4, SKEY));
        assert_eq!(counters.rc4.load(Ordering::Relaxed), 2);
        assert!(a.cipher.is_some() && a.leftover.is_empty(), "the initiator's stream carries its ciphers");
        let b = PeerStream { stream: b, cipher: est.cipher.map(Box::new), leftover: Vec::new() };

        let (tx_a, mut rx_a) = mpsc::channel(8);
        let (tx_b, mut rx_b) = mpsc::channel(8);
        let ca = conn::start(a, PeerKey(1), tx_a, None);
        let cb = conn::start(b, PeerKey(2), tx_b, None);
        for round in 0..3u8 {
            let msg: Vec<u8> = (0..5000u32).map(|i| (i as u8) ^ round).collect();
            ca.send(msg.clone());
            let mut got = Vec::new();
            while got.len() < msg.len() {
                got.extend(next_bytes(&mut rx_b).await);
            }
            assert_eq!(got, msg);
            cb.send(msg.clone());
            let mut got = Vec::new();
            while got.len() < msg.len() {
                got.extend(next_bytes(&mut rx_a).await);
            }
            assert_eq!(got, msg);
        }
    }

    #[tokio::test]
    async fn leftover_bytes_arrive_before_what_is_read() {
        let (a, mut b) = connected().await;
        let (tx, mut rx) = mpsc::channel(8);
        let a = PeerStream { stream: a, cipher: None, leftover: b"early".to_vec() };
        let _conn = conn::start(a, PeerKey(1), tx, None);
        b.write_all(b"late").await.expect("write");
        let mut got = Vec::new();
        while got.len() < 9 {
            got.extend(next_bytes(&mut rx).await);
        }
        assert_eq!(got, b"earlylate");
    }

    #[tokio::test]
    async fn a_plaintext_selection_leaves_no_cipher() {
        let (a, mut b) = connected().await;
        let counters = Arc::new(MseCounters::default());
        let policy = DialPolicy { skey: SKEY, mode: Encryption::Prefer, counters: counters.clone() };
        let (ra, rb) = tokio::join!(initiate(a, &policy), accept(&mut b, Encryption::Off, &counters));
        let a = ra.expect("initiator");
        assert_eq!(rb.expect("responder").method, mycel_mse::Method::Plaintext);
        assert!(a.cipher.is_none() && a.leftover.is_empty());
        assert_eq!(counters.plaintext.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn require_refuses_a_plaintext_only_initiator_and_counts_it() {
        let (mut a, mut b) = connected().await;
        let counters = Arc::new(MseCounters::default());
        let (ra, rb) =
            tokio::join!(run(&mut a, Handshake::initiator(SKEY, CryptoSet::PLAINTEXT, [1; 32]), &[]), async {
                let r = accept(&mut b, Encryption::Require, &counters).await;
                drop(b); // as `route` does: the refused connection closes
                r
            });
        assert!(rb.is_err() && ra.is_err());
        assert_eq!(counters.failed.load(Ordering::Relaxed), 1);
    }

    /// A peer that does not speak MSE: reads a little and closes, then (second connection)
    /// accepts plain.
    async fn plain_only_peer(l: TcpListener) {
        if let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 68];
            let _ = s.read_exact(&mut buf).await;
        }
        if let Ok((s, _)) = l.accept().await {
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(s);
        }
    }

    async fn dial_with(mode: Encryption) -> (Option<PeerStream>, u64) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(plain_only_peer(l));
        let (tx, mut rx) = mpsc::channel(4);
        let counters = Arc::new(MseCounters::default());
        conn::dial(addr, None, Some(DialPolicy { skey: SKEY, mode, counters: counters.clone() }), tx.clone());
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(ConnEvent::Dialed { stream, .. })) => (stream, counters.failed.load(Ordering::Relaxed)),
            _ => panic!("no dial outcome"),
        }
    }

    #[tokio::test]
    async fn prefer_falls_back_to_plaintext_and_require_does_not() {
        let (stream, failed) = dial_with(Encryption::Prefer).await;
        assert!(stream.is_some(), "Prefer redials in plaintext");
        assert_eq!(failed, 1);
        let (stream, failed) = dial_with(Encryption::Require).await;
        assert!(stream.is_none(), "Require gives up");
        assert_eq!(failed, 1);
    }
}
