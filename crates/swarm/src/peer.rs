//! Per-connection state: handshake progress, choke and interest flags, our request
//! pipeline to the peer, its requests to us, rates and timers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mycel_peer_wire::{Bitfield, FrameDecoder};

use crate::rate::RateMeter;
use crate::{BlockRef, Config, BLOCK_LEN};

/// Window, in seconds, of the rate that sizes the request pipeline.
const PIPELINE_RATE_WINDOW: u64 = 5;
/// Late blocks we still accept (and count as waste) after cancelling them.
const CANCELLED_MEMORY: usize = 512;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the peer's handshake.
    Handshake,
    /// Handshake done; messages flow. `first` is true until the first message after it
    /// (the only place a bitfield / have all / have none may be).
    Active { first: bool },
}

/// A request the peer made of us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PeerRequest {
    pub piece: u32,
    pub begin: u32,
    pub len: u32,
}

/// One connection.
#[derive(Debug)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    pub outgoing: bool,
    pub connected_at: Instant,
    pub phase: Phase,
    pub rx: FrameDecoder,
    pub peer_id: Option<[u8; 20]>,
    /// Both sides set the fast extension bit.
    pub fast: bool,
    /// Both sides set the extension protocol bit.
    pub extended: bool,
    /// The id the peer wants `ut_metadata` messages under.
    pub ut_metadata: Option<u8>,
    /// The peer's PEX state (BEP 11).
    pub pex: crate::pex::PeerPex,
    /// Outstanding requests the peer accepts (its `reqq`).
    pub reqq: usize,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub has: Bitfield,
    /// Pieces the peer has that we want.
    pub interesting: u32,
    /// Our requests to the peer, with when they were sent.
    pub requests: BTreeMap<BlockRef, Instant>,
    /// Requests we withdrew (cancel, snub, reset piece): a late block is tolerated.
    pub cancelled: VecDeque<BlockRef>,
    /// Pieces the peer lets us request while choked (BEP 6).
    pub allowed_fast: BTreeSet<u32>,
    /// Its requests waiting for a disk read.
    pub queued: VecDeque<PeerRequest>,
    /// Its requests being read and still wanted (not cancelled, not choked).
    pub reading: BTreeSet<PeerRequest>,
    /// Reads in flight, wanted or not (the cap counts these).
    pub reads_in_flight: usize,
    pub down: RateMeter,
    pub up: RateMeter,
    pub last_recv: Instant,
    pub last_send: Instant,
    /// Last block received, or when requests started waiting.
    pub last_block: Instant,
    pub snubbed: bool,
    pub unchoked_since: Option<Instant>,
    pub last_unchoked: Option<Instant>,
    pub uploaded_since_unchoke: u64,
    /// Encoded messages not yet handed to the driver.
    pub out: Vec<u8>,
    /// Hash requests it may still make, in thousandths (a token bucket).
    pub hash_tokens: u64,
    /// When `hash_tokens` was last refilled.
    pub hash_tokens_at: Instant,
}

impl Peer {
    pub fn new(cfg: &Config, addr: SocketAddr, outgoing: bool, pieces: u32, now: Instant) -> Self {
        Peer {
            addr,
            outgoing,
            connected_at: now,
            phase: Phase::Handshake,
            rx: FrameDecoder::new(cfg.max_message_len),
            peer_id: None,
            fast: false,
            extended: false,
            ut_metadata: None,
            pex: crate::pex::PeerPex::default(),
            reqq: 250,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            has: Bitfield::new(pieces),
            interesting: 0,
            requests: BTreeMap::new(),
            cancelled: VecDeque::new(),
            allowed_fast: BTreeSet::new(),
            queued: VecDeque::new(),
            reading: BTreeSet::new(),
            reads_in_flight: 0,
            down: RateMeter::new(now),
            up: RateMeter::new(now),
            last_recv: now,
            last_send: now,
            last_block: now,
            snubbed: false,
            unchoked_since: None,
            last_unchoked: None,
            uploaded_since_unchoke: 0,
            out: Vec::new(),
            hash_tokens: u64::from(cfg.hash_request_burst) * 1000,
            hash_tokens_at: now,
        }
    }

    /// Takes one hash request token (refilled at `hash_requests_per_sec` up to
    /// `hash_request_burst`); `false` if there is none.
    pub fn take_hash_token(&mut self, cfg: &Config, now: Instant) -> bool {
        let ms = now.saturating_duration_since(self.hash_tokens_at).as_millis();
        let refill = u64::try_from(ms.saturating_mul(u128::from(cfg.hash_requests_per_sec))).unwrap_or(u64::MAX);
        let cap = u64::from(cfg.hash_request_burst) * 1000;
        self.hash_tokens = self.hash_tokens.saturating_add(refill).min(cap);
        self.hash_tokens_at = now;
        if self.hash_tokens < 1000 {
            return false;
        }
        self.hash_tokens -= 1000;
        true
    }

    /// Whether the handshake is done.
    pub fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Active { .. })
    }

    /// How many requests to keep outstanding: rate × latency / block size, clamped to
    /// `min_queue..=max_queue` and the peer's `reqq`; a snubbed peer gets one.
    pub fn queue_depth(&self, cfg: &Config, now: Instant) -> usize {
        if self.snubbed {
            return 1;
        }
        let rate = self.down.rate(now, PIPELINE_RATE_WINDOW);
        let bytes = u128::from(rate) * cfg.request_latency.as_millis() / 1000;
        let depth = usize::try_from(bytes / u128::from(BLOCK_LEN)).unwrap_or(usize::MAX);
        depth.clamp(cfg.min_queue, cfg.max_queue.max(cfg.min_queue)).min(self.reqq.max(1))
    }

    /// Whether we may send requests now: unchoked, or choked with allowed-fast pieces.
    pub fn can_request(&self) -> bool {
        self.is_active() && self.am_interested && (!self.peer_choking || (self.fast && !self.allowed_fast.is_empty()))
    }

    /// Remembers a withdrawn request so its late block is not a protocol violation.
    pub fn remember_cancelled(&mut self, r: BlockRef) {
        if self.cancelled.len() >= CANCELLED_MEMORY {
            self.cancelled.pop_front();
        }
        self.cancelled.push_back(r);
    }

    /// Forgets a withdrawn request; whether it was there.
    pub fn take_cancelled(&mut self, r: BlockRef) -> bool {
        match self.cancelled.iter().position(|&c| c == r) {
            Some(i) => {
                self.cancelled.remove(i);
                true
            }
            None => false,
        }
    }

    /// Time since anything was received.
    pub fn idle(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_recv)
    }

    /// Whether we need nothing from the peer and it needs nothing from us.
    pub fn useless(&self, we_are_seed: bool) -> bool {
        we_are_seed && self.has.is_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_tracks_rate() {
        #[allow(clippy::disallowed_methods)] // test origin
        let t0 = Instant::now();
        let cfg = Config::default();
        let mut p = Peer::new(&cfg, "127.0.0.1:1".parse().expect("addr"), true, 10, t0);
        assert_eq!(p.queue_depth(&cfg, t0), cfg.min_queue);
        // 10 MiB/s for 5 s: 3 s of it is 1920 blocks, clamped by reqq (250).
        for s in 0..5 {
            p.down.record(t0 + Duration::from_secs(s), 10 << 20);
        }
        let now = t0 + Duration::from_secs(5);
        assert_eq!(p.queue_depth(&cfg, now), 250);
        p.reqq = 1000;
        assert_eq!(p.queue_depth(&cfg, now), cfg.max_queue);
        p.snubbed = true;
        assert_eq!(p.queue_depth(&cfg, now), 1);
        let r = BlockRef { piece: 1, block: 2 };
        p.remember_cancelled(r);
        assert!(p.take_cancelled(r));
        assert!(!p.take_cancelled(r));
    }
}
