//! [`Session`]: the TCP listener, the disk pool and the torrents.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mycel_storage::ResumeStore;
use rand::RngCore;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::conn::ConnEvent;
use super::pool::DiskPool;
use super::task::{self, Setup};
use super::{discovery, AddOptions, Progress, SessionConfig, TorrentError, TorrentHandle, TorrentSource, TorrentState};

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
        let listener = tokio::spawn(accept_loop(listener, routes.clone()));
        let pool = DiskPool::new(config.disk_threads);
        let inner = Inner { config, local_addr, pool, resume, routes, torrents: Mutex::new(Vec::new()), listener };
        Ok(SessionHandle { inner: Arc::new(inner) })
    }
}

impl SessionHandle {
    /// The TCP address peers connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
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
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
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

async fn accept_loop(listener: TcpListener, routes: Routes) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                tokio::spawn(route(stream, addr, routes.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads the handshake of an incoming connection and hands it to its torrent.
async fn route(mut stream: TcpStream, addr: SocketAddr, routes: Routes) {
    let mut hs = vec![0u8; HANDSHAKE_LEN];
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let read = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), stream.read_exact(&mut hs)).await;
    if !matches!(read, Ok(Ok(_))) || hs[0] != 19 || &hs[1..20] != b"BitTorrent protocol" {
        return;
    }
    let mut id = [0u8; 20];
    id.copy_from_slice(&hs[28..48]);
    let tx = routes.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
    if let Some(tx) = tx {
        let _ = tx.send(ConnEvent::Incoming { stream, addr, initial: hs }).await;
    }
}
