//! Property tests of the public API: round-trips, exact lengths, no panics on junk,
//! canonical re-encoding of unsorted input.

use mycel_bencode::{decode, decode_prefix, fuzzing, DecodeError, Dict, Limits, Value};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

/// An owned mirror of `Value`, so strategies can generate trees that `Value` then borrows.
#[derive(Debug, Clone)]
enum Owned {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Owned>),
    Dict(Vec<(Vec<u8>, Owned)>),
}

fn owned() -> impl Strategy<Value = Owned> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Owned::Int),
        (-300i64..300).prop_map(Owned::Int),
        vec(any::<u8>(), 0..24).prop_map(Owned::Bytes),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Owned::List),
            btree_map(vec(any::<u8>(), 0..6), inner, 0..8).prop_map(|m| Owned::Dict(m.into_iter().collect())),
        ]
    })
}

fn borrow(o: &Owned) -> Value<'_> {
    match o {
        Owned::Int(i) => Value::Int(*i),
        Owned::Bytes(b) => Value::Bytes(b),
        Owned::List(l) => Value::List(l.iter().map(borrow).collect()),
        Owned::Dict(d) => Value::Dict(d.iter().map(|(k, v)| (k.as_slice(), borrow(v))).collect::<Dict>()),
    }
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

/// Bytes drawn mostly from bencode's own alphabet, to reach deep into the parser.
fn bencodish() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => prop::sample::select(b"ilde0123456789:-".to_vec()),
        1 => any::<u8>(),
    ];
    vec(byte, 0..64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(o in owned()) {
        let v = borrow(&o);
        let bytes = encode(&v);
        prop_assert_eq!(v.encoded_len(), bytes.len());
        prop_assert_eq!(decode(&bytes), Ok(v.clone()));
        let (p, n) = decode_prefix(&bytes, &Limits::DEFAULT).expect("prefix decodes");
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(p, v);
        fuzzing::decode(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..128)) {
        let _ = decode(&data);
        let _ = decode_prefix(&data, &Limits::DEFAULT);
        fuzzing::decode(&data);
    }

    #[test]
    fn bencodish_bytes_never_panic(data in bencodish()) {
        let tight = Limits { max_depth: 4, max_size: 48, max_items: 12 };
        let _ = decode_prefix(&data, &tight);
        let _ = mycel_bencode::decode_with(&data, &tight);
        fuzzing::decode(&data);
    }

    #[test]
    fn mutated_encodings_never_panic(
        o in owned(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&borrow(&o));
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        fuzzing::decode(&bytes);
        let end = cut.index(bytes.len() + 1);
        fuzzing::decode(&bytes[..end]);
    }

    #[test]
    fn unsorted_dicts_re_encode_sorted(
        entries in btree_map(vec(any::<u8>(), 0..6), any::<i64>(), 2..10)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_shuffle(),
    ) {
        let mut input = b"d".to_vec();
        for (k, v) in &entries {
            Value::Bytes(k).encode(&mut input);
            Value::Int(*v).encode(&mut input);
        }
        input.push(b'e');
        let decoded = decode(&input).expect("unsorted dict is accepted");
        let mut sorted = entries.clone();
        sorted.sort();
        let expected: Dict = sorted.iter().map(|(k, v)| (k.as_slice(), Value::Int(*v))).collect();
        let keys: Vec<&[u8]> = decoded.as_dict().expect("dict").iter().map(|(k, _)| k).collect();
        let want: Vec<&[u8]> = sorted.iter().map(|(k, _)| k.as_slice()).collect();
        prop_assert_eq!(keys, want);
        prop_assert_eq!(encode(&decoded), encode(&Value::Dict(expected)));
    }

    #[test]
    fn duplicate_keys_are_rejected(all in with_duplicate()) {
        let mut input = b"d".to_vec();
        for (k, v) in &all {
            Value::Bytes(k).encode(&mut input);
            Value::Int(*v).encode(&mut input);
        }
        input.push(b'e');
        let result = decode(&input);
        prop_assert!(matches!(result, Err(DecodeError::DuplicateKey { .. })), "got {:?}", result);
    }
}

/// Distinct dictionary entries plus one repeated key, in any order.
fn with_duplicate() -> impl Strategy<Value = Vec<(Vec<u8>, i64)>> {
    btree_map(vec(any::<u8>(), 0..6), any::<i64>(), 1..8)
        .prop_flat_map(|m| {
            let v: Vec<_> = m.into_iter().collect();
            let n = v.len();
            (Just(v), 0..n, any::<i64>())
        })
        .prop_map(|(mut v, i, other)| {
            let key = v[i].0.clone();
            v.push((key, other));
            v
        })
        .prop_shuffle()
}
