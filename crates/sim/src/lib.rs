//! A discrete-event simulator for mycel's DHT: the unchanged sans-IO node
//! ([`mycel_dht::Node`]) for every simulated node, on virtual time, over a modelled Internet,
//! reproducibly from one seed; and, on the same model and workload, the protocols the field
//! moved away from: Gnutella-style flooding, Chord, and a zero-hop ring.
//!
//! ```no_run
//! use mycel_sim::{Protocol, Scenario, Sim};
//! let sc = Scenario::new(1000, 500, 42, Protocol::Kademlia);
//! let report = Sim::new(sc)?.run(&mut |_done| {});
//! println!("success {:.3}, p50 {} ms", report.summary.success_rate, report.summary.latency_ms_p50);
//! # Ok::<(), mycel_sim::SimError>(())
//! ```
//!
//! The pieces: [`engine`] (event queue, timers, trace hash), [`net`] (regions, delays, loss,
//! NAT, partitions), [`params`] (a scenario), `scenario` (joins, churn, workload, judging),
//! [`items`] (the BEP 44 put/get workload), [`sybil`] (attackers speaking KRPC), [`baseline`] (the other protocols), [`metrics`], [`plot`]
//! and [`cli`]. docs/SIMULATION.md describes the model and where its numbers come from.

#![warn(missing_docs)]

pub mod baseline;
pub mod cli;
pub mod dist;
pub mod engine;
pub mod items;
pub mod metrics;
pub mod net;
pub mod node;
pub mod oracle;
pub mod params;
pub mod plot;
mod scenario;
pub mod sweep;
pub mod sybil;

pub use items::{ItemRecord, ItemSummary};
pub use metrics::{LookupRecord, Report, Summary};

pub use net::{NetParams, Partition};
pub use params::{Attack, Churn, FloodParams, Protocol, Scenario, Workload};
pub use scenario::Sim;

/// Errors of the simulator: bad parameters, runs too big for the machine, output failures.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A parameter is out of range; `flag` names the command-line flag.
    #[error("invalid --{flag}: {reason}")]
    Invalid {
        /// The flag, without dashes.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The run would need more memory than the machine has available.
    #[error("refusing to run: about {needed_mib} MiB would be needed for {nodes} nodes ({per_node} bytes per node for {protocol}), but only {available_mib} MiB are available")]
    TooBig {
        /// Nodes asked for.
        nodes: usize,
        /// Protocol asked for.
        protocol: &'static str,
        /// Estimated bytes per node.
        per_node: u64,
        /// Estimated total, MiB.
        needed_mib: u64,
        /// Available memory, MiB.
        available_mib: u64,
    },
    /// A file of summaries could not be read.
    #[error("{path} line {line}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Writing results failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl SimError {
    /// An [`SimError::Invalid`] for `flag`.
    pub fn invalid(flag: &'static str, reason: impl Into<String>) -> Self {
        SimError::Invalid { flag, reason: reason.into() }
    }
}
