//! [`FrameDecoder`]: a receive buffer with the handshake and message decoders on top.

use bytes::{Buf, Bytes, BytesMut};

use crate::message::id;
use crate::{decode, Decoded, Frame, Handshake, HandshakeDecoded, Message, WireError, HANDSHAKE_LEN};

/// Owns the receive buffer of one connection and decodes from it, copying as little as
/// the chunking allows.
///
/// Sans-IO: the driver reads from the socket and hands the bytes over with
/// [`extend_bytes`](Self::extend_bytes) (taking ownership of its read buffer) or
/// [`extend`](Self::extend) (a copy); complete messages come out of
/// [`next_frame`](Self::next_frame) as owned [`Frame`]s, or of [`next`](Self::next) as a
/// [`Message`] borrowing the decoder until the next call.
///
/// A frame that lies within one received chunk is a [`Bytes`] slice of it, so a `piece`
/// block goes on to the disk without a copy ([`Frame::piece_block`]). A frame that
/// straddles chunks is copied once into one contiguous buffer, sized exactly once its
/// length prefix is in. A chunk that is less than half `piece` payload (mostly small
/// messages, or padding) has its frames copied instead, so the blocks cut from a chunk
/// keep alive at most twice their own bytes (all of it, though, while any one of them is
/// held).
///
/// Calling contract, for one connection:
///
/// ```
/// use bytes::Bytes;
/// use mycel_peer_wire::{FrameDecoder, Handshake, Message, Reserved, DEFAULT_MAX_MESSAGE_LEN};
/// # let hs = Handshake { reserved: Reserved::NONE, info_hash: [1; 20], peer_id: [2; 20] };
/// # let mut socket_bytes = hs.to_bytes().to_vec();
/// # Message::Have(3).encode(&mut socket_bytes);
/// let mut rx = FrameDecoder::new(DEFAULT_MAX_MESSAGE_LEN);
/// let mut handshake = None;
/// // for each read from the socket:
/// rx.extend_bytes(Bytes::from(socket_bytes));
/// if handshake.is_none() {
///     handshake = rx.handshake()?; // Ok(None): wait for more bytes
/// }
/// if handshake.is_some() {
///     while let Some(frame) = rx.next_frame()? {
///         // handle frame.message(); a piece's block is frame.piece_block()
///         assert_eq!(frame.message(), Message::Have(3));
///     }
/// }
/// // any Err: the peer is broken or hostile, drop the connection
/// # Ok::<(), mycel_peer_wire::WireError>(())
/// ```
///
/// Memory is bounded: after [`next_frame`](Self::next_frame) (or [`next`](Self::next))
/// returns `Ok(None)` the decoder holds no chunk, only the start of the next frame, less
/// than [`max_buffered`](Self::max_buffered) bytes, because a length prefix over `max_len`
/// is an error as soon as its 4 bytes arrive. The driver should drain before extending
/// again; extending twice without draining keeps the first chunk's rest by copying it.
#[derive(Debug)]
pub struct FrameDecoder {
    /// The front of the stream when it straddles chunks: the start of one frame (or of the
    /// handshake) copied together. Empty in the common case, where frames are cut from
    /// `chunk`. Holds more only when the caller extends twice without draining.
    pending: BytesMut,
    /// The rest of the stream: what is left of the last chunk handed over.
    chunk: Bytes,
    /// The length `chunk` had when handed over (its buffer's size).
    chunk_len: usize,
    /// Whether frames are cut from `chunk` as slices (it is mostly piece payload) rather
    /// than copied; worked out on the first frame cut from it.
    share: Option<bool>,
    /// The frame the last [`next`](Self::next) returned, which its message borrows.
    last: Option<Frame>,
    max_len: u32,
}

impl FrameDecoder {
    /// An empty decoder that rejects messages whose length prefix exceeds `max_len`
    /// (see [`DEFAULT_MAX_MESSAGE_LEN`](crate::DEFAULT_MAX_MESSAGE_LEN)).
    pub fn new(max_len: u32) -> Self {
        FrameDecoder { pending: BytesMut::new(), chunk: Bytes::new(), chunk_len: 0, share: None, last: None, max_len }
    }

    /// Appends bytes received from the peer, taking ownership: frames within `data` come
    /// out as slices of it.
    pub fn extend_bytes(&mut self, data: Bytes) {
        self.last = None;
        if data.is_empty() {
            return;
        }
        if !self.chunk.is_empty() {
            // Not drained since the last chunk: its rest joins the front.
            self.pending.extend_from_slice(&self.chunk);
        }
        self.chunk_len = data.len();
        self.chunk = data;
        self.share = None;
    }

    /// Appends bytes received from the peer, copying them.
    pub fn extend(&mut self, data: &[u8]) {
        self.extend_bytes(Bytes::copy_from_slice(data));
    }

    /// Decodes the handshake at the front of the stream and removes its 68 bytes;
    /// `Ok(None)` while it is incomplete. Call it once per connection, before
    /// [`next_frame`](Self::next_frame).
    pub fn handshake(&mut self) -> Result<Option<Handshake>, WireError> {
        self.last = None;
        if self.pending.is_empty() {
            if let HandshakeDecoded::Handshake(hs) = Handshake::decode(&self.chunk)? {
                self.chunk.advance(HANDSHAKE_LEN);
                self.release_empty();
                return Ok(Some(hs));
            }
        }
        let want = HANDSHAKE_LEN.saturating_sub(self.pending.len()).min(self.chunk.len());
        self.take_into_pending(want);
        match Handshake::decode(&self.pending)? {
            HandshakeDecoded::Handshake(hs) => {
                self.pending.advance(HANDSHAKE_LEN);
                self.release_empty();
                Ok(Some(hs))
            }
            HandshakeDecoded::NeedMore(_) => Ok(None),
        }
    }

    /// The next complete message as an owned [`Frame`], or `Ok(None)` when the stream
    /// ends inside one.
    ///
    /// After an error the stream is out of step and the connection must be dropped
    /// (calling again returns the same error).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        self.last = None;
        if !self.pending.is_empty() {
            self.fill_pending();
            return match decode(&self.pending, self.max_len)? {
                Decoded::Message { consumed, .. } => {
                    let bytes = self.pending.split_to(consumed).freeze();
                    self.release_empty();
                    Ok(Some(Frame::new_unchecked(bytes)))
                }
                Decoded::NeedMore(_) => Ok(None),
            };
        }
        match decode(&self.chunk, self.max_len)? {
            Decoded::Message { consumed, .. } => {
                let share = *self.share.get_or_insert_with(|| mostly_blocks(&self.chunk, self.chunk_len));
                let bytes = if share {
                    self.chunk.split_to(consumed)
                } else {
                    let copy = Bytes::copy_from_slice(&self.chunk[..consumed]);
                    self.chunk.advance(consumed);
                    copy
                };
                self.release_empty();
                Ok(Some(Frame::new_unchecked(bytes)))
            }
            Decoded::NeedMore(_) => {
                // The tail moves to `pending`, so the chunk's buffer is not held for it.
                self.fill_pending();
                Ok(None)
            }
        }
    }

    /// The next complete message, or `Ok(None)` when the stream ends inside one: like
    /// [`next_frame`](Self::next_frame), but the message borrows the decoder until the
    /// next call to any `&mut self` method.
    #[allow(clippy::should_implement_trait)] // a lending iterator: `Iterator` cannot borrow from self
    pub fn next(&mut self) -> Result<Option<Message<'_>>, WireError> {
        self.last = self.next_frame()?;
        Ok(self.last.as_ref().map(Frame::message))
    }

    /// Bytes held that no returned message has taken yet.
    pub fn buffered(&self) -> usize {
        self.pending.len() + self.chunk.len()
    }

    /// How many more bytes complete the next message (exact once its length prefix is
    /// in, otherwise what completes the prefix); 0 when a complete message or an error is
    /// waiting. A good size for the next socket read is at least this.
    pub fn need(&self) -> usize {
        let mut head = [0u8; 5];
        let mut n = 0;
        for (slot, b) in head.iter_mut().zip(self.pending.iter().chain(self.chunk.iter())) {
            *slot = *b;
            n += 1;
        }
        match decode(&head[..n], self.max_len) {
            Ok(Decoded::NeedMore(k)) if n < 4 => k,
            Ok(Decoded::NeedMore(k)) => (n + k).saturating_sub(self.buffered()),
            _ => 0,
        }
    }

    /// The most bytes the decoder holds once [`next_frame`](Self::next_frame) has returned
    /// `Ok(None)`: a length prefix and a message of `max_len` bytes, less one.
    pub fn max_buffered(&self) -> usize {
        usize::try_from(self.max_len).map_or(usize::MAX, |m| m.saturating_add(3))
    }

    /// The limit on a message's length prefix.
    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    /// Moves bytes from `chunk` to `pending` until `pending` starts with a complete frame
    /// (or one the length checks reject), or `chunk` is used up.
    fn fill_pending(&mut self) {
        while !self.chunk.is_empty() {
            let n = match decode(&self.pending, self.max_len) {
                Ok(Decoded::NeedMore(n)) => n,
                _ => return,
            };
            if self.pending.len() >= 4 && self.pending.capacity() - self.pending.len() < n {
                // The length is known (and within `max_len`): one buffer of exactly the
                // frame's size, so a block frozen out of it holds nothing else.
                let mut exact = BytesMut::with_capacity(self.pending.len() + n);
                exact.extend_from_slice(&self.pending);
                self.pending = exact;
            }
            self.take_into_pending(n.min(self.chunk.len()));
        }
    }

    /// Copies the first `n` bytes of `chunk` (at most its length) to the end of `pending`.
    fn take_into_pending(&mut self, n: usize) {
        let n = n.min(self.chunk.len());
        self.pending.extend_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        self.release_empty();
    }

    /// Drops the references an emptied `chunk` or `pending` would keep to their buffers.
    fn release_empty(&mut self) {
        if self.chunk.is_empty() {
            self.chunk = Bytes::new();
        }
        if self.pending.is_empty() {
            self.pending = BytesMut::new();
        }
    }
}

/// Whether at least half of a chunk of `chunk_len` bytes is `piece` payload, counting the
/// whole frames at the front of `chunk` (which starts at a frame boundary).
fn mostly_blocks(chunk: &[u8], chunk_len: usize) -> bool {
    let (mut pos, mut payload) = (0usize, 0usize);
    while let Some(prefix) = chunk.get(pos..).and_then(<[u8]>::first_chunk::<4>) {
        let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
        let Some(end) = pos.checked_add(4).and_then(|s| s.checked_add(len)).filter(|&e| e <= chunk.len()) else {
            break;
        };
        if len >= 9 && chunk.get(pos + 4) == Some(&id::PIECE) {
            payload += len - 9;
        }
        pos = end;
    }
    payload.saturating_mul(2) >= chunk_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Reserved, DEFAULT_MAX_MESSAGE_LEN};

    fn stream() -> Vec<u8> {
        let hs = Handshake { reserved: Reserved::NONE.with_fast_extension(true), info_hash: [7; 20], peer_id: [8; 20] };
        let mut out = hs.to_bytes().to_vec();
        for m in [
            Message::HaveAll,
            Message::Unchoke,
            Message::Piece { index: 1, begin: 2, block: &[5; 300] },
            Message::KeepAlive,
            Message::Have(4),
        ] {
            m.encode(&mut out);
        }
        out
    }

    #[test]
    fn byte_at_a_time() {
        let bytes = stream();
        let mut rx = FrameDecoder::new(DEFAULT_MAX_MESSAGE_LEN);
        let mut hs = None;
        let mut got = Vec::new();
        for b in &bytes {
            rx.extend(std::slice::from_ref(b));
            if hs.is_none() {
                hs = rx.handshake().expect("valid handshake");
                continue;
            }
            while let Some(m) = rx.next().expect("valid stream") {
                let mut enc = Vec::new();
                m.encode(&mut enc);
                got.push(enc);
            }
        }
        assert_eq!(hs.map(|h| h.info_hash), Some([7; 20]));
        assert_eq!(got.len(), 5);
        assert_eq!(got.concat(), bytes[HANDSHAKE_LEN..]);
        assert_eq!(rx.buffered(), 0);
        assert_eq!(rx.need(), 4);
    }

    #[test]
    fn all_at_once_and_need() {
        let bytes = stream();
        let mut rx = FrameDecoder::new(DEFAULT_MAX_MESSAGE_LEN);
        rx.extend(&bytes[..70]);
        assert!(rx.handshake().expect("valid").is_some());
        assert_eq!(rx.buffered(), 2);
        assert_eq!(rx.need(), 2);
        assert_eq!(rx.next(), Ok(None));
        rx.extend(&bytes[70..]);
        assert_eq!(rx.next(), Ok(Some(Message::HaveAll)));
        assert_eq!(rx.next(), Ok(Some(Message::Unchoke)));
        assert!(matches!(rx.next(), Ok(Some(Message::Piece { block, .. })) if block.len() == 300));
        assert_eq!(rx.next(), Ok(Some(Message::KeepAlive)));
        assert_eq!(rx.next(), Ok(Some(Message::Have(4))));
        assert_eq!(rx.next(), Ok(None));
    }

    #[test]
    fn oversized_prefix_is_an_error_and_sticks() {
        let mut rx = FrameDecoder::new(100);
        rx.extend(&[0, 0, 0, 101]);
        assert_eq!(rx.next(), Err(WireError::TooLong { len: 101, max: 100 }));
        assert_eq!(rx.next(), Err(WireError::TooLong { len: 101, max: 100 }));
        assert_eq!(rx.max_buffered(), 103);
        assert_eq!(rx.max_len(), 100);
    }

    fn pieces(n: u32, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            Message::Piece { index: i, begin: 0, block: &vec![i as u8; len] }.encode(&mut out);
        }
        out
    }

    /// Whether `inner` lies within `outer`'s memory.
    fn within(inner: &[u8], outer: &[u8]) -> bool {
        let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
        i >= o && i + inner.len() <= o + outer.len()
    }

    #[test]
    fn blocks_within_a_chunk_are_slices_of_it() {
        let chunk = Bytes::from(pieces(4, 16384));
        let mut rx = FrameDecoder::new(DEFAULT_MAX_MESSAGE_LEN);
        rx.extend_bytes(chunk.clone());
        for i in 0..4u8 {
            let f = rx.next_frame().expect("valid").expect("complete");
            let block = f.piece_block().expect("a piece");
            assert_eq!(block, vec![i; 16384]);
            assert!(within(&block, &chunk), "block {i} was copied");
        }
        assert_eq!(rx.next_frame(), Ok(None));
        assert_eq!(rx.buffered(), 0);
    }

    #[test]
    fn a_straddling_frame_is_copied_once_into_an_exact_buffer() {
        let wire = pieces(3, 16384);
        let cut = 16384 + 13 + 1000; // inside the second piece
        let (a, b) = (Bytes::copy_from_slice(&wire[..cut]), Bytes::copy_from_slice(&wire[cut..]));
        let mut rx = FrameDecoder::new(DEFAULT_MAX_MESSAGE_LEN);
        rx.extend_bytes(a.clone());
        let first = rx.next_frame().expect("valid").expect("complete");
        assert!(within(first.as_bytes(), &a));
        assert_eq!(rx.next_frame(), Ok(None));
        assert_eq!(rx.buffered(), 1000);
        assert_eq!(rx.need(), 16384 + 13 - 1000);
        // The tail was copied out: the first chunk is held only by `first` and `a`.
        drop(first);
        assert!(a.is_unique(), "the decoder still holds the first chunk");
        rx.extend_bytes(b.clone());
        let second = rx.next_frame().expect("valid").expect("complete");
        assert!(!within(second.as_bytes(), &a) && !within(second.as_bytes(), &b));
        assert_eq!(second.piece_block().expect("a piece"), vec![1; 16384]);
        let third = rx.next_frame().expect("valid").expect("complete");
        assert!(within(third.as_bytes(), &b));
        assert_eq!(rx.next_frame(), Ok(None));
        assert_eq!(rx.buffered(), 0);
    }

    #[test]
    fn a_chunk_mostly_of_other_bytes_is_copied_from() {
        // One block padded with a larger run of unknown messages: keeping the block as a
        // slice would hold the padding too.
        let mut wire = pieces(1, 1000);
        Message::Unknown { id: 99, payload: &[0; 2000] }.encode(&mut wire);
        let chunk = Bytes::from(wire);
        let mut rx = FrameDecoder::new(DEFAULT_MAX_MESSAGE_LEN);
        rx.extend_bytes(chunk.clone());
        let f = rx.next_frame().expect("valid").expect("complete");
        assert!(!within(f.as_bytes(), &chunk));
        assert_eq!(f.piece_block().expect("a piece"), vec![0; 1000]);
        assert!(matches!(rx.next_frame(), Ok(Some(f)) if f.message().id() == Some(99)));
        assert!(chunk.is_unique());
    }

    #[test]
    fn extending_twice_without_draining_keeps_everything() {
        let wire = pieces(3, 100);
        let mut rx = FrameDecoder::new(DEFAULT_MAX_MESSAGE_LEN);
        for part in wire.chunks(50) {
            rx.extend_bytes(Bytes::copy_from_slice(part));
        }
        for i in 0..3u8 {
            let f = rx.next_frame().expect("valid").expect("complete");
            assert_eq!(f.piece_block().expect("a piece"), vec![i; 100]);
        }
        assert_eq!(rx.next_frame(), Ok(None));
        assert_eq!(rx.buffered(), 0);
    }

    #[test]
    fn bad_handshake() {
        let mut rx = FrameDecoder::new(100);
        rx.extend(b"GET / HTTP/1.1");
        assert_eq!(rx.handshake(), Err(WireError::BadProtocol { offset: 0 }));
    }
}
