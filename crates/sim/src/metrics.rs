//! What a run measures: one record per lookup, and a summary of the scenario (success,
//! hops, latency percentiles, cost per lookup, routing health, and the simulator's own cost).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dist::quantile;
use crate::items::{ItemRecord, ItemSummary};
use crate::params::{Attack, Protocol, Workload};
use crate::scenario::Sim;

/// One lookup of the workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LookupRecord {
    /// Position in the workload.
    pub index: usize,
    /// The node that ran it.
    pub source: u32,
    /// Virtual start time, ms.
    pub start_ms: f64,
    /// Time to the end of the lookup, ms.
    pub latency_ms: f64,
    /// Hops to the best node found.
    pub hops: u32,
    /// Datagrams attributable to it (both directions).
    pub messages: u32,
    /// Payload bytes attributable to it.
    pub bytes: u64,
    /// Requests that timed out.
    pub timeouts: u32,
    /// The true closest node was among the nodes found.
    pub success: bool,
    /// Share of the true k closest that were found.
    pub closest_k_fraction: f64,
    /// The true closest node answered the source while the lookup ran (it was reached, even
    /// if the result does not list it).
    pub reached: bool,
    /// It ended on its deadline.
    pub deadline_hit: bool,
    /// It ended before the run did.
    pub done: bool,
    /// Its source went offline first; not judged.
    pub aborted: bool,
    /// There was a truth to judge it by (some honest reachable node was online).
    pub truth_known: bool,
    /// Peers returned (get_peers lookups).
    pub peers: u32,
    /// Fake peers among them.
    pub fake_peers: u32,
}

/// Routing-table health over a sample of online honest nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Health {
    /// Nodes sampled.
    pub sampled: u64,
    /// Mean routing contacts per node.
    pub table_size: f64,
    /// Share of contacts that are online under that id.
    pub live_fraction: f64,
    /// Share of contacts that are online and reachable (not behind NAT).
    pub reachable_fraction: f64,
    /// Share of sampled nodes behind NAT that say `ro` (BEP 43), having found themselves
    /// unreachable.
    #[serde(default)]
    pub natted_read_only: f64,
    /// Share of sampled reachable nodes that say `ro` (wrongly).
    #[serde(default)]
    pub public_read_only: f64,
}

/// The summary of a run; `--json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Protocol of the honest nodes.
    pub protocol: Protocol,
    /// Nodes in all.
    pub nodes: usize,
    /// Churn was on.
    pub churn: bool,
    /// Loss rate of the model.
    pub loss: f64,
    /// Fraction of honest nodes behind NAT.
    pub nat: f64,
    /// Median RTT of the model, ms.
    pub median_rtt_ms: f64,
    /// Fraction of Sybil nodes.
    pub sybil_fraction: f64,
    /// Their attack (when there are Sybils).
    pub attack: Option<Attack>,
    /// Disjoint lookup paths.
    pub disjoint: usize,
    /// The workload (summaries written before it existed are lookups).
    #[serde(default)]
    pub workload: Workload,
    /// Sybil nodes among them.
    pub sybils: usize,
    /// Lookups judged (finished or not, source still online).
    pub lookups: usize,
    /// Lookups whose source left before they finished (not judged).
    pub lookups_aborted: usize,
    /// Judged lookups that had not finished when the run ended (counted as failures).
    pub lookups_unfinished: usize,
    /// Share of judged lookups that found the true closest node.
    pub success_rate: f64,
    /// Mean share of the true k closest found.
    pub closest_k_fraction: f64,
    /// Share of judged lookups during which the true closest node answered the source
    /// (reached, whether or not the result lists it; differs from success under an eclipse).
    pub reached_rate: f64,
    /// Median hops.
    pub hops_p50: f64,
    /// 90th percentile of hops.
    pub hops_p90: f64,
    /// Mean hops.
    pub hops_mean: f64,
    /// Latency percentiles, ms.
    pub latency_ms_p50: f64,
    /// 90th percentile.
    pub latency_ms_p90: f64,
    /// 99th percentile.
    pub latency_ms_p99: f64,
    /// Datagrams per lookup, both directions.
    pub messages_per_lookup: f64,
    /// Payload bytes per lookup, both directions.
    pub bytes_per_lookup: f64,
    /// Timed-out requests per lookup.
    pub timeouts_per_lookup: f64,
    /// Lookups that ended on their deadline.
    pub deadline_hits: usize,
    /// Share of get_peers lookups that received at least one fake peer.
    pub fake_peer_rate: f64,
    /// All datagrams sent per online node per second during the lookup window (maintenance
    /// included).
    pub datagrams_per_node_s: f64,
    /// Datagrams sent in the whole run.
    pub datagrams_total: u64,
    /// Lost to loss or partitions.
    pub datagrams_lost: u64,
    /// Stopped by a NAT.
    pub datagrams_nat_dropped: u64,
    /// Routing health when lookups start.
    pub health_start: Health,
    /// Routing health at the end.
    pub health_end: Health,
    /// Wall time of the run, s.
    pub wall_s: f64,
    /// Events processed.
    pub events: u64,
    /// Events per wall second.
    pub events_per_s: f64,
    /// Peak resident memory of the process (VmHWM), bytes.
    pub peak_rss_bytes: u64,
    /// Resident memory added per node by the time all have joined, bytes.
    pub memory_per_node_bytes: f64,
    /// Virtual time simulated, s.
    pub virtual_s: f64,
    /// The scenario's seed.
    pub seed: u64,
    /// Hash of the event trace (same seed, same hash).
    pub trace_hash: String,
    /// The items workload's figures (`--workload items`), flattened into the same object.
    #[serde(flatten)]
    pub items: Option<ItemSummary>,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The summary.
    pub summary: Summary,
    /// One record per lookup.
    pub records: Vec<LookupRecord>,
    /// One record per put and get of the items workload.
    pub items: Vec<ItemRecord>,
}

/// Resident memory of this process now and at its peak (VmRSS, VmHWM), in bytes; zeros where
/// /proc is not available.
pub fn rss_bytes() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return (0, 0) };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Memory the machine can still give, from /proc/meminfo (`MemAvailable`), in bytes.
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb =
        info.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(kb * 1024)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

pub(crate) fn report(sim: Sim, wall: Duration, health_start: Health, health_end: Health) -> Report {
    let sc = &sim.sc;
    let judged: Vec<&LookupRecord> = sim.records.iter().filter(|r| !r.aborted && (r.truth_known || !r.done)).collect();
    let done: Vec<&LookupRecord> = judged.iter().copied().filter(|r| r.done).collect();
    let n = judged.len().max(1) as f64;
    let latencies = sorted(done.iter().map(|r| r.latency_ms).collect());
    let hops = sorted(done.iter().map(|r| f64::from(r.hops)).collect());
    let started = sim.records.iter().filter(|r| !r.aborted).count().max(1) as f64;
    // Flooding cannot attribute forwarded copies to a lookup at the origin; its query and hit
    // traffic (keep-alives excluded) is divided among the lookups.
    let (messages, bytes) = if sc.protocol == Protocol::Flood {
        (sim.counters.lookup_datagrams as f64 / started, sim.counters.lookup_bytes as f64 / started)
    } else {
        (
            mean(&done.iter().map(|r| f64::from(r.messages)).collect::<Vec<_>>()),
            mean(&done.iter().map(|r| r.bytes as f64).collect::<Vec<_>>()),
        )
    };
    let get_peers: Vec<&&LookupRecord> = done.iter().filter(|r| r.peers > 0 || r.fake_peers > 0).collect();
    let window = (sc.end() - sc.lookups_start()).as_secs_f64();
    let online = sim.honest_online.len().max(1) as f64 + sc.sybils() as f64;
    let wall_s = wall.as_secs_f64();
    let (_, peak) = rss_bytes();
    let summary = Summary {
        protocol: sc.protocol,
        nodes: sc.nodes,
        churn: sc.churn.is_some(),
        loss: sc.net.loss,
        nat: sc.net.nat,
        median_rtt_ms: sc.net.median_rtt.as_secs_f64() * 1e3,
        sybil_fraction: sc.sybil,
        attack: (sc.sybils() > 0).then_some(sc.attack),
        disjoint: sc.disjoint,
        workload: sc.workload,
        sybils: sc.sybils(),
        lookups: judged.len(),
        lookups_aborted: sim.records.iter().filter(|r| r.aborted).count(),
        lookups_unfinished: judged.len() - done.len(),
        success_rate: done.iter().filter(|r| r.success).count() as f64 / n,
        // An empty float sum is -0.0; no lookups (the items workload) reads better as 0.
        closest_k_fraction: done.iter().map(|r| r.closest_k_fraction).sum::<f64>() / n + 0.0,
        reached_rate: done.iter().filter(|r| r.reached).count() as f64 / n,
        hops_p50: quantile(&hops, 0.5),
        hops_p90: quantile(&hops, 0.9),
        hops_mean: mean(&hops),
        latency_ms_p50: quantile(&latencies, 0.5),
        latency_ms_p90: quantile(&latencies, 0.9),
        latency_ms_p99: quantile(&latencies, 0.99),
        messages_per_lookup: messages,
        bytes_per_lookup: bytes,
        timeouts_per_lookup: mean(&done.iter().map(|r| f64::from(r.timeouts)).collect::<Vec<_>>()),
        deadline_hits: done.iter().filter(|r| r.deadline_hit).count(),
        fake_peer_rate: if get_peers.is_empty() {
            0.0
        } else {
            get_peers.iter().filter(|r| r.fake_peers > 0).count() as f64 / done.len().max(1) as f64
        },
        datagrams_per_node_s: sim.counters.datagrams.saturating_sub(sim.datagrams_at_start) as f64
            / online
            / window.max(1e-9),
        datagrams_total: sim.counters.datagrams,
        datagrams_lost: sim.counters.lost,
        datagrams_nat_dropped: sim.counters.nat_dropped,
        health_start,
        health_end,
        wall_s,
        events: sim.counters.events,
        events_per_s: sim.counters.events as f64 / wall_s.max(1e-9),
        peak_rss_bytes: peak,
        memory_per_node_bytes: sim.rss_joined.saturating_sub(sim.rss_start) as f64 / sc.nodes as f64,
        virtual_s: sim.now as f64 / 1e9,
        seed: sc.seed,
        trace_hash: format!("{:016x}", sim.trace),
        items: (sc.workload == Workload::Items).then(|| sim.items.summary()),
    };
    Report { summary, records: sim.records, items: sim.items.records }
}
