//! Peer exchange (BEP 11, `ut_pex`): we tell each peer that supports it whom we are
//! connected to, and dial the peers it tells us of.
//!
//! Sending: once a second (the engine's tick), every active peer that advertised `ut_pex`
//! and has not had a message for [`Config::pex_interval`](crate::Config::pex_interval) gets
//! the difference between the listen addresses of our connected peers now and what our
//! earlier messages told it: at most [`MAX_PER_MESSAGE`] added and as many dropped. Nothing
//! changed, nothing is sent (and the interval does not restart), so the first message goes
//! out within a second of the extended handshake once we have someone to tell of. A peer's
//! listen address is the address we dialled for an outgoing connection, and the IP with
//! the `p` port of its extended handshake for an incoming one; incoming peers without `p`
//! are left out, as is the receiver itself.
//!
//! Receiving: a malformed message is a protocol error; messages closer together than
//! [`Config::pex_min_recv_interval`](crate::Config::pex_min_recv_interval) are ignored; the
//! `added` addresses become dial candidates unless banned, ours, unspecified, multicast,
//! of port 0 or of an IP already listed earlier in the message, and only while we hold
//! fewer than
//! [`Config::pex_max_candidates`](crate::Config::pex_max_candidates). `dropped` is not
//! used: a dropped peer's candidate fails or connects on its own.
//!
//! A private torrent (BEP 27, [`Layout::is_private`](crate::Layout::is_private)) or
//! `Config::pex == false`: `ut_pex` is not advertised, nothing is sent, and a message that
//! arrives anyway is ignored like any extension id we did not announce.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

use mycel_peer_wire::{ExtendedHandshake, Message, PexFlags, UtPex, UT_PEX};

use crate::peer::Peer;
use crate::swarm::DialCandidate;
use crate::{DisconnectReason, PeerKey, Swarm};

/// The extended message id we receive `ut_pex` under (in our extended handshake).
pub const UT_PEX_ID: u8 = 1;
/// Most added (and most dropped) peers in one message we send (BEP 11).
pub(crate) const MAX_PER_MESSAGE: usize = 50;
/// Most addresses peers' `yourip` may teach us as ours.
const MAX_OWN_IPS: usize = 8;

/// One connection's PEX state.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerPex {
    /// The id the peer wants `ut_pex` under; `None`: it does not support it (or PEX is off).
    pub id: Option<u8>,
    /// Its listen port (`p` of its extended handshake).
    pub listen_port: Option<u16>,
    /// It said `upload_only` (BEP 21).
    pub upload_only: bool,
    /// Listen addresses our messages so far told it we are connected to.
    pub told: BTreeSet<SocketAddr>,
    /// When we last sent it a message.
    pub last_sent: Option<Instant>,
    /// When we last accepted a message from it.
    pub last_recv: Option<Instant>,
}

impl Swarm {
    /// Whether this torrent does peer exchange.
    pub(crate) fn pex_enabled(&self) -> bool {
        self.cfg.pex && !self.layout.is_private()
    }

    /// Keeps what a peer's extended handshake tells PEX: its `ut_pex` id, its listen port,
    /// whether it only uploads, and the address it sees us at.
    pub(crate) fn pex_on_ext_handshake(&mut self, key: PeerKey, hs: &ExtendedHandshake<'_>) {
        if let Some(ip) = hs.yourip {
            if self.own_ips.len() < MAX_OWN_IPS {
                self.own_ips.insert(ip.to_canonical());
            }
        }
        let enabled = self.pex_enabled();
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.pex.id = hs.extension_id(UT_PEX).filter(|_| enabled);
        peer.pex.listen_port = hs.p.filter(|&p| p != 0);
        peer.pex.upload_only = hs.upload_only;
    }

    /// Sends a message to every peer that is due one (called once a second).
    pub(crate) fn pex_tick(&mut self, now: Instant) {
        if !self.pex_enabled() {
            return;
        }
        let interval = self.cfg.pex_interval;
        let due: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.is_active() && p.pex.id.is_some())
            .filter(|(_, p)| p.pex.last_sent.is_none_or(|t| now.saturating_duration_since(t) >= interval))
            .map(|(&k, _)| k)
            .collect();
        if due.is_empty() {
            return;
        }
        let connected: BTreeMap<SocketAddr, PexFlags> = self
            .peers
            .values()
            .filter(|p| p.is_active())
            .filter_map(|p| listen_addr(p).map(|a| (a, flags(p))))
            .collect();
        for key in due {
            self.send_pex(now, key, &connected);
        }
    }

    /// Sends one peer what changed in `connected` since our last message to it, if anything.
    fn send_pex(&mut self, now: Instant, key: PeerKey, connected: &BTreeMap<SocketAddr, PexFlags>) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        let Some(id) = peer.pex.id else { return };
        let (itself, remote) = (listen_addr(peer), canonical(peer.addr));
        let added: Vec<(SocketAddr, PexFlags)> = connected
            .iter()
            .filter(|(a, _)| Some(**a) != itself && **a != remote && !peer.pex.told.contains(a))
            .take(MAX_PER_MESSAGE)
            .map(|(a, f)| (*a, *f))
            .collect();
        let dropped: Vec<SocketAddr> =
            peer.pex.told.iter().filter(|a| !connected.contains_key(a)).take(MAX_PER_MESSAGE).copied().collect();
        if added.is_empty() && dropped.is_empty() {
            return;
        }
        for a in &dropped {
            peer.pex.told.remove(a);
        }
        peer.pex.told.extend(added.iter().map(|(a, _)| *a));
        peer.pex.last_sent = Some(now);
        let msg = build(&added, &dropped);
        let mut payload = Vec::with_capacity(msg.encoded_len());
        msg.encode(&mut payload);
        self.send(key, &Message::Extended { id, payload: &payload });
        self.stats.pex_sent += 1;
    }

    /// A `ut_pex` message arrived (under our [`UT_PEX_ID`]).
    pub(crate) fn on_pex(&mut self, now: Instant, key: PeerKey, payload: &[u8]) {
        if !self.pex_enabled() {
            return;
        }
        let msg = match UtPex::decode(payload) {
            Ok(m) => m,
            Err(e) => return self.disconnect(now, key, DisconnectReason::Protocol(format!("ut_pex: {e}"))),
        };
        let min_gap = self.cfg.pex_min_recv_interval;
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if peer.pex.last_recv.is_some_and(|t| now.saturating_duration_since(t) < min_gap) {
            self.stats.pex_ignored += 1;
            return;
        }
        peer.pex.last_recv = Some(now);
        self.stats.pex_received += 1;
        let added =
            msg.added.iter().map(|(a, _)| SocketAddr::V4(*a)).chain(msg.added6.iter().map(|(a, _)| SocketAddr::V6(*a)));
        // BEP 11: one address per IP, so a message cannot aim our dials at one host's ports.
        let mut ips = BTreeSet::new();
        for addr in added {
            let addr = canonical(addr);
            if !self.pex_dialable(addr) || !ips.insert(addr.ip()) || self.candidates.contains_key(&addr) {
                continue;
            }
            if self.candidates.len() >= self.cfg.pex_max_candidates {
                break;
            }
            self.candidates.insert(addr, DialCandidate { failures: 0, retry_at: now });
            self.stats.pex_peers_learnt += 1;
        }
    }

    /// Whether an address a peer told us of is worth dialling.
    fn pex_dialable(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip();
        let ours = self.cfg.listen_port == Some(addr.port()) && self.own_ips.contains(&ip);
        addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !self.banned.contains(&ip) && !ours
    }
}

/// Where a connected peer accepts connections, if we know.
fn listen_addr(p: &Peer) -> Option<SocketAddr> {
    if p.outgoing {
        return Some(canonical(p.addr));
    }
    p.pex.listen_port.map(|port| SocketAddr::new(p.addr.ip().to_canonical(), port))
}

/// The BEP 11 flags we know for a connected peer.
fn flags(p: &Peer) -> PexFlags {
    let mut f = 0;
    if p.has.is_full() || p.pex.upload_only {
        f |= PexFlags::SEED;
    }
    if p.outgoing {
        f |= PexFlags::REACHABLE;
    }
    PexFlags(f)
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn build(added: &[(SocketAddr, PexFlags)], dropped: &[SocketAddr]) -> UtPex {
    let mut msg = UtPex::default();
    for &(a, f) in added {
        match a {
            SocketAddr::V4(a) => msg.added.push((a, f)),
            SocketAddr::V6(a) => msg.added6.push((a, f)),
        }
    }
    for &a in dropped {
        match a {
            SocketAddr::V4(a) => msg.dropped.push(a),
            SocketAddr::V6(a) => msg.dropped6.push(a),
        }
    }
    msg
}
