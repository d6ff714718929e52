//! A whole .torrent file: [`Metainfo`], the info dictionary plus trackers, descriptive
//! fields and the v2 `piece layers`.

use mycel_bencode::{decode_with, Dict, Limits, Value};

use crate::info::{Info, TORRENT_LIMITS};
use crate::parse::{opt_bytes, opt_int, text, wrong};
use crate::{InfoHashes, Magnet, MetainfoError};

/// A parsed, validated .torrent file.
///
/// The info dictionary is kept as the exact bytes found in the file ([`info_bytes`](Self::info_bytes)),
/// so the info-hashes are right even when the encoder that wrote the file was not canonical.
/// For v2 and hybrid torrents, every file's piece layer has been checked against its
/// `pieces root`.
///
/// Everything is owned: a torrent lives as long as its download, and the copy happens once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metainfo {
    info: Info,
    announce: Option<String>,
    announce_list: Vec<Vec<String>>,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    web_seeds: Vec<String>,
    /// Per file index: the verified piece layer of non-empty v2 files.
    piece_layers: Vec<Option<Vec<[u8; 32]>>>,
}

impl Metainfo {
    /// Parses a .torrent file with [`TORRENT_LIMITS`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetainfoError> {
        Self::from_bytes_with(bytes, &TORRENT_LIMITS)
    }

    /// [`from_bytes`](Self::from_bytes) with explicit decoding limits.
    pub fn from_bytes_with(bytes: &[u8], limits: &Limits) -> Result<Self, MetainfoError> {
        let value = decode_with(bytes, limits)?;
        let root = value.as_dict().ok_or_else(|| wrong("torrent", "a dictionary"))?;
        let info_dict = match root.get(b"info") {
            None => return Err(MetainfoError::MissingField("info".into())),
            Some(v) => v.as_dict().ok_or_else(|| wrong("info", "a dictionary"))?,
        };
        // The decode succeeded, so the top level is a well-formed dictionary holding `info`.
        let (start, end) = dict_value_span(bytes, b"info").ok_or_else(|| MetainfoError::MissingField("info".into()))?;
        let info = Info::from_dict(&bytes[start..end], info_dict)?;
        let piece_layers = piece_layers(&info, root)?;
        let string = |key: &[u8], field: &'static str| -> Result<Option<String>, MetainfoError> {
            Ok(opt_bytes(root, key, &|| field.into())?.map(text))
        };
        Ok(Metainfo {
            announce: string(b"announce", "announce")?,
            announce_list: announce_list(root)?,
            comment: string(b"comment", "comment")?,
            created_by: string(b"created by", "created by")?,
            creation_date: opt_int(root, b"creation date", &|| "creation date".into())?,
            web_seeds: web_seeds(root)?,
            info,
            piece_layers,
        })
    }

    /// The validated info dictionary.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The info dictionary's bytes exactly as they were in the file.
    pub fn info_bytes(&self) -> &[u8] {
        self.info.bytes()
    }

    /// The info-hashes (v1, v2 or both).
    pub fn info_hashes(&self) -> InfoHashes {
        self.info.info_hashes()
    }

    /// The `announce` URL.
    pub fn announce(&self) -> Option<&str> {
        self.announce.as_deref()
    }

    /// The BEP 12 `announce-list` tiers as found (empty tiers dropped).
    pub fn announce_list(&self) -> &[Vec<String>] {
        &self.announce_list
    }

    /// The trackers to use, by tier: `announce-list` when present (BEP 12: then
    /// `announce` is ignored), else `announce` alone.
    pub fn trackers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            return self.announce_list.clone();
        }
        self.announce.iter().map(|a| vec![a.clone()]).collect()
    }

    /// The `comment`.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The `created by` string.
    pub fn created_by(&self) -> Option<&str> {
        self.created_by.as_deref()
    }

    /// The `creation date` (seconds since the Unix epoch).
    pub fn creation_date(&self) -> Option<i64> {
        self.creation_date
    }

    /// BEP 19 web seeds (`url-list`).
    pub fn web_seeds(&self) -> &[String] {
        &self.web_seeds
    }

    /// The verified piece layer of file `index`: one SHA-256 per piece of the file (for a
    /// file of at most one piece, its root). `None` for v1-only torrents, pad files and
    /// empty files.
    pub fn piece_layer(&self, index: usize) -> Option<&[[u8; 32]]> {
        self.piece_layers.get(index)?.as_deref()
    }

    /// A magnet link for this torrent: its hashes, name and trackers.
    pub fn magnet(&self) -> Magnet {
        let mut m = Magnet::new(self.info_hashes());
        m.display_name = Some(self.info.name().to_string());
        m.trackers = self.trackers().into_iter().flatten().collect();
        m
    }

    /// Encodes the torrent again: the info dictionary byte for byte as it was, the other
    /// known fields canonically. Unknown top-level keys are not kept.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut layers: Vec<([u8; 32], &[[u8; 32]])> = Vec::new();
        for (f, layer) in self.info.files().iter().zip(&self.piece_layers) {
            if let (Some(root), Some(layer)) = (f.pieces_root, layer) {
                if f.length > u64::from(self.info.piece_length()) {
                    layers.push((root, layer));
                }
            }
        }
        let header = Header {
            announce: self.announce.as_deref(),
            announce_list: &self.announce_list,
            comment: self.comment.as_deref(),
            created_by: self.created_by.as_deref(),
            creation_date: self.creation_date,
            web_seeds: &self.web_seeds,
        };
        let mut out = Vec::with_capacity(self.info.bytes().len() + 256);
        write_torrent(&mut out, &header, self.info.bytes(), layers);
        out
    }
}

/// The fields around the info dictionary, for [`write_torrent`].
pub(crate) struct Header<'a> {
    pub announce: Option<&'a str>,
    pub announce_list: &'a [Vec<String>],
    pub comment: Option<&'a str>,
    pub created_by: Option<&'a str>,
    pub creation_date: Option<i64>,
    pub web_seeds: &'a [String],
}

/// Writes a .torrent: `header`'s fields, the info dictionary's bytes as they are, and
/// `piece layers` (entries may repeat: identical files share a root; they are written once).
pub(crate) fn write_torrent(out: &mut Vec<u8>, h: &Header<'_>, info: &[u8], mut layers: Vec<([u8; 32], &[[u8; 32]])>) {
    // Keys in bytewise order: announce, announce-list, comment, created by, creation date,
    // info, piece layers, url-list.
    out.push(b'd');
    if let Some(a) = h.announce {
        put_str(out, "announce");
        put_str(out, a);
    }
    if !h.announce_list.is_empty() {
        put_str(out, "announce-list");
        out.push(b'l');
        for tier in h.announce_list {
            put_str_list(out, tier);
        }
        out.push(b'e');
    }
    for (key, value) in [("comment", h.comment), ("created by", h.created_by)] {
        if let Some(v) = value {
            put_str(out, key);
            put_str(out, v);
        }
    }
    if let Some(d) = h.creation_date {
        put_str(out, "creation date");
        out.extend_from_slice(format!("i{d}e").as_bytes());
    }
    put_str(out, "info");
    out.extend_from_slice(info);
    layers.sort_by_key(|a| a.0);
    layers.dedup_by(|a, b| a.0 == b.0);
    if !layers.is_empty() {
        put_str(out, "piece layers");
        out.push(b'd');
        for (root, hashes) in layers {
            put_bytes(out, &root);
            out.extend_from_slice(format!("{}:", hashes.len() * 32).as_bytes());
            hashes.iter().for_each(|h| out.extend_from_slice(h));
        }
        out.push(b'e');
    }
    match h.web_seeds {
        [] => {}
        [one] => {
            put_str(out, "url-list");
            put_str(out, one);
        }
        many => {
            put_str(out, "url-list");
            put_str_list(out, many);
        }
    }
    out.push(b'e');
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(format!("{}:", b.len()).as_bytes());
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_str_list(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'l');
    items.iter().for_each(|s| put_str(out, s));
    out.push(b'e');
}

fn announce_list(root: &Dict<'_>) -> Result<Vec<Vec<String>>, MetainfoError> {
    let Some(v) = root.get(b"announce-list") else {
        return Ok(Vec::new());
    };
    let bad = || wrong("announce-list", "a list of lists of strings");
    let mut tiers = Vec::new();
    for tier in v.as_list().ok_or_else(bad)? {
        let urls: Vec<String> = tier
            .as_list()
            .ok_or_else(bad)?
            .iter()
            .map(|u| u.as_bytes().map(text).ok_or_else(bad))
            .collect::<Result<_, _>>()?;
        if !urls.is_empty() {
            tiers.push(urls);
        }
    }
    Ok(tiers)
}

fn web_seeds(root: &Dict<'_>) -> Result<Vec<String>, MetainfoError> {
    match root.get(b"url-list") {
        None => Ok(Vec::new()),
        Some(Value::Bytes([])) => Ok(Vec::new()),
        Some(Value::Bytes(b)) => Ok(vec![text(b)]),
        Some(Value::List(l)) => {
            l.iter().map(|u| u.as_bytes().map(text).ok_or_else(|| wrong("url-list", "a list of strings"))).collect()
        }
        Some(_) => Err(wrong("url-list", "a string or a list of strings")),
    }
}

/// Checks the `piece layers` of every non-empty v2 file (BEP 52: a torrent is invalid if an
/// entry is missing or does not match its root).
fn piece_layers(info: &Info, root: &Dict<'_>) -> Result<Vec<Option<Vec<[u8; 32]>>>, MetainfoError> {
    let layers = match root.get(b"piece layers") {
        None => None,
        Some(v) => Some(v.as_dict().ok_or_else(|| wrong("piece layers", "a dictionary"))?),
    };
    let pl = u64::from(info.piece_length());
    let mut out = Vec::with_capacity(info.files().len());
    for (i, f) in info.files().iter().enumerate() {
        let Some(r) = f.pieces_root else {
            out.push(None);
            continue;
        };
        let entry: &[u8] = if f.length <= pl {
            &[]
        } else {
            match layers.and_then(|l| l.get(&r)) {
                None => return Err(MetainfoError::MissingPieceLayer(f.display_path())),
                Some(v) => v.as_bytes().ok_or_else(|| wrong("piece layers", "a dictionary of strings"))?,
            }
        };
        out.push(Some(info.verify_piece_layer(i, entry)?));
    }
    Ok(out)
}

/// The span `[start, end)` of the value under `key` in the top-level dictionary of `buf`.
///
/// Runs only on input the strict decoder has accepted, but still never indexes past the
/// end: anything unexpected gives `None`.
pub(crate) fn dict_value_span(buf: &[u8], key: &[u8]) -> Option<(usize, usize)> {
    if buf.first() != Some(&b'd') {
        return None;
    }
    let mut pos = 1;
    while *buf.get(pos)? != b'e' {
        let (k, value_start) = read_string(buf, pos)?;
        let value_end = skip_value(buf, value_start)?;
        if k == key {
            return Some((value_start, value_end));
        }
        pos = value_end;
    }
    None
}

/// A byte string at `pos`: its contents and the position after it.
fn read_string(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let colon = pos + buf.get(pos..)?.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&buf[pos..colon]).ok()?.parse().ok()?;
    let start = colon + 1;
    let end = start.checked_add(len)?;
    Some((buf.get(start..end)?, end))
}

/// The position after the value starting at `pos`, without building it.
fn skip_value(buf: &[u8], mut pos: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match *buf.get(pos)? {
            b'i' => pos += buf.get(pos..)?.iter().position(|&b| b == b'e')? + 1,
            b'l' | b'd' => {
                depth += 1;
                pos += 1;
                continue;
            }
            b'e' => {
                depth = depth.checked_sub(1)?;
                pos += 1;
            }
            b'0'..=b'9' => pos = read_string(buf, pos)?.1,
            _ => return None,
        }
        if depth == 0 {
            return Some(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_top_level_values() {
        let buf = b"d1:ai-12e4:infod1:xli1e2:abee1:zl1:qee";
        let (s, e) = dict_value_span(buf, b"info").expect("info");
        assert_eq!(&buf[s..e], b"d1:xli1e2:abee");
        let (s, e) = dict_value_span(buf, b"a").expect("a");
        assert_eq!(&buf[s..e], b"i-12e");
        assert_eq!(dict_value_span(buf, b"nope"), None);
        assert_eq!(dict_value_span(b"li1ee", b"info"), None);
        assert_eq!(dict_value_span(b"d4:info", b"info"), None);
        assert_eq!(dict_value_span(b"d4:infol", b"info"), None);
        assert_eq!(dict_value_span(b"d4:info99:x", b"info"), None);
    }

    #[test]
    fn info_bytes_kept_when_not_canonical() {
        // Keys out of order inside info: the strict decoder accepts it (sorted in memory),
        // the hash must still be over the bytes as found.
        let info = b"d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let unsorted = b"d4:name1:x6:lengthi5e12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let mut t = b"d4:info".to_vec();
        t.extend_from_slice(unsorted);
        t.push(b'e');
        let m = Metainfo::from_bytes(&t).expect("valid");
        assert_eq!(m.info_bytes(), unsorted);
        assert_ne!(m.info_hashes(), Info::from_bytes(info).expect("valid").info_hashes());
        assert_eq!(m.to_bytes(), t);
    }

    #[test]
    fn top_level_fields() {
        let t = b"d8:announce3:u:113:announce-listll3:u:1el3:u:23:u:3elee7:comment2:hi10:created by2:me13:creation datei7e4:infod6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae8:url-listl5:http:4:ftp:ee";
        let m = Metainfo::from_bytes(t).expect("valid");
        assert_eq!(m.announce(), Some("u:1"));
        assert_eq!(m.trackers(), vec![vec!["u:1".to_string()], vec!["u:2".into(), "u:3".into()]]);
        assert_eq!((m.comment(), m.created_by(), m.creation_date()), (Some("hi"), Some("me"), Some(7)));
        assert_eq!(m.web_seeds(), ["http:".to_string(), "ftp:".into()]);
        assert_eq!(m.piece_layer(0), None);
        assert_eq!(Metainfo::from_bytes(&m.to_bytes()), Ok(m.clone()));
        let magnet = m.magnet();
        assert_eq!(magnet.display_name.as_deref(), Some("x"));
        assert_eq!(magnet.trackers.len(), 3);
    }

    #[test]
    fn bad_top_level_shapes() {
        let info = "4:infod6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let cases: [(String, &str); 6] = [
            ("le".into(), "torrent"),
            ("d4:infoi1ee".into(), "info"),
            (format!("d13:announce-listl3:urle{info}e"), "announce-list"),
            (format!("d8:announcei1e{info}e"), "announce"),
            (format!("d13:creation date1:x{info}e"), "creation date"),
            (format!("d{info}8:url-listi1ee"), "url-list"),
        ];
        for (t, field) in cases {
            match Metainfo::from_bytes(t.as_bytes()) {
                Err(MetainfoError::WrongType { field: f, .. }) => assert_eq!(f, field, "{t}"),
                other => panic!("{t}: {other:?}"),
            }
        }
        assert_eq!(Metainfo::from_bytes(b"de"), Err(MetainfoError::MissingField("info".into())));
    }
}
