//! Chord finger routing, iterative: the querier asks the closest preceding node it knows;
//! each node answers with the closest preceding nodes of its own fingers, or, when the key
//! falls between it and its successor, with its successor list. The querier then confirms
//! with the owner (the first successor that answers, each tried twice), as a fetch of the key
//! would.
//!
//! Fingers (`successor(id + 2^i)`) and the successor list (r = 8) are recomputed from each
//! membership view, modelling ideal stabilization with the view's period.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use mycel_dht::Transmit;
use mycel_krpc::NodeInfo;

use super::{ring, Reader, Requests, Writer, LOOKUP_DEADLINE};
use crate::node::{Done, LookupOp, SimNode};

const FIND: u8 = 30;
const NEXT: u8 = 31;
const OWNER: u8 = 32;
const GET: u8 = 33;
const ACK: u8 = 34;

/// Successor-list length.
const R: usize = 8;
/// Preceding nodes offered in a NEXT answer (alternatives when the best one times out).
const OFFER: usize = 3;

struct Lookup {
    key: [u8; 20],
    started: Instant,
    /// Known nodes preceding the key, by clockwise distance to it (closest first).
    candidates: BTreeMap<[u8; 20], NodeInfo>,
    asked: HashSet<SocketAddr>,
    /// The node a FIND is outstanding at, and the requests sent to it.
    current: Option<(SocketAddr, u8)>,
    /// Set once some node named the owner: the successor list to confirm with, the position
    /// being tried and the requests sent to it.
    owners: Option<(Vec<NodeInfo>, usize, u8)>,
    hops: u32,
    messages: u32,
    bytes: u64,
    timeouts: u32,
}

/// A Chord node.
pub struct ChordNode {
    id: [u8; 20],
    addr: SocketAddr,
    /// Distinct fingers and successors.
    fingers: Vec<NodeInfo>,
    successors: Vec<NodeInfo>,
    requests: Requests,
    lookups: BTreeMap<u64, Lookup>,
    next_tag: u64,
    out: VecDeque<Transmit>,
    done: Vec<Done>,
}

impl ChordNode {
    /// A node with this id at `addr`; `_seed` is unused (routing here is deterministic).
    pub fn new(id: [u8; 20], _seed: [u8; 32], addr: SocketAddr) -> Self {
        ChordNode {
            id,
            addr,
            fingers: Vec::new(),
            successors: Vec::new(),
            requests: Requests::default(),
            lookups: BTreeMap::new(),
            next_tag: 0,
            out: VecDeque::new(),
            done: Vec::new(),
        }
    }

    fn rebuild(&mut self, view: &[NodeInfo]) {
        let n = view.len();
        self.fingers.clear();
        self.successors.clear();
        if n == 0 {
            return;
        }
        let succ = |t: &[u8; 20]| view[view.partition_point(|e| e.id.0 < *t) % n];
        let start = view.partition_point(|e| e.id.0 <= self.id);
        self.successors = (0..n).map(|i| view[(start + i) % n]).filter(|e| e.addr != self.addr).take(R).collect();
        let first = self.successors.first().map(|s| s.id.0);
        // From the farthest finger down, until the fingers reach our immediate successor.
        for bit in (0..160).rev() {
            let f = succ(&ring::add_pow2(&self.id, bit));
            if f.addr == self.addr {
                continue;
            }
            if self.fingers.last().is_none_or(|l| l.addr != f.addr) {
                self.fingers.push(f);
            }
            if Some(f.id.0) == first {
                break;
            }
        }
    }

    /// Whether the key falls between us and our successor.
    fn owns_next(&self, key: &[u8; 20]) -> bool {
        self.successors.first().is_some_and(|s| ring::in_half_open(&self.id, key, &s.id.0))
    }

    /// Our known nodes strictly between us and the key, closest to the key first.
    fn preceding(&self, key: &[u8; 20], n: usize) -> Vec<NodeInfo> {
        let own = ring::dist(&self.id, key);
        let mut v: Vec<([u8; 20], NodeInfo)> = self
            .fingers
            .iter()
            .chain(&self.successors)
            .filter(|f| ring::dist(&self.id, &f.id.0) < own)
            .map(|f| (ring::dist(&f.id.0, key), *f))
            .collect();
        v.sort_by_key(|a| a.0);
        v.dedup_by(|a, b| a.1.addr == b.1.addr);
        v.into_iter().take(n).map(|(_, f)| f).collect()
    }

    fn send(&mut self, now: Instant, tag: u64, to: SocketAddr, kind: u8, retry: bool) {
        let Some(l) = self.lookups.get_mut(&tag) else { return };
        let key = l.key;
        l.asked.insert(to);
        l.messages += 1;
        let tx = self.requests.start(now, tag, to, retry);
        let msg = Writer::new(kind).u32(tx).id(&key).0;
        l.bytes += msg.len() as u64;
        self.out.push_back(Transmit { dst: to, payload: msg });
    }

    /// Sends the lookup's next request, or ends it.
    fn step(&mut self, now: Instant, tag: u64) {
        let Some(l) = self.lookups.get_mut(&tag) else { return };
        if now >= l.started + LOOKUP_DEADLINE {
            return self.finish(tag, false, true);
        }
        if let Some((owners, next, tries)) = &mut l.owners {
            match owners.get(*next) {
                Some(o) => {
                    *tries += 1;
                    let (to, retry) = (o.addr, *tries > 1);
                    self.send(now, tag, to, GET, retry);
                }
                None => self.finish(tag, false, false),
            }
            return;
        }
        if let Some((to, tries)) = &mut l.current {
            if *tries < 2 {
                *tries += 1;
                let to = *to;
                return self.send(now, tag, to, FIND, true);
            }
        }
        let next = l.candidates.values().find(|c| !l.asked.contains(&c.addr)).map(|c| c.addr);
        l.current = next.map(|to| (to, 1));
        match next {
            Some(to) => self.send(now, tag, to, FIND, false),
            None => self.finish(tag, false, false),
        }
    }

    fn finish(&mut self, tag: u64, ok: bool, deadline_hit: bool) {
        let Some(l) = self.lookups.remove(&tag) else { return };
        let found = match (&l.owners, ok) {
            (Some((owners, next, _)), true) => owners[*next..].iter().map(|n| n.id.0).collect(),
            _ => Vec::new(),
        };
        self.done.push(Done {
            tag,
            found,
            hops: l.hops,
            messages: l.messages,
            bytes: l.bytes,
            timeouts: l.timeouts,
            deadline_hit,
            ..Done::default()
        });
    }

    fn answer_find(&mut self, from: SocketAddr, tx: u32, key: &[u8; 20]) {
        let msg = if self.owns_next(key) || self.successors.is_empty() {
            Writer::new(OWNER).u32(tx).id(&self.id).nodes(&self.successors).0
        } else {
            let p = self.preceding(key, OFFER);
            if p.is_empty() {
                Writer::new(OWNER).u32(tx).id(&self.id).nodes(&self.successors).0
            } else {
                Writer::new(NEXT).u32(tx).id(&self.id).nodes(&p).0
            }
        };
        self.out.push_back(Transmit { dst: from, payload: msg });
    }

    fn on_answer(&mut self, now: Instant, from: SocketAddr, kind: u8, r: &mut Reader<'_>, len: usize) {
        let Some(tx) = r.u32() else { return };
        let Some(tag) = self.requests.answer(now, tx, from) else { return };
        let Some(responder) = r.id() else { return };
        let nodes = if kind == ACK { Vec::new() } else { r.nodes().unwrap_or_default() };
        let Some(l) = self.lookups.get_mut(&tag) else { return };
        l.messages += 1;
        l.bytes += len as u64;
        l.hops += 1;
        l.current = None;
        match kind {
            ACK => return self.finish(tag, true, false),
            OWNER => l.owners = Some((nodes, 0, 0)),
            _ => {
                let bound = ring::dist(&responder, &l.key);
                for n in nodes {
                    let d = ring::dist(&n.id.0, &l.key);
                    if d < bound && !l.asked.contains(&n.addr) {
                        l.candidates.insert(d, n);
                    }
                }
            }
        }
        self.step(now, tag);
    }
}

impl SimNode for ChordNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let mut r = Reader(bytes);
        match r.u8() {
            Some(FIND) => {
                if let (Some(tx), Some(key)) = (r.u32(), r.id()) {
                    self.answer_find(from, tx, &key);
                }
            }
            Some(GET) => {
                if let Some(tx) = r.u32() {
                    let ack = Writer::new(ACK).u32(tx).id(&self.id).0;
                    self.out.push_back(Transmit { dst: from, payload: ack });
                }
            }
            Some(kind @ (NEXT | OWNER | ACK)) => self.on_answer(now, from, kind, &mut r, bytes.len()),
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        for (tag, _) in self.requests.expired(now) {
            if let Some(l) = self.lookups.get_mut(&tag) {
                l.timeouts += 1;
                if let Some((_, next, tries)) = &mut l.owners {
                    if *tries >= 2 {
                        *next += 1;
                        *tries = 0;
                    }
                }
            }
            self.step(now, tag);
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.requests.next_timeout()
    }

    fn start_lookup(&mut self, now: Instant, key: [u8; 20], _op: LookupOp) -> u64 {
        self.next_tag += 1;
        let tag = self.next_tag;
        let owners = self.owns_next(&key).then(|| (self.successors.clone(), 0, 0));
        let candidates = self.preceding(&key, usize::MAX).into_iter().map(|n| (ring::dist(&n.id.0, &key), n)).collect();
        let l = Lookup {
            key,
            started: now,
            candidates,
            asked: HashSet::new(),
            current: None,
            owners,
            hops: 0,
            messages: 0,
            bytes: 0,
            timeouts: 0,
        };
        self.lookups.insert(tag, l);
        self.step(now, tag);
        tag
    }

    fn poll_done(&mut self) -> Option<Done> {
        self.done.pop()
    }

    fn contacts(&self, _now: Instant) -> Vec<NodeInfo> {
        let mut c = self.fingers.clone();
        c.extend(&self.successors);
        c
    }

    fn handle_membership(&mut self, _now: Instant, view: &Rc<Vec<NodeInfo>>) {
        self.rebuild(view);
    }
}
