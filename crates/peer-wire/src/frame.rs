//! [`FrameDecoder`]: a receive buffer with the handshake and message decoders on top.

use bytes::{Buf, BytesMut};

use crate::{decode, Decoded, Handshake, HandshakeDecoded, Message, WireError, HANDSHAKE_LEN};

/// Owns the receive buffer of one connection and decodes from it without copying.
///
/// Sans-IO: the driver reads from the socket and hands the bytes over with
/// [`extend`](Self::extend); messages come out of [`next`](Self::next), borrowing from the
/// buffer until the next call.
///
/// Calling contract, for one connection:
///
/// ```
/// use mycel_peer_wire::{FrameDecoder, Handshake, Message, Reserved, DEFAULT_MAX_MESSAGE_LEN};
/// # let hs = Handshake { reserved: Reserved::NONE, info_hash: [1; 20], peer_id: [2; 20] };
/// # let mut socket_bytes = hs.to_bytes().to_vec();
/// # Message::Have(3).encode(&mut socket_bytes);
/// let mut rx = FrameDecoder::new(DEFAULT_MAX_MESSAGE_LEN);
/// let mut handshake = None;
/// // for each read from the socket:
/// rx.extend(&socket_bytes);
/// if handshake.is_none() {
///     handshake = rx.handshake()?; // Ok(None): wait for more bytes
/// }
/// if handshake.is_some() {
///     while let Some(msg) = rx.next()? {
///         // handle msg; it borrows from `rx` until the next call
///         assert_eq!(msg, Message::Have(3));
///     }
/// }
/// // any Err: the peer is broken or hostile, drop the connection
/// # Ok::<(), mycel_peer_wire::WireError>(())
/// ```
///
/// Memory is bounded: after [`next`](Self::next) returns `Ok(None)` the buffer holds less
/// than [`max_buffered`](Self::max_buffered) bytes, because a length prefix over `max_len`
/// is an error as soon as its 4 bytes arrive. The driver should read at most about
/// [`need`](Self::need) (or a fixed chunk) at a time and drain before reading again.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    /// Bytes at the front of `buf` that the last returned message borrowed from; dropped
    /// at the start of the next call.
    consumed: usize,
    max_len: u32,
}

impl FrameDecoder {
    /// An empty decoder that rejects messages whose length prefix exceeds `max_len`
    /// (see [`DEFAULT_MAX_MESSAGE_LEN`](crate::DEFAULT_MAX_MESSAGE_LEN)).
    pub fn new(max_len: u32) -> Self {
        FrameDecoder { buf: BytesMut::new(), consumed: 0, max_len }
    }

    /// Appends bytes received from the peer.
    pub fn extend(&mut self, data: &[u8]) {
        self.discard_consumed();
        self.buf.extend_from_slice(data);
    }

    /// Decodes the handshake at the front of the buffer and removes its 68 bytes;
    /// `Ok(None)` while it is incomplete. Call it once per connection, before
    /// [`next`](Self::next).
    pub fn handshake(&mut self) -> Result<Option<Handshake>, WireError> {
        self.discard_consumed();
        match Handshake::decode(&self.buf)? {
            HandshakeDecoded::Handshake(hs) => {
                self.buf.advance(HANDSHAKE_LEN);
                Ok(Some(hs))
            }
            HandshakeDecoded::NeedMore(_) => Ok(None),
        }
    }

    /// The next complete message, or `Ok(None)` when the buffer ends inside one.
    ///
    /// The message borrows from the decoder's buffer; its bytes are released on the next
    /// call to any `&mut self` method. After an error the stream is out of step and the
    /// connection must be dropped (calling again returns the same error).
    #[allow(clippy::should_implement_trait)] // a lending iterator: `Iterator` cannot borrow from self
    pub fn next(&mut self) -> Result<Option<Message<'_>>, WireError> {
        self.discard_consumed();
        match decode(&self.buf, self.max_len)? {
            Decoded::Message { msg, consumed } => {
                self.consumed = consumed;
                Ok(Some(msg))
            }
            Decoded::NeedMore(_) => Ok(None),
        }
    }

    /// Bytes held that no returned message has taken yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// How many more bytes complete the next message (exact once its length prefix is
    /// in, otherwise what completes the prefix); 0 when a complete message or an error is
    /// waiting in the buffer. A good size for the next socket read is at least this.
    pub fn need(&self) -> usize {
        match decode(&self.buf[self.consumed..], self.max_len) {
            Ok(Decoded::NeedMore(n)) => n,
            _ => 0,
        }
    }

    /// The most bytes the buffer holds once [`next`](Self::next) has returned `Ok(None)`:
    /// a length prefix and a message of `max_len` bytes, less one.
    pub fn max_buffered(&self) -> usize {
        usize::try_from(self.max_len).map_or(usize::MAX, |m| m.saturating_add(3))
    }

    /// The limit on a message's length prefix.
    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    fn discard_consumed(&mut self) {
        if self.consumed > 0 {
            self.buf.advance(self.consumed);
            self.consumed = 0;
        }
    }
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

    #[test]
    fn bad_handshake() {
        let mut rx = FrameDecoder::new(100);
        rx.extend(b"GET / HTTP/1.1");
        assert_eq!(rx.handshake(), Err(WireError::BadProtocol { offset: 0 }));
    }
}
