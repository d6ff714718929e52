//! The items workload (`--workload items`): BEP 44 puts and gets through mycel's real node.
//!
//! After the network has settled, `--items M` items are put from random honest nodes, spread
//! over the window: even-numbered items are immutable, odd-numbered ones mutable, signed with
//! keys drawn from the run's generator. A mutable item is put twice from the same node: seq 1,
//! and when that put reports, seq 2 with `cas` 1, so a get must pick the newer version over
//! copies of the older one. Once every put has had time to end, each item is fetched by
//! another random honest node.
//!
//! A put is judged by the node's own report (`ItemPutDone`) and by what the adapter sees on
//! the wire (see [`PutDone`]): the lookup phase (start to the first `put` sent), the time to a
//! quorum of acknowledgements, and how many of the true k closest reachable nodes stored it.
//! A get succeeds when it returns exactly the item last put: the value that hashes to the
//! target, or the mutable version with the highest seq, signature checked by the node.

use std::collections::BTreeMap;

use mycel_dht::{ImmutableItem, ItemKind, Keypair, MutableItem, StoredItem};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dist::quantile;
use crate::engine::What;
use crate::node::{GetDone, ItemDone, PutDone};
use crate::scenario::Sim;

/// Put or get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemOp {
    /// A put.
    #[default]
    Put,
    /// A get.
    Get,
}

/// One put or get of the items workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ItemRecord {
    /// Position among the operations.
    pub index: usize,
    /// The item.
    pub item: u32,
    /// Put or get.
    pub op: ItemOp,
    /// A mutable item.
    pub mutable: bool,
    /// The seq put (puts of mutable items), or expected (gets of mutable items); 0 otherwise.
    pub seq: i64,
    /// The node that ran it.
    pub source: u32,
    /// Virtual start time, ms.
    pub start_ms: f64,
    /// Time to the node's report (`ItemPutDone` / `ItemGot`), ms.
    pub latency_ms: f64,
    /// Puts: time to the first `put` sent (the lookup phase), ms.
    pub lookup_ms: Option<f64>,
    /// Puts: time to the acknowledgement that made a quorum (half the puts sent), ms.
    pub quorum_ms: Option<f64>,
    /// Puts: `put` requests sent.
    pub sent: usize,
    /// Puts: nodes that acknowledged before the put reported. Gets: nodes that returned the
    /// item found.
    pub stored: usize,
    /// Puts: of those, nodes among the true k closest reachable nodes.
    pub stored_closest: usize,
    /// Size of the truth the put was judged by (k, fewer in a tiny network).
    pub truth: usize,
    /// Datagrams of the operation, both directions.
    pub messages: u32,
    /// Gets: hops to the closest node that answered.
    pub hops: u32,
    /// Requests of the lookup (phase) that timed out.
    pub timeouts: u32,
    /// Ended before the run did.
    pub done: bool,
    /// Its source went offline first (or no source was online); not judged.
    pub aborted: bool,
    /// Puts: acknowledged by a quorum (half of k). Gets: returned the item last put.
    pub success: bool,
    /// Its lookup ended on its deadline.
    pub deadline_hit: bool,
}

/// What the items workload measured; flattened into the run's [`crate::Summary`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ItemSummary {
    /// Items (half immutable, half mutable).
    pub items: usize,
    /// Puts judged (a mutable item is put twice).
    pub puts: usize,
    /// Puts whose source left first (not judged).
    pub puts_aborted: usize,
    /// Judged puts that had not reported when the run ended (failures).
    pub puts_unfinished: usize,
    /// Share of judged puts acknowledged by at least half of k nodes.
    pub put_success_rate: f64,
    /// Time to the node's report (`ItemPutDone`), ms: median.
    pub put_latency_ms_p50: f64,
    /// 90th percentile.
    pub put_latency_ms_p90: f64,
    /// 99th percentile.
    pub put_latency_ms_p99: f64,
    /// Time to a quorum of acknowledgements (half the puts sent), ms, over the puts that
    /// reached one: median.
    pub put_quorum_ms_p50: f64,
    /// 90th percentile.
    pub put_quorum_ms_p90: f64,
    /// 99th percentile.
    pub put_quorum_ms_p99: f64,
    /// The lookup phase (start to the first `put` sent), ms: median.
    pub put_lookup_ms_p50: f64,
    /// 90th percentile.
    pub put_lookup_ms_p90: f64,
    /// 99th percentile.
    pub put_lookup_ms_p99: f64,
    /// The put round (first `put` sent to the quorum), ms: median.
    pub put_round_ms_p50: f64,
    /// 90th percentile.
    pub put_round_ms_p90: f64,
    /// 99th percentile.
    pub put_round_ms_p99: f64,
    /// Mean `put` requests sent per put.
    pub put_sent_mean: f64,
    /// Mean acknowledgements per put (received before it reported).
    pub put_stored_mean: f64,
    /// Mean share of the true k closest reachable nodes among those acknowledging.
    pub put_closest_k_fraction: f64,
    /// Datagrams per put, both directions.
    pub messages_per_put: f64,
    /// Timed-out requests per put (lookup phase).
    pub timeouts_per_put: f64,
    /// Puts whose lookup ended on its deadline.
    pub put_deadline_hits: usize,
    /// Gets judged.
    pub gets: usize,
    /// Gets whose source left first, or whose item was never put (not judged).
    pub gets_aborted: usize,
    /// Judged gets that had not reported when the run ended (failures).
    pub gets_unfinished: usize,
    /// Share of judged gets that returned exactly the item last put.
    pub get_success_rate: f64,
    /// Time to the node's report (`ItemGot`), ms: median.
    pub get_latency_ms_p50: f64,
    /// 90th percentile.
    pub get_latency_ms_p90: f64,
    /// 99th percentile.
    pub get_latency_ms_p99: f64,
    /// Datagrams per get, both directions.
    pub messages_per_get: f64,
    /// Timed-out requests per get.
    pub timeouts_per_get: f64,
    /// Gets whose lookup ended on its deadline.
    pub get_deadline_hits: usize,
}

/// One item: the versions to put in order (one for an immutable item, seq 1 and 2 for a
/// mutable one) and how far the workload got.
struct ItemState {
    versions: Vec<StoredItem>,
    kind: ItemKind,
    /// Versions whose put has started.
    started: usize,
    /// The node that put it last.
    putter: Option<u32>,
}

struct Running {
    record: usize,
    item: u32,
    /// Ids of the true k closest reachable nodes when the put started (empty for gets).
    truth: Vec<[u8; 20]>,
    /// The item a get must return.
    expected: Option<StoredItem>,
}

/// The items workload's state: items, operations in flight, records.
#[derive(Default)]
pub(crate) struct ItemWorkload {
    items: Vec<ItemState>,
    running: BTreeMap<(u32, u64), Running>,
    pub(crate) records: Vec<ItemRecord>,
}

/// `data` as a bencoded byte string.
fn bencoded(data: &[u8]) -> Vec<u8> {
    let mut v = format!("{}:", data.len()).into_bytes();
    v.extend_from_slice(data);
    v
}

fn random_value(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = rng.gen_range(16..=256);
    bencoded(&(0..len).map(|_| rng.gen()).collect::<Vec<u8>>())
}

impl ItemWorkload {
    /// `n` items drawn from `rng`.
    pub(crate) fn new(n: usize, rng: &mut ChaCha8Rng) -> Self {
        let items = (0..n)
            .map(|j| {
                if j % 2 == 0 {
                    let item = ImmutableItem::new(random_value(rng)).expect("a bencoded string of at most 260 bytes");
                    ItemState {
                        versions: vec![StoredItem::Immutable(item)],
                        kind: ItemKind::Immutable,
                        started: 0,
                        putter: None,
                    }
                } else {
                    let key = Keypair::from_seed(rng.gen());
                    // Every other mutable item has a salt (BEP 44 allows several items per key).
                    let salt = if j % 4 == 1 { Vec::new() } else { format!("sim-{j}").into_bytes() };
                    let versions = (1..=2)
                        .map(|seq| {
                            let m = MutableItem::sign(&key, salt.clone(), seq, random_value(rng))
                                .expect("a short value and salt");
                            StoredItem::Mutable(m)
                        })
                        .collect();
                    ItemState { versions, kind: ItemKind::Mutable { salt }, started: 0, putter: None }
                }
            })
            .collect();
        ItemWorkload { items, running: BTreeMap::new(), records: Vec::new() }
    }

    /// Marks the operations node `i` was running as aborted (it went offline).
    pub(crate) fn abort_from(&mut self, i: u32) {
        let gone: Vec<(u32, u64)> = self.running.range((i, 0)..=(i, u64::MAX)).map(|(k, _)| *k).collect();
        for key in gone {
            if let Some(r) = self.running.remove(&key) {
                self.records[r.record].aborted = true;
            }
        }
    }

    fn record(&mut self, item: u32, op: ItemOp, start_ms: f64) -> usize {
        let index = self.records.len();
        self.records.push(ItemRecord { index, item, op, start_ms, ..ItemRecord::default() });
        index
    }

    /// The summary of the records.
    pub(crate) fn summary(&self) -> ItemSummary {
        let judged = |op| self.records.iter().filter(move |r| r.op == op && !r.aborted);
        let puts: Vec<&ItemRecord> = judged(ItemOp::Put).collect();
        let gets: Vec<&ItemRecord> = judged(ItemOp::Get).collect();
        let done_puts: Vec<&ItemRecord> = puts.iter().copied().filter(|r| r.done).collect();
        let done_gets: Vec<&ItemRecord> = gets.iter().copied().filter(|r| r.done).collect();
        let q = |v: Vec<f64>| -> [f64; 3] {
            let mut v = v;
            v.sort_by(f64::total_cmp);
            [quantile(&v, 0.5), quantile(&v, 0.9), quantile(&v, 0.99)]
        };
        let mean = |v: &[&ItemRecord], f: &dyn Fn(&ItemRecord) -> f64| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().map(|r| f(r)).sum::<f64>() / v.len() as f64
            }
        };
        let rate = |n: usize, of: usize| n as f64 / of.max(1) as f64;
        let put_lat = q(done_puts.iter().map(|r| r.latency_ms).collect());
        let quorum = q(done_puts.iter().filter_map(|r| r.quorum_ms).collect());
        let lookup = q(done_puts.iter().filter_map(|r| r.lookup_ms).collect());
        let round = q(done_puts.iter().filter_map(|r| Some(r.quorum_ms? - r.lookup_ms?)).collect());
        let get_lat = q(done_gets.iter().map(|r| r.latency_ms).collect());
        ItemSummary {
            items: self.items.len(),
            puts: puts.len(),
            puts_aborted: self.records.iter().filter(|r| r.op == ItemOp::Put && r.aborted).count(),
            puts_unfinished: puts.len() - done_puts.len(),
            put_success_rate: rate(done_puts.iter().filter(|r| r.success).count(), puts.len()),
            put_latency_ms_p50: put_lat[0],
            put_latency_ms_p90: put_lat[1],
            put_latency_ms_p99: put_lat[2],
            put_quorum_ms_p50: quorum[0],
            put_quorum_ms_p90: quorum[1],
            put_quorum_ms_p99: quorum[2],
            put_lookup_ms_p50: lookup[0],
            put_lookup_ms_p90: lookup[1],
            put_lookup_ms_p99: lookup[2],
            put_round_ms_p50: round[0],
            put_round_ms_p90: round[1],
            put_round_ms_p99: round[2],
            put_sent_mean: mean(&done_puts, &|r| r.sent as f64),
            put_stored_mean: mean(&done_puts, &|r| r.stored as f64),
            put_closest_k_fraction: mean(&done_puts, &|r| rate(r.stored_closest, r.truth)),
            messages_per_put: mean(&done_puts, &|r| f64::from(r.messages)),
            timeouts_per_put: mean(&done_puts, &|r| f64::from(r.timeouts)),
            put_deadline_hits: done_puts.iter().filter(|r| r.deadline_hit).count(),
            gets: gets.len(),
            gets_aborted: self.records.iter().filter(|r| r.op == ItemOp::Get && r.aborted).count(),
            gets_unfinished: gets.len() - done_gets.len(),
            get_success_rate: rate(done_gets.iter().filter(|r| r.success).count(), gets.len()),
            get_latency_ms_p50: get_lat[0],
            get_latency_ms_p90: get_lat[1],
            get_latency_ms_p99: get_lat[2],
            messages_per_get: mean(&done_gets, &|r| f64::from(r.messages)),
            timeouts_per_get: mean(&done_gets, &|r| f64::from(r.timeouts)),
            get_deadline_hits: done_gets.iter().filter(|r| r.deadline_hit).count(),
        }
    }
}

impl Sim {
    /// Schedules the items workload: puts over the window, then gets over as long a window.
    pub(crate) fn schedule_items(&mut self) {
        let window = self.sc.window.as_nanos() as u64;
        let puts = self.sc.lookups_start().as_nanos() as u64;
        let gets = self.sc.gets_start().as_nanos() as u64;
        for j in 0..self.items.items.len() as u32 {
            let at = puts + self.rng.gen_range(0..window);
            self.push(at, What::ItemPut(j));
        }
        for j in 0..self.items.items.len() as u32 {
            let at = gets + self.rng.gen_range(0..window);
            self.push(at, What::ItemGet(j));
        }
    }

    /// Starts the first put of item `j` from a random settled honest node.
    pub(crate) fn on_item_put(&mut self, j: u32) {
        let src = self.pick_source();
        self.start_put(j, src);
    }

    /// Puts the next version of item `j` from `src` (`None`: nobody online; the put is
    /// recorded as aborted).
    fn start_put(&mut self, j: u32, src: Option<u32>) {
        let start_ms = self.now as f64 / 1e6;
        let record = self.items.record(j, ItemOp::Put, start_ms);
        let state = &mut self.items.items[j as usize];
        let Some(item) = state.versions.get(state.started).cloned() else { return };
        state.started += 1;
        let cas = match &item {
            StoredItem::Mutable(m) if m.seq() > 1 => Some(m.seq() - 1),
            _ => None,
        };
        let r = &mut self.items.records[record];
        if let StoredItem::Mutable(m) = &item {
            (r.mutable, r.seq) = (true, m.seq());
        }
        let Some(src) = src else {
            r.aborted = true;
            return;
        };
        r.source = src;
        self.items.items[j as usize].putter = Some(src);
        let target = item.target();
        let truth = self.oracle.xor_closest(&target, self.sc.k, Some(src)).into_iter().map(|t| t.0).collect();
        let mut tag = None;
        self.interact(src, |n, now| tag = n.start_put(now, item, cas));
        match tag {
            Some(tag) => {
                self.items.running.insert((src, tag), Running { record, item: j, truth, expected: None });
            }
            None => self.items.records[record].aborted = true,
        }
    }

    /// Gets item `j` back from a random settled honest node other than its putter.
    pub(crate) fn on_item_get(&mut self, j: u32) {
        let start_ms = self.now as f64 / 1e6;
        let record = self.items.record(j, ItemOp::Get, start_ms);
        let state = &self.items.items[j as usize];
        let (putter, kind) = (state.putter, state.kind.clone());
        let expected = state.started.checked_sub(1).and_then(|v| state.versions.get(v)).cloned();
        let mut src = None;
        for _ in 0..8 {
            src = self.pick_source();
            if src != putter {
                break;
            }
        }
        let r = &mut self.items.records[record];
        if let Some(StoredItem::Mutable(m)) = &expected {
            (r.mutable, r.seq) = (true, m.seq());
        }
        let (Some(src), Some(expected)) = (src, expected) else {
            r.aborted = true;
            return;
        };
        r.source = src;
        let target = expected.target();
        let mut tag = None;
        self.interact(src, |n, now| tag = n.start_get(now, target, kind));
        match tag {
            Some(tag) => {
                let run = Running { record, item: j, truth: Vec::new(), expected: Some(expected) };
                self.items.running.insert((src, tag), run);
            }
            None => self.items.records[record].aborted = true,
        }
    }

    /// Records an item operation node `i` finished; a mutable item's seq-1 put is followed
    /// by its seq-2 put from the same node.
    pub(crate) fn record_item_done(&mut self, i: u32, d: ItemDone) {
        let Some(run) = self.items.running.remove(&(i, d.tag())) else { return };
        match d {
            ItemDone::Put(p) => {
                self.judge_put(&run, &p);
                let state = &self.items.items[run.item as usize];
                if state.started < state.versions.len() {
                    self.start_put(run.item, Some(i));
                }
            }
            ItemDone::Get(g) => self.judge_get(&run, &g),
        }
    }

    fn judge_put(&mut self, run: &Running, p: &PutDone) {
        let quorum = self.sc.k.div_ceil(2).max(1);
        let r = &mut self.items.records[run.record];
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        r.done = true;
        r.latency_ms = ms(p.elapsed);
        r.lookup_ms = p.lookup.map(ms);
        r.quorum_ms = p.quorum.map(ms);
        r.sent = p.sent;
        r.stored = p.stored.len();
        r.stored_closest = p.stored.iter().filter(|id| run.truth.contains(id)).count();
        r.truth = run.truth.len();
        r.messages = p.messages;
        r.timeouts = p.timeouts;
        r.deadline_hit = p.deadline_hit;
        r.success = p.stored.len() >= quorum.min(run.truth.len().max(1));
    }

    fn judge_get(&mut self, run: &Running, g: &GetDone) {
        let r = &mut self.items.records[run.record];
        r.done = true;
        r.latency_ms = g.elapsed.as_secs_f64() * 1e3;
        r.stored = g.agreeing;
        r.messages = g.messages;
        r.hops = g.hops;
        r.timeouts = g.timeouts;
        r.deadline_hit = g.deadline_hit;
        r.success = g.item.is_some() && g.item == run.expected;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn items_are_valid_and_reproducible() {
        let a = ItemWorkload::new(8, &mut ChaCha8Rng::seed_from_u64(3));
        let b = ItemWorkload::new(8, &mut ChaCha8Rng::seed_from_u64(3));
        for (x, y) in a.items.iter().zip(&b.items) {
            assert_eq!(x.versions, y.versions);
        }
        assert_eq!(a.items.iter().filter(|s| s.versions.len() == 2).count(), 4, "half are mutable");
        for s in a.items.iter().filter(|s| s.versions.len() == 2) {
            assert_eq!(s.versions[0].target(), s.versions[1].target(), "both versions under one target");
        }
    }

    #[test]
    fn summary_of_nothing_is_zero() {
        let s = ItemWorkload::default().summary();
        assert_eq!((s.puts, s.gets, s.put_success_rate), (0, 0, 0.0));
    }
}
