//! Property tests: every message round-trips, `encoded_len` is exact, decoding does not
//! depend on how the stream is chunked, `NeedMore` is exact, arbitrary bytes never panic.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use mycel_peer_wire::{
    decode, id, Bitfield, Decoded, ExtendedHandshake, ExtensionError, FrameDecoder, Handshake, Message, PexFlags,
    Reserved, UtMetadata, UtPex, DEFAULT_MAX_MESSAGE_LEN, MAX_PEX_PEERS, METADATA_PIECE_LEN,
};
use proptest::prelude::*;

/// The shape of a message; variable parts come from a separate byte vector it borrows.
#[derive(Debug, Clone)]
enum Spec {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield,
    Request(u32, u32, u32),
    Piece(u32, u32),
    Cancel(u32, u32, u32),
    Port(u16),
    HaveAll,
    HaveNone,
    Suggest(u32),
    Reject(u32, u32, u32),
    AllowedFast(u32),
    Extended(u8),
    HashRequest([u8; 32], [u32; 4]),
    Hashes([u8; 32], [u32; 4]),
    HashReject([u8; 32], [u32; 4]),
    Unknown(u8),
}

fn spec() -> impl Strategy<Value = Spec> {
    let hash_header = || (any::<[u8; 32]>(), any::<[u32; 4]>());
    prop_oneof![
        Just(Spec::KeepAlive),
        Just(Spec::Choke),
        Just(Spec::Unchoke),
        Just(Spec::Interested),
        Just(Spec::NotInterested),
        any::<u32>().prop_map(Spec::Have),
        Just(Spec::Bitfield),
        any::<(u32, u32, u32)>().prop_map(|(a, b, c)| Spec::Request(a, b, c)),
        any::<(u32, u32)>().prop_map(|(a, b)| Spec::Piece(a, b)),
        any::<(u32, u32, u32)>().prop_map(|(a, b, c)| Spec::Cancel(a, b, c)),
        any::<u16>().prop_map(Spec::Port),
        Just(Spec::HaveAll),
        Just(Spec::HaveNone),
        any::<u32>().prop_map(Spec::Suggest),
        any::<(u32, u32, u32)>().prop_map(|(a, b, c)| Spec::Reject(a, b, c)),
        any::<u32>().prop_map(Spec::AllowedFast),
        any::<u8>().prop_map(Spec::Extended),
        hash_header().prop_map(|(r, f)| Spec::HashRequest(r, f)),
        hash_header().prop_map(|(r, f)| Spec::Hashes(r, f)),
        hash_header().prop_map(|(r, f)| Spec::HashReject(r, f)),
        any::<u8>().prop_filter("unassigned id", |i| !id::is_known(*i)).prop_map(Spec::Unknown),
    ]
}

fn build<'a>(s: &Spec, data: &'a [u8]) -> Message<'a> {
    match *s {
        Spec::KeepAlive => Message::KeepAlive,
        Spec::Choke => Message::Choke,
        Spec::Unchoke => Message::Unchoke,
        Spec::Interested => Message::Interested,
        Spec::NotInterested => Message::NotInterested,
        Spec::Have(i) => Message::Have(i),
        Spec::Bitfield => Message::Bitfield(data),
        Spec::Request(index, begin, length) => Message::Request { index, begin, length },
        Spec::Piece(index, begin) => Message::Piece { index, begin, block: data },
        Spec::Cancel(index, begin, length) => Message::Cancel { index, begin, length },
        Spec::Port(p) => Message::Port(p),
        Spec::HaveAll => Message::HaveAll,
        Spec::HaveNone => Message::HaveNone,
        Spec::Suggest(i) => Message::SuggestPiece(i),
        Spec::Reject(index, begin, length) => Message::RejectRequest { index, begin, length },
        Spec::AllowedFast(i) => Message::AllowedFast(i),
        Spec::Extended(id) => Message::Extended { id, payload: data },
        Spec::HashRequest(pieces_root, [base_layer, index, length, proof_layers]) => {
            Message::HashRequest { pieces_root, base_layer, index, length, proof_layers }
        }
        Spec::Hashes(pieces_root, [base_layer, index, length, proof_layers]) => Message::Hashes {
            pieces_root,
            base_layer,
            index,
            length,
            proof_layers,
            hashes: &data[..data.len() / 32 * 32],
        },
        Spec::HashReject(pieces_root, [base_layer, index, length, proof_layers]) => {
            Message::HashReject { pieces_root, base_layer, index, length, proof_layers }
        }
        Spec::Unknown(id) => Message::Unknown { id, payload: data },
    }
}

fn msg_with_data() -> impl Strategy<Value = (Spec, Vec<u8>)> {
    (spec(), prop::collection::vec(any::<u8>(), 0..300))
}

fn encode(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

const MAX: u32 = DEFAULT_MAX_MESSAGE_LEN;

/// A stream of `msgs` (after a handshake if asked), the encoder's bytes of each message,
/// and the end points of the chunks `cuts` makes of it (the last is the stream's end).
fn cut_stream(
    msgs: &[(Spec, Vec<u8>)],
    cuts: &[prop::sample::Index],
    with_handshake: bool,
) -> (Handshake, Vec<u8>, Vec<Vec<u8>>, Vec<usize>) {
    let hs = Handshake { reserved: Reserved([1, 2, 3, 4, 5, 6, 7, 8]), info_hash: [9; 20], peer_id: [10; 20] };
    let mut stream = if with_handshake { hs.to_bytes().to_vec() } else { Vec::new() };
    let want: Vec<Vec<u8>> = msgs.iter().map(|(s, d)| encode(&build(s, d))).collect();
    stream.extend(want.concat());
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    (hs, stream, want, points)
}

proptest! {
    // 512 cases by default; PROPTEST_CASES overrides it for long runs.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_message_roundtrips((s, data) in msg_with_data()) {
        let msg = build(&s, &data);
        let bytes = encode(&msg);
        prop_assert_eq!(bytes.len(), msg.encoded_len());
        prop_assert_eq!(decode(&bytes, MAX), Ok(Decoded::Message { msg, consumed: bytes.len() }));
    }

    #[test]
    fn chunking_does_not_matter(
        msgs in prop::collection::vec(msg_with_data(), 0..20),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        with_handshake in any::<bool>(),
    ) {
        let (hs, stream, want, points) = cut_stream(&msgs, &cuts, with_handshake);
        let mut rx = FrameDecoder::new(MAX);
        let (mut got, mut got_hs, mut start) = (Vec::new(), None, 0);
        for end in points {
            rx.extend(&stream[start..end]);
            start = end;
            if with_handshake && got_hs.is_none() {
                got_hs = rx.handshake().expect("valid handshake");
                if got_hs.is_none() {
                    continue;
                }
            }
            while let Some(m) = rx.next().expect("valid stream") {
                got.push(encode(&m));
            }
        }
        prop_assert_eq!(got_hs, with_handshake.then_some(hs));
        prop_assert_eq!(got, want);
        prop_assert_eq!(rx.buffered(), 0);
    }

    /// The handed-over path: frames cut from owned chunks (sliced or copied) carry the
    /// same messages and blocks as the encoder wrote, in any chunking, and once drained the
    /// decoder keeps no chunk alive.
    #[test]
    fn owned_chunks_yield_the_same_frames(
        msgs in prop::collection::vec(msg_with_data(), 0..20),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        with_handshake in any::<bool>(),
    ) {
        let (hs, stream, want, points) = cut_stream(&msgs, &cuts, with_handshake);
        let mut rx = FrameDecoder::new(MAX);
        let (mut got, mut got_hs, mut start, mut chunks) = (Vec::new(), None, 0, Vec::new());
        for end in points {
            let chunk = bytes::Bytes::copy_from_slice(&stream[start..end]);
            chunks.push(chunk.clone());
            rx.extend_bytes(chunk);
            start = end;
            if with_handshake && got_hs.is_none() {
                got_hs = rx.handshake().expect("valid handshake");
                if got_hs.is_none() {
                    continue;
                }
            }
            while let Some(f) = rx.next_frame().expect("valid stream") {
                let m = f.message();
                let bytes = encode(&m);
                prop_assert_eq!(&bytes[..], &f.as_bytes()[..]);
                if let Message::Piece { block, .. } = m {
                    let owned = f.piece_block();
                    prop_assert_eq!(owned.as_deref(), Some(block));
                } else {
                    prop_assert_eq!(f.piece_block(), None);
                }
                got.push(bytes);
            }
            prop_assert!(rx.buffered() <= rx.max_buffered());
        }
        prop_assert_eq!(got_hs, with_handshake.then_some(hs));
        prop_assert_eq!(got, want);
        prop_assert_eq!(rx.buffered(), 0);
        prop_assert!(chunks.iter().all(|c| c.is_empty() || c.is_unique()), "a drained decoder holds a chunk");
    }

    /// Arbitrary bytes in arbitrary owned chunks never panic, and the decoder stays within
    /// its bound after each drain.
    #[test]
    fn arbitrary_owned_chunks_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        max in 0u32..512,
        handshake in any::<bool>(),
    ) {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.push(bytes.len());
        points.sort_unstable();
        let mut rx = FrameDecoder::new(max);
        let (mut start, mut need_handshake) = (0, handshake);
        for end in points {
            rx.extend_bytes(bytes::Bytes::copy_from_slice(&bytes[start..end]));
            start = end;
            let _ = rx.need();
            if need_handshake {
                match rx.handshake() {
                    Ok(Some(_)) => need_handshake = false,
                    _ => continue,
                }
            }
            loop {
                match rx.next_frame() {
                    Ok(Some(f)) => {
                        let _ = (f.message(), f.piece_block());
                    }
                    Ok(None) => {
                        prop_assert!(rx.buffered() <= rx.max_buffered());
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn need_more_is_exact((s, data) in msg_with_data()) {
        let bytes = encode(&build(&s, &data));
        for k in 0..bytes.len() {
            let Ok(Decoded::NeedMore(n)) = decode(&bytes[..k], MAX) else {
                return Err(TestCaseError::fail(format!("prefix of {k} bytes did not ask for more")));
            };
            if k < 4 {
                prop_assert_eq!(n, 4 - k);
            } else {
                prop_assert_eq!(n, bytes.len() - k);
            }
            let next = decode(&bytes[..k + n], MAX);
            if k + n < bytes.len() {
                prop_assert_eq!(next, Ok(Decoded::NeedMore(bytes.len() - k - n)));
            } else {
                let done = matches!(next, Ok(Decoded::Message { consumed, .. }) if consumed == bytes.len());
                prop_assert!(done, "{:?}", next);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), max in any::<u32>()) {
        let _ = decode(&bytes, max);
        let _ = Handshake::decode(&bytes);
        mycel_peer_wire::fuzzing::stream(&bytes);
        mycel_peer_wire::fuzzing::extension(&bytes);
    }

    /// Random bytes rarely get past a length prefix; corrupting valid streams reaches the
    /// per-message checks and the chunked-decoder comparison of the fuzz body.
    #[test]
    fn corrupted_streams_never_panic(
        msgs in prop::collection::vec(msg_with_data(), 1..8),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        handshake in any::<bool>(),
    ) {
        let mut stream = if handshake { Handshake { reserved: Reserved::NONE, info_hash: [1; 20], peer_id: [2; 20] }.to_bytes().to_vec() } else { Vec::new() };
        for (s, d) in &msgs {
            stream.extend(encode(&build(s, d)));
        }
        for (at, byte) in &edits {
            let i = at.index(stream.len());
            stream[i] = *byte;
        }
        mycel_peer_wire::fuzzing::stream(&stream);
    }

    #[test]
    fn length_limit_is_enforced_on_the_prefix((s, data) in msg_with_data()) {
        let msg = build(&s, &data);
        let bytes = encode(&msg);
        let body = (bytes.len() - 4) as u32;
        if body > 0 {
            let limit = body - 1;
            let too_long = matches!(decode(&bytes[..4], limit), Err(mycel_peer_wire::WireError::TooLong { .. }));
            prop_assert!(too_long);
        }
        let fits = matches!(decode(&bytes, body), Ok(Decoded::Message { .. }));
        prop_assert!(fits);
    }

    #[test]
    fn extended_handshake_roundtrips(
        m in prop::collection::btree_map(prop::collection::vec(any::<u8>(), 0..12), any::<u8>(), 0..6),
        v in prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
        p in any::<Option<u16>>(),
        yourip in prop::option::of(prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]),
        ipv4 in any::<Option<[u8; 4]>>(),
        ipv6 in any::<Option<[u8; 16]>>(),
        reqq in any::<Option<u32>>(),
        metadata_size in prop::option::of(1..=mycel_peer_wire::MAX_METADATA_SIZE),
        upload_only in any::<bool>(),
    ) {
        let h = ExtendedHandshake {
            m: m.iter().map(|(k, id)| (&k[..], *id)).collect(),
            v: v.as_deref(),
            p,
            yourip,
            ipv4: ipv4.map(Ipv4Addr::from),
            ipv6: ipv6.map(Ipv6Addr::from),
            reqq,
            metadata_size,
            upload_only,
        };
        let mut out = Vec::new();
        h.encode(&mut out);
        prop_assert_eq!(out.len(), h.encoded_len());
        prop_assert_eq!(ExtendedHandshake::decode(&out), Ok(h));
    }

    #[test]
    fn ut_metadata_roundtrips(kind in 0u8..3, total in 1..=200_000u32, piece_seed in any::<u32>()) {
        let pieces = total.div_ceil(METADATA_PIECE_LEN as u32);
        let piece = piece_seed % pieces;
        let len = mycel_peer_wire::metadata_piece_len(total, piece).expect("piece exists");
        let data = vec![0x5a; len];
        let m = match kind {
            0 => UtMetadata::Request { piece },
            1 => UtMetadata::Data { piece, total_size: total, data: &data },
            _ => UtMetadata::Reject { piece },
        };
        let mut out = Vec::new();
        m.encode(&mut out);
        prop_assert_eq!(out.len(), m.encoded_len());
        prop_assert_eq!(UtMetadata::decode(&out), Ok(m));
    }

    #[test]
    fn ut_pex_roundtrips(
        added in prop::collection::vec((any::<[u8; 4]>(), any::<u16>(), any::<u8>()), 0..8),
        added6 in prop::collection::vec((any::<[u8; 16]>(), any::<u16>(), any::<u8>()), 0..4),
        dropped in prop::collection::vec((any::<[u8; 4]>(), any::<u16>()), 0..8),
        dropped6 in prop::collection::vec((any::<[u8; 16]>(), any::<u16>()), 0..4),
    ) {
        let p = UtPex {
            added: added.iter().map(|(ip, port, f)| (SocketAddrV4::new((*ip).into(), *port), PexFlags(*f))).collect(),
            added6: added6.iter().map(|(ip, port, f)| (SocketAddrV6::new((*ip).into(), *port, 0, 0), PexFlags(*f))).collect(),
            dropped: dropped.iter().map(|(ip, port)| SocketAddrV4::new((*ip).into(), *port)).collect(),
            dropped6: dropped6.iter().map(|(ip, port)| SocketAddrV6::new((*ip).into(), *port, 0, 0)).collect(),
        };
        let mut out = Vec::new();
        p.encode(&mut out);
        prop_assert_eq!(out.len(), p.encoded_len());
        prop_assert_eq!(UtPex::decode(&out), Ok(p));
    }

    #[test]
    fn ut_pex_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        mycel_peer_wire::fuzzing::pex(&bytes);
    }

    #[test]
    fn ut_pex_lists_decode_up_to_the_cap(n in 0usize..=260, which in 0usize..4) {
        let (key, width) = [("added", 6), ("added6", 18), ("dropped", 6), ("dropped6", 18)][which];
        let mut payload = format!("d{}:{}{}:", key.len(), key, n * width).into_bytes();
        payload.extend(std::iter::repeat_n(7u8, n * width));
        payload.push(b'e');
        match UtPex::decode(&payload) {
            Ok(p) => {
                prop_assert!(n <= MAX_PEX_PEERS);
                prop_assert_eq!(p.added.len() + p.added6.len() + p.dropped.len() + p.dropped6.len(), n);
            }
            Err(e) => {
                prop_assert!(n > MAX_PEX_PEERS);
                prop_assert_eq!(e, ExtensionError::TooManyPeers { key, count: n, max: MAX_PEX_PEERS });
            }
        }
    }

    #[test]
    fn bitfield_model(pieces in 0u32..200, picks in prop::collection::vec(any::<prop::sample::Index>(), 0..50)) {
        let mut bf = Bitfield::new(pieces);
        let mut model = BTreeSet::new();
        if pieces > 0 {
            for p in &picks {
                let i = p.index(pieces as usize) as u32;
                prop_assert_eq!(bf.set(i), Ok(model.insert(i)));
            }
        }
        prop_assert!(bf.set(pieces).is_err());
        prop_assert_eq!(bf.count() as usize, model.len());
        prop_assert_eq!(bf.iter_set().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
        prop_assert_eq!(Bitfield::from_bytes(bf.as_bytes(), pieces), Ok(bf.clone()));
        prop_assert_eq!(bf.is_full(), model.len() as u32 == pieces);
        prop_assert!((0..pieces + 8).all(|i| bf.has(i) == model.contains(&i)));
    }
}
