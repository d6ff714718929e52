//! The command line: clap types and the value parsers that give one-line errors.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
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
    /// Make a .torrent file from a file or directory (hashed on all cores).
    Create(CreateArgs),
    /// Seed a file, directory or .torrent; prints the magnet link.
    Share(ShareArgs),
    /// Download a torrent (magnet link or .torrent file).
    Fetch(FetchArgs),
    /// Make an ed25519 key for signed DHT items (SSK): a 32-byte secret seed, mode 0600.
    Keygen(KeygenArgs),
    /// Simulate 10k–100k DHT nodes (mycel's real node code, or a baseline protocol) on virtual
    /// time over a modelled Internet, reproducibly from a seed, and report lookup figures.
    Sim(mycel_sim::cli::SimArgs),
}

/// `mycel keygen`
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (refuses to overwrite an existing file).
    #[arg(long, value_name = "KEYFILE")]
    pub out: PathBuf,
    /// Print the public key as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Torrent format flags shared by `create` and `share`.
#[derive(Debug, Args, Clone, Copy)]
#[group(multiple = false)]
pub struct FormatArgs {
    /// A v1 torrent (BEP 3: SHA-1 pieces).
    #[arg(long)]
    pub v1: bool,
    /// A v2 torrent (BEP 52: SHA-256 merkle trees).
    #[arg(long)]
    pub v2: bool,
    /// A hybrid torrent, readable by v1 and v2 clients (the default).
    #[arg(long)]
    pub hybrid: bool,
}

/// `mycel create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file or directory to describe.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    #[command(flatten)]
    pub format: FormatArgs,
    /// Piece size in bytes (a power of two from 16 KiB; K and M suffixes allowed)
    /// [default: about 1000-2000 pieces].
    #[arg(long, value_name = "N", value_parser = parse_size)]
    pub piece_size: Option<u32>,
    /// Where to write the .torrent file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}

/// `mycel share`
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// A file or directory (a torrent is made in memory), or a .torrent file whose data
    /// is in --dir.
    #[arg(value_name = "PATH|FILE.torrent")]
    pub path: PathBuf,
    #[command(flatten)]
    pub format: FormatArgs,
    /// Piece size when making a torrent from PATH.
    #[arg(long, value_name = "N", value_parser = parse_size)]
    pub piece_size: Option<u32>,
    /// Directory holding the data of a .torrent [default: the .torrent's directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// TCP (peers) and UDP (DHT) address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:6881", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// A DHT node to join through; repeat for several.
    #[arg(long, value_name = "ADDR", value_parser = parse_remote)]
    pub bootstrap: Vec<SocketAddr>,
    /// Print one JSON line when seeding starts.
    #[arg(long)]
    pub json: bool,
    /// Upload limit in bytes per second (0: none).
    #[arg(long, value_name = "BPS", default_value_t = 0, hide = true)]
    pub upload_limit: u64,
    /// Message Stream Encryption (the obfuscated handshake libtorrent tries first): `off`
    /// dials in plaintext and accepts both; `prefer` dials with MSE (the peer picks
    /// plaintext or RC4) and falls back to plaintext; `require` dials and accepts only
    /// RC4-encrypted connections.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = EncryptionArg::Off)]
    pub encryption: EncryptionArg,
}

/// `--encryption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncryptionArg {
    /// Dial in plaintext; accept plain and encrypted peers.
    Off,
    /// Dial with MSE, fall back to plaintext; accept both.
    Prefer,
    /// RC4-encrypted connections only.
    Require,
}

impl From<EncryptionArg> for mycel_net::torrent::Encryption {
    fn from(e: EncryptionArg) -> Self {
        match e {
            EncryptionArg::Off => mycel_net::torrent::Encryption::Off,
            EncryptionArg::Prefer => mycel_net::torrent::Encryption::Prefer,
            EncryptionArg::Require => mycel_net::torrent::Encryption::Require,
        }
    }
}

/// `mycel fetch`
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// A magnet link or a .torrent file.
    #[arg(value_name = "MAGNET|FILE.torrent")]
    pub source: String,
    /// Directory to download into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A peer to connect to (IP:PORT); repeat for several.
    #[arg(long, value_name = "ADDR", value_parser = parse_remote)]
    pub peer: Vec<SocketAddr>,
    /// A DHT node to join through; repeat for several. Without one, only --peer and the
    /// magnet's x.pe peers are used.
    #[arg(long, value_name = "ADDR", value_parser = parse_remote)]
    pub bootstrap: Vec<SocketAddr>,
    /// TCP (peers) and UDP (DHT) address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:0", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Keep seeding after the download, until SIGINT/SIGTERM.
    #[arg(long)]
    pub seed: bool,
    /// Print a JSON summary at the end: bytes, verified, downloaded, uploaded, seconds,
    /// mb_per_s, peers_used, bad_pieces, wasted (unused block bytes), banned, protocol_errors,
    /// pex_peers_learnt, mse (handshakes: plaintext, rc4, failed), and per peer address the wire
    /// bytes received (`from`) and sent (`to`).
    #[arg(long)]
    pub json: bool,
    /// Hash all existing data again instead of trusting the resume data.
    #[arg(long)]
    pub recheck: bool,
    /// Where resume data is kept [default: OUT/.mycel].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Give up after this many seconds (exit 1).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<f64>,
    /// Download only this file: its path inside the torrent (`dir/file`, with or without
    /// the torrent's name in front); repeat for several. Pieces shared with other files
    /// are fetched too, other files are not created unless such a piece reaches them.
    /// Exits 0 once the chosen files are verified; 2 if PATH is not in the torrent.
    #[arg(long, value_name = "PATH")]
    pub only: Vec<String>,
    /// Message Stream Encryption (the obfuscated handshake libtorrent tries first): `off`
    /// dials in plaintext and accepts both; `prefer` dials with MSE (the peer picks
    /// plaintext or RC4) and falls back to plaintext; `require` dials and accepts only
    /// RC4-encrypted connections.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = EncryptionArg::Off)]
    pub encryption: EncryptionArg,
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
    /// Store a small value (at most 1000 bytes) in the DHT: content-hash (--immutable),
    /// signed (--key and --name) or keyword (--keyword) key. Prints the key to read it with.
    Put(ItemPutArgs),
    /// Read a value stored with `mycel dht put`, checking its hash or signature.
    Get(ItemGetArgs),
    /// Ask one node for a sample of the info-hashes it stores (BEP 51).
    Sample(SampleArgs),
}

/// `mycel dht sample`
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// The node to ask (HOST:PORT).
    #[arg(value_name = "ADDR", value_parser = parse_remote)]
    pub addr: SocketAddr,
    /// Where the nodes it returns should be close to, 40 hex digits [default: random].
    #[arg(long, value_name = "ID", value_parser = parse_node_id)]
    pub target: Option<NodeId>,
    #[command(flatten)]
    pub common: OneShotArgs,
}

/// `mycel dht put`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["immutable", "key", "keyword"])))]
pub struct ItemPutArgs {
    /// CHK: store VALUE under its SHA-1 hash; it can never change.
    #[arg(long)]
    pub immutable: bool,
    /// SSK: sign with this key file (from `mycel keygen`); needs --name.
    #[arg(long, value_name = "KEYFILE", requires = "name")]
    pub key: Option<PathBuf>,
    /// SSK: the item's name under the key (the BEP 44 salt, at most 64 bytes).
    #[arg(long, value_name = "NAME", requires = "key")]
    pub name: Option<String>,
    /// KSK: a key pair derived from these words; anyone who knows them can write.
    #[arg(long, value_name = "WORDS")]
    pub keyword: Option<String>,
    /// Replace only the version read just before (BEP 44 compare-and-swap); fails if another
    /// writer got there first.
    #[arg(long, conflicts_with = "immutable")]
    pub cas: bool,
    /// The value, or @FILE to read it from a file.
    #[arg(value_name = "VALUE|@FILE")]
    pub value: String,
    #[command(flatten)]
    pub common: OneShotArgs,
}

/// `mycel dht get`
#[derive(Debug, Args)]
pub struct ItemGetArgs {
    /// A CHK (40 hex digits) or an SSK (PUBKEY/NAME: 64 hex digits, a slash, the name).
    #[arg(value_name = "KEY", required_unless_present = "keyword", conflicts_with = "keyword")]
    pub key: Option<String>,
    /// KSK: read the value stored under these words (not authenticated).
    #[arg(long, value_name = "WORDS")]
    pub keyword: Option<String>,
    #[command(flatten)]
    pub common: OneShotArgs,
}

/// `mycel dht node`
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// UDP address to listen on; give it twice, an IPv4 and an IPv6 address, for a dual-stack
    /// node (BEP 32), e.g. --listen 0.0.0.0:6881 --listen [::]:6881.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:6881", value_parser = parse_listen)]
    pub listen: Vec<SocketAddr>,
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
    /// Trust nodes whose id does not match their public IP (BEP 42), as libtorrent does by
    /// default. Without this flag such nodes get no write token, and their answers neither end
    /// lookups nor make them put/announce targets (their nodes are still followed); local and
    /// private addresses are exempt. Our own id is derived from our public IP either way.
    #[arg(long)]
    pub no_enforce_node_id: bool,
    /// Print the ready line as JSON: {"event":"listening","addr":...,"addrs":[...],"id":...}
    /// (`addr` is the first listen address).
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
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=16))]
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

/// A byte count with an optional K or M suffix (binary units).
fn parse_size(s: &str) -> Result<u32, String> {
    let (num, mult) = match s.trim_end_matches(['B', 'b', 'i']).chars().last() {
        Some('K' | 'k') => (&s[..s.find(['K', 'k']).unwrap_or(s.len())], 1024u64),
        Some('M' | 'm') => (&s[..s.find(['M', 'm']).unwrap_or(s.len())], 1 << 20),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| n.is_power_of_two() && *n >= 16 * 1024)
        .ok_or_else(|| "expected a power of two of at least 16 KiB, e.g. 262144 or 256K".to_owned())
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
        assert_eq!(parse_size("256K"), Ok(256 * 1024));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("32768"), Ok(32768));
        assert!(parse_size("1000").is_err());
    }
}
