//! `mycel dht ...`: the long-running node and the one-shot queries.
//!
//! A one-shot command starts a temporary node (no data directory), joins through
//! `--bootstrap`, waits until it has nodes, does its one job, prints and stops. Every wait is
//! bounded by the `--timeout` deadline.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use mycel_net::{Dht, DhtConfig, GetPeersItem, Handle, NetError};
use tokio::time::Instant;

use crate::cli::{AnnounceArgs, DhtCommand, FindNodeArgs, GetPeersArgs, NodeArgs, OneShotArgs, PingArgs};
use crate::output::{self, AnnounceOutput, FindNodeOutput, GetPeersOutput, Listening, PingOutput};
use crate::UsageError;

/// How long `mycel dht node` waits before saying that joining takes a while.
const JOIN_NOTICE_AFTER: Duration = Duration::from_secs(30);
/// How often `mycel dht node` logs its routing table size (at info level).
const STATUS_EVERY: Duration = Duration::from_secs(60);

/// Runs one `mycel dht` subcommand.
pub async fn run(command: DhtCommand) -> Result<ExitCode> {
    match command {
        DhtCommand::Node(args) => node(args).await,
        DhtCommand::Ping(args) => ping(args).await,
        DhtCommand::GetPeers(args) => get_peers(args).await,
        DhtCommand::Announce(args) => announce(args).await,
        DhtCommand::FindNode(args) => find_node(args).await,
        DhtCommand::Put(args) => crate::item_cmd::put(args).await,
        DhtCommand::Get(args) => crate::item_cmd::get(args).await,
        DhtCommand::Sample(args) => crate::sample_cmd::sample(args).await,
    }
}

async fn node(args: NodeArgs) -> Result<ExitCode> {
    check_listen(&args.listen)?;
    let data_dir = args.data_dir.or_else(default_data_dir);
    if data_dir.is_none() {
        eprintln!(
            "mycel: no data directory (set --data-dir, XDG_DATA_HOME or HOME); the routing table will not be kept"
        );
    }
    let mut config = DhtConfig::new(args.listen[0]);
    config.listen = args.listen.clone();
    config.bootstrap = args.bootstrap.clone();
    config.data_dir = data_dir;
    config.node.rate_limit_per_sec = args.rate_limit;
    config.node.enforce_node_id = !args.no_enforce_node_id;
    config.node.rate_limit_burst = args.rate_limit.saturating_mul(2);
    let handle = Dht::spawn(config).await?;

    let (addr, addrs) = (handle.local_addr(), handle.local_addrs().to_vec());
    let id = handle.id().to_hex();
    if args.json {
        output::json(&Listening { event: "listening", addr, addrs, id })?;
    } else {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        output::line(&format!("listening on {} as node {id}", list.join(" and ")))?;
    }

    let progress = tokio::spawn(report_progress(handle.clone(), args.bootstrap.len()));
    let signal = wait_for_signal().await;
    progress.abort();
    eprintln!("mycel: {}, saving state and stopping", signal?);
    handle.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// `--listen` of `mycel dht node`: one address, or one IPv4 and one IPv6 address.
fn check_listen(listen: &[SocketAddr]) -> Result<()> {
    let v4 = listen.iter().filter(|a| a.is_ipv4()).count();
    let v6 = listen.len() - v4;
    if v4 > 1 || v6 > 1 {
        let list: Vec<String> = listen.iter().map(ToString::to_string).collect();
        return Err(UsageError(format!(
            "--listen takes at most one IPv4 and one IPv6 address (a dual-stack node), got {}",
            list.join(", ")
        ))
        .into());
    }
    Ok(())
}

/// Tells on stderr how joining goes, then logs the table size now and then.
async fn report_progress(handle: Handle, bootstrap_addrs: usize) {
    let restored = handle.restored_nodes();
    if restored > 0 || bootstrap_addrs > 0 {
        eprintln!(
            "mycel: joining the DHT through {restored} saved node{} and {bootstrap_addrs} bootstrap address{}",
            output::plural(restored),
            if bootstrap_addrs == 1 { "" } else { "es" }
        );
    } else {
        eprintln!("mycel: no bootstrap address and no saved routing table; waiting for other nodes to contact us");
    }
    loop {
        match handle.wait_bootstrapped(JOIN_NOTICE_AFTER).await {
            Ok(nodes) => {
                eprintln!("mycel: joined the DHT; {nodes} node{} in the routing table", output::plural(nodes));
                break;
            }
            Err(NetError::Timeout(_)) => eprintln!("mycel: not joined yet, still trying"),
            Err(_) => return,
        }
    }
    let mut tick = tokio::time::interval(STATUS_EVERY);
    loop {
        tick.tick().await;
        let Ok(stats) = handle.stats().await else { return };
        tracing::info!(
            routing_nodes = stats.routing_nodes,
            stored_peers = stats.stored_peers,
            active_lookups = stats.active_lookups,
            "status"
        );
    }
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
pub(crate) async fn wait_for_signal() -> Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").context("cannot listen for SIGINT"),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("cannot listen for Ctrl-C")?;
        Ok("Ctrl-C")
    }
}

/// `$XDG_DATA_HOME/mycel`, else `~/.local/share/mycel`.
fn default_data_dir() -> Option<PathBuf> {
    let from_env = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(dir) = from_env("XDG_DATA_HOME") {
        return Some(dir.join("mycel"));
    }
    from_env("HOME").map(|home| home.join(".local/share/mycel"))
}

/// A temporary node for one query, with the deadline from `--timeout`.
pub(crate) struct OneShot {
    pub(crate) handle: Handle,
    deadline: Instant,
    timeout: Duration,
}

impl OneShot {
    /// Starts the node; with `join`, requires `--bootstrap` and waits until the node has joined.
    pub(crate) async fn start(
        common: &OneShotArgs,
        command: &str,
        join: bool,
        target: Option<SocketAddr>,
    ) -> Result<Self> {
        if join && common.bootstrap.is_empty() {
            return Err(UsageError(format!(
                "'mycel dht {command}' needs at least one --bootstrap ADDR to join the DHT through"
            ))
            .into());
        }
        let timeout = Duration::from_secs_f64(common.timeout);
        let deadline = Instant::now() + timeout;
        let mut config = DhtConfig::new(listen_for(common.listen, target.or(common.bootstrap.first().copied())));
        config.bootstrap = common.bootstrap.clone();
        // A temporary node says so (BEP 43 read-only): others answer it but keep it out of
        // their routing tables, where it would only leave a dead entry behind.
        config.node.read_only = true;
        let handle = Dht::spawn(config).await?;
        let one_shot = OneShot { handle, deadline, timeout };
        if join {
            match one_shot.handle.wait_bootstrapped(one_shot.remaining()).await {
                Ok(nodes) => tracing::info!(nodes, "joined"),
                Err(NetError::Timeout(_)) => {
                    one_shot.stop().await;
                    bail!("could not join the DHT through {} within {:?}", list(&common.bootstrap), timeout);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(one_shot)
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Waits for `work` until the deadline.
    pub(crate) async fn within<T>(&self, what: &str, work: impl std::future::Future<Output = T>) -> Result<T> {
        tokio::time::timeout(self.remaining(), work)
            .await
            .map_err(|_| anyhow!("{what} did not finish within {:?}", self.timeout))
    }

    pub(crate) async fn stop(self) {
        if let Err(e) = self.handle.shutdown().await {
            tracing::warn!("stopping the temporary node: {e}");
        }
    }
}

async fn ping(args: PingArgs) -> Result<ExitCode> {
    let node = OneShot::start(&args.common, "ping", false, Some(args.addr)).await?;
    let answer = node.within("the ping", node.handle.ping(args.addr)).await;
    node.stop().await;
    let (info, rtt) = match answer? {
        Ok(answer) => answer,
        Err(NetError::NoAnswer { addr }) => bail!("no answer from {addr}"),
        Err(e) => return Err(e.into()),
    };
    let out = PingOutput::new(info, rtt);
    if args.common.json {
        output::json(&out)?;
    } else {
        output::line(&out.human())?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn get_peers(args: GetPeersArgs) -> Result<ExitCode> {
    let node = OneShot::start(&args.common, "get-peers", true, None).await?;
    let json = args.common.json;
    let mut stream = node.handle.get_peers(args.info_hash).await;
    let lookup = async {
        let mut peers = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                GetPeersItem::Peers(batch) => {
                    if !json {
                        for peer in &batch {
                            output::line(&peer.to_string())?;
                        }
                    }
                    peers.extend(batch);
                }
                GetPeersItem::Done(result) => return Ok((peers, result)),
            }
        }
        Err(anyhow::Error::from(NetError::Stopped))
    };
    let outcome = node.within("the get_peers lookup", lookup).await;
    node.stop().await;
    let (peers, result) = outcome??;
    let out = GetPeersOutput::new(args.info_hash, &peers, &result);
    if json {
        output::json(&out)?;
    } else {
        output::line(&out.human_summary())?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn announce(args: AnnounceArgs) -> Result<ExitCode> {
    let node = OneShot::start(&args.common, "announce", true, None).await?;
    let (port, announced_port) = match (args.implied_port, args.port) {
        (false, Some(port)) => (Some(port), port),
        _ => (None, node.handle.local_addr().port()),
    };
    let outcome = node.within("the announce", node.handle.announce(args.info_hash, port)).await;
    node.stop().await;
    let result = outcome??;
    let out = AnnounceOutput::new(args.info_hash, announced_port, &result);
    if args.common.json {
        output::json(&out)?;
    } else {
        output::line(&out.human())?;
    }
    if out.announced_to == 0 {
        eprintln!("error: no node accepted the announce");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

async fn find_node(args: FindNodeArgs) -> Result<ExitCode> {
    let node = OneShot::start(&args.common, "find-node", true, None).await?;
    let outcome = node.within("the find_node lookup", node.handle.find_node(args.target)).await;
    node.stop().await;
    let result = outcome??;
    let out = FindNodeOutput::new(args.target, &result);
    if args.common.json {
        output::json(&out)?;
    } else {
        output::line(&out.human())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The address of the temporary node: `--listen`, except that the default IPv4 wildcard
/// becomes the IPv6 one when the first remote address is IPv6 (a socket speaks one family).
fn listen_for(listen: SocketAddr, remote: Option<SocketAddr>) -> SocketAddr {
    let default: SocketAddr = (Ipv4Addr::UNSPECIFIED, 0).into();
    match remote {
        Some(remote) if remote.is_ipv6() && listen == default => (Ipv6Addr::UNSPECIFIED, 0).into(),
        _ => listen,
    }
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
