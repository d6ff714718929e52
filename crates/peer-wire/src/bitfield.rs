//! [`Bitfield`]: the set of pieces a peer (or we) have, as BEP 3 lays it out.

use crate::BitfieldError;

/// Which of a torrent's pieces are present: piece 0 is the high bit of byte 0.
///
/// Always consistent with its piece count: exactly `ceil(pieces / 8)` bytes, spare bits at
/// the end zero, and the number of set bits cached so [`count`](Self::count),
/// [`is_full`](Self::is_full) and [`is_empty`](Self::is_empty) are `O(1)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bitfield {
    bytes: Vec<u8>,
    pieces: u32,
    ones: u32,
}

impl Bitfield {
    /// A bitfield of `pieces` pieces with none set (what `have none` means).
    pub fn new(pieces: u32) -> Self {
        Bitfield { bytes: vec![0; byte_len(pieces)], pieces, ones: 0 }
    }

    /// A bitfield of `pieces` pieces with all set (what `have all` means).
    pub fn full(pieces: u32) -> Self {
        let mut bytes = vec![0xff; byte_len(pieces)];
        if let (Some(last), rem @ 1..) = (bytes.last_mut(), pieces % 8) {
            *last = 0xff << (8 - rem);
        }
        Bitfield { bytes, pieces, ones: pieces }
    }

    /// Checks the payload of a `bitfield` message against the torrent's piece count: the
    /// length must be `ceil(pieces / 8)` and the spare bits zero.
    pub fn from_bytes(bytes: &[u8], pieces: u32) -> Result<Self, BitfieldError> {
        let expected = byte_len(pieces);
        if bytes.len() != expected {
            return Err(BitfieldError::BadLength { len: bytes.len(), pieces, expected });
        }
        if let (Some(&last), rem @ 1..) = (bytes.last(), pieces % 8) {
            if last & (0xff >> rem) != 0 {
                return Err(BitfieldError::SpareBits { pieces });
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Bitfield { bytes: bytes.to_vec(), pieces, ones })
    }

    /// The number of pieces (bits that count).
    pub fn len(&self) -> u32 {
        self.pieces
    }

    /// Whether no piece is set.
    pub fn is_empty(&self) -> bool {
        self.ones == 0
    }

    /// Whether every piece is set (a seed). A torrent of zero pieces is both full and empty.
    pub fn is_full(&self) -> bool {
        self.ones == self.pieces
    }

    /// The number of pieces set.
    pub fn count(&self) -> u32 {
        self.ones
    }

    /// Whether piece `index` is set; `false` for an index out of range.
    pub fn has(&self, index: u32) -> bool {
        index < self.pieces && self.bytes[byte_of(index)] & mask(index) != 0
    }

    /// Sets piece `index`; returns whether it was newly set (`have` for a piece the peer
    /// already announced gives `Ok(false)`).
    pub fn set(&mut self, index: u32) -> Result<bool, BitfieldError> {
        self.check(index)?;
        let b = &mut self.bytes[byte_of(index)];
        let newly = *b & mask(index) == 0;
        *b |= mask(index);
        self.ones += u32::from(newly);
        Ok(newly)
    }

    /// Clears piece `index`; returns whether it was set.
    pub fn clear(&mut self, index: u32) -> Result<bool, BitfieldError> {
        self.check(index)?;
        let b = &mut self.bytes[byte_of(index)];
        let was = *b & mask(index) != 0;
        *b &= !mask(index);
        self.ones -= u32::from(was);
        Ok(was)
    }

    /// The indices of the set pieces, in increasing order (skips zero bytes quickly).
    pub fn iter_set(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes.iter().enumerate().filter(|(_, &b)| b != 0).flat_map(|(i, &b)| {
            let base = (i as u32) * 8;
            (0..8u32).filter(move |bit| b & (0x80 >> bit) != 0).map(move |bit| base + bit)
        })
    }

    /// The bytes as a `bitfield` message carries them:
    /// `Message::Bitfield(bf.as_bytes())`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn check(&self, index: u32) -> Result<(), BitfieldError> {
        if index < self.pieces {
            Ok(())
        } else {
            Err(BitfieldError::OutOfRange { index, pieces: self.pieces })
        }
    }
}

fn byte_len(pieces: u32) -> usize {
    pieces.div_ceil(8) as usize
}

fn byte_of(index: u32) -> usize {
    (index / 8) as usize
}

fn mask(index: u32) -> u8 {
    0x80 >> (index % 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_high_bit_first() {
        let mut bf = Bitfield::new(10);
        assert_eq!(bf.as_bytes(), &[0, 0]);
        assert_eq!(bf.set(0), Ok(true));
        assert_eq!(bf.set(9), Ok(true));
        assert_eq!(bf.set(9), Ok(false));
        assert_eq!(bf.as_bytes(), &[0x80, 0x40]);
        assert_eq!(bf.count(), 2);
        assert!(bf.has(0) && bf.has(9) && !bf.has(1) && !bf.has(10) && !bf.has(u32::MAX));
        assert_eq!(bf.iter_set().collect::<Vec<_>>(), vec![0, 9]);
        assert_eq!(bf.clear(0), Ok(true));
        assert_eq!(bf.clear(0), Ok(false));
        assert_eq!(bf.count(), 1);
        assert_eq!(bf.set(10), Err(BitfieldError::OutOfRange { index: 10, pieces: 10 }));
        assert_eq!(bf.clear(10), Err(BitfieldError::OutOfRange { index: 10, pieces: 10 }));
    }

    #[test]
    fn full_and_empty() {
        for pieces in [0u32, 1, 7, 8, 9, 16, 17] {
            let full = Bitfield::full(pieces);
            assert!(full.is_full(), "{pieces}");
            assert_eq!(full.count(), pieces);
            assert_eq!(Bitfield::from_bytes(full.as_bytes(), pieces).as_ref(), Ok(&full));
            assert_eq!(full.iter_set().count() as u32, pieces);
            let empty = Bitfield::new(pieces);
            assert!(empty.is_empty());
            assert_eq!(empty.len(), pieces);
            assert_eq!(empty.is_full(), pieces == 0);
        }
        assert_eq!(Bitfield::full(9).as_bytes(), &[0xff, 0x80]);
    }

    #[test]
    fn from_bytes_checks_length_and_spare_bits() {
        assert_eq!(Bitfield::from_bytes(&[0xff], 9), Err(BitfieldError::BadLength { len: 1, pieces: 9, expected: 2 }));
        assert_eq!(
            Bitfield::from_bytes(&[0, 0, 0], 9),
            Err(BitfieldError::BadLength { len: 3, pieces: 9, expected: 2 })
        );
        assert_eq!(Bitfield::from_bytes(&[0xff, 0x40], 9), Err(BitfieldError::SpareBits { pieces: 9 }));
        assert_eq!(Bitfield::from_bytes(&[0xff, 0x01], 15), Err(BitfieldError::SpareBits { pieces: 15 }));
        let bf = Bitfield::from_bytes(&[0xa5, 0x80], 9).expect("valid");
        assert_eq!(bf.count(), 5);
        assert_eq!(bf.iter_set().collect::<Vec<_>>(), vec![0, 2, 5, 7, 8]);
        assert!(Bitfield::from_bytes(&[], 0).is_ok());
    }
}
