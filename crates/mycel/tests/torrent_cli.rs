//! `mycel create`, `share` and `fetch` as processes: bad input exits 2 with one line, a
//! download killed with SIGKILL resumes where it was without fetching verified pieces again,
//! and `fetch --only` downloads just the chosen files.

// A test of a binary spawns processes and a reader thread.
#![allow(clippy::disallowed_methods, clippy::disallowed_types, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mycel"));
    c.env_remove("RUST_LOG");
    c
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_random(path: &Path, len: usize) -> Vec<u8> {
    // A cheap deterministic generator: xorshift.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::File::create(path).unwrap().write_all(&data).unwrap();
    data
}

#[test]
fn malformed_torrent_and_magnet_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.torrent");
    std::fs::write(&bad, b"d4:infoi3ee").unwrap();
    for source in [bad.to_str().unwrap(), "magnet:?xt=urn:btih:zz"] {
        let out = bin().args(["fetch", source, "--out"]).arg(dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{source}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: invalid"), "{err}");
    }
}

#[test]
fn fetch_resumes_after_sigkill_without_refetching() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&src).unwrap();
    let data = write_random(&src.join("blob.bin"), 32 << 20);
    let torrent = dir.path().join("blob.torrent");
    let st = bin()
        .args(["create", "--v1", "--piece-size", "64K", "-o"])
        .arg(&torrent)
        .arg(src.join("blob.bin"))
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));

    // A seeder limited to 6 MB/s: the first fetch would take about 5.6 s.
    let mut share = bin()
        .args(["share", "--json", "--listen", "127.0.0.42:0", "--upload-limit", "6000000", "--dir"])
        .arg(&src)
        .arg(&torrent)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(share.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _share = Guard(share);
    let ready: Value = serde_json::from_str(&line).expect("share prints a JSON line");
    let peer = ready["addr"].as_str().unwrap().to_string();

    let fetch = |json: bool| {
        let mut c = bin();
        c.args(["fetch", "--listen", "127.0.0.43:0", "--timeout", "60", "--peer", &peer, "--out"])
            .arg(&out)
            .arg(&torrent);
        if json {
            c.arg("--json");
        }
        c.stdout(Stdio::piped()).stderr(Stdio::null());
        c
    };
    let first = fetch(false).spawn().unwrap();
    let mut first = Guard(first);
    let start = Instant::now();
    let resume = out.join(".mycel").join("resume.redb");
    // Let some pieces be verified and recorded (flushes run every 2 s), then kill -9.
    while start.elapsed() < Duration::from_millis(3500) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(resume.exists(), "no resume data after 3.5 s");
    assert!(first.0.try_wait().unwrap().is_none(), "the first fetch finished too early for the test");
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();

    let second = fetch(true).output().unwrap();
    assert!(second.status.success(), "second fetch failed: {:?}", second.status);
    let summary: Value = serde_json::from_str(String::from_utf8_lossy(&second.stdout).trim()).unwrap();
    let total = summary["bytes"].as_u64().unwrap();
    let downloaded = summary["downloaded"].as_u64().unwrap();
    assert_eq!(total, data.len() as u64);
    assert!(downloaded < total * 9 / 10, "resumed fetch downloaded {downloaded} of {total}");
    // One honest seeder: nothing wasted, no protocol error, nothing uploaded to a seed.
    assert_eq!(summary["wasted"].as_u64(), Some(0), "{summary}");
    assert_eq!(summary["protocol_errors"].as_u64(), Some(0), "{summary}");
    assert_eq!(summary["banned"].as_u64(), Some(0), "{summary}");
    assert_eq!(summary["uploaded"].as_u64(), Some(0), "{summary}");
    assert_eq!(summary["from"].as_object().map(|m| m.len()), Some(1), "{summary}");
    // What went to the seeder is requests and the like: wire bytes, under 1 % of the data.
    let sent: u64 = summary["to"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(sent < downloaded / 100, "{summary}");
    assert!(std::fs::read(out.join("blob.bin")).unwrap() == data, "data differs after resume");
}

/// `mycel share --json` on a .torrent; returns the process guard and its JSON line.
fn share(torrent: &Path, dir: &Path, listen: &str) -> (Guard, Value) {
    let mut share = bin()
        .args(["share", "--json", "--listen", listen, "--dir"])
        .arg(dir)
        .arg(torrent)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(share.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (Guard(share), serde_json::from_str(&line).expect("share prints a JSON line"))
}

#[test]
fn fetch_only_downloads_the_chosen_files() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("src").join("content");
    std::fs::create_dir_all(content.join("sub")).unwrap();
    write_random(&content.join("a.bin"), 3 << 20);
    let b = write_random(&content.join("sub").join("b.bin"), 200 * 1024 + 7);
    write_random(&content.join("c.bin"), 100 * 1024);
    let torrent = dir.path().join("t.torrent");
    let st = bin().args(["create", "--v1", "--piece-size", "64K", "-o"]).arg(&torrent).arg(&content).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let (_share, ready) = share(&torrent, &dir.path().join("src"), "127.0.0.44:0");
    let magnet = ready["magnet"].as_str().unwrap().to_string();

    // By magnet (the selection is checked after the metadata arrives).
    let out = dir.path().join("out");
    let r = bin()
        .args(["fetch", "--listen", "127.0.0.45:0", "--timeout", "30", "--json", "--only", "sub/b.bin", "--out"])
        .arg(&out)
        .arg(&magnet)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let summary: Value = serde_json::from_str(String::from_utf8_lossy(&r.stdout).trim()).unwrap();
    assert!(std::fs::read(out.join("content/sub/b.bin")).unwrap() == b, "b.bin differs");
    assert!(!out.join("content/a.bin").exists(), "a.bin was not chosen and shares no piece with b.bin");
    // b.bin's pieces (4, the last shared with c.bin) and nothing else.
    assert!(summary["downloaded"].as_u64().unwrap() <= 4 * 65536, "{summary}");
    assert!(summary["verified"].as_u64().unwrap() < summary["bytes"].as_u64().unwrap(), "{summary}");

    // A path not in the torrent: exit 2 with one line, from a .torrent and from a magnet.
    for source in [torrent.to_str().unwrap(), magnet.as_str()] {
        let r = bin()
            .args(["fetch", "--listen", "127.0.0.46:0", "--timeout", "30", "--only", "nope.bin", "--out"])
            .arg(dir.path().join("out2"))
            .arg(source)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{source}: {err}");
        assert!(err.contains("no file \"nope.bin\" in the torrent"), "{err}");
    }
    let help = bin().args(["fetch", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--only <PATH>"));
}

#[test]
fn unwritable_target_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob.bin");
    write_random(&src, 100_000);
    let torrent = dir.path().join("blob.torrent");
    assert!(bin().args(["create", "-o"]).arg(&torrent).arg(&src).output().unwrap().status.success());
    // A file where the output directory should be: nothing can be created under it.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"x").unwrap();
    let out = bin()
        .args(["fetch", "--listen", "127.0.0.44:0", "--timeout", "20", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--out")
        .arg(blocked.join("sub"))
        .arg(&torrent)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("disk error") && err.contains("blocked"), "{err}");
}
