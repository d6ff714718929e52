//! v2 block-level blame: two peers send the blocks of one piece, one of them a bad block;
//! a third peer's leaf hashes name the bad block, its sender alone is banned and only that
//! block is fetched again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::net::SocketAddr;
use std::time::Instant;

use mycel_peer_wire::{decode, Bitfield, Decoded, Handshake, Message, Reserved};
use mycel_swarm::{BanReason, Config, DiskOp, DiskResult, Event, PeerKey, Swarm};
use sha2::{Digest, Sha256};

const LEN: usize = 64 * 1024;

fn msgs(bytes: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Ok(Decoded::Message { msg, consumed }) = decode(&bytes[pos..], 1 << 20) {
        out.push(msg);
        pos += consumed;
    }
    out
}

fn enc(m: Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

struct Rig {
    s: Swarm,
    now: Instant,
    disk: Vec<u8>,
    events: Vec<Event>,
    pending: std::collections::BTreeMap<u64, Vec<u8>>,
}

impl Rig {
    /// Runs disk ops against the in-memory disk until none are left.
    fn disk(&mut self) {
        while let Some(op) = self.s.poll_disk_op() {
            let result = match op {
                DiskOp::Write { piece, begin, data } => {
                    self.disk[begin as usize..begin as usize + data.len()].copy_from_slice(&data);
                    DiskResult::Written { piece, begin }
                }
                DiskOp::Hash { piece, len, v2_len, .. } => {
                    let bytes = &self.disk[..len as usize];
                    let l = v2_len.unwrap_or(0) as usize;
                    let blocks = bytes[..l].chunks(16384).map(|c| <[u8; 32]>::from(Sha256::digest(c))).collect();
                    DiskResult::Hashed { piece, sha1: None, blocks }
                }
                DiskOp::Read { .. } => panic!("nothing to serve"),
            };
            self.s.handle_disk_result(self.now, result);
        }
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
    }

    /// Connects a hand-driven seed at 10.0.0.`n` and returns what the engine sent it.
    fn seed(&mut self, n: u8) {
        let key = PeerKey(u64::from(n));
        let addr: SocketAddr = SocketAddr::from(([10, 0, 0, n], 6881));
        self.s.handle_peer_connected(self.now, key, addr, false);
        let hs =
            Handshake { reserved: Reserved::NONE.with_fast_extension(true), info_hash: [0xcd; 20], peer_id: [n; 20] };
        let mut bytes = hs.to_bytes().to_vec();
        bytes.extend(enc(Message::HaveAll));
        self.s.handle_peer_bytes(self.now, key, &bytes);
    }

    /// Everything the engine sent to `key` since the last call.
    fn sent_to(&mut self, key: u64) -> Vec<u8> {
        while let Some(t) = self.s.poll_transmit() {
            self.pending.entry(t.peer.0).or_default().extend(t.data);
        }
        self.pending.remove(&key).unwrap_or_default()
    }
}

#[test]
fn bad_block_sender_alone_is_banned() {
    let (data, layout) = harness::v2_torrent(&[LEN], LEN as u32, 11);
    // Test origin for virtual time.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let s = Swarm::new(Config::default(), layout, [1; 20], [0; 32], now, Bitfield::new(1)).unwrap();
    let mut rig = Rig { s, now, disk: vec![0; LEN], events: Vec::new(), pending: Default::default() };
    for n in [2, 3, 4] {
        rig.seed(n);
        rig.sent_to(u64::from(n));
    }
    // Peer 2 unchokes: it is asked for blocks 0 and 1; then peer 3 for blocks 2 and 3.
    let mut asked = Vec::new();
    for n in [2u64, 3] {
        rig.s.handle_peer_bytes(now, PeerKey(n), &enc(Message::Unchoke));
        let out = rig.sent_to(n);
        for m in msgs(&out) {
            if let Message::Request { index, begin, length } = m {
                asked.push((n, index, begin, length));
            }
        }
    }
    assert_eq!(asked.len(), 4, "{asked:?}");
    assert_eq!(asked.iter().filter(|a| a.0 == 3).map(|a| a.2).collect::<Vec<_>>(), vec![2 * 16384, 3 * 16384]);
    for &(n, index, begin, length) in &asked {
        let mut block = data[begin as usize..(begin + length) as usize].to_vec();
        if n == 3 && begin == 2 * 16384 {
            block[100] ^= 1;
        }
        rig.s.handle_peer_bytes(now, PeerKey(n), &enc(Message::Piece { index, begin, block: &block }));
        rig.disk();
    }
    // Peer 2 also got end-game duplicates of blocks 2 and 3, cancelled when they came.
    let to_2 = rig.sent_to(2);
    assert_eq!(msgs(&to_2).iter().filter(|m| matches!(m, Message::Cancel { .. })).count(), 2);
    // The root does not match: the non-contributor (peer 4) is asked for the leaf hashes.
    let out = rig.sent_to(4);
    let req = msgs(&out).into_iter().find(|m| matches!(m, Message::HashRequest { .. })).expect("hash request");
    let Message::HashRequest { pieces_root, index, length, .. } = req else { unreachable!() };
    assert_eq!((index, length), (0, 4));
    let leaves: Vec<u8> = data.chunks(16384).flat_map(|c| Sha256::digest(c).to_vec()).collect();
    let answer = Message::Hashes { pieces_root, base_layer: 0, index, length, proof_layers: 0, hashes: &leaves };
    rig.s.handle_peer_bytes(now, PeerKey(4), &enc(answer));
    rig.disk();
    let bans: Vec<_> = rig.events.iter().filter(|e| matches!(e, Event::PeerBanned { .. })).collect();
    assert_eq!(bans, vec![&Event::PeerBanned { addr: [10, 0, 0, 3].into(), reason: BanReason::BadBlock }]);
    // Only block 2 is requested again, from an honest peer.
    let mut again = Vec::new();
    for n in [2u64, 4] {
        rig.s.handle_peer_bytes(now, PeerKey(n), &enc(Message::Unchoke));
        let out: Vec<u8> = rig.sent_to(n);
        for m in msgs(&out) {
            if let Message::Request { begin, .. } = m {
                again.push((n, begin));
            }
        }
    }
    // (The last free block is end-game: both honest peers may be asked for it.)
    assert!(!again.is_empty() && again.iter().all(|&(n, b)| b == 2 * 16384 && n != 3), "{again:?}");
    let (n, begin) = again[0];
    let block = &data[begin as usize..begin as usize + 16384];
    rig.s.handle_peer_bytes(now, PeerKey(n), &enc(Message::Piece { index: 0, begin, block }));
    rig.disk();
    assert!(rig.events.contains(&Event::PieceVerified { piece: 0 }));
    assert!(rig.events.contains(&Event::Completed));
    assert_eq!(rig.disk, data);
}
