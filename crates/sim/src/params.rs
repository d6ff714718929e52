//! The parameters of one simulated scenario, with their checks.

use std::time::Duration;

use crate::dist::Weibull;
use crate::net::NetParams;
use crate::SimError;

/// Which protocol every honest node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// mycel's real Mainline DHT node (Kademlia).
    Kademlia,
    /// Gnutella-style flooding with a TTL.
    Flood,
    /// Chord finger routing (iterative).
    Chord,
    /// A zero-hop ring: every node knows the full membership.
    Zerohop,
}

impl Protocol {
    /// Whether a lookup is judged by XOR distance (else by ring successor).
    pub fn xor_metric(self) -> bool {
        matches!(self, Protocol::Kademlia | Protocol::Flood)
    }
}

/// What the Sybil nodes do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Attack {
    /// Answer pings (to stay in routing tables) but drop every lookup query.
    Drop,
    /// Answer lookups with only other Sybils, under ids forged next to the target.
    Eclipse,
    /// Answer `get_peers` with fake peers.
    Fake,
}

/// What the nodes do once the network has settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Lookups for random keys, judged against the true closest nodes.
    #[default]
    Lookups,
    /// BEP 44 items (Kademlia only): random nodes put items, other nodes get them back.
    Items,
}

/// Node churn: session and down times drawn from Weibull distributions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    /// Session length.
    pub session: Weibull,
    /// Time offline between sessions.
    pub downtime: Weibull,
}

/// Gnutella-style flooding parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodParams {
    /// Neighbours each node connects to.
    pub degree: usize,
    /// Initial TTL of a query.
    pub ttl: u8,
    /// How long the origin collects hits before it ends the search.
    pub wait: Duration,
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Nodes in all (Sybils included).
    pub nodes: usize,
    /// Lookups in the measurement window.
    pub lookups: usize,
    /// What the nodes do once the network has settled.
    pub workload: Workload,
    /// Items the items workload puts (half immutable, half mutable; each mutable item is put
    /// twice, seq 1 then seq 2) and gets back.
    pub items: usize,
    /// Seed of the one generator everything is drawn from.
    pub seed: u64,
    /// Protocol of the honest nodes.
    pub protocol: Protocol,
    /// The network model.
    pub net: NetParams,
    /// Churn, if any.
    pub churn: Option<Churn>,
    /// Fraction of nodes that are Sybils (Kademlia only).
    pub sybil: f64,
    /// What the Sybils do.
    pub attack: Attack,
    /// Disjoint lookup paths (S/Kademlia d; 1 = plain).
    pub disjoint: usize,
    /// Kademlia bucket size / replication k (also the k of "closest k" for every protocol).
    pub k: usize,
    /// Kademlia parallelism α.
    pub alpha: usize,
    /// Overrides mycel's `Config::max_request_timeout` (the hard request timeout), for
    /// experiments.
    pub kad_max_timeout: Option<Duration>,
    /// Nodes behind NAT run mycel in read-only mode (BEP 43), as a node that detected it is
    /// unreachable could.
    pub nat_read_only: bool,
    /// Nodes join spread over this time.
    pub join: Duration,
    /// Quiet time between the last join and the first lookup.
    pub settle: Duration,
    /// Lookups start uniformly over this window.
    pub window: Duration,
    /// Flooding parameters.
    pub flood: FloodParams,
    /// How often the baselines' membership view (host cache, Chord stabilization, zero-hop
    /// gossip) is refreshed.
    pub membership_period: Duration,
}

impl Scenario {
    /// A scenario with the defaults of the model: 100 ms median RTT, 1 % loss, 30 %
    /// of honest nodes behind NAT, no churn, no Sybils.
    pub fn new(nodes: usize, lookups: usize, seed: u64, protocol: Protocol) -> Self {
        Scenario {
            nodes,
            lookups,
            workload: Workload::Lookups,
            items: 1000,
            seed,
            protocol,
            net: NetParams::default(),
            churn: None,
            sybil: 0.0,
            attack: Attack::Eclipse,
            disjoint: 1,
            k: 8,
            alpha: mycel_dht::Config::default().alpha,
            kad_max_timeout: None,
            nat_read_only: false,
            join: Duration::from_secs((nodes as u64 / 200).clamp(10, 600)),
            settle: Duration::from_secs(60),
            window: Duration::from_secs(60),
            flood: FloodParams { degree: 8, ttl: 4, wait: Duration::from_secs(3) },
            membership_period: Duration::from_secs(30),
        }
    }

    /// Checks the parameters, naming the offending flag.
    pub fn validate(&self) -> Result<(), SimError> {
        let inv = SimError::invalid;
        if self.nodes < 2 {
            return Err(inv("nodes", format!("need at least 2 nodes, got {}", self.nodes)));
        }
        if self.nodes > 16_000_000 {
            return Err(inv("nodes", "at most 16,000,000 (the 10.0.0.0/8 address space)".into()));
        }
        if !(0.0..=1.0).contains(&self.sybil) {
            return Err(inv("sybil", format!("a fraction in [0, 1], got {}", self.sybil)));
        }
        if self.sybil > 0.0 && self.protocol != Protocol::Kademlia {
            return Err(inv("sybil", "Sybil attacks are modelled for --protocol kademlia only".into()));
        }
        let honest = self.nodes - (self.sybil * self.nodes as f64).round() as usize;
        if honest < 2 {
            return Err(inv("sybil", "leaves fewer than 2 honest nodes".into()));
        }
        if !(0.0..1.0).contains(&self.net.loss) {
            return Err(inv("loss", format!("a fraction in [0, 1), got {}", self.net.loss)));
        }
        if !(self.net.loss_burst.is_finite() && self.net.loss_burst >= 1.0) {
            return Err(inv("loss-burst", format!("a mean burst length ≥ 1, got {}", self.net.loss_burst)));
        }
        if !(0.0..1.0).contains(&self.net.nat) {
            return Err(inv("nat", format!("a fraction in [0, 1), got {}", self.net.nat)));
        }
        if self.net.median_rtt.is_zero() {
            return Err(inv("median-rtt", "must be positive".into()));
        }
        if !(1..=16).contains(&self.disjoint) {
            return Err(inv("disjoint", format!("between 1 and 16 paths, got {}", self.disjoint)));
        }
        if !(1..=64).contains(&self.k) {
            return Err(inv("k", format!("between 1 and 64, got {}", self.k)));
        }
        if !(1..=32).contains(&self.alpha) {
            return Err(inv("alpha", format!("between 1 and 32, got {}", self.alpha)));
        }
        if self.flood.degree == 0 || self.flood.degree >= self.nodes {
            return Err(inv("flood-degree", format!("between 1 and nodes - 1, got {}", self.flood.degree)));
        }
        if self.flood.ttl == 0 {
            return Err(inv("flood-ttl", "must be at least 1".into()));
        }
        if self.membership_period.is_zero() {
            return Err(inv("membership-period", "must be positive".into()));
        }
        if self.window.is_zero() {
            return Err(inv("lookup-window", "must be positive".into()));
        }
        if self.workload == Workload::Items {
            if self.protocol != Protocol::Kademlia {
                return Err(inv("workload", "the items workload runs on --protocol kademlia only".into()));
            }
            if !(1..=1_000_000).contains(&self.items) {
                return Err(inv("items", format!("between 1 and 1,000,000 items, got {}", self.items)));
            }
        }
        Ok(())
    }

    /// Number of Sybil nodes.
    pub fn sybils(&self) -> usize {
        (self.sybil * self.nodes as f64).round() as usize
    }

    /// Virtual time at which lookups start.
    pub fn lookups_start(&self) -> Duration {
        self.join + self.settle
    }

    /// Virtual time at which the items workload starts its gets: after the puts' window and
    /// time for the last put (a seq-1 and a seq-2 put of a mutable item in a row, each
    /// bounded by the item lookup deadline plus a `put` timeout) to end.
    pub fn gets_start(&self) -> Duration {
        self.lookups_start() + self.window + Duration::from_secs(30)
    }

    /// Virtual time at which the run ends (the last lookup or get has had time to finish).
    pub fn end(&self) -> Duration {
        match self.workload {
            Workload::Lookups => self.lookups_start() + self.window + Duration::from_secs(25),
            Workload::Items => self.gets_start() + self.window + Duration::from_secs(25),
        }
    }
}
