//! Durable puts: with [`Config::durable_items`](crate::Config::durable_items) a `put` is
//! answered only once the driver has written the item to disk.
//!
//! An accepted put (token, validity, seq and cas all passed) waits here with what its answer
//! needs. The driver takes the items in order with [`Node::poll_item_write`], writes them (a
//! batch in one transaction), and reports with [`Node::handle_items_written`]; only then is
//! the item served by `get` and the put answered: an empty response when the write succeeded,
//! error 202 when it failed (and the item is dropped).
//!
//! Invariants: writes are reported in the order they were taken, and the driver applies them
//! to disk in that order, so the disk's last version of a mutable item is the last one
//! accepted. A new put of a mutable item is checked against the newest version still waiting
//! (not only the one served), so two puts in one batch cannot both pass against an older
//! version and leave the disk with the lower seq. A write that fails leaves the versions
//! queued after it checked against it; they are still valid, signed versions.
//!
//! Without `durable_items` (the simulator, a driver without a disk) the item is stored and
//! answered at once and only queued for [`Node::poll_item_write`], bounded, as before.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use mycel_items::MutableItem;
use mycel_krpc::{Body, Response};

use crate::items::StoredItem;
use crate::node::Node;

/// An accepted put on its way to disk.
struct Write {
    item: StoredItem,
    /// Who to answer once written; `None` when the put was answered already (not durable).
    ack: Option<Ack>,
}

struct Ack {
    to: SocketAddr,
    tx: Vec<u8>,
}

/// The queue of item writes of a node.
#[derive(Default)]
pub(crate) struct ItemWrites {
    /// Accepted, not yet taken by the driver.
    queued: VecDeque<Write>,
    /// Taken by the driver and waiting for its report, in the order taken (durable only).
    in_flight: VecDeque<Write>,
    /// Per target with durable writes waiting: the newest mutable version among them (`None`
    /// for an immutable item) and how many writes wait.
    waiting: BTreeMap<[u8; 20], (Option<MutableItem>, usize)>,
}

impl ItemWrites {
    pub fn new() -> Self {
        ItemWrites::default()
    }

    /// Writes queued or in flight.
    pub fn len(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }

    /// Durable writes waiting for the disk (queued or in flight).
    pub fn waiting(&self) -> usize {
        self.waiting.values().map(|(_, n)| n).sum()
    }

    /// The next item for the driver to write. A durable write moves to the in-flight list
    /// until its report.
    pub fn pop_front(&mut self) -> Option<StoredItem> {
        let write = self.queued.pop_front()?;
        if write.ack.is_none() {
            return Some(write.item);
        }
        let item = write.item.clone();
        self.in_flight.push_back(write);
        Some(item)
    }

    /// Queues the write of an item already stored and answered (not durable). Bounded even
    /// when nobody drains it: the oldest queued write goes first.
    pub fn push_stored(&mut self, item: StoredItem, cap: usize) {
        while !self.queued.is_empty() && self.queued.len() >= cap.max(1) {
            self.queued.pop_front();
        }
        self.queued.push_back(Write { item, ack: None });
    }

    /// The newest mutable version waiting under `target`.
    pub fn newest_mutable(&self, target: &[u8; 20]) -> Option<&MutableItem> {
        self.waiting.get(target).and_then(|(m, _)| m.as_ref())
    }

    fn push_durable(&mut self, item: StoredItem, to: SocketAddr, tx: &[u8]) {
        let slot = self.waiting.entry(item.target()).or_insert((None, 0));
        slot.1 += 1;
        if let StoredItem::Mutable(m) = &item {
            slot.0 = Some(m.clone());
        }
        self.queued.push_back(Write { item, ack: Some(Ack { to, tx: tx.to_vec() }) });
    }

    /// Takes the next reported write off the in-flight list.
    fn take_reported(&mut self) -> Option<(StoredItem, Ack)> {
        let write = self.in_flight.pop_front()?;
        let ack = write.ack?;
        let target = write.item.target();
        if let Some(slot) = self.waiting.get_mut(&target) {
            slot.1 -= 1;
            if slot.1 == 0 {
                self.waiting.remove(&target);
            }
        }
        Some((write.item, ack))
    }
}

impl Node {
    /// Reports the outcome of writing the next `count` items taken with
    /// [`Node::poll_item_write`] (in the order taken; a batch written in one transaction
    /// succeeds or fails as a whole). Written items are stored and their puts answered; puts
    /// whose write failed are answered with error 202 and their items dropped. Without
    /// [`Config::durable_items`](crate::Config::durable_items) there is nothing to report and
    /// the call is a no-op.
    pub fn handle_items_written(&mut self, now: Instant, count: usize, written: bool) {
        for _ in 0..count {
            let Some((item, ack)) = self.item_writes.take_reported() else { break };
            if written {
                self.store_written(now, item);
                self.reply(ack.to, &ack.tx, Body::Response(Response::with_id(self.id)));
            } else {
                self.stats.item_write_failures += 1;
                self.send_error(ack.to, &ack.tx, mycel_krpc::ERROR_SERVER, b"server error: cannot store the item");
            }
        }
        self.stats.item_writes_pending = self.item_writes.waiting();
    }

    /// Queues an accepted put until its item is on disk; refuses with 202 when too many
    /// writes wait already (the disk is stalled: memory stays bounded).
    pub(crate) fn queue_durable_put(&mut self, from: SocketAddr, tx: &[u8], item: StoredItem) {
        if self.item_writes.len() >= self.cfg.max_items.max(1) {
            self.stats.item_write_failures += 1;
            return self.send_error(from, tx, mycel_krpc::ERROR_SERVER, b"server error: too many writes pending");
        }
        self.item_writes.push_durable(item, from, tx);
        self.stats.item_writes_pending = self.item_writes.waiting();
    }

    fn store_written(&mut self, now: Instant, item: StoredItem) {
        match item {
            StoredItem::Immutable(i) => self.items.put_immutable(now, i),
            // Checked against every newer version when accepted, so this stores it; a refusal
            // would mean a newer version is stored already, which then stays.
            StoredItem::Mutable(m) => {
                let _ = self.items.put_mutable(now, m, None);
            }
        }
    }
}
