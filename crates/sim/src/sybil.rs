//! Sybil nodes: small KRPC-speaking state machines that attack lookups.
//!
//! All Sybils collude through a shared directory of their addresses and ids. Each one joins
//! like a real node would advertise itself: it walks towards its own id and a few random ids
//! with `find_node`, so the honest nodes it queries verify it (it answers their pings) and put
//! it in their routing tables. Then, depending on the attack:
//! - **drop**: answers pings (to stay in tables) and drops every other query;
//! - **eclipse**: answers `find_node`/`get_peers` with k other Sybils under ids forged next to
//!   the target (sharing its first 112 bits), and answers such a query itself under the
//!   forged id, so the lookup believes it has converged on them;
//! - **fake**: answers `get_peers` with fake peers (TEST-NET-1 addresses) and `find_node`
//!   with other Sybils.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use mycel_dht::Transmit;
use mycel_krpc::{Body, Message, Method, NodeId, NodeInfo, Query, Response, Want};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine::index_of;
use crate::node::{Done, LookupOp, SimNode};
use crate::oracle::Oracle;
use crate::params::Attack;

/// The colluding Sybils: ids and addresses.
pub struct SybilDir {
    by_id: Oracle,
    addrs: Vec<SocketAddr>,
}

impl SybilDir {
    /// A directory of these Sybils.
    pub fn new(nodes: Vec<NodeInfo>) -> Self {
        let mut by_id = Oracle::default();
        for (i, n) in nodes.iter().enumerate() {
            by_id.insert(n.id.0, i as u32);
        }
        SybilDir { by_id, addrs: nodes.iter().map(|n| n.addr).collect() }
    }

    fn closest(&self, target: &[u8; 20], k: usize) -> Vec<NodeInfo> {
        self.by_id
            .xor_closest(target, k, None)
            .into_iter()
            .map(|(id, i)| NodeInfo { id: NodeId(id), addr: self.addrs[i as usize] })
            .collect()
    }
}

/// An id forged for `addr` next to `target`: the target's first 14 bytes, then bytes derived
/// from the address (so each Sybil's forged id is distinct and stable for the target).
pub fn forge(target: &[u8; 20], addr: &SocketAddr) -> [u8; 20] {
    let mut id = *target;
    let seed = match addr {
        SocketAddr::V4(a) => u64::from(u32::from(*a.ip())),
        SocketAddr::V6(a) => u128::from(*a.ip()) as u64,
    };
    let h = crate::engine::mix(seed, 0x5eed);
    id[14..].copy_from_slice(&h.to_be_bytes()[..6]);
    id
}

/// Queries per advertising walk, and the walks (own id, then random ids).
const WALK_BUDGET: usize = 16;
const WALKS: usize = 4;

/// A Sybil node.
pub struct SybilNode {
    id: [u8; 20],
    addr: SocketAddr,
    attack: Attack,
    dir: Rc<SybilDir>,
    k: usize,
    rng: ChaCha8Rng,
    walks: Vec<([u8; 20], usize)>,
    asked: HashSet<SocketAddr>,
    out: VecDeque<Transmit>,
}

impl SybilNode {
    /// A Sybil with this id at `addr`.
    pub fn new(id: [u8; 20], seed: [u8; 32], attack: Attack, dir: Rc<SybilDir>, addr: SocketAddr, k: usize) -> Self {
        let mut rng = ChaCha8Rng::from_seed(seed);
        let walks = (0..WALKS).map(|w| (if w == 0 { id } else { rng.gen() }, WALK_BUDGET)).collect();
        SybilNode { id, addr, attack, dir, k, rng, walks, asked: HashSet::new(), out: VecDeque::new() }
    }

    /// Starts advertising through these honest nodes.
    pub fn bootstrap(&mut self, _now: Instant, contacts: &[SocketAddr]) {
        for w in 0..self.walks.len() {
            for c in contacts {
                self.query(w, *c);
            }
        }
    }

    fn query(&mut self, walk: usize, to: SocketAddr) {
        let (target, budget) = &mut self.walks[walk];
        if *budget == 0 || to == self.addr {
            return;
        }
        *budget -= 1;
        self.asked.insert(to);
        let tx = [walk as u8, self.rng.gen()];
        let method = Method::FindNode { target: NodeId(*target), want: Want::default() };
        let body = Body::Query(Query { id: NodeId(self.id), method });
        self.send(to, &tx, body);
    }

    fn send(&mut self, to: SocketAddr, tx: &[u8], body: Body<'_>) {
        let msg = Message { tx, version: None, ip: None, read_only: false, body };
        let mut payload = Vec::with_capacity(msg.encoded_len());
        msg.encode(&mut payload);
        self.out.push_back(Transmit { dst: to, payload });
    }

    fn on_response(&mut self, tx: &[u8], r: &Response<'_>) {
        let Some(&walk) = tx.first() else { return };
        let walk = usize::from(walk);
        let Some((target, _)) = self.walks.get(walk).copied() else { return };
        let mut next: Vec<NodeInfo> = r
            .nodes
            .iter()
            .filter(|n| !self.asked.contains(&n.addr) && index_of(&n.addr, usize::MAX).is_some())
            .copied()
            .collect();
        next.sort_by_key(|n| n.id.distance(&target));
        for n in next.into_iter().take(3) {
            self.query(walk, n.addr);
        }
    }

    fn on_query(&mut self, from: SocketAddr, tx: &[u8], q: &Query<'_>) {
        let mut resp = Response::with_id(NodeId(self.id));
        let token = [0x5b; 8];
        match (&q.method, self.attack) {
            (Method::Ping, _) => {}
            (_, Attack::Drop) => return,
            (Method::FindNode { target, .. }, Attack::Eclipse) => self.eclipse(&target.0, &mut resp),
            (Method::GetPeers { info_hash, .. }, Attack::Eclipse) => {
                self.eclipse(&info_hash.0, &mut resp);
                resp.token = Some(&token);
            }
            (Method::FindNode { target, .. }, Attack::Fake) => resp.nodes = self.dir.closest(&target.0, self.k),
            (Method::GetPeers { .. }, Attack::Fake) => {
                resp.values = (0..8)
                    .map(|_| SocketAddr::from(([192, 0, 2, self.rng.gen()], self.rng.gen_range(1024..65535))))
                    .collect();
                resp.token = Some(&token);
            }
            (Method::AnnouncePeer { .. }, _) => {}
            // BEP 44 items and BEP 51 samples are not part of the Sybil scenarios: answered
            // with the id only.
            (Method::Get { .. } | Method::Put(_) | Method::SampleInfohashes { .. }, _) => {}
            (Method::Unknown { .. }, _) => return,
        }
        self.send(from, tx, Body::Response(resp));
    }

    /// Fills an eclipse answer: our own forged id, and k other Sybils under forged ids.
    fn eclipse(&mut self, target: &[u8; 20], resp: &mut Response<'_>) {
        resp.id = NodeId(forge(target, &self.addr));
        let n = self.dir.addrs.len();
        // A stable choice of Sybils per target, so that the whole group tells one story.
        let start = (crate::engine::mix(u64::from_be_bytes(target[..8].try_into().expect("8 bytes")), 1)
            % n.max(1) as u64) as usize;
        resp.nodes = (0..n.min(self.k + 1))
            .map(|i| self.dir.addrs[(start + i) % n])
            .filter(|a| *a != self.addr)
            .take(self.k)
            .map(|a| NodeInfo { id: NodeId(forge(target, &a)), addr: a })
            .collect();
    }
}

impl SimNode for SybilNode {
    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(msg) = Message::decode(bytes) else { return };
        match &msg.body {
            Body::Query(q) => self.on_query(from, msg.tx, q),
            Body::Response(r) => self.on_response(msg.tx, r),
            Body::Error(_) => {}
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn start_lookup(&mut self, _now: Instant, _key: [u8; 20], _op: LookupOp) -> u64 {
        0 // Sybils are never lookup sources.
    }

    fn poll_done(&mut self) -> Option<Done> {
        None
    }

    fn contacts(&self, _now: Instant) -> Vec<NodeInfo> {
        Vec::new()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time
mod tests {
    use super::*;

    #[test]
    fn forged_ids_sit_next_to_the_target() {
        let t = [0x77; 20];
        let a = forge(&t, &"10.0.0.5:6881".parse().expect("literal"));
        let b = forge(&t, &"10.0.0.6:6881".parse().expect("literal"));
        assert_eq!(a[..14], t[..14]);
        assert_ne!(a, b);
        assert_eq!(a, forge(&t, &"10.0.0.5:6881".parse().expect("literal")), "stable");
    }

    #[test]
    fn eclipse_answers_with_forged_sybils_only() {
        let dir: Vec<NodeInfo> = (0..20u8)
            .map(|i| NodeInfo { id: NodeId([i; 20]), addr: SocketAddr::from(([10, 0, 0, i + 1], 6881)) })
            .collect();
        let me = dir[3].addr;
        let mut s = SybilNode::new([3; 20], [1; 32], Attack::Eclipse, Rc::new(SybilDir::new(dir)), me, 8);
        let target = NodeId([0xee; 20]);
        let q = Message {
            tx: b"xy",
            version: None,
            ip: None,
            read_only: false,
            body: Body::Query(Query {
                id: NodeId([0xaa; 20]),
                method: Method::FindNode { target, want: Want::default() },
            }),
        };
        let mut bytes = Vec::new();
        q.encode(&mut bytes);
        s.handle_datagram(Instant::now(), "10.9.9.9:6881".parse().expect("literal"), &bytes);
        let t = s.poll_transmit().expect("an answer");
        let m = Message::decode(&t.payload).expect("valid KRPC");
        let Body::Response(r) = m.body else { panic!("not a response") };
        assert_eq!(r.id.0, forge(&target.0, &me));
        assert_eq!(r.nodes.len(), 8);
        assert!(r.nodes.iter().all(|n| n.id.0[..14] == target.0[..14] && n.addr != me));
    }
}
