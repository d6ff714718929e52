//! Magnet links (BEP 9, BEP 53): parse and format.
//!
//! ```
//! use mycel_metainfo::Magnet;
//! let m: Magnet = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=a+b&so=0,2-3"
//!     .parse()
//!     .unwrap();
//! assert_eq!(m.display_name.as_deref(), Some("a b"));
//! assert!(m.selects(2) && !m.selects(1));
//! assert_eq!(m.to_string().parse::<Magnet>().unwrap(), m);
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::hash::{from_base32_20, from_hex, hex_val, InfoHashV1, InfoHashV2, InfoHashes};
use crate::MagnetError;

/// A parsed magnet link.
///
/// Only `xt` is required; a link may carry a v1 hash (`urn:btih:`), a v2 hash
/// (`urn:btmh:1220…`, multihash SHA-256) or both for a hybrid torrent. Unknown parameters
/// and `xt`s of other schemes are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    /// The torrent's info-hashes.
    pub hashes: InfoHashes,
    /// `dn`: the name to show until the metadata arrives.
    pub display_name: Option<String>,
    /// `tr`: tracker URLs, in order.
    pub trackers: Vec<String>,
    /// `x.pe`: peers to fetch the metadata from directly.
    pub peers: Vec<PeerAddr>,
    /// `so` (BEP 53): indices of the files to download, as inclusive ranges in the order
    /// given. Empty: all files.
    pub select_only: Vec<RangeInclusive<u32>>,
}

/// A peer address from `x.pe`: `ip:port`, `[ipv6]:port` or `hostname:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// A literal address.
    Ip(SocketAddr),
    /// A host name to resolve (letters, digits, `-`, `.`, `_`).
    Host {
        /// The name.
        host: String,
        /// The port.
        port: u16,
    },
}

impl Magnet {
    /// A link with just the hashes.
    pub fn new(hashes: InfoHashes) -> Self {
        Magnet { hashes, display_name: None, trackers: Vec::new(), peers: Vec::new(), select_only: Vec::new() }
    }

    /// Parses a magnet link.
    pub fn parse(s: &str) -> Result<Self, MagnetError> {
        let query = strip_scheme(s).ok_or(MagnetError::NotMagnet)?;
        let (mut v1, mut v2) = (None, None);
        let mut m = Magnet::new(InfoHashes::V1(InfoHashV1([0; 20])));
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            match base_key(key) {
                "xt" => parse_xt(&utf8(key, decode(key, raw, false)?)?, &mut v1, &mut v2)?,
                "dn" => m.display_name = Some(String::from_utf8_lossy(&decode(key, raw, true)?).into_owned()),
                "tr" => m.trackers.push(utf8(key, decode(key, raw, false)?)?),
                "x.pe" => m.peers.push(utf8(key, decode(key, raw, false)?)?.parse()?),
                "so" => m.select_only.extend(parse_selection(&utf8(key, decode(key, raw, false)?)?)?),
                _ => {}
            }
        }
        m.hashes = InfoHashes::from_parts(v1, v2).ok_or(MagnetError::MissingInfoHash)?;
        Ok(m)
    }

    /// Whether file `index` is to be downloaded according to `so` (all are when it is
    /// absent).
    pub fn selects(&self, index: u32) -> bool {
        self.select_only.is_empty() || self.select_only.iter().any(|r| r.contains(&index))
    }
}

impl FromStr for Magnet {
    type Err = MagnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Magnet::parse(s)
    }
}

impl fmt::Display for Magnet {
    /// `magnet:?xt=urn:btih:<hex>&xt=urn:btmh:1220<hex>&dn=…&tr=…&x.pe=…&so=…`, every value
    /// percent-encoded except unreserved characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("magnet:?")?;
        let mut sep = "";
        if let Some(a) = self.hashes.v1() {
            write!(f, "xt=urn:btih:{a}")?;
            sep = "&";
        }
        if let Some(b) = self.hashes.v2() {
            write!(f, "{sep}xt=urn:btmh:1220{b}")?;
        }
        if let Some(name) = &self.display_name {
            write!(f, "&dn={}", Encoded(name))?;
        }
        for t in &self.trackers {
            write!(f, "&tr={}", Encoded(t))?;
        }
        for p in &self.peers {
            write!(f, "&x.pe={}", Encoded(&p.to_string()))?;
        }
        for (i, r) in self.select_only.iter().enumerate() {
            f.write_str(if i == 0 { "&so=" } else { "," })?;
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

impl FromStr for PeerAddr {
    type Err = MagnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(PeerAddr::Ip(addr));
        }
        let bad = || MagnetError::InvalidPeer(s.to_string());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        // Digits only: `u16::from_str` takes a leading `+`, which would make "10.0.0.1:+881"
        // a host name here while its formatted form "10.0.0.1:881" is an IP address.
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host_ok =
            !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !host_ok {
            return Err(bad());
        }
        Ok(PeerAddr::Host { host: host.to_string(), port })
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Ip(a) => write!(f, "{a}"),
            PeerAddr::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// `magnet:?` (scheme case-insensitive) stripped off.
fn strip_scheme(s: &str) -> Option<&str> {
    let head = s.get(..8)?;
    head.eq_ignore_ascii_case("magnet:?").then(|| &s[8..])
}

/// `xt.1`, `tr.2`… are the same parameters as `xt`, `tr` (a numbered form seen in the wild).
fn base_key(key: &str) -> &str {
    match key.rsplit_once('.') {
        Some((base, n))
            if matches!(base, "xt" | "tr" | "dn") && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => key,
    }
}

fn parse_xt(v: &str, v1: &mut Option<InfoHashV1>, v2: &mut Option<InfoHashV2>) -> Result<(), MagnetError> {
    let (scheme, hash) = match v.get(..9) {
        Some(p) if p.eq_ignore_ascii_case("urn:btih:") => ("btih", &v[9..]),
        Some(p) if p.eq_ignore_ascii_case("urn:btmh:") => ("btmh", &v[9..]),
        _ => return Ok(()),
    };
    if scheme == "btih" {
        let h = from_hex::<20>(hash)
            .or_else(|| from_base32_20(hash))
            .map(InfoHashV1)
            .ok_or_else(|| MagnetError::InvalidBtih(hash.to_string()))?;
        set_once(v1, h, "v1")
    } else {
        let bad = || MagnetError::InvalidBtmh(hash.to_string());
        let digest = hash.strip_prefix("1220").ok_or_else(bad)?;
        set_once(v2, InfoHashV2(from_hex::<32>(digest).ok_or_else(bad)?), "v2")
    }
}

fn set_once<T: PartialEq>(slot: &mut Option<T>, value: T, kind: &'static str) -> Result<(), MagnetError> {
    match slot {
        Some(old) if *old != value => Err(MagnetError::ConflictingHashes(kind)),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// BEP 53 `so`: `0,2,4-6`.
fn parse_selection(s: &str) -> Result<Vec<RangeInclusive<u32>>, MagnetError> {
    let bad = || MagnetError::InvalidSelection(s.to_string());
    let num = |t: &str| -> Result<u32, MagnetError> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    s.split(',')
        .map(|item| {
            let (a, b) = match item.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let a = num(item)?;
                    (a, a)
                }
            };
            if a > b {
                return Err(bad());
            }
            Ok(a..=b)
        })
        .collect()
}

/// Percent-decodes `raw`; with `plus_is_space`, `+` becomes a space (form encoding, common
/// in `dn`).
fn decode(key: &str, raw: &str, plus_is_space: bool) -> Result<Vec<u8>, MagnetError> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = b.get(i + 1).copied().and_then(hex_val);
                let lo = b.get(i + 2).copied().and_then(hex_val);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(MagnetError::BadPercentEncoding(key.to_string()));
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn utf8(key: &str, bytes: Vec<u8>) -> Result<String, MagnetError> {
    String::from_utf8(bytes).map_err(|_| MagnetError::NotUtf8(key.to_string()))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
struct Encoded<'a>(&'a str);

impl fmt::Display for Encoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0.as_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX1: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    const HEX2: &str = "caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e";

    #[test]
    fn v1_hex_and_base32() {
        let hex = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX1}")).expect("hex");
        assert_eq!(hex.hashes, InfoHashes::V1(InfoHashV1::from_hex(HEX1).expect("hex")));
        let b32 = InfoHashV1(hex.hashes.id20()).to_base32();
        let m = Magnet::parse(&format!("MAGNET:?xt=urn:BTIH:{b32}")).expect("base32");
        assert_eq!(m.hashes, hex.hashes);
        assert_eq!(m.to_string(), format!("magnet:?xt=urn:btih:{HEX1}"));
    }

    #[test]
    fn hybrid_with_everything() {
        let s = format!(
            "magnet:?xt=urn:btih:{HEX1}&xt=urn:btmh:1220{HEX2}&dn=My%20Film+2&tr=udp%3A%2F%2Ft.example%3A80&tr.1=http://x/a?b\
             &x.pe=10.0.0.1:6881&x.pe=%5B%3A%3A1%5D%3A51413&x.pe=seed.example.org:1&so=0,2,4-6&ws=ignored&xt=urn:sha1:abc"
        );
        let m = Magnet::parse(&s).expect("valid");
        assert!(m.hashes.is_hybrid());
        assert_eq!(m.hashes.v2().map(|h| h.to_hex()), Some(HEX2.to_string()));
        assert_eq!(m.display_name.as_deref(), Some("My Film 2"));
        assert_eq!(m.trackers, ["udp://t.example:80", "http://x/a?b"]);
        assert_eq!(
            m.peers,
            [
                PeerAddr::Ip("10.0.0.1:6881".parse().expect("addr")),
                PeerAddr::Ip("[::1]:51413".parse().expect("addr")),
                PeerAddr::Host { host: "seed.example.org".into(), port: 1 }
            ]
        );
        assert_eq!(m.select_only, [0..=0, 2..=2, 4..=6]);
        assert!(m.selects(5) && !m.selects(3) && !m.selects(7));
        let again = Magnet::parse(&m.to_string()).expect("round trip");
        assert_eq!(again, m);
    }

    #[test]
    fn v2_only() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btmh:1220{}", HEX2.to_uppercase())).expect("v2");
        assert_eq!(m.hashes.v1(), None);
        assert_eq!(m.to_string(), format!("magnet:?xt=urn:btmh:1220{HEX2}"));
    }

    #[test]
    fn a_peer_port_is_digits_only() {
        // Found by cargo fuzz: "+881" passed `u16::from_str`, made "10.0.0.1" a host name, and
        // the link no longer survived formatting and parsing again.
        assert_eq!("10.0.0.1:+881".parse::<PeerAddr>(), Err(MagnetError::InvalidPeer("10.0.0.1:+881".into())));
        assert_eq!(
            "seed.example.org:+1".parse::<PeerAddr>(),
            Err(MagnetError::InvalidPeer("seed.example.org:+1".into()))
        );
        assert_eq!("10.0.0.1:0881".parse::<PeerAddr>(), Ok(PeerAddr::Ip("10.0.0.1:881".parse().expect("literal"))));
    }

    #[test]
    fn errors() {
        let cases: Vec<(String, MagnetError)> = vec![
            ("http://x".into(), MagnetError::NotMagnet),
            ("magnet:".into(), MagnetError::NotMagnet),
            ("magnet:?dn=x".into(), MagnetError::MissingInfoHash),
            ("magnet:?xt=urn:btih:abc".into(), MagnetError::InvalidBtih("abc".into())),
            (format!("magnet:?xt=urn:btmh:1114{HEX2}"), MagnetError::InvalidBtmh(format!("1114{HEX2}"))),
            (
                format!("magnet:?xt=urn:btih:{HEX1}&xt=urn:btih:{}", "0".repeat(40)),
                MagnetError::ConflictingHashes("v1"),
            ),
            (format!("magnet:?xt=urn:btih:{HEX1}&tr=%zz"), MagnetError::BadPercentEncoding("tr".into())),
            (format!("magnet:?xt=urn:btih:{HEX1}&tr=%"), MagnetError::BadPercentEncoding("tr".into())),
            (format!("magnet:?xt=urn:btih:{HEX1}&tr=%ff"), MagnetError::NotUtf8("tr".into())),
            (format!("magnet:?xt=urn:btih:{HEX1}&x.pe=nope"), MagnetError::InvalidPeer("nope".into())),
            (format!("magnet:?xt=urn:btih:{HEX1}&x.pe=a%20b:1"), MagnetError::InvalidPeer("a b:1".into())),
            (format!("magnet:?xt=urn:btih:{HEX1}&x.pe=h:70000"), MagnetError::InvalidPeer("h:70000".into())),
            (format!("magnet:?xt=urn:btih:{HEX1}&so=3-1"), MagnetError::InvalidSelection("3-1".into())),
            (format!("magnet:?xt=urn:btih:{HEX1}&so=1,,2"), MagnetError::InvalidSelection("1,,2".into())),
            (format!("magnet:?xt=urn:btih:{HEX1}&so=-1"), MagnetError::InvalidSelection("-1".into())),
            (format!("magnet:?xt=urn:btih:{HEX1}&so="), MagnetError::InvalidSelection("".into())),
        ];
        for (s, e) in cases {
            assert_eq!(Magnet::parse(&s), Err(e), "{s}");
        }
        // The same hash twice is fine; dn may be any bytes.
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX1}&xt=urn:btih:{}&dn=%ff", HEX1.to_uppercase()));
        assert_eq!(m.map(|m| m.display_name), Ok(Some("\u{fffd}".into())));
    }

    #[test]
    fn encoding_escapes_reserved() {
        let mut m = Magnet::new(InfoHashes::V1(InfoHashV1([0; 20])));
        m.display_name = Some("a&b=c+d é".into());
        let s = m.to_string();
        assert!(s.ends_with("&dn=a%26b%3Dc%2Bd%20%C3%A9"), "{s}");
        assert_eq!(Magnet::parse(&s), Ok(m));
    }
}
