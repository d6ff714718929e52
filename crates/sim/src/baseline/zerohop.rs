//! A zero-hop ring (as in Dynamo): every node knows the full membership, so a lookup asks the
//! key's owner (its ring successor) directly, and on a timeout the next node of the key's
//! preference list. A request that times out is sent once more before moving on (a timeout
//! alone does not prove the owner gone). Membership comes from gossip, modelled as the
//! periodic view.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use mycel_dht::Transmit;
use mycel_krpc::NodeInfo;

use super::{Reader, Requests, Writer};
use crate::node::{Done, LookupOp, SimNode};

const GET: u8 = 20;
const ACK: u8 = 21;

struct Lookup {
    prefs: Vec<NodeInfo>,
    next: usize,
    /// Requests sent to `prefs[next]`.
    tries: u8,
    messages: u32,
    bytes: u64,
    timeouts: u32,
}

/// A zero-hop ring node.
pub struct ZeroHopNode {
    id: [u8; 20],
    addr: SocketAddr,
    k: usize,
    view: Rc<Vec<NodeInfo>>,
    requests: Requests,
    lookups: BTreeMap<u64, Lookup>,
    next_tag: u64,
    out: VecDeque<Transmit>,
    done: Vec<Done>,
}

impl ZeroHopNode {
    /// A node with this id at `addr`; `_seed` is unused (nothing here is random).
    pub fn new(id: [u8; 20], _seed: [u8; 32], addr: SocketAddr) -> Self {
        ZeroHopNode {
            id,
            addr,
            k: 8,
            view: Rc::new(Vec::new()),
            requests: Requests::default(),
            lookups: BTreeMap::new(),
            next_tag: 0,
            out: VecDeque::new(),
            done: Vec::new(),
        }
    }

    /// The key's preference list in our view: its k ring successors, ourselves excluded.
    fn preference_list(&self, key: &[u8; 20]) -> Vec<NodeInfo> {
        let n = self.view.len();
        let start = self.view.partition_point(|e| e.id.0 < *key);
        (0..n).map(|i| self.view[(start + i) % n]).filter(|e| e.addr != self.addr).take(self.k).collect()
    }

    fn ask_next(&mut self, now: Instant, tag: u64) {
        let Some(l) = self.lookups.get_mut(&tag) else { return };
        match l.prefs.get(l.next) {
            Some(target) => {
                let addr = target.addr;
                let key = target.id.0;
                l.tries += 1;
                l.messages += 1;
                let tx = self.requests.start(now, tag, addr, l.tries > 1);
                let msg = Writer::new(GET).u32(tx).id(&key).0;
                l.bytes += msg.len() as u64;
                self.out.push_back(Transmit { dst: addr, payload: msg });
            }
            None => self.finish(now, tag, false),
        }
    }

    fn finish(&mut self, _now: Instant, tag: u64, ok: bool) {
        let Some(l) = self.lookups.remove(&tag) else { return };
        let found = if ok { l.prefs[l.next..].iter().map(|n| n.id.0).collect() } else { Vec::new() };
        self.done.push(Done {
            tag,
            found,
            hops: 1,
            messages: l.messages,
            bytes: l.bytes,
            timeouts: l.timeouts,
            deadline_hit: false,
            ..Done::default()
        });
    }
}

impl SimNode for ZeroHopNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let mut r = Reader(bytes);
        match r.u8() {
            Some(GET) => {
                let Some(tx) = r.u32() else { return };
                let ack = Writer::new(ACK).u32(tx).id(&self.id).0;
                self.out.push_back(Transmit { dst: from, payload: ack });
            }
            Some(ACK) => {
                let Some(tx) = r.u32() else { return };
                let Some(tag) = self.requests.answer(now, tx, from) else { return };
                if let Some(l) = self.lookups.get_mut(&tag) {
                    l.messages += 1;
                    l.bytes += bytes.len() as u64;
                }
                self.finish(now, tag, true);
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        for (tag, _) in self.requests.expired(now) {
            if let Some(l) = self.lookups.get_mut(&tag) {
                l.timeouts += 1;
                if l.tries >= 2 {
                    l.next += 1;
                    l.tries = 0;
                }
            }
            self.ask_next(now, tag);
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
        let prefs = self.preference_list(&key);
        self.lookups.insert(tag, Lookup { prefs, next: 0, tries: 0, messages: 0, bytes: 0, timeouts: 0 });
        self.ask_next(now, tag);
        tag
    }

    fn poll_done(&mut self) -> Option<Done> {
        self.done.pop()
    }

    fn contacts(&self, _now: Instant) -> Vec<NodeInfo> {
        Vec::new() // the view is shared; its health is the view's staleness
    }

    fn handle_membership(&mut self, _now: Instant, view: &Rc<Vec<NodeInfo>>) {
        self.view = Rc::clone(view);
    }
}
