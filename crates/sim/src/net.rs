//! The network model: where nodes sit, how long a datagram takes, which ones are lost, and
//! which ones a NAT or a partition stops.
//!
//! - **Placement**: each node is put in one of six regions, weighted by population; the
//!   propagation RTT between regions comes from [`RTT_MS`] (see docs/SIMULATION.md for the
//!   sources).
//! - **Delay**: one-way delay = half the regional RTT + the access delay of both ends (per
//!   node, log-normal: a heavy tail of slow links), times a per-datagram jitter factor. The
//!   whole is scaled so the median RTT between two random nodes is `median_rtt`.
//! - **Loss**: a rate, either independent per datagram or in bursts (a Gilbert–Elliott chain
//!   per receiving access link, all-lost in the bad state, with the given mean burst length).
//! - **NAT**: a node behind NAT admits a datagram only from an address it sent to within the
//!   mapping lifetime (address-restricted cone NAT).
//! - **Partitions**: datagrams from one region to another are dropped in a time window; the
//!   reverse direction may stay open (asymmetric).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use rand::Rng;

use crate::dist::{exponential, quantile, LogNormal};
use crate::SimError;

/// Region names, in the order of [`RTT_MS`].
pub const REGIONS: [&str; 6] = ["na-east", "na-west", "europe", "asia", "south-america", "oceania"];

/// Share of nodes per region (an assumption modelled on published DHT crawls, which find
/// Europe and East Asia largest; see docs/SIMULATION.md).
pub const REGION_WEIGHTS: [f64; 6] = [0.14, 0.08, 0.32, 0.30, 0.11, 0.05];

/// Propagation RTT between regions in milliseconds (representative city pairs from public
/// inter-city and inter-datacenter ping tables; the diagonal is a typical intra-region RTT).
pub const RTT_MS: [[f64; 6]; 6] = [
    //  na-e   na-w     eu   asia     sa     oc
    [25.0, 65.0, 80.0, 180.0, 120.0, 200.0],
    [65.0, 25.0, 145.0, 110.0, 170.0, 140.0],
    [80.0, 145.0, 25.0, 230.0, 195.0, 270.0],
    [180.0, 110.0, 230.0, 40.0, 290.0, 120.0],
    [120.0, 170.0, 195.0, 290.0, 30.0, 310.0],
    [200.0, 140.0, 270.0, 120.0, 310.0, 25.0],
];

/// Parameters of the network model.
#[derive(Debug, Clone, PartialEq)]
pub struct NetParams {
    /// Median RTT between two random nodes; all delays are scaled to it.
    pub median_rtt: Duration,
    /// Median one-way access delay of a node, before scaling.
    pub access_median_ms: f64,
    /// Log-deviation of the access delay (1.4: one node in 20 has 10x the median or more).
    pub access_sigma: f64,
    /// Mean per-datagram jitter as a fraction of the base delay (exponential).
    pub jitter: f64,
    /// Long-run fraction of datagrams lost.
    pub loss: f64,
    /// Mean loss burst length in datagrams (1: independent losses).
    pub loss_burst: f64,
    /// Fraction of honest nodes behind NAT.
    pub nat: f64,
    /// How long a NAT keeps a mapping after the node last sent to an address.
    pub nat_timeout: Duration,
    /// Asymmetric partitions.
    pub partitions: Vec<Partition>,
}

impl Default for NetParams {
    fn default() -> Self {
        NetParams {
            median_rtt: Duration::from_millis(100),
            access_median_ms: 10.0,
            access_sigma: 1.4,
            jitter: 0.1,
            loss: 0.01,
            loss_burst: 1.0,
            nat: 0.3,
            nat_timeout: Duration::from_secs(120),
            partitions: Vec::new(),
        }
    }
}

/// Datagrams from region `from` to region `to` are dropped during `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Sending region (index into [`REGIONS`]).
    pub from: usize,
    /// Receiving region.
    pub to: usize,
    /// Start, from the beginning of the run.
    pub start: Duration,
    /// End (exclusive).
    pub end: Duration,
}

impl Partition {
    /// Parses `FROM>TO@START-END` (region names, seconds), e.g. `europe>asia@600-900`.
    pub fn parse(s: &str) -> Result<Self, SimError> {
        let bad = |why: &str| {
            SimError::invalid("partition", format!("{s:?}: {why} (want FROM>TO@START-END, e.g. europe>asia@600-900)"))
        };
        let (regions, window) = s.split_once('@').ok_or_else(|| bad("missing @"))?;
        let (from, to) = regions.split_once('>').ok_or_else(|| bad("missing >"))?;
        let region = |name: &str| {
            REGIONS
                .iter()
                .position(|r| *r == name)
                .ok_or_else(|| bad(&format!("unknown region {name:?}; known: {}", REGIONS.join(", "))))
        };
        let (start, end) = window.split_once('-').ok_or_else(|| bad("missing -"))?;
        let secs = |v: &str| v.parse::<u64>().map_err(|_| bad(&format!("{v:?} is not a number of seconds")));
        let (start, end) = (secs(start)?, secs(end)?);
        if end <= start {
            return Err(bad("end must be after start"));
        }
        Ok(Partition {
            from: region(from)?,
            to: region(to)?,
            start: Duration::from_secs(start),
            end: Duration::from_secs(end),
        })
    }
}

/// A fast hasher for the NAT tables' `u32` keys (node indices chosen by us, not an attacker).
#[derive(Default)]
struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A NAT's mappings: peer index -> last send time in milliseconds since the start.
type NatTable = HashMap<u32, u32, BuildHasherDefault<IndexHasher>>;

/// NAT tables are pruned of expired mappings when they reach this size.
const NAT_PRUNE_AT: usize = 256;

/// The network: per-node placement and state, and the fate of each datagram.
pub struct Network {
    params: NetParams,
    region: Vec<u8>,
    /// One-way access delay per node, scaled, in microseconds.
    access_us: Vec<u32>,
    /// One-way propagation delay between regions, scaled, in microseconds.
    prop_us: [[u32; 6]; 6],
    nat: Vec<Option<Box<NatTable>>>,
    /// Gilbert–Elliott state of each node's access link (true: bad, dropping).
    burst: Vec<bool>,
    /// P(good -> bad) and P(bad -> good) per datagram.
    ge: (f64, f64),
    scale: f64,
}

impl Network {
    /// Places `n` nodes; `behind_nat(i)` says which ones sit behind NAT.
    pub fn new<R: Rng>(n: usize, params: NetParams, rng: &mut R, behind_nat: impl Fn(usize) -> bool) -> Self {
        let access = LogNormal::new(params.access_median_ms * 1000.0, params.access_sigma);
        let mut region = Vec::with_capacity(n);
        let mut access_us = Vec::with_capacity(n);
        let mut nat = Vec::with_capacity(n);
        for i in 0..n {
            region.push(pick_region(rng.gen()));
            access_us.push(access.sample(rng).min(5e6) as u32);
            nat.push(if behind_nat(i) { Some(Box::default()) } else { None });
        }
        let ge = if params.loss_burst > 1.0 && params.loss > 0.0 {
            let r = 1.0 / params.loss_burst;
            ((r * params.loss / (1.0 - params.loss)).min(1.0), r)
        } else {
            (0.0, 1.0)
        };
        let mut net =
            Network { params, region, access_us, prop_us: [[0; 6]; 6], nat, burst: vec![false; n], ge, scale: 1.0 };
        net.calibrate(rng);
        net
    }

    /// Scales propagation and access delays so the median RTT of random pairs is the target.
    fn calibrate<R: Rng>(&mut self, rng: &mut R) {
        let n = self.region.len();
        for (a, row) in RTT_MS.iter().enumerate() {
            for (b, ms) in row.iter().enumerate() {
                self.prop_us[a][b] = (ms * 500.0) as u32;
            }
        }
        if n < 2 {
            return;
        }
        let mut rtts: Vec<f64> = (0..20_000)
            .map(|_| {
                let a = rng.gen_range(0..n);
                let b = rng.gen_range(0..n);
                (self.base_us(a, b) + self.base_us(b, a)) * (1.0 + self.params.jitter)
            })
            .collect();
        rtts.sort_by(f64::total_cmp);
        let median = quantile(&rtts, 0.5);
        let target = self.params.median_rtt.as_secs_f64() * 1e6;
        self.scale = if median > 0.0 { target / median } else { 1.0 };
        for row in &mut self.prop_us {
            for v in row.iter_mut() {
                *v = (f64::from(*v) * self.scale) as u32;
            }
        }
        for v in &mut self.access_us {
            *v = (f64::from(*v) * self.scale) as u32;
        }
    }

    fn base_us(&self, a: usize, b: usize) -> f64 {
        let p = self.prop_us[usize::from(self.region[a])][usize::from(self.region[b])];
        f64::from(p) + f64::from(self.access_us[a]) + f64::from(self.access_us[b])
    }

    /// The factor applied to the public RTT table to reach the target median.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Region index of a node.
    pub fn region(&self, node: usize) -> usize {
        usize::from(self.region[node])
    }

    /// Whether a node sits behind NAT.
    pub fn is_natted(&self, node: usize) -> bool {
        self.nat[node].is_some()
    }

    /// A node sends a datagram to `dst` at `now`: its NAT (if any) opens a mapping. Returns
    /// the one-way delay, or `None` when the datagram is lost on the way (loss or partition).
    pub fn send<R: Rng>(&mut self, now: Duration, src: usize, dst: usize, rng: &mut R) -> Option<Duration> {
        if let Some(t) = self.nat[src].as_deref_mut() {
            let ms = now.as_millis() as u32;
            if t.len() >= NAT_PRUNE_AT && !t.contains_key(&(dst as u32)) {
                let keep = self.params.nat_timeout.as_millis() as u32;
                t.retain(|_, last| ms.saturating_sub(*last) < keep);
            }
            t.insert(dst as u32, ms);
        }
        let (rs, rd) = (self.region(src), self.region(dst));
        if self.params.partitions.iter().any(|p| p.from == rs && p.to == rd && now >= p.start && now < p.end) {
            return None;
        }
        if self.lost(dst, rng) {
            return None;
        }
        let base = self.base_us(src, dst);
        let jitter = if self.params.jitter > 0.0 { exponential(rng, self.params.jitter) } else { 0.0 };
        Some(Duration::from_micros((base * (1.0 + jitter)) as u64))
    }

    fn lost<R: Rng>(&mut self, dst: usize, rng: &mut R) -> bool {
        if self.params.loss <= 0.0 {
            return false;
        }
        if self.params.loss_burst <= 1.0 {
            return rng.gen_bool(self.params.loss.min(1.0));
        }
        let bad = &mut self.burst[dst];
        let flip = if *bad { self.ge.1 } else { self.ge.0 };
        if rng.gen_bool(flip) {
            *bad = !*bad;
        }
        *bad
    }

    /// Whether `dst`'s NAT lets in a datagram from `src` arriving at `now`.
    pub fn admits(&self, now: Duration, dst: usize, src: usize) -> bool {
        match self.nat[dst].as_deref() {
            None => true,
            Some(t) => t.get(&(src as u32)).is_some_and(|last| {
                (now.as_millis() as u32).saturating_sub(*last) < self.params.nat_timeout.as_millis() as u32
            }),
        }
    }

    /// A node went offline: its NAT forgets everything and its link state resets.
    pub fn reset(&mut self, node: usize) {
        if let Some(t) = self.nat[node].as_deref_mut() {
            *t = NatTable::default();
        }
        self.burst[node] = false;
    }

    /// Heap bytes held for NAT mappings (for the memory report).
    pub fn nat_entries(&self) -> usize {
        self.nat.iter().flatten().map(|t| t.len()).sum()
    }
}

fn pick_region(u: f64) -> u8 {
    let mut acc = 0.0;
    for (i, w) in REGION_WEIGHTS.iter().enumerate() {
        acc += w;
        if u < acc {
            return i as u8;
        }
    }
    (REGION_WEIGHTS.len() - 1) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn net(params: NetParams, n: usize) -> (Network, ChaCha8Rng) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let net = Network::new(n, params, &mut rng, |i| i % 2 == 1);
        (net, rng)
    }

    #[test]
    fn median_rtt_is_calibrated_with_a_heavy_tail() {
        let (mut n, mut rng) = net(NetParams { loss: 0.0, nat: 0.0, ..NetParams::default() }, 2000);
        let mut rtts: Vec<f64> = (0..20_000)
            .map(|i| {
                let (a, b) = ((i * 7919) % 2000, (i * 104_729 + 1) % 2000);
                let t = Duration::ZERO;
                let d1 = n.send(t, a, b, &mut rng).expect("no loss");
                let d2 = n.send(t, b, a, &mut rng).expect("no loss");
                (d1 + d2).as_secs_f64() * 1000.0
            })
            .collect();
        rtts.sort_by(f64::total_cmp);
        let (p50, p99) = (quantile(&rtts, 0.5), quantile(&rtts, 0.99));
        assert!((85.0..115.0).contains(&p50), "median RTT {p50} ms");
        assert!(p99 > 2.5 * p50, "heavy tail: p99 {p99} ms");
    }

    #[test]
    fn loss_rate_with_and_without_bursts() {
        for burst in [1.0, 10.0] {
            let (mut n, mut rng) =
                net(NetParams { loss: 0.05, loss_burst: burst, nat: 0.0, ..NetParams::default() }, 10);
            let lost = (0..200_000).filter(|i| n.send(Duration::ZERO, 0, 1 + i % 9, &mut rng).is_none()).count();
            let rate = lost as f64 / 200_000.0;
            assert!((rate - 0.05).abs() < 0.01, "burst {burst}: rate {rate}");
        }
    }

    #[test]
    fn nat_admits_only_recent_contacts() {
        let (mut n, mut rng) = net(NetParams { loss: 0.0, ..NetParams::default() }, 4);
        assert!(n.is_natted(1) && !n.is_natted(0));
        assert!(n.admits(Duration::ZERO, 0, 1), "public nodes admit anyone");
        assert!(!n.admits(Duration::ZERO, 1, 0), "no mapping yet");
        n.send(Duration::from_secs(10), 1, 0, &mut rng);
        assert!(n.admits(Duration::from_secs(100), 1, 0));
        assert!(!n.admits(Duration::from_secs(131), 1, 0), "mapping expired");
        assert!(!n.admits(Duration::from_secs(20), 1, 2), "only the contacted address");
    }

    #[test]
    fn partitions_are_directional() {
        let p = Partition::parse("europe>asia@10-20").expect("valid");
        assert_eq!((p.from, p.to), (2, 3));
        assert!(Partition::parse("europe>mars@10-20").is_err());
        assert!(Partition::parse("europe>asia@20-10").is_err());
        let (mut n, mut rng) = net(NetParams { loss: 0.0, nat: 0.0, partitions: vec![p], ..NetParams::default() }, 400);
        let eu = (0..400).find(|i| n.region(*i) == 2).expect("someone in europe");
        let asia = (0..400).find(|i| n.region(*i) == 3).expect("someone in asia");
        let t = Duration::from_secs(15);
        assert!(n.send(t, eu, asia, &mut rng).is_none());
        assert!(n.send(t, asia, eu, &mut rng).is_some(), "the reverse direction is open");
        assert!(n.send(Duration::from_secs(25), eu, asia, &mut rng).is_some(), "healed");
    }
}
