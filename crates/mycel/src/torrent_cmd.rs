//! `mycel create`, `mycel share` and `mycel fetch`: making torrents, seeding and downloading.
//!
//! Exit codes follow `main`: 0 success (for `fetch`: every piece verified), 1 the work
//! failed (disk error, timeout, interrupted), 2 bad input (a malformed torrent or magnet).

use std::collections::HashMap;
use std::fs::File;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mycel_metainfo::{CreateOptions, FileSpec, Metainfo, PieceHashes, TorrentBuilder, TorrentVersion};
use mycel_net::torrent::{
    select_files, AddOptions, EncryptionStats, Existing, Progress, Session, SessionConfig, SessionHandle, TorrentError,
    TorrentSource,
};
use mycel_net::{Dht, DhtConfig, Handle};
use serde::Serialize;

use crate::cli::{CreateArgs, FetchArgs, FormatArgs, ShareArgs};
use crate::dht_cmd::wait_for_signal;
use crate::{output, UsageError};

/// `mycel create`.
pub async fn create(args: CreateArgs) -> Result<ExitCode> {
    let bytes = make_torrent(&args.path, args.format, args.piece_size)?;
    std::fs::write(&args.output, &bytes).with_context(|| format!("cannot write {}", args.output.display()))?;
    let m = Metainfo::from_bytes(&bytes).context("the torrent just made does not parse")?;
    output::line(&m.magnet().to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `mycel share`.
pub async fn share(args: ShareArgs) -> Result<ExitCode> {
    let is_torrent = args.path.extension().is_some_and(|e| e == "torrent") && args.path.is_file();
    let (metainfo, dir, existing) = if is_torrent {
        let m = read_torrent(&args.path)?;
        let dir = args.dir.clone().unwrap_or_else(|| args.path.parent().map(Path::to_path_buf).unwrap_or_default());
        (m, dir, Existing::Recheck)
    } else {
        let bytes = make_torrent(&args.path, args.format, args.piece_size)?;
        let m = Metainfo::from_bytes(&bytes).context("the torrent just made does not parse")?;
        let dir = args.path.canonicalize()?.parent().map(Path::to_path_buf).unwrap_or_default();
        (m, dir, Existing::Complete)
    };
    let dht = start_dht(args.listen, &args.bootstrap, true).await?;
    let mut cfg = SessionConfig::new(args.listen);
    cfg.dht = dht.clone();
    cfg.upload_limit = args.upload_limit;
    cfg.encryption = args.encryption.into();
    let session = Session::start(cfg).await?;
    let opts = AddOptions { existing, seed: true, ..AddOptions::default() };
    let torrent = session.add_torrent(TorrentSource::Metainfo(Box::new(metainfo.clone())), dir, opts).await?;
    let ready = torrent.wait_complete().await;
    if let Err(e) = ready {
        bail!("cannot seed {}: {e}", args.path.display());
    }
    let addr = public_addr(session.local_addr());
    let mut magnet = metainfo.magnet();
    magnet.peers.push(mycel_metainfo::PeerAddr::Ip(addr));
    let link = magnet.to_string();
    if args.json {
        output::json(&Sharing {
            event: "sharing",
            magnet: link,
            addr,
            dht: dht.as_ref().map(Handle::local_addr),
            info_hash: hex(&metainfo.info_hashes().id20()),
        })?;
    } else {
        output::line(&link)?;
        eprintln!("mycel: seeding {} on {addr}; Ctrl-C to stop", metainfo.info().name());
    }
    let signal = wait_for_signal().await;
    eprintln!("mycel: {}, stopping", signal?);
    session.shutdown().await;
    if let Some(d) = dht {
        d.shutdown().await?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Sharing {
    event: &'static str,
    magnet: String,
    addr: SocketAddr,
    dht: Option<SocketAddr>,
    info_hash: String,
}

/// The `--json` summary of `mycel fetch`.
#[derive(Serialize)]
struct FetchSummary {
    /// Size of the torrent.
    bytes: u64,
    /// Bytes of verified pieces (less than `bytes` with `--only`).
    verified: u64,
    /// Bytes downloaded by this run.
    downloaded: u64,
    /// Seconds from start to all pieces verified.
    seconds: f64,
    /// `downloaded` in MB (10^6) per second.
    mb_per_s: f64,
    /// Peers that sent us at least a block's worth of bytes.
    peers_used: usize,
    /// Pieces that failed their hash check.
    bad_pieces: u64,
    /// Block bytes uploaded by this run.
    uploaded: u64,
    /// Block bytes received but not used (end-game duplicates, blocks of failed pieces).
    wasted: u64,
    /// Addresses banned for sending bad data.
    banned: usize,
    /// Connections closed for protocol violations.
    protocol_errors: u64,
    /// Bytes received from each peer (wire bytes, at least a block's worth).
    from: std::collections::BTreeMap<String, u64>,
    /// Bytes sent to each peer (wire bytes, at least a block's worth).
    to: std::collections::BTreeMap<String, u64>,
    /// Addresses learnt from peer exchange (BEP 11).
    pex_peers_learnt: u64,
    /// Message Stream Encryption handshakes of this run.
    mse: MseSummary,
}

/// MSE handshakes by outcome, in the `--json` summary.
#[derive(Serialize)]
struct MseSummary {
    /// Completed with plaintext chosen.
    plaintext: u64,
    /// Completed with RC4.
    rc4: u64,
    /// Failed or timed out.
    failed: u64,
}

/// `mycel fetch`.
pub async fn fetch(args: FetchArgs) -> Result<ExitCode> {
    let source = parse_source(&args.source)?;
    if let TorrentSource::Metainfo(m) = &source {
        // Checked before any socket opens; a magnet's files are checked after its metadata.
        select_files(m.info(), &args.only).map_err(usage)?;
    }
    let dht = start_dht(args.listen, &args.bootstrap, false).await?;
    let mut cfg = SessionConfig::new(args.listen);
    cfg.dht = dht.clone();
    cfg.data_dir = Some(args.data_dir.clone().unwrap_or_else(|| args.out.join(".mycel")));
    cfg.encryption = args.encryption.into();
    let session = Session::start(cfg).await?;
    let existing = if args.recheck { Existing::Recheck } else { Existing::Auto };
    let opts = AddOptions {
        peers: args.peer.clone(),
        existing,
        seed: args.seed,
        only: args.only.clone(),
        ..AddOptions::default()
    };
    let torrent = session.add_torrent(source, args.out.clone(), opts).await?;
    let bar = progress_bar();
    let mut watch = torrent.watch();
    let deadline = args.timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    let outcome: Result<Progress> = loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = torrent.wait_complete() => break r.map_err(usage),
            c = watch.changed() => {
                // The task ended: its last state says how (it may have ended with an error
                // that `wait_complete` has not been polled to see yet).
                if c.is_err() { break torrent.wait_complete().await.map_err(usage); }
                draw(&bar, &watch.borrow_and_update());
            }
            _ = sleep => break Err(anyhow!("timed out before the download completed")),
            s = wait_for_signal() => break Err(anyhow!("interrupted by {}", s?)),
        }
    };
    bar.finish_and_clear();
    let code = match outcome {
        Ok(p) => {
            report(&p, &session.encryption_stats(), args.json)?;
            if args.seed {
                eprintln!("mycel: download complete, seeding; Ctrl-C to stop");
                let _ = wait_for_signal().await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
    };
    session.shutdown().await;
    if let Some(d) = dht {
        let _ = d.shutdown().await;
    }
    code
}

/// A torrent error for the exit status: a file asked for that is not in the torrent is bad
/// input (2), the rest is failed work (1).
fn usage(e: TorrentError) -> anyhow::Error {
    match e {
        TorrentError::NotInTorrent(_) => UsageError(e.to_string()).into(),
        e => anyhow!(e),
    }
}

fn report(p: &Progress, mse: &EncryptionStats, json: bool) -> Result<()> {
    let seconds = p.elapsed.as_secs_f64().max(1e-6);
    let summary = FetchSummary {
        bytes: p.bytes_total,
        verified: p.bytes_done,
        downloaded: p.downloaded,
        seconds: (seconds * 1000.0).round() / 1000.0,
        mb_per_s: ((p.downloaded as f64 / 1e6 / seconds) * 10.0).round() / 10.0,
        peers_used: p.transfers.iter().filter(|t| t.downloaded >= 16 * 1024).count(),
        bad_pieces: p.bad_pieces,
        from: p
            .transfers
            .iter()
            .filter(|t| t.downloaded >= 16 * 1024)
            .map(|t| (t.addr.to_string(), t.downloaded))
            .collect(),
        uploaded: p.uploaded,
        wasted: p.wasted,
        banned: p.banned,
        protocol_errors: p.protocol_errors,
        to: p.transfers.iter().filter(|t| t.uploaded >= 16 * 1024).map(|t| (t.addr.to_string(), t.uploaded)).collect(),
        pex_peers_learnt: p.pex_peers_learnt,
        mse: MseSummary { plaintext: mse.plaintext, rc4: mse.rc4, failed: mse.failed },
    };
    if json {
        output::json(&summary)?;
    } else {
        output::line(&format!(
            "{}: {} bytes verified; downloaded {} bytes in {:.2} s ({:.1} MB/s) from {} peer(s), {} bad piece(s)",
            p.name.as_deref().unwrap_or("torrent"),
            summary.verified,
            summary.downloaded,
            summary.seconds,
            summary.mb_per_s,
            summary.peers_used,
            summary.bad_pieces
        ))?;
    }
    Ok(())
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn draw(bar: &ProgressBar, p: &Progress) {
    bar.set_length(p.bytes_total);
    bar.set_position(p.bytes_done);
    bar.set_message(format!("{:?} {} peers", p.state, p.peers));
}

/// A magnet link or a .torrent path; malformed input is a usage error (exit 2).
fn parse_source(s: &str) -> Result<TorrentSource> {
    if s.starts_with("magnet:") {
        return mycel_metainfo::Magnet::parse(s)
            .map(TorrentSource::Magnet)
            .map_err(|e| UsageError(format!("invalid magnet link: {e}")).into());
    }
    let m = read_torrent(Path::new(s))?;
    Ok(TorrentSource::Metainfo(Box::new(m)))
}

fn read_torrent(path: &Path) -> Result<Metainfo> {
    let bytes = std::fs::read(path).map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    Metainfo::from_bytes(&bytes).map_err(|e| UsageError(format!("invalid torrent {}: {e}", path.display())).into())
}

/// Starts a DHT node on the UDP side of `listen` (always for `share`, so others can
/// bootstrap from it; for `fetch` only with bootstrap addresses).
async fn start_dht(listen: SocketAddr, bootstrap: &[SocketAddr], always: bool) -> Result<Option<Handle>> {
    if bootstrap.is_empty() && !always {
        return Ok(None);
    }
    let mut config = DhtConfig::new(listen);
    config.bootstrap = bootstrap.to_vec();
    config.node.rate_limit_per_sec = 0;
    let dht = Dht::spawn(config).await?;
    if !bootstrap.is_empty() {
        let _ = dht.wait_bootstrapped(Duration::from_secs(10)).await;
    }
    Ok(Some(dht))
}

/// The address to put in a magnet link: a wildcard listen address becomes loopback.
fn public_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn version(f: FormatArgs) -> TorrentVersion {
    if f.v1 {
        TorrentVersion::V1
    } else if f.v2 {
        TorrentVersion::V2
    } else {
        TorrentVersion::Hybrid
    }
}

/// Hashes `path` (a file or a directory, walked in sorted order) on every core and returns
/// the .torrent bytes.
pub(crate) fn make_torrent(path: &Path, format: FormatArgs, piece_size: Option<u32>) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .canonicalize()?
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| UsageError(format!("{} has no usable file name", path.display())))?
        .to_string();
    let opts = CreateOptions {
        version: version(format),
        piece_length: piece_size,
        created_by: Some("mycel".into()),
        ..CreateOptions::default()
    };
    let (mut builder, sources) = if meta.is_file() {
        let b = TorrentBuilder::single_file(&name, meta.len(), opts)?;
        (b, vec![path.to_path_buf()])
    } else {
        let mut files = Vec::new();
        walk(path, &mut Vec::new(), &mut files)?;
        let specs = files
            .iter()
            .map(|(rel, len)| FileSpec { path: rel.clone(), length: *len, executable: false, hidden: false })
            .collect();
        let b = TorrentBuilder::directory(&name, specs, opts)?;
        let sources = files.iter().map(|(rel, _)| rel.iter().fold(path.to_path_buf(), |p, c| p.join(c))).collect();
        (b, sources)
    };
    let hashes = hash_parallel(&builder, &sources)?;
    for (i, h) in hashes.into_iter().enumerate() {
        builder.set_piece_hashes(i as u32, h)?;
    }
    Ok(builder.finish()?)
}

fn walk(dir: &Path, rel: &mut Vec<String>, out: &mut Vec<(Vec<String>, u64)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().into_string().map_err(|n| anyhow!("file name {n:?} is not UTF-8"))?;
        let ty = e.file_type()?;
        rel.push(name);
        if ty.is_dir() {
            walk(&e.path(), rel, out)?;
        } else if ty.is_file() {
            out.push((rel.clone(), e.metadata()?.len()));
        }
        rel.pop();
    }
    Ok(())
}

/// Hashes every piece with one thread per core; each thread takes the next piece.
fn hash_parallel(builder: &TorrentBuilder, sources: &[PathBuf]) -> Result<Vec<PieceHashes>> {
    let n = builder.num_pieces();
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get()).min(n.max(1) as usize);
    let next = AtomicU32::new(0);
    let results: Vec<Result<Vec<(u32, PieceHashes)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<Vec<(u32, PieceHashes)>> {
                    let mut files: HashMap<usize, File> = HashMap::new();
                    let mut buf = Vec::new();
                    let mut out = Vec::new();
                    loop {
                        let piece = next.fetch_add(1, Ordering::Relaxed);
                        if piece >= n {
                            return Ok(out);
                        }
                        let h = builder.hash_piece(piece, &mut buf, |file, offset, dst: &mut [u8]| -> Result<()> {
                            let f = match files.entry(file) {
                                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                                std::collections::hash_map::Entry::Vacant(v) => v.insert(
                                    File::open(&sources[file])
                                        .with_context(|| format!("cannot open {}", sources[file].display()))?,
                                ),
                            };
                            f.read_exact_at(dst, offset)
                                .with_context(|| format!("cannot read {}", sources[file].display()))
                        })?;
                        out.push((piece, h));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err(anyhow!("a hashing thread panicked")))).collect()
    });
    let mut all: Vec<Option<PieceHashes>> = vec![None; n as usize];
    for r in results {
        for (i, h) in r? {
            all[i as usize] = Some(h);
        }
    }
    all.into_iter().map(|h| h.ok_or_else(|| anyhow!("a piece was not hashed"))).collect()
}

/// Starts a session and DHT node for the demo and tests in this crate.
#[allow(dead_code)]
pub(crate) async fn session_on(listen: SocketAddr, dht: Option<Handle>) -> Result<SessionHandle> {
    let mut cfg = SessionConfig::new(listen);
    cfg.dht = dht;
    Ok(Session::start(cfg).await?)
}
