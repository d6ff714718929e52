//! The command line: clap types and the value parsers that give one-line errors.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mycel_dht::{InfoHash, NodeId};

/// mycel: a peer-to-peer node speaking BitTorrent's Mainline DHT.
#[derive(Debug, Parser)]
#[command(name = "mycel", version, propagate_version = true)]
pub struct Cli {
    /// Log filter for stderr: a level (error, warn, info, debug, trace) or a RUST_LOG-style
    /// directive list. Overrides RUST_LOG; the default is warn.
    #[arg(long = "log", value_name = "LEVEL", global = true)]
    pub log: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a DHT node or a one-shot DHT query.
    #[command(subcommand)]
    Dht(DhtCommand),
    /// Start a small network of real nodes on loopback, announce and look up, and report.
    Demo(DemoArgs),
}

/// `mycel dht ...`
#[derive(Debug, Subcommand)]
pub enum DhtCommand {
    /// Run a long-lived DHT node until SIGINT/SIGTERM; prints one line when it listens.
    Node(NodeArgs),
    /// Ask one node whether it is alive, and how fast it answers.
    Ping(PingArgs),
    /// Look up the peers of a torrent by its info-hash.
    GetPeers(GetPeersArgs),
    /// Tell the nodes closest to an info-hash that we are a peer of that torrent.
    Announce(AnnounceArgs),
    /// Look up the nodes closest to an id.
    FindNode(FindNodeArgs),
}

/// `mycel dht node`
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// UDP address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:6881", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// A node or router to join through (HOST:PORT); repeat for several. Not needed when a
    /// routing table was saved by an earlier run.
    #[arg(long, value_name = "ADDR", value_parser = parse_remote)]
    pub bootstrap: Vec<SocketAddr>,
    /// Where the node id and routing table are kept across restarts [default:
    /// $XDG_DATA_HOME/mycel or ~/.local/share/mycel].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Datagrams per second accepted from one IP address before the rest are dropped unread
    /// (bursts of twice that pass); 0 turns the limit off, for benchmarks and trusted networks.
    #[arg(long, value_name = "N", default_value_t = 250)]
    pub rate_limit: u32,
    /// Print the ready line as JSON: {"event":"listening","addr":...,"id":...}.
    #[arg(long)]
    pub json: bool,
}

/// Flags shared by the one-shot commands, which start a temporary node.
#[derive(Debug, Args)]
pub struct OneShotArgs {
    /// A node or router to join through (HOST:PORT); repeat for several. Required for lookups.
    #[arg(long, value_name = "ADDR", value_parser = parse_remote)]
    pub bootstrap: Vec<SocketAddr>,
    /// UDP address of the temporary node.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:0", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Give up after this many seconds (joining and the query together).
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_timeout)]
    pub timeout: f64,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `mycel dht ping`
#[derive(Debug, Args)]
pub struct PingArgs {
    /// The node to ping (HOST:PORT).
    #[arg(value_name = "ADDR", value_parser = parse_remote)]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub common: OneShotArgs,
}

/// `mycel dht get-peers`
#[derive(Debug, Args)]
pub struct GetPeersArgs {
    /// The torrent's info-hash, 40 hex digits.
    #[arg(value_name = "INFOHASH", value_parser = parse_info_hash)]
    pub info_hash: InfoHash,
    #[command(flatten)]
    pub common: OneShotArgs,
}

/// `mycel dht announce`
#[derive(Debug, Args)]
pub struct AnnounceArgs {
    /// The torrent's info-hash, 40 hex digits.
    #[arg(value_name = "INFOHASH", value_parser = parse_info_hash)]
    pub info_hash: InfoHash,
    /// The TCP/uTP port peers should connect to.
    #[arg(long, value_name = "P", required_unless_present = "implied_port")]
    pub port: Option<u16>,
    /// Announce our UDP source port instead of --port (BEP 5 implied_port; wins over --port).
    #[arg(long)]
    pub implied_port: bool,
    #[command(flatten)]
    pub common: OneShotArgs,
}

/// `mycel dht find-node`
#[derive(Debug, Args)]
pub struct FindNodeArgs {
    /// The id to look for, 40 hex digits.
    #[arg(value_name = "ID", value_parser = parse_node_id)]
    pub target: NodeId,
    #[command(flatten)]
    pub common: OneShotArgs,
}

/// `mycel demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many nodes to start (each on its own 127.x.y.z address).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(4..=5000))]
    pub nodes: u16,
    /// Seed for node ids, info-hashes and the choice of nodes; printed so a run can be
    /// repeated [default: random].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Parallel requests per lookup (Kademlia's α) on every node.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub alpha: u8,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_info_hash(s: &str) -> Result<InfoHash, String> {
    s.parse().map_err(|_| "expected 40 hex digits".to_owned())
}

fn parse_node_id(s: &str) -> Result<NodeId, String> {
    s.parse().map_err(|_| "expected 40 hex digits".to_owned())
}

/// A local address: a literal IP and port.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| "expected IP:PORT, e.g. 0.0.0.0:6881 or [::]:6881".to_owned())
}

/// A remote address: a literal IP:PORT, or HOST:PORT resolved once (first address wins).
fn parse_remote(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let expected = "expected IP:PORT or HOST:PORT, e.g. 127.0.0.1:6881";
    if !s.contains(':') {
        return Err(expected.to_owned());
    }
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("{s} resolves to no address")),
        Err(e) => Err(format!("{expected} ({e})")),
    }
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => Ok(secs),
        _ => Err("expected a number of seconds between 0 and 86400".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn value_parsers_explain_what_they_expect() {
        assert_eq!(parse_info_hash("xyz").err().as_deref(), Some("expected 40 hex digits"));
        assert!(parse_node_id(&"ab".repeat(20)).is_ok());
        assert!(parse_remote("127.0.0.1:6881").is_ok());
        assert!(parse_remote("nonsense").is_err());
        assert!(parse_listen("localhost:1").is_err());
        assert!(parse_timeout("0").is_err() && parse_timeout("2.5").is_ok());
    }
}
