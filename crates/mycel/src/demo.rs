//! `mycel demo`: a small network of real nodes in one process, on loopback.
//!
//! Every node is a full `mycel-net` node with its own 127.0.x.y address and UDP socket. The
//! demo runs in phases, each a function returning a serializable report, so new phases (file
//! sharing, later) slot in beside the DHT one:
//! 1. start: node 0 first; every other node bootstraps from node 0 and up to two earlier
//!    nodes, and has joined before the next one starts (a growing network rather than a
//!    flash crowd);
//! 2. settle: wait until the routing tables stop growing;
//! 3. dht: a few nodes announce a few info-hashes, other nodes look them up with get_peers,
//!    and find_node lookups for random ids are checked against the true closest node;
//! 4. items (`demo_items.rs`): one node stores a CHK, an SSK (signed with a key made from
//!    the seed) and a KSK item, and three other nodes read each one back and check it;
//! 5. files (`demo_files.rs`): node 0 shares a generated file, up to 8 nodes fetch it by
//!    magnet through the DHT, and the report says who uploaded how much to whom.
//!
//! The run is reproducible from `--seed` up to timing (ids, info-hashes and every choice of
//! node come from the seed).

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mycel_dht::{InfoHash, LookupResult, NodeId};
use mycel_net::{Dht, DhtConfig, Handle};
use rand::seq::index::sample;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cli::DemoArgs;
use crate::output::{self, millis};

/// Bucket size of the DHT: a settled table should hold at least this many nodes.
const K: usize = 8;
/// Upper bound for each announce and lookup.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one node's join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for routing tables to stop growing.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Info-hashes announced by each announcing node.
const HASHES_PER_ANNOUNCER: usize = 2;
/// get_peers lookups per announced info-hash, each from a different node.
const LOOKUPS_PER_HASH: usize = 3;
/// find_node lookups for random ids.
const FIND_NODE_LOOKUPS: usize = 8;

/// Runs the demo and prints its report.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let seed = match args.seed {
        Some(seed) => seed,
        None => {
            let mut bytes = [0u8; 8];
            rand::rngs::OsRng
                .try_fill_bytes(&mut bytes)
                .map_err(|e| anyhow::anyhow!("OS random generator failed: {e}"))?;
            u64::from_le_bytes(bytes)
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    let progress = Progress::new();

    let (network, joined) =
        Network::start(usize::from(args.nodes), usize::from(args.alpha), &mut rng, &progress).await?;
    let join_ms = millis(started.elapsed());
    let sizes = network.settle(&progress).await;
    let join = JoinReport {
        joined,
        join_ms,
        settle_ms: millis(started.elapsed()) - join_ms,
        routing: Summary::of(sizes.iter().map(|&n| n as f64)),
    };
    let dht = dht_phase(&network, &mut rng, &progress).await;
    progress.phase("storing and reading items", 0);
    let items = crate::demo_items::run(&network.nodes, &mut rng).await;
    progress.phase("sharing a file", 0);
    let files = crate::demo_files::run(&network.nodes, &mut rng).await?;
    progress.finish();
    let traffic = network.traffic().await;
    network.shutdown().await;

    let report = Report {
        nodes: network.len(),
        seed,
        alpha: args.alpha,
        join,
        dht,
        items,
        files,
        traffic,
        duration_ms: millis(started.elapsed()),
        ok: false,
        failures: Vec::new(),
    }
    .judged();
    if args.json {
        output::json(&report)?;
    } else {
        output::line(&report.human())?;
    }
    if report.ok {
        Ok(ExitCode::SUCCESS)
    } else {
        if args.json {
            for failure in &report.failures {
                eprintln!("demo failed: {failure}");
            }
        }
        Ok(ExitCode::from(1))
    }
}

/// The whole outcome; also the `--json` output.
#[derive(Debug, Serialize)]
struct Report {
    nodes: usize,
    seed: u64,
    alpha: u8,
    join: JoinReport,
    dht: DhtReport,
    items: crate::demo_items::ItemsReport,
    files: crate::demo_files::FilesReport,
    traffic: Traffic,
    duration_ms: f64,
    /// Every node joined, every announce was stored and every lookup found its peer.
    ok: bool,
    failures: Vec<String>,
}

#[derive(Debug, Serialize)]
struct JoinReport {
    joined: usize,
    join_ms: f64,
    settle_ms: f64,
    /// Nodes per routing table.
    routing: Summary,
}

#[derive(Debug, Serialize)]
struct DhtReport {
    announcers: usize,
    info_hashes: usize,
    /// Nodes that stored each announce.
    announced_to: Summary,
    announce_ms: Summary,
    get_peers: LookupStats,
    find_node: LookupStats,
    /// get_peers lookups that missed the announced peer, one line each.
    misses: Vec<String>,
    /// Announces that no node stored.
    failed_announces: Vec<String>,
}

/// Lookups of one kind: how many succeeded, and their cost.
#[derive(Debug, Serialize, Default)]
struct LookupStats {
    lookups: usize,
    /// get_peers: found the announced peer; find_node: reached the true closest node.
    found: usize,
    hops: Summary,
    messages: Summary,
    ms: Summary,
}

#[derive(Debug, Serialize)]
struct Traffic {
    datagrams: u64,
    bytes: u64,
    timeouts: u64,
}

/// Min, median, 90th percentile and max of a sample (nearest rank).
#[derive(Debug, Serialize, Default, Clone, Copy)]
struct Summary {
    min: f64,
    median: f64,
    p90: f64,
    max: f64,
}

impl Summary {
    fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Summary::default();
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Summary { min: v[0], median: rank(0.5), p90: rank(0.9), max: v[v.len() - 1] }
    }
}

impl Report {
    /// Fills `ok` and `failures`.
    fn judged(mut self) -> Self {
        if self.join.joined < self.nodes {
            self.failures.push(format!("only {} of {} nodes joined", self.join.joined, self.nodes));
        }
        self.failures.extend(self.dht.failed_announces.iter().cloned());
        self.failures.extend(self.dht.misses.iter().cloned());
        self.failures.extend(self.items.failures.iter().cloned());
        self.failures.extend(self.files.failures.iter().cloned());
        if self.dht.get_peers.lookups == 0 {
            self.failures.push("no get_peers lookup ran".to_owned());
        }
        self.ok = self.failures.is_empty();
        self
    }

    fn human(&self) -> String {
        let d = &self.dht;
        let mut lines = vec![
            format!("mycel demo: {} nodes on loopback (127.0.1.1 and up), seed {}; medians, p90 in brackets", self.nodes, self.seed),
            format!(
                "joined:        {}/{} nodes, one after the other, in {:.0} ms; tables settled {:.0} ms later",
                self.join.joined, self.nodes, self.join.join_ms, self.join.settle_ms
            ),
            format!(
                "routing table: min {:.0} / median {:.0} / max {:.0} nodes",
                self.join.routing.min, self.join.routing.median, self.join.routing.max
            ),
            format!(
                "announce:      {} info-hashes from {} nodes | stored on {:.0} nodes (min {:.0}) | {:.1} ms (p90 {:.1})",
                d.info_hashes,
                d.announcers,
                d.announced_to.median,
                d.announced_to.min,
                d.announce_ms.median,
                d.announce_ms.p90
            ),
            lookup_line("get_peers:", &d.get_peers, "found the announced peer"),
            lookup_line("find_node:", &d.find_node, "reached the closest node"),
            self.items.human(),
            format!(
                "traffic:       {} datagrams, {:.1} KiB, {} timeouts",
                self.traffic.datagrams,
                self.traffic.bytes as f64 / 1024.0,
                self.traffic.timeouts
            ),
        ];
        lines.extend(self.files.human());
        if self.ok {
            lines.push(format!(
                "OK: every announced info-hash was found by every lookup ({:.1} s in all)",
                self.duration_ms / 1000.0
            ));
        } else {
            lines.push(format!("FAILED ({} problems; repeat with --seed {}):", self.failures.len(), self.seed));
            lines.extend(self.failures.iter().map(|f| format!("  {f}")));
        }
        lines.join("\n")
    }
}

fn lookup_line(label: &str, s: &LookupStats, found: &str) -> String {
    format!(
        "{label:<14} {}/{} {found} | hops {:.0} (p90 {:.0}) | messages {:.0} (p90 {:.0}) | {:.1} ms (p90 {:.1})",
        s.found, s.lookups, s.hops.median, s.hops.p90, s.messages.median, s.messages.p90, s.ms.median, s.ms.p90
    )
}

/// The demo's nodes, index = position in the network.
struct Network {
    nodes: Vec<Handle>,
}

impl Network {
    /// Starts `n` nodes one after the other: node 0 alone, each other node bootstrapping from
    /// node 0 and up to two random earlier nodes, and joined before the next one starts.
    /// Returns the network and how many nodes joined.
    async fn start(n: usize, alpha: usize, rng: &mut ChaCha8Rng, progress: &Progress) -> Result<(Self, usize)> {
        progress.phase("starting and joining", n);
        let mut nodes: Vec<Handle> = Vec::with_capacity(n);
        let mut joined = 1;
        for i in 0..n {
            let mut config = DhtConfig::new(demo_addr(i));
            config.id = Some(NodeId(rng.gen()));
            config.seed = Some(rng.gen());
            config.node.alpha = alpha;
            if i > 0 {
                config.bootstrap.push(nodes[0].local_addr());
                for j in sample(rng, i - 1, (i - 1).min(2)).iter() {
                    config.bootstrap.push(nodes[j + 1].local_addr());
                }
            }
            let handle = Dht::spawn(config).await.with_context(|| format!("starting demo node {i}"))?;
            if i > 0 && handle.wait_bootstrapped(JOIN_TIMEOUT).await.is_ok() {
                joined += 1;
            }
            nodes.push(handle);
            progress.inc();
        }
        Ok((Network { nodes }, joined))
    }

    fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Waits for the routing tables to stop growing (and to hold k nodes each), at most
    /// `SETTLE_TIMEOUT`. Returns the table sizes.
    async fn settle(&self, progress: &Progress) -> Vec<usize> {
        let settling = Instant::now();
        progress.phase("filling routing tables", 0);
        let target = K.min(self.len() - 1);
        let mut sizes = self.table_sizes().await;
        let mut stable_polls = 0;
        while settling.elapsed() < SETTLE_TIMEOUT && stable_polls < 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.table_sizes().await;
            let min = now.iter().copied().min().unwrap_or(0);
            stable_polls = if now == sizes && min >= target { stable_polls + 1 } else { 0 };
            progress.message(&format!("filling routing tables (min {min}, target {target})"));
            sizes = now;
        }
        sizes
    }

    async fn table_sizes(&self) -> Vec<usize> {
        let mut sizes = Vec::with_capacity(self.len());
        for node in &self.nodes {
            sizes.push(node.stats().await.map(|s| s.routing_nodes).unwrap_or(0));
        }
        sizes
    }

    /// Datagrams and bytes sent by all nodes (on loopback every one is also received), and
    /// requests that timed out.
    async fn traffic(&self) -> Traffic {
        let mut traffic = Traffic { datagrams: 0, bytes: 0, timeouts: 0 };
        for node in &self.nodes {
            let io = node.io_stats();
            traffic.datagrams += io.datagrams_sent;
            traffic.bytes += io.bytes_sent;
            traffic.timeouts += node.stats().await.map(|s| s.timeouts).unwrap_or(0);
        }
        traffic
    }

    async fn shutdown(&self) {
        let mut stops = JoinSet::new();
        for node in &self.nodes {
            let node = node.clone();
            stops.spawn(async move { node.shutdown().await });
        }
        while stops.join_next().await.is_some() {}
    }
}

/// Node `i` listens on 127.0.(1 + i / 250).(1 + i % 250), on a port the OS picks.
fn demo_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(127, 0, (1 + i / 250) as u8, (1 + i % 250) as u8);
    SocketAddr::new(IpAddr::V4(ip), 0)
}

/// One announced info-hash: who announced it and the peer address lookups must find.
struct Announced {
    info_hash: InfoHash,
    node: usize,
    peer: SocketAddr,
}

/// Announces from a few nodes, then get_peers for every info-hash from other nodes and
/// find_node for random ids.
async fn dht_phase(network: &Network, rng: &mut ChaCha8Rng, progress: &Progress) -> DhtReport {
    let n = network.len();
    let announcers = (n / 16).clamp(1, 4);
    let mut announced = Vec::new();
    for node in sample(rng, n, announcers).iter() {
        for _ in 0..HASHES_PER_ANNOUNCER {
            let port = 6881 + node as u16;
            let peer = SocketAddr::new(network.nodes[node].local_addr().ip(), port);
            announced.push(Announced { info_hash: InfoHash(rng.gen()), node, peer });
        }
    }

    progress.phase("announcing", announced.len());
    let mut tasks = JoinSet::new();
    for (i, a) in announced.iter().enumerate() {
        let (handle, info_hash, port) = (network.nodes[a.node].clone(), a.info_hash, a.peer.port());
        tasks.spawn(
            async move { (i, tokio::time::timeout(STEP_TIMEOUT, handle.announce(info_hash, Some(port))).await) },
        );
    }
    let mut announce_results = Vec::new();
    let mut failed_announces = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        progress.inc();
        match joined {
            Ok((_, Ok(Ok(result)))) if result.announced_to > 0 => announce_results.push(result),
            Ok((i, outcome)) => {
                let a = &announced[i];
                failed_announces.push(format!("node {} could not announce {}: {outcome:?}", a.node, a.info_hash));
            }
            Err(e) => failed_announces.push(format!("announce task failed: {e}")),
        }
    }

    progress.phase("looking up", announced.len() * LOOKUPS_PER_HASH + FIND_NODE_LOOKUPS);
    let (get_peers, misses) = get_peers_lookups(network, &announced, rng, progress).await;
    let find_node = find_node_lookups(network, rng, progress).await;
    DhtReport {
        announcers,
        info_hashes: announced.len(),
        announced_to: Summary::of(announce_results.iter().map(|r| r.announced_to as f64)),
        announce_ms: Summary::of(announce_results.iter().map(|r| millis(r.duration))),
        get_peers,
        find_node,
        misses,
        failed_announces,
    }
}

/// get_peers for every announced info-hash from `LOOKUPS_PER_HASH` other nodes, concurrently.
async fn get_peers_lookups(
    network: &Network,
    announced: &[Announced],
    rng: &mut ChaCha8Rng,
    progress: &Progress,
) -> (LookupStats, Vec<String>) {
    let n = network.len();
    let mut tasks = JoinSet::new();
    for (i, a) in announced.iter().enumerate() {
        let askers = sample(rng, n - 1, LOOKUPS_PER_HASH.min(n - 1));
        for asker in askers.iter().map(|j| if j >= a.node { j + 1 } else { j }) {
            let (handle, info_hash) = (network.nodes[asker].clone(), a.info_hash);
            tasks.spawn(async move {
                let lookup = handle.get_peers(info_hash).await.collect();
                (i, asker, tokio::time::timeout(STEP_TIMEOUT, lookup).await)
            });
        }
    }
    let mut results = Vec::new();
    let mut misses = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        progress.inc();
        let Ok((i, asker, outcome)) = joined else {
            misses.push("a get_peers task failed".to_owned());
            continue;
        };
        let a = &announced[i];
        match outcome {
            Ok(Ok((peers, result))) => {
                if !peers.contains(&a.peer) {
                    misses.push(format!(
                        "node {asker} did not find {} (announced by node {} as {}): {} peers, {} responses, {} timeouts",
                        a.info_hash,
                        a.node,
                        a.peer,
                        peers.len(),
                        result.responses,
                        result.timeouts
                    ));
                }
                results.push((peers.contains(&a.peer), result));
            }
            Ok(Err(e)) => misses.push(format!("node {asker} looking up {}: {e}", a.info_hash)),
            Err(_) => misses.push(format!("node {asker} looking up {}: no result in {STEP_TIMEOUT:?}", a.info_hash)),
        }
    }
    let lookups = announced.len() * LOOKUPS_PER_HASH.min(n - 1);
    (lookup_stats(lookups, &results), misses)
}

/// find_node for random ids from random nodes; success is reaching the true closest node.
async fn find_node_lookups(network: &Network, rng: &mut ChaCha8Rng, progress: &Progress) -> LookupStats {
    let n = network.len();
    let ids: Vec<NodeId> = network.nodes.iter().map(Handle::id).collect();
    let mut tasks = JoinSet::new();
    for _ in 0..FIND_NODE_LOOKUPS {
        let asker = rng.gen_range(0..n);
        let target = NodeId(rng.gen());
        let closest = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != asker)
            .map(|(_, id)| *id)
            .min_by_key(|id| id.distance(&target.0));
        let handle = network.nodes[asker].clone();
        tasks.spawn(async move {
            let outcome = tokio::time::timeout(STEP_TIMEOUT, handle.find_node(target)).await;
            (closest, outcome)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        progress.inc();
        if let Ok((closest, Ok(Ok(result)))) = joined {
            let exact = result.closest.first().map(|node| node.id) == closest;
            results.push((exact, result));
        }
    }
    lookup_stats(FIND_NODE_LOOKUPS, &results)
}

fn lookup_stats(lookups: usize, results: &[(bool, LookupResult)]) -> LookupStats {
    LookupStats {
        lookups,
        found: results.iter().filter(|(found, _)| *found).count(),
        hops: Summary::of(results.iter().map(|(_, r)| f64::from(r.hops))),
        messages: Summary::of(results.iter().map(|(_, r)| r.messages_sent as f64)),
        ms: Summary::of(results.iter().map(|(_, r)| millis(r.duration))),
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
        Progress { bar }
    }

    /// Starts a phase with `len` steps (0: a spinner).
    fn phase(&self, name: &str, len: usize) {
        let template = if len == 0 { "{spinner} {msg}" } else { "{spinner} {msg:24} [{bar:30}] {pos}/{len}" };
        // Message and length first, so the new style never draws with the old phase's values.
        self.bar.set_message(name.to_owned());
        self.bar.set_length(len as u64);
        self.bar.set_position(0);
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.enable_steady_tick(Duration::from_millis(100));
    }

    fn inc(&self) {
        self.bar.inc(1);
    }

    fn message(&self, text: &str) {
        self.bar.set_message(text.to_owned());
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_uses_nearest_rank() {
        let s = Summary::of((1..=10).map(f64::from));
        assert_eq!((s.min, s.median, s.p90, s.max), (1.0, 5.0, 9.0, 10.0));
        let one = Summary::of([3.0]);
        assert_eq!((one.min, one.median, one.p90, one.max), (3.0, 3.0, 3.0, 3.0));
    }

    #[test]
    fn demo_addresses_are_distinct_loopback_addresses() {
        let addrs: std::collections::BTreeSet<_> = (0..5000).map(demo_addr).collect();
        assert_eq!(addrs.len(), 5000);
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
