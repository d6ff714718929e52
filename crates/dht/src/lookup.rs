//! One lookup (find_node, get_peers, or get_peers followed by announce_peer), run over one or
//! more disjoint paths.
//!
//! With `d` paths (S/Kademlia), the k closest nodes of our table are dealt round-robin into d
//! paths; each path follows only the nodes its own responders name, and no node is asked by
//! two paths. An attacker that sits on one path cannot steer the others, so the union of the
//! paths' results finds the true closest nodes as long as one path stays clean. With d = 1 this
//! is plain Kademlia.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;

use mycel_krpc::{NodeId, NodeInfo};

use crate::event::{LookupKind, LookupResult};
use crate::path::{Path, Request};

/// Where the lookup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Searching,
    /// Sending `announce_peer`; requests still outstanding.
    Announcing {
        outstanding: usize,
    },
    Done,
}

pub(crate) struct Lookup {
    pub kind: LookupKind,
    k: usize,
    paths: Vec<Path>,
    /// Which path asked an address.
    owner: HashMap<SocketAddr, usize>,
    /// Every address asked by any path.
    claimed: HashSet<SocketAddr>,
    pub started: Instant,
    pub deadline: Instant,
    pub peers: HashSet<SocketAddr>,
    pub phase: Phase,
    pub deadline_hit: bool,
    /// `announce_peer` requests sent.
    pub announces_sent: usize,
    /// Nodes that acknowledged our `announce_peer`.
    pub announced_to: usize,
    /// Set for lookups the node runs for itself (bootstrap, refresh): no events.
    pub internal: bool,
    /// For announce lookups: the port to announce (`None`: implied port).
    pub announce_port: Option<u16>,
    /// For BEP 44 item lookups: what is being got or put, and what came back.
    pub item: Option<Box<crate::item_ops::ItemOp>>,
}

/// Shape of a lookup: k, α per path, number of disjoint paths.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub k: usize,
    pub alpha: usize,
    pub paths: usize,
}

impl Lookup {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: LookupKind,
        target: [u8; 20],
        own: NodeId,
        shape: Shape,
        initial: &[NodeInfo],
        seeds: &[SocketAddr],
        now: Instant,
        deadline: Instant,
    ) -> Self {
        let d = shape.paths.max(1);
        // Item i goes to path i mod d.
        let paths = (0..d)
            .map(|p| {
                let init: Vec<NodeInfo> = initial.iter().skip(p).step_by(d).copied().collect();
                let sd: Vec<SocketAddr> = seeds.iter().skip(p).step_by(d).copied().collect();
                Path::new(target, own, shape.k, shape.alpha, &init, &sd)
            })
            .collect();
        Lookup {
            kind,
            k: shape.k,
            paths,
            owner: HashMap::new(),
            claimed: HashSet::new(),
            started: now,
            deadline,
            peers: HashSet::new(),
            phase: Phase::Searching,
            deadline_hit: false,
            announces_sent: 0,
            announced_to: 0,
            internal: false,
            announce_port: None,
            item: None,
        }
    }

    /// Requests to send now, at most `budget` in all.
    pub fn next_requests(&mut self, mut budget: usize) -> Vec<Request> {
        let mut out = Vec::new();
        if self.phase != Phase::Searching {
            return out;
        }
        for (i, path) in self.paths.iter_mut().enumerate() {
            let reqs = path.next_requests(budget, &mut self.claimed);
            budget -= reqs.len();
            for r in &reqs {
                self.owner.insert(r.addr, i);
            }
            out.extend(reqs);
        }
        out
    }

    /// Stops waiting for slow requests among the k closest (see `Path::patient`).
    pub fn set_impatient(&mut self) {
        for p in &mut self.paths {
            p.patient = false;
        }
    }

    /// A request of this lookup was sent again; it counts as a message.
    pub fn note_resend(&mut self) {
        if let Some(p) = self.paths.first_mut() {
            p.messages_sent += 1;
        }
    }

    /// Whether every path has finished searching.
    pub fn search_finished(&self) -> bool {
        self.paths.iter().all(Path::search_finished)
    }

    fn path_of(&mut self, addr: &SocketAddr) -> Option<&mut Path> {
        let i = *self.owner.get(addr)?;
        self.paths.get_mut(i)
    }

    /// A node answered; only the path that asked it learns the nodes it names.
    pub fn on_response(&mut self, from: SocketAddr, id: NodeId, nodes: &[NodeInfo], token: Option<&[u8]>) {
        if let Some(p) = self.path_of(&from) {
            p.on_response(from, id, nodes, token);
        }
    }

    /// A node that answered is not to be trusted (BEP 42); see `Path::demote`.
    pub fn demote(&mut self, addr: SocketAddr) {
        if let Some(p) = self.path_of(&addr) {
            p.demote(addr);
        }
    }

    /// A request missed its soft timeout.
    pub fn on_slow(&mut self, addr: SocketAddr) {
        if let Some(p) = self.path_of(&addr) {
            p.on_slow(addr);
        }
    }

    /// A request missed its soft timeout and was sent again.
    pub fn on_resent(&mut self, addr: SocketAddr) {
        if let Some(p) = self.path_of(&addr) {
            p.on_resent(addr);
        }
    }

    /// A request failed.
    pub fn on_failure(&mut self, addr: SocketAddr, timed_out: bool) {
        if let Some(p) = self.path_of(&addr) {
            p.on_failure(addr, timed_out);
        }
    }

    /// The k closest responders of every path, nearest first, each node once: at most k with
    /// one path, at most d·k with d. Cutting the union back to k would undo the paths: under
    /// an eclipse, the ids an attacker forged next to the target are nearer than the honest
    /// closest nodes a clean path found, and would push them all out.
    fn merged(&self) -> Vec<(NodeInfo, u32, Option<&[u8]>)> {
        let mut all: Vec<_> = self.paths.iter().flat_map(|p| p.responded().take(self.k)).collect();
        all.sort_by_key(|a| a.0);
        all.dedup_by(|a, b| a.0 == b.0);
        all.into_iter().map(|(_, n, hops, tok)| (n, hops, tok)).collect()
    }

    /// The closest responders of every path that gave a token, for `announce_peer` (and BEP 44
    /// `put`): k nodes with one path, up to d·k with d, so a clean path's nodes get the value.
    pub fn announce_targets(&self) -> Vec<(NodeInfo, Vec<u8>)> {
        self.merged().into_iter().filter_map(|(n, _, tok)| tok.map(|t| (n, t.to_vec()))).collect()
    }

    /// Peers not seen before by this lookup, remembered from now on.
    pub fn new_peers(&mut self, values: &[SocketAddr]) -> Vec<SocketAddr> {
        values.iter().copied().filter(|p| self.peers.insert(*p)).collect()
    }

    /// The result, for the event.
    pub fn result(&self, now: Instant) -> LookupResult {
        let merged = self.merged();
        LookupResult {
            kind: self.kind,
            closest: merged.iter().map(|(n, _, _)| *n).collect(),
            peers_found: self.peers.len(),
            announced_to: self.announced_to,
            messages_sent: self.paths.iter().map(|p| p.messages_sent).sum::<usize>() + self.announces_sent,
            responses: self.paths.iter().map(|p| p.responses).sum(),
            timeouts: self.paths.iter().map(|p| p.timeouts).sum(),
            hops: merged.first().map_or(0, |(_, h, _)| *h),
            duration: now.saturating_duration_since(self.started),
            deadline_hit: self.deadline_hit,
        }
    }
}
