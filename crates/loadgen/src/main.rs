//! `mycel-loadgen`: floods one DHT node with KRPC queries and measures answered queries per
//! second.
//!
//! ```text
//! mycel-loadgen --target 127.0.0.2:6881 --duration 10 --sources 8 \
//!     --mix find_node:50,get_peers:50 --window 16 --json
//! ```
//!
//! Each of the `--sources` sources is a UDP socket bound to its own loopback address
//! (`127.200.x.y:0`) on its own thread. Distinct source IPs matter: DHT nodes rate-limit per
//! IP (libtorrent's `dht_block_ratelimit`, mycel's own limiter), and a single source IP would
//! measure the limiter rather than the node. Every 127/8 address routes to loopback on Linux,
//! so nothing needs configuring. Each source keeps at most `--window` queries in flight: it
//! sends a window, then one new query per reply; after 50 ms without any datagram it counts
//! what is in flight as lost and fills the window again, so losses never stall it.
//!
//! Only IPv4 loopback targets are accepted: this tool floods, and must never point elsewhere.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// It is a benchmark tool, not a sans-IO core: it owns sockets, threads, the clock and its seed.

mod query;
mod source;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::query::Mix;
use crate::source::{Counts, SourceConfig};

/// Floods one DHT node with KRPC queries and reports answered queries per second.
#[derive(Parser, Debug)]
#[command(name = "mycel-loadgen", version)]
struct Args {
    /// The node under test, an IPv4 loopback address (127.x.y.z:port).
    #[arg(long)]
    target: SocketAddr,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Number of sockets, each on its own loopback IP (127.200.x.y) and thread.
    #[arg(long, default_value_t = 4)]
    sources: u16,
    /// Query mix as name:weight pairs; names are ping, find_node, get_peers.
    #[arg(long, default_value = "find_node:50,get_peers:50")]
    mix: String,
    /// Queries in flight per source.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Milliseconds after which an unanswered query counts as a timeout.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Set the BEP 43 read-only flag, so the target does not add the sources to its table.
    #[arg(long)]
    read_only: bool,
    /// Seed for ids, targets and info-hashes (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The most sources: 127.200.0.1 ..= 127.200.255.254 would allow more, but threads cost.
const MAX_SOURCES: u16 = 1024;

fn main() -> ExitCode {
    let args = Args::parse();
    let configs = match configs(&args) {
        Ok(configs) => configs,
        Err(message) => {
            eprintln!("mycel-loadgen: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&configs) {
        Ok((counts, elapsed)) => {
            report(&args, &counts, elapsed);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("mycel-loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Validates the arguments and builds one config per source.
fn configs(args: &Args) -> Result<Vec<SourceConfig>, String> {
    match args.target {
        SocketAddr::V4(v4) if v4.ip().is_loopback() && v4.port() != 0 => {}
        other => return Err(format!("target {other} is not an IPv4 loopback address with a port")),
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 3600.0) {
        return Err(format!("duration {} is not in (0, 3600] seconds", args.duration));
    }
    if args.sources == 0 || args.sources > MAX_SOURCES {
        return Err(format!("sources {} is not in 1..={MAX_SOURCES}", args.sources));
    }
    if args.window == 0 || args.window > 4096 {
        return Err(format!("window {} is not in 1..=4096", args.window));
    }
    let mix = Mix::parse(&args.mix)?;
    let seed = args.seed.unwrap_or_else(clock_seed);
    Ok((0..args.sources)
        .map(|i| SourceConfig {
            bind: source_addr(i),
            target: args.target,
            window: args.window,
            duration: Duration::from_secs_f64(args.duration),
            mix: mix.clone(),
            seed: seed.wrapping_add(u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            read_only: args.read_only,
            query_timeout: Duration::from_millis(args.timeout_ms.max(1)),
        })
        .collect())
}

/// Source `i` binds 127.200.x.y with y in 1..=254, never a .0 or .255 address.
fn source_addr(i: u16) -> SocketAddr {
    let [x, y] = [(i / 254) as u8, (i % 254 + 1) as u8];
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 200, x, y), 0))
}

fn clock_seed() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0x6d79_6365_6c00_0001)
}

/// Runs every source on its own thread; the elapsed time is the longest source's.
fn run(configs: &[SourceConfig]) -> Result<(Counts, Duration), String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = configs.iter().map(|config| scope.spawn(move || source::run(config))).collect();
        let mut total = Counts::default();
        let mut elapsed = Duration::ZERO;
        let mut first_error = None;
        for handle in handles {
            match handle.join() {
                Ok(Ok((counts, took))) => {
                    total.add(&counts);
                    elapsed = elapsed.max(took);
                }
                Ok(Err(e)) => {
                    first_error.get_or_insert_with(|| e.to_string());
                }
                Err(_) => {
                    first_error.get_or_insert_with(|| "a source thread panicked".to_owned());
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok((total, elapsed)),
        }
    })
}

fn report(args: &Args, counts: &Counts, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let per_s = if secs > 0.0 { counts.answered as f64 / secs } else { 0.0 };
    if args.json {
        let out = serde_json::json!({
            "sent": counts.sent,
            "answered": counts.answered,
            "errors": counts.errors,
            "timeouts": counts.timeouts,
            "late": counts.late,
            "other": counts.other,
            "duration_s": round3(secs),
            "answered_per_s": round3(per_s),
            "target": args.target.to_string(),
            "sources": args.sources,
            "window": args.window,
            "mix": args.mix,
        });
        println!("{out}");
    } else {
        println!("target {} | {} sources x window {} | mix {}", args.target, args.sources, args.window, args.mix);
        println!("sent        {}", counts.sent);
        println!("answered    {}", counts.answered);
        println!("errors      {}", counts.errors);
        println!("timeouts    {}", counts.timeouts);
        println!("late        {}", counts.late);
        println!("duration_s  {secs:.3}");
        println!("answered/s  {per_s:.1}");
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
