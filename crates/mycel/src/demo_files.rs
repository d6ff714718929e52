//! The file-sharing phase of `mycel demo`: node 0 shares a generated file, other nodes fetch
//! it by magnet link, finding peers through the demo's DHT, and the report says who
//! uploaded how much to whom.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use mycel_metainfo::{CreateOptions, Metainfo, TorrentBuilder, TorrentVersion};
use mycel_net::torrent::{AddOptions, Existing, Session, SessionConfig, SessionHandle, TorrentSource};
use mycel_net::Handle;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::time::Instant;

/// Size of the shared file.
const FILE_SIZE: usize = 4 << 20;
/// Nodes that fetch it.
const FETCHERS: usize = 8;
/// Upper bound for every fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the file phase reports.
#[derive(Debug, Serialize)]
pub struct FilesReport {
    /// Bytes of the shared file.
    pub size: u64,
    /// Nodes that tried to fetch it.
    pub fetchers: usize,
    /// Those that got every piece verified.
    pub completed: usize,
    /// Time from start to each completion, milliseconds, sorted.
    pub completion_ms: Vec<f64>,
    /// Share of all uploaded bytes that came from the seeder (lower: peers traded more).
    pub seeder_share: f64,
    /// Who uploaded how much to whom (node indices).
    pub uploads: Vec<Upload>,
    /// What went wrong, one line each.
    pub failures: Vec<String>,
}

/// Bytes one node uploaded to another.
#[derive(Debug, Serialize)]
pub struct Upload {
    /// Uploader.
    pub from: usize,
    /// Downloader.
    pub to: usize,
    /// Block bytes.
    pub bytes: u64,
}

/// Runs the phase over the demo's DHT nodes (`nodes[i]` is node `i`).
pub async fn run(nodes: &[Handle], rng: &mut ChaCha8Rng) -> Result<FilesReport> {
    let fetchers = FETCHERS.min(nodes.len().saturating_sub(1));
    let mut data = vec![0u8; FILE_SIZE];
    rng.fill_bytes(&mut data);
    let dir = std::env::temp_dir().join(format!("mycel-demo-{}-{}", std::process::id(), rng.next_u32()));
    let result = phase(nodes, fetchers, &data, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn phase(nodes: &[Handle], fetchers: usize, data: &[u8], dir: &std::path::Path) -> Result<FilesReport> {
    let metainfo = make_torrent(data)?;
    let seed_dir = dir.join("node0");
    std::fs::create_dir_all(&seed_dir).with_context(|| format!("creating {}", seed_dir.display()))?;
    std::fs::write(seed_dir.join("demo.bin"), data).context("writing the demo file")?;
    let mut sessions: Vec<SessionHandle> = Vec::new();
    let seeder = session_for(&nodes[0]).await?;
    let opts = AddOptions { existing: Existing::Complete, ..AddOptions::default() };
    seeder.add_torrent(TorrentSource::Metainfo(Box::new(metainfo.clone())), seed_dir, opts).await?;
    sessions.push(seeder);
    // Let the seeder's first announce land before anyone looks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let magnet = metainfo.magnet();
    let mut torrents = Vec::new();
    for node in nodes.iter().skip(1).take(fetchers) {
        let s = session_for(node).await?;
        let out: PathBuf = dir.join(format!("node{}", sessions.len()));
        let t = s.add_torrent(TorrentSource::Magnet(magnet.clone()), out.clone(), AddOptions::default()).await?;
        torrents.push((sessions.len(), t, out));
        sessions.push(s);
    }
    let mut completion_ms = Vec::new();
    let mut failures = Vec::new();
    for (i, t, out) in &torrents {
        match tokio::time::timeout(FETCH_TIMEOUT, t.wait_complete()).await {
            Ok(Ok(_)) => {
                completion_ms.push(started.elapsed().as_secs_f64() * 1000.0);
                if std::fs::read(out.join("demo.bin")).ok().as_deref() != Some(data) {
                    failures.push(format!("node {i}: the fetched file differs"));
                }
            }
            Ok(Err(e)) => failures.push(format!("node {i}: fetch failed: {e}")),
            Err(_) => failures.push(format!("node {i}: fetch did not finish in {FETCH_TIMEOUT:?}")),
        }
    }
    // Wait a moment for the last progress snapshots, then read who sent what.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let index: BTreeMap<IpAddr, usize> = sessions.iter().enumerate().map(|(i, s)| (s.local_addr().ip(), i)).collect();
    let mut uploads = Vec::new();
    for (from, s) in sessions.iter().enumerate() {
        for t in s.torrents() {
            for x in t.progress().transfers.iter().filter(|x| x.uploaded >= 16 * 1024) {
                if let Some(&to) = index.get(&x.addr.ip()) {
                    uploads.push(Upload { from, to, bytes: x.uploaded });
                }
            }
        }
    }
    let total: u64 = uploads.iter().map(|u| u.bytes).sum();
    let by_seeder: u64 = uploads.iter().filter(|u| u.from == 0).map(|u| u.bytes).sum();
    for s in &sessions {
        s.shutdown().await;
    }
    completion_ms.sort_by(f64::total_cmp);
    Ok(FilesReport {
        size: data.len() as u64,
        fetchers,
        completed: completion_ms.len(),
        completion_ms,
        seeder_share: if total > 0 { by_seeder as f64 / total as f64 } else { 0.0 },
        uploads,
        failures,
    })
}

impl FilesReport {
    /// Lines for the human-readable report.
    pub fn human(&self) -> Vec<String> {
        let last = self.completion_ms.last().copied().unwrap_or(0.0);
        let mut lines = vec![format!(
            "files:         {}/{} nodes fetched a {:.1} MiB file by magnet via the DHT, all done in {:.0} ms; the seeder sent {:.0}% of the bytes",
            self.completed,
            self.fetchers,
            self.size as f64 / 1048576.0,
            last,
            self.seeder_share * 100.0
        )];
        for u in &self.uploads {
            lines.push(format!("  node {:>2} -> node {:>2}: {:>8.1} KiB", u.from, u.to, u.bytes as f64 / 1024.0));
        }
        lines
    }
}

async fn session_for(node: &Handle) -> Result<SessionHandle> {
    let mut cfg = SessionConfig::new(SocketAddr::new(node.local_addr().ip(), 0));
    cfg.dht = Some(node.clone());
    cfg.disk_threads = 1;
    Ok(Session::start(cfg).await?)
}

fn make_torrent(data: &[u8]) -> Result<Metainfo> {
    let opts =
        CreateOptions { version: TorrentVersion::Hybrid, piece_length: Some(64 * 1024), ..CreateOptions::default() };
    let mut b = TorrentBuilder::single_file("demo.bin", data.len() as u64, opts)?;
    b.hash_all(|_, off, buf: &mut [u8]| -> Result<()> {
        buf.copy_from_slice(&data[off as usize..off as usize + buf.len()]);
        Ok(())
    })?;
    Ok(Metainfo::from_bytes(&b.finish()?)?)
}
