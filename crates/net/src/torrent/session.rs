//! [`Session`]: the TCP listener, the disk pool and the torrents.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mycel_storage::ResumeStore;
use rand::RngCore;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::conn::{ConnEvent, PeerStream};
use super::encryption::{self, DialPolicy, MseCounters};
use super::pool::DiskPool;
use super::task::{self, Setup};
use super::{
    discovery, AddOptions, Encryption, EncryptionStats, Progress, SessionConfig, TorrentError, TorrentHandle,
    TorrentSource, TorrentState,
};

/// Time an incoming connection has to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Length of the BitTorrent handshake.
const HANDSHAKE_LEN: usize = 68;

/// Entry point: starts a session on the current tokio runtime.
#[derive(Debug)]
pub struct Session;

type Routes = Arc<Mutex<HashMap<[u8; 20], mpsc::Sender<ConnEvent>>>>;

struct Inner {
    config: SessionConfig,
    local_addr: SocketAddr,
    pool: DiskPool,
    resume: Option<Arc<ResumeStore>>,
    routes: Routes,
    mse: Arc<MseCounters>,
    torrents: Mutex<Vec<(TorrentHandle, Option<JoinHandle<()>>)>>,
    listener: JoinHandle<()>,
}

/// A running session; cheap to clone.
#[derive(Clone)]
pub struct SessionHandle {
    inner: Arc<Inner>,
}

impl Session {
    /// Binds the listener, opens the resume store and starts the disk pool.
    pub async fn start(mut config: SessionConfig) -> Result<SessionHandle, TorrentError> {
        let listen_err = |e: std::io::Error| TorrentError::Listen { addr: config.listen, message: e.to_string() };
        let listener = TcpListener::bind(config.listen).await.map_err(listen_err)?;
        let local_addr = listener.local_addr().map_err(listen_err)?;
        config.swarm.listen_port = Some(local_addr.port());
        let resume = match &config.data_dir {
            Some(dir) => Some(Arc::new(ResumeStore::open(dir).map_err(|e| TorrentError::Disk(e.to_string()))?)),
            None => None,
        };
        let routes: Routes = Arc::new(Mutex::new(HashMap::new()));
        let mse = Arc::new(MseCounters::default());
        let listener = tokio::spawn(accept_loop(listener, routes.clone(), config.encryption, mse.clone()));
        let pool = DiskPool::new(config.disk_threads);
        let torrents = Mutex::new(Vec::new());
        let inner = Inner { config, local_addr, pool, resume, routes, mse, torrents, listener };
        Ok(SessionHandle { inner: Arc::new(inner) })
    }
}

impl SessionHandle {
    /// The TCP address peers connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// MSE handshakes so far, incoming and outgoing.
    pub fn encryption_stats(&self) -> EncryptionStats {
        let c = &self.inner.mse;
        EncryptionStats {
            plaintext: c.plaintext.load(Ordering::Relaxed),
            rc4: c.rc4.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }

    /// Adds a torrent whose files go under `out_dir`; it starts at once.
    pub async fn add_torrent(
        &self,
        source: TorrentSource,
        out_dir: PathBuf,
        opts: AddOptions,
    ) -> Result<TorrentHandle, TorrentError> {
        let ids = source.ids20();
        let (conn_tx, conn_rx) = mpsc::channel(256);
        {
            let mut routes = self.inner.routes.lock().unwrap_or_else(|p| p.into_inner());
            if ids.iter().any(|id| routes.contains_key(id)) {
                return Err(TorrentError::Duplicate);
            }
            for id in &ids {
                routes.insert(*id, conn_tx.clone());
            }
        }
        let encrypts = self.inner.config.encryption != Encryption::Off;
        let dial_policy = ids.first().filter(|_| encrypts).map(|&skey| DialPolicy {
            skey,
            mode: self.inner.config.encryption,
            counters: self.inner.mse.clone(),
        });
        let initial = if matches!(source, TorrentSource::Magnet(_)) {
            TorrentState::FetchingMetadata
        } else {
            TorrentState::Checking
        };
        let (progress_tx, progress_rx) = watch::channel(Progress::initial(initial));
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let (peers_tx, peers_rx) = mpsc::channel(64);
        let cfg = &self.inner.config;
        let discovery = cfg
            .dht
            .clone()
            .filter(|_| !is_private(&source))
            .map(|dht| discovery::spawn(dht, ids.clone(), self.inner.local_addr.port(), peers_tx.clone()));
        let mut peer_id = [0u8; 20];
        peer_id[..8].copy_from_slice(b"-MY0100-");
        rand::rngs::OsRng.fill_bytes(&mut peer_id[8..]);
        let seed = encryption::seed();
        let setup = Setup {
            source,
            out_dir,
            opts,
            pool: self.inner.pool.clone(),
            resume: self.inner.resume.clone(),
            swarm_cfg: cfg.swarm.clone(),
            peer_id,
            seed,
            upload_limit: cfg.upload_limit,
            local_ip: Some(self.inner.local_addr.ip()),
            dial_policy,
            conn_tx,
            conn_rx,
            cmd_rx,
            peers_rx,
            progress: progress_tx,
        };
        let routes = self.inner.routes.clone();
        let ids_done = ids.clone();
        tokio::spawn(async move {
            task::run(setup).await;
            let mut r = routes.lock().unwrap_or_else(|p| p.into_inner());
            for id in &ids_done {
                r.remove(id);
            }
        });
        drop(peers_tx);
        let handle = TorrentHandle { ids, progress: progress_rx, stop: cmd_tx };
        self.inner.torrents.lock().unwrap_or_else(|p| p.into_inner()).push((handle.clone(), discovery));
        Ok(handle)
    }

    /// Every torrent added.
    pub fn torrents(&self) -> Vec<TorrentHandle> {
        self.inner.torrents.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(h, _)| h.clone()).collect()
    }

    /// Stops every torrent (saving resume data) and the listener.
    pub async fn shutdown(&self) {
        let torrents: Vec<(TorrentHandle, Option<JoinHandle<()>>)> =
            std::mem::take(&mut *self.inner.torrents.lock().unwrap_or_else(|p| p.into_inner()));
        for (t, d) in torrents {
            if let Some(d) = d {
                d.abort();
            }
            t.stop().await;
        }
        self.inner.listener.abort();
    }
}

fn is_private(source: &TorrentSource) -> bool {
    matches!(source, TorrentSource::Metainfo(m) if m.info().is_private())
}

async fn accept_loop(listener: TcpListener, routes: Routes, mode: Encryption, mse: Arc<MseCounters>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                tokio::spawn(route(stream, addr, routes.clone(), mode, mse.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads the handshake of an incoming connection (after an MSE handshake if the first
/// byte is not the plain handshake's 19) and hands it to its torrent.
async fn route(mut stream: TcpStream, addr: SocketAddr, routes: Routes, mode: Encryption, mse: Arc<MseCounters>) {
    let Some((hs, cipher)) = handshake(&mut stream, mode, &routes, &mse).await else { return };
    if hs.len() < HANDSHAKE_LEN || hs[0] != 19 || &hs[1..20] != b"BitTorrent protocol" {
        return;
    }
    let mut id = [0u8; 20];
    id.copy_from_slice(&hs[28..48]);
    let tx = routes.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
    if let Some(tx) = tx {
        // Everything read past the MSE handshake is in `hs`: nothing is left over.
        let stream = PeerStream { stream, cipher: cipher.map(Box::new), leftover: Vec::new() };
        // A torrent that has just stopped drops the connection.
        let _ = tx.send(ConnEvent::Incoming { stream, addr, initial: hs }).await;
    }
}

/// The first bytes of the BitTorrent stream (at least the handshake, decrypted) and the
/// ciphers if RC4 was negotiated; `None` if the peer is refused or silent. The plain reads
/// share one deadline; an MSE handshake keeps its own (and counts its failures).
async fn handshake(
    stream: &mut TcpStream,
    mode: Encryption,
    routes: &Routes,
    mse: &MseCounters,
) -> Option<(Vec<u8>, Option<mycel_mse::Cipher>)> {
    let deadline = tokio::time::Instant::from_std(Instant::now() + HANDSHAKE_TIMEOUT);
    let mut first = [0u8; 1];
    tokio::time::timeout_at(deadline, stream.read_exact(&mut first)).await.ok()?.ok()?;
    if first[0] == 19 {
        if mode == Encryption::Require {
            mse.failed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut hs = vec![19u8; HANDSHAKE_LEN];
        tokio::time::timeout_at(deadline, stream.read_exact(&mut hs[1..])).await.ok()?.ok()?;
        return Some((hs, None));
    }
    let skeys: Vec<[u8; 20]> = routes.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
    let est = match encryption::respond(stream, &first, skeys, mode, mse).await {
        Ok(est) => est,
        Err(e) => {
            tracing::debug!(error = %e, "MSE handshake failed");
            return None;
        }
    };
    let (mut data, mut cipher) = (est.payload, est.cipher);
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::from_std(Instant::now() + HANDSHAKE_TIMEOUT);
    while data.len() < HANDSHAKE_LEN {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await.ok()?.ok().filter(|&n| n > 0)?;
        if let Some(c) = &mut cipher {
            c.decrypt.apply(&mut buf[..n]);
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some((data, cipher))
}
