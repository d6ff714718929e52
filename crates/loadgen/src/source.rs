//! One load source: a UDP socket on its own loopback address, on its own thread, keeping a
//! bounded window of queries in flight towards the target.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::query::{encode_query, scan, Mix, Reply};

/// How long the socket waits for a datagram. After this much silence every query still in
/// flight is counted as lost and the window is filled again, so losses never stall a source.
const SILENCE: Duration = Duration::from_millis(50);
/// How often queries older than the query timeout are expired while replies keep flowing.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// After the duration ends, how long to wait for the replies still in flight.
const DRAIN: Duration = Duration::from_millis(200);

/// What one source is asked to do.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// The local address to bind, a distinct loopback IP per source.
    pub bind: SocketAddr,
    /// The node under test.
    pub target: SocketAddr,
    /// Queries kept in flight.
    pub window: usize,
    /// How long to send for.
    pub duration: Duration,
    /// Which queries to send.
    pub mix: Mix,
    /// Seeds this source's ids, targets and info-hashes.
    pub seed: u64,
    /// Sets the BEP 43 read-only flag on every query.
    pub read_only: bool,
    /// A query not answered within this time is counted as a timeout.
    pub query_timeout: Duration,
}

/// What one source saw; the totals are the sums over sources.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Queries sent.
    pub sent: u64,
    /// Replies with `y=r` that matched a query in flight.
    pub answered: u64,
    /// Replies with `y=e` that matched a query in flight.
    pub errors: u64,
    /// Queries given up on (silence, query timeout, or still in flight at the end).
    pub timeouts: u64,
    /// Replies whose transaction id matched no query in flight (arrived after their timeout).
    pub late: u64,
    /// Datagrams that were queries from the target, or not KRPC at all.
    pub other: u64,
}

impl Counts {
    /// Adds another source's counts to these.
    pub fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.answered += other.answered;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.late += other.late;
        self.other += other.other;
    }
}

/// Runs one source to completion; returns its counts and how long it ran.
pub fn run(config: &SourceConfig) -> io::Result<(Counts, Duration)> {
    let socket =
        UdpSocket::bind(config.bind).map_err(|e| io::Error::new(e.kind(), format!("binding {}: {e}", config.bind)))?;
    // Connected: the kernel drops datagrams from anyone else, and an ICMP port-unreachable
    // from a target that is not listening surfaces as an error instead of silent timeouts.
    socket.connect(config.target)?;
    socket.set_read_timeout(Some(SILENCE))?;
    let mut source = Source::new(config, socket);
    let start = Instant::now();
    source.load(start + config.duration)?;
    source.drain(Instant::now() + DRAIN)?;
    Ok((source.counts, start.elapsed()))
}

struct Source<'c> {
    config: &'c SourceConfig,
    socket: UdpSocket,
    rng: SmallRng,
    id: [u8; 20],
    next_tx: u16,
    in_flight: HashMap<u16, Instant>,
    counts: Counts,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl<'c> Source<'c> {
    fn new(config: &'c SourceConfig, socket: UdpSocket) -> Self {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let id = rng.gen();
        Self {
            config,
            socket,
            rng,
            id,
            next_tx: 0,
            in_flight: HashMap::with_capacity(config.window * 2),
            counts: Counts::default(),
            out: Vec::with_capacity(128),
            buf: vec![0; 2048],
        }
    }

    /// Keeps the window full until `end`.
    fn load(&mut self, end: Instant) -> io::Result<()> {
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            if now >= next_sweep {
                self.expire(now);
                next_sweep = now + SWEEP_EVERY;
            }
            while self.in_flight.len() < self.config.window {
                self.send_one()?;
            }
            if !self.receive_one()? {
                // Silence: nothing in flight will come back in useful time.
                self.counts.timeouts += self.in_flight.len() as u64;
                self.in_flight.clear();
            }
        }
    }

    /// Collects the replies still in flight until `deadline`; what is left counts as timeouts.
    fn drain(&mut self, deadline: Instant) -> io::Result<()> {
        while !self.in_flight.is_empty() && Instant::now() < deadline {
            if !self.receive_one()? {
                break;
            }
        }
        self.counts.timeouts += self.in_flight.len() as u64;
        self.in_flight.clear();
        Ok(())
    }

    fn send_one(&mut self) -> io::Result<()> {
        let tx = self.next_tx;
        self.next_tx = self.next_tx.wrapping_add(1);
        let kind = self.config.mix.pick(&mut self.rng);
        let arg: [u8; 20] = self.rng.gen();
        self.out.clear();
        encode_query(&mut self.out, kind, tx.to_be_bytes(), &self.id, &arg, self.config.read_only);
        self.socket.send(&self.out).map_err(|e| self.target_error(e))?;
        self.counts.sent += 1;
        if self.in_flight.insert(tx, Instant::now()).is_some() {
            // The id wrapped around onto a query that never got an answer.
            self.counts.timeouts += 1;
        }
        Ok(())
    }

    /// Waits for one datagram and accounts for it; `false` after a silence of [`SILENCE`].
    fn receive_one(&mut self) -> io::Result<bool> {
        let len = match self.socket.recv(&mut self.buf) {
            Ok(len) => len,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(false),
            Err(e) => return Err(self.target_error(e)),
        };
        match scan(&self.buf[..len]) {
            Some(Reply::Response(tx)) => {
                if take(&mut self.in_flight, tx) {
                    self.counts.answered += 1;
                } else {
                    self.counts.late += 1;
                }
            }
            Some(Reply::Error(tx)) => {
                if take(&mut self.in_flight, tx) {
                    self.counts.errors += 1;
                } else {
                    self.counts.late += 1;
                }
            }
            Some(Reply::Other) | None => self.counts.other += 1,
        }
        Ok(true)
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.config.query_timeout;
        let before = self.in_flight.len();
        self.in_flight.retain(|_, sent| now.duration_since(*sent) < timeout);
        self.counts.timeouts += (before - self.in_flight.len()) as u64;
    }

    fn target_error(&self, e: io::Error) -> io::Error {
        let hint = if e.kind() == io::ErrorKind::ConnectionRefused {
            " (ICMP port unreachable: is the target listening?)"
        } else {
            ""
        };
        io::Error::new(e.kind(), format!("{} -> {}: {e}{hint}", self.config.bind, self.config.target))
    }
}

/// Removes the query whose two-byte transaction id is `tx`; `false` if none was in flight.
fn take(in_flight: &mut HashMap<u16, Instant>, tx: &[u8]) -> bool {
    match <[u8; 2]>::try_from(tx) {
        Ok(tx) => in_flight.remove(&u16::from_be_bytes(tx)).is_some(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that answers `y=r` to even transaction ids, `y=e` to odd ones, and drops every
    /// eighth query; it stops after 500 ms without a query and returns how many it saw.
    fn fake_target() -> (SocketAddr, std::thread::JoinHandle<u64>) {
        let socket = UdpSocket::bind("127.201.0.1:0").expect("bind the fake target");
        socket.set_read_timeout(Some(Duration::from_millis(500))).expect("set timeout");
        let addr = socket.local_addr().expect("local addr");
        let handle = std::thread::spawn(move || {
            let (mut buf, mut seen) = ([0u8; 1500], 0u64);
            while let Ok((len, from)) = socket.recv_from(&mut buf) {
                seen += 1;
                let Some(tx) = buf[..len].windows(5).position(|w| w == b"1:t2:") else {
                    continue;
                };
                let tx = [buf[tx + 5], buf[tx + 6]];
                if seen % 8 == 0 {
                    continue;
                }
                let mut reply = b"d1:rd2:id20:AAAAAAAAAAAAAAAAAAAAe1:t2:".to_vec();
                reply.extend_from_slice(&tx);
                let y: &[u8] = if tx[1] % 2 == 0 { b"1:y1:re" } else { b"1:y1:ee" };
                reply.extend_from_slice(y);
                let _ = socket.send_to(&reply, from);
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn counts_answers_errors_and_losses_against_a_lossy_target() {
        let (target, handle) = fake_target();
        let config = SourceConfig {
            bind: "127.201.0.2:0".parse().expect("literal address"),
            target,
            window: 4,
            duration: Duration::from_millis(300),
            mix: Mix::parse("ping:1,find_node:1,get_peers:1").expect("valid mix"),
            seed: 1,
            read_only: false,
            query_timeout: Duration::from_millis(1000),
        };
        let (counts, elapsed) = run(&config).expect("run against the fake target");
        let seen = handle.join().expect("fake target thread");
        assert!(elapsed >= config.duration);
        assert_eq!(seen, counts.sent, "{counts:?}");
        assert!(counts.answered > 0 && counts.errors > 0 && counts.timeouts > 0, "{counts:?}");
        assert_eq!(counts.sent, counts.answered + counts.errors + counts.timeouts, "{counts:?}");
        assert_eq!(counts.late + counts.other, 0, "{counts:?}");
    }
}
