//! The unified file list shared by v1, v2 and hybrid torrents, BEP 47 attributes, and the
//! path rules that keep a torrent's files inside the download directory.

use std::fmt;

/// One file of a torrent, in piece-space order.
///
/// v1 and hybrid torrents list their BEP 47 pad files too (with [`FileAttr::pad`] set);
/// v2-only torrents have none, their files are aligned to piece boundaries implicitly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Where the file goes, relative to the download directory: `[name]` for a single-file
    /// torrent, `[name, dir..., file]` for a multi-file one. Every component has passed
    /// [`check_component`]: none is empty, `.`, `..`, or holds `/`, `\` or NUL.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the first byte in the piece space (piece `i` starts at
    /// `i * piece_length`). For v2 and hybrid torrents every non-empty, non-pad file starts
    /// at a piece boundary. An empty file holds no bytes: its offset is its place in the v1
    /// list, or for v2-only torrents the end of the data before it.
    pub offset: u64,
    /// BEP 47 attributes.
    pub attr: FileAttr,
    /// The v2 merkle root of the file's contents (v2 and hybrid torrents, non-empty
    /// non-pad files).
    pub pieces_root: Option<[u8; 32]>,
    /// For a symlink (`attr` has `l`): the target, relative to the torrent's root, checked
    /// like `path`.
    pub symlink_target: Option<Vec<String>>,
}

/// BEP 47 file attributes (the `attr` string: `p`, `x`, `h`, `l`; others are ignored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileAttr {
    /// `p`: a pad file, all zeros, not written to disk.
    pub pad: bool,
    /// `x`: executable.
    pub executable: bool,
    /// `h`: hidden.
    pub hidden: bool,
    /// `l`: a symlink; see [`FileEntry::symlink_target`].
    pub symlink: bool,
}

impl FileEntry {
    /// One past the last byte in the piece space.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }

    /// The path joined with `/`, for messages.
    pub fn display_path(&self) -> String {
        self.path.join("/")
    }
}

impl FileAttr {
    /// Parses an `attr` string; unknown characters are ignored (BEP 47).
    pub fn parse(s: &[u8]) -> Self {
        FileAttr {
            pad: s.contains(&b'p'),
            executable: s.contains(&b'x'),
            hidden: s.contains(&b'h'),
            symlink: s.contains(&b'l'),
        }
    }

    /// Whether no attribute is set.
    pub fn is_empty(&self) -> bool {
        *self == FileAttr::default()
    }
}

impl fmt::Display for FileAttr {
    /// The `attr` string, in the order libtorrent writes it (`p`, `h`, `x`, `l`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (set, c) in [(self.pad, "p"), (self.hidden, "h"), (self.executable, "x"), (self.symlink, "l")] {
            if set {
                f.write_str(c)?;
            }
        }
        Ok(())
    }
}

/// Checks one path component from a torrent (or for a torrent being created).
///
/// Rejected: empty, `.` and `..` (directory traversal and ambiguous paths), anything with
/// `/` or `\` (a separator would smuggle in more components, a leading one makes the path
/// absolute), and NUL (truncates C paths). Names that are only reserved on some platforms
/// (`CON`, `a:b`) are left to the storage layer of that platform.
pub fn check_component(c: &[u8]) -> Result<(), &'static str> {
    if c.is_empty() {
        Err("empty component")
    } else if c == b"." || c == b".." {
        Err("relative component")
    } else if c.iter().any(|&b| b == b'/' || b == b'\\') {
        Err("contains a path separator")
    } else if c.contains(&0) {
        Err("contains NUL")
    } else {
        Ok(())
    }
}

/// Finds two paths that collide (equal, or one a directory prefix of the other), ignoring
/// pad files, which commonly share `.pad/N`. Returns the shorter of the two.
pub(crate) fn find_conflict<'a>(paths: impl Iterator<Item = &'a [String]>) -> Option<String> {
    let mut sorted: Vec<&[String]> = paths.collect();
    sorted.sort_unstable();
    sorted.windows(2).find(|w| w[1].starts_with(w[0])).map(|w| w[0].join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_parse_and_display() {
        let a = FileAttr::parse(b"xzp");
        assert!(a.pad && a.executable && !a.hidden && !a.symlink);
        assert_eq!(a.to_string(), "px");
        assert!(FileAttr::parse(b"").is_empty());
        assert_eq!(FileAttr::parse(b"lhxp").to_string(), "phxl");
    }

    #[test]
    fn components() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"..\\x", b"a\0b"] {
            assert!(check_component(bad).is_err(), "{bad:?}");
        }
        for good in [&b"a"[..], b"...", b".hidden", b"a b", b"\xff\xfe", b"C:"] {
            assert!(check_component(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn conflicts() {
        let p = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        let set = [p("t/a"), p("t/b/c"), p("t/a.txt")];
        assert_eq!(find_conflict(set.iter().map(Vec::as_slice)), None);
        let dup = [p("t/a"), p("t/b"), p("t/a")];
        assert_eq!(find_conflict(dup.iter().map(Vec::as_slice)), Some("t/a".into()));
        let dir = [p("t/a/x"), p("t/b"), p("t/a")];
        assert_eq!(find_conflict(dir.iter().map(Vec::as_slice)), Some("t/a".into()));
    }
}
