//! Gnutella-style flooding: each node keeps a few neighbours; a query goes to all of them and
//! is forwarded (once per node, duplicates dropped) until its TTL runs out. A node that holds
//! the item answers with a hit routed back along the query's path (classic Gnutella; direct
//! out-of-band hits would not reach origins behind NAT). The origin collects hits for a fixed
//! time; its result is the holders that answered, nearest first.
//!
//! Neighbours are picked from the membership view (a host cache) and must accept a CONNECT;
//! keep-alives every 30 s hold NAT mappings open and detect neighbours that left.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mycel_dht::Transmit;
use mycel_krpc::NodeInfo;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Reader, Writer};
use crate::node::{Done, LookupOp, SimNode};
use crate::params::FloodParams;

const CONNECT: u8 = 1;
const ACCEPT: u8 = 2;
const QUERY: u8 = 3;
const HIT: u8 = 4;
const PING: u8 = 5;
const PONG: u8 = 6;

const KEEPALIVE: Duration = Duration::from_secs(30);
/// A neighbour not heard from in this long is dropped.
const NEIGHBOUR_TIMEOUT: Duration = Duration::from_secs(75);
/// Query ids are remembered this long to drop duplicates.
const SEEN_FOR: Duration = Duration::from_secs(60);

struct Search {
    tag: u64,
    key: [u8; 20],
    started: Instant,
    hits: Vec<([u8; 20], u8, Instant)>,
}

/// A flooding node.
pub struct FloodNode {
    id: [u8; 20],
    addr: SocketAddr,
    params: FloodParams,
    rng: ChaCha8Rng,
    view: Rc<Vec<NodeInfo>>,
    /// Neighbours and when we last heard from each.
    neighbours: BTreeMap<SocketAddr, Instant>,
    connecting: HashSet<SocketAddr>,
    /// Queries seen, with the neighbour each came from (`None`: ours), to route hits back.
    seen: HashMap<u64, Option<SocketAddr>>,
    seen_order: VecDeque<(Instant, u64)>,
    items: HashSet<[u8; 20]>,
    searches: BTreeMap<u64, Search>,
    next_tag: u64,
    next_keepalive: Option<Instant>,
    out: VecDeque<Transmit>,
    done: Vec<Done>,
}

impl FloodNode {
    /// A node with this id at `addr`.
    pub fn new(id: [u8; 20], seed: [u8; 32], addr: SocketAddr, params: FloodParams) -> Self {
        FloodNode {
            id,
            addr,
            params,
            rng: ChaCha8Rng::from_seed(seed),
            view: Rc::new(Vec::new()),
            neighbours: BTreeMap::new(),
            connecting: HashSet::new(),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            items: HashSet::new(),
            searches: BTreeMap::new(),
            next_tag: 0,
            next_keepalive: None,
            out: VecDeque::new(),
            done: Vec::new(),
        }
    }

    fn send(&mut self, to: SocketAddr, payload: Vec<u8>) {
        self.out.push_back(Transmit { dst: to, payload });
    }

    /// Asks random nodes of the view to become neighbours until enough are pending or joined.
    fn top_up(&mut self) {
        self.connecting.clear();
        let want = self.params.degree.saturating_sub(self.neighbours.len());
        let picks: Vec<SocketAddr> = self.view.choose_multiple(&mut self.rng, want + 4).map(|n| n.addr).collect();
        for a in picks {
            if self.connecting.len() >= want {
                break;
            }
            if a != self.addr && !self.neighbours.contains_key(&a) && self.connecting.insert(a) {
                let msg = Writer::new(CONNECT).id(&self.id).0;
                self.send(a, msg);
            }
        }
    }

    fn remember(&mut self, now: Instant, qid: u64, from: Option<SocketAddr>) -> bool {
        while self.seen_order.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > SEEN_FOR) {
            if let Some((_, q)) = self.seen_order.pop_front() {
                self.seen.remove(&q);
            }
        }
        if self.seen.contains_key(&qid) {
            return false;
        }
        self.seen.insert(qid, from);
        self.seen_order.push_back((now, qid));
        true
    }

    fn flood(&mut self, except: Option<SocketAddr>, qid: u64, origin: SocketAddr, key: &[u8; 20], ttl: u8, hops: u8) {
        let targets: Vec<SocketAddr> = self.neighbours.keys().copied().filter(|a| Some(*a) != except).collect();
        for a in targets {
            let msg = Writer::new(QUERY).u64(qid).addr(origin).id(key).u8(ttl).u8(hops).0;
            self.send(a, msg);
        }
    }

    fn on_query(&mut self, now: Instant, from: SocketAddr, r: &mut Reader<'_>) {
        let (Some(qid), Some(origin), Some(key), Some(ttl), Some(hops)) = (r.u64(), r.addr(), r.id(), r.u8(), r.u8())
        else {
            return;
        };
        if !self.remember(now, qid, Some(from)) {
            return;
        }
        let hops = hops.saturating_add(1);
        if self.items.contains(&key) {
            let msg = Writer::new(HIT).u64(qid).id(&self.id).u8(hops).0;
            self.send(from, msg);
        }
        if ttl > 1 {
            self.flood(Some(from), qid, origin, &key, ttl - 1, hops);
        }
    }

    fn on_hit(&mut self, now: Instant, r: &mut Reader<'_>, bytes: &[u8]) {
        let (Some(qid), Some(id), Some(hops)) = (r.u64(), r.id(), r.u8()) else { return };
        if let Some(s) = self.searches.get_mut(&qid) {
            if !s.hits.iter().any(|h| h.0 == id) {
                s.hits.push((id, hops, now));
            }
        } else if let Some(Some(back)) = self.seen.get(&qid).copied() {
            self.send(back, bytes.to_vec());
        }
    }

    fn finish(&mut self, qid: u64) {
        let Some(mut s) = self.searches.remove(&qid) else { return };
        let key = s.key;
        s.hits.sort_by_key(|h| mycel_krpc::NodeId(h.0).distance(&key));
        let best = s.hits.first().copied();
        self.done.push(Done {
            tag: s.tag,
            found: s.hits.iter().map(|h| h.0).collect(),
            hops: best.map_or(0, |b| u32::from(b.1)),
            elapsed: Some(best.map_or(self.params.wait, |b| b.2.saturating_duration_since(s.started))),
            ..Done::default()
        });
    }

    fn keepalive(&mut self, now: Instant) {
        self.neighbours.retain(|_, heard| now.saturating_duration_since(*heard) < NEIGHBOUR_TIMEOUT);
        let all: Vec<SocketAddr> = self.neighbours.keys().copied().collect();
        for a in all {
            self.send(a, vec![PING]);
        }
        if self.neighbours.len() < self.params.degree {
            self.top_up();
        }
        self.next_keepalive = Some(now + KEEPALIVE);
    }
}

impl SimNode for FloodNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let mut r = Reader(bytes);
        let kind = r.u8();
        if let Some(heard) = self.neighbours.get_mut(&from) {
            *heard = now;
        }
        match kind {
            Some(CONNECT) if self.neighbours.len() < 2 * self.params.degree => {
                self.neighbours.insert(from, now);
                let msg = Writer::new(ACCEPT).id(&self.id).0;
                self.send(from, msg);
            }
            Some(ACCEPT) if self.connecting.remove(&from) => {
                self.neighbours.insert(from, now);
            }
            Some(QUERY) => self.on_query(now, from, &mut r),
            Some(HIT) => self.on_hit(now, &mut r, bytes),
            Some(PING) => self.send(from, vec![PONG]),
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u64> =
            self.searches.iter().filter(|(_, s)| now >= s.started + self.params.wait).map(|(q, _)| *q).collect();
        for q in due {
            self.finish(q);
        }
        if self.next_keepalive.is_some_and(|t| now >= t) {
            self.keepalive(now);
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let search = self.searches.values().map(|s| s.started + self.params.wait).min();
        match (search, self.next_keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn start_lookup(&mut self, now: Instant, key: [u8; 20], _op: LookupOp) -> u64 {
        self.next_tag += 1;
        let qid: u64 = self.rng.gen();
        self.remember(now, qid, None);
        self.searches.insert(qid, Search { tag: self.next_tag, key, started: now, hits: Vec::new() });
        let ttl = self.params.ttl;
        let origin = self.addr;
        self.flood(None, qid, origin, &key, ttl, 0);
        self.next_tag
    }

    fn poll_done(&mut self) -> Option<Done> {
        self.done.pop()
    }

    fn contacts(&self, _now: Instant) -> Vec<NodeInfo> {
        // Neighbour ids are not tracked; health counts addresses only.
        Vec::new()
    }

    fn handle_membership(&mut self, now: Instant, view: &Rc<Vec<NodeInfo>>) {
        self.view = Rc::clone(view);
        if self.next_keepalive.is_none() {
            self.next_keepalive = Some(now + KEEPALIVE);
        }
        if self.neighbours.len() < self.params.degree {
            self.top_up();
        }
    }

    fn is_lookup_traffic(&self, payload: &[u8]) -> bool {
        matches!(payload.first(), Some(&QUERY | &HIT))
    }

    fn place_item(&mut self, key: [u8; 20]) {
        self.items.insert(key);
    }
}
