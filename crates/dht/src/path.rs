//! One path of an iterative lookup.
//!
//! The path keeps the candidates it has heard of ordered by XOR distance to the target and
//! queries the closest unqueried ones, at most α at a time. A request that misses its (short,
//! RTT-derived) soft timeout stops counting against α, so one slow node cannot stall the
//! lookup, but its late answer is still used. The search ends when the k closest live
//! candidates have all answered, when nothing is left to ask, or at the hard deadline.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;

use mycel_krpc::{Distance, NodeId, NodeInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CState {
    Fresh,
    InFlight,
    /// Missed its soft timeout and was sent again: no longer counts against α, but the
    /// search waits for it while it is among the k closest (until the resend's soft timeout).
    Resent,
    /// Missed its soft timeout (and its resend's); no longer counts against α nor holds the
    /// search up, but may still answer.
    Slow,
    Responded,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    info: NodeInfo,
    state: CState,
    hops: u32,
    token: Option<Vec<u8>>,
}

/// A request the lookup wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Request {
    pub addr: SocketAddr,
    pub id: Option<NodeId>,
}

pub(crate) struct Path {
    target: [u8; 20],
    own: NodeId,
    k: usize,
    alpha: usize,
    candidates: BTreeMap<Distance, Candidate>,
    by_addr: HashMap<SocketAddr, Distance>,
    /// Addresses without a known id (bootstrap routers), asked first.
    seeds: Vec<SocketAddr>,
    seeds_in_flight: HashSet<SocketAddr>,
    /// Every address queried so far: no address is asked twice.
    queried: HashSet<SocketAddr>,
    pub(crate) in_flight: usize,
    /// Wait for a slow request among the k closest before finishing. Off by default: a request
    /// is only slow after it was resent once and missed its soft timeout again, and waiting
    /// for its hard timeout made most lookups on a lossy network take seconds (measured in
    /// the simulator); its late answer still counts while the lookup runs.
    pub(crate) patient: bool,
    pub messages_sent: usize,
    pub responses: usize,
    pub timeouts: usize,
}

/// Cap on remembered candidates, as a multiple of k.
const CANDIDATE_FACTOR: usize = 8;

impl Path {
    pub fn new(
        target: [u8; 20],
        own: NodeId,
        k: usize,
        alpha: usize,
        initial: &[NodeInfo],
        seeds: &[SocketAddr],
    ) -> Self {
        let mut l = Path {
            target,
            own,
            k,
            alpha: alpha.max(1),
            candidates: BTreeMap::new(),
            by_addr: HashMap::new(),
            seeds: Vec::new(),
            seeds_in_flight: HashSet::new(),
            queried: HashSet::new(),
            in_flight: 0,
            patient: false,
            messages_sent: 0,
            responses: 0,
            timeouts: 0,
        };
        for n in initial {
            l.add_candidate(*n, 1);
        }
        for s in seeds {
            if !l.by_addr.contains_key(s) && !l.seeds.contains(s) {
                l.seeds.push(*s);
            }
        }
        l
    }

    /// Requests to send now, at most `budget` (the node's global in-flight allowance).
    /// `claimed` holds the addresses other paths of the same lookup have asked: a path never
    /// asks them (that is what keeps paths disjoint).
    pub fn next_requests(&mut self, budget: usize, claimed: &mut HashSet<SocketAddr>) -> Vec<Request> {
        let mut out = Vec::new();
        let mut budget = budget.min(self.alpha.saturating_sub(self.in_flight));
        while budget > 0 {
            let Some(addr) = self.seeds.pop() else { break };
            if !self.queried.insert(addr) || !claimed.insert(addr) {
                continue;
            }
            self.seeds_in_flight.insert(addr);
            self.in_flight += 1;
            self.messages_sent += 1;
            budget -= 1;
            out.push(Request { addr, id: None });
        }
        if budget == 0 {
            return out;
        }
        let picks: Vec<Distance> = self.fresh_in_window().take(budget).collect();
        for d in picks {
            let Some(c) = self.candidates.get_mut(&d) else { continue };
            if !self.queried.insert(c.info.addr) || !claimed.insert(c.info.addr) {
                c.state = CState::Failed;
                continue;
            }
            c.state = CState::InFlight;
            self.in_flight += 1;
            self.messages_sent += 1;
            out.push(Request { addr: c.info.addr, id: Some(c.info.id) });
        }
        out
    }

    /// Unqueried candidates within the window, nearest first. The window is the k closest
    /// candidates that have not failed, widened by one for each slow or resent one among them,
    /// so a node that does not answer in time does not hold a place.
    fn fresh_in_window(&self) -> impl Iterator<Item = Distance> + '_ {
        let mut window = self.k;
        let mut seen = 0;
        self.candidates
            .iter()
            .filter(|(_, c)| c.state != CState::Failed)
            .take_while(move |(_, c)| {
                if seen >= window {
                    return false;
                }
                seen += 1;
                if matches!(c.state, CState::Slow | CState::Resent) {
                    window += 1;
                }
                true
            })
            .filter(|(_, c)| c.state == CState::Fresh)
            .map(|(d, _)| *d)
    }

    /// Whether the search phase has nothing left to do: every one of the k closest candidates
    /// still standing has answered. Requests to farther nodes may still be out; Kademlia's
    /// rule is that they cannot change the result once the k closest have answered, and
    /// waiting for them (or for their soft timeouts) only adds latency. A slow request among
    /// the k closest does not hold the search up (it widens the window instead) unless the
    /// path is `patient`; a resent one does, until the resend misses its own soft timeout.
    pub fn search_finished(&self) -> bool {
        if !self.seeds.is_empty() || !self.seeds_in_flight.is_empty() {
            return false;
        }
        let mut window = self.k;
        for c in self.candidates.values().filter(|c| c.state != CState::Failed) {
            if window == 0 {
                break;
            }
            window -= 1;
            match c.state {
                CState::Responded | CState::Failed => {}
                CState::Fresh | CState::InFlight | CState::Resent => return false,
                CState::Slow if self.patient => return false,
                CState::Slow => window += 1,
            }
        }
        true
    }

    /// A node answered a lookup request. `nodes` are the nodes it returned.
    pub fn on_response(&mut self, from: SocketAddr, id: NodeId, nodes: &[NodeInfo], token: Option<&[u8]>) {
        self.responses += 1;
        let hops = match self.by_addr.get(&from).and_then(|d| self.candidates.get(d)) {
            Some(c) => c.hops,
            None => 1,
        };
        if self.seeds_in_flight.remove(&from) {
            self.in_flight -= 1;
            if id != self.own && !self.by_addr.contains_key(&from) {
                self.add_candidate(NodeInfo { id, addr: from }, 1);
            }
        }
        if let Some(d) = self.by_addr.get(&from).copied() {
            if let Some(c) = self.candidates.get_mut(&d) {
                if c.state == CState::InFlight {
                    self.in_flight -= 1;
                }
                if c.info.id == id {
                    c.state = CState::Responded;
                    c.token = token.map(<[u8]>::to_vec);
                } else {
                    // It answered under another id than the one we were told: do not trust
                    // it as one of the closest.
                    c.state = CState::Failed;
                }
            }
        }
        for n in nodes {
            self.add_candidate(*n, hops + 1);
        }
    }

    /// A node that answered is not to be trusted (BEP 42): it no longer counts as a
    /// responder (not a result, not a target, not a reason to stop searching).
    pub fn demote(&mut self, addr: SocketAddr) {
        if let Some(c) = self.by_addr.get(&addr).and_then(|d| self.candidates.get_mut(d)) {
            if c.state == CState::Responded {
                c.state = CState::Failed;
            }
        }
    }

    /// A request missed its soft timeout (or its resend did).
    pub fn on_slow(&mut self, addr: SocketAddr) {
        if let Some(c) = self.by_addr.get(&addr).and_then(|d| self.candidates.get_mut(d)) {
            match c.state {
                CState::InFlight => {
                    c.state = CState::Slow;
                    self.in_flight -= 1;
                }
                CState::Resent => c.state = CState::Slow,
                _ => {}
            }
        } else if self.seeds_in_flight.remove(&addr) {
            self.in_flight -= 1;
        }
    }

    /// A request missed its soft timeout and was sent again: it frees its α slot, but the
    /// search still waits for it (see [`CState::Resent`]).
    pub fn on_resent(&mut self, addr: SocketAddr) {
        if let Some(c) = self.by_addr.get(&addr).and_then(|d| self.candidates.get_mut(d)) {
            if c.state == CState::InFlight {
                c.state = CState::Resent;
                self.in_flight -= 1;
            }
        } else if self.seeds_in_flight.remove(&addr) {
            self.in_flight -= 1;
        }
    }

    /// A request failed (hard timeout or an error reply).
    pub fn on_failure(&mut self, addr: SocketAddr, timed_out: bool) {
        if timed_out {
            self.timeouts += 1;
        }
        if self.seeds_in_flight.remove(&addr) {
            self.in_flight -= 1;
            return;
        }
        if let Some(c) = self.by_addr.get(&addr).and_then(|d| self.candidates.get_mut(d)) {
            if c.state == CState::InFlight {
                self.in_flight -= 1;
            }
            if matches!(c.state, CState::InFlight | CState::Slow | CState::Resent) {
                c.state = CState::Failed;
            }
        }
    }

    /// Nodes that answered, nearest first, with their distance, hop count and token.
    pub fn responded(&self) -> impl Iterator<Item = (Distance, NodeInfo, u32, Option<&[u8]>)> {
        self.candidates
            .iter()
            .filter(|(_, c)| c.state == CState::Responded)
            .map(|(d, c)| (*d, c.info, c.hops, c.token.as_deref()))
    }

    fn add_candidate(&mut self, info: NodeInfo, hops: u32) {
        if info.id == self.own || self.by_addr.contains_key(&info.addr) || info.addr.port() == 0 {
            return;
        }
        let d = info.id.distance(&self.target);
        if self.candidates.contains_key(&d) {
            return;
        }
        let state = if self.queried.contains(&info.addr) { CState::Failed } else { CState::Fresh };
        self.candidates.insert(d, Candidate { info, state, hops, token: None });
        self.by_addr.insert(info.addr, d);
        if self.candidates.len() > self.k * CANDIDATE_FACTOR {
            // Forget the farthest candidate that is not waiting on an answer.
            let far = self
                .candidates
                .iter()
                .rev()
                .find(|(_, c)| !matches!(c.state, CState::InFlight | CState::Slow | CState::Resent))
                .map(|(d, c)| (*d, c.info.addr));
            if let Some((d, addr)) = far {
                self.candidates.remove(&d);
                self.by_addr.remove(&addr);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(id: [u8; 20], n: u32) -> NodeInfo {
        let b = n.to_be_bytes();
        NodeInfo { id: NodeId(id), addr: SocketAddr::from(([127, b[1], b[2], b[3]], 6881)) }
    }

    proptest! {
        /// At most α requests count as in flight, no address is asked twice, and the lookup
        /// always terminates, whatever the answers are.
        #[test]
        fn alpha_bound_no_duplicates_terminates(
            target in any::<[u8; 20]>(),
            initial in proptest::collection::vec(any::<[u8; 20]>(), 1..20),
            script in proptest::collection::vec((0u8..4, any::<u8>(), proptest::collection::vec(any::<[u8; 20]>(), 0..8)), 1..300),
            alpha in 1usize..6,
        ) {
            let own = NodeId([0; 20]);
            let mut claimed = HashSet::new();
            let mut counter = 1u32;
            let init: Vec<NodeInfo> = initial.iter().map(|id| { counter += 1; node(*id, counter) }).collect();
            let mut l = Path::new(target, own, 8, alpha, &init, &[]);
            let mut asked: HashSet<SocketAddr> = HashSet::new();
            let mut outstanding: Vec<(Request, bool)> = Vec::new(); // (request, slow)
            for (action, pick, nodes) in script {
                for r in l.next_requests(usize::MAX, &mut claimed) {
                    prop_assert!(asked.insert(r.addr), "asked {} twice", r.addr);
                    outstanding.push((r, false));
                }
                let counted = outstanding.iter().filter(|(_, slow)| !slow).count();
                prop_assert!(counted <= alpha, "{counted} in flight with alpha {alpha}");
                prop_assert_eq!(counted, l.in_flight);
                if outstanding.is_empty() {
                    break;
                }
                let i = pick as usize % outstanding.len();
                let (r, slow) = outstanding[i];
                match action {
                    0 | 1 => {
                        outstanding.remove(i);
                        let found: Vec<NodeInfo> = nodes.iter().map(|id| { counter += 1; node(*id, counter) }).collect();
                        l.on_response(r.addr, r.id.expect("no seeds here"), &found, Some(b"tok"));
                    }
                    2 if !slow => {
                        outstanding[i].1 = true;
                        l.on_slow(r.addr);
                    }
                    _ => {
                        outstanding.remove(i);
                        l.on_failure(r.addr, true);
                    }
                }
            }
            // Answer everything still open with no new nodes: the search must then end.
            loop {
                for r in l.next_requests(usize::MAX, &mut claimed) {
                    prop_assert!(asked.insert(r.addr));
                    outstanding.push((r, false));
                }
                let Some((r, _)) = outstanding.pop() else { break };
                l.on_response(r.addr, r.id.expect("no seeds"), &[], None);
            }
            prop_assert!(l.search_finished());
            let closest: Vec<NodeInfo> = l.responded().map(|(_, n, _, _)| n).take(8).collect();
            prop_assert!(closest.len() <= 8);
            prop_assert!(closest.windows(2).all(|w| w[0].id.distance(&target) < w[1].id.distance(&target)));
        }
    }

    #[test]
    fn claimed_addresses_are_skipped() {
        let mut claimed = HashSet::new();
        let a = node([1; 20], 1);
        let b = node([2; 20], 2);
        claimed.insert(a.addr);
        let mut l = Path::new([0; 20], NodeId([9; 20]), 8, 3, &[a, b], &[]);
        let r = l.next_requests(10, &mut claimed);
        assert_eq!(r, vec![Request { addr: b.addr, id: Some(b.id) }], "a belongs to another path");
        assert!(claimed.contains(&b.addr));
    }

    #[test]
    fn seeds_are_asked_first_and_become_candidates() {
        let mut claimed = HashSet::new();
        let seed: SocketAddr = "127.0.0.1:1".parse().expect("addr literal");
        let mut l = Path::new([1; 20], NodeId([0; 20]), 8, 3, &[], &[seed]);
        let r = l.next_requests(10, &mut claimed);
        assert_eq!(r, vec![Request { addr: seed, id: None }]);
        l.on_response(seed, NodeId([2; 20]), &[node([3; 20], 9)], None);
        assert_eq!(l.responded().count(), 1);
        let r = l.next_requests(10, &mut claimed);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, Some(NodeId([3; 20])));
    }

    #[test]
    fn demoted_responders_are_neither_results_nor_a_reason_to_stop() {
        let mut claimed = HashSet::new();
        let a = node([1; 20], 1);
        let mut l = Path::new([0; 20], NodeId([9; 20]), 1, 3, &[a], &[]);
        let r = l.next_requests(10, &mut claimed);
        assert_eq!(r.len(), 1);
        let b = node([2; 20], 2);
        l.on_response(a.addr, a.id, &[b], None);
        l.demote(a.addr);
        assert_eq!(l.responded().count(), 0, "a demoted node is not a result");
        assert!(!l.search_finished(), "the node it named is still asked");
        assert_eq!(l.next_requests(10, &mut claimed).len(), 1);
    }
}
