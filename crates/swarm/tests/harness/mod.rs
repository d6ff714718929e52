//! An in-memory network for swarm engines: connections are byte pipes with a per-step
//! bandwidth, disks are `Vec<u8>`s, time is virtual. Deterministic for a given setup.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mycel_peer_wire::Bitfield;
use mycel_swarm::{
    merkle_root, Config, DiskOp, DiskResult, Event, InfoHashes, Layout, PeerKey, Swarm, Trust, V2Piece, BLOCK_LEN,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// Virtual time per step.
pub const STEP: Duration = Duration::from_millis(50);

/// A torrent's content and its v1 layout.
pub fn v1_torrent(len: usize, piece_length: u32, seed: u64) -> (Vec<u8>, Layout) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
    let hashes = data.chunks(piece_length as usize).map(|c| <[u8; 20]>::from(Sha1::digest(c))).collect();
    let layout = Layout::v1([0xab; 20], len as u64, piece_length, hashes).expect("layout");
    (data, layout)
}

/// Per-piece v2 data for files laid out one after the other, each aligned to a piece
/// boundary, with `data_len` the file bytes of each piece.
fn v2_pieces(files: &[Vec<u8>], piece_length: u32) -> Vec<V2Piece> {
    let per_piece = (piece_length / BLOCK_LEN) as usize;
    let mut pieces = Vec::new();
    for f in files.iter().filter(|f| !f.is_empty()) {
        let leaves: Vec<[u8; 32]> = f.chunks(BLOCK_LEN as usize).map(|c| <[u8; 32]>::from(Sha256::digest(c))).collect();
        if f.len() <= piece_length as usize {
            let width = leaves.len().next_power_of_two() as u32;
            let root = merkle_root(&leaves, width);
            pieces.push(V2Piece { root, leaves: width, data_len: f.len() as u32, file_root: root, leaf_index: 0 });
            continue;
        }
        let file_root = merkle_root(&leaves, (leaves.len().div_ceil(per_piece) * per_piece).next_power_of_two() as u32);
        for (i, (chunk, data)) in leaves.chunks(per_piece).zip(f.chunks(piece_length as usize)).enumerate() {
            let root = merkle_root(chunk, per_piece as u32);
            let leaf_index = (i * per_piece) as u32;
            pieces.push(V2Piece { root, leaves: per_piece as u32, data_len: data.len() as u32, file_root, leaf_index });
        }
    }
    pieces
}

fn random_files(lens: &[usize], seed: u64) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    lens.iter().map(|&l| (0..l).map(|_| rng.gen()).collect()).collect()
}

/// A v2 torrent of files of the given lengths: the content (files back to back) and layout.
pub fn v2_torrent(lens: &[usize], piece_length: u32, seed: u64) -> (Vec<u8>, Layout) {
    let files = random_files(lens, seed);
    let pieces = v2_pieces(&files, piece_length);
    let lens: Vec<u64> = lens.iter().map(|&l| l as u64).collect();
    let layout = Layout::v2([0xcd; 32], piece_length, &lens, pieces).expect("v2 layout");
    (files.concat(), layout)
}

/// A hybrid torrent: files padded to piece boundaries (pad files, BEP 47) except the last.
pub fn hybrid_torrent(lens: &[usize], piece_length: u32, seed: u64, trust: Trust) -> (Vec<u8>, Layout) {
    let files = random_files(lens, seed);
    let pieces = v2_pieces(&files, piece_length);
    let mut data = Vec::new();
    for (i, f) in files.iter().enumerate() {
        data.extend_from_slice(f);
        if i + 1 < files.len() {
            data.resize(data.len().div_ceil(piece_length as usize) * piece_length as usize, 0);
        }
    }
    let hashes = data.chunks(piece_length as usize).map(|c| <[u8; 20]>::from(Sha1::digest(c))).collect();
    let ids = InfoHashes { v1: Some([0xab; 20]), v2: Some([0xcd; 32]) };
    let layout = Layout::hybrid(ids, data.len() as u64, piece_length, hashes, pieces, trust).expect("hybrid layout");
    (data, layout)
}

pub struct Node {
    pub swarm: Swarm,
    pub disk: Vec<u8>,
    pub offsets: Vec<u64>,
    pub addr: SocketAddr,
    /// Bytes this node can send per step, over all its connections.
    pub upload_per_step: usize,
    /// Flips a byte of every block it serves.
    pub corrupt: bool,
    pub events: Vec<Event>,
    pub sent: u64,
}

struct Pipe {
    to: (usize, PeerKey),
    buf: VecDeque<u8>,
}

pub struct Net {
    pub nodes: Vec<Node>,
    pipes: BTreeMap<(usize, PeerKey), Pipe>,
    pub now: Instant,
    next_key: u64,
    pub trace: Sha1,
    pub disconnects: Vec<(usize, mycel_swarm::Disconnect)>,
}

impl Net {
    pub fn new() -> Self {
        // The harness's one clock read: an origin for virtual time.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        Net { nodes: Vec::new(), pipes: BTreeMap::new(), now, next_key: 1, trace: Sha1::new(), disconnects: Vec::new() }
    }

    /// Adds a node; `complete` gives it the whole content (a seed).
    pub fn add(&mut self, cfg: Config, layout: &Layout, data: &[u8], complete: bool, upload_per_step: usize) -> usize {
        let i = self.nodes.len();
        let n = layout.piece_count();
        let have = if complete { Bitfield::full(n) } else { Bitfield::new(n) };
        let mut peer_id = [b'-'; 20];
        peer_id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let mut seed = [0u8; 32];
        seed[0] = i as u8;
        let swarm = Swarm::new(cfg, layout.clone(), peer_id, seed, self.now, have).expect("swarm");
        let mut offsets = Vec::new();
        let mut off = 0u64;
        for p in 0..n {
            offsets.push(off);
            off += u64::from(layout.piece_len(p));
        }
        let disk = if complete { data.to_vec() } else { vec![0; data.len()] };
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)), 6881);
        self.nodes.push(Node {
            swarm,
            disk,
            offsets,
            addr,
            upload_per_step,
            corrupt: false,
            events: Vec::new(),
            sent: 0,
        });
        i
    }

    /// Tells every node about every other node.
    pub fn introduce_all(&mut self) {
        let addrs: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
        let now = self.now;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let others: Vec<SocketAddr> = addrs.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, a)| *a).collect();
            node.swarm.add_peers(now, &others);
        }
    }

    fn key(&mut self) -> PeerKey {
        self.next_key += 1;
        PeerKey(self.next_key)
    }

    /// Connects node `a` (dialling) to node `b`.
    pub fn connect(&mut self, a: usize, b: usize) {
        let (ka, kb) = (self.key(), self.key());
        self.pipes.insert((a, ka), Pipe { to: (b, kb), buf: VecDeque::new() });
        self.pipes.insert((b, kb), Pipe { to: (a, ka), buf: VecDeque::new() });
        let (addr_a, addr_b, now) = (self.nodes[a].addr, self.nodes[b].addr, self.now);
        self.nodes[a].swarm.handle_peer_connected(now, ka, addr_b, true);
        self.nodes[b].swarm.handle_peer_connected(now, kb, addr_a, false);
    }

    /// Drains every output of every node until nothing is left.
    pub fn pump(&mut self) {
        loop {
            let mut progress = false;
            for i in 0..self.nodes.len() {
                progress |= self.drain(i);
            }
            if !progress {
                return;
            }
        }
    }

    fn drain(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut progress = false;
        while let Some(t) = self.nodes[i].swarm.poll_transmit() {
            self.trace.update((i as u64).to_be_bytes());
            self.trace.update(t.peer.0.to_be_bytes());
            self.trace.update(&t.data);
            if let Some(p) = self.pipes.get_mut(&(i, t.peer)) {
                p.buf.extend(t.data);
            }
        }
        while let Some(d) = self.nodes[i].swarm.poll_disconnect() {
            progress = true;
            if let Some(p) = self.pipes.remove(&(i, d.peer)) {
                self.pipes.remove(&p.to);
                self.nodes[p.to.0].swarm.handle_peer_closed(now, p.to.1);
            }
            self.disconnects.push((i, d));
        }
        while let Some(op) = self.nodes[i].swarm.poll_disk_op() {
            progress = true;
            let result = self.nodes[i].run(op);
            self.nodes[i].swarm.handle_disk_result(now, result);
        }
        while let Some(e) = self.nodes[i].swarm.poll_event() {
            self.nodes[i].events.push(e);
        }
        while let Some(addr) = self.nodes[i].swarm.poll_connect() {
            progress = true;
            match self.nodes.iter().position(|n| n.addr == addr) {
                Some(j) => self.connect(i, j),
                None => self.nodes[i].swarm.handle_connect_failed(now, addr),
            }
        }
        progress
    }

    /// Moves bytes along the pipes within each sender's bandwidth, then advances time.
    pub fn step(&mut self) {
        self.pump();
        let keys: Vec<(usize, PeerKey)> = self.pipes.keys().copied().collect();
        let mut budget: Vec<usize> = self.nodes.iter().map(|n| n.upload_per_step).collect();
        // Fair share: each sender splits its budget over its busy pipes.
        let mut busy = vec![0usize; self.nodes.len()];
        for k in &keys {
            if self.pipes.get(k).is_some_and(|p| !p.buf.is_empty()) {
                busy[k.0] += 1;
            }
        }
        for k in keys {
            let share = budget[k.0] / busy[k.0].max(1);
            let Some(p) = self.pipes.get_mut(&k) else { continue };
            let n = p.buf.len().min(share.max(1));
            if n == 0 {
                continue;
            }
            budget[k.0] = budget[k.0].saturating_sub(n);
            let chunk: Vec<u8> = p.buf.drain(..n).collect();
            let to = p.to;
            self.nodes[k.0].sent += n as u64;
            self.nodes[to.0].swarm.handle_peer_bytes(self.now, to.1, &chunk);
            self.pump();
        }
        self.now += STEP;
        for i in 0..self.nodes.len() {
            if self.nodes[i].swarm.poll_timeout().is_some_and(|t| t <= self.now) {
                let now = self.now;
                self.nodes[i].swarm.handle_timeout(now);
            }
        }
        self.pump();
    }

    /// Steps until `done` or `max_steps`; returns the steps taken.
    pub fn run_until(&mut self, max_steps: usize, done: impl Fn(&Net) -> bool) -> usize {
        for s in 0..max_steps {
            if done(self) {
                return s;
            }
            self.step();
        }
        max_steps
    }
}

impl Node {
    fn span(&self, piece: u32, begin: u32, len: u32) -> std::ops::Range<usize> {
        let start = (self.offsets[piece as usize] + u64::from(begin)) as usize;
        start..start + len as usize
    }

    fn run(&mut self, op: DiskOp) -> DiskResult {
        match op {
            DiskOp::Read { peer, piece, begin, len } => {
                let mut data = self.disk[self.span(piece, begin, len)].to_vec();
                if self.corrupt {
                    data[0] ^= 0xff;
                }
                DiskResult::Read { peer, piece, begin, data: Bytes::from(data) }
            }
            DiskOp::Write { piece, begin, data } => {
                let span = self.span(piece, begin, data.len() as u32);
                self.disk[span].copy_from_slice(&data);
                DiskResult::Written { piece, begin }
            }
            DiskOp::Hash { piece, len, sha1, v2_len } => {
                let bytes = &self.disk[self.span(piece, 0, len)];
                let sha1 = sha1.then(|| <[u8; 20]>::from(Sha1::digest(bytes)));
                let blocks = v2_len
                    .map(|l| {
                        bytes[..l as usize]
                            .chunks(BLOCK_LEN as usize)
                            .map(|c| <[u8; 32]>::from(Sha256::digest(c)))
                            .collect()
                    })
                    .unwrap_or_default();
                DiskResult::Hashed { piece, sha1, blocks }
            }
        }
    }

    pub fn completed(&self) -> bool {
        self.events.contains(&Event::Completed)
    }
}
