//! Turning many runs into one results table and sweep plots: `mycel sim --summarize
//! results.jsonl --out DIR` reads the JSON summaries that `--json` runs printed, one per
//! line, and writes `table.md`, `cost_vs_n.svg`, `latency_vs_n.svg`, `success_vs_sybil.svg`
//! and `reached_vs_sybil.svg`. `bench/sim_table.sh` runs the scenarios and calls it.

// Part of the command-line driver: reads and writes result files.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use crate::metrics::Summary;
use crate::params::Protocol;
use crate::plot::{line_chart, Series};
use crate::SimError;

/// Reads summaries, one JSON object per line (blank lines and lines starting with `#` are
/// skipped).
pub fn read(path: &Path) -> Result<Vec<Summary>, SimError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| SimError::Io { path: path.display().to_string(), source })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let s = serde_json::from_str(line).map_err(|e| SimError::Parse {
            path: path.display().to_string(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(s);
    }
    Ok(out)
}

fn scenario_label(s: &Summary) -> String {
    let mut parts = Vec::new();
    if s.churn {
        parts.push("churn".to_string());
    }
    if let Some(a) = s.attack {
        parts.push(format!("{:.0}% sybil {:?}", s.sybil_fraction * 100.0, a).to_lowercase());
    }
    if s.disjoint > 1 {
        parts.push(format!("d={}", s.disjoint));
    }
    if parts.is_empty() {
        "plain".into()
    } else {
        parts.join(", ")
    }
}

/// The results table in Markdown.
pub fn table(rows: &[Summary]) -> String {
    let mut t = String::from(
        "| protocol | nodes | scenario | success | reached | closest-k | hops p50 | latency p50 / p90 / p99 (ms) | msgs/lookup | bytes/lookup | wall (s) | events/s | peak RSS (MiB) |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in rows {
        let _ = writeln!(
            t,
            "| {:?} | {} | {} | {:.2} % | {:.2} % | {:.3} | {} | {:.0} / {:.0} / {:.0} | {:.1} | {:.0} | {:.1} | {:.0} | {} |",
            s.protocol,
            s.nodes,
            scenario_label(s),
            s.success_rate * 100.0,
            s.reached_rate * 100.0,
            s.closest_k_fraction,
            s.hops_p50,
            s.latency_ms_p50,
            s.latency_ms_p90,
            s.latency_ms_p99,
            s.messages_per_lookup,
            s.bytes_per_lookup,
            s.wall_s,
            s.events_per_s,
            s.peak_rss_bytes >> 20
        );
    }
    t
}

/// One series per protocol of `y(summary)` against the node count, plain scenarios only
/// (no churn, no Sybils, one path).
fn by_protocol(rows: &[Summary], y: impl Fn(&Summary) -> f64) -> Vec<Series> {
    let mut m: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in rows.iter().filter(|s| !s.churn && s.attack.is_none() && s.disjoint == 1) {
        m.entry(format!("{:?}", s.protocol)).or_default().push((s.nodes as f64, y(s)));
    }
    m.into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name, points }
        })
        .collect()
}

/// `y` against the Sybil fraction, one series per (attack, d), Kademlia without churn.
fn sybil_series(rows: &[Summary], y: impl Fn(&Summary) -> f64) -> Vec<Series> {
    let mut m: BTreeMap<(String, usize), Vec<(f64, f64)>> = BTreeMap::new();
    let attacks: Vec<String> = rows.iter().filter_map(|s| s.attack.map(|a| format!("{a:?}").to_lowercase())).collect();
    for s in rows.iter().filter(|s| s.protocol == Protocol::Kademlia && !s.churn) {
        match s.attack {
            Some(a) => {
                m.entry((format!("{a:?}").to_lowercase(), s.disjoint)).or_default().push((s.sybil_fraction, y(s)))
            }
            // A run without Sybils is the f = 0 point of every attack's curve.
            None => {
                for a in &attacks {
                    m.entry((a.clone(), s.disjoint)).or_default().push((0.0, y(s)));
                }
            }
        }
    }
    m.into_iter()
        .filter(|(_, p)| p.iter().any(|x| x.0 > 0.0))
        .map(|((attack, d), mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points.dedup_by(|a, b| a.0 == b.0);
            Series { name: format!("{attack}, d={d}"), points }
        })
        .collect()
}

/// Reads `input` and writes the table and the sweep plots into `out`.
pub fn summarize(input: &Path, out: &Path) -> Result<(), SimError> {
    let rows = read(input)?;
    std::fs::create_dir_all(out).map_err(|source| SimError::Io { path: out.display().to_string(), source })?;
    let write = |name: &str, text: &str| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|source| SimError::Io { path: p.display().to_string(), source })
    };
    write("table.md", &table(&rows))?;
    let cost = by_protocol(&rows, |s| s.messages_per_lookup);
    write(
        "cost_vs_n.svg",
        &line_chart(
            "Messages per lookup vs network size",
            "nodes (log)",
            "datagrams per lookup (log)",
            &cost,
            true,
            true,
        ),
    )?;
    let lat = by_protocol(&rows, |s| s.latency_ms_p50);
    write(
        "latency_vs_n.svg",
        &line_chart("Median lookup latency vs network size", "nodes (log)", "p50 latency (ms)", &lat, true, false),
    )?;
    let syb = sybil_series(&rows, |s| s.success_rate);
    if !syb.is_empty() {
        write(
            "success_vs_sybil.svg",
            &line_chart("Lookup success vs Sybil fraction", "Sybil fraction", "success rate", &syb, false, false),
        )?;
        let reached = sybil_series(&rows, |s| s.reached_rate);
        write(
            "reached_vs_sybil.svg",
            &line_chart(
                "True closest node reached vs Sybil fraction",
                "Sybil fraction",
                "reached rate",
                &reached,
                false,
                false,
            ),
        )?;
    }
    Ok(())
}
