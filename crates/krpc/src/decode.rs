//! Decoding: [`Message::decode`] and [`salvage_query_tx`].
//!
//! The datagram is first decoded into a borrowed bencode tree (strict, limited), then the
//! fields are checked and copied into the typed model. Byte strings in the model borrow from
//! the datagram, not from the tree, so the tree is dropped before `decode` returns.

use mycel_bencode::{decode_prefix, decode_with, Dict, Limits, Value};

use crate::compact::{decode_compact_addr, decode_nodes, COMPACT_NODE_V4_LEN, COMPACT_NODE_V6_LEN};
use crate::{
    Body, DecodeError, ErrorBody, InfoHash, Message, Method, MutableArgs, NodeId, NodeInfo, PutArgs, Query, Response,
    Want,
};

/// Longest transaction id (`t`) accepted on input, in bytes.
pub const MAX_TX_LEN: usize = 32;

/// Largest datagram decoded: the largest UDP payload, rounded up.
pub const MAX_DATAGRAM_LEN: usize = 65_536;

/// Bencode limits for datagrams: the default depth and item limits, capped at a UDP payload.
pub const DATAGRAM_LIMITS: Limits = Limits { max_size: MAX_DATAGRAM_LEN, ..Limits::DEFAULT };

impl<'a> Message<'a> {
    /// Decodes one datagram. The result borrows `t`, `v`, tokens and texts from `buf`.
    ///
    /// Unknown keys are ignored; a malformed `ip` is ignored (it is advisory). Everything
    /// else that is malformed is an error: a decoded message is well-formed.
    pub fn decode(buf: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let value = decode_with(buf, &DATAGRAM_LIMITS)?;
        let top = Fields::gather(value.as_dict().ok_or(DecodeError::NotADict)?);
        let tx = required_bytes(top.t, "t")?;
        if tx.is_empty() || tx.len() > MAX_TX_LEN {
            return Err(DecodeError::BadLength { field: "t", len: tx.len() });
        }
        let kind = match required_bytes(top.y, "y")? {
            [kind] => *kind,
            y => return Err(DecodeError::BadLength { field: "y", len: y.len() }),
        };
        let version = optional_bytes(top.v, "v")?;
        let ip = top.ip.and_then(Value::as_bytes).and_then(decode_compact_addr);
        let read_only = optional_int(top.ro, "ro")? == Some(1);
        let body = match kind {
            b'q' => Body::Query(decode_query(buf, &top)?),
            b'r' => Body::Response(decode_response(buf, &top)?),
            b'e' => Body::Error(decode_error(&top)?),
            other => return Err(DecodeError::UnknownKind(other)),
        };
        Ok(Message { tx, version, ip, read_only, body })
    }
}

/// The fields the decoder reads from one dictionary (top level, `a` or `r`), gathered in a
/// single pass: cheaper than a lookup per field, and unknown keys fall through.
#[derive(Default)]
struct Fields<'v, 'a> {
    // Top level.
    t: Option<&'v Value<'a>>,
    y: Option<&'v Value<'a>>,
    v: Option<&'v Value<'a>>,
    ip: Option<&'v Value<'a>>,
    ro: Option<&'v Value<'a>>,
    q: Option<&'v Value<'a>>,
    a: Option<&'v Value<'a>>,
    r: Option<&'v Value<'a>>,
    e: Option<&'v Value<'a>>,
    // Arguments (`a`) and return values (`r`).
    id: Option<&'v Value<'a>>,
    target: Option<&'v Value<'a>>,
    info_hash: Option<&'v Value<'a>>,
    want: Option<&'v Value<'a>>,
    port: Option<&'v Value<'a>>,
    implied_port: Option<&'v Value<'a>>,
    token: Option<&'v Value<'a>>,
    nodes: Option<&'v Value<'a>>,
    nodes6: Option<&'v Value<'a>>,
    values: Option<&'v Value<'a>>,
    // BEP 44.
    k: Option<&'v Value<'a>>,
    sig: Option<&'v Value<'a>>,
    seq: Option<&'v Value<'a>>,
    salt: Option<&'v Value<'a>>,
    cas: Option<&'v Value<'a>>,
    // BEP 51.
    samples: Option<&'v Value<'a>>,
    interval: Option<&'v Value<'a>>,
    num: Option<&'v Value<'a>>,
}

impl<'v, 'a> Fields<'v, 'a> {
    fn gather(d: &'v Dict<'a>) -> Self {
        let mut f = Fields::default();
        for (key, value) in d.iter() {
            let slot = match key {
                b"t" => &mut f.t,
                b"y" => &mut f.y,
                b"v" => &mut f.v,
                b"ip" => &mut f.ip,
                b"ro" => &mut f.ro,
                b"q" => &mut f.q,
                b"a" => &mut f.a,
                b"r" => &mut f.r,
                b"e" => &mut f.e,
                b"id" => &mut f.id,
                b"target" => &mut f.target,
                b"info_hash" => &mut f.info_hash,
                b"want" => &mut f.want,
                b"port" => &mut f.port,
                b"implied_port" => &mut f.implied_port,
                b"token" => &mut f.token,
                b"nodes" => &mut f.nodes,
                b"nodes6" => &mut f.nodes6,
                b"values" => &mut f.values,
                b"k" => &mut f.k,
                b"sig" => &mut f.sig,
                b"seq" => &mut f.seq,
                b"salt" => &mut f.salt,
                b"cas" => &mut f.cas,
                b"samples" => &mut f.samples,
                b"interval" => &mut f.interval,
                b"num" => &mut f.num,
                _ => continue,
            };
            *slot = Some(value);
        }
        f
    }
}

/// For a datagram that failed to decode: if it starts as a bencoded dictionary whose `y` is
/// `q` and whose `t` is a byte string of 1 to [`MAX_TX_LEN`] bytes, returns that `t`, so the
/// node can answer with error 203. Never panics.
///
/// The top-level entries are read one at a time and the scan stops as soon as both `t` and
/// `y` are seen, so a query that is broken after them (or has unsorted keys, or an unknown
/// argument type) is still answered.
pub fn salvage_query_tx(buf: &[u8]) -> Option<&[u8]> {
    if buf.first() != Some(&b'd') {
        return None;
    }
    let mut pos = 1;
    let mut tx = None;
    let mut is_query = false;
    while buf.get(pos) != Some(&b'e') {
        let rest = buf.get(pos..)?;
        let (key, n) = decode_prefix(rest, &DATAGRAM_LIMITS).ok()?;
        let key = key.as_bytes()?;
        pos += n;
        let (value, n) = decode_prefix(buf.get(pos..)?, &DATAGRAM_LIMITS).ok()?;
        pos += n;
        match key {
            b"t" => tx = value.as_bytes(),
            b"y" => is_query = value.as_bytes() == Some(b"q"),
            _ => {}
        }
        if let (Some(t), true) = (tx, is_query) {
            return (1..=MAX_TX_LEN).contains(&t.len()).then_some(t);
        }
    }
    None
}

fn decode_query<'a>(buf: &'a [u8], top: &Fields<'_, 'a>) -> Result<Query<'a>, DecodeError> {
    let name = required_bytes(top.q, "q")?;
    let args = Fields::gather(required_dict(top.a, "a")?);
    let id = NodeId(required_id(args.id, "a.id")?);
    let method = match name {
        b"ping" => Method::Ping,
        b"find_node" => {
            Method::FindNode { target: NodeId(required_id(args.target, "a.target")?), want: decode_want(args.want)? }
        }
        b"get_peers" => Method::GetPeers {
            info_hash: InfoHash(required_id(args.info_hash, "a.info_hash")?),
            want: decode_want(args.want)?,
        },
        b"announce_peer" => decode_announce(&args)?,
        b"get" => Method::Get {
            target: NodeId(required_id(args.target, "a.target")?),
            seq: optional_int(args.seq, "a.seq")?,
            want: decode_want(args.want)?,
        },
        b"put" => decode_put(buf, &args)?,
        b"sample_infohashes" => Method::SampleInfohashes {
            target: NodeId(required_id(args.target, "a.target")?),
            want: decode_want(args.want)?,
        },
        _ => Method::Unknown { name },
    };
    Ok(Query { id, method })
}

fn decode_announce<'a>(args: &Fields<'_, 'a>) -> Result<Method<'a>, DecodeError> {
    let info_hash = InfoHash(required_id(args.info_hash, "a.info_hash")?);
    let token = required_bytes(args.token, "a.token")?;
    // BEP 5: "if it is present and non-zero, the port argument should be ignored".
    let implied_port = optional_int(args.implied_port, "a.implied_port")?.is_some_and(|v| v != 0);
    let port = match (optional_int(args.port, "a.port")?, implied_port) {
        (None, true) => 0,
        (None, false) => return Err(DecodeError::MissingField("a.port")),
        (Some(value), implied) => match u16::try_from(value) {
            Ok(port) if port != 0 || implied => port,
            _ => return Err(DecodeError::OutOfRange { field: "a.port", value }),
        },
    };
    Ok(Method::AnnouncePeer { info_hash, port, implied_port, token })
}

/// BEP 44 `put`: `k`, `sig` and `seq` make it mutable (all three or none of them).
fn decode_put<'a>(buf: &'a [u8], args: &Fields<'_, 'a>) -> Result<Method<'a>, DecodeError> {
    let token = required_bytes(args.token, "a.token")?;
    let v = raw_item_value(buf, b"a", args.v, "a.v")?.ok_or(DecodeError::MissingField("a.v"))?;
    let mutable = match args.k {
        None => None,
        Some(_) => Some(MutableArgs {
            k: required_fixed(args.k, "a.k")?,
            sig: required_fixed(args.sig, "a.sig")?,
            seq: optional_int(args.seq, "a.seq")?.ok_or(DecodeError::MissingField("a.seq"))?,
            salt: optional_bytes(args.salt, "a.salt")?.unwrap_or_default(),
            cas: optional_int(args.cas, "a.cas")?,
        }),
    };
    Ok(Method::Put(PutArgs { token, v, mutable }))
}

/// The raw bytes of an item value (`v` inside the dictionary `outer`, `a` or `r`), exactly as
/// sent. BEP 44 hashes and signs these bytes, so they must be canonical bencode: a value with
/// unsorted keys is an error (the storing node answers it with 203, as the BEP asks).
fn raw_item_value<'a>(
    buf: &'a [u8],
    outer: &[u8],
    parsed: Option<&Value<'a>>,
    field: &'static str,
) -> Result<Option<&'a [u8]>, DecodeError> {
    let Some(parsed) = parsed else { return Ok(None) };
    let raw = raw_entry(buf, outer).and_then(|d| raw_entry(d, b"v")).ok_or(DecodeError::WrongType(field))?;
    // Canonical iff re-encoding gives the same length: the decoder already rejected every
    // other non-canonical form (leading zeros, -0), so only unsorted keys can differ, and
    // those differ in bytes, not length; compare bytes to be sure.
    let mut again = Vec::with_capacity(raw.len());
    parsed.encode(&mut again);
    if again != raw {
        return Err(DecodeError::NotCanonical(field));
    }
    Ok(Some(raw))
}

/// In the bencoded dictionary `dict` (starting at its `d`), the raw bytes of the value of
/// `key`. Walks the entries in the order sent, so unsorted dictionaries work too.
fn raw_entry<'a>(dict: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    if dict.first() != Some(&b'd') {
        return None;
    }
    let mut pos = 1;
    while dict.get(pos) != Some(&b'e') {
        let (k, n) = decode_prefix(dict.get(pos..)?, &DATAGRAM_LIMITS).ok()?;
        pos += n;
        let (_, n) = decode_prefix(dict.get(pos..)?, &DATAGRAM_LIMITS).ok()?;
        if k.as_bytes() == Some(key) {
            return dict.get(pos..pos + n);
        }
        pos += n;
    }
    None
}

/// BEP 32 `want`: a list of byte strings; `n4` and `n6` set the flags, others are ignored.
fn decode_want(want: Option<&Value<'_>>) -> Result<Want, DecodeError> {
    let mut flags = Want::default();
    let Some(value) = want else {
        return Ok(flags);
    };
    let list = value.as_list().ok_or(DecodeError::WrongType("a.want"))?;
    for item in list {
        match item.as_bytes().ok_or(DecodeError::WrongType("a.want"))? {
            b"n4" => flags.n4 = true,
            b"n6" => flags.n6 = true,
            _ => {}
        }
    }
    Ok(flags)
}

fn decode_response<'a>(buf: &'a [u8], top: &Fields<'_, 'a>) -> Result<Response<'a>, DecodeError> {
    let r = Fields::gather(required_dict(top.r, "r")?);
    let id = NodeId(required_id(r.id, "r.id")?);
    let nodes = compact_nodes(r.nodes, "r.nodes", COMPACT_NODE_V4_LEN)?;
    let nodes6 = compact_nodes(r.nodes6, "r.nodes6", COMPACT_NODE_V6_LEN)?;
    let values = match r.values {
        None => Vec::new(),
        // Entries that are not 6- or 18-byte strings are skipped: one bad peer does not
        // make the other peers useless.
        Some(Value::List(items)) => {
            let mut values = Vec::with_capacity(items.len());
            values.extend(items.iter().filter_map(|v| v.as_bytes().and_then(decode_compact_addr)));
            values
        }
        Some(_) => return Err(DecodeError::WrongType("r.values")),
    };
    let token = optional_bytes(r.token, "r.token")?;
    let v = raw_item_value(buf, b"r", r.v, "r.v")?;
    let k = r.k.map(|k| required_fixed(Some(k), "r.k")).transpose()?;
    let sig = r.sig.map(|s| required_fixed(Some(s), "r.sig")).transpose()?;
    let seq = optional_int(r.seq, "r.seq")?;
    let samples = match optional_bytes(r.samples, "r.samples")? {
        Some(b) if b.len() % 20 != 0 => return Err(DecodeError::BadLength { field: "r.samples", len: b.len() }),
        samples => samples,
    };
    let interval = optional_int(r.interval, "r.interval")?;
    let num = optional_int(r.num, "r.num")?;
    Ok(Response { id, nodes, nodes6, values, token, v, k, sig, seq, samples, interval, num })
}

fn compact_nodes(
    value: Option<&Value<'_>>,
    field: &'static str,
    entry_len: usize,
) -> Result<Vec<NodeInfo>, DecodeError> {
    match optional_bytes(value, field)? {
        None => Ok(Vec::new()),
        Some(b) if b.len() % entry_len == 0 => Ok(decode_nodes(b, entry_len)),
        Some(b) => Err(DecodeError::BadLength { field, len: b.len() }),
    }
}

/// `e`: `[code, message]`; the code is required, the message may be missing (then empty).
fn decode_error<'a>(top: &Fields<'_, 'a>) -> Result<ErrorBody<'a>, DecodeError> {
    let list = top.e.ok_or(DecodeError::MissingField("e"))?.as_list().ok_or(DecodeError::WrongType("e"))?;
    let code = match list.first() {
        None => return Err(DecodeError::MissingField("e.code")),
        Some(v) => v.as_int().ok_or(DecodeError::WrongType("e.code"))?,
    };
    let message = match list.get(1) {
        None => &[][..],
        Some(v) => v.as_bytes().ok_or(DecodeError::WrongType("e.message"))?,
    };
    Ok(ErrorBody { code, message })
}

fn optional_bytes<'a>(value: Option<&Value<'a>>, field: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
    value.map(|v| v.as_bytes().ok_or(DecodeError::WrongType(field))).transpose()
}

fn required_bytes<'a>(value: Option<&Value<'a>>, field: &'static str) -> Result<&'a [u8], DecodeError> {
    optional_bytes(value, field)?.ok_or(DecodeError::MissingField(field))
}

fn optional_int(value: Option<&Value<'_>>, field: &'static str) -> Result<Option<i64>, DecodeError> {
    value.map(|v| v.as_int().ok_or(DecodeError::WrongType(field))).transpose()
}

fn required_dict<'v, 'a>(value: Option<&'v Value<'a>>, field: &'static str) -> Result<&'v Dict<'a>, DecodeError> {
    value.ok_or(DecodeError::MissingField(field))?.as_dict().ok_or(DecodeError::WrongType(field))
}

/// A 20-byte id (node id, target or info-hash).
fn required_id(value: Option<&Value<'_>>, field: &'static str) -> Result<[u8; 20], DecodeError> {
    required_fixed(value, field)
}

/// A byte string of exactly `N` bytes (ids, keys, signatures).
fn required_fixed<const N: usize>(value: Option<&Value<'_>>, field: &'static str) -> Result<[u8; N], DecodeError> {
    let b = required_bytes(value, field)?;
    b.try_into().map_err(|_| DecodeError::BadLength { field, len: b.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use DecodeError as E;

    const ID: &str = "20:abcdefghij0123456789";

    fn query(args: &str, q: &str) -> Vec<u8> {
        format!("d1:ad2:id{ID}{args}e1:q{}:{q}1:t2:aa1:y1:qe", q.len()).into_bytes()
    }

    fn announce(args: &str) -> Result<Method<'static>, DecodeError> {
        let buf: &'static [u8] = query(args, "announce_peer").leak();
        Message::decode(buf).map(|m| match m.body {
            Body::Query(q) => q.method,
            other => panic!("not a query: {other:?}"),
        })
    }

    #[test]
    fn envelope_errors() {
        assert!(matches!(Message::decode(b"d1:ae"), Err(E::Bencode(_))));
        assert_eq!(Message::decode(b"li1ee"), Err(E::NotADict));
        assert_eq!(Message::decode(b"d1:y1:qe"), Err(E::MissingField("t")));
        assert_eq!(Message::decode(b"d1:ti1e1:y1:qe"), Err(E::WrongType("t")));
        assert_eq!(Message::decode(b"d1:t0:1:y1:qe"), Err(E::BadLength { field: "t", len: 0 }));
        let long = format!("d1:t33:{}1:y1:re", "x".repeat(33));
        assert_eq!(Message::decode(long.as_bytes()), Err(E::BadLength { field: "t", len: 33 }));
        assert_eq!(Message::decode(b"d1:t2:aae"), Err(E::MissingField("y")));
        assert_eq!(Message::decode(b"d1:t2:aa1:y2:qqe"), Err(E::BadLength { field: "y", len: 2 }));
        assert_eq!(Message::decode(b"d1:t2:aa1:y1:xe"), Err(E::UnknownKind(b'x')));
        assert_eq!(Message::decode(b"d1:t2:aa1:vi1e1:y1:ee"), Err(E::WrongType("v")));
        assert_eq!(Message::decode(b"d2:ro1:x1:t2:aa1:y1:ee"), Err(E::WrongType("ro")));
    }

    #[test]
    fn ip_is_advisory() {
        let ok = Message::decode(b"d1:eli201ee2:ip6:\x01\x02\x03\x04\x00\x501:t1:x1:y1:ee").expect("valid");
        assert_eq!(ok.ip, Some("1.2.3.4:80".parse().expect("literal")));
        let bad = Message::decode(b"d1:eli201ee2:ip5:123451:t1:x1:y1:ee").expect("bad ip is ignored");
        assert_eq!(bad.ip, None);
        let wrong = Message::decode(b"d1:eli201ee2:ipi5e1:t1:x1:y1:ee").expect("bad ip is ignored");
        assert_eq!(wrong.ip, None);
    }

    #[test]
    fn read_only_flag() {
        let ro = Message::decode(b"d1:eli201ee2:roi1e1:t1:x1:y1:ee").expect("valid");
        assert!(ro.read_only);
        let not = Message::decode(b"d1:eli201ee2:roi0e1:t1:x1:y1:ee").expect("valid");
        assert!(!not.read_only);
    }

    #[test]
    fn query_errors() {
        assert_eq!(Message::decode(b"d1:t2:aa1:y1:qe"), Err(E::MissingField("q")));
        assert_eq!(Message::decode(b"d1:q4:ping1:t2:aa1:y1:qe"), Err(E::MissingField("a")));
        assert_eq!(Message::decode(b"d1:ai1e1:q4:ping1:t2:aa1:y1:qe"), Err(E::WrongType("a")));
        assert_eq!(Message::decode(b"d1:ade1:q4:ping1:t2:aa1:y1:qe"), Err(E::MissingField("a.id")));
        assert_eq!(
            Message::decode(b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe"),
            Err(E::BadLength { field: "a.id", len: 3 })
        );
        assert_eq!(Message::decode(&query("", "find_node")), Err(E::MissingField("a.target")));
        assert_eq!(
            Message::decode(&query("6:target2:xx", "find_node")),
            Err(E::BadLength { field: "a.target", len: 2 })
        );
        assert_eq!(Message::decode(&query("", "get_peers")), Err(E::MissingField("a.info_hash")));
        assert_eq!(
            Message::decode(&query("9:info_hash20:mnopqrstuvwxyz1234564:wanti1e", "get_peers")),
            Err(E::WrongType("a.want"))
        );
        // Unknown methods only need a valid id.
        let buf = query("3:foo3:bar", "vote");
        let m = Message::decode(&buf).expect("unknown method");
        assert!(matches!(m.body, Body::Query(Query { method: Method::Unknown { name: b"vote" }, .. })));
    }

    #[test]
    fn want_flags() {
        let buf = query("6:target20:mnopqrstuvwxyz1234564:wantl2:n62:xx2:n4e", "find_node");
        let m = Message::decode(&buf).expect("valid");
        let Body::Query(Query { method: Method::FindNode { want, .. }, .. }) = m.body else { panic!("{m:?}") };
        assert_eq!(want, Want { n4: true, n6: true });
    }

    #[test]
    fn announce_port_rules() {
        const IH: &str = "9:info_hash20:mnopqrstuvwxyz123456";
        let port = |m: Method| match m {
            Method::AnnouncePeer { port, implied_port, .. } => (port, implied_port),
            other => panic!("{other:?}"),
        };
        assert_eq!(announce(&format!("{IH}4:porti6881e5:token1:k")).map(port), Ok((6881, false)));
        assert_eq!(announce(&format!("{IH}5:token1:k")), Err(E::MissingField("a.port")));
        assert_eq!(announce(&format!("{IH}4:porti0e5:token1:k")), Err(E::OutOfRange { field: "a.port", value: 0 }));
        assert_eq!(
            announce(&format!("{IH}4:porti65536e5:token1:k")),
            Err(E::OutOfRange { field: "a.port", value: 65536 })
        );
        assert_eq!(announce(&format!("{IH}4:port2:xx5:token1:k")), Err(E::WrongType("a.port")));
        assert_eq!(announce(&format!("{IH}4:porti1e")), Err(E::MissingField("a.token")));
        assert_eq!(announce("4:porti1e5:token1:k"), Err(E::MissingField("a.info_hash")));
        // implied_port: port may be missing (0) or anything in 0..=65535.
        assert_eq!(announce(&format!("12:implied_porti1e{IH}5:token1:k")).map(port), Ok((0, true)));
        assert_eq!(announce(&format!("12:implied_porti1e{IH}4:porti0e5:token1:k")).map(port), Ok((0, true)));
        assert_eq!(
            announce(&format!("12:implied_porti1e{IH}4:porti-1e5:token1:k")),
            Err(E::OutOfRange { field: "a.port", value: -1 })
        );
        assert_eq!(announce(&format!("12:implied_porti0e{IH}4:porti9e5:token1:k")).map(port), Ok((9, false)));
    }

    #[test]
    fn response_rules() {
        let r = |body: &str| format!("d1:rd2:id{ID}{body}e1:t2:aa1:y1:re").into_bytes();
        assert_eq!(Message::decode(b"d1:t2:aa1:y1:re"), Err(E::MissingField("r")));
        assert_eq!(
            Message::decode(&r("5:nodes25:xxxxxxxxxxxxxxxxxxxxxxxxx")),
            Err(E::BadLength { field: "r.nodes", len: 25 })
        );
        assert_eq!(
            Message::decode(&r("6:nodes626:xxxxxxxxxxxxxxxxxxxxxxxxxx")),
            Err(E::BadLength { field: "r.nodes6", len: 26 })
        );
        assert_eq!(Message::decode(&r("5:nodesi1e")), Err(E::WrongType("r.nodes")));
        assert_eq!(Message::decode(&r("6:values3:abc")), Err(E::WrongType("r.values")));
        assert_eq!(Message::decode(&r("5:tokeni1e")), Err(E::WrongType("r.token")));
        // values: bad entries are skipped, good ones kept.
        let buf = r("6:valuesl6:axje.u2:xxi5e18:abcdefghijklmnop\x00\x01e");
        let m = Message::decode(&buf).expect("valid");
        let Body::Response(resp) = m.body else { panic!("{m:?}") };
        assert_eq!(resp.values.len(), 2);
        assert!(resp.values[0].is_ipv4() && resp.values[1].is_ipv6());
    }

    #[test]
    fn error_rules() {
        assert_eq!(Message::decode(b"d1:t2:aa1:y1:ee"), Err(E::MissingField("e")));
        assert_eq!(Message::decode(b"d1:ei201e1:t2:aa1:y1:ee"), Err(E::WrongType("e")));
        assert_eq!(Message::decode(b"d1:ele1:t2:aa1:y1:ee"), Err(E::MissingField("e.code")));
        assert_eq!(Message::decode(b"d1:el1:xe1:t2:aa1:y1:ee"), Err(E::WrongType("e.code")));
        assert_eq!(Message::decode(b"d1:eli201ei1ee1:t2:aa1:y1:ee"), Err(E::WrongType("e.message")));
        let m = Message::decode(b"d1:eli204ee1:t2:aa1:y1:ee").expect("message is optional");
        assert_eq!(m.body, Body::Error(ErrorBody { code: 204, message: b"" }));
    }

    #[test]
    fn salvage() {
        // Broken after t and y: salvaged.
        assert_eq!(salvage_query_tx(b"d1:t2:aa1:y1:q1:ai1e"), Some(&b"aa"[..]));
        // Unsorted keys and a bad argument.
        assert_eq!(salvage_query_tx(b"d1:y1:q1:t1:z1:ad2:id1:xee"), Some(&b"z"[..]));
        // Not a query, no t, t not bytes, t too long, not a dict, broken before t.
        assert_eq!(salvage_query_tx(b"d1:t2:aa1:y1:re"), None);
        assert_eq!(salvage_query_tx(b"d1:y1:qe"), None);
        assert_eq!(salvage_query_tx(b"d1:ti1e1:y1:qe"), None);
        let long = format!("d1:t33:{}1:y1:qe", "x".repeat(33));
        assert_eq!(salvage_query_tx(long.as_bytes()), None);
        assert_eq!(salvage_query_tx(b"l1:t2:aae"), None);
        assert_eq!(salvage_query_tx(b"d1:ai-0e1:t2:aa1:y1:qe"), None);
        assert_eq!(salvage_query_tx(b""), None);
        assert_eq!(salvage_query_tx(b"d"), None);
        assert_eq!(salvage_query_tx(b"di1e"), None);
    }
}
