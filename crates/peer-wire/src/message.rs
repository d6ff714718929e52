//! The messages that follow the handshake (BEP 3, 5, 6, 10, 52) and their encoding.
//!
//! Every message is a 4-byte big-endian length, then (unless the length is 0, a
//! keep-alive) a one-byte id and the payload. All integers are 4-byte big-endian, except
//! the 2-byte port.

/// Message ids, as they appear in the byte after the length prefix.
pub mod id {
    /// BEP 3 `choke`.
    pub const CHOKE: u8 = 0;
    /// BEP 3 `unchoke`.
    pub const UNCHOKE: u8 = 1;
    /// BEP 3 `interested`.
    pub const INTERESTED: u8 = 2;
    /// BEP 3 `not interested`.
    pub const NOT_INTERESTED: u8 = 3;
    /// BEP 3 `have`.
    pub const HAVE: u8 = 4;
    /// BEP 3 `bitfield`.
    pub const BITFIELD: u8 = 5;
    /// BEP 3 `request`.
    pub const REQUEST: u8 = 6;
    /// BEP 3 `piece`.
    pub const PIECE: u8 = 7;
    /// BEP 3 `cancel`.
    pub const CANCEL: u8 = 8;
    /// BEP 5 `port` (the sender's DHT port).
    pub const PORT: u8 = 9;
    /// BEP 6 `suggest piece`.
    pub const SUGGEST_PIECE: u8 = 0x0d;
    /// BEP 6 `have all`.
    pub const HAVE_ALL: u8 = 0x0e;
    /// BEP 6 `have none`.
    pub const HAVE_NONE: u8 = 0x0f;
    /// BEP 6 `reject request` (BEP 52 adopts it as `reject`).
    pub const REJECT_REQUEST: u8 = 0x10;
    /// BEP 6 `allowed fast`.
    pub const ALLOWED_FAST: u8 = 0x11;
    /// BEP 10 `extended`.
    pub const EXTENDED: u8 = 20;
    /// BEP 52 `hash request`.
    pub const HASH_REQUEST: u8 = 21;
    /// BEP 52 `hashes`.
    pub const HASHES: u8 = 22;
    /// BEP 52 `hash reject`.
    pub const HASH_REJECT: u8 = 23;

    /// Whether `id` names a message this crate decodes into its own variant; every other
    /// id decodes as [`Message::Unknown`](crate::Message::Unknown).
    pub const fn is_known(id: u8) -> bool {
        matches!(id, 0..=9 | 0x0d..=0x11 | 20..=23)
    }
}

/// Size of the fixed part of the BEP 52 hash messages: pieces root, base layer, index,
/// length, proof layers.
pub(crate) const HASH_HEADER_LEN: usize = 32 + 4 * 4;

/// One peer wire message, borrowing its variable-length parts from the received buffer.
///
/// A decoded message is well-formed in framing and sizes: fixed-size messages had the right
/// length, `hashes` carries whole 32-byte hashes, and [`Unknown`](Message::Unknown) is only
/// ever an id this crate does not know (see [`id::is_known`]). What the values mean for a
/// torrent (is the index below the piece count, was this block requested, is the block
/// length 16 KiB) is for the swarm engine to judge.
///
/// Building an `Unknown` with a known id, or `Hashes` whose `hashes` is not a multiple of 32
/// bytes, encodes bytes that decode differently; nothing else can go wrong when encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message<'a> {
    /// Length 0: keeps the connection alive.
    KeepAlive,
    /// The sender will not serve requests.
    Choke,
    /// The sender will serve requests.
    Unchoke,
    /// The sender wants pieces the receiver has.
    Interested,
    /// The sender wants nothing the receiver has.
    NotInterested,
    /// The sender completed and verified this piece.
    Have(u32),
    /// The pieces the sender has, high bit of the first byte is piece 0; see
    /// [`Bitfield`](crate::Bitfield) to check it against the piece count.
    Bitfield(&'a [u8]),
    /// Asks for `length` bytes of piece `index` at offset `begin`.
    Request {
        /// Piece index.
        index: u32,
        /// Byte offset within the piece.
        begin: u32,
        /// Bytes asked for.
        length: u32,
    },
    /// A block of data.
    Piece {
        /// Piece index.
        index: u32,
        /// Byte offset within the piece.
        begin: u32,
        /// The data.
        block: &'a [u8],
    },
    /// Withdraws a request.
    Cancel {
        /// Piece index.
        index: u32,
        /// Byte offset within the piece.
        begin: u32,
        /// Bytes that were asked for.
        length: u32,
    },
    /// BEP 5: the sender's DHT node listens on this UDP port.
    Port(u16),
    /// BEP 6: the sender has every piece (instead of a bitfield).
    HaveAll,
    /// BEP 6: the sender has no piece (instead of a bitfield).
    HaveNone,
    /// BEP 6: the sender suggests downloading this piece.
    SuggestPiece(u32),
    /// BEP 6: the sender will not serve this request.
    RejectRequest {
        /// Piece index.
        index: u32,
        /// Byte offset within the piece.
        begin: u32,
        /// Bytes that were asked for.
        length: u32,
    },
    /// BEP 6: the receiver may request this piece even while choked.
    AllowedFast(u32),
    /// BEP 10: an extension message; `id` 0 is the extended handshake, other ids are
    /// those the receiver assigned in its own extended handshake.
    Extended {
        /// Extended message id.
        id: u8,
        /// The payload (bencode, possibly followed by raw bytes for `ut_metadata` data).
        payload: &'a [u8],
    },
    /// BEP 52: asks for hashes of the merkle tree of the file with root `pieces_root`.
    HashRequest {
        /// Root of the file's merkle tree.
        pieces_root: [u8; 32],
        /// Layers above the leaves where the requested hashes are (0: block hashes).
        base_layer: u32,
        /// Offset of the first requested hash in the base layer.
        index: u32,
        /// How many hashes of the base layer.
        length: u32,
        /// How many ancestor layers of proof to include.
        proof_layers: u32,
    },
    /// BEP 52: the answer to a hash request.
    Hashes {
        /// Root of the file's merkle tree.
        pieces_root: [u8; 32],
        /// Layers above the leaves where the hashes start.
        base_layer: u32,
        /// Offset of the first hash in the base layer.
        index: u32,
        /// How many hashes of the base layer.
        length: u32,
        /// Ancestor layers of proof asked for.
        proof_layers: u32,
        /// The hashes, 32 bytes each: the base layer's, then the uncle hashes.
        hashes: &'a [u8],
    },
    /// BEP 52: the sender will not serve this hash request.
    HashReject {
        /// Root of the file's merkle tree.
        pieces_root: [u8; 32],
        /// Layers above the leaves, as requested.
        base_layer: u32,
        /// Offset of the first hash, as requested.
        index: u32,
        /// Number of hashes, as requested.
        length: u32,
        /// Proof layers, as requested.
        proof_layers: u32,
    },
    /// A message id this crate does not know; BEP 3 peers ignore those.
    Unknown {
        /// The id byte.
        id: u8,
        /// Everything after it.
        payload: &'a [u8],
    },
}

impl Message<'_> {
    /// The id byte, or `None` for a keep-alive (which has none).
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have(_) => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request { .. } => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel { .. } => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::SuggestPiece(_) => id::SUGGEST_PIECE,
            Message::RejectRequest { .. } => id::REJECT_REQUEST,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
            Message::HashRequest { .. } => id::HASH_REQUEST,
            Message::Hashes { .. } => id::HASHES,
            Message::HashReject { .. } => id::HASH_REJECT,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// The exact number of bytes [`encode`](Self::encode) appends, length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + self.body_len()
    }

    /// The value of the length prefix: id byte plus payload.
    fn body_len(&self) -> usize {
        match self {
            Message::KeepAlive => 0,
            Message::Choke | Message::Unchoke | Message::Interested | Message::NotInterested => 1,
            Message::HaveAll | Message::HaveNone => 1,
            Message::Have(_) | Message::SuggestPiece(_) | Message::AllowedFast(_) => 5,
            Message::Request { .. } | Message::Cancel { .. } | Message::RejectRequest { .. } => 13,
            Message::Port(_) => 3,
            Message::Bitfield(b) => 1 + b.len(),
            Message::Piece { block, .. } => 9 + block.len(),
            Message::Extended { payload, .. } => 2 + payload.len(),
            Message::HashRequest { .. } | Message::HashReject { .. } => 1 + HASH_HEADER_LEN,
            Message::Hashes { hashes, .. } => 1 + HASH_HEADER_LEN + hashes.len(),
            Message::Unknown { payload, .. } => 1 + payload.len(),
        }
    }

    /// Appends the message, length prefix included, to `out`.
    ///
    /// # Panics
    ///
    /// If the message is longer than `u32::MAX` bytes, which no length prefix can express
    /// (a caller bug: no block, bitfield or payload comes near that).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let body = self.body_len();
        let prefix = u32::try_from(body).expect("peer wire message longer than u32::MAX bytes");
        out.reserve(4 + body);
        out.extend_from_slice(&prefix.to_be_bytes());
        let Some(id) = self.id() else {
            return;
        };
        out.push(id);
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have(i) | Message::SuggestPiece(i) | Message::AllowedFast(i) => put_u32(out, *i),
            Message::Request { index, begin, length }
            | Message::Cancel { index, begin, length }
            | Message::RejectRequest { index, begin, length } => {
                put_u32(out, *index);
                put_u32(out, *begin);
                put_u32(out, *length);
            }
            Message::Port(p) => out.extend_from_slice(&p.to_be_bytes()),
            Message::Bitfield(b) => out.extend_from_slice(b),
            Message::Piece { index, begin, block } => {
                put_u32(out, *index);
                put_u32(out, *begin);
                out.extend_from_slice(block);
            }
            Message::Extended { id, payload } => {
                out.push(*id);
                out.extend_from_slice(payload);
            }
            Message::HashRequest { pieces_root, base_layer, index, length, proof_layers }
            | Message::HashReject { pieces_root, base_layer, index, length, proof_layers } => {
                put_hash_header(out, pieces_root, [*base_layer, *index, *length, *proof_layers]);
            }
            Message::Hashes { pieces_root, base_layer, index, length, proof_layers, hashes } => {
                debug_assert_eq!(hashes.len() % 32, 0, "hashes must be whole 32-byte hashes");
                put_hash_header(out, pieces_root, [*base_layer, *index, *length, *proof_layers]);
                out.extend_from_slice(hashes);
            }
            Message::Unknown { payload, .. } => out.extend_from_slice(payload),
        }
    }
}

/// The 13 bytes that precede a block of `block_len` bytes in a `piece` message: length
/// prefix, id, index, begin.
///
/// Lets a sender write the header and then the block straight from its disk buffer (a
/// vectored write) instead of copying the block into a message buffer.
///
/// # Panics
///
/// If `block_len > u32::MAX - 9` (a caller bug).
pub fn piece_header(index: u32, begin: u32, block_len: usize) -> [u8; 13] {
    let len = u32::try_from(block_len)
        .ok()
        .and_then(|l| l.checked_add(9))
        .expect("piece block longer than a length prefix can express");
    let mut out = [0u8; 13];
    out[..4].copy_from_slice(&len.to_be_bytes());
    out[4] = id::PIECE;
    out[5..9].copy_from_slice(&index.to_be_bytes());
    out[9..].copy_from_slice(&begin.to_be_bytes());
    out
}

/// Appends the 6 bytes that precede an extension payload of `payload_len` bytes: length
/// prefix, id 20, extended id. The payload follows (see
/// [`ExtendedHandshake::encode`](crate::ExtendedHandshake::encode),
/// [`UtMetadata::encode`](crate::UtMetadata::encode)).
///
/// # Panics
///
/// If `payload_len > u32::MAX - 2` (a caller bug).
pub fn encode_extended_header(extended_id: u8, payload_len: usize, out: &mut Vec<u8>) {
    let len = u32::try_from(payload_len)
        .ok()
        .and_then(|l| l.checked_add(2))
        .expect("extension payload longer than a length prefix can express");
    out.extend_from_slice(&len.to_be_bytes());
    out.push(id::EXTENDED);
    out.push(extended_id);
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_hash_header(out: &mut Vec<u8>, root: &[u8; 32], fields: [u32; 4]) {
    out.extend_from_slice(root);
    for f in fields {
        put_u32(out, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(m: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out.len(), m.encoded_len(), "{m:?}");
        out
    }

    #[test]
    fn fixed_messages_bytes() {
        assert_eq!(enc(&Message::KeepAlive), [0, 0, 0, 0]);
        assert_eq!(enc(&Message::Choke), [0, 0, 0, 1, 0]);
        assert_eq!(enc(&Message::Unchoke), [0, 0, 0, 1, 1]);
        assert_eq!(enc(&Message::Interested), [0, 0, 0, 1, 2]);
        assert_eq!(enc(&Message::NotInterested), [0, 0, 0, 1, 3]);
        assert_eq!(enc(&Message::Have(0x0102_0304)), [0, 0, 0, 5, 4, 1, 2, 3, 4]);
        assert_eq!(enc(&Message::Port(6881)), [0, 0, 0, 3, 9, 0x1a, 0xe1]);
        assert_eq!(enc(&Message::HaveAll), [0, 0, 0, 1, 0x0e]);
        assert_eq!(enc(&Message::HaveNone), [0, 0, 0, 1, 0x0f]);
        assert_eq!(enc(&Message::SuggestPiece(7)), [0, 0, 0, 5, 0x0d, 0, 0, 0, 7]);
        assert_eq!(enc(&Message::AllowedFast(7)), [0, 0, 0, 5, 0x11, 0, 0, 0, 7]);
    }

    #[test]
    fn request_family_bytes() {
        let want = |id: u8| vec![0, 0, 0, 0x0d, id, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0];
        let (index, begin, length) = (1, 0x4000, 0x4000);
        assert_eq!(enc(&Message::Request { index, begin, length }), want(6));
        assert_eq!(enc(&Message::Cancel { index, begin, length }), want(8));
        assert_eq!(enc(&Message::RejectRequest { index, begin, length }), want(0x10));
    }

    #[test]
    fn variable_messages_bytes() {
        assert_eq!(enc(&Message::Bitfield(&[0xa0, 0x01])), [0, 0, 0, 3, 5, 0xa0, 0x01]);
        assert_eq!(
            enc(&Message::Piece { index: 2, begin: 3, block: b"xyz" }),
            [0, 0, 0, 12, 7, 0, 0, 0, 2, 0, 0, 0, 3, b'x', b'y', b'z']
        );
        assert_eq!(enc(&Message::Extended { id: 0, payload: b"de" }), [0, 0, 0, 4, 20, 0, b'd', b'e']);
        assert_eq!(enc(&Message::Unknown { id: 0x42, payload: b"?" }), [0, 0, 0, 2, 0x42, b'?']);
    }

    #[test]
    fn hash_messages_bytes() {
        let root = [0x11; 32];
        let req = Message::HashRequest { pieces_root: root, base_layer: 0, index: 4, length: 2, proof_layers: 3 };
        let out = enc(&req);
        assert_eq!(&out[..5], &[0, 0, 0, 49, 21]);
        assert_eq!(&out[5..37], &root);
        assert_eq!(&out[37..], &[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 3]);
        let rej = Message::HashReject { pieces_root: root, base_layer: 0, index: 4, length: 2, proof_layers: 3 };
        let out_rej = enc(&rej);
        assert_eq!(out_rej[4], 23);
        assert_eq!(out_rej[5..], out[5..]);
        let hashes = [0x22; 64];
        let h =
            Message::Hashes { pieces_root: root, base_layer: 0, index: 4, length: 2, proof_layers: 0, hashes: &hashes };
        let out_h = enc(&h);
        assert_eq!(&out_h[..5], &[0, 0, 0, 49 + 64, 22]);
        assert_eq!(&out_h[53..], &hashes);
    }

    #[test]
    fn piece_header_matches_encode() {
        let block = [9u8; 100];
        let full = enc(&Message::Piece { index: 5, begin: 0x8000, block: &block });
        assert_eq!(piece_header(5, 0x8000, block.len())[..], full[..13]);
    }

    #[test]
    fn extended_header_matches_encode() {
        let full = enc(&Message::Extended { id: 3, payload: b"d1:ai1ee" });
        let mut out = Vec::new();
        encode_extended_header(3, 8, &mut out);
        out.extend_from_slice(b"d1:ai1ee");
        assert_eq!(out, full);
    }

    #[test]
    fn ids() {
        assert_eq!(Message::KeepAlive.id(), None);
        assert_eq!(Message::Piece { index: 0, begin: 0, block: b"" }.id(), Some(7));
        for known in [0u8, 9, 13, 17, 20, 23] {
            assert!(id::is_known(known));
        }
        for unknown in [10u8, 12, 18, 19, 24, 255] {
            assert!(!id::is_known(unknown));
        }
    }
}
