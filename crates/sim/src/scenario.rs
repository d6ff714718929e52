//! A scenario's run: the population (honest nodes of one protocol, Sybils), the joins, churn,
//! the lookup workload, and the judging of each lookup against the ground truth.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mycel_dht::Config;
use mycel_krpc::NodeInfo;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::baseline::{ChordNode, FloodNode, ZeroHopNode};
use crate::engine::{addr_of, index_of, mix, Counters, Ev, Slot, What, NEVER};
use crate::items::ItemWorkload;
use crate::metrics::{self, Health, LookupRecord, Report};
use crate::net::Network;
use crate::node::{Done, ItemDone, KadNode, LookupOp, SimNode};
use crate::oracle::Oracle;
use crate::params::{Attack, Protocol, Scenario, Workload};
use crate::sybil::{SybilDir, SybilNode};
use crate::SimError;

/// A set of node indices with O(1) insert, remove and uniform pick.
#[derive(Default)]
pub(crate) struct IndexSet {
    items: Vec<u32>,
    pos: BTreeMap<u32, usize>,
}

impl IndexSet {
    fn insert(&mut self, i: u32) {
        if let std::collections::btree_map::Entry::Vacant(e) = self.pos.entry(i) {
            e.insert(self.items.len());
            self.items.push(i);
        }
    }
    fn remove(&mut self, i: u32) {
        if let Some(p) = self.pos.remove(&i) {
            self.items.swap_remove(p);
            if let Some(moved) = self.items.get(p) {
                self.pos.insert(*moved, p);
            }
        }
    }
    fn pick<R: Rng>(&self, rng: &mut R) -> Option<u32> {
        self.items.choose(rng).copied()
    }
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
    pub(crate) fn items(&self) -> &[u32] {
        &self.items
    }
}

struct Running {
    index: usize,
    truth: Vec<[u8; 20]>,
    /// The node index of the true closest node, and whether it has answered the source.
    closest: Option<u32>,
    reached: bool,
}

/// A simulation in progress. Build with [`Sim::new`], then [`Sim::run`].
pub struct Sim {
    pub(crate) sc: Scenario,
    pub(crate) origin: Instant,
    pub(crate) now: u64,
    pub(crate) seq: u64,
    pub(crate) queue: BinaryHeap<Reverse<Ev>>,
    pub(crate) timers: BinaryHeap<Reverse<(u64, u32, u32)>>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) net: Network,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) trace: u64,
    pub(crate) counters: Counters,
    pub(crate) pending_done: Vec<(u32, Done)>,
    /// Item operations that finished during the last interaction.
    pub(crate) pending_items: Vec<(u32, ItemDone)>,
    pub(crate) oracle: Oracle,
    oracle_version: u64,
    published_version: u64,
    view: Rc<Vec<NodeInfo>>,
    /// Honest nodes online (lookup sources).
    pub(crate) honest_online: IndexSet,
    /// Honest public nodes online (bootstrap contacts).
    public_online: IndexSet,
    sybil_dir: Rc<SybilDir>,
    targets: Vec<[u8; 20]>,
    pub(crate) records: Vec<LookupRecord>,
    running: BTreeMap<(u32, u64), Running>,
    /// The items workload (empty for the lookups workload).
    pub(crate) items: ItemWorkload,
    pub(crate) rss_start: u64,
    pub(crate) rss_joined: u64,
    pub(crate) datagrams_at_start: u64,
}

impl Sim {
    /// Builds the population and schedules joins, churn and lookups.
    #[allow(clippy::disallowed_methods)] // the simulator's one real clock read: the origin of virtual time
    pub fn new(sc: Scenario) -> Result<Sim, SimError> {
        sc.validate()?;
        let origin = Instant::now();
        let rss_start = metrics::rss_bytes().0;
        let mut rng = ChaCha8Rng::seed_from_u64(sc.seed);
        let n = sc.nodes;
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut rng);
        let sybil_count = sc.sybils();
        let mut sybil = vec![false; n];
        for &i in &order[..sybil_count] {
            sybil[i as usize] = true;
        }
        let nat: Vec<bool> = (0..n).map(|i| !sybil[i] && rng.gen_bool(sc.net.nat)).collect();
        let net = Network::new(n, sc.net.clone(), &mut rng, |i| nat[i]);
        let slots: Vec<Slot> = (0..n)
            .map(|i| Slot {
                node: None,
                id: rng.gen(),
                sybil: sybil[i],
                gen: 0,
                scheduled: NEVER,
                online_since: 0,
                saved: Vec::new(),
            })
            .collect();
        let dir = SybilDir::new(
            slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.sybil)
                .map(|(i, s)| NodeInfo { id: mycel_krpc::NodeId(s.id), addr: addr_of(i as u32) })
                .collect(),
        );
        let targets = (0..sc.lookups).map(|_| rng.gen()).collect();
        let items = match sc.workload {
            Workload::Lookups => ItemWorkload::default(),
            Workload::Items => ItemWorkload::new(sc.items, &mut rng),
        };
        let mut sim = Sim {
            origin,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            slots,
            net,
            rng,
            trace: mix(0, sc.seed),
            counters: Counters::default(),
            pending_done: Vec::new(),
            pending_items: Vec::new(),
            oracle: Oracle::default(),
            oracle_version: 0,
            published_version: 0,
            view: Rc::new(Vec::new()),
            honest_online: IndexSet::default(),
            public_online: IndexSet::default(),
            sybil_dir: Rc::new(dir),
            targets,
            records: Vec::new(),
            running: BTreeMap::new(),
            items,
            rss_start,
            rss_joined: 0,
            datagrams_at_start: 0,
            sc,
        };
        sim.schedule(&order);
        Ok(sim)
    }

    fn schedule(&mut self, order: &[u32]) {
        // Honest public nodes first in the join order (bootstrap needs someone reachable),
        // then the rest in the shuffled order.
        let mut order = order.to_vec();
        if let Some(p) = order.iter().position(|i| !self.slots[*i as usize].sybil && !self.net.is_natted(*i as usize)) {
            order.swap(0, p);
        }
        let join = self.sc.join.as_nanos() as u64;
        let n = order.len() as u64;
        for (p, i) in order.iter().enumerate() {
            self.push(join * p as u64 / n, What::Join(*i));
        }
        let start = self.sc.lookups_start().as_nanos() as u64;
        let window = self.sc.window.as_nanos() as u64;
        match self.sc.workload {
            Workload::Lookups => {
                for j in 0..self.sc.lookups {
                    let at = start + self.rng.gen_range(0..window);
                    self.push(at, What::Lookup(j as u32));
                }
            }
            Workload::Items => self.schedule_items(),
        }
        if self.sc.protocol != Protocol::Kademlia {
            self.push(0, What::Publish);
        }
    }

    /// Runs the scenario to its end; `progress` gets the fraction of virtual time done.
    #[allow(clippy::disallowed_methods)] // wall time of the run, for the report only
    pub fn run(mut self, progress: &mut dyn FnMut(f64)) -> Report {
        let wall = std::time::Instant::now();
        let end = self.sc.end().as_nanos() as u64;
        let start = self.sc.lookups_start().as_nanos() as u64;
        let mut report = |s: &Sim| progress(s.now as f64 / end as f64);
        self.run_phase(start, &mut report);
        self.rss_joined = metrics::rss_bytes().0;
        self.datagrams_at_start = self.counters.datagrams;
        let health_start = self.health();
        self.run_phase(end, &mut report);
        let health_end = self.health();
        metrics::report(self, wall.elapsed(), health_start, health_end)
    }

    fn run_phase(&mut self, end: u64, progress: &mut dyn FnMut(&Sim)) {
        // Deliveries complete in steps; `run_until` stops at `end` with its queue intact.
        self.run_until(end, progress);
    }

    /// Processes lookups and item operations that finished during the last interaction
    /// (recording one can start another: a mutable item's second put).
    pub(crate) fn drain_done(&mut self) {
        while !(self.pending_done.is_empty() && self.pending_items.is_empty()) {
            for (i, d) in std::mem::take(&mut self.pending_done) {
                self.record_done(i, d);
            }
            for (i, d) in std::mem::take(&mut self.pending_items) {
                self.record_item_done(i, d);
            }
        }
    }

    fn is_public_honest(&self, i: u32) -> bool {
        !self.slots[i as usize].sybil && !self.net.is_natted(i as usize)
    }

    fn bootstrap_contacts(&mut self, me: u32) -> Vec<std::net::SocketAddr> {
        let mut out = Vec::new();
        for _ in 0..8 {
            if out.len() == 3 {
                break;
            }
            if let Some(c) = self.public_online.pick(&mut self.rng) {
                if c != me && !out.contains(&addr_of(c)) {
                    out.push(addr_of(c));
                }
            }
        }
        out
    }

    fn kad_config(&self, i: u32) -> Config {
        #[allow(unused_mut)]
        let mut cfg = Config { k: self.sc.k, alpha: self.sc.alpha, ..Config::default() };
        // A node that knows it is unreachable can say so (BEP 43) and stay out of tables.
        cfg.read_only = self.sc.nat_read_only && self.net.is_natted(i as usize);
        if let Some(t) = self.sc.kad_max_timeout {
            cfg.max_request_timeout = t;
            cfg.min_request_timeout = cfg.min_request_timeout.min(t);
        }
        cfg.disjoint_paths = self.sc.disjoint;
        cfg
    }

    pub(crate) fn on_join(&mut self, i: u32) {
        if self.online(i) {
            return;
        }
        let now = self.instant(self.now);
        let seed: [u8; 32] = self.rng.gen();
        let id = self.slots[i as usize].id;
        let contacts = self.bootstrap_contacts(i);
        let node: Box<dyn SimNode> = if self.slots[i as usize].sybil {
            let attack = self.sc.attack;
            let mut s = SybilNode::new(id, seed, attack, Rc::clone(&self.sybil_dir), addr_of(i), self.sc.k);
            s.bootstrap(now, &contacts);
            Box::new(s)
        } else {
            match self.sc.protocol {
                Protocol::Kademlia => {
                    let mut k = KadNode::new(self.kad_config(i), id, seed, now);
                    let saved = std::mem::take(&mut self.slots[i as usize].saved);
                    if saved.is_empty() {
                        k.bootstrap(now, &contacts);
                    } else {
                        k.restore(now, &saved);
                    }
                    Box::new(k)
                }
                Protocol::Flood => Box::new(FloodNode::new(id, seed, addr_of(i), self.sc.flood)),
                Protocol::Chord => Box::new(ChordNode::new(id, seed, addr_of(i))),
                Protocol::Zerohop => Box::new(ZeroHopNode::new(id, seed, addr_of(i))),
            }
        };
        let slot = &mut self.slots[i as usize];
        slot.node = Some(node);
        slot.online_since = self.now;
        if !slot.sybil {
            self.honest_online.insert(i);
            if self.is_public_honest(i) {
                self.public_online.insert(i);
                self.oracle.insert(id, i);
                self.oracle_version += 1;
            }
            if let Some(c) = self.sc.churn {
                let session = Duration::from_secs_f64(c.session.sample(&mut self.rng));
                self.push(self.now + session.as_nanos() as u64, What::Leave(i));
            }
        }
        let view = Rc::clone(&self.view);
        self.interact(i, |n, now| n.handle_membership(now, &view));
    }

    pub(crate) fn on_leave(&mut self, i: u32) {
        let now = self.instant(self.now);
        let Some(node) = self.slots[i as usize].node.take() else { return };
        let saved = node.contacts(now);
        drop(node);
        let slot = &mut self.slots[i as usize];
        slot.saved = saved;
        slot.gen = slot.gen.wrapping_add(1);
        slot.scheduled = NEVER;
        let id = slot.id;
        self.net.reset(i as usize);
        self.honest_online.remove(i);
        if self.is_public_honest(i) {
            self.public_online.remove(i);
            self.oracle.remove(id, i);
            self.oracle_version += 1;
        }
        let gone: Vec<(u32, u64)> = self.running.range((i, 0)..=(i, u64::MAX)).map(|(k, _)| *k).collect();
        for key in gone {
            if let Some(r) = self.running.remove(&key) {
                self.records[r.index].aborted = true;
            }
        }
        self.items.abort_from(i);
        if let Some(c) = self.sc.churn {
            let down = Duration::from_secs_f64(c.downtime.sample(&mut self.rng));
            self.push(self.now + down.as_nanos() as u64, What::Join(i));
        }
    }

    pub(crate) fn on_publish(&mut self) {
        if self.oracle_version != self.published_version {
            self.published_version = self.oracle_version;
            self.view = Rc::new(self.oracle.snapshot(addr_of));
            let view = Rc::clone(&self.view);
            for i in self.honest_online.items().to_vec() {
                self.interact(i, |n, now| n.handle_membership(now, &view));
            }
        }
        let next = self.now + self.sc.membership_period.as_nanos() as u64;
        if next < self.sc.end().as_nanos() as u64 {
            self.push(next, What::Publish);
        }
    }

    /// Picks a source that has been online a while (a node mid-bootstrap is not a fair
    /// source), falling back to any online honest node.
    pub(crate) fn pick_source(&mut self) -> Option<u32> {
        let settled = self.now.saturating_sub(Duration::from_secs(30).as_nanos() as u64);
        for _ in 0..32 {
            let i = self.honest_online.pick(&mut self.rng)?;
            if self.slots[i as usize].online_since <= settled {
                return Some(i);
            }
        }
        self.honest_online.pick(&mut self.rng)
    }

    pub(crate) fn on_lookup(&mut self, j: u32) {
        let key = self.targets[j as usize];
        let index = self.records.len();
        self.records.push(LookupRecord { index, start_ms: self.now as f64 / 1e6, ..LookupRecord::default() });
        let Some(src) = self.pick_source() else {
            self.records[index].aborted = true;
            return;
        };
        self.records[index].source = src;
        let k = self.sc.k;
        let truth: Vec<([u8; 20], u32)> = if self.sc.protocol.xor_metric() {
            self.oracle.xor_closest(&key, k, Some(src))
        } else {
            self.oracle.successors(&key, k, Some(src))
        };
        if self.sc.protocol == Protocol::Flood {
            for (_, holder) in &truth {
                if let Some(n) = self.slots[*holder as usize].node.as_mut() {
                    n.place_item(key);
                }
            }
        }
        let op =
            if self.sc.sybil > 0.0 && self.sc.attack == Attack::Fake { LookupOp::GetPeers } else { LookupOp::FindNode };
        let mut tag = 0;
        self.interact(src, |n, now| tag = n.start_lookup(now, key, op));
        let closest = truth.first().map(|t| t.1);
        self.running.insert(
            (src, tag),
            Running { index, truth: truth.into_iter().map(|t| t.0).collect(), closest, reached: false },
        );
        self.drain_done();
    }

    /// A datagram from `from` reached `to`: if `from` is the true closest node of a lookup
    /// `to` is running, the lookup reached it (whether or not it reports it).
    pub(crate) fn note_contact(&mut self, from: u32, to: u32) {
        for (_, r) in self.running.range_mut((to, 0)..=(to, u64::MAX)) {
            if r.closest == Some(from) {
                r.reached = true;
            }
        }
    }

    pub(crate) fn record_done(&mut self, i: u32, d: Done) {
        let Some(run) = self.running.remove(&(i, d.tag)) else { return };
        let r = &mut self.records[run.index];
        r.done = true;
        r.reached = run.reached;
        r.latency_ms = match d.elapsed {
            Some(e) => e.as_secs_f64() * 1e3,
            None => self.now as f64 / 1e6 - r.start_ms,
        };
        r.hops = d.hops;
        r.messages = d.messages;
        r.bytes = d.bytes;
        r.timeouts = d.timeouts;
        r.deadline_hit = d.deadline_hit;
        r.peers = d.peers;
        r.fake_peers = d.fake_peers;
        r.truth_known = !run.truth.is_empty();
        r.success = run.truth.first().is_some_and(|t| d.found.contains(t));
        if self.sc.protocol == Protocol::Flood {
            // Hits come back along the query path, never straight from the holder.
            r.reached = r.success;
        }
        let hits = run.truth.iter().filter(|t| d.found.contains(t)).count();
        r.closest_k_fraction = if run.truth.is_empty() { 0.0 } else { hits as f64 / run.truth.len() as f64 };
    }

    /// Routing health of up to 500 online honest nodes: table size and the share of entries
    /// that point at a live node with that id, and at a reachable one.
    fn health(&mut self) -> Health {
        let now = self.instant(self.now);
        let mut sample = self.honest_online.items().to_vec();
        sample.sort_unstable();
        let step = (sample.len() / 500).max(1);
        let (mut nodes, mut entries, mut live, mut reachable) = (0u64, 0u64, 0u64, 0u64);
        let (mut natted, mut natted_ro, mut public_ro) = (0u64, 0u64, 0u64);
        for &i in sample.iter().step_by(step) {
            let Some(node) = self.slots[i as usize].node.as_ref() else { continue };
            nodes += 1;
            if self.net.is_natted(i as usize) {
                natted += 1;
                natted_ro += u64::from(node.read_only());
            } else {
                public_ro += u64::from(node.read_only());
            }
            for c in node.contacts(now) {
                entries += 1;
                let Some(j) = index_of(&c.addr, self.slots.len()) else { continue };
                let s = &self.slots[j as usize];
                if s.node.is_some() && s.id == c.id.0 {
                    live += 1;
                    if !self.net.is_natted(j as usize) {
                        reachable += 1;
                    }
                }
            }
        }
        let per = |x: u64| if entries == 0 { 0.0 } else { x as f64 / entries as f64 };
        Health {
            sampled: nodes,
            table_size: if nodes == 0 { 0.0 } else { entries as f64 / nodes as f64 },
            live_fraction: per(live),
            reachable_fraction: per(reachable),
            natted_read_only: if natted == 0 { 0.0 } else { natted_ro as f64 / natted as f64 },
            public_read_only: if nodes == natted { 0.0 } else { public_ro as f64 / (nodes - natted) as f64 },
        }
    }
}
