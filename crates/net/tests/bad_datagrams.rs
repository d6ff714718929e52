//! Hostile input over a real socket: garbage and truncated datagrams and a query with a
//! malformed field. The node stays up, answers the malformed query with KRPC error 203 and
//! counts every one of them as malformed.

use std::net::SocketAddr;
use std::time::Duration;

use mycel_net::{Dht, DhtConfig, Handle};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// A bencoded query with the given transaction id, method and already-encoded `a` dictionary.
fn query(tx: &[u8], method: &str, args: &[u8]) -> Vec<u8> {
    let mut out = b"d1:a".to_vec();
    out.extend_from_slice(args);
    out.extend_from_slice(format!("1:q{}:{method}1:t{}:", method.len(), tx.len()).as_bytes());
    out.extend_from_slice(tx);
    out.extend_from_slice(b"1:y1:qe");
    out
}

/// `d2:id<len>:<id>e`, with an id of any length (20 is the valid one).
fn id_args(id_len: usize) -> Vec<u8> {
    let mut out = format!("d2:id{id_len}:").into_bytes();
    out.extend(std::iter::repeat_n(b'a', id_len));
    out.push(b'e');
    out
}

/// The next reply carrying this transaction id (`1:t2:xx`); replies to earlier garbage whose
/// transaction id the node could read are skipped.
async fn recv_reply(socket: &UdpSocket, tx: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut buf = vec![0u8; 2048];
        let (len, _) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .expect("the node answers within 3 s")
            .expect("recv_from");
        buf.truncate(len);
        if contains(&buf, tx) {
            return buf;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn malformed_count(node: &Handle) -> u64 {
    node.stats().await.expect("node still running").dropped.malformed
}

#[tokio::test]
async fn garbage_is_counted_and_malformed_queries_get_error_203() {
    let node = Dht::spawn(DhtConfig::new("127.3.0.1:0".parse().expect("literal address"))).await.expect("spawn");
    let target: SocketAddr = node.local_addr();
    let socket = UdpSocket::bind("127.3.0.2:0").await.expect("bind raw socket");

    let mut garbage: Vec<Vec<u8>> = vec![
        b"hello, world".to_vec(),
        b"d".to_vec(),
        b"de".to_vec(),
        b"i42e".to_vec(),
        b"d1:ad2:id20:aaaa".to_vec(),         // truncated mid-string
        b"d1:t2:aa1:y1:q1:q4:pinge".to_vec(), // keys out of order, no `a`
        b"l1:t1:ye".to_vec(),                 // a list, not a dictionary
        vec![0xff; 3000],                     // longer than the receive buffer
    ];
    let truncated_ping = query(b"tr", "ping", &id_args(20));
    garbage.push(truncated_ping[..truncated_ping.len() - 3].to_vec());
    for datagram in &garbage {
        socket.send_to(datagram, target).await.expect("send garbage");
    }

    // Queries whose transaction id is readable but whose arguments are not valid.
    let bad_queries = [
        (b"1:t2:t1", query(b"t1", "ping", &id_args(19))),
        (b"1:t2:t2", query(b"t2", "find_node", &id_args(20))), // no target
        (b"1:t2:t3", query(b"t3", "get_peers", b"d2:id20:aaaaaaaaaaaaaaaaaaaa9:info_hash5:shorte")),
    ];
    for (tx, bad) in &bad_queries {
        socket.send_to(bad, target).await.expect("send malformed query");
        let reply = recv_reply(&socket, *tx).await;
        assert!(contains(&reply, b"1:y1:e"), "not an error message: {:?}", String::from_utf8_lossy(&reply));
        assert!(contains(&reply, b"1:eli203e"), "not error 203: {:?}", String::from_utf8_lossy(&reply));
    }

    let expected = (garbage.len() + bad_queries.len()) as u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    while malformed_count(&node).await < expected {
        assert!(Instant::now() < deadline, "malformed counter stuck at {} < {expected}", malformed_count(&node).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Still alive and serving: a valid ping gets a response.
    let valid_ping = query(b"ok", "ping", &id_args(20));
    socket.send_to(&valid_ping, target).await.expect("send ping");
    let reply = recv_reply(&socket, b"1:t2:ok").await;
    assert!(contains(&reply, b"1:y1:r"), "not a response: {:?}", String::from_utf8_lossy(&reply));

    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn unreachable_destinations_do_not_stop_the_node() {
    let node = Dht::spawn(DhtConfig::new("127.3.0.3:0".parse().expect("literal address"))).await.expect("spawn");
    // Nothing listens there: the kernel answers with ICMP port unreachable. Linux drops it for
    // an unconnected socket (it would surface as ConnectionRefused from recv_from on a
    // connected one, with IP_RECVERR, or on Windows); either way the node must carry on.
    let closed = {
        let probe = UdpSocket::bind("127.3.0.4:0").await.expect("bind probe");
        probe.local_addr().expect("probe address")
    };
    let (a, b, c) = tokio::join!(node.ping(closed), node.ping(closed), node.ping(closed));
    for result in [a, b, c] {
        let err = result.expect_err("nobody answers");
        assert!(matches!(err, mycel_net::NetError::NoAnswer { addr } if addr == closed), "{err}");
    }
    let stats = node.stats().await.expect("still running after the ICMP errors");
    assert!(stats.queries_out.ping >= 3, "{stats:?}");
    node.shutdown().await.expect("clean shutdown");
}
