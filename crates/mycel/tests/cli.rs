//! The command-line contract, run as a user (or another tool) would: exit codes, one-line
//! usage errors, and a real `mycel dht node` queried by the one-shot commands with `--json`.

// A test of a binary spawns processes and a reader thread.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const INFO_HASH: &str = "0123456789abcdef0123456789abcdef01234567";

fn mycel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mycel")).args(args).env_remove("RUST_LOG").output().expect("run mycel")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a one-shot command and parses its `--json` output.
fn json(args: &[&str]) -> Value {
    let out = mycel(args);
    assert!(out.status.success(), "mycel {args:?} failed: {:?}\n{}", out.status, stderr(&out));
    serde_json::from_str(stdout(&out).trim()).expect("stdout is one JSON object")
}

/// Kills the node when the test ends, also when it fails.
struct NodeGuard {
    child: Child,
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mycel dht node --json` and returns it with its parsed ready line.
fn start_node(listen: &str, data_dir: &std::path::Path) -> (NodeGuard, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mycel"))
        .args(["dht", "node", "--json", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mycel dht node");
    let line = ready_line(&mut child);
    let guard = NodeGuard { child };
    let ready: Value = serde_json::from_str(line.trim()).expect("the ready line is JSON");
    (guard, ready)
}

/// The first line a spawned node prints on stdout (its ready line), within 10 s.
fn ready_line(child: &mut std::process::Child) -> String {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("the node prints its ready line within 10 s")
}

#[test]
fn help_explains_the_commands() {
    let out = mycel(&["--help"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("dht") && stdout(&out).contains("demo"), "{}", stdout(&out));
    let out = mycel(&["dht", "--help"]);
    assert!(out.status.success());
    for command in ["node", "ping", "get-peers", "announce", "find-node"] {
        assert!(stdout(&out).contains(command), "dht --help lacks {command}");
    }
    let out = mycel(&["dht", "get-peers", "--help"]);
    assert!(out.status.success());
    for flag in ["--bootstrap", "--listen", "--timeout", "--json", "<INFOHASH>"] {
        assert!(stdout(&out).contains(flag), "get-peers --help lacks {flag}");
    }
    let out = mycel(&["dht", "node", "--help"]);
    assert!(out.status.success());
    for flag in ["--listen", "--bootstrap", "--data-dir", "--rate-limit", "--no-enforce-node-id"] {
        assert!(stdout(&out).contains(flag), "dht node --help lacks {flag}");
    }
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["dht", "get-peers", "xyz", "--bootstrap", "127.0.0.1:6881"], "expected 40 hex digits"),
        (&["dht", "find-node", "abcd", "--bootstrap", "127.0.0.1:6881"], "expected 40 hex digits"),
        (&["dht", "ping", "not-an-address"], "expected IP:PORT"),
        (&["dht", "get-peers", INFO_HASH], "--bootstrap"),
        (&["dht", "announce", INFO_HASH, "--bootstrap", "127.0.0.1:6881"], "--port"),
        (&["dht", "ping", "127.0.0.1:6881", "--no-such-flag"], "--no-such-flag"),
        (&["dht", "ping", "127.0.0.1:6881", "--timeout", "soon"], "seconds"),
        (&["dht", "node", "--listen", "127.0.0.1:0", "--listen", "127.0.0.2:0"], "at most one IPv4 and one IPv6"),
    ];
    for (args, needle) in cases {
        let out = mycel(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "mycel {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "mycel {args:?} printed more than one line:\n{err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "mycel {args:?}: {err}");
        assert!(out.stdout.is_empty(), "mycel {args:?} printed to stdout");
    }
}

#[test]
fn one_shot_commands_against_a_running_node() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut node, ready) = start_node("127.4.0.1:0", dir.path());
    assert_eq!(ready["event"], "listening");
    let addr = ready["addr"].as_str().expect("addr is a string").to_owned();
    let id = ready["id"].as_str().expect("id is a string").to_owned();
    assert!(addr.starts_with("127.4.0.1:") && !addr.ends_with(":0"), "{addr}");
    assert_eq!(ready["addrs"], serde_json::json!([addr]));
    assert_eq!(id.len(), 40);

    let pong = json(&["dht", "ping", &addr, "--listen", "127.4.0.2:0", "--json"]);
    assert_eq!(pong["addr"], addr.as_str());
    assert_eq!(pong["id"], id.as_str());
    assert!(pong["rtt_ms"].as_f64().expect("rtt_ms is a number") > 0.0, "{pong}");

    let common = ["--bootstrap", &addr, "--timeout", "10", "--json"];
    let mut args = vec!["dht", "announce", INFO_HASH, "--port", "4321", "--listen", "127.4.0.3:0"];
    args.extend(common);
    let announced = json(&args);
    assert_eq!(announced["info_hash"], INFO_HASH);
    assert_eq!(announced["port"], 4321);
    assert!(announced["announced_to"].as_u64().expect("a count") >= 1, "{announced}");
    assert!(announced["duration_ms"].as_f64().is_some());

    let mut args = vec!["dht", "get-peers", INFO_HASH, "--listen", "127.4.0.4:0"];
    args.extend(common);
    let found = json(&args);
    assert_eq!(found["info_hash"], INFO_HASH);
    let peers: Vec<&str> = found["peers"].as_array().expect("peers list").iter().filter_map(Value::as_str).collect();
    assert!(peers.contains(&"127.4.0.3:4321"), "announced peer not found: {found}");
    assert!(found["nodes_responded"].as_u64().expect("a count") >= 1, "{found}");
    assert!(found["messages_sent"].as_u64().expect("a count") >= 1, "{found}");

    let mut args = vec!["dht", "find-node", &id, "--listen", "127.4.0.5:0"];
    args.extend(common);
    let nodes = json(&args);
    assert_eq!(nodes["target"], id.as_str());
    let first = &nodes["nodes"][0];
    assert_eq!(first["id"], id.as_str(), "{nodes}");
    assert_eq!(first["addr"], addr.as_str(), "{nodes}");

    // SIGTERM: the node saves its state and exits 0.
    let pid = node.child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
    assert!(kill.success());
    let status = node.child.wait().expect("wait for the node");
    assert_eq!(status.code(), Some(0), "node exit status after SIGTERM");
    assert!(dir.path().join("mycel.redb").exists(), "state file saved");
}

#[test]
fn ping_without_answer_exits_1() {
    // A port nobody listens on (bound, then released).
    let addr = std::net::UdpSocket::bind("127.4.0.6:0").expect("bind").local_addr().expect("addr").to_string();
    let out = mycel(&["dht", "ping", &addr, "--listen", "127.4.0.7:0", "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no answer"), "{}", stderr(&out));
}

#[test]
fn demo_with_16_nodes_succeeds() {
    let out = mycel(&["demo", "--nodes", "16", "--seed", "16", "--json"]);
    assert!(out.status.success(), "demo failed:\n{}\n{}", stdout(&out), stderr(&out));
    let report: Value = serde_json::from_str(stdout(&out).trim()).expect("JSON report");
    assert_eq!(report["ok"], true);
    assert_eq!(report["nodes"], 16);
    let lookups = &report["dht"]["get_peers"];
    assert_eq!(lookups["found"], lookups["lookups"], "{report}");
    let items = report["items"]["items"].as_array().expect("items");
    let kinds: Vec<&str> = items.iter().filter_map(|i| i["kind"].as_str()).collect();
    assert_eq!(kinds, ["chk", "ssk", "ksk"], "{report}");
    assert!(items.iter().all(|i| i["read_back"] == 3 && i["stored"].as_u64() > Some(0)), "{report}");

    let out = mycel(&["demo", "--nodes", "16"]);
    assert!(out.status.success(), "demo failed:\n{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("OK: every announced info-hash was found"), "{}", stdout(&out));
    assert!(stdout(&out).contains("items:         CHK, SSK and KSK stored on"), "{}", stdout(&out));
}

/// `mycel dht node` with an IPv4 and an IPv6 `--listen` reports both. IPv6 is used only in
/// a network namespace of the test's own (`unshare -rn`, loopback up); without `unshare` the
/// test fails and says so.
#[test]
fn a_dual_stack_node_reports_both_addresses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script =
        r#"ip link set lo up && exec "$0" dht node --json --listen 127.0.0.1:0 --listen [::1]:0 --data-dir "$1""#;
    let mut child = Command::new("unshare")
        .args(["-rn", "sh", "-c", script, env!("CARGO_BIN_EXE_mycel")])
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("this test needs `unshare` (util-linux) and `ip` (iproute2) to make its own network namespace");
    let line = ready_line(&mut child);
    let _guard = NodeGuard { child };
    let ready: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|_| panic!("no ready line ({line:?}): did `unshare -rn` or `ip link set lo up` fail?"));
    let addrs: Vec<&str> = ready["addrs"].as_array().expect("addrs").iter().filter_map(Value::as_str).collect();
    assert_eq!(addrs.len(), 2, "{ready}");
    assert!(addrs[0].starts_with("127.0.0.1:") && addrs[1].starts_with("[::1]:"), "{ready}");
    assert!(!addrs[0].ends_with(":0") && !addrs[1].ends_with(":0"), "{ready}");
    assert_eq!(ready["addr"], addrs[0]);
}
