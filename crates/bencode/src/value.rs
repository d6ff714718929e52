//! The decoded value tree: [`Value`] and the always-sorted [`Dict`].

use std::cmp::Ordering;

use crate::encode::{bytes_len, int_len, write_bytes, write_int};

/// One bencoded value. Byte strings borrow from the decoded buffer (zero-copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i<n>e`: a signed 64-bit integer.
    Int(i64),
    /// `<len>:<bytes>`: a byte string (not necessarily UTF-8).
    Bytes(&'a [u8]),
    /// `l...e`: a list of values.
    List(Vec<Value<'a>>),
    /// `d...e`: a dictionary with byte-string keys.
    Dict(Dict<'a>),
}

/// A bencode dictionary: entries kept sorted by key, keys unique.
///
/// Sorted storage makes the encoding canonical without a sort at encode time and gives
/// `O(log n)` lookups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dict<'a> {
    /// Invariant: strictly increasing by key (bytewise).
    entries: Vec<(&'a [u8], Value<'a>)>,
}

impl<'a> Dict<'a> {
    /// An empty dictionary.
    pub fn new() -> Self {
        Dict { entries: Vec::new() }
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        // Message dictionaries are small: a scan that skips on length beats a binary search
        // whose every step is a library `memcmp` call.
        if self.entries.len() <= 8 {
            return self
                .entries
                .iter()
                .find(|(k, _)| k.len() == key.len() && key_cmp(k, key) == Ordering::Equal)
                .map(|(_, v)| v);
        }
        self.entries.binary_search_by(|(k, _)| key_cmp(k, key)).ok().map(|i| &self.entries[i].1)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &Value<'a>)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the dictionary has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Inserts `v` under `key`, keeping the keys sorted; returns the value it replaced.
    pub fn insert(&mut self, key: &'a [u8], v: Value<'a>) -> Option<Value<'a>> {
        match self.entries.binary_search_by(|(k, _)| key_cmp(k, key)) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, v)),
            Err(i) => {
                self.entries.insert(i, (key, v));
                None
            }
        }
    }

    /// Removes and returns the value under `key`.
    pub fn remove(&mut self, key: &[u8]) -> Option<Value<'a>> {
        let i = self.entries.binary_search_by(|(k, _)| key_cmp(k, key)).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Builds a dictionary from entries that are already strictly increasing by key.
    pub(crate) fn from_sorted(entries: Vec<(&'a [u8], Value<'a>)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "entries must be sorted and unique");
        Dict { entries }
    }
}

impl<'a> FromIterator<(&'a [u8], Value<'a>)> for Dict<'a> {
    /// Collects entries in any order; for a repeated key the last value wins.
    fn from_iter<I: IntoIterator<Item = (&'a [u8], Value<'a>)>>(iter: I) -> Self {
        let mut entries: Vec<_> = iter.into_iter().collect();
        // Stable sort keeps input order among equal keys, so keeping the last of a run keeps
        // the value inserted last.
        entries.sort_by(|a, b| key_cmp(a.0, b.0));
        let mut out: Vec<(&'a [u8], Value<'a>)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        Dict { entries: out }
    }
}

impl<'a> Value<'a> {
    /// The integer, if this is an `Int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The byte string, if this is `Bytes`; it borrows from the decoded buffer.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The items, if this is a `List`.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary, if this is a `Dict`.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Appends the canonical encoding (dictionary keys sorted) to `out`.
    ///
    /// Recursive: a tree built by hand with extreme nesting could exhaust the stack; trees
    /// from the decoder are bounded by [`Limits::max_depth`](crate::Limits).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => write_int(out, *i),
            Value::Bytes(b) => write_bytes(out, b),
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in &d.entries {
                    write_bytes(out, k);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The exact number of bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            Value::Int(i) => int_len(*i),
            Value::Bytes(b) => bytes_len(b.len()),
            Value::List(items) => 2 + items.iter().map(Value::encoded_len).sum::<usize>(),
            Value::Dict(d) => 2 + d.entries.iter().map(|(k, v)| bytes_len(k.len()) + v.encoded_len()).sum::<usize>(),
        }
    }
}

impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(b: &'a [u8]) -> Self {
        Value::Bytes(b)
    }
}

impl<'a> From<Dict<'a>> for Value<'a> {
    fn from(d: Dict<'a>) -> Self {
        Value::Dict(d)
    }
}

impl<'a> From<Vec<Value<'a>>> for Value<'a> {
    fn from(l: Vec<Value<'a>>) -> Self {
        Value::List(l)
    }
}

/// Sorts decoded dictionary entries in place and finds the first duplicate key.
///
/// Returns the key of the later occurrence of a duplicate, if any. Used by the decoder for
/// dictionaries that arrived unsorted.
pub(crate) fn sort_entries<'a>(entries: &mut [(&'a [u8], Value<'a>)]) -> Option<&'a [u8]> {
    // Stable: among equal keys the one that came later in the input stays second.
    entries.sort_by(|a, b| key_cmp(a.0, b.0));
    entries.windows(2).find(|w| w[0].0 == w[1].0).map(|w| w[1].0)
}

/// Bytewise order of dictionary keys, the same as `<[u8]>::cmp`.
///
/// Keys are short (`t`, `id`, `info_hash`): an inline loop is several times faster there
/// than the `memcmp` call the slice comparison makes. Long keys use the library call.
#[inline]
pub(crate) fn key_cmp(a: &[u8], b: &[u8]) -> Ordering {
    if a.len().min(b.len()) > 16 {
        return a.cmp(b);
    }
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dict_insert_keeps_sorted_and_replaces() {
        let mut d = Dict::new();
        assert!(d.is_empty());
        assert_eq!(d.insert(b"b", Value::Int(2)), None);
        assert_eq!(d.insert(b"a", Value::Int(1)), None);
        assert_eq!(d.insert(b"c", Value::Int(3)), None);
        assert_eq!(d.insert(b"b", Value::Int(20)), Some(Value::Int(2)));
        let keys: Vec<&[u8]> = d.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(d.len(), 3);
        assert_eq!(d.get(b"b"), Some(&Value::Int(20)));
        assert_eq!(d.get(b"zz"), None);
        assert_eq!(d.remove(b"a"), Some(Value::Int(1)));
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn from_iter_sorts_and_last_wins() {
        let d: Dict =
            vec![(&b"z"[..], Value::Int(1)), (b"a", Value::Int(2)), (b"z", Value::Int(3))].into_iter().collect();
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(b"z"), Some(&Value::Int(3)));
    }

    #[test]
    fn accessors() {
        let v = Value::Int(5);
        assert_eq!(v.as_int(), Some(5));
        assert_eq!(v.as_bytes(), None);
        assert_eq!(v.as_list(), None);
        assert_eq!(v.as_dict(), None);
        let b = Value::from(&b"xy"[..]);
        assert_eq!(b.as_bytes(), Some(&b"xy"[..]));
        assert_eq!(b.as_int(), None);
        let l = Value::from(vec![Value::Int(1)]);
        assert_eq!(l.as_list().map(<[_]>::len), Some(1));
        let d = Value::from(Dict::new());
        assert!(d.as_dict().is_some_and(Dict::is_empty));
    }

    #[test]
    fn encode_is_canonical_and_len_exact() {
        let mut d = Dict::new();
        d.insert(b"zeta", Value::List(vec![Value::Int(-42), Value::Bytes(b"")]));
        d.insert(b"alpha", Value::Int(i64::MIN));
        let v = Value::Dict(d);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, b"d5:alphai-9223372036854775808e4:zetali-42e0:ee".to_vec());
        assert_eq!(v.encoded_len(), out.len());
    }

    #[test]
    fn key_cmp_matches_slice_order() {
        let keys: [&[u8]; 9] = [b"", b"a", b"ab", b"b", b"nodes", b"nodes6", b"\xff", &[b'x'; 17], &[b'x'; 18]];
        for a in keys {
            for b in keys {
                assert_eq!(key_cmp(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn sort_entries_reports_later_duplicate() {
        let (a1, a2): (&[u8], &[u8]) = (b"a", b"a");
        let mut e = vec![(&b"b"[..], Value::Int(0)), (a1, Value::Int(1)), (a2, Value::Int(2))];
        let dup = sort_entries(&mut e);
        assert_eq!(dup, Some(&b"a"[..]));
        assert_eq!(e[1].1, Value::Int(2));
        let mut ok = vec![(&b"b"[..], Value::Int(0)), (b"a", Value::Int(1))];
        assert_eq!(sort_entries(&mut ok), None);
        assert_eq!(ok[0].0, b"a");
    }
}
