//! Encoding: [`Message::encode`] and [`Message::encoded_len`].
//!
//! The typed model is written straight through the bencode [`Encoder`]; no value tree is
//! built. Keys are written in sorted order by construction (the encoder checks it in debug
//! builds), so the output is canonical.

use mycel_bencode::{encoded_bytes_len as bytes_len, encoded_int_len as int_len, Encoder};

use crate::compact::{compact_addr_len, encode_compact_addr, COMPACT_NODE_V4_LEN, COMPACT_NODE_V6_LEN};
use crate::{Body, ErrorBody, Message, Method, NodeInfo, PutArgs, Query, Response, Want};

impl Message<'_> {
    /// Appends the canonical bencoding of the message to `out`.
    ///
    /// Top-level keys in order: `a`, `e`, `ip`, `q`, `r`, `ro`, `t`, `v`, `y`. Optional parts
    /// are written only when present: `ro` when true, `ip` and `v` when `Some`; in a response
    /// `nodes`/`nodes6`/`values` when non-empty and `token` when `Some`; `implied_port` when
    /// true; `want` when a flag is set.
    ///
    /// The compact forms constrain the model: entries of `nodes` that are not IPv4 and of
    /// `nodes6` that are not IPv6 are skipped, and IPv6 flow labels and scope ids are
    /// dropped. Encoding a message that [`decode`](Message::decode) would not produce (an
    /// empty or over-long `tx`, port 0 without `implied_port`, an `Unknown` method named like
    /// a known one) writes bytes that do not decode back to it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        let mut e = Encoder::new(out);
        e.begin_dict();
        match &self.body {
            Body::Query(q) => {
                e.key(b"a");
                encode_args(&mut e, q);
            }
            Body::Error(err) => {
                e.key(b"e").begin_list().int(err.code).bytes(err.message).end();
            }
            Body::Response(_) => {}
        }
        if let Some(ip) = &self.ip {
            e.key(b"ip").bytes_with(compact_addr_len(ip), |o| encode_compact_addr(ip, o));
        }
        if let Body::Query(q) = &self.body {
            e.key(b"q").bytes(q.method.name());
        }
        if let Body::Response(r) = &self.body {
            e.key(b"r");
            encode_response(&mut e, r);
        }
        if self.read_only {
            e.key(b"ro").int(1);
        }
        e.key(b"t").bytes(self.tx);
        if let Some(v) = self.version {
            e.key(b"v").bytes(v);
        }
        e.key(b"y").bytes(self.body.kind());
        e.end();
        e.finish();
    }

    /// The exact number of bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        let mut n = 2 + key_len(b"t") + bytes_len(self.tx.len()) + key_len(b"y") + bytes_len(1);
        n += match &self.body {
            Body::Query(q) => key_len(b"a") + args_len(q) + key_len(b"q") + bytes_len(q.method.name().len()),
            Body::Response(r) => key_len(b"r") + response_len(r),
            Body::Error(err) => key_len(b"e") + error_len(err),
        };
        if let Some(ip) = &self.ip {
            n += key_len(b"ip") + bytes_len(compact_addr_len(ip));
        }
        if self.read_only {
            n += key_len(b"ro") + int_len(1);
        }
        if let Some(v) = self.version {
            n += key_len(b"v") + bytes_len(v.len());
        }
        n
    }
}

impl Body<'_> {
    /// The value of `y`: `q`, `r` or `e`.
    pub fn kind(&self) -> &'static [u8] {
        match self {
            Body::Query(_) => b"q",
            Body::Response(_) => b"r",
            Body::Error(_) => b"e",
        }
    }
}

fn key_len(key: &[u8]) -> usize {
    bytes_len(key.len())
}

fn id_len() -> usize {
    bytes_len(20)
}

/// `a`: keys `cas`, `id`, `implied_port`, `info_hash`, `k`, `port`, `salt`, `seq`, `sig`,
/// `target`, `token`, `v`, `want`.
fn encode_args(e: &mut Encoder<'_>, q: &Query<'_>) {
    e.begin_dict();
    if let Method::Put(PutArgs { mutable: Some(m), .. }) = &q.method {
        if let Some(cas) = m.cas {
            e.key(b"cas").int(cas);
        }
    }
    e.key(b"id").bytes(&q.id.0);
    match &q.method {
        Method::Ping | Method::Unknown { .. } => {}
        Method::FindNode { target, want } => {
            e.key(b"target").bytes(&target.0);
            encode_want(e, want);
        }
        Method::GetPeers { info_hash, want } => {
            e.key(b"info_hash").bytes(&info_hash.0);
            encode_want(e, want);
        }
        Method::AnnouncePeer { info_hash, port, implied_port, token } => {
            if *implied_port {
                e.key(b"implied_port").int(1);
            }
            e.key(b"info_hash").bytes(&info_hash.0);
            e.key(b"port").int(i64::from(*port));
            e.key(b"token").bytes(token);
        }
        Method::Get { target, seq, want } => {
            if let Some(seq) = seq {
                e.key(b"seq").int(*seq);
            }
            e.key(b"target").bytes(&target.0);
            encode_want(e, want);
        }
        Method::Put(put) => encode_put(e, put),
        Method::SampleInfohashes { target, want } => {
            e.key(b"target").bytes(&target.0);
            encode_want(e, want);
        }
    }
    e.end();
}

/// The keys of `put` after `id` (`cas` is written before it).
fn encode_put(e: &mut Encoder<'_>, put: &PutArgs<'_>) {
    if let Some(m) = &put.mutable {
        e.key(b"k").bytes(&m.k);
        if !m.salt.is_empty() {
            e.key(b"salt").bytes(m.salt);
        }
        e.key(b"seq").int(m.seq);
        e.key(b"sig").bytes(&m.sig);
    }
    e.key(b"token").bytes(put.token);
    e.key(b"v").raw(put.v);
}

fn put_len(put: &PutArgs<'_>) -> usize {
    let mut n = key_len(b"token") + bytes_len(put.token.len()) + key_len(b"v") + put.v.len();
    if let Some(m) = &put.mutable {
        n += key_len(b"k") + bytes_len(32) + key_len(b"seq") + int_len(m.seq) + key_len(b"sig") + bytes_len(64);
        if !m.salt.is_empty() {
            n += key_len(b"salt") + bytes_len(m.salt.len());
        }
        if let Some(cas) = m.cas {
            n += key_len(b"cas") + int_len(cas);
        }
    }
    n
}

fn args_len(q: &Query<'_>) -> usize {
    let body = match &q.method {
        Method::Ping | Method::Unknown { .. } => 0,
        Method::FindNode { want, .. } => key_len(b"target") + id_len() + want_len(want),
        Method::GetPeers { want, .. } => key_len(b"info_hash") + id_len() + want_len(want),
        Method::AnnouncePeer { port, implied_port, token, .. } => {
            let implied = if *implied_port { key_len(b"implied_port") + int_len(1) } else { 0 };
            implied
                + key_len(b"info_hash")
                + id_len()
                + key_len(b"port")
                + int_len(i64::from(*port))
                + key_len(b"token")
                + bytes_len(token.len())
        }
        Method::Get { seq, want, .. } => {
            seq.map_or(0, |s| key_len(b"seq") + int_len(s)) + key_len(b"target") + id_len() + want_len(want)
        }
        Method::Put(put) => put_len(put),
        Method::SampleInfohashes { want, .. } => key_len(b"target") + id_len() + want_len(want),
    };
    2 + key_len(b"id") + id_len() + body
}

fn encode_want(e: &mut Encoder<'_>, want: &Want) {
    if want.n4 || want.n6 {
        e.key(b"want").begin_list();
        if want.n4 {
            e.bytes(b"n4");
        }
        if want.n6 {
            e.bytes(b"n6");
        }
        e.end();
    }
}

fn want_len(want: &Want) -> usize {
    if want.n4 || want.n6 {
        key_len(b"want") + 2 + (usize::from(want.n4) + usize::from(want.n6)) * bytes_len(2)
    } else {
        0
    }
}

/// `r`: keys `id`, `interval`, `k`, `nodes`, `nodes6`, `num`, `samples`, `seq`, `sig`,
/// `token`, `v`, `values`.
fn encode_response(e: &mut Encoder<'_>, r: &Response<'_>) {
    e.begin_dict();
    e.key(b"id").bytes(&r.id.0);
    if let Some(interval) = r.interval {
        e.key(b"interval").int(interval);
    }
    if let Some(k) = &r.k {
        e.key(b"k").bytes(k);
    }
    encode_nodes(e, b"nodes", &r.nodes, true);
    encode_nodes(e, b"nodes6", &r.nodes6, false);
    if let Some(num) = r.num {
        e.key(b"num").int(num);
    }
    if let Some(samples) = r.samples {
        e.key(b"samples").bytes(samples);
    }
    if let Some(seq) = r.seq {
        e.key(b"seq").int(seq);
    }
    if let Some(sig) = &r.sig {
        e.key(b"sig").bytes(sig);
    }
    if let Some(token) = r.token {
        e.key(b"token").bytes(token);
    }
    if let Some(v) = r.v {
        e.key(b"v").raw(v);
    }
    if !r.values.is_empty() {
        e.key(b"values").begin_list();
        for addr in &r.values {
            e.bytes_with(compact_addr_len(addr), |o| encode_compact_addr(addr, o));
        }
        e.end();
    }
    e.end();
}

fn response_len(r: &Response<'_>) -> usize {
    let mut n = 2 + key_len(b"id") + id_len();
    n += nodes_len(b"nodes", &r.nodes, true) + nodes_len(b"nodes6", &r.nodes6, false);
    if let Some(token) = r.token {
        n += key_len(b"token") + bytes_len(token.len());
    }
    n += r.k.map_or(0, |_| key_len(b"k") + bytes_len(32));
    n += r.sig.map_or(0, |_| key_len(b"sig") + bytes_len(64));
    n += r.seq.map_or(0, |s| key_len(b"seq") + int_len(s));
    n += r.v.map_or(0, |v| key_len(b"v") + v.len());
    n += r.interval.map_or(0, |i| key_len(b"interval") + int_len(i));
    n += r.num.map_or(0, |i| key_len(b"num") + int_len(i));
    n += r.samples.map_or(0, |s| key_len(b"samples") + bytes_len(s.len()));
    if !r.values.is_empty() {
        n += key_len(b"values") + 2 + r.values.iter().map(|a| bytes_len(compact_addr_len(a))).sum::<usize>();
    }
    n
}

/// The entries of one family: IPv4 for `nodes`, IPv6 for `nodes6`.
fn family(nodes: &[NodeInfo], v4: bool) -> impl Iterator<Item = &NodeInfo> {
    nodes.iter().filter(move |n| n.addr.is_ipv4() == v4)
}

fn entry_len(v4: bool) -> usize {
    if v4 {
        COMPACT_NODE_V4_LEN
    } else {
        COMPACT_NODE_V6_LEN
    }
}

fn encode_nodes(e: &mut Encoder<'_>, key: &[u8], nodes: &[NodeInfo], v4: bool) {
    let count = family(nodes, v4).count();
    if count > 0 {
        e.key(key).bytes_with(count * entry_len(v4), |o| family(nodes, v4).for_each(|n| n.encode_compact(o)));
    }
}

fn nodes_len(key: &[u8], nodes: &[NodeInfo], v4: bool) -> usize {
    match family(nodes, v4).count() {
        0 => 0,
        count => key_len(key) + bytes_len(count * entry_len(v4)),
    }
}

fn error_len(err: &ErrorBody<'_>) -> usize {
    2 + int_len(err.code) + bytes_len(err.message.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InfoHash, NodeId};

    fn encode(m: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out.len(), m.encoded_len(), "encoded_len");
        out
    }

    #[test]
    fn all_envelope_fields_in_order() {
        let m = Message {
            tx: b"tx",
            version: Some(b"MY01"),
            ip: Some("1.2.3.4:80".parse().expect("literal")),
            read_only: true,
            body: Body::Query(Query {
                id: NodeId(*b"abcdefghij0123456789"),
                method: Method::GetPeers {
                    info_hash: InfoHash(*b"mnopqrstuvwxyz123456"),
                    want: Want { n4: true, n6: true },
                },
            }),
        };
        let expected: &[u8] = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee\
            2:ip6:\x01\x02\x03\x04\x00\x501:q9:get_peers2:roi1e1:t2:tx1:v4:MY011:y1:qe";
        assert_eq!(encode(&m), expected);
        assert_eq!(Message::decode(expected), Ok(m));
    }

    #[test]
    fn response_skips_wrong_family_and_empties() {
        let v4 = NodeInfo { id: NodeId([1; 20]), addr: "1.1.1.1:1".parse().expect("literal") };
        let v6 = NodeInfo { id: NodeId([2; 20]), addr: "[::1]:2".parse().expect("literal") };
        let mut r = Response::with_id(NodeId([0; 20]));
        r.nodes = vec![v4, v6];
        r.nodes6 = vec![v4];
        let m = Message { tx: b"t", version: None, ip: None, read_only: false, body: Body::Response(r) };
        let bytes = encode(&m);
        let back = Message::decode(&bytes).expect("decodes");
        let Body::Response(r) = back.body else { panic!("{back:?}") };
        assert_eq!(r.nodes, vec![v4]);
        assert!(r.nodes6.is_empty() && r.values.is_empty() && r.token.is_none());
    }

    #[test]
    fn error_always_has_message() {
        let m = Message {
            tx: b"t",
            version: None,
            ip: None,
            read_only: false,
            body: Body::Error(ErrorBody { code: -5, message: b"" }),
        };
        assert_eq!(encode(&m), b"d1:eli-5e0:e1:t1:t1:y1:ee");
    }
}
