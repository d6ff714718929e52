//! `mycel keygen`, `mycel dht put` and `mycel dht get` as a user runs them: CHK, SSK and KSK
//! values through two real `mycel dht node`s on loopback, key file checks, the size limit;
//! and `mycel dht sample` (BEP 51) against a node that holds an announce.

// A test of a binary spawns processes and a reader thread.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

fn mycel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mycel")).args(args).env_remove("RUST_LOG").output().expect("run mycel")
}

fn json(args: &[&str]) -> Value {
    let out = mycel(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mycel {args:?} failed: {:?}\n{err}", out.status);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("mycel {args:?}: not JSON ({e})"))
}

struct NodeGuard(Child);

impl Drop for NodeGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mycel dht node` on `listen`, bootstrapping from `bootstrap`; returns it and its address.
fn start_node(listen: &str, bootstrap: Option<&str>, dir: &std::path::Path) -> (NodeGuard, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mycel"));
    cmd.args(["dht", "node", "--json", "--listen", listen, "--data-dir"]).arg(dir);
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let mut child =
        cmd.env_remove("RUST_LOG").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn mycel dht node");
    let out = child.stdout.take().expect("piped stdout");
    let guard = NodeGuard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).expect("ready line within 10 s");
    let ready: Value = serde_json::from_str(line.trim()).expect("JSON ready line");
    (guard, ready["addr"].as_str().expect("addr").to_owned())
}

#[test]
fn key_files_and_size_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("k");
    let key = key.to_str().expect("utf-8 path");
    let made = json(&["keygen", "--out", key, "--json"]);
    assert_eq!(made["public_key"].as_str().map(str::len), Some(64));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key).expect("key file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = mycel(&["keygen", "--out", key]);
        assert_eq!(again.status.code(), Some(1), "never overwrites a key");
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let out = mycel(&["dht", "put", "--key", key, "--name", "n", "v", "--bootstrap", "127.0.0.1:9"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    }
    let big = "x".repeat(1001);
    let out = mycel(&["dht", "put", "--immutable", &big, "--bootstrap", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 1000 bytes") && err.contains("mycel share"), "{err}");
    let out = mycel(&["dht", "get", "not-a-key", "--bootstrap", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn chk_ssk_and_ksk_round_trip_through_real_nodes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_a, a) = start_node("127.5.0.1:0", None, &dir.path().join("a"));
    let (_b, b) = start_node("127.5.0.2:0", Some(&a), &dir.path().join("b"));
    let common = |listen: &'static str, boot: &str| -> Vec<String> {
        ["--bootstrap", boot, "--listen", listen, "--timeout", "10", "--json"].iter().map(|s| s.to_string()).collect()
    };
    let run = |args: &[&str], listen: &'static str, boot: &str| -> Value {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(common(listen, boot));
        json(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let put = run(&["dht", "put", "--immutable", "content addressed"], "127.5.0.3:0", &a);
    assert_eq!(put["kind"], "chk");
    assert!(put["stored"].as_u64() >= Some(1), "{put}");
    let key = put["key"].as_str().expect("key").to_owned();
    let got = run(&["dht", "get", &key], "127.5.0.4:0", &b);
    assert_eq!((got["found"].as_bool(), got["value"].as_str()), (Some(true), Some("content addressed")), "{got}");

    let key_file = dir.path().join("ssk");
    let key_file = key_file.to_str().expect("utf-8");
    json(&["keygen", "--out", key_file, "--json"]);
    let first = run(&["dht", "put", "--key", key_file, "--name", "blog", "one"], "127.5.0.5:0", &a);
    assert_eq!((first["kind"].as_str(), first["seq"].as_i64()), (Some("ssk"), Some(1)), "{first}");
    let second = run(&["dht", "put", "--key", key_file, "--name", "blog", "--cas", "two"], "127.5.0.6:0", &b);
    assert_eq!(second["seq"].as_i64(), Some(2), "seq increments: {second}");
    let ssk = second["key"].as_str().expect("key").to_owned();
    let got = run(&["dht", "get", &ssk], "127.5.0.7:0", &a);
    assert_eq!((got["value"].as_str(), got["seq"].as_i64()), (Some("two"), Some(2)), "{got}");
    assert_eq!(got["authenticated"], true);

    let put = run(&["dht", "put", "--keyword", "Free Music", "pointer"], "127.5.0.8:0", &b);
    assert_eq!(put["kind"], "ksk");
    let got = run(&["dht", "get", "--keyword", "free   music"], "127.5.0.9:0", &a);
    assert_eq!((got["value"].as_str(), got["authenticated"].as_bool()), (Some("pointer"), Some(false)), "{got}");
}

#[test]
fn acknowledged_items_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node");
    let (mut node, addr) = start_node("127.5.1.1:0", None, &data);
    let common = |listen: &str, boot: &str| -> Vec<String> {
        ["--bootstrap", boot, "--listen", listen, "--timeout", "10", "--json"].iter().map(|s| s.to_string()).collect()
    };
    let run = |args: &[&str], listen: &str, boot: &str| -> Value {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(common(listen, boot));
        json(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let chk = run(&["dht", "put", "--immutable", "kept on disk"], "127.5.1.2:0", &addr);
    assert_eq!(chk["stored"], 1, "{chk}");
    let ksk = run(&["dht", "put", "--keyword", "crash test", "also kept"], "127.5.1.3:0", &addr);
    assert_eq!(ksk["stored"], 1, "{ksk}");

    // SIGKILL: no shutdown, no final save.
    node.0.kill().expect("kill");
    node.0.wait().expect("reap");
    let (_node, addr) = start_node("127.5.1.1:0", None, &data);
    let got = run(&["dht", "get", chk["key"].as_str().expect("key")], "127.5.1.4:0", &addr);
    assert_eq!(got["value"], "kept on disk", "{got}");
    let got = run(&["dht", "get", "--keyword", "crash test"], "127.5.1.5:0", &addr);
    assert_eq!(got["value"], "also kept", "{got}");
}

#[test]
fn sample_returns_what_a_node_stores() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_node, addr) = start_node("127.5.2.1:0", None, &dir.path().join("n"));
    let info_hash = "00112233445566778899aabbccddeeff00112233";
    let announced = json(&[
        "dht",
        "announce",
        info_hash,
        "--port",
        "4000",
        "--bootstrap",
        &addr,
        "--listen",
        "127.5.2.2:0",
        "--json",
    ]);
    assert_eq!(announced["announced_to"], 1, "{announced}");
    let sample = json(&["dht", "sample", &addr, "--listen", "127.5.2.3:0", "--json"]);
    assert_eq!(sample["supported"], true, "{sample}");
    assert_eq!(sample["num"], 1);
    assert_eq!(sample["samples"], serde_json::json!([info_hash]));
    assert!(sample["interval"].as_i64().is_some_and(|i| (0..=21600).contains(&i)));
}
