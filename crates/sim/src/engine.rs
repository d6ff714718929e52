//! The discrete-event engine: virtual time, the event queue, the timer heap, datagram routing
//! through the network model, and the trace hash.
//!
//! Virtual time is a count of nanoseconds since the run's origin (one `Instant` taken at the
//! start); nodes see `origin + t`. Events are ordered by (time, sequence number), so two runs
//! with the same seed process the same events in the same order. Node timers live in their own
//! heap of (deadline, node, generation): after every interaction with a node its
//! `poll_timeout` is re-read and, when it changed, pushed with a new generation; entries whose
//! generation is stale are skipped when they surface. No step scans all nodes.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mycel_dht::Transmit;
use mycel_krpc::NodeInfo;

use crate::node::SimNode;
use crate::scenario::Sim;

/// No timer scheduled.
pub(crate) const NEVER: u64 = u64::MAX;

/// The UDP port every simulated node uses.
pub const PORT: u16 = 6881;

/// The synthetic address of node `i`: 10.0.0.1 + i. These addresses exist only in memory.
pub fn addr_of(i: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x0a00_0001 + i), PORT))
}

/// The node index behind a synthetic address, if it is one.
pub fn index_of(addr: &SocketAddr, n: usize) -> Option<u32> {
    let SocketAddr::V4(a) = addr else { return None };
    let i = u32::from(*a.ip()).checked_sub(0x0a00_0001)?;
    (a.port() == PORT && (i as usize) < n).then_some(i)
}

/// What happens at an instant.
pub(crate) enum What {
    /// A datagram arrives.
    Deliver { from: u32, to: u32, payload: Vec<u8> },
    /// A node comes online (first join or rejoin).
    Join(u32),
    /// A node goes offline.
    Leave(u32),
    /// The workload starts lookup number `.0`.
    Lookup(u32),
    /// The items workload puts item number `.0`.
    ItemPut(u32),
    /// The items workload gets item number `.0` back.
    ItemGet(u32),
    /// A new membership view is published to the baselines.
    Publish,
}

pub(crate) struct Ev {
    pub at: u64,
    pub seq: u64,
    pub what: What,
}

impl PartialEq for Ev {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Per-node bookkeeping of the engine.
pub(crate) struct Slot {
    pub node: Option<Box<dyn SimNode>>,
    pub id: [u8; 20],
    pub sybil: bool,
    /// Bumped whenever the scheduled timer changes; older heap entries are stale.
    pub gen: u32,
    pub scheduled: u64,
    pub online_since: u64,
    /// Routing contacts saved when the node left, handed back on rejoin.
    pub saved: Vec<NodeInfo>,
}

/// Counters of the engine.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Events processed (deliveries, timers, workload events).
    pub events: u64,
    /// Datagrams sent by nodes.
    pub datagrams: u64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// Datagrams the senders classed as lookup traffic.
    pub lookup_datagrams: u64,
    /// Their payload bytes.
    pub lookup_bytes: u64,
    /// Lost to the loss model or a partition.
    pub lost: u64,
    /// Stopped by a NAT.
    pub nat_dropped: u64,
    /// Sent to an offline node or to no node at all.
    pub undeliverable: u64,
}

/// Folds a value into a 64-bit trace hash (splitmix64 finalizer over the xor).
pub(crate) fn mix(h: u64, v: u64) -> u64 {
    let mut z = (h ^ v).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Sim {
    /// The `Instant` a node sees at virtual time `t`.
    pub(crate) fn instant(&self, t: u64) -> Instant {
        self.origin + Duration::from_nanos(t)
    }

    fn to_virtual(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// Queues an event at virtual time `at`.
    pub(crate) fn push(&mut self, at: u64, what: What) {
        self.seq += 1;
        self.queue.push(Reverse(Ev { at, seq: self.seq, what }));
    }

    /// Runs every event and timer due up to `end` (virtual time), calling `progress` every
    /// 65,536 events.
    pub(crate) fn run_until(&mut self, end: u64, progress: &mut dyn FnMut(&Sim)) {
        loop {
            let next_ev = self.queue.peek().map_or(NEVER, |Reverse(e)| e.at);
            let next_timer = self.timers.peek().map_or(NEVER, |Reverse(t)| t.0);
            let at = next_ev.min(next_timer);
            if at > end || at == NEVER {
                self.now = self.now.max(end);
                return;
            }
            self.now = self.now.max(at);
            self.counters.events += 1;
            if self.counters.events & 0xffff == 0 {
                progress(self);
            }
            if next_ev <= next_timer {
                let Some(Reverse(ev)) = self.queue.pop() else { continue };
                self.dispatch(ev.what);
                self.drain_done();
            } else {
                let Some(Reverse((_, i, gen))) = self.timers.pop() else { continue };
                let slot = &mut self.slots[i as usize];
                if slot.gen != gen || slot.node.is_none() {
                    self.counters.events -= 1; // a stale entry is not an event
                    continue;
                }
                slot.scheduled = NEVER;
                self.trace = mix(self.trace, mix(self.now, u64::from(i)));
                self.interact(i, |n, now| n.handle_timeout(now));
                self.drain_done();
            }
        }
    }

    fn dispatch(&mut self, what: What) {
        match what {
            What::Deliver { from, to, payload } => self.deliver(from, to, &payload),
            What::Join(i) => self.on_join(i),
            What::Leave(i) => self.on_leave(i),
            What::Lookup(j) => self.on_lookup(j),
            What::ItemPut(j) => self.on_item_put(j),
            What::ItemGet(j) => self.on_item_get(j),
            What::Publish => self.on_publish(),
        }
    }

    fn deliver(&mut self, from: u32, to: u32, payload: &[u8]) {
        if self.slots[to as usize].node.is_none() {
            self.counters.undeliverable += 1;
            return;
        }
        let now = Duration::from_nanos(self.now);
        if !self.net.admits(now, to as usize, from as usize) {
            self.counters.nat_dropped += 1;
            return;
        }
        self.trace = mix(self.trace, mix(self.now, (u64::from(from) << 32) | u64::from(to)) ^ payload.len() as u64);
        self.note_contact(from, to);
        let src = addr_of(from);
        self.interact(to, |n, now| n.handle_datagram(now, src, payload));
    }

    /// Calls `f` on node `i`, then drains its outputs and reschedules its timer.
    pub(crate) fn interact(&mut self, i: u32, f: impl FnOnce(&mut dyn SimNode, Instant)) {
        let Some(mut node) = self.slots[i as usize].node.take() else { return };
        f(node.as_mut(), self.instant(self.now));
        while let Some(t) = node.poll_transmit() {
            if node.is_lookup_traffic(&t.payload) {
                self.counters.lookup_datagrams += 1;
                self.counters.lookup_bytes += t.payload.len() as u64;
            }
            self.route(i, t);
        }
        let mut done = Vec::new();
        while let Some(d) = node.poll_done() {
            done.push(d);
        }
        while let Some(d) = node.poll_item_done() {
            self.trace = mix(self.trace, mix(d.tag(), u64::from(i)));
            self.pending_items.push((i, d));
        }
        let next = node.poll_timeout().map_or(NEVER, |t| self.to_virtual(t).max(self.now));
        let slot = &mut self.slots[i as usize];
        slot.node = Some(node);
        if next != slot.scheduled {
            slot.gen = slot.gen.wrapping_add(1);
            slot.scheduled = next;
            if next != NEVER {
                self.timers.push(Reverse((next, i, slot.gen)));
                if self.timers.len() > 2 * self.slots.len() + 4096 {
                    self.compact_timers();
                }
            }
        }
        for d in done {
            self.trace = mix(self.trace, mix(d.tag, d.found.first().map_or(0, |f| u64::from(f[0]))));
            self.pending_done.push((i, d));
        }
    }

    /// Rebuilds the timer heap from the nodes' scheduled deadlines, dropping stale entries.
    /// A node whose deadline moves later leaves its earlier entry behind; without this, those
    /// would pile up for up to the longest timer (minutes). Runs after at least N pushes, so
    /// its O(N) cost is amortized.
    fn compact_timers(&mut self) {
        let live: Vec<Reverse<(u64, u32, u32)>> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.scheduled != NEVER && s.node.is_some())
            .map(|(i, s)| Reverse((s.scheduled, i as u32, s.gen)))
            .collect();
        self.timers = BinaryHeap::from(live);
    }

    /// Sends a node's datagram through the network model.
    fn route(&mut self, from: u32, t: Transmit) {
        self.counters.datagrams += 1;
        self.counters.bytes += t.payload.len() as u64;
        let Some(to) = index_of(&t.dst, self.slots.len()) else {
            self.counters.undeliverable += 1;
            return;
        };
        let now = Duration::from_nanos(self.now);
        match self.net.send(now, from as usize, to as usize, &mut self.rng) {
            None => self.counters.lost += 1,
            Some(delay) => {
                let at = self.now + delay.as_nanos() as u64;
                self.push(at, What::Deliver { from, to, payload: t.payload });
            }
        }
    }

    /// Whether node `i` is online.
    pub(crate) fn online(&self, i: u32) -> bool {
        self.slots[i as usize].node.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for i in [0u32, 1, 255, 256, 70_000, 1_000_000] {
            assert_eq!(index_of(&addr_of(i), 2_000_000), Some(i));
        }
        assert_eq!(index_of(&addr_of(10), 10), None);
        assert_eq!(index_of(&"192.0.2.1:6881".parse().expect("literal"), 10), None);
        assert_eq!(index_of(&"10.0.0.1:80".parse().expect("literal"), 10), None);
    }

    #[test]
    fn events_order_by_time_then_sequence() {
        let mut h = BinaryHeap::new();
        h.push(Reverse(Ev { at: 5, seq: 2, what: What::Publish }));
        h.push(Reverse(Ev { at: 5, seq: 1, what: What::Publish }));
        h.push(Reverse(Ev { at: 1, seq: 3, what: What::Publish }));
        let order: Vec<(u64, u64)> = std::iter::from_fn(|| h.pop().map(|Reverse(e)| (e.at, e.seq))).collect();
        assert_eq!(order, vec![(1, 3), (5, 1), (5, 2)]);
    }
}
