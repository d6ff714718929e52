//! BEP 9 `ut_metadata` messages: fetching the info dictionary from peers in 16 KiB pieces.

use mycel_bencode::{decode_prefix, encoded_int_len, Encoder};

use crate::extension::{int_in, LIMITS, MAX_METADATA_SIZE};
use crate::ExtensionError;

/// Size of every metadata piece but the last (BEP 9): 16 KiB.
pub const METADATA_PIECE_LEN: usize = 16 * 1024;

/// Number of pieces in metadata of the largest size accepted.
const MAX_PIECES: u32 = MAX_METADATA_SIZE / METADATA_PIECE_LEN as u32;

/// One `ut_metadata` message: the payload of an extended message sent under the id the
/// receiver gave `ut_metadata` in its extended handshake.
///
/// Decoded messages are consistent: `piece` is below 4096 (64 MiB of metadata), and for
/// `Data`, `total_size` is in 1..=[`MAX_METADATA_SIZE`], `piece` is one of its pieces, and
/// `data` has exactly that piece's size (16 KiB, or the remainder for the last piece).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UtMetadata<'a> {
    /// `msg_type` 0: asks for a piece of the metadata.
    Request {
        /// Piece index.
        piece: u32,
    },
    /// `msg_type` 1: a piece of the metadata, which follows the dictionary as raw bytes.
    Data {
        /// Piece index.
        piece: u32,
        /// Size of the whole metadata.
        total_size: u32,
        /// The piece's bytes.
        data: &'a [u8],
    },
    /// `msg_type` 2: the sender will not send this piece.
    Reject {
        /// Piece index.
        piece: u32,
    },
}

impl<'a> UtMetadata<'a> {
    /// Decodes a `ut_metadata` payload (the bytes after the extended id).
    ///
    /// An unknown `msg_type` is [`ExtensionError::UnknownMessageType`], which BEP 9 says to
    /// ignore rather than treat as misbehaviour.
    pub fn decode(payload: &'a [u8]) -> Result<Self, ExtensionError> {
        let (value, dict_len) = decode_prefix(payload, &LIMITS)?;
        let d = value.as_dict().ok_or(ExtensionError::NotADict)?;
        let msg_type =
            int_in(d, b"msg_type", "msg_type", i64::MIN, i64::MAX)?.ok_or(ExtensionError::MissingKey("msg_type"))?;
        let piece = int_in(d, b"piece", "piece", 0, i64::from(MAX_PIECES) - 1)?
            .ok_or(ExtensionError::MissingKey("piece"))? as u32;
        let rest = &payload[dict_len..];
        let no_trailing =
            || if rest.is_empty() { Ok(()) } else { Err(ExtensionError::TrailingBytes { len: rest.len() }) };
        match msg_type {
            0 => no_trailing().map(|()| UtMetadata::Request { piece }),
            2 => no_trailing().map(|()| UtMetadata::Reject { piece }),
            1 => {
                let total_size = int_in(d, b"total_size", "total_size", 1, i64::from(MAX_METADATA_SIZE))?
                    .ok_or(ExtensionError::MissingKey("total_size"))? as u32;
                let Some(expected) = metadata_piece_len(total_size, piece) else {
                    return Err(ExtensionError::OutOfRange { key: "piece", value: i64::from(piece) });
                };
                if rest.len() != expected {
                    return Err(ExtensionError::MetadataBlockSize { piece, len: rest.len(), expected });
                }
                Ok(UtMetadata::Data { piece, total_size, data: rest })
            }
            other => Err(ExtensionError::UnknownMessageType(other)),
        }
    }

    /// The piece the message is about.
    pub fn piece(&self) -> u32 {
        match self {
            UtMetadata::Request { piece } | UtMetadata::Data { piece, .. } | UtMetadata::Reject { piece } => *piece,
        }
    }

    /// Appends the payload: the canonical dictionary, then for `Data` the raw bytes. Wrap
    /// it with [`encode_extended_header`](crate::encode_extended_header) using the
    /// receiver's id for `ut_metadata`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut e = Encoder::new(out);
        e.begin_dict();
        e.key(b"msg_type").int(self.msg_type());
        e.key(b"piece").int(i64::from(self.piece()));
        if let UtMetadata::Data { total_size, .. } = self {
            e.key(b"total_size").int(i64::from(*total_size));
        }
        e.end();
        e.finish();
        if let UtMetadata::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
    }

    /// The exact number of bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        // d 8:msg_type i.e 5:piece i.e [10:total_size i.e] e
        let mut n = 2 + 10 + encoded_int_len(self.msg_type()) + 7 + encoded_int_len(i64::from(self.piece()));
        if let UtMetadata::Data { total_size, data, .. } = self {
            n += 13 + encoded_int_len(i64::from(*total_size)) + data.len();
        }
        n
    }

    fn msg_type(&self) -> i64 {
        match self {
            UtMetadata::Request { .. } => 0,
            UtMetadata::Data { .. } => 1,
            UtMetadata::Reject { .. } => 2,
        }
    }
}

/// Number of metadata pieces for metadata of `total_size` bytes.
pub fn metadata_piece_count(total_size: u32) -> u32 {
    total_size.div_ceil(METADATA_PIECE_LEN as u32)
}

/// Size of piece `piece` of metadata of `total_size` bytes, or `None` if there is no such
/// piece.
pub fn metadata_piece_len(total_size: u32, piece: u32) -> Option<usize> {
    let start = u64::from(piece) * METADATA_PIECE_LEN as u64;
    let remaining = u64::from(total_size).checked_sub(start).filter(|&r| r > 0)?;
    Some(remaining.min(METADATA_PIECE_LEN as u64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(m: &UtMetadata<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out.len(), m.encoded_len(), "{m:?}");
        out
    }

    #[test]
    fn bep9_request_example() {
        let golden = b"d8:msg_typei0e5:piecei0ee";
        assert_eq!(UtMetadata::decode(golden), Ok(UtMetadata::Request { piece: 0 }));
        assert_eq!(enc(&UtMetadata::Request { piece: 0 }), golden);
    }

    #[test]
    fn bep9_data_example_with_its_size() {
        // BEP 9: d8:msg_typei1e5:piecei0e10:total_sizei34256eexxxxxxxx... A single piece
        // of a 34256-byte info dictionary is 16 KiB.
        let mut golden = b"d8:msg_typei1e5:piecei0e10:total_sizei34256ee".to_vec();
        golden.extend(std::iter::repeat_n(b'x', METADATA_PIECE_LEN));
        let m = UtMetadata::decode(&golden).expect("valid");
        assert_eq!(m, UtMetadata::Data { piece: 0, total_size: 34256, data: &golden[golden.len() - 16384..] });
        assert_eq!(enc(&m), golden);
        // The last piece of it: 34256 - 2 * 16384 = 1488 bytes.
        let mut last = b"d8:msg_typei1e5:piecei2e10:total_sizei34256ee".to_vec();
        last.extend(std::iter::repeat_n(b'y', 1488));
        assert!(matches!(UtMetadata::decode(&last), Ok(UtMetadata::Data { piece: 2, data, .. }) if data.len() == 1488));
    }

    #[test]
    fn bep9_reject_example_is_the_typo() {
        // BEP 9 gives `d8:msg_typei1e5:piecei0ee` as the reject example, a copy of the
        // request line with msg_type 1: without total_size that is not a data message.
        assert_eq!(UtMetadata::decode(b"d8:msg_typei1e5:piecei0ee"), Err(ExtensionError::MissingKey("total_size")));
        let reject = b"d8:msg_typei2e5:piecei0ee";
        assert_eq!(UtMetadata::decode(reject), Ok(UtMetadata::Reject { piece: 0 }));
        assert_eq!(enc(&UtMetadata::Reject { piece: 0 }), reject);
    }

    #[test]
    fn malformed() {
        let mut data_short = b"d8:msg_typei1e5:piecei0e10:total_sizei20000ee".to_vec();
        data_short.extend([0; 100]);
        assert_eq!(
            UtMetadata::decode(&data_short),
            Err(ExtensionError::MetadataBlockSize { piece: 0, len: 100, expected: 16384 })
        );
        let cases: [(&[u8], ExtensionError); 7] = [
            (b"d8:msg_typei0ee", ExtensionError::MissingKey("piece")),
            (b"d5:piecei0ee", ExtensionError::MissingKey("msg_type")),
            (b"d8:msg_typei0e5:piecei-1ee", ExtensionError::OutOfRange { key: "piece", value: -1 }),
            (b"d8:msg_typei0e5:piecei4096ee", ExtensionError::OutOfRange { key: "piece", value: 4096 }),
            (b"d8:msg_typei0e5:piecei0eexx", ExtensionError::TrailingBytes { len: 2 }),
            (b"d8:msg_typei7e5:piecei0ee", ExtensionError::UnknownMessageType(7)),
            (
                b"d8:msg_typei1e5:piecei0e10:total_sizei67108865ee",
                ExtensionError::OutOfRange { key: "total_size", value: 67_108_865 },
            ),
        ];
        for (input, err) in cases {
            assert_eq!(UtMetadata::decode(input), Err(err), "{}", String::from_utf8_lossy(input));
        }
        // Piece 1 of 100 bytes of metadata does not exist.
        assert_eq!(
            UtMetadata::decode(b"d8:msg_typei1e5:piecei1e10:total_sizei100ee"),
            Err(ExtensionError::OutOfRange { key: "piece", value: 1 })
        );
        assert_eq!(UtMetadata::decode(b"i1e"), Err(ExtensionError::NotADict));
    }

    #[test]
    fn piece_arithmetic() {
        assert_eq!(metadata_piece_count(1), 1);
        assert_eq!(metadata_piece_count(16384), 1);
        assert_eq!(metadata_piece_count(16385), 2);
        assert_eq!(metadata_piece_len(16385, 1), Some(1));
        assert_eq!(metadata_piece_len(16384, 1), None);
        assert_eq!(metadata_piece_len(MAX_METADATA_SIZE, MAX_PIECES - 1), Some(METADATA_PIECE_LEN));
        assert_eq!(metadata_piece_len(0, 0), None);
    }
}
