//! A real swarm on loopback: one honest seeder, one peer that serves corrupt blocks, and
//! several leechers. Every leecher must finish with the right bytes and the corrupter must
//! be banned. Also: a target that fails its writes stops the torrent with a clear error and
//! leaves consistent resume data.

// A driver test: real sockets and files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mycel_metainfo::{Metainfo, TorrentVersion};
use mycel_net::torrent::{AddOptions, Existing, SessionHandle, TorrentError, TorrentSource};
use mycel_storage::{FaultMode, FaultyStorage, ResumeStore, Storage};

mod support;

use support::{content, session, torrent};

async fn seed(ip: &str, dir: &Path, m: &Metainfo, data: &[u8], corrupt: bool, limit: u64) -> SessionHandle {
    std::fs::write(dir.join("blob.bin"), data).unwrap();
    let s = session(ip, None, limit).await;
    let mut opts = AddOptions { existing: Existing::Complete, ..AddOptions::default() };
    if corrupt {
        opts.storage_wrapper = Some(Arc::new(|inner: Box<dyn Storage>| -> Box<dyn Storage> {
            Box::new(FaultyStorage::new(inner, FaultMode::CorruptReads))
        }));
    }
    let t = s.add_torrent(TorrentSource::Metainfo(Box::new(m.clone())), dir.to_path_buf(), opts).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), t.wait_complete()).await.unwrap().unwrap();
    s
}

async fn swarm_with_corrupter(version: TorrentVersion) {
    let data = content(3 << 20, 7);
    let m = torrent(&data, version, 32 * 1024);
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: &str| {
        let d = tmp.path().join(n);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    // The honest seeder is slow, so the leechers do use the corrupter.
    let seeder = seed("127.0.0.10", &dir("seed"), &m, &data, false, 1 << 20).await;
    let bad = seed("127.0.0.66", &dir("bad"), &m, &data, true, 0).await;
    let mut known: Vec<SocketAddr> = vec![seeder.local_addr(), bad.local_addr()];
    let mut leechers = Vec::new();
    for i in 0..3 {
        let d = dir(&format!("leech{i}"));
        let s = session(&format!("127.0.0.{}", 20 + i), Some(&d.join(".data")), 0).await;
        let opts = AddOptions { peers: known.clone(), ..AddOptions::default() };
        let t = s.add_torrent(TorrentSource::Metainfo(Box::new(m.clone())), d.clone(), opts).await.unwrap();
        known.push(s.local_addr());
        leechers.push((s, t, d));
    }
    let mut banned = 0;
    for (_, t, d) in &leechers {
        let Ok(p) = tokio::time::timeout(Duration::from_secs(60), t.wait_complete()).await else {
            let states: Vec<String> = leechers.iter().map(|(_, t, _)| format!("{:?}", *t.watch().borrow())).collect();
            panic!("leecher timed out; leechers: {states:#?}");
        };
        let p = p.unwrap();
        assert_eq!(std::fs::read(d.join("blob.bin")).unwrap(), data, "leecher data differs");
        banned += p.banned;
        assert!(p
            .transfers
            .iter()
            .all(|x| x.addr.ip().to_string() != "127.0.0.66" || p.banned == 1 || x.downloaded == 0));
    }
    assert!(banned >= 1, "nobody banned the corrupting peer");
    for (s, _, _) in leechers {
        s.shutdown().await;
    }
    seeder.shutdown().await;
    bad.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_swarm_bans_corrupter() {
    swarm_with_corrupter(TorrentVersion::V1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_swarm_bans_corrupter() {
    swarm_with_corrupter(TorrentVersion::V2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_disk_stops_with_clear_error_and_consistent_resume() {
    let data = content(2 << 20, 9);
    let m = torrent(&data, TorrentVersion::Hybrid, 16 * 1024);
    let tmp = tempfile::tempdir().unwrap();
    let sd = tmp.path().join("seed");
    let ld = tmp.path().join("leech");
    std::fs::create_dir_all(&sd).unwrap();
    let seeder = seed("127.0.0.11", &sd, &m, &data, false, 0).await;
    let s = session("127.0.0.31", Some(&ld.join(".data")), 0).await;
    let opts = AddOptions {
        peers: vec![seeder.local_addr()],
        storage_wrapper: Some(Arc::new(|inner: Box<dyn Storage>| -> Box<dyn Storage> {
            Box::new(FaultyStorage::new(inner, FaultMode::FailWritesAfter(40)))
        })),
        ..AddOptions::default()
    };
    let t = s.add_torrent(TorrentSource::Metainfo(Box::new(m.clone())), ld.clone(), opts).await.unwrap();
    let res = tokio::time::timeout(Duration::from_secs(30), t.wait_complete()).await.expect("timed out");
    match res {
        Err(TorrentError::Disk(msg)) => assert!(msg.contains("injected fault"), "{msg}"),
        other => panic!("expected a disk error, got {other:?}"),
    }
    s.shutdown().await;
    seeder.shutdown().await;
    drop(s);
    // The torrent task may still be releasing the database.
    let mut store = None;
    for _ in 0..50 {
        match ResumeStore::open(&ld.join(".data")) {
            Ok(s) => {
                store = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let store = store.expect("resume store stays locked");
    // Every piece recorded as verified is really on disk.
    if let Some((n, bits)) = store.load(&m.info_hashes().id20()).unwrap() {
        let bf = mycel_peer_wire::Bitfield::from_bytes(&bits, n).unwrap();
        let on_disk = std::fs::read(ld.join("blob.bin")).unwrap();
        let pl = 16 * 1024;
        for p in bf.iter_set() {
            let a = p as usize * pl;
            let b = (a + pl).min(data.len());
            assert_eq!(on_disk[a..b], data[a..b], "piece {p} recorded but not on disk");
        }
    }
}
