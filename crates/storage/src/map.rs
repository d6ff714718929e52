//! [`FileMap`]: the piece space cut into files.

use std::path::{Component, Path, PathBuf};

use mycel_metainfo::FileEntry;

use crate::StorageError;

/// One file of the torrent as storage sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Path relative to the output directory (checked: plain components only).
    pub path: PathBuf,
    /// Offset of the file's first byte in the piece space.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// A BEP 47 pad file: zeros, never on disk.
    pub pad: bool,
}

impl Segment {
    /// One past the file's last byte in the piece space.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

/// A contiguous part of an access that falls in one file, or in a pad/gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index into [`FileMap::segments`], `None` for bytes that are zeros (pad or gap).
    pub segment: Option<usize>,
    /// Offset inside that file.
    pub file_offset: u64,
    /// Range of the caller's buffer.
    pub start: usize,
    /// End (exclusive) in the caller's buffer.
    pub end: usize,
}

/// The torrent's files over the piece space, in order, with the size of the space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMap {
    segments: Vec<Segment>,
    size: u64,
}

impl FileMap {
    /// From a parsed torrent's file list ([`mycel_metainfo::Info::files`]) and the size of
    /// its piece space ([`mycel_metainfo::Info::piece_space_size`]). Empty files are kept
    /// (they are created) but hold no bytes.
    pub fn new(files: &[FileEntry], piece_space: u64) -> Result<Self, StorageError> {
        let mut segments = Vec::with_capacity(files.len());
        for f in files {
            let path: PathBuf = f.path.iter().collect();
            check_relative(&path)?;
            segments.push(Segment { path, offset: f.offset, length: f.length, pad: f.attr.pad });
        }
        Ok(FileMap { segments, size: piece_space })
    }

    /// A map from explicit segments (tests, in-memory torrents).
    pub fn from_segments(segments: Vec<Segment>, size: u64) -> Result<Self, StorageError> {
        for s in &segments {
            check_relative(&s.path)?;
        }
        Ok(FileMap { segments, size })
    }

    /// The files.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Size of the piece space.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Cuts an access of `len` bytes at `offset` into per-file spans covering the whole
    /// buffer in order; bytes in no file (pads, gaps) come as spans with no segment.
    pub fn spans(&self, offset: u64, len: usize) -> Result<Vec<Span>, StorageError> {
        let end = offset.checked_add(len as u64).filter(|&e| e <= self.size);
        let Some(end) = end else {
            return Err(StorageError::OutOfRange { offset, len: len as u64, size: self.size });
        };
        let mut out = Vec::new();
        let mut pos = offset;
        let mut i = self.segments.partition_point(|s| s.end() <= offset);
        while pos < end {
            let seg = self.segments.get(i).filter(|s| s.length > 0);
            match seg {
                Some(s) if s.offset <= pos => {
                    let stop = s.end().min(end);
                    let segment = (!s.pad).then_some(i);
                    out.push(self.span(segment, pos - s.offset, offset, pos, stop));
                    pos = stop;
                    i += 1;
                }
                Some(s) => {
                    // A gap before the next file (v2 alignment).
                    let stop = s.offset.min(end);
                    out.push(self.span(None, 0, offset, pos, stop));
                    pos = stop;
                }
                None if i < self.segments.len() => i += 1,
                None => {
                    out.push(self.span(None, 0, offset, pos, end));
                    pos = end;
                }
            }
        }
        Ok(out)
    }

    fn span(&self, segment: Option<usize>, file_offset: u64, base: u64, from: u64, to: u64) -> Span {
        Span { segment, file_offset, start: (from - base) as usize, end: (to - base) as usize }
    }
}

/// A relative path of plain components only: nothing that could climb out of the output
/// directory (`..`, a root, a drive prefix) even if the metainfo checks were bypassed.
fn check_relative(path: &Path) -> Result<(), StorageError> {
    let ok = path.components().count() > 0 && path.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(StorageError::UnsafePath(path.display().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(path: &str, offset: u64, length: u64, pad: bool) -> Segment {
        Segment { path: path.into(), offset, length, pad }
    }

    #[test]
    fn spans_cover_files_pads_and_gaps() {
        let m = FileMap::from_segments(
            vec![seg("a", 0, 10, false), seg("pad", 10, 6, true), seg("e", 16, 0, false), seg("b", 20, 10, false)],
            32,
        )
        .expect("map");
        let s = m.spans(5, 27).expect("spans");
        let parts: Vec<(Option<usize>, u64, usize, usize)> =
            s.iter().map(|x| (x.segment, x.file_offset, x.start, x.end)).collect();
        assert_eq!(
            parts,
            vec![(Some(0), 5, 0, 5), (None, 0, 5, 11), (None, 0, 11, 15), (Some(3), 0, 15, 25), (None, 0, 25, 27)]
        );
        assert!(m.spans(30, 3).is_err());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(FileMap::from_segments(vec![seg("../x", 0, 1, false)], 1).is_err());
        assert!(FileMap::from_segments(vec![seg("/etc/x", 0, 1, false)], 1).is_err());
        assert!(FileMap::from_segments(vec![seg("ok/x", 0, 1, false)], 1).is_ok());
    }
}
