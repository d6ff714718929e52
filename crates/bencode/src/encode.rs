//! Canonical encoding: the streaming [`Encoder`] and the length helpers.
//!
//! The encoder writes straight into a caller's `Vec<u8>`, so a message codec (KRPC) can
//! serialize its typed model without building a [`Value`] tree first.

use crate::Value;

/// Streaming canonical encoder writing straight into a `Vec<u8>`.
///
/// Values are written in order; containers are opened with [`begin_list`](Self::begin_list)
/// or [`begin_dict`](Self::begin_dict) and closed with [`end`](Self::end). Inside a
/// dictionary, calls alternate key, value, key, value...
///
/// **Callers must write dictionary keys as byte strings in strictly increasing bytewise
/// order** (that is what makes the output canonical, which BEP 44 signatures rely on). The
/// encoder does not sort; debug builds check the order and the key/value alternation with
/// assertions that cost no allocation beyond a small stack of open containers.
///
/// ```
/// use mycel_bencode::Encoder;
/// let mut out = Vec::new();
/// let mut e = Encoder::new(&mut out);
/// e.begin_dict();
/// e.key(b"a").int(1);
/// e.key(b"b").begin_list().bytes(b"x").end();
/// e.end();
/// e.finish();
/// assert_eq!(out, b"d1:ai1e1:bl1:xee");
/// ```
pub struct Encoder<'o> {
    out: &'o mut Vec<u8>,
    #[cfg(debug_assertions)]
    check: check::KeyCheck,
}

impl<'o> Encoder<'o> {
    /// An encoder appending to `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        Encoder {
            out,
            #[cfg(debug_assertions)]
            check: check::KeyCheck::default(),
        }
    }

    /// Writes an integer value.
    pub fn int(&mut self, i: i64) -> &mut Self {
        #[cfg(debug_assertions)]
        self.check.value();
        write_int(self.out, i);
        self
    }

    /// Writes a byte string: a value, or a dictionary key when one is expected.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        write_len_prefix(self.out, b.len());
        let start = self.out.len();
        self.out.extend_from_slice(b);
        #[cfg(debug_assertions)]
        self.check.bytes(self.out, start);
        #[cfg(not(debug_assertions))]
        let _ = start;
        self
    }

    /// Writes a dictionary key. Same bytes as [`bytes`](Self::bytes); debug builds also
    /// assert that a key is expected here.
    pub fn key(&mut self, k: &[u8]) -> &mut Self {
        #[cfg(debug_assertions)]
        self.check.expect_key();
        self.bytes(k)
    }

    /// Writes a byte string of exactly `len` bytes whose content `fill` appends to the
    /// output (for values built piecewise, like compact node lists).
    pub fn bytes_with(&mut self, len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        write_len_prefix(self.out, len);
        let start = self.out.len();
        fill(self.out);
        debug_assert_eq!(self.out.len() - start, len, "bytes_with: fill wrote a different length");
        #[cfg(debug_assertions)]
        self.check.bytes(self.out, start);
        self
    }

    /// Writes an already-built value (its dictionaries are sorted by construction).
    pub fn value(&mut self, v: &Value<'_>) -> &mut Self {
        #[cfg(debug_assertions)]
        self.check.value();
        v.encode(self.out);
        self
    }

    /// Writes one complete value that is already bencoded, verbatim (BEP 44 keeps an item's
    /// `v` exactly as signed). The caller guarantees `encoded` is a single bencoded value.
    pub fn raw(&mut self, encoded: &[u8]) -> &mut Self {
        #[cfg(debug_assertions)]
        self.check.value();
        self.out.extend_from_slice(encoded);
        self
    }

    /// Opens a list; close it with [`end`](Self::end).
    pub fn begin_list(&mut self) -> &mut Self {
        #[cfg(debug_assertions)]
        self.check.open(false);
        self.out.push(b'l');
        self
    }

    /// Opens a dictionary; write sorted keys and their values, then [`end`](Self::end).
    pub fn begin_dict(&mut self) -> &mut Self {
        #[cfg(debug_assertions)]
        self.check.open(true);
        self.out.push(b'd');
        self
    }

    /// Closes the innermost open list or dictionary.
    pub fn end(&mut self) -> &mut Self {
        #[cfg(debug_assertions)]
        self.check.end();
        self.out.push(b'e');
        self
    }

    /// Ends encoding; debug builds assert that every container was closed.
    pub fn finish(self) {
        #[cfg(debug_assertions)]
        self.check.finish();
    }
}

/// Encoded length of the integer `i` (`i<digits>e`).
pub fn encoded_int_len(i: i64) -> usize {
    int_len(i)
}

/// Encoded length of a byte string holding `len` bytes (`<len>:<bytes>`).
pub fn encoded_bytes_len(len: usize) -> usize {
    bytes_len(len)
}

pub(crate) fn int_len(i: i64) -> usize {
    2 + usize::from(i < 0) + digits(i.unsigned_abs())
}

pub(crate) fn bytes_len(len: usize) -> usize {
    digits(len as u64) + 1 + len
}

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Writes the decimal digits of `n`, preceded by `-` when `neg`.
#[inline]
fn write_decimal(out: &mut Vec<u8>, n: u64, neg: bool) {
    // Fast path, kept small enough to inline: string lengths, ports and error codes are
    // mostly short.
    if !neg && n < 10 {
        out.push(b'0' + n as u8);
    } else {
        write_decimal_long(out, n, neg);
    }
}

fn write_decimal_long(out: &mut Vec<u8>, mut n: u64, neg: bool) {
    // 20 digits hold u64::MAX; a negative i64 has at most 19 digits plus the sign.
    let mut buf = [0u8; 21];
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        pos -= 1;
        buf[pos] = b'-';
    }
    out.extend_from_slice(&buf[pos..]);
}

pub(crate) fn write_int(out: &mut Vec<u8>, i: i64) {
    out.push(b'i');
    write_decimal(out, i.unsigned_abs(), i < 0);
    out.push(b'e');
}

#[inline]
fn write_len_prefix(out: &mut Vec<u8>, len: usize) {
    write_decimal(out, len as u64, false);
    out.push(b':');
}

pub(crate) fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_len_prefix(out, b.len());
    out.extend_from_slice(b);
}

/// Debug-build checks of key order and key/value alternation.
#[cfg(debug_assertions)]
mod check {
    enum Frame {
        List,
        /// `last_key`: position and length of the previous key's bytes in the output.
        Dict {
            last_key: Option<(usize, usize)>,
            expect_key: bool,
        },
    }

    #[derive(Default)]
    pub(super) struct KeyCheck {
        frames: Vec<Frame>,
    }

    impl KeyCheck {
        /// A value that is not a byte string starts here.
        pub(super) fn value(&mut self) {
            if let Some(Frame::Dict { expect_key, .. }) = self.frames.last_mut() {
                assert!(!*expect_key, "bencode Encoder: dictionary keys must be byte strings");
                *expect_key = true;
            }
        }

        pub(super) fn expect_key(&self) {
            let ok = matches!(self.frames.last(), Some(Frame::Dict { expect_key: true, .. }));
            assert!(ok, "bencode Encoder: key() where no dictionary key is expected");
        }

        /// A byte string was written at `out[start..]`.
        pub(super) fn bytes(&mut self, out: &[u8], start: usize) {
            if let Some(Frame::Dict { last_key, expect_key }) = self.frames.last_mut() {
                if *expect_key {
                    let key = &out[start..];
                    if let Some((s, l)) = *last_key {
                        assert!(&out[s..s + l] < key, "bencode Encoder: dictionary keys must be strictly increasing");
                    }
                    *last_key = Some((start, key.len()));
                }
                *expect_key = !*expect_key;
            }
        }

        pub(super) fn open(&mut self, dict: bool) {
            self.value();
            self.frames.push(if dict { Frame::Dict { last_key: None, expect_key: true } } else { Frame::List });
        }

        pub(super) fn end(&mut self) {
            match self.frames.pop() {
                None => panic!("bencode Encoder: end() without an open container"),
                Some(Frame::Dict { expect_key: false, .. }) => panic!("bencode Encoder: dictionary closed after a key"),
                Some(_) => {}
            }
        }

        pub(super) fn finish(&self) {
            assert!(self.frames.is_empty(), "bencode Encoder: finished with open containers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_output() {
        for i in [0, 1, -1, 9, 10, -10, 99, 100, i64::MAX, i64::MIN, 1 << 40] {
            let mut out = Vec::new();
            write_int(&mut out, i);
            assert_eq!(out.len(), encoded_int_len(i), "{i}");
            assert_eq!(out, format!("i{i}e").into_bytes());
        }
        for n in [0usize, 1, 9, 10, 99, 100, 1000] {
            let mut out = Vec::new();
            write_bytes(&mut out, &vec![b'x'; n]);
            assert_eq!(out.len(), encoded_bytes_len(n));
        }
    }

    #[test]
    fn encoder_writes_nested() {
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out);
        e.begin_dict().key(b"a").begin_list().int(-3).bytes(b"").end();
        e.key(b"b").bytes_with(4, |o| o.extend_from_slice(b"wxyz"));
        e.key(b"c").value(&Value::Int(7));
        e.end();
        e.finish();
        assert_eq!(out, b"d1:ali-3e0:e1:b4:wxyz1:ci7ee");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "strictly increasing")]
    fn unsorted_keys_are_caught_in_debug() {
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out);
        e.begin_dict().key(b"b").int(1).key(b"a").int(2).end();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "keys must be byte strings")]
    fn int_key_is_caught_in_debug() {
        let mut out = Vec::new();
        Encoder::new(&mut out).begin_dict().int(1);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "closed after a key")]
    fn key_without_value_is_caught_in_debug() {
        let mut out = Vec::new();
        Encoder::new(&mut out).begin_dict().key(b"a").end();
    }
}
