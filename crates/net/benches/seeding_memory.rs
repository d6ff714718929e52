//! Figure for BENCHMARKS.md: resident memory of one session seeding 100 idle torrents of
//! 4 MiB each. Run with `cargo bench -p mycel-net --bench seeding_memory`.

#![allow(missing_docs)]
// A driver benchmark: real sockets and files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use mycel_metainfo::TorrentVersion;
use mycel_net::torrent::{AddOptions, Existing, TorrentSource};
use support::{content, session, torrent};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(seeding_100_torrents());
}

async fn seeding_100_torrents() {
    let tmp = tempfile::tempdir().unwrap();
    let s = session("127.0.0.12", Some(&tmp.path().join(".data")), 0).await;
    let before = rss_kib();
    let mut handles = Vec::new();
    for i in 0..100u64 {
        let data = content(4 << 20, 1000 + i);
        let m = torrent(&data, TorrentVersion::Hybrid, 64 * 1024);
        let dir = tmp.path().join(format!("t{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("blob.bin"), &data).unwrap();
        let opts = AddOptions { existing: Existing::Complete, ..AddOptions::default() };
        handles.push(s.add_torrent(TorrentSource::Metainfo(Box::new(m)), dir, opts).await.unwrap());
    }
    for h in &handles {
        h.wait_complete().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib();
    println!("RSS: {before} KiB before, {after} KiB seeding 100 torrents ({} KiB per torrent)", (after - before) / 100);
    s.shutdown().await;
}
