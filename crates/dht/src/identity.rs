//! Our own BEP 42 identity: the external IP the nodes answering us report (the `ip` field),
//! decided by a vote, and a node id derived from it.
//!
//! BEP 42 ties a node id to the node's public IP so that an attacker cannot pick ids next to
//! a target at will. Nodes that enforce it give a node with a non-matching id no write token
//! and do not trust its answers, so a node whose id does not match its address loses part of
//! its usefulness. Once enough responders agree on our public address and our id does not
//! match it, we take a new id derived from that address and rejoin with our old contacts
//! (they are re-verified from scratch against the new id). Local and private addresses are
//! exempt, as the BEP says: test networks on loopback keep their ids.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mycel_krpc::NodeId;
use rand::Rng;

use crate::node::Node;
use crate::routing::RoutingTable;
use crate::secure_id::{is_exempt, is_secure_id, secure_id};

impl Node {
    /// A responder (`voter`) says our address is `seen`. IPv4 votes decide once any has
    /// arrived (the id is bound to one address, and most of the network is IPv4); a node
    /// heard only over IPv6 takes its IPv6 address.
    pub(crate) fn on_ip_vote(&mut self, now: Instant, voter: IpAddr, seen: SocketAddr) {
        let seen = seen.ip();
        if seen.is_ipv6() && self.identity.v4_voted {
            return;
        }
        if seen.is_ipv4() && !self.identity.v4_voted {
            self.identity.v4_voted = true;
            self.ip_vote.clear();
        }
        self.ip_vote.add(voter, seen);
        // Votes for the address already decided cannot change the outcome.
        if self.identity.decided == Some(seen) {
            return;
        }
        let winner = self.ip_vote.winner();
        if winner == self.identity.decided {
            return;
        }
        self.identity.decided = winner;
        let Some(ip) = winner else { return };
        if self.cfg.secure_own_id && !is_exempt(ip) && !is_secure_id(&self.id, ip) {
            let id = secure_id(ip, self.rng.gen(), self.rng.gen());
            tracing::info!(%ip, old = %self.id, new = %id, "external address decided; taking a BEP 42 node id");
            self.change_id(now, id);
        }
    }

    /// Takes a new node id: the table is rebuilt around it from the old contacts, which must
    /// answer again before they count, and a self-lookup fills the new neighbourhood.
    fn change_id(&mut self, now: Instant, id: NodeId) {
        let contacts = self.table.nodes(now);
        self.id = id;
        let mut table = RoutingTable::new(id, self.cfg.k, now);
        table.configure(&self.cfg);
        self.table = table;
        self.stats.id_changes += 1;
        self.restore(now, &contacts);
    }
}

/// What the node has decided about its own address.
#[derive(Debug, Default)]
pub(crate) struct Identity {
    /// The address the vote last settled on.
    pub decided: Option<IpAddr>,
    /// An IPv4 responder has voted (IPv6 votes are ignored from then on).
    pub v4_voted: bool,
}
