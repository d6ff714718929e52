//! The strict, iterative, zero-copy decoder.
//!
//! Nesting is tracked on an explicit stack of open containers (never the call stack), so
//! depth is bounded by [`Limits::max_depth`] whatever the input. Values of open containers
//! wait on shared scratch vectors and move into an exactly-sized `Vec` when their
//! container closes: one allocation per list or dictionary, none per byte or per scalar.

use std::cmp::Ordering;

use crate::encode::bytes_len;
use crate::value::{key_cmp, sort_entries};
use crate::{DecodeError, Dict, Value};

/// Resource limits applied while decoding untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists and dictionaries (a top-level list is depth 1). Default 32.
    pub max_depth: usize,
    /// Longest accepted input in bytes; a longer input is rejected before parsing.
    /// Default 1 MiB.
    pub max_size: usize,
    /// Most values (integers, strings, lists, dictionaries; keys not counted) in one tree.
    /// Default 100 000.
    pub max_items: usize,
}

impl Limits {
    /// The default limits: depth 32, 1 MiB, 100 000 values.
    pub const DEFAULT: Limits = Limits { max_depth: 32, max_size: 1 << 20, max_items: 100_000 };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Decodes `buf`, which must hold exactly one value, with the default [`Limits`].
pub fn decode(buf: &[u8]) -> Result<Value<'_>, DecodeError> {
    decode_with(buf, &Limits::DEFAULT)
}

/// Decodes `buf`, which must hold exactly one value (trailing bytes are an error).
pub fn decode_with<'a>(buf: &'a [u8], limits: &Limits) -> Result<Value<'a>, DecodeError> {
    if buf.len() > limits.max_size {
        return Err(DecodeError::TooLarge { len: buf.len(), max: limits.max_size });
    }
    let (value, end) = Parser::new(buf, limits).parse()?;
    if end != buf.len() {
        return Err(DecodeError::TrailingBytes { offset: end });
    }
    Ok(value)
}

/// Decodes one value at the start of `buf` and returns it with the number of bytes it
/// took; whatever follows is left alone (the peer-wire extension protocol puts raw data
/// after a bencoded header).
///
/// Only the first `limits.max_size` bytes are looked at: a value that does not end within
/// them is [`DecodeError::TooLarge`].
pub fn decode_prefix<'a>(buf: &'a [u8], limits: &Limits) -> Result<(Value<'a>, usize), DecodeError> {
    let window = &buf[..buf.len().min(limits.max_size)];
    match Parser::new(window, limits).parse() {
        Err(DecodeError::UnexpectedEof { .. }) if buf.len() > limits.max_size => {
            Err(DecodeError::TooLarge { len: buf.len(), max: limits.max_size })
        }
        other => other,
    }
}

/// What an open container is collecting.
enum Kind<'a> {
    List,
    /// `key`: a key read and waiting for its value. `sorted`: keys so far strictly increasing.
    /// `keys_start`: this dictionary's keys are `keys[keys_start..]`.
    Dict {
        key: Option<&'a [u8]>,
        sorted: bool,
        keys_start: usize,
    },
}

/// An open container: its values are `values[start..]`.
struct Frame<'a> {
    start: usize,
    kind: Kind<'a>,
}

/// Values and dictionary keys of the open containers, shared by all of them.
///
/// Keys live apart from values so a list's items move out as one contiguous block.
struct Scratch<'a> {
    values: Vec<Value<'a>>,
    keys: Vec<&'a [u8]>,
}

struct Parser<'a, 'l> {
    buf: &'a [u8],
    pos: usize,
    limits: &'l Limits,
    items: usize,
}

impl<'a, 'l> Parser<'a, 'l> {
    fn new(buf: &'a [u8], limits: &'l Limits) -> Self {
        Parser { buf, pos: 0, limits, items: 0 }
    }

    /// Parses one value from `pos`; returns it and the position after it.
    fn parse(mut self) -> Result<(Value<'a>, usize), DecodeError> {
        // Sized so typical datagrams never regrow them (a value takes at least 2 bytes, most
        // take far more); scalars allocate nothing.
        let nested = matches!(self.buf.first(), Some(b'l' | b'd'));
        let (depth, values, keys) = if nested { (8, (self.buf.len() / 8).clamp(16, 512), 16) } else { (0, 0, 0) };
        let mut frames: Vec<Frame<'a>> = Vec::with_capacity(depth);
        let mut scratch = Scratch { values: Vec::with_capacity(values), keys: Vec::with_capacity(keys) };
        loop {
            let at = self.pos;
            let byte = *self.buf.get(at).ok_or(DecodeError::UnexpectedEof { offset: at })?;
            if byte != b'e' {
                if let Some(Frame { kind: Kind::Dict { key: key @ None, sorted, keys_start }, .. }) = frames.last_mut()
                {
                    let k = self.parse_key(byte)?;
                    if scratch.keys.len() > *keys_start {
                        if let Some(prev) = scratch.keys.last() {
                            match key_cmp(prev, k) {
                                Ordering::Less => {}
                                Ordering::Equal => return Err(DecodeError::DuplicateKey { offset: at }),
                                Ordering::Greater => *sorted = false,
                            }
                        }
                    }
                    *key = Some(k);
                    continue;
                }
                self.count_item(at)?;
            }
            let value = match byte {
                b'e' => {
                    let frame = frames.pop().ok_or(DecodeError::UnexpectedByte { offset: at, byte })?;
                    self.pos += 1;
                    self.close(frame, &mut scratch, at)?
                }
                b'i' => Value::Int(self.parse_int()?),
                b'0'..=b'9' => Value::Bytes(self.parse_bytes()?),
                b'l' | b'd' => {
                    if frames.len() >= self.limits.max_depth {
                        return Err(DecodeError::TooDeep { offset: at });
                    }
                    self.pos += 1;
                    let kind = if byte == b'l' {
                        Kind::List
                    } else {
                        Kind::Dict { key: None, sorted: true, keys_start: scratch.keys.len() }
                    };
                    frames.push(Frame { start: scratch.values.len(), kind });
                    continue;
                }
                _ => return Err(DecodeError::UnexpectedByte { offset: at, byte }),
            };
            match frames.last_mut() {
                None => return Ok((value, self.pos)),
                Some(Frame { kind: Kind::List, .. }) => scratch.values.push(value),
                Some(Frame { kind: Kind::Dict { key, .. }, .. }) => {
                    // A dict frame only reaches here with a pending key: keyless positions
                    // were handled by `parse_key` above.
                    scratch.keys.push(key.take().unwrap_or_default());
                    scratch.values.push(value);
                }
            }
        }
    }

    /// Builds the value of a container closed by the `e` at `at`.
    fn close(&self, frame: Frame<'a>, scratch: &mut Scratch<'a>, at: usize) -> Result<Value<'a>, DecodeError> {
        match frame.kind {
            // One exactly-sized allocation and one block copy.
            Kind::List => Ok(Value::List(scratch.values.split_off(frame.start))),
            Kind::Dict { key: Some(_), .. } => Err(DecodeError::MissingValue { offset: at }),
            Kind::Dict { key: None, sorted, keys_start } => {
                let mut entries: Vec<_> =
                    scratch.keys.drain(keys_start..).zip(scratch.values.drain(frame.start..)).collect();
                if !sorted {
                    if let Some(dup) = sort_entries(&mut entries) {
                        return Err(DecodeError::DuplicateKey { offset: self.key_offset(dup) });
                    }
                }
                Ok(Value::Dict(Dict::from_sorted(entries)))
            }
        }
    }

    fn count_item(&mut self, at: usize) -> Result<(), DecodeError> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(DecodeError::TooManyItems { offset: at });
        }
        Ok(())
    }

    /// Position of the length prefix of `key`, a slice of `buf` read by `parse_bytes`.
    fn key_offset(&self, key: &[u8]) -> usize {
        let data = (key.as_ptr() as usize).saturating_sub(self.buf.as_ptr() as usize);
        // Lengths have no leading zeros, so the prefix is exactly the canonical one.
        data.saturating_sub(bytes_len(key.len()) - key.len())
    }

    fn parse_key(&mut self, byte: u8) -> Result<&'a [u8], DecodeError> {
        if !byte.is_ascii_digit() {
            return Err(DecodeError::KeyNotBytes { offset: self.pos });
        }
        self.parse_bytes()
    }

    /// `i<digits>e` at `pos`.
    fn parse_int(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        let mut p = start + 1;
        let neg = self.buf.get(p) == Some(&b'-');
        if neg {
            p += 1;
        }
        let first = p;
        let mut mag: u64 = 0;
        loop {
            let b = *self.buf.get(p).ok_or(DecodeError::UnexpectedEof { offset: p })?;
            match b {
                b'0'..=b'9' => {
                    mag = mag
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(u64::from(b - b'0')))
                        .ok_or(DecodeError::IntOutOfRange { offset: start })?;
                    p += 1;
                }
                b'e' if p > first => break,
                _ => return Err(DecodeError::InvalidInt { offset: p }),
            }
        }
        if p - first > 1 && self.buf[first] == b'0' {
            return Err(DecodeError::LeadingZero { offset: first });
        }
        let value = if neg {
            if mag == 0 {
                return Err(DecodeError::NegativeZero { offset: start });
            }
            0i64.checked_sub_unsigned(mag)
        } else {
            i64::try_from(mag).ok()
        };
        self.pos = p + 1;
        value.ok_or(DecodeError::IntOutOfRange { offset: start })
    }

    /// `<len>:<bytes>` at `pos`, whose first byte is a digit.
    fn parse_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let mut p = start;
        let mut len: usize = 0;
        loop {
            let b = *self.buf.get(p).ok_or(DecodeError::UnexpectedEof { offset: p })?;
            match b {
                b'0'..=b'9' => {
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(b - b'0')))
                        .ok_or(DecodeError::InvalidLength { offset: start })?;
                    p += 1;
                }
                b':' if p > start => break,
                _ => return Err(DecodeError::InvalidLength { offset: p }),
            }
        }
        if p - start > 1 && self.buf[start] == b'0' {
            return Err(DecodeError::LeadingZero { offset: start });
        }
        let data_start = p + 1;
        // Checked against the input before anything is allocated for it.
        let data = self
            .buf
            .get(data_start..)
            .and_then(|rest| rest.get(..len))
            .ok_or(DecodeError::UnexpectedEof { offset: start })?;
        self.pos = data_start + len;
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DecodeError as E;

    fn err(input: &[u8]) -> DecodeError {
        match decode(input) {
            Ok(v) => panic!("{:?} decoded to {v:?}", String::from_utf8_lossy(input)),
            Err(e) => e,
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(decode(b"i0e"), Ok(Value::Int(0)));
        assert_eq!(decode(b"i-17e"), Ok(Value::Int(-17)));
        assert_eq!(decode(b"i9223372036854775807e"), Ok(Value::Int(i64::MAX)));
        assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
        assert_eq!(decode(b"0:"), Ok(Value::Bytes(b"")));
        assert_eq!(decode(b"4:spam"), Ok(Value::Bytes(b"spam")));
    }

    #[test]
    fn containers_borrow_and_sort() {
        let buf = b"d1:bli1e2:xye1:ad1:ki-1eee";
        let v = decode(buf).expect("valid");
        let d = v.as_dict().expect("dict");
        let keys: Vec<&[u8]> = d.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"a"[..], b"b"]);
        let list = d.get(b"b").and_then(Value::as_list).expect("list");
        assert_eq!(list, &[Value::Int(1), Value::Bytes(b"xy")]);
        let xy = list[1].as_bytes().expect("bytes");
        assert!(std::ptr::eq(xy.as_ptr(), buf[10..].as_ptr()), "byte strings borrow from the input");
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, b"d1:ad1:ki-1ee1:bli1e2:xyee");
        assert_eq!(decode(b"le"), Ok(Value::List(vec![])));
        assert_eq!(decode(b"de"), Ok(Value::Dict(Dict::new())));
    }

    #[test]
    fn eof_errors() {
        assert_eq!(err(b""), E::UnexpectedEof { offset: 0 });
        assert_eq!(err(b"i12"), E::UnexpectedEof { offset: 3 });
        assert_eq!(err(b"i-"), E::UnexpectedEof { offset: 2 });
        assert_eq!(err(b"l"), E::UnexpectedEof { offset: 1 });
        assert_eq!(err(b"d1:a"), E::UnexpectedEof { offset: 4 });
        assert_eq!(err(b"12"), E::UnexpectedEof { offset: 2 });
        assert_eq!(err(b"5:abc"), E::UnexpectedEof { offset: 0 });
        assert_eq!(err(b"l18446744073709551615:xe"), E::UnexpectedEof { offset: 1 });
    }

    #[test]
    fn int_errors() {
        assert_eq!(err(b"ie"), E::InvalidInt { offset: 1 });
        assert_eq!(err(b"i-e"), E::InvalidInt { offset: 2 });
        assert_eq!(err(b"i1x2e"), E::InvalidInt { offset: 2 });
        assert_eq!(err(b"i+1e"), E::InvalidInt { offset: 1 });
        assert_eq!(err(b"i--1e"), E::InvalidInt { offset: 2 });
        assert_eq!(err(b"i03e"), E::LeadingZero { offset: 1 });
        assert_eq!(err(b"i-03e"), E::LeadingZero { offset: 2 });
        assert_eq!(err(b"i00e"), E::LeadingZero { offset: 1 });
        assert_eq!(err(b"i-0e"), E::NegativeZero { offset: 0 });
        assert_eq!(err(b"i9223372036854775808e"), E::IntOutOfRange { offset: 0 });
        assert_eq!(err(b"i-9223372036854775809e"), E::IntOutOfRange { offset: 0 });
        assert_eq!(err(b"i99999999999999999999999e"), E::IntOutOfRange { offset: 0 });
    }

    #[test]
    fn length_errors() {
        assert_eq!(err(b"03:abc"), E::LeadingZero { offset: 0 });
        assert_eq!(err(b"00:"), E::LeadingZero { offset: 0 });
        assert_eq!(err(b"3x:abc"), E::InvalidLength { offset: 1 });
        assert_eq!(err(b"99999999999999999999999:x"), E::InvalidLength { offset: 0 });
        assert_eq!(err(b"-1:a"), E::UnexpectedByte { offset: 0, byte: b'-' });
    }

    #[test]
    fn structure_errors() {
        assert_eq!(err(b"e"), E::UnexpectedByte { offset: 0, byte: b'e' });
        assert_eq!(err(b"x"), E::UnexpectedByte { offset: 0, byte: b'x' });
        assert_eq!(err(b"li1ex"), E::UnexpectedByte { offset: 4, byte: b'x' });
        assert_eq!(err(b"i1ei2e"), E::TrailingBytes { offset: 3 });
        assert_eq!(err(b"lee"), E::TrailingBytes { offset: 2 });
        assert_eq!(err(b"di1ei2ee"), E::KeyNotBytes { offset: 1 });
        assert_eq!(err(b"dlei2ee"), E::KeyNotBytes { offset: 1 });
        assert_eq!(err(b"d1:ae"), E::MissingValue { offset: 4 });
    }

    #[test]
    fn duplicate_keys() {
        assert_eq!(err(b"d1:ai1e1:ai2ee"), E::DuplicateKey { offset: 7 });
        // Unsorted with a duplicate: found after sorting; offset is the later occurrence.
        assert_eq!(err(b"d1:bi1e1:ai2e1:bi3ee"), E::DuplicateKey { offset: 13 });
        assert_eq!(err(b"d2:bbi1e1:ai2e2:bbi3ee"), E::DuplicateKey { offset: 14 });
        // Unsorted without duplicates is accepted.
        assert!(decode(b"d1:bi1e1:ai2ee").is_ok());
    }

    #[test]
    fn depth_limit() {
        let limits = Limits { max_depth: 3, ..Limits::DEFAULT };
        assert!(decode_with(b"llleee", &limits).is_ok());
        assert_eq!(decode_with(b"lllleeee", &limits), Err(E::TooDeep { offset: 3 }));
        assert_eq!(decode_with(b"d1:ad1:bd1:cd", &limits), Err(E::TooDeep { offset: 12 }));
        let zero = Limits { max_depth: 0, ..Limits::DEFAULT };
        assert_eq!(decode_with(b"le", &zero), Err(E::TooDeep { offset: 0 }));
        assert_eq!(decode_with(b"i1e", &zero), Ok(Value::Int(1)));
        // Default limit, far deeper input: an error, not a stack overflow.
        let deep = vec![b'l'; 100_000];
        assert_eq!(decode(&deep), Err(E::TooDeep { offset: 32 }));
    }

    #[test]
    fn size_and_item_limits() {
        let limits = Limits { max_size: 4, ..Limits::DEFAULT };
        assert_eq!(decode_with(b"i10e", &limits), Ok(Value::Int(10)));
        assert_eq!(decode_with(b"i100e", &limits), Err(E::TooLarge { len: 5, max: 4 }));
        let items = Limits { max_items: 3, ..Limits::DEFAULT };
        assert!(decode_with(b"li1ei2ee", &items).is_ok());
        assert_eq!(decode_with(b"li1ei2ei3ee", &items), Err(E::TooManyItems { offset: 7 }));
        // Keys are not counted.
        assert!(decode_with(b"d1:ai1e1:bi2ee", &items).is_ok());
    }

    #[test]
    fn prefix_decoding() {
        let limits = Limits::DEFAULT;
        let (v, n) = decode_prefix(b"d1:ai1eeRAW DATA", &limits).expect("prefix");
        assert_eq!(n, 8);
        assert_eq!(v.as_dict().and_then(|d| d.get(b"a")), Some(&Value::Int(1)));
        assert_eq!(decode_prefix(b"i1", &limits), Err(E::UnexpectedEof { offset: 2 }));
        let small = Limits { max_size: 6, ..Limits::DEFAULT };
        assert_eq!(decode_prefix(b"i1234e and more", &small).map(|(_, n)| n), Ok(6));
        assert_eq!(decode_prefix(b"i12345e", &small), Err(E::TooLarge { len: 7, max: 6 }));
        assert_eq!(decode_prefix(b"3:abcdef", &small).map(|(_, n)| n), Ok(5));
        assert_eq!(decode_prefix(b"9:abcdefghi", &small), Err(E::TooLarge { len: 11, max: 6 }));
    }
}
