//! The task that drives one torrent: a [`MetadataFetch`] first for a magnet link, then a
//! [`Swarm`], with its connections, disk operations, resume data and progress.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mycel_metainfo::{Info, TorrentVersion};
use mycel_peer_wire::Bitfield;
use mycel_storage::{FileMap, FileStorage, ResumeStore, Storage, StorageError};
use mycel_swarm::{
    DiskResult, Event, LayerFile, LayersError, Layout, MetadataConfig, MetadataFetch, PeerKey, PieceLayers, Swarm,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::conn::{self, count, Conn, ConnEvent, PeerStream, RateLimiter};
use super::diskq::DiskQueue;
use super::encryption::DialPolicy;
use super::pool::DiskPool;
use super::{
    layout_for, layout_with_layers, piece_priorities, select_files, AddOptions, Existing, PeerTransfer, Progress,
    TorrentError, TorrentSource, TorrentState,
};

/// How often progress is published.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// How often newly verified pieces are synced and recorded.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Dirty bytes after which a flush starts early.
const FLUSH_DIRTY: u64 = 256 << 20;
/// Block bytes handed to the pool and not yet written; above it, connections are not read.
const MAX_WRITES_IN_FLIGHT: u64 = 64 << 20;
/// Most inputs of one kind (connection events, disk results) handled between two drains
/// of the engine.
const BATCH: usize = 64;

/// Commands from a [`super::TorrentHandle`].
pub(crate) enum Command {
    /// Save resume data, close everything, then answer.
    Stop(oneshot::Sender<()>),
}

/// Everything a torrent task starts with.
pub(crate) struct Setup {
    pub source: TorrentSource,
    pub out_dir: PathBuf,
    pub opts: AddOptions,
    pub pool: DiskPool,
    pub resume: Option<Arc<ResumeStore>>,
    pub swarm_cfg: mycel_swarm::Config,
    pub peer_id: [u8; 20],
    pub seed: [u8; 32],
    pub upload_limit: u64,
    pub local_ip: Option<std::net::IpAddr>,
    /// How dials run MSE; `None`: plaintext.
    pub dial_policy: Option<DialPolicy>,
    pub conn_tx: mpsc::Sender<ConnEvent>,
    pub conn_rx: mpsc::Receiver<ConnEvent>,
    pub cmd_rx: mpsc::Receiver<Command>,
    pub peers_rx: mpsc::Receiver<Vec<SocketAddr>>,
    pub progress: watch::Sender<Progress>,
}

enum Engine {
    Fetch(Box<MetadataFetch>),
    Swarm(Box<Swarm>),
    Stopped,
}

struct Torrent {
    engine: Engine,
    conns: HashMap<PeerKey, Conn>,
    next_key: u64,
    conn_tx: mpsc::Sender<ConnEvent>,
    pool: DiskPool,
    disk: Option<DiskQueue>,
    disk_tx: mpsc::UnboundedSender<DiskResult>,
    resume: Option<Arc<ResumeStore>>,
    id20: [u8; 20],
    unflushed: bool,
    flushing: bool,
    flush_tx: mpsc::UnboundedSender<Result<(), String>>,
    next_flush: Instant,
    progress: watch::Sender<Progress>,
    state: TorrentState,
    name: Option<String>,
    started: Instant,
    /// Wire bytes per remote address (connections come and go; these stay).
    transfers: BTreeMap<SocketAddr, PeerTransfer>,
    conn_addr: HashMap<PeerKey, SocketAddr>,
    limiter: Option<Arc<RateLimiter>>,
    local_ip: Option<std::net::IpAddr>,
    dial_policy: Option<DialPolicy>,
    out_dir: PathBuf,
    opts: AddOptions,
    swarm_cfg: mycel_swarm::Config,
    peer_id: [u8; 20],
    seed: [u8; 32],
    /// A v2 or hybrid magnet's info dictionary while its piece layers are fetched.
    pending_info: Option<Info>,
}

/// The torrent task's body.
pub(crate) async fn run(setup: Setup) {
    let Setup {
        source,
        out_dir,
        opts,
        pool,
        resume,
        swarm_cfg,
        peer_id,
        seed,
        upload_limit,
        local_ip,
        dial_policy,
        conn_tx,
        mut conn_rx,
        mut cmd_rx,
        mut peers_rx,
        progress,
    } = setup;
    let (disk_tx, mut disk_rx) = mpsc::unbounded_channel();
    let (flush_tx, mut flush_rx) = mpsc::unbounded_channel();
    let now = Instant::now();
    let mut t = Torrent {
        engine: Engine::Stopped,
        conns: HashMap::new(),
        next_key: 1,
        conn_tx,
        pool,
        disk: None,
        disk_tx,
        resume,
        id20: source.ids20().first().copied().unwrap_or([0; 20]),
        unflushed: false,
        flushing: false,
        flush_tx,
        next_flush: now + FLUSH_EVERY,
        progress,
        state: TorrentState::FetchingMetadata,
        name: None,
        started: now,
        transfers: BTreeMap::new(),
        conn_addr: HashMap::new(),
        limiter: (upload_limit > 0).then(|| Arc::new(RateLimiter::new(upload_limit))),
        local_ip,
        dial_policy,
        out_dir,
        opts,
        swarm_cfg,
        peer_id,
        seed,
        pending_info: None,
    };
    match source {
        TorrentSource::Metainfo(m) => {
            let info = m.info().clone();
            t.start_swarm(&info, layout_for(&info, Some(&m)), Vec::new()).await;
        }
        TorrentSource::Magnet(m) => {
            t.name = m.display_name.clone();
            let ids = mycel_swarm::InfoHashes { v1: m.hashes.v1().map(|h| h.0), v2: m.hashes.v2().map(|h| h.0) };
            let cfg = MetadataConfig { client_name: t.swarm_cfg.client_name.clone(), ..MetadataConfig::default() };
            let mut f = MetadataFetch::new(cfg, ids, t.peer_id, now);
            let mut addrs: Vec<SocketAddr> = t.opts.peers.clone();
            addrs.extend(m.peers.iter().filter_map(|p| match p {
                mycel_metainfo::PeerAddr::Ip(a) => Some(*a),
                _ => None,
            }));
            f.add_peers(&addrs);
            t.engine = Engine::Fetch(Box::new(f));
        }
    }
    let mut next_publish = Instant::now();
    loop {
        // A new engine (metadata done, layers done) has outputs of its own at once.
        while t.drain().await {}
        if matches!(t.engine, Engine::Stopped) {
            break;
        }
        let now = Instant::now();
        if now >= next_publish {
            t.publish(now);
            next_publish = now + PUBLISH_EVERY;
        }
        let engine_at = match &t.engine {
            Engine::Fetch(f) => f.poll_timeout(),
            Engine::Swarm(s) => s.poll_timeout(),
            Engine::Stopped => None,
        };
        let deadline = engine_at.unwrap_or(now + Duration::from_secs(1)).min(next_publish).min(t.next_flush);
        let read_ok = t.disk.as_ref().map_or(0, DiskQueue::write_bytes) < MAX_WRITES_IN_FLIGHT;
        tokio::select! {
            Some(ev) = conn_rx.recv(), if read_ok => {
                t.on_conn(ev);
                // Take what else is ready before draining the engine: one drain (and one
                // batch of disk jobs, one write per connection) for many inputs.
                for _ in 1..BATCH {
                    if t.disk.as_ref().map_or(0, DiskQueue::write_bytes) >= MAX_WRITES_IN_FLIGHT {
                        break;
                    }
                    let Ok(ev) = conn_rx.try_recv() else { break };
                    t.on_conn(ev);
                }
            }
            Some(res) = disk_rx.recv() => {
                t.on_disk(res);
                for _ in 1..BATCH {
                    let Ok(res) = disk_rx.try_recv() else { break };
                    t.on_disk(res);
                }
            }
            Some(peers) = peers_rx.recv() => t.add_peers(&peers),
            Some(res) = flush_rx.recv() => t.on_flushed(res),
            cmd = cmd_rx.recv() => {
                let reply = cmd.map(|Command::Stop(reply)| reply);
                // A flush in flight finishes first; then what it did not cover.
                while t.flushing {
                    match flush_rx.recv().await {
                        Some(res) => t.on_flushed(res),
                        None => break,
                    }
                }
                t.flush_now().await;
                t.conns.clear();
                t.engine = Engine::Stopped;
                t.publish(Instant::now());
                if let Some(r) = reply { let _ = r.send(()); }
                break;
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => t.on_timer(),
        }
    }
}

impl Torrent {
    /// Builds storage and the engine once the info dictionary (and the layout) is known.
    async fn start_swarm(&mut self, info: &Info, layout: Result<Layout, TorrentError>, addrs: Vec<SocketAddr>) {
        self.name = Some(info.name().to_string());
        let prepared = match layout {
            Ok(layout) => self.prepare(info, layout).await,
            Err(e) => Err(e),
        };
        match prepared {
            Ok(mut swarm) => {
                swarm.set_metadata(bytes::Bytes::copy_from_slice(info.bytes()));
                let mut peers = self.opts.peers.clone();
                peers.extend(addrs);
                swarm.add_peers(Instant::now(), &peers);
                let finished = swarm.is_finished();
                self.engine = Engine::Swarm(Box::new(swarm));
                if finished {
                    self.unflushed = true;
                    self.complete();
                } else {
                    self.state = TorrentState::Downloading;
                }
            }
            Err(e) => self.fail(e),
        }
        self.publish(Instant::now());
    }

    async fn prepare(&mut self, info: &Info, layout: Layout) -> Result<Swarm, TorrentError> {
        let chosen = select_files(info, &self.opts.only)?;
        let map =
            FileMap::new(info.files(), info.piece_space_size()).map_err(|e| TorrentError::Invalid(e.to_string()))?;
        let files = FileStorage::new(&self.out_dir, map);
        let existing = files.any_file_exists();
        files.create_files_where(|i| chosen.as_ref().is_none_or(|c| c[i])).map_err(disk_err)?;
        let boxed: Box<dyn Storage> = Box::new(files);
        let boxed = match &self.opts.storage_wrapper {
            Some(w) => w(boxed),
            None => boxed,
        };
        let storage: Arc<dyn Storage> = Arc::from(boxed);
        let pl = u64::from(layout.piece_length());
        let n = layout.piece_count();
        self.disk = Some(DiskQueue::new(self.pool.clone(), storage.clone(), pl, n, self.disk_tx.clone()));
        let have = match self.opts.existing {
            Existing::Complete => Bitfield::full(n),
            Existing::Recheck => self.recheck(&layout, storage).await,
            Existing::Auto => match self.load_resume(n) {
                Some(b) => b,
                None if existing => self.recheck(&layout, storage).await,
                None => Bitfield::new(n),
            },
        };
        let cfg = self.swarm_cfg.clone();
        let mut swarm = Swarm::new(cfg, layout, self.peer_id, self.seed, Instant::now(), have)
            .map_err(|e| TorrentError::Invalid(e.to_string()))?;
        if let Some(c) = &chosen {
            swarm.set_piece_priorities(Instant::now(), &piece_priorities(info, c));
        }
        Ok(swarm)
    }

    fn load_resume(&self, pieces: u32) -> Option<Bitfield> {
        let (count, bits) = self.resume.as_ref()?.load(&self.id20).ok()??;
        (count == pieces).then(|| Bitfield::from_bytes(&bits, pieces).ok()).flatten()
    }

    /// Hashes every piece on the pool and keeps those that verify.
    async fn recheck(&mut self, layout: &Layout, storage: Arc<dyn Storage>) -> Bitfield {
        self.state = TorrentState::Checking;
        self.publish(Instant::now());
        self.pool.recheck(layout, storage).await
    }

    /// Drains every output of the engine, then acts on its events; `true` if that started
    /// a new phase (whose outputs want draining too).
    async fn drain(&mut self) -> bool {
        let mut events = Vec::new();
        let mut metadata = None;
        let mut layers = None;
        match &mut self.engine {
            Engine::Swarm(s) => {
                while let Some(addr) = s.poll_connect() {
                    conn::dial(addr, self.local_ip, self.dial_policy.clone(), self.conn_tx.clone());
                }
                while let Some(tx) = s.poll_transmit() {
                    count(&self.conn_addr, &mut self.transfers, tx.peer, 0, tx.data.len());
                    if let Some(c) = self.conns.get(&tx.peer) {
                        c.send(tx.data);
                    }
                }
                while let Some(d) = s.poll_disconnect() {
                    self.conns.remove(&d.peer);
                }
                while let Some(op) = s.poll_disk_op() {
                    if let Some(d) = &mut self.disk {
                        d.submit(op, s.layout());
                    }
                }
                if let Some(d) = &mut self.disk {
                    d.flush();
                }
                while let Some(e) = s.poll_event() {
                    events.push(e);
                }
            }
            Engine::Fetch(f) => {
                while let Some(addr) = f.poll_connect() {
                    conn::dial(addr, self.local_ip, self.dial_policy.clone(), self.conn_tx.clone());
                }
                while let Some(tx) = f.poll_transmit() {
                    if let Some(c) = self.conns.get(&tx.peer) {
                        c.send(tx.data);
                    }
                }
                while let Some(d) = f.poll_disconnect() {
                    self.conns.remove(&d.peer);
                }
                metadata = f.poll_metadata();
                layers = f.poll_piece_layers();
            }
            Engine::Stopped => {}
        }
        for e in events {
            self.on_event(e).await;
        }
        if let Some(layers) = layers {
            self.on_layers(layers).await;
            return true;
        }
        if let Some(bytes) = metadata {
            self.on_metadata(&bytes).await;
            return true;
        }
        false
    }

    async fn on_metadata(&mut self, bytes: &[u8]) {
        let info = match Info::from_bytes(bytes) {
            Ok(info) => info,
            Err(e) => return self.fail(TorrentError::Invalid(e.to_string())),
        };
        if let Engine::Fetch(f) = &mut self.engine {
            // v2 and hybrid: the piece layers come next, from the same connections (a
            // hybrid can do without them, verified by SHA-1 only).
            let files: Vec<LayerFile> = info
                .files()
                .iter()
                .filter_map(|e| Some(LayerFile { pieces_root: e.pieces_root?, length: e.length }))
                .collect();
            let now = Instant::now();
            match info.version() {
                TorrentVersion::V2 => f.fetch_piece_layers(now, info.piece_length(), &files),
                TorrentVersion::Hybrid => f.fetch_optional_piece_layers(now, info.piece_length(), &files),
                TorrentVersion::V1 => f.finish(),
            }
            if info.version() != TorrentVersion::V1 {
                self.name = Some(info.name().to_string());
                self.pending_info = Some(info);
                return;
            }
        }
        let addrs = self.fetch_addrs();
        self.start_swarm(&info, layout_for(&info, None), addrs).await;
    }

    async fn on_layers(&mut self, layers: Result<PieceLayers, LayersError>) {
        let Some(info) = self.pending_info.take() else { return };
        let addrs = self.fetch_addrs();
        let layout = match layers {
            Ok(layers) => layout_with_layers(&info, &layers),
            Err(e) if info.version() == TorrentVersion::Hybrid => {
                tracing::warn!(
                    error = %e,
                    "hybrid magnet: piece layers not available from peers; verifying by SHA-1 only, \
                     v2 hash requests from peers will be rejected"
                );
                layout_for(&info, None)
            }
            Err(e) => Err(TorrentError::PieceLayers(e.to_string())),
        };
        self.start_swarm(&info, layout, addrs).await;
    }

    /// The metadata fetch's addresses, for the swarm; its connections are closed.
    fn fetch_addrs(&mut self) -> Vec<SocketAddr> {
        self.conns.clear();
        match &self.engine {
            Engine::Fetch(f) => f.addrs(),
            _ => Vec::new(),
        }
    }

    async fn on_event(&mut self, e: Event) {
        match e {
            Event::PieceVerified { .. } => {
                self.unflushed = true;
                if self.disk.as_ref().is_some_and(|d| d.storage().dirty_bytes() > FLUSH_DIRTY) {
                    self.start_flush();
                }
            }
            Event::Completed => self.complete(),
            Event::DiskFailed { error, paused } => {
                tracing::info!(%error, paused, "disk failure");
                if paused {
                    self.flush_now().await;
                    self.fail(TorrentError::Disk(error));
                }
            }
            Event::PeerBanned { addr, reason } => tracing::info!(%addr, ?reason, "peer banned"),
            Event::PieceFailed { piece, .. } => tracing::debug!(piece, "piece failed its hash check"),
            Event::PeerConnected { .. } => {}
        }
    }

    /// Every piece is verified: the torrent is complete now. Syncing the files and
    /// recording them as verified goes on in the background (a stop waits for it), so the
    /// write-back of the last seconds' data is not counted as download time.
    fn complete(&mut self) {
        self.start_flush();
        if !matches!(self.state, TorrentState::Error(_)) {
            self.state = TorrentState::Complete;
        }
        self.publish(Instant::now());
    }

    fn fail(&mut self, e: TorrentError) {
        tracing::info!(error = %e, "torrent stopped");
        self.state = TorrentState::Error(e);
        self.conns.clear();
        self.publish(Instant::now());
        self.engine = Engine::Stopped;
    }

    fn on_conn(&mut self, ev: ConnEvent) {
        let now = Instant::now();
        match ev {
            ConnEvent::Dialed { addr, stream: Some(stream) } => {
                let key = self.new_conn(stream, addr);
                match &mut self.engine {
                    Engine::Swarm(s) => s.handle_peer_connected(now, key, addr, true),
                    Engine::Fetch(f) => f.handle_peer_connected(now, key, addr, true),
                    Engine::Stopped => {}
                }
            }
            ConnEvent::Dialed { addr, stream: None } => {
                if let Engine::Swarm(s) = &mut self.engine {
                    s.handle_connect_failed(now, addr);
                }
            }
            ConnEvent::Incoming { stream, addr, initial } => {
                let key = self.new_conn(stream, addr);
                match &mut self.engine {
                    Engine::Swarm(s) => {
                        s.handle_peer_connected(now, key, addr, false);
                        s.handle_peer_data(now, key, initial.into());
                    }
                    Engine::Fetch(f) => {
                        f.handle_peer_connected(now, key, addr, false);
                        f.handle_peer_data(now, key, initial.into());
                    }
                    Engine::Stopped => {}
                }
            }
            ConnEvent::Bytes { key, data } => {
                if matches!(self.engine, Engine::Swarm(_)) {
                    count(&self.conn_addr, &mut self.transfers, key, data.len(), 0);
                }
                match &mut self.engine {
                    Engine::Swarm(s) => s.handle_peer_data(now, key, data),
                    Engine::Fetch(f) => f.handle_peer_data(now, key, data),
                    Engine::Stopped => {}
                }
            }
            ConnEvent::Closed { key } => {
                self.conn_addr.remove(&key);
                if self.conns.remove(&key).is_some() {
                    match &mut self.engine {
                        Engine::Swarm(s) => s.handle_peer_closed(now, key),
                        Engine::Fetch(f) => f.handle_peer_closed(now, key),
                        Engine::Stopped => {}
                    }
                }
            }
        }
    }

    fn new_conn(&mut self, stream: PeerStream, addr: SocketAddr) -> PeerKey {
        let key = PeerKey(self.next_key);
        self.next_key += 1;
        self.conn_addr.insert(key, addr);
        self.conns.insert(key, conn::start(stream, key, self.conn_tx.clone(), self.limiter.clone()));
        key
    }

    fn on_disk(&mut self, res: DiskResult) {
        if let Some(d) = &mut self.disk {
            d.on_result(&res);
        }
        if let Engine::Swarm(s) = &mut self.engine {
            s.handle_disk_result(Instant::now(), res);
        }
    }

    fn add_peers(&mut self, peers: &[SocketAddr]) {
        match &mut self.engine {
            Engine::Swarm(s) => s.add_peers(Instant::now(), peers),
            Engine::Fetch(f) => f.add_peers(peers),
            Engine::Stopped => {}
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        match &mut self.engine {
            Engine::Swarm(s) => s.handle_timeout(now),
            Engine::Fetch(f) => f.handle_timeout(now),
            Engine::Stopped => {}
        }
        if now >= self.next_flush {
            self.next_flush = now + FLUSH_EVERY;
            self.start_flush();
        }
    }

    /// Resume data job: snapshot the verified pieces, sync the files, then record them.
    fn flush_job(&mut self) -> Option<impl FnOnce() -> Result<(), String> + Send + 'static> {
        let resume = self.resume.clone()?;
        let storage = self.disk.as_ref()?.storage().clone();
        let Engine::Swarm(s) = &self.engine else { return None };
        if !self.unflushed {
            return None;
        }
        self.unflushed = false;
        let have = s.have().clone();
        let id = self.id20;
        Some(move || -> Result<(), String> {
            storage.sync().map_err(|e: StorageError| e.to_string())?;
            resume.save(&id, have.len(), have.as_bytes()).map_err(|e| e.to_string())
        })
    }

    fn start_flush(&mut self) {
        if self.flushing {
            return;
        }
        if let Some(job) = self.flush_job() {
            self.flushing = true;
            let tx = self.flush_tx.clone();
            tokio::task::spawn_blocking(move || {
                let _ = tx.send(job());
            });
        }
    }

    async fn flush_now(&mut self) {
        // An earlier flush may still run; this one snapshots later, so it supersedes it.
        if let Some(job) = self.flush_job() {
            match tokio::task::spawn_blocking(job).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot save resume data"),
                Err(e) => tracing::warn!(error = %e, "resume job panicked"),
            }
        }
    }

    fn on_flushed(&mut self, res: Result<(), String>) {
        self.flushing = false;
        if let Err(e) = res {
            tracing::warn!(error = %e, "cannot save resume data");
            self.unflushed = true;
        }
    }

    fn publish(&mut self, now: Instant) {
        let mut p = Progress::initial(self.state.clone());
        p.name = self.name.clone();
        p.elapsed = now.duration_since(self.started);
        if let Engine::Swarm(s) = &self.engine {
            let st = s.stats();
            let layout = s.layout();
            p.bytes_total = layout.total_length();
            p.bytes_done = s.have().iter_set().map(|i| u64::from(layout.piece_len(i))).sum();
            p.downloaded = st.downloaded;
            p.uploaded = st.uploaded;
            p.download_rate = st.download_rate;
            p.upload_rate = st.upload_rate;
            p.peers = st.peers.len();
            p.bad_pieces = st.hash_failures;
            p.banned = st.banned;
            p.wasted = st.wasted;
            p.protocol_errors = st.protocol_errors;
            p.pex_peers_learnt = st.pex_peers_learnt;
        } else if let Some(prev) = Some(self.progress.borrow().clone()) {
            p.bytes_total = prev.bytes_total;
            p.bytes_done = prev.bytes_done;
            p.downloaded = prev.downloaded;
            p.uploaded = prev.uploaded;
            p.bad_pieces = prev.bad_pieces;
            p.banned = prev.banned;
            p.wasted = prev.wasted;
            p.protocol_errors = prev.protocol_errors;
            p.pex_peers_learnt = prev.pex_peers_learnt;
        }
        p.transfers = self.transfers.values().cloned().collect();
        self.progress.send_replace(p);
    }
}

fn disk_err(e: StorageError) -> TorrentError {
    TorrentError::Disk(e.to_string())
}
