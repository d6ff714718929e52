//! The command line: `mycel sim --nodes N --lookups M --seed S ...`.
//!
//! [`SimArgs`] is flattened into the `mycel sim` subcommand; [`run`] checks the parameters
//! (naming the flag at fault), refuses a run the machine's memory cannot hold, runs it with a
//! progress bar on a terminal, and prints or writes the results.

// The command line is the simulator's driver: it writes result files (the simulation itself
// never touches a file, a socket or the clock).
#![allow(clippy::disallowed_methods)]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::dist::Weibull;
use crate::metrics::available_bytes;
use crate::net::{NetParams, Partition};
use crate::params::{Attack, Churn, FloodParams, Protocol, Scenario, Workload};
use crate::{plot, sweep, Report, Sim, SimError};

/// Arguments of `mycel sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Nodes in all (Sybils included).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1000)]
    pub nodes: usize,
    /// Lookups to run and judge (`--workload lookups`).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1000)]
    pub lookups: usize,
    /// What the nodes do once the network has settled: lookups for random keys, or BEP 44
    /// puts and gets (Kademlia only).
    #[arg(long, value_enum, default_value_t = Workload::Lookups)]
    pub workload: Workload,
    /// Items to put and get back (`--workload items`; half immutable, half mutable).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1000)]
    pub items: usize,
    /// Seed: the same seed gives the same run, event for event.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1)]
    pub seed: u64,
    /// Protocol of the honest nodes.
    #[arg(long, value_enum, default_value_t = Protocol::Kademlia)]
    pub protocol: Protocol,
    /// Enable churn (Weibull sessions and downtimes).
    #[arg(long)]
    pub churn: bool,
    /// Median session length, seconds.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1800.0)]
    pub session_median: f64,
    /// Weibull shape of sessions (below 1: heavy tail).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.5)]
    pub session_shape: f64,
    /// Median downtime, seconds.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1800.0)]
    pub downtime_median: f64,
    /// Weibull shape of downtimes.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.5)]
    pub downtime_shape: f64,
    /// Fraction of datagrams lost.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.01)]
    pub loss: f64,
    /// Mean loss burst length in datagrams (1: independent losses).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1.0)]
    pub loss_burst: f64,
    /// Fraction of honest nodes behind NAT (unreachable unless they sent first).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.3)]
    pub nat: f64,
    /// Median RTT between two random nodes, milliseconds.
    #[arg(long, allow_negative_numbers = true, default_value_t = 100)]
    pub median_rtt: u64,
    /// Asymmetric partition FROM>TO@START-END (regions, seconds); repeatable.
    #[arg(long)]
    pub partition: Vec<String>,
    /// Fraction of nodes that are Sybils (Kademlia only).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub sybil: f64,
    /// What the Sybils do.
    #[arg(long, value_enum, default_value_t = Attack::Eclipse)]
    pub attack: Attack,
    /// Disjoint lookup paths (S/Kademlia d).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1)]
    pub disjoint: usize,
    /// Kademlia bucket size k (also the k of "closest k").
    #[arg(long, allow_negative_numbers = true, default_value_t = 8)]
    pub k: usize,
    /// Kademlia parallelism α.
    #[arg(long, allow_negative_numbers = true, default_value_t = mycel_dht::Config::default().alpha)]
    pub alpha: usize,
    /// Kademlia: override the node's hard request timeout (Config::max_request_timeout), ms.
    #[arg(long, allow_negative_numbers = true)]
    pub request_timeout_ms: Option<u64>,
    /// Kademlia: nodes behind NAT run read-only (BEP 43), so they stay out of routing tables.
    #[arg(long)]
    pub nat_read_only: bool,
    /// Seconds over which nodes join (default: nodes / 200, within 10..600).
    #[arg(long, allow_negative_numbers = true)]
    pub join_secs: Option<u64>,
    /// Seconds between the last join and the first lookup.
    #[arg(long, allow_negative_numbers = true, default_value_t = 60)]
    pub settle_secs: u64,
    /// Lookups (or item puts, then gets) start uniformly over this many seconds.
    #[arg(long, allow_negative_numbers = true, default_value_t = 60)]
    pub lookup_window: u64,
    /// Flooding: neighbours per node.
    #[arg(long, allow_negative_numbers = true, default_value_t = 8)]
    pub flood_degree: usize,
    /// Flooding: query TTL.
    #[arg(long, allow_negative_numbers = true, default_value_t = 4)]
    pub flood_ttl: u8,
    /// Baselines: seconds between membership views (stabilization, gossip, host cache).
    #[arg(long, allow_negative_numbers = true, default_value_t = 30)]
    pub membership_period: u64,
    /// Print one JSON summary object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write lookups.csv, summary.json and SVG plots into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Instead of running: read JSON summaries (one per line, from --json runs) and write
    /// the results table and sweep plots into --out.
    #[arg(long)]
    pub summarize: Option<PathBuf>,
    /// Run even when the memory estimate exceeds what is available.
    #[arg(long)]
    pub force: bool,
}

impl SimArgs {
    /// The scenario these arguments describe, checked.
    pub fn scenario(&self) -> Result<Scenario, SimError> {
        let mut sc = Scenario::new(self.nodes, self.lookups, self.seed, self.protocol);
        sc.workload = self.workload;
        sc.items = self.items;
        let secs = |flag: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(SimError::invalid(flag, format!("must be a positive number of seconds, got {v}")))
            }
        };
        let shape = |flag: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(SimError::invalid(flag, format!("must be positive, got {v}")))
            }
        };
        if self.churn {
            let session = Weibull::from_median(
                secs("session-median", self.session_median)?,
                shape("session-shape", self.session_shape)?,
            )?;
            let downtime = Weibull::from_median(
                secs("downtime-median", self.downtime_median)?,
                shape("downtime-shape", self.downtime_shape)?,
            )?;
            sc.churn = Some(Churn { session, downtime });
        }
        let partitions = self.partition.iter().map(|p| Partition::parse(p)).collect::<Result<Vec<_>, _>>()?;
        sc.net = NetParams {
            median_rtt: Duration::from_millis(self.median_rtt),
            loss: self.loss,
            loss_burst: self.loss_burst,
            nat: self.nat,
            partitions,
            ..NetParams::default()
        };
        sc.sybil = self.sybil;
        sc.attack = self.attack;
        sc.disjoint = self.disjoint;
        sc.k = self.k;
        sc.alpha = self.alpha;
        sc.nat_read_only = self.nat_read_only;
        if let Some(ms) = self.request_timeout_ms {
            if ms == 0 {
                return Err(SimError::invalid("request-timeout-ms", "must be positive"));
            }
            sc.kad_max_timeout = Some(Duration::from_millis(ms));
        }
        if let Some(j) = self.join_secs {
            sc.join = Duration::from_secs(j);
        }
        sc.settle = Duration::from_secs(self.settle_secs);
        sc.window = Duration::from_secs(self.lookup_window);
        sc.flood = FloodParams { degree: self.flood_degree, ttl: self.flood_ttl, wait: Duration::from_secs(3) };
        sc.membership_period = Duration::from_secs(self.membership_period);
        sc.validate()?;
        if self.workload == Workload::Lookups && self.lookups == 0 {
            return Err(SimError::invalid("lookups", "need at least one lookup"));
        }
        Ok(sc)
    }
}

/// Estimated resident bytes per node, rounded up from peak RSS at 10k–100k nodes (Kademlia:
/// about 60 KB per node at 100k). Disjoint paths multiply the queries every node receives
/// during the join, and with them the node's per-querier state (about 450 KB per node with
/// d = 8 at 2,000 nodes).
pub fn bytes_per_node(p: Protocol, disjoint: usize) -> u64 {
    match p {
        Protocol::Kademlia => 64 * 1024 * (4 + 3 * disjoint.saturating_sub(1) as u64) / 4,
        Protocol::Flood => 6 * 1024,
        Protocol::Chord => 3 * 1024,
        Protocol::Zerohop => 2 * 1024,
    }
}

/// Refuses a scenario whose estimated memory exceeds 90 % of what the machine has available.
pub fn check_memory(sc: &Scenario) -> Result<(), SimError> {
    let Some(available) = available_bytes() else { return Ok(()) };
    let per_node = bytes_per_node(sc.protocol, sc.disjoint);
    let needed = sc.nodes as u64 * per_node + 64 * 1024 * 1024;
    if needed > available / 10 * 9 {
        let protocol = match sc.protocol {
            Protocol::Kademlia => "kademlia",
            Protocol::Flood => "flood",
            Protocol::Chord => "chord",
            Protocol::Zerohop => "zerohop",
        };
        return Err(SimError::TooBig {
            nodes: sc.nodes,
            protocol,
            per_node,
            needed_mib: needed >> 20,
            available_mib: available >> 20,
        });
    }
    Ok(())
}

/// Runs `mycel sim` with these arguments.
pub fn run(args: &SimArgs) -> anyhow::Result<()> {
    if let Some(input) = &args.summarize {
        let out = args.out.clone().unwrap_or_else(|| PathBuf::from("."));
        return sweep::summarize(input, &out).with_context(|| format!("summarizing {}", input.display()));
    }
    let sc = args.scenario()?;
    if !args.force {
        check_memory(&sc)?;
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(1000);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} simulating [{bar:40}] {percent}% of virtual time, {elapsed} elapsed, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let sim = Sim::new(sc)?;
    let report = sim.run(&mut |f| {
        if let Some(b) = &bar {
            b.set_position((f * 1000.0) as u64);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(dir) = &args.out {
        write_outputs(dir, &report)?;
    }
    let s = &report.summary;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string(s)?)?;
    } else if let Some(it) = &s.items {
        writeln!(
            stdout,
            "{:?} nodes={} items={} | puts={} success={:.4} latency_ms p50={:.0} p90={:.0} p99={:.0} quorum_ms p50={:.0} p90={:.0} p99={:.0} lookup_ms p50={:.0} p90={:.0} stored={:.2} closest_k={:.3} msgs/put={:.1} | gets={} success={:.4} latency_ms p50={:.0} p90={:.0} p99={:.0} msgs/get={:.1} | wall {:.1} s, peak RSS {} MiB",
            s.protocol,
            s.nodes,
            it.items,
            it.puts,
            it.put_success_rate,
            it.put_latency_ms_p50,
            it.put_latency_ms_p90,
            it.put_latency_ms_p99,
            it.put_quorum_ms_p50,
            it.put_quorum_ms_p90,
            it.put_quorum_ms_p99,
            it.put_lookup_ms_p50,
            it.put_lookup_ms_p90,
            it.put_stored_mean,
            it.put_closest_k_fraction,
            it.messages_per_put,
            it.gets,
            it.get_success_rate,
            it.get_latency_ms_p50,
            it.get_latency_ms_p90,
            it.get_latency_ms_p99,
            it.messages_per_get,
            s.wall_s,
            s.peak_rss_bytes >> 20
        )?;
    } else {
        writeln!(
            stdout,
            "{:?} nodes={} lookups={} success={:.4} closest_k={:.3} hops_p50={} latency_ms p50={:.0} p90={:.0} p99={:.0} msgs/lookup={:.1} bytes/lookup={:.0} | wall {:.1} s, {:.0} events/s, peak RSS {} MiB, {:.0} B/node",
            s.protocol,
            s.nodes,
            s.lookups,
            s.success_rate,
            s.closest_k_fraction,
            s.hops_p50,
            s.latency_ms_p50,
            s.latency_ms_p90,
            s.latency_ms_p99,
            s.messages_per_lookup,
            s.bytes_per_lookup,
            s.wall_s,
            s.events_per_s,
            s.peak_rss_bytes >> 20,
            s.memory_per_node_bytes
        )?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), SimError> {
    std::fs::write(path, text).map_err(|source| SimError::Io { path: path.display().to_string(), source })
}

/// Writes lookups.csv, summary.json, latency_cdf.svg and hops.svg into `dir`, and items.csv
/// for the items workload.
pub fn write_outputs(dir: &Path, report: &Report) -> Result<(), SimError> {
    std::fs::create_dir_all(dir).map_err(|source| SimError::Io { path: dir.display().to_string(), source })?;
    if report.summary.items.is_some() {
        write(&dir.join("items.csv"), &items_csv(&report.items))?;
    }
    let mut csv = String::from("index,source,start_ms,latency_ms,hops,messages,bytes,timeouts,success,closest_k_fraction,reached,deadline_hit,done,aborted,peers,fake_peers\n");
    for r in &report.records {
        csv.push_str(&format!(
            "{},{},{:.3},{:.3},{},{},{},{},{},{:.3},{},{},{},{},{},{}\n",
            r.index,
            r.source,
            r.start_ms,
            r.latency_ms,
            r.hops,
            r.messages,
            r.bytes,
            r.timeouts,
            r.success,
            r.closest_k_fraction,
            r.reached,
            r.deadline_hit,
            r.done,
            r.aborted,
            r.peers,
            r.fake_peers
        ));
    }
    write(&dir.join("lookups.csv"), &csv)?;
    let json = serde_json::to_string_pretty(&report.summary).unwrap_or_default();
    write(&dir.join("summary.json"), &json)?;
    let name = format!("{:?}, {} nodes", report.summary.protocol, report.summary.nodes);
    write(&dir.join("latency_cdf.svg"), &plot::latency_cdf(&report.records, &format!("Lookup latency CDF ({name})")))?;
    write(&dir.join("hops.svg"), &plot::hops_histogram(&report.records, &format!("Hops per lookup ({name})")))?;
    Ok(())
}

/// One line per put and get of the items workload.
fn items_csv(records: &[crate::ItemRecord]) -> String {
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    let mut csv = String::from("index,item,op,mutable,seq,source,start_ms,latency_ms,lookup_ms,quorum_ms,sent,stored,stored_closest,truth,messages,hops,timeouts,done,aborted,success,deadline_hit\n");
    for r in records {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{:.3},{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.index,
            r.item,
            if r.op == crate::items::ItemOp::Put { "put" } else { "get" },
            r.mutable,
            r.seq,
            r.source,
            r.start_ms,
            r.latency_ms,
            opt(r.lookup_ms),
            opt(r.quorum_ms),
            r.sent,
            r.stored,
            r.stored_closest,
            r.truth,
            r.messages,
            r.hops,
            r.timeouts,
            r.done,
            r.aborted,
            r.success,
            r.deadline_hit
        ));
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimArgs,
    }

    fn parse(line: &str) -> Result<SimArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sim").chain(line.split_whitespace())).map(|c| c.args)
    }

    fn flag_error(line: &str) -> String {
        let args = parse(line).expect("clap accepts it");
        args.scenario().expect_err("must be refused").to_string()
    }

    #[test]
    fn bad_parameters_name_their_flag() {
        assert!(flag_error("--sybil 1.5").contains("--sybil"));
        assert!(flag_error("--nodes 1").contains("--nodes"));
        assert!(flag_error("--loss 1.0").contains("--loss"));
        assert!(flag_error("--nat -0.1").contains("--nat"));
        assert!(flag_error("--lookups 0").contains("--lookups"));
        assert!(flag_error("--churn --session-median 0").contains("--session-median"));
        assert!(flag_error("--partition europe>mars@1-2").contains("--partition"));
        assert!(flag_error("--protocol chord --sybil 0.1").contains("--sybil"));
        assert!(flag_error("--disjoint 0").contains("--disjoint"));
        assert!(flag_error("--workload items --items 0").contains("--items"));
        assert!(flag_error("--workload items --protocol chord").contains("--workload"));
        let e = parse("--workload files").map(|_| ()).expect_err("unknown workload").to_string();
        assert!(e.contains("--workload") && e.contains("items"), "{e}");
        let e = parse("--protocol gossip").map(|_| ()).expect_err("unknown protocol").to_string();
        assert!(e.contains("--protocol") && e.contains("kademlia"), "{e}");
        let e = parse("--nodes -5").map(|_| ()).expect_err("negative size").to_string();
        assert!(e.contains("--nodes"), "{e}");
    }

    #[test]
    fn defaults_are_the_issue_model() {
        let sc = parse("").expect("defaults").scenario().expect("valid");
        assert_eq!(sc.net.median_rtt, Duration::from_millis(100));
        assert_eq!((sc.net.loss, sc.net.nat), (0.01, 0.3));
        assert!(sc.churn.is_none());
    }

    #[test]
    fn oversized_runs_are_refused_with_the_estimate() {
        let sc = parse("--nodes 15000000").expect("parses").scenario().expect("valid");
        let e = check_memory(&sc).expect_err("15M Kademlia nodes do not fit").to_string();
        assert!(e.contains("MiB would be needed") && e.contains("15000000 nodes"), "{e}");
    }

    #[test]
    fn items_outputs_and_summary_round_trip() {
        let dir = std::env::temp_dir().join(format!("mycel-sim-items-{}", std::process::id()));
        let sc = parse("--nodes 60 --workload items --items 6 --join-secs 5 --settle-secs 10 --lookup-window 5")
            .expect("parses")
            .scenario()
            .expect("valid");
        let report = Sim::new(sc).expect("valid").run(&mut |_| {});
        write_outputs(&dir, &report).expect("written");
        let csv = std::fs::read_to_string(dir.join("items.csv")).expect("csv");
        assert_eq!(csv.lines().count(), 1 + 9 + 6, "header, 3 + 2 x 3 puts, 6 gets");
        let line = serde_json::to_string(&report.summary).expect("json");
        assert!(line.contains("\"put_latency_ms_p90\"") && line.contains("\"messages_per_get\""), "{line}");
        let back: crate::Summary = serde_json::from_str(&line).expect("reads back");
        assert_eq!(back.items.map(|i| i.puts), Some(9));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lookup_summaries_have_no_item_fields() {
        let sc = parse("--nodes 40 --lookups 5 --join-secs 5 --settle-secs 5 --lookup-window 5")
            .expect("parses")
            .scenario()
            .expect("valid");
        let s = Sim::new(sc).expect("valid").run(&mut |_| {}).summary;
        let line = serde_json::to_string(&s).expect("json");
        assert!(!line.contains("put_latency"), "{line}");
        let back: crate::Summary = serde_json::from_str(&line).expect("reads back");
        assert!(back.items.is_none());
    }

    #[test]
    fn outputs_and_summaries() {
        let dir = std::env::temp_dir().join(format!("mycel-sim-test-{}", std::process::id()));
        let sc = parse("--nodes 60 --lookups 20 --join-secs 5 --settle-secs 10 --lookup-window 10")
            .expect("parses")
            .scenario()
            .expect("valid");
        let report = Sim::new(sc).expect("valid").run(&mut |_| {});
        write_outputs(&dir, &report).expect("written");
        let csv = std::fs::read_to_string(dir.join("lookups.csv")).expect("csv");
        assert_eq!(csv.lines().count(), 21, "header and one line per lookup");
        for f in ["summary.json", "latency_cdf.svg", "hops.svg"] {
            assert!(dir.join(f).exists(), "{f}");
        }
        let line = serde_json::to_string(&report.summary).expect("json");
        let jsonl = dir.join("results.jsonl");
        std::fs::write(&jsonl, format!("# a comment\n{line}\n{line}\n")).expect("write");
        crate::sweep::summarize(&jsonl, &dir).expect("summarized");
        let table = std::fs::read_to_string(dir.join("table.md")).expect("table");
        assert_eq!(table.lines().count(), 4, "header, rule, two rows");
        std::fs::write(&jsonl, "{not json}\n").expect("write");
        assert!(crate::sweep::summarize(&jsonl, &dir).expect_err("bad line").to_string().contains("line 1"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
