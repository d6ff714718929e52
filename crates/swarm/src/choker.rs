//! The choker: which peers we upload to.
//!
//! Every [`rechoke_interval`](ChokerConfig::rechoke_interval) (10 s) the engine hands the
//! choker a snapshot of its peers ([`Candidate`]) and gets back who is unchoked
//! ([`Decision`]). There are `slots` upload slots: `slots - 1` regular ones and one
//! optimistic one.
//!
//! - **Leeching**: regular slots go to the interested peers that delivered the most data to
//!   us over the measurement window (bytes we received and accepted, never what a peer
//!   claims). A peer that delivered nothing (a free rider) or is snubbed never gets a
//!   regular slot; it can only be the optimistic unchoke, or borrow a slot no earning peer
//!   wants (below).
//! - **Idle slots are lent**: while leeching, regular slots that no earning peer fills
//!   (at the start nobody has delivered anything) are lent to other interested peers,
//!   never unchoked first, then least recently unchoked (round-robin), until the next
//!   rechoke. An earning peer always takes a slot before a borrower: the engine swaps a
//!   borrower out as soon as a choked peer delivers. Capacity that would otherwise sit
//!   idle is used, so leechers start trading at once instead of after the first rechoke,
//!   and a free rider never displaces a peer that uploads to us.
//! - **Seeding**: regular slots rotate round-robin. A peer keeps its slot until it has
//!   taken [`seed_quota`](ChokerConfig::seed_quota) bytes or held the slot for
//!   [`seed_max_unchoke`](ChokerConfig::seed_max_unchoke); then the peers unchoked least
//!   recently come first, so no single peer takes the whole file.
//! - **Optimistic unchoke**: one interested peer outside the regular slots, rotated every
//!   [`optimistic_interval`](ChokerConfig::optimistic_interval) (30 s), drawn at random with
//!   peers connected less than [`new_peer_age`](ChokerConfig::new_peer_age) ago three times
//!   as likely; the current one is not drawn again while others are eligible.
//! - **Slot count**: starts at [`initial_slots`](ChokerConfig::initial_slots); grows by one
//!   while our upload rate keeps rising with every slot in use, shrinks when it falls,
//!   within `min_slots..=max_slots`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::PeerKey;

/// Choker settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChokerConfig {
    /// Time between rechokes.
    pub rechoke_interval: Duration,
    /// Time between optimistic unchoke rotations.
    pub optimistic_interval: Duration,
    /// Slots (regular + optimistic) to start with.
    pub initial_slots: usize,
    /// Fewest slots.
    pub min_slots: usize,
    /// Most slots.
    pub max_slots: usize,
    /// Peers connected for less than this are "new" (three times as likely to be the
    /// optimistic unchoke).
    pub new_peer_age: Duration,
    /// Seeding: bytes a peer may take before its slot rotates.
    pub seed_quota: u64,
    /// Seeding: time a peer may hold a slot before it rotates.
    pub seed_max_unchoke: Duration,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            initial_slots: 4,
            min_slots: 2,
            max_slots: 16,
            new_peer_age: Duration::from_secs(90),
            seed_quota: 4 << 20,
            seed_max_unchoke: Duration::from_secs(60),
        }
    }
}

/// What the choker knows of one peer at a rechoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The peer.
    pub key: PeerKey,
    /// The peer is interested in our pieces.
    pub interested: bool,
    /// Bytes per second of block data the peer delivered to us over the measurement window.
    pub download_rate: u64,
    /// Bytes of block data the peer delivered to us in total.
    pub downloaded: u64,
    /// No block from it for a long time while we had requests out.
    pub snubbed: bool,
    /// When it connected.
    pub connected_at: Instant,
    /// Since when it is unchoked (regularly or optimistically), if it is.
    pub unchoked_since: Option<Instant>,
    /// When it was last unchoked, if ever.
    pub last_unchoked: Option<Instant>,
    /// Bytes we uploaded to it since its current unchoke.
    pub uploaded_since_unchoke: u64,
}

/// The outcome of a rechoke: every peer not named is choked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Peers in regular slots.
    pub regular: BTreeSet<PeerKey>,
    /// The optimistic unchoke.
    pub optimistic: Option<PeerKey>,
    /// Leeching: idle regular slots lent to peers that did not earn one.
    pub lent: BTreeSet<PeerKey>,
}

impl Decision {
    /// Whether `key` is unchoked.
    pub fn is_unchoked(&self, key: PeerKey) -> bool {
        self.regular.contains(&key) || self.optimistic == Some(key) || self.lent.contains(&key)
    }
}

/// The choker's state between rechokes.
#[derive(Debug, Clone)]
pub struct Choker {
    cfg: ChokerConfig,
    slots: usize,
    last_upload_rate: u64,
    optimistic: Option<PeerKey>,
    optimistic_until: Instant,
    next_rechoke: Instant,
    rng: ChaCha8Rng,
}

impl Choker {
    /// A choker whose first rechoke is due at `now`.
    pub fn new(cfg: ChokerConfig, now: Instant, seed: [u8; 32]) -> Self {
        let slots = cfg.initial_slots.clamp(cfg.min_slots.max(1), cfg.max_slots.max(1));
        Choker {
            cfg,
            slots,
            last_upload_rate: 0,
            optimistic: None,
            optimistic_until: now,
            next_rechoke: now,
            rng: ChaCha8Rng::from_seed(seed),
        }
    }

    /// When the next rechoke is due.
    pub fn next_rechoke(&self) -> Instant {
        self.next_rechoke
    }

    /// Current number of slots, optimistic included.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The current optimistic unchoke.
    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic
    }

    /// Makes `key` the optimistic unchoke if the slot is empty, so a newly interested peer
    /// need not wait for the next rechoke; whether it did.
    pub fn offer_optimistic(&mut self, now: Instant, key: PeerKey) -> bool {
        if self.optimistic.is_some() || self.slots == 0 {
            return false;
        }
        self.optimistic = Some(key);
        self.optimistic_until = now + self.cfg.optimistic_interval;
        true
    }

    /// A peer left: it no longer holds the optimistic slot.
    pub fn peer_left(&mut self, key: PeerKey) {
        if self.optimistic == Some(key) {
            self.optimistic = None;
        }
    }

    /// Decides who is unchoked. `seeding`: we have every piece we want; `upload_rate`: our
    /// total upload rate over the last interval.
    pub fn rechoke(&mut self, now: Instant, seeding: bool, upload_rate: u64, peers: &[Candidate]) -> Decision {
        self.next_rechoke = now + self.cfg.rechoke_interval;
        // Slots adapt first, so the decision below always fits the current count. Lent
        // slots are in use too.
        let wanting = peers.iter().filter(|c| c.interested).count();
        self.adapt_slots(upload_rate, wanting >= self.slots.saturating_sub(1));
        let regular_slots = self.slots.saturating_sub(1);
        let regular =
            if seeding { self.seed_order(now, peers, regular_slots) } else { Self::leech_order(peers, regular_slots) };
        let optimistic = self.pick_optimistic(now, peers, &regular);
        let idle = regular_slots.saturating_sub(regular.len());
        let lent = Self::round_robin(
            peers.iter().filter(|c| c.interested && !regular.contains(&c.key) && optimistic != Some(c.key)),
        )
        .take(idle)
        .collect();
        Decision { regular, optimistic, lent }
    }

    /// Between rechokes: choked, interested peers to unchoke into the `free` slots no one
    /// holds (after a peer lost interest or left, or became interested). Peers that earn a
    /// slot come first (best uploaders to us), then the others round-robin, as lent slots.
    pub fn fill_idle(&self, seeding: bool, free: usize, peers: &[Candidate]) -> Vec<PeerKey> {
        let waiting = || peers.iter().filter(|c| c.interested && c.unchoked_since.is_none());
        let mut earners: Vec<&Candidate> =
            if seeding { Vec::new() } else { waiting().filter(|c| Self::earns_slot(c)).collect() };
        earners.sort_by_key(|c| (std::cmp::Reverse(c.download_rate), c.key));
        let rest = Self::round_robin(waiting().filter(|c| seeding || !Self::earns_slot(c)));
        earners.into_iter().map(|c| c.key).chain(rest).take(free).collect()
    }

    /// Whether the peer earns a regular slot while we leech (see the module docs).
    pub fn earns(c: &Candidate) -> bool {
        Self::earns_slot(c)
    }

    /// Never unchoked first, then least recently unchoked; ties by key.
    fn round_robin<'a>(peers: impl Iterator<Item = &'a Candidate>) -> impl Iterator<Item = PeerKey> + 'a {
        let mut v: Vec<&Candidate> = peers.collect();
        v.sort_by_key(|c| (c.last_unchoked.is_some(), c.last_unchoked, c.key));
        v.into_iter().map(|c| c.key)
    }

    /// Leeching: the best uploaders to us among interested, non-snubbed peers that delivered data.
    fn leech_order(peers: &[Candidate], n: usize) -> BTreeSet<PeerKey> {
        let mut eligible: Vec<&Candidate> = peers.iter().filter(|c| c.interested && Self::earns_slot(c)).collect();
        eligible.sort_by_key(|c| (std::cmp::Reverse(c.download_rate), c.key));
        eligible.into_iter().take(n).map(|c| c.key).collect()
    }

    /// Whether a peer may hold a regular slot while we leech: it delivered data recently
    /// and is not snubbed. Free riders never qualify.
    fn earns_slot(c: &Candidate) -> bool {
        !c.snubbed && c.download_rate > 0 && c.downloaded > 0
    }

    /// Seeding: peers within their quota keep their slot; then least recently unchoked first.
    fn seed_order(&self, now: Instant, peers: &[Candidate], n: usize) -> BTreeSet<PeerKey> {
        let within_quota = |c: &Candidate| {
            c.unchoked_since.is_some_and(|since| {
                c.uploaded_since_unchoke < self.cfg.seed_quota
                    && now.saturating_duration_since(since) < self.cfg.seed_max_unchoke
            })
        };
        let mut keep: Vec<&Candidate> = peers.iter().filter(|c| c.interested && within_quota(c)).collect();
        keep.sort_by_key(|c| (c.unchoked_since, c.key));
        let rest = Self::round_robin(peers.iter().filter(|c| c.interested && !within_quota(c)));
        keep.into_iter().map(|c| c.key).chain(rest).take(n).collect()
    }

    fn adapt_slots(&mut self, upload_rate: u64, all_used: bool) {
        let last = self.last_upload_rate;
        if all_used && upload_rate > 0 && upload_rate > last + last / 10 {
            self.slots = (self.slots + 1).min(self.cfg.max_slots.max(1));
        } else if upload_rate < last - last / 5 {
            self.slots = self.slots.saturating_sub(1).max(self.cfg.min_slots.max(1));
        }
        self.last_upload_rate = upload_rate;
    }

    fn pick_optimistic(&mut self, now: Instant, peers: &[Candidate], regular: &BTreeSet<PeerKey>) -> Option<PeerKey> {
        if self.slots == 0 {
            self.optimistic = None;
            return None;
        }
        let eligible: Vec<&Candidate> = peers.iter().filter(|c| c.interested && !regular.contains(&c.key)).collect();
        let current_ok = self.optimistic.is_some_and(|k| eligible.iter().any(|c| c.key == k));
        if current_ok && now < self.optimistic_until {
            return self.optimistic;
        }
        let others: Vec<&Candidate> = eligible.iter().copied().filter(|c| Some(c.key) != self.optimistic).collect();
        if others.is_empty() && current_ok {
            // The only candidate: it stays, and its time stays up, so it rotates as soon as
            // another candidate appears.
            return self.optimistic;
        }
        let pool = if others.is_empty() { eligible } else { others };
        let weight = |c: &Candidate| {
            if now.saturating_duration_since(c.connected_at) < self.cfg.new_peer_age {
                3u64
            } else {
                1
            }
        };
        let total: u64 = pool.iter().map(|c| weight(c)).sum();
        self.optimistic = if total == 0 {
            None
        } else {
            let mut draw = self.rng.gen_range(0..total);
            pool.iter()
                .find(|c| {
                    let w = weight(c);
                    if draw < w {
                        true
                    } else {
                        draw -= w;
                        false
                    }
                })
                .map(|c| c.key)
        };
        self.optimistic_until = now + self.cfg.optimistic_interval;
        self.optimistic
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cand(key: u64, now: Instant, rate: u64) -> Candidate {
        Candidate {
            key: PeerKey(key),
            interested: true,
            download_rate: rate,
            downloaded: rate * 10,
            snubbed: false,
            connected_at: now,
            unchoked_since: None,
            last_unchoked: None,
            uploaded_since_unchoke: 0,
        }
    }

    #[test]
    fn leecher_unchokes_best_uploaders() {
        // Test origin: the one place a clock is read, for a base instant.
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut c = Choker::new(ChokerConfig::default(), t0, [1; 32]);
        let peers: Vec<Candidate> = (0..8).map(|k| cand(k, t0, k * 100)).collect();
        let d = c.rechoke(t0, false, 0, &peers);
        assert_eq!(d.regular, [PeerKey(7), PeerKey(6), PeerKey(5)].into_iter().collect());
        assert!(d.optimistic.is_some_and(|k| k.0 < 5), "optimistic outside the regular slots");
        assert_eq!(c.next_rechoke(), t0 + Duration::from_secs(10));
    }

    #[test]
    fn seeder_rotates() {
        #[allow(clippy::disallowed_methods)] // test origin
        let t0 = Instant::now();
        let cfg = ChokerConfig { initial_slots: 3, ..ChokerConfig::default() };
        let mut c = Choker::new(cfg.clone(), t0, [2; 32]);
        let mut peers: Vec<Candidate> = (0..6).map(|k| cand(k, t0, 0)).collect();
        let mut served = BTreeSet::new();
        let mut now = t0;
        for _ in 0..6 {
            let d = c.rechoke(now, true, 1000, &peers);
            for p in peers.iter_mut() {
                if d.regular.contains(&p.key) {
                    if p.unchoked_since.is_none() {
                        p.unchoked_since = Some(now);
                        p.uploaded_since_unchoke = 0;
                    }
                    p.uploaded_since_unchoke += cfg.seed_quota / 2;
                    p.last_unchoked = Some(now);
                    served.insert(p.key);
                } else {
                    p.unchoked_since = None;
                }
            }
            now += cfg.rechoke_interval;
        }
        assert_eq!(served.len(), 6, "every peer had a regular slot: {served:?}");
    }

    #[test]
    fn idle_slots_are_lent_and_earners_come_first() {
        #[allow(clippy::disallowed_methods)] // test origin
        let t0 = Instant::now();
        let mut c = Choker::new(ChokerConfig::default(), t0, [3; 32]);
        // At the start nobody delivered anything: the 3 regular slots are lent, none is regular.
        let mut peers: Vec<Candidate> = (0..6).map(|k| cand(k, t0, 0)).collect();
        let d = c.rechoke(t0, false, 0, &peers);
        assert!(d.regular.is_empty());
        assert_eq!(d.lent.len(), 3);
        assert!(d.optimistic.is_some_and(|o| !d.lent.contains(&o)));
        // Peer 5 delivers: it takes a regular slot, borrowers get what is left.
        peers[5].download_rate = 1000;
        peers[5].downloaded = 10_000;
        let d = c.rechoke(t0 + Duration::from_secs(10), false, 0, &peers);
        assert!(d.regular.contains(&PeerKey(5)));
        assert_eq!(d.lent.len(), 2);
        assert!(!d.lent.contains(&PeerKey(5)));
        // Between rechokes a free slot goes to an earner first, then round-robin.
        peers[2].last_unchoked = Some(t0);
        let fill = c.fill_idle(false, 6, &peers);
        assert_eq!(fill[0], PeerKey(5));
        assert_eq!(*fill.last().expect("some"), PeerKey(2), "most recently unchoked last");
        assert_eq!(c.fill_idle(false, 2, &peers).len(), 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// While leeching, a peer that never uploaded is never in a regular slot; slots never
        /// exceed the limit; the optimistic peer changes every 30 s when there are candidates.
        #[test]
        fn choker_invariants(
            seed in any::<[u8; 32]>(),
            peers in proptest::collection::vec((any::<bool>(), 0u64..5, any::<bool>(), 0u64..200), 0..20),
            rounds in 1usize..12,
            upload in proptest::collection::vec(0u64..100_000, 12),
            seeding in any::<bool>(),
        ) {
            #[allow(clippy::disallowed_methods)] // test origin
            let t0 = Instant::now();
            let cfg = ChokerConfig::default();
            let mut c = Choker::new(cfg.clone(), t0, seed);
            let cands: Vec<Candidate> = peers.iter().enumerate().map(|(i, &(interested, rate, snubbed, age))| Candidate {
                key: PeerKey(i as u64),
                interested,
                download_rate: rate * 1000,
                downloaded: rate * 10_000,
                snubbed,
                connected_at: t0.checked_sub(Duration::from_secs(age)).unwrap_or(t0),
                unchoked_since: None,
                last_unchoked: None,
                uploaded_since_unchoke: 0,
            }).collect();
            let mut now = t0;
            let mut last_opt: Option<(PeerKey, Instant)> = None;
            for &rate in upload.iter().take(rounds) {
                let d = c.rechoke(now, seeding, rate, &cands);
                prop_assert!(c.slots() <= cfg.max_slots && c.slots() >= cfg.min_slots);
                prop_assert!(d.regular.len() + d.lent.len() + usize::from(d.optimistic.is_some()) <= c.slots());
                if let Some(o) = d.optimistic { prop_assert!(!d.regular.contains(&o) && !d.lent.contains(&o)); }
                prop_assert!(d.lent.is_disjoint(&d.regular));
                prop_assert!(!seeding || d.lent.is_empty(), "slots lent while seeding");
                if !seeding {
                    for k in &d.regular {
                        let p = &cands[k.0 as usize];
                        prop_assert!(p.downloaded > 0 && p.download_rate > 0, "free rider in a regular slot");
                    }
                    if !d.lent.is_empty() {
                        // A slot is lent only when no earning peer is left waiting for it.
                        for p in cands.iter().filter(|p| p.interested && Choker::earns(p)) {
                            prop_assert!(d.regular.contains(&p.key), "earning peer waits while a slot is lent");
                        }
                    }
                    for k in &d.lent {
                        prop_assert!(cands[k.0 as usize].interested, "slot lent to an uninterested peer");
                    }
                }
                let eligible = cands.iter().filter(|p| p.interested && !d.regular.contains(&p.key)).count();
                if let (Some((prev, at)), Some(o)) = (last_opt, d.optimistic) {
                    if now >= at + cfg.optimistic_interval && eligible >= 2 {
                        prop_assert_ne!(prev, o, "optimistic unchoke did not rotate");
                    }
                }
                if d.optimistic != last_opt.map(|(k, _)| k) {
                    last_opt = d.optimistic.map(|k| (k, now));
                }
                now += cfg.rechoke_interval;
            }
        }
    }
}
