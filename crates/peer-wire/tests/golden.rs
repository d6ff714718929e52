//! Golden vectors: real libtorrent 2.1.1 conversations (`testdata/peer-wire/`, recorded by
//! `capture_libtorrent.py` there) and the byte examples of the BEPs.
//!
//! The captures are read with `std::fs`, which the sans-IO rule allows in tests.

#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use mycel_peer_wire::{
    decode, id, truncate_v2_info_hash, Bitfield, Decoded, ExtendedHandshake, Handshake, HandshakeDecoded, Message,
    UtMetadata, DEFAULT_MAX_MESSAGE_LEN, HANDSHAKE_LEN, UT_METADATA, UT_PEX,
};
use sha1::Digest;

fn testdata(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/peer-wire").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fact recorded by the capture script (`libtorrent-captures.txt`).
fn fact(key: &str) -> String {
    let text = String::from_utf8(testdata("libtorrent-captures.txt")).expect("utf-8");
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no fact {key}"))
        .to_string()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Decodes a whole capture: the handshake, then messages to the last byte. Checks that each
/// message re-encodes to its exact input bytes.
fn decode_capture(bytes: &[u8]) -> (Handshake, Vec<Message<'_>>) {
    let HandshakeDecoded::Handshake(hs) = Handshake::decode(bytes).expect("handshake") else {
        panic!("capture shorter than a handshake");
    };
    assert_eq!(hs.to_bytes()[..], bytes[..HANDSHAKE_LEN]);
    let mut pos = HANDSHAKE_LEN;
    let mut messages = Vec::new();
    while pos < bytes.len() {
        match decode(&bytes[pos..], DEFAULT_MAX_MESSAGE_LEN).expect("valid message") {
            Decoded::Message { msg, consumed } => {
                let mut out = Vec::new();
                msg.encode(&mut out);
                assert_eq!(out[..], bytes[pos..pos + consumed], "{msg:?} does not re-encode");
                messages.push(msg);
                pos += consumed;
            }
            Decoded::NeedMore(n) => panic!("capture ends inside a message ({n} bytes missing)"),
        }
    }
    (hs, messages)
}

/// Checks libtorrent's extended handshake (the same in both captures but for
/// `metadata_size`) and returns it.
fn check_extended_handshake<'a>(msg: &Message<'a>, metadata_size: u32) -> ExtendedHandshake<'a> {
    let Message::Extended { id: 0, payload } = *msg else { panic!("expected the extended handshake, got {msg:?}") };
    let h = ExtendedHandshake::decode(payload).expect("libtorrent's extended handshake");
    assert_eq!(h.extension_id(UT_METADATA), Some(2));
    assert_eq!(h.extension_id(UT_PEX), Some(1));
    assert_eq!(h.extension_id(b"ut_holepunch"), Some(4));
    assert_eq!(h.extension_id(b"lt_donthave"), Some(7));
    assert_eq!(h.metadata_size, Some(metadata_size));
    assert_eq!(h.reqq, Some(2000));
    assert!(h.upload_only, "libtorrent seeds");
    assert_eq!(h.v, Some(&b"libtorrent capture"[..]));
    assert_eq!(h.yourip, Some(std::net::Ipv4Addr::LOCALHOST.into()));
    assert!(h.p.is_some());
    // Our encoding drops only the key we do not model (complete_ago) and is canonical.
    let mut ours = Vec::new();
    h.encode(&mut ours);
    assert_eq!(ExtendedHandshake::decode(&ours).as_ref(), Ok(&h));
    let theirs_without = String::from_utf8_lossy(payload).replace("12:complete_agoi-1e", "");
    assert_eq!(String::from_utf8_lossy(&ours), theirs_without);
    h
}

/// Checks a `ut_metadata` data message answering our request for piece 0 of a small info
/// dictionary, and returns the dictionary's bytes.
fn check_metadata<'a>(msg: &Message<'a>, total: u32) -> &'a [u8] {
    // We announced ut_metadata as id 3 in our handshake: libtorrent sends under that id.
    let Message::Extended { id: 3, payload } = *msg else { panic!("expected ut_metadata, got {msg:?}") };
    match UtMetadata::decode(payload).expect("ut_metadata data") {
        UtMetadata::Data { piece: 0, total_size, data } => {
            assert_eq!(total_size, total);
            assert_eq!(data.len(), total as usize);
            data
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn libtorrent_hybrid_v1_connection() {
    let bytes = testdata("libtorrent-hybrid-v1.bin");
    let (hs, msgs) = decode_capture(&bytes);
    // libtorrent sets extension protocol, fast, DHT, and the v2 upgrade bit since the
    // torrent is hybrid and the connection uses the v1 info-hash.
    assert_eq!(hs.reserved.bytes(), [0, 0, 0, 0, 0, 0x10, 0, 0x15]);
    assert!(hs.reserved.extension_protocol() && hs.reserved.fast_extension());
    assert!(hs.reserved.dht() && hs.reserved.v2_upgrade());
    assert_eq!(hs.info_hash[..], hex(&fact("hybrid_v1_info_hash"))[..]);
    assert!(hs.peer_id.starts_with(b"-LT2110-"));

    let metadata_size: u32 = fact("hybrid_metadata_size").parse().expect("number");
    let kinds: Vec<Option<u8>> = msgs.iter().map(Message::id).collect();
    assert_eq!(kinds, [Some(20), Some(5), Some(1), Some(1), Some(20), Some(7)]);
    check_extended_handshake(&msgs[0], metadata_size);
    // We did not set the fast bit, so a seed sends a bitfield: 8 pieces, all set.
    let Message::Bitfield(b) = msgs[1] else { panic!() };
    let bf = Bitfield::from_bytes(b, 8).expect("valid bitfield");
    assert!(bf.is_full());
    // The info dictionary hashes (SHA-1) to the info-hash in the handshake.
    let info = check_metadata(&msgs[4], metadata_size);
    assert_eq!(sha1::Sha1::digest(info)[..], hs.info_hash[..]);
    let Message::Piece { index: 1, begin: 0, block } = msgs[5] else { panic!("{:?}", msgs[5]) };
    assert_eq!(block.len(), 16384);
}

#[test]
fn libtorrent_v2_connection() {
    let bytes = testdata("libtorrent-v2.bin");
    let (hs, msgs) = decode_capture(&bytes);
    // v2-only: no upgrade bit; the handshake carries the SHA-256 info-hash truncated.
    assert_eq!(hs.reserved.bytes(), [0, 0, 0, 0, 0, 0x10, 0, 0x05]);
    assert!(!hs.reserved.v2_upgrade());
    let v2: [u8; 32] = hex(&fact("v2_info_hash")).try_into().expect("32 bytes");
    assert_eq!(hs.info_hash, truncate_v2_info_hash(&v2));

    let metadata_size: u32 = fact("v2_metadata_size").parse().expect("number");
    check_extended_handshake(&msgs[0], metadata_size);
    // We set the fast bit: have_all instead of a bitfield, then allowed-fast pieces.
    assert_eq!(msgs[1], Message::HaveAll);
    let allowed: Vec<u32> =
        msgs.iter().filter_map(|m| if let Message::AllowedFast(i) = m { Some(*i) } else { None }).collect();
    assert!(!allowed.is_empty() && allowed.iter().all(|&i| i < 8), "{allowed:?}");

    let meta = msgs.iter().find(|m| matches!(m, Message::Extended { id: 3, .. })).expect("metadata");
    let info = check_metadata(meta, metadata_size);
    assert_eq!(sha2::Sha256::digest(info)[..], v2[..]);
    assert!(msgs.iter().any(|m| matches!(m, Message::Piece { index: 1, begin: 0, block } if block.len() == 16384)));

    // Our hash request for the piece layer (base layer 1 of 32 KiB pieces, 8 hashes).
    let root: [u8; 32] = hex(&fact("v2_pieces_root")).try_into().expect("32 bytes");
    let hashes = msgs.iter().find(|m| m.id() == Some(id::HASHES)).expect("a hashes answer");
    let Message::Hashes { pieces_root, base_layer: 1, index: 0, length: 8, proof_layers: 0, hashes } = *hashes else {
        panic!("{hashes:?}")
    };
    assert_eq!(pieces_root, root);
    assert_eq!(hashes.len(), 8 * 32);
    // The 8 piece-layer hashes are the bottom of a full tree whose root is the pieces root.
    let mut layer: Vec<Vec<u8>> = hashes.chunks(32).map(<[u8]>::to_vec).collect();
    while layer.len() > 1 {
        layer = layer.chunks(2).map(|p| sha2::Sha256::digest([&p[0][..], &p[1][..]].concat()).to_vec()).collect();
    }
    assert_eq!(layer[0], root);
}

#[test]
fn bep6_fast_extension_golden() {
    // BEP 6 gives each message as <len><op>[<index>...].
    let cases: [(&[u8], Message<'_>); 5] = [
        (&[0, 0, 0, 1, 0x0e], Message::HaveAll),
        (&[0, 0, 0, 1, 0x0f], Message::HaveNone),
        (&[0, 0, 0, 5, 0x0d, 0, 0, 0, 9], Message::SuggestPiece(9)),
        (
            &[0, 0, 0, 0x0d, 0x10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3],
            Message::RejectRequest { index: 1, begin: 2, length: 3 },
        ),
        (&[0, 0, 0, 5, 0x11, 0, 0, 0, 9], Message::AllowedFast(9)),
    ];
    for (bytes, msg) in cases {
        assert_eq!(decode(bytes, DEFAULT_MAX_MESSAGE_LEN), Ok(Decoded::Message { msg, consumed: bytes.len() }));
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(out, bytes);
    }
}

#[test]
fn bep10_extended_message_golden() {
    // BEP 10: <len><20><extended id><payload>; id 0 is the handshake.
    let bytes = b"\x00\x00\x00\x0f\x14\x00d1:md1:xi1eee";
    let Ok(Decoded::Message { msg: Message::Extended { id: 0, payload }, consumed: 19 }) =
        decode(bytes, DEFAULT_MAX_MESSAGE_LEN)
    else {
        panic!()
    };
    assert_eq!(ExtendedHandshake::decode(payload).map(|h| h.extension_id(b"x")), Ok(Some(1)));
}
