//! The BEP 10 extended handshake, and the dictionary helpers the extension payloads share.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mycel_bencode::{encoded_bytes_len, encoded_int_len, Dict, Encoder, Limits, Value};

use crate::ExtensionError;

/// Name of the BEP 9 metadata extension in the `m` dictionary.
pub const UT_METADATA: &[u8] = b"ut_metadata";
/// Name of the BEP 11 peer exchange extension in the `m` dictionary.
pub const UT_PEX: &[u8] = b"ut_pex";

/// Largest metadata (info dictionary) accepted: 64 MiB. Real ones are far smaller (a
/// 1 TiB torrent with 1 MiB pieces has 20 MiB of v1 piece hashes); this only bounds what a
/// peer can make us allocate.
pub const MAX_METADATA_SIZE: u32 = 64 << 20;

/// Limits for the bencode of extension payloads: shallow, small dictionaries.
pub(crate) const LIMITS: Limits = Limits { max_depth: 8, max_size: 1 << 20, max_items: 10_000 };

/// The BEP 10 handshake: the payload of the extended message with id 0.
///
/// Every item is optional (BEP 10); unknown keys are ignored. Known keys with the wrong
/// type or an impossible value are errors. `m` maps extension names to the ids the
/// *sender* wants to receive them under; an id of 0 means "disabled" and is kept, so a
/// later handshake can switch an extension off; [`extension_id`](Self::extension_id)
/// treats it as absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtendedHandshake<'a> {
    /// `m`: extension name → extended message id (0: disabled).
    pub m: BTreeMap<&'a [u8], u8>,
    /// `v`: client name and version (UTF-8 by the BEP, not checked).
    pub v: Option<&'a [u8]>,
    /// `p`: the sender's TCP listen port.
    pub p: Option<u16>,
    /// `yourip`: the receiver's address as the sender sees it.
    pub yourip: Option<IpAddr>,
    /// `ipv4`: the sender's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// `ipv6`: the sender's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// `reqq`: how many outstanding requests the sender queues without dropping.
    pub reqq: Option<u32>,
    /// `metadata_size` (BEP 9): size of the info dictionary, 1..=[`MAX_METADATA_SIZE`]; a
    /// value of 0 (no metadata) reads as absent.
    pub metadata_size: Option<u32>,
    /// `upload_only` (BEP 21): the sender is a seed or only uploads; any non-zero integer.
    pub upload_only: bool,
}

impl<'a> ExtendedHandshake<'a> {
    /// Decodes the payload of an extended message with id 0 (the bencoded dictionary,
    /// nothing after it).
    pub fn decode(payload: &'a [u8]) -> Result<Self, ExtensionError> {
        let value = mycel_bencode::decode_with(payload, &LIMITS)?;
        let d = value.as_dict().ok_or(ExtensionError::NotADict)?;
        let m = match d.get(b"m") {
            None => BTreeMap::new(),
            Some(v) => decode_m(v)?,
        };
        let metadata_size = int_in(d, b"metadata_size", "metadata_size", 0, i64::from(MAX_METADATA_SIZE))?;
        Ok(ExtendedHandshake {
            m,
            v: bytes(d, b"v", "v")?,
            p: int_in(d, b"p", "p", 0, 0xffff)?.map(|p| p as u16),
            yourip: bytes(d, b"yourip", "yourip")?.map(|b| ip(b, "yourip")).transpose()?,
            ipv4: bytes(d, b"ipv4", "ipv4")?.map(|b| fixed::<4>(b, "ipv4").map(Ipv4Addr::from)).transpose()?,
            ipv6: bytes(d, b"ipv6", "ipv6")?.map(|b| fixed::<16>(b, "ipv6").map(Ipv6Addr::from)).transpose()?,
            reqq: int_in(d, b"reqq", "reqq", 0, i64::from(u32::MAX))?.map(|r| r as u32),
            metadata_size: metadata_size.filter(|&s| s > 0).map(|s| s as u32),
            upload_only: int_in(d, b"upload_only", "upload_only", i64::MIN, i64::MAX)?.is_some_and(|u| u != 0),
        })
    }

    /// The id the sender of this handshake wants extension `name` sent under, if it
    /// supports it (a non-zero entry in `m`).
    pub fn extension_id(&self, name: &[u8]) -> Option<u8> {
        self.m.get(name).copied().filter(|&id| id != 0)
    }

    /// Appends the canonical bencoding (keys sorted; `m` always written, the other items
    /// when present, `upload_only` as `1` when true). Wrap it with
    /// [`encode_extended_header`](crate::encode_extended_header)`(0, ..)` or in
    /// `Message::Extended { id: 0, .. }`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut e = Encoder::new(out);
        e.begin_dict();
        if let Some(ip) = self.ipv4 {
            e.key(b"ipv4").bytes(&ip.octets());
        }
        if let Some(ip) = self.ipv6 {
            e.key(b"ipv6").bytes(&ip.octets());
        }
        e.key(b"m").begin_dict();
        for (name, id) in &self.m {
            e.key(name).int(i64::from(*id));
        }
        e.end();
        if let Some(s) = self.metadata_size {
            e.key(b"metadata_size").int(i64::from(s));
        }
        if let Some(p) = self.p {
            e.key(b"p").int(i64::from(p));
        }
        if let Some(r) = self.reqq {
            e.key(b"reqq").int(i64::from(r));
        }
        if self.upload_only {
            e.key(b"upload_only").int(1);
        }
        if let Some(v) = self.v {
            e.key(b"v").bytes(v);
        }
        match self.yourip {
            Some(IpAddr::V4(ip)) => e.key(b"yourip").bytes(&ip.octets()),
            Some(IpAddr::V6(ip)) => e.key(b"yourip").bytes(&ip.octets()),
            None => &mut e,
        };
        e.end();
        e.finish();
    }

    /// The exact number of bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        let kv = |key: &[u8], value: usize| encoded_bytes_len(key.len()) + value;
        let m: usize = self.m.iter().map(|(k, id)| kv(k, encoded_int_len(i64::from(*id)))).sum();
        let mut n = 2 + kv(b"m", 2 + m);
        n += self.ipv4.map_or(0, |_| kv(b"ipv4", encoded_bytes_len(4)));
        n += self.ipv6.map_or(0, |_| kv(b"ipv6", encoded_bytes_len(16)));
        n += self.metadata_size.map_or(0, |s| kv(b"metadata_size", encoded_int_len(i64::from(s))));
        n += self.p.map_or(0, |p| kv(b"p", encoded_int_len(i64::from(p))));
        n += self.reqq.map_or(0, |r| kv(b"reqq", encoded_int_len(i64::from(r))));
        n += if self.upload_only { kv(b"upload_only", 3) } else { 0 };
        n += self.v.map_or(0, |v| kv(b"v", encoded_bytes_len(v.len())));
        let ip_len = |ip: &IpAddr| if ip.is_ipv4() { 4 } else { 16 };
        n += self.yourip.as_ref().map_or(0, |ip| kv(b"yourip", encoded_bytes_len(ip_len(ip))));
        n
    }
}

fn decode_m<'a>(v: &Value<'a>) -> Result<BTreeMap<&'a [u8], u8>, ExtensionError> {
    let d = v.as_dict().ok_or(ExtensionError::WrongType("m"))?;
    let mut m = BTreeMap::new();
    for (name, id) in d.iter() {
        let id = id.as_int().ok_or(ExtensionError::WrongType("m.*"))?;
        let id = u8::try_from(id).map_err(|_| ExtensionError::OutOfRange { key: "m.*", value: id })?;
        m.insert(name, id);
    }
    Ok(m)
}

/// The integer under `key`, if present; `name` names it in errors.
pub(crate) fn int_in(
    d: &Dict<'_>,
    key: &[u8],
    name: &'static str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ExtensionError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Int(i)) if (min..=max).contains(i) => Ok(Some(*i)),
        Some(Value::Int(i)) => Err(ExtensionError::OutOfRange { key: name, value: *i }),
        Some(_) => Err(ExtensionError::WrongType(name)),
    }
}

/// The byte string under `key`, if present.
pub(crate) fn bytes<'a>(d: &Dict<'a>, key: &[u8], name: &'static str) -> Result<Option<&'a [u8]>, ExtensionError> {
    match d.get(key) {
        None => Ok(None),
        Some(v) => v.as_bytes().map(Some).ok_or(ExtensionError::WrongType(name)),
    }
}

fn fixed<const N: usize>(b: &[u8], key: &'static str) -> Result<[u8; N], ExtensionError> {
    <[u8; N]>::try_from(b).map_err(|_| ExtensionError::BadLength { key, len: b.len() })
}

fn ip(b: &[u8], key: &'static str) -> Result<IpAddr, ExtensionError> {
    match b.len() {
        4 => fixed::<4>(b, key).map(IpAddr::from),
        _ => fixed::<16>(b, key).map(IpAddr::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(h: &ExtendedHandshake<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out.len(), h.encoded_len());
        out
    }

    #[test]
    fn bep10_example_decodes() {
        // BEP 10's example, as its table gives it: {'m': {'LT_metadata': 1, 'ut_pex': 2},
        // 'p': 6881, 'v': 'µTorrent 1.2'}. The BEP's encoded form spells the key `6:µT_PEX`,
        // 7 bytes of UTF-8 under a length of 6: strict bencode rejects that literal.
        let literal = b"d1:md11:LT_metadatai1e6:\xc2\xb5T_PEXi2ee1:pi6881e1:v13:\xc2\xb5Torrent 1.2e";
        assert!(matches!(ExtendedHandshake::decode(literal), Err(ExtensionError::Bencode(_))));
        let payload = "d1:md11:LT_metadatai1e6:ut_pexi2ee1:pi6881e1:v13:\u{b5}Torrent 1.2e".as_bytes();
        let h = ExtendedHandshake::decode(payload).expect("valid");
        assert_eq!(h.extension_id(b"LT_metadata"), Some(1));
        assert_eq!(h.extension_id(UT_PEX), Some(2));
        assert_eq!(h.extension_id(UT_METADATA), None);
        assert_eq!(h.p, Some(6881));
        assert_eq!(h.v, Some("\u{b5}Torrent 1.2".as_bytes()));
        assert_eq!(enc(&h), payload);
    }

    #[test]
    fn full_roundtrip_and_canonical_order() {
        let h = ExtendedHandshake {
            m: [(UT_METADATA, 3), (UT_PEX, 0)].into_iter().collect(),
            v: Some(b"mycel 0.1"),
            p: Some(51413),
            yourip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ipv4: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ipv6: Some(Ipv6Addr::LOCALHOST),
            reqq: Some(500),
            metadata_size: Some(31235),
            upload_only: true,
        };
        let out = enc(&h);
        assert_eq!(ExtendedHandshake::decode(&out), Ok(h.clone()));
        assert_eq!(h.extension_id(UT_PEX), None);
        let keys = mycel_bencode::decode(&out).expect("bencode");
        let keys: Vec<&[u8]> = keys.as_dict().expect("dict").iter().map(|(k, _)| k).collect();
        let want: Vec<&[u8]> =
            vec![b"ipv4", b"ipv6", b"m", b"metadata_size", b"p", b"reqq", b"upload_only", b"v", b"yourip"];
        assert_eq!(keys, want);
        assert_eq!(enc(&ExtendedHandshake::default()), b"d1:mdee");
    }

    #[test]
    fn unknown_keys_ignored_and_m_optional() {
        let h = ExtendedHandshake::decode(b"d1:ei1e12:complete_agoi-1e6:yourip4:\x7f\x00\x00\x01e").expect("valid");
        assert!(h.m.is_empty());
        assert_eq!(h.yourip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(ExtendedHandshake::decode(b"d13:metadata_sizei0ee").map(|h| h.metadata_size), Ok(None));
    }

    #[test]
    fn malformed_known_keys_are_errors() {
        let cases: [(&[u8], ExtensionError); 8] = [
            (b"le", ExtensionError::NotADict),
            (b"d1:mi1ee", ExtensionError::WrongType("m")),
            (b"d1:md1:xi256eee", ExtensionError::OutOfRange { key: "m.*", value: 256 }),
            (b"d1:md1:x1:aee", ExtensionError::WrongType("m.*")),
            (b"d1:pi65536ee", ExtensionError::OutOfRange { key: "p", value: 65536 }),
            (b"d4:reqqi-1ee", ExtensionError::OutOfRange { key: "reqq", value: -1 }),
            (b"d13:metadata_sizei67108865ee", ExtensionError::OutOfRange { key: "metadata_size", value: 67_108_865 }),
            (b"d6:yourip3:abce", ExtensionError::BadLength { key: "yourip", len: 3 }),
        ];
        for (input, err) in cases {
            assert_eq!(ExtendedHandshake::decode(input), Err(err), "{:?}", String::from_utf8_lossy(input));
        }
        assert!(matches!(ExtendedHandshake::decode(b"d1:pi1ee!"), Err(ExtensionError::Bencode(_))));
        assert_eq!(ExtendedHandshake::decode(b"d1:v1:xe").map(|h| h.v), Ok(Some(&b"x"[..])));
        assert_eq!(ExtendedHandshake::decode(b"d1:vi1ee"), Err(ExtensionError::WrongType("v")));
    }
}
