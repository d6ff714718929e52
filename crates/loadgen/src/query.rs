//! KRPC queries written as raw bencode, and just enough reply scanning to match a reply to its
//! query by transaction id.
//!
//! The tool does not use `mycel-krpc` on purpose: it measures the node under test, so its own
//! codec must be trivially correct and independent of the code it exercises.

use rand::Rng;

/// The queries the load generator can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `ping`
    Ping,
    /// `find_node` for a random target
    FindNode,
    /// `get_peers` for a random info-hash (the target almost never has peers for it)
    GetPeers,
}

impl Kind {
    /// Parses a query name as written in `--mix`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ping" => Some(Self::Ping),
            "find_node" => Some(Self::FindNode),
            "get_peers" => Some(Self::GetPeers),
            _ => None,
        }
    }
}

/// A weighted choice of query kinds, parsed from `find_node:50,get_peers:50`.
#[derive(Clone, Debug)]
pub struct Mix {
    weights: Vec<(Kind, u32)>,
    total: u32,
}

impl Mix {
    /// Parses `name:weight[,name:weight]...`; weights are relative, zero weights are allowed as
    /// long as one is positive.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut weights = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) =
                part.split_once(':').ok_or_else(|| format!("mix entry {part:?} is not name:weight"))?;
            let kind = Kind::parse(name)
                .ok_or_else(|| format!("unknown query {name:?} in mix (known: ping, find_node, get_peers)"))?;
            let weight: u32 =
                weight.parse().map_err(|_| format!("weight {weight:?} of {name} is not a whole number"))?;
            weights.push((kind, weight));
        }
        let total = weights.iter().try_fold(0u32, |acc, (_, w)| acc.checked_add(*w));
        match total {
            Some(total) if total > 0 => Ok(Self { weights, total }),
            _ => Err(format!("mix {spec:?} has no positive weight (or weights overflow)")),
        }
    }

    /// Draws one kind according to the weights.
    pub fn pick<R: Rng>(&self, rng: &mut R) -> Kind {
        let mut roll = rng.gen_range(0..self.total);
        for (kind, weight) in &self.weights {
            if roll < *weight {
                return *kind;
            }
            roll -= weight;
        }
        // gen_range(0..total) is below the sum of the weights, so the loop always returns.
        self.weights[self.weights.len() - 1].0
    }
}

/// Appends one query to `out`, with its keys in sorted order as bencode requires.
///
/// `arg` is the `target` of `find_node` or the `info_hash` of `get_peers`, unused for `ping`.
/// `read_only` adds the BEP 43 `ro` flag, which asks the target not to add us to its table.
pub fn encode_query(out: &mut Vec<u8>, kind: Kind, tx: [u8; 2], id: &[u8; 20], arg: &[u8; 20], read_only: bool) {
    out.extend_from_slice(b"d1:ad2:id20:");
    out.extend_from_slice(id);
    match kind {
        Kind::Ping => out.extend_from_slice(b"e1:q4:ping"),
        Kind::FindNode => {
            out.extend_from_slice(b"6:target20:");
            out.extend_from_slice(arg);
            out.extend_from_slice(b"e1:q9:find_node");
        }
        Kind::GetPeers => {
            out.extend_from_slice(b"9:info_hash20:");
            out.extend_from_slice(arg);
            out.extend_from_slice(b"e1:q9:get_peers");
        }
    }
    if read_only {
        out.extend_from_slice(b"2:roi1e");
    }
    out.extend_from_slice(b"1:t2:");
    out.extend_from_slice(&tx);
    out.extend_from_slice(b"1:y1:qe");
}

/// What a received datagram is, by its `y` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `y=r`, with the transaction id
    Response(&'a [u8]),
    /// `y=e`, with the transaction id
    Error(&'a [u8]),
    /// Anything else that is a well-formed dictionary: a query from the target (it may ping us
    /// back to check us) or an unknown message type.
    Other,
}

/// Nesting deeper than this is not KRPC; refusing it bounds the recursion.
const MAX_DEPTH: usize = 32;

/// Scans a datagram for its `t` and `y` keys. `None` means it is not a bencoded dictionary
/// with a byte-string `t`.
pub fn scan(datagram: &[u8]) -> Option<Reply<'_>> {
    if datagram.first() != Some(&b'd') {
        return None;
    }
    let (mut tx, mut y) = (None, None);
    let mut pos = 1;
    while *datagram.get(pos)? != b'e' {
        let (key, after_key) = string(datagram, pos)?;
        match key {
            b"t" => {
                let (value, end) = string(datagram, after_key)?;
                tx = Some(value);
                pos = end;
            }
            b"y" => {
                let (value, end) = string(datagram, after_key)?;
                y = Some(value);
                pos = end;
            }
            _ => pos = skip(datagram, after_key, 1)?,
        }
    }
    let tx = tx?;
    Some(match y {
        Some(b"r") => Reply::Response(tx),
        Some(b"e") => Reply::Error(tx),
        _ => Reply::Other,
    })
}

/// Reads a byte string `<len>:<bytes>` at `pos`; returns it and the index after it.
fn string(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let colon = pos + buf.get(pos..)?.iter().position(|&b| b == b':')?;
    let digits = &buf[pos..colon];
    if digits.is_empty() || digits.len() > 7 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = digits.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    let end = colon.checked_add(1 + len)?;
    Some((buf.get(colon + 1..end)?, end))
}

/// Skips one bencoded value at `pos`; returns the index after it.
fn skip(buf: &[u8], pos: usize, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *buf.get(pos)? {
        b'i' => Some(pos + buf.get(pos..)?.iter().position(|&b| b == b'e')? + 1),
        b'l' | b'd' => {
            let mut at = pos + 1;
            while *buf.get(at)? != b'e' {
                at = skip(buf, at, depth + 1)?;
            }
            Some(at + 1)
        }
        b'0'..=b'9' => string(buf, pos).map(|(_, end)| end),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn find_node_matches_the_bep5_layout() {
        let mut out = Vec::new();
        encode_query(&mut out, Kind::FindNode, *b"aa", &[b'A'; 20], &[b'B'; 20], false);
        let expected = b"d1:ad2:id20:AAAAAAAAAAAAAAAAAAAA6:target20:BBBBBBBBBBBBBBBBBBBBe\
                         1:q9:find_node1:t2:aa1:y1:qe";
        assert_eq!(out, expected.to_vec());
    }

    #[test]
    fn get_peers_and_ping_and_read_only() {
        let mut out = Vec::new();
        encode_query(&mut out, Kind::GetPeers, *b"xy", &[b'A'; 20], &[b'C'; 20], true);
        let expected = b"d1:ad2:id20:AAAAAAAAAAAAAAAAAAAA9:info_hash20:CCCCCCCCCCCCCCCCCCCCe\
                         1:q9:get_peers2:roi1e1:t2:xy1:y1:qe";
        assert_eq!(out, expected.to_vec());
        out.clear();
        encode_query(&mut out, Kind::Ping, *b"zz", &[b'A'; 20], &[0; 20], false);
        assert_eq!(out, b"d1:ad2:id20:AAAAAAAAAAAAAAAAAAAAe1:q4:ping1:t2:zz1:y1:qe".to_vec());
    }

    #[test]
    fn scans_responses_errors_and_queries() {
        let reply = b"d2:ip6:\x7f\0\0\x01\x1a\xe11:rd2:id20:AAAAAAAAAAAAAAAAAAAA5:nodes0:e\
                      1:t2:aa1:v4:LT\x02\x111:y1:re";
        assert_eq!(scan(reply), Some(Reply::Response(b"aa")));
        let error = b"d1:eli201e23:A Generic Error Ocurrede1:t2:bb1:y1:ee";
        assert_eq!(scan(error), Some(Reply::Error(b"bb")));
        let query = b"d1:ad2:id20:AAAAAAAAAAAAAAAAAAAAe1:q4:ping1:t2:cc1:y1:qe";
        assert_eq!(scan(query), Some(Reply::Other));
    }

    #[test]
    fn scan_rejects_garbage_without_panicking() {
        for bad in [
            &b""[..],
            b"l1:ae",
            b"d1:t",
            b"d1:t2:a",
            b"d1:y1:re",
            b"d1:xi12",
            b"d99999999:x1:t2:aae",
            b"d1:xllllllllllllllllllllllllllllllllllllllllle1:t2:aae",
        ] {
            assert_eq!(scan(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mix_parses_and_respects_weights() {
        let mix = Mix::parse("find_node:0,get_peers:3").expect("valid mix");
        let mut rng = SmallRng::seed_from_u64(7);
        assert!((0..100).all(|_| mix.pick(&mut rng) == Kind::GetPeers));
        assert!(Mix::parse("find_node:0").is_err());
        assert!(Mix::parse("announce_peer:1").is_err());
        assert!(Mix::parse("ping").is_err());
        assert!(Mix::parse("ping:x").is_err());
    }
}
