//! What the commands print: JSON objects (one per line, stable field names that scripts and
//! other tools rely on) and their human-readable forms.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mycel_dht::{InfoHash, LookupResult, NodeId, NodeInfo};
use serde::Serialize;

/// `mycel dht node`: the ready line.
#[derive(Debug, Serialize)]
pub struct Listening {
    /// Always `"listening"`.
    pub event: &'static str,
    /// The bound UDP address (the first one of a dual-stack node).
    pub addr: SocketAddr,
    /// Every bound UDP address: one, or an IPv4 and an IPv6 address.
    pub addrs: Vec<SocketAddr>,
    /// Our node id, hex.
    pub id: String,
}

/// `mycel dht ping`.
#[derive(Debug, Serialize)]
pub struct PingOutput {
    /// The address that answered.
    pub addr: SocketAddr,
    /// Its node id, hex.
    pub id: String,
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
}

/// `mycel dht get-peers`.
#[derive(Debug, Serialize)]
pub struct GetPeersOutput {
    /// The info-hash looked up, hex.
    pub info_hash: String,
    /// Peers found, `ip:port`.
    pub peers: Vec<String>,
    /// Nodes that answered the lookup.
    pub nodes_responded: usize,
    /// Requests the lookup sent.
    pub messages_sent: usize,
    /// Duration of the lookup in milliseconds.
    pub duration_ms: f64,
}

/// `mycel dht announce`.
#[derive(Debug, Serialize)]
pub struct AnnounceOutput {
    /// The info-hash announced, hex.
    pub info_hash: String,
    /// The port announced.
    pub port: u16,
    /// Nodes that acknowledged the announce.
    pub announced_to: usize,
    /// Duration of lookup and announce in milliseconds.
    pub duration_ms: f64,
}

/// `mycel dht find-node`.
#[derive(Debug, Serialize)]
pub struct FindNodeOutput {
    /// The id looked for, hex.
    pub target: String,
    /// The closest nodes that answered, nearest first.
    pub nodes: Vec<NodeOutput>,
    /// Duration of the lookup in milliseconds.
    pub duration_ms: f64,
}

/// One node in JSON output.
#[derive(Debug, Serialize)]
pub struct NodeOutput {
    /// Node id, hex.
    pub id: String,
    /// `ip:port`.
    pub addr: String,
}

impl PingOutput {
    pub fn new(node: NodeInfo, rtt: Duration) -> Self {
        PingOutput { addr: node.addr, id: node.id.to_hex(), rtt_ms: millis(rtt) }
    }

    pub fn human(&self) -> String {
        format!("{} answered as {} in {} ms", self.addr, self.id, fmt_ms(self.rtt_ms))
    }
}

impl GetPeersOutput {
    pub fn new(info_hash: InfoHash, peers: &[SocketAddr], result: &LookupResult) -> Self {
        GetPeersOutput {
            info_hash: info_hash.to_hex(),
            peers: peers.iter().map(SocketAddr::to_string).collect(),
            nodes_responded: result.responses,
            messages_sent: result.messages_sent,
            duration_ms: millis(result.duration),
        }
    }

    /// The summary line printed after the peers in human mode.
    pub fn human_summary(&self) -> String {
        format!(
            "{} peer{} for {} from {} node{} ({} messages) in {} ms",
            self.peers.len(),
            plural(self.peers.len()),
            self.info_hash,
            self.nodes_responded,
            plural(self.nodes_responded),
            self.messages_sent,
            fmt_ms(self.duration_ms)
        )
    }
}

impl AnnounceOutput {
    pub fn new(info_hash: InfoHash, port: u16, result: &LookupResult) -> Self {
        AnnounceOutput {
            info_hash: info_hash.to_hex(),
            port,
            announced_to: result.announced_to,
            duration_ms: millis(result.duration),
        }
    }

    pub fn human(&self) -> String {
        format!(
            "announced {} port {} to {} node{} in {} ms",
            self.info_hash,
            self.port,
            self.announced_to,
            plural(self.announced_to),
            fmt_ms(self.duration_ms)
        )
    }
}

impl FindNodeOutput {
    pub fn new(target: NodeId, result: &LookupResult) -> Self {
        FindNodeOutput {
            target: target.to_hex(),
            nodes: result.closest.iter().map(|n| NodeOutput { id: n.id.to_hex(), addr: n.addr.to_string() }).collect(),
            duration_ms: millis(result.duration),
        }
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!("{} {}\n", node.id, node.addr));
        }
        out.push_str(&format!(
            "{} node{} closest to {} in {} ms",
            self.nodes.len(),
            plural(self.nodes.len()),
            self.target,
            fmt_ms(self.duration_ms)
        ));
        out
    }
}

/// Writes one line to stdout and flushes it (readers wait for whole lines).
pub fn line(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()
}

/// Writes a value as one line of JSON to stdout.
pub fn json<T: Serialize>(value: &T) -> io::Result<()> {
    let text = serde_json::to_string(value).map_err(io::Error::other)?;
    line(&text)
}

/// Milliseconds with microsecond precision, for JSON and display.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Milliseconds for people: one decimal, two below 1 ms (loopback answers take microseconds).
pub fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_field_names_are_the_documented_ones() {
        let node = NodeInfo { id: NodeId([0xab; 20]), addr: "127.0.0.9:6881".parse().expect("literal") };
        let ping = PingOutput::new(node, Duration::from_micros(1234));
        let value = serde_json::to_value(&ping).expect("serialize");
        assert_eq!(value["addr"], "127.0.0.9:6881");
        assert_eq!(value["id"], "ab".repeat(20));
        assert_eq!(value["rtt_ms"], 1.234);
        assert_eq!(ping.human(), format!("127.0.0.9:6881 answered as {} in 1.2 ms", "ab".repeat(20)));
    }
}
