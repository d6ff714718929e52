//! BEP 32 through the driver: a network of IPv4-only, IPv6-only and dual-stack nodes.
//!
//! Network tests may use only 127.0.0.0/8 or a network namespace they create, so this test
//! runs itself again inside a fresh one (`unshare -rn`, loopback brought up: 127.0.0.1 and
//! ::1 private to the test) and checks that the inner run passed. Without `unshare` or `ip`
//! it fails and says so; it never skips silently.

// Driver tests use real sockets and processes, like the driver itself.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mycel_krpc::{Body, Message, Method, Query, Want};
use mycel_net::{Dht, DhtConfig, GetPeersItem, Handle, InfoHash, NodeId};

/// Set in the inner run: the file to create once the test body passed.
const INNER: &str = "MYCEL_TEST_NETNS_DONE";

/// True inside the namespace (run the body); outside, runs `name` inside one and panics if
/// that run failed or did not run the body.
fn in_own_netns(name: &str) -> bool {
    if std::env::var_os(INNER).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("path of the test binary");
    let dir = tempfile::tempdir().expect("temp dir");
    let done = dir.path().join("done");
    let status = Command::new("unshare")
        .args(["-rn", "sh", "-c", r#"ip link set lo up && exec "$0" "$@""#])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INNER, &done)
        .status();
    match status {
        Err(e) => panic!(
            "{name} runs in its own network namespace and needs `unshare` (util-linux) and `ip` (iproute2) \
             with user namespaces allowed: cannot run unshare: {e}"
        ),
        Ok(status) if !status.success() => panic!(
            "{name} failed inside its network namespace ({status}); see its output above. If unshare or \
             `ip link set lo up` failed, this host does not allow `unshare -rn` (user and network namespaces)."
        ),
        Ok(_) => assert!(done.exists(), "{name}: the run inside the namespace did not run the test body"),
    }
    false
}

fn mark_done() {
    let path = PathBuf::from(std::env::var_os(INNER).expect("inner run"));
    std::fs::write(path, b"ok").expect("write the done marker");
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

async fn spawn(n: u8, listen: &[&str], bootstrap: Vec<SocketAddr>, data_dir: Option<&Path>) -> Handle {
    let mut config = DhtConfig::new(addr(listen[0]));
    config.listen = listen.iter().map(|s| addr(s)).collect();
    config.bootstrap = bootstrap;
    config.data_dir = data_dir.map(Path::to_owned);
    config.seed = Some([n; 32]);
    config.id = Some(NodeId([n.wrapping_mul(29); 20]));
    // Every IPv6 node is on ::1: no per-IP limit.
    config.node.rate_limit_per_sec = 0;
    Dht::spawn(config).await.expect("spawn node")
}

/// Asks `to` for the nodes close to `target` from a plain socket on `from`; returns the
/// addresses in `nodes` and in `nodes6`.
fn find_node_raw(from: &str, to: SocketAddr, want: Want) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let socket = UdpSocket::bind(from).expect("bind probe");
    socket.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let q = Query { id: NodeId([0xee; 20]), method: Method::FindNode { target: NodeId([0x55; 20]), want } };
    let msg = Message { tx: b"fn", version: None, ip: None, read_only: true, body: Body::Query(q) };
    let mut bytes = Vec::new();
    msg.encode(&mut bytes);
    socket.send_to(&bytes, to).expect("send");
    let mut buf = [0u8; 2048];
    let (len, _) = socket.recv_from(&mut buf).expect("an answer");
    match Message::decode(&buf[..len]).expect("valid answer").body {
        Body::Response(r) => (r.nodes.iter().map(|n| n.addr).collect(), r.nodes6.iter().map(|n| n.addr).collect()),
        other => panic!("not a response: {other:?}"),
    }
}

#[test]
fn v4_v6_and_dual_stack_nodes_in_one_network() {
    if !in_own_netns("v4_v6_and_dual_stack_nodes_in_one_network") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(network());
    mark_done();
}

async fn network() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dual = spawn(1, &["127.0.0.1:0", "[::1]:0"], vec![], Some(dir.path())).await;
    let (dual4, dual6) = (dual.local_addr_v4().expect("an IPv4 socket"), dual.local_addr_v6().expect("an IPv6 socket"));
    assert_eq!(dual.local_addrs(), &[dual4, dual6]);

    let mut v4 = Vec::new();
    for n in 2..=5 {
        v4.push(spawn(n, &[&format!("127.0.0.{n}:0")], vec![dual4], None).await);
    }
    let mut v6 = Vec::new();
    for n in 10..=14 {
        v6.push(spawn(n, &["[::1]:0"], vec![dual6], None).await);
    }
    for node in v4.iter().chain(&v6) {
        node.wait_bootstrapped(Duration::from_secs(10)).await.expect("joins");
    }
    // The dual-stack node adds its queriers once they answer its verification ping.
    wait_for(|| async {
        let nodes = dual.routing_nodes().await.expect("running");
        nodes.iter().filter(|n| n.addr.is_ipv4()).count() >= 4 && nodes.iter().filter(|n| n.addr.is_ipv6()).count() >= 5
    })
    .await;

    // Asked with want n4+n6 (over IPv4), it answers both lists; without want, the querier's.
    let (nodes, nodes6) = find_node_raw("127.0.0.99:0", dual4, Want { n4: true, n6: true });
    assert!(!nodes.is_empty() && nodes.iter().all(SocketAddr::is_ipv4), "{nodes:?}");
    assert!(!nodes6.is_empty() && nodes6.iter().all(SocketAddr::is_ipv6), "{nodes6:?}");
    let (nodes, nodes6) = find_node_raw("[::1]:0", dual6, Want::default());
    assert!(nodes.is_empty() && !nodes6.is_empty(), "{nodes:?} {nodes6:?}");
    let (nodes, nodes6) = find_node_raw("127.0.0.99:0", dual4, Want::default());
    assert!(!nodes.is_empty() && nodes6.is_empty(), "{nodes:?} {nodes6:?}");

    // A newcomer that knows only the dual-stack node's IPv6 address finds IPv6 nodes it
    // learned through it.
    let newcomer = spawn(20, &["[::1]:0"], vec![dual6], None).await;
    newcomer.wait_bootstrapped(Duration::from_secs(10)).await.expect("joins");
    let target = v6[0].id();
    let found = newcomer.find_node(target).await.expect("running");
    assert_eq!(found.closest.first().map(|n| n.id), Some(target), "{found:?}");
    assert!(found.closest.iter().all(|n| n.addr.is_ipv6()), "{found:?}");
    assert!(found.closest.iter().filter(|n| n.id != dual.id()).count() >= 3, "{found:?}");

    // The dual-stack node's own lookups cover both families.
    let found = dual.find_node(NodeId([0x42; 20])).await.expect("running");
    assert!(found.closest.iter().any(|n| n.addr.is_ipv4()), "{found:?}");
    assert!(found.closest.iter().any(|n| n.addr.is_ipv6()), "{found:?}");
    // A second dual-stack node joining over IPv4 only learns the IPv6 nodes too: it asks
    // with want n4+n6 and follows `nodes6`.
    let second = spawn(30, &["127.0.0.30:0", "[::1]:0"], vec![dual4], None).await;
    second.wait_bootstrapped(Duration::from_secs(10)).await.expect("joins");
    let found = second.find_node(target).await.expect("running");
    assert_eq!(found.closest.first().map(|n| n.id), Some(target), "{found:?}");
    assert!(found.closest.iter().any(|n| n.addr.is_ipv4()), "{found:?}");
    second.shutdown().await.expect("stops");

    // An announce by an IPv6 node is found by another IPv6 node through the network.
    let info_hash = InfoHash([0x77; 20]);
    let announced = v6[1].announce(info_hash, Some(7777)).await.expect("running");
    assert!(announced.announced_to > 0, "{announced:?}");
    let (peers, _) = v6[3].get_peers(info_hash).await.collect().await.expect("running");
    assert!(peers.contains(&addr("[::1]:7777")), "{peers:?}");
    // And by a dual-stack lookup; an IPv4-only node sees no IPv6 node.
    let mut stream = dual.get_peers(info_hash).await;
    let mut from_dual = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            GetPeersItem::Peers(batch) => from_dual.extend(batch),
            GetPeersItem::Done(_) => break,
        }
    }
    assert!(from_dual.contains(&addr("[::1]:7777")), "{from_dual:?}");
    let found = v4[0].find_node(target).await.expect("running");
    assert!(found.closest.iter().all(|n| n.addr.is_ipv4()), "{found:?}");
    for node in &v4 {
        assert_eq!(node.io_stats().unroutable, 0, "an IPv4-only node was never handed an IPv6 address");
    }

    // The state file keeps nodes of both families: after a restart without bootstrap
    // addresses, the node rejoins both.
    dual.shutdown().await.expect("stops");
    let dual = spawn(1, &["127.0.0.1:0", "[::1]:0"], vec![], Some(dir.path())).await;
    assert!(dual.restored_nodes() >= 9, "restored {}", dual.restored_nodes());
    wait_for(|| async {
        let nodes = dual.routing_nodes().await.expect("running");
        nodes.iter().any(|n| n.addr.is_ipv4()) && nodes.iter().any(|n| n.addr.is_ipv6())
    })
    .await;

    for node in v4.into_iter().chain(v6).chain([newcomer, dual]) {
        node.shutdown().await.expect("stops");
    }
}

/// Polls `check` until it holds (10 s at most).
async fn wait_for<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not reached within 10 s");
}

/// Outside the namespace: nothing here sends IPv6 datagrams (they are dropped before sending).
#[test]
fn listen_addresses_are_checked_and_unreachable_families_dropped() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        for listen in [vec![], vec!["127.0.0.1:0", "127.0.0.2:0"], vec!["127.0.0.1:0", "[::1]:0", "127.0.0.2:0"]] {
            let mut config = DhtConfig::new(addr("127.0.0.1:0"));
            config.listen = listen.iter().map(|s| addr(s)).collect();
            let err = Dht::spawn(config).await.expect_err("refused");
            assert!(matches!(err, mycel_net::NetError::InvalidListen { .. }), "{err:?}");
        }
        // An IPv4-only node handed an IPv6 address drops the datagram and counts it.
        let mut config = DhtConfig::new(addr("127.0.0.1:0"));
        config.node.max_request_timeout = Duration::from_millis(300);
        let node = Dht::spawn(config).await.expect("spawn");
        assert_eq!(node.local_addr_v6(), None);
        let err = node.ping(addr("[::1]:6881")).await.expect_err("unreachable");
        assert!(matches!(err, mycel_net::NetError::NoAnswer { .. }), "{err:?}");
        let io = node.io_stats();
        assert_eq!((io.unroutable, io.datagrams_sent, io.send_errors), (1, 0, 0));
        node.shutdown().await.expect("stops");
    });
}
