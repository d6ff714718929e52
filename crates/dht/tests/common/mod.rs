//! The in-memory network shared by the integration tests: real `Node`s exchanging datagrams
//! on virtual time, with seeded latency and loss.

#![allow(clippy::disallowed_methods, dead_code)] // virtual time origin; not every test uses every helper

pub mod republish;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mycel_dht::{Config, Event, LookupResult, Node, NodeId, QueryId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A datagram in flight: (arrival, sequence, sender index, destination, payload).
type InFlight = Reverse<(Instant, u64, usize, SocketAddr, Vec<u8>)>;

pub struct Net {
    pub start: Instant,
    pub now: Instant,
    pub nodes: Vec<Node>,
    pub addrs: Vec<SocketAddr>,
    pub index: HashMap<SocketAddr, usize>,
    pub queue: BinaryHeap<InFlight>,
    pub seq: u64,
    pub rng: ChaCha8Rng,
    pub loss: f64,
    pub events: Vec<(usize, Event)>,
    pub trace: std::collections::hash_map::DefaultHasher,
    pub datagrams: u64,
}

impl Net {
    pub fn new(n: usize, seed: u64, loss: f64, config: Config) -> Net {
        let start = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        let mut index = HashMap::new();
        for i in 0..n {
            let addr = SocketAddr::from(([127, 1, (i / 250) as u8, (i % 250) as u8 + 1], 6881));
            let node = Node::new(config.clone(), NodeId(rng.gen()), rng.gen(), start);
            index.insert(addr, i);
            addrs.push(addr);
            nodes.push(node);
        }
        Net {
            start,
            now: start,
            nodes,
            addrs,
            index,
            queue: BinaryHeap::new(),
            seq: 0,
            rng,
            loss,
            events: Vec::new(),
            trace: Default::default(),
            datagrams: 0,
        }
    }

    /// Drains a node's outputs into the network.
    pub fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            self.datagrams += 1;
            (i, t.dst, &t.payload).hash(&mut self.trace);
            if self.rng.gen_bool(self.loss) {
                continue;
            }
            let latency = Duration::from_millis(self.rng.gen_range(5..60));
            self.seq += 1;
            self.queue.push(Reverse((self.now + latency, self.seq, i, t.dst, t.payload)));
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events.push((i, e));
        }
    }

    /// Runs the network until `until` (virtual time).
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let next_packet = self.queue.peek().map(|Reverse((t, ..))| *t);
            let (timer_node, next_timer) = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.poll_timeout().map(|t| (i, t)))
                .min_by_key(|(_, t)| *t)
                .map_or((None, None), |(i, t)| (Some(i), Some(t)));
            let next = match (next_packet, next_timer) {
                (Some(p), Some(t)) => p.min(t),
                (p, t) => p.or(t).unwrap_or(until),
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                let Reverse((_, _, from, dst, payload)) = self.queue.pop().expect("peeked");
                if let Some(&j) = self.index.get(&dst) {
                    let src = self.addrs[from];
                    self.nodes[j].handle_datagram(self.now, src, &payload);
                    self.flush(j);
                }
            } else if let Some(i) = timer_node {
                self.nodes[i].handle_timeout(self.now);
                self.flush(i);
            }
        }
    }

    pub fn lookup_result(&self, node: usize, q: QueryId) -> Option<LookupResult> {
        self.events.iter().find_map(|(i, e)| match e {
            Event::LookupDone { query, result } if *i == node && *query == q => Some(result.clone()),
            _ => None,
        })
    }

    pub fn peers_found(&self, node: usize, q: QueryId) -> Vec<SocketAddr> {
        self.events
            .iter()
            .filter_map(|(i, e)| match e {
                Event::PeersFound { query, peers } if *i == node && *query == q => Some(peers.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    pub fn bootstrap_all(&mut self) {
        let router = self.addrs[0];
        // Node 0 bootstraps from node 1 so it learns of someone; the rest join over 10 s.
        let n1 = self.addrs[1];
        self.nodes[0].bootstrap(self.now, &[n1]);
        self.flush(0);
        for i in 1..self.nodes.len() {
            self.run_for(Duration::from_millis(10_000 / self.nodes.len() as u64));
            self.nodes[i].bootstrap(self.now, &[router]);
            self.flush(i);
        }
        self.run_for(Duration::from_secs(20));
    }
}
