//! [`Frame`]: one complete received message that owns its bytes.

use bytes::Bytes;

use crate::decode::parse_frame;
use crate::message::id;
use crate::Message;

/// Bytes before a `piece` message's block: length prefix, id, index and begin.
const PIECE_HEADER_LEN: usize = 4 + 1 + 4 + 4;

/// One complete, validated message as it came off the wire (length prefix included),
/// owning its bytes.
///
/// Made only by [`FrameDecoder::next_frame`](crate::FrameDecoder::next_frame), after the
/// length checks of [`decode`](crate::decode), so [`message`](Self::message) cannot fail.
/// Usually the bytes are a slice of a buffer handed to
/// [`FrameDecoder::extend_bytes`](crate::FrameDecoder::extend_bytes), so a `piece` block
/// reaches the disk queue without a copy ([`piece_block`](Self::piece_block)). Unlike a
/// [`Message`] from [`FrameDecoder::next`](crate::FrameDecoder::next) it does not borrow
/// the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
}

impl Frame {
    /// Wraps the bytes of one frame that [`decode`](crate::decode) accepted whole.
    pub(crate) fn new_unchecked(bytes: Bytes) -> Self {
        Frame { bytes }
    }

    /// The message, borrowing from the frame.
    pub fn message(&self) -> Message<'_> {
        parse_frame(&self.bytes)
    }

    /// For a `piece` message, its block as a slice of the frame (no copy); `None` for any
    /// other message.
    pub fn piece_block(&self) -> Option<Bytes> {
        (self.bytes.get(4) == Some(&id::PIECE)).then(|| self.bytes.slice(PIECE_HEADER_LEN..))
    }

    /// The frame's bytes, length prefix included.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_block_is_a_slice_of_the_frame() {
        let mut wire = Vec::new();
        Message::Piece { index: 3, begin: 16, block: &[9; 40] }.encode(&mut wire);
        let f = Frame::new_unchecked(Bytes::from(wire));
        let block = f.piece_block().expect("a piece");
        assert_eq!(block, Bytes::from_static(&[9; 40]));
        assert_eq!(block.as_ptr(), f.as_bytes()[PIECE_HEADER_LEN..].as_ptr());
        assert_eq!(f.message(), Message::Piece { index: 3, begin: 16, block: &[9; 40] });
    }

    #[test]
    fn others_have_no_block() {
        let f = Frame::new_unchecked(Bytes::from_static(&[0, 0, 0, 0]));
        assert_eq!(f.message(), Message::KeepAlive);
        assert_eq!(f.piece_block(), None);
        let f = Frame::new_unchecked(Bytes::from_static(&[0, 0, 0, 5, 4, 0, 0, 0, 7]));
        assert_eq!(f.message(), Message::Have(7));
        assert_eq!(f.piece_block(), None);
    }
}
