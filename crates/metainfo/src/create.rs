//! Creating torrents: [`TorrentBuilder`] lays files out, hashes pieces as the caller feeds
//! their bytes, and writes the .torrent.
//!
//! The library never opens a file. The caller describes the files (path, length), then
//! either calls [`hash_all`](TorrentBuilder::hash_all) with a `read(file, offset, buf)`
//! callback (one piece buffer, files read front to back), or hashes pieces on any number
//! of threads with [`hash_piece`](TorrentBuilder::hash_piece) (`&self`, a buffer per
//! thread) and hands the results to [`set_piece_hashes`](TorrentBuilder::set_piece_hashes).
//!
//! Layout (the same as libtorrent's, so both make the same torrent from the same files):
//! files sorted by path component by component (the order of a v2 `file tree`); for v2
//! and hybrid multi-file torrents, a BEP 47 pad file after every non-empty file that does
//! not end on a piece boundary, the last one included. v2-only torrents do not list the
//! pads, but their pieces are laid out the same way.
//!
//! ```
//! use mycel_metainfo::{CreateOptions, Metainfo, TorrentBuilder, TorrentVersion};
//! let data = vec![7u8; 100_000];
//! let opts = CreateOptions { version: TorrentVersion::Hybrid, ..CreateOptions::default() };
//! let mut b = TorrentBuilder::single_file("seven.bin", data.len() as u64, opts).unwrap();
//! b.hash_all(|_file, offset, buf: &mut [u8]| -> Result<(), ()> {
//!     let start = offset as usize;
//!     buf.copy_from_slice(&data[start..start + buf.len()]);
//!     Ok(())
//! })
//! .unwrap();
//! let torrent = Metainfo::from_bytes(&b.finish().unwrap()).unwrap();
//! assert!(torrent.info_hashes().is_hybrid());
//! ```

use mycel_bencode::Encoder;
use sha1::{Digest, Sha1};

use crate::files::{check_component, find_conflict, FileAttr, FileEntry};
use crate::info::{TorrentVersion, MAX_PIECES, MAX_PIECE_LENGTH};
use crate::merkle::{self, BLOCK_SIZE};
use crate::metainfo::{write_torrent, Header};
use crate::CreateError;

/// One file to put in a multi-file torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// Path below the torrent's root directory (at least one component).
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// BEP 47 `x`.
    pub executable: bool,
    /// BEP 47 `h`.
    pub hidden: bool,
}

/// What to create besides the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateOptions {
    /// v1, v2 or hybrid (the default: every client can join).
    pub version: TorrentVersion,
    /// Bytes per piece, a power of two from 16 KiB to 128 MiB; `None` picks
    /// [`default_piece_length`].
    pub piece_length: Option<u32>,
    /// Tracker tiers (BEP 12); the first URL also becomes `announce`.
    pub trackers: Vec<Vec<String>>,
    /// BEP 19 web seeds.
    pub web_seeds: Vec<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date`, seconds since the Unix epoch (the caller reads the clock).
    pub creation_date: Option<i64>,
    /// BEP 27 `private`.
    pub private: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            version: TorrentVersion::Hybrid,
            piece_length: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            private: false,
        }
    }
}

/// The hashes of one piece: SHA-1 of the piece (v1, pad bytes as zeros) and the root of
/// its 16 KiB-block merkle subtree (v2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceHashes {
    /// SHA-1 of the whole piece, for v1 and hybrid torrents.
    pub v1: Option<[u8; 20]>,
    /// The piece's merkle subtree root, for v2 and hybrid torrents.
    pub v2: Option<[u8; 32]>,
}

/// Builds a torrent from files whose bytes the caller supplies. See the module docs.
#[derive(Clone, Debug)]
pub struct TorrentBuilder {
    opts: CreateOptions,
    name: String,
    single: bool,
    piece_length: u32,
    /// Files in piece-space order, pad files included (even for v2-only: they shape the
    /// piece space); `path` starts with the name as in [`Info::files`](crate::Info::files).
    files: Vec<FileEntry>,
    /// For each entry of `files`: the index in the caller's list, `None` for pads.
    sources: Vec<Option<usize>>,
    piece_space: u64,
    num_pieces: u32,
    hashes: Vec<Option<PieceHashes>>,
}

/// A piece length for `total` bytes: the smallest power of two from 16 KiB to 16 MiB that
/// gives at most 2048 pieces (so between 1024 and 2048 unless the size hits a bound).
pub fn default_piece_length(total: u64) -> u32 {
    let mut pl: u32 = BLOCK_SIZE;
    while pl < (16 << 20) && total.div_ceil(u64::from(pl)) > 2048 {
        pl *= 2;
    }
    pl
}

impl TorrentBuilder {
    /// A single-file torrent: the file is called `name`.
    pub fn single_file(name: &str, length: u64, opts: CreateOptions) -> Result<Self, CreateError> {
        let spec = FileSpec { path: vec![name.to_string()], length, executable: false, hidden: false };
        Self::new(name, vec![spec], true, opts)
    }

    /// A multi-file torrent rooted in a directory called `name`. `files` may come in any
    /// order; the torrent lists them sorted.
    ///
    /// A v2-only torrent of a directory that holds one file and no subdirectory reads back
    /// as a single-file torrent named after the file: BEP 52's `file tree` cannot tell the
    /// two apart (libtorrent reads it the same way). v1 and hybrid torrents keep the
    /// directory.
    pub fn directory(name: &str, files: Vec<FileSpec>, opts: CreateOptions) -> Result<Self, CreateError> {
        Self::new(name, files, false, opts)
    }

    fn new(name: &str, specs: Vec<FileSpec>, single: bool, opts: CreateOptions) -> Result<Self, CreateError> {
        check(name)?;
        for s in &specs {
            if s.path.is_empty() {
                return Err(CreateError::UnsafePath { component: String::new(), reason: "empty path" });
            }
            s.path.iter().try_for_each(|c| check(c))?;
        }
        if let Some(p) = find_conflict(specs.iter().map(|s| s.path.as_slice())) {
            return Err(CreateError::PathConflict(p));
        }
        let total = specs.iter().try_fold(0u64, |acc, s| acc.checked_add(s.length)).ok_or(CreateError::SizeOverflow)?;
        if total == 0 {
            return Err(CreateError::NoContent);
        }
        let piece_length = opts.piece_length.unwrap_or_else(|| default_piece_length(total));
        if !piece_length.is_power_of_two() || !(BLOCK_SIZE..=MAX_PIECE_LENGTH).contains(&piece_length) {
            return Err(CreateError::InvalidPieceLength {
                value: u64::from(piece_length),
                reason: "must be a power of two from 16 KiB to 128 MiB",
            });
        }
        let mut order: Vec<usize> = (0..specs.len()).collect();
        order.sort_by(|&a, &b| specs[a].path.cmp(&specs[b].path));
        // As libtorrent: no pad file when there is only one file, even inside a directory.
        let pad = specs.len() > 1 && opts.version != TorrentVersion::V1;
        let (files, sources, piece_space) = layout(name, &specs, &order, u64::from(piece_length), pad, single)?;
        let n = piece_space.div_ceil(u64::from(piece_length));
        if n > u64::from(MAX_PIECES) {
            return Err(CreateError::TooManyPieces(n));
        }
        let num_pieces = n as u32;
        Ok(TorrentBuilder {
            name: name.to_string(),
            single,
            piece_length,
            files,
            sources,
            piece_space,
            num_pieces,
            hashes: vec![None; num_pieces as usize],
            opts,
        })
    }

    /// The files in piece-space order, pad files included.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// For entry `index` of [`files`](Self::files): its index in the list given to
    /// [`directory`](Self::directory) (0 for a single file), `None` for a pad file.
    pub fn source_index(&self, index: usize) -> Option<usize> {
        self.sources.get(index).copied().flatten()
    }

    /// The piece length in use.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Number of pieces to hash.
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// Hashes piece `piece`, reading its bytes through `read(file, offset, buf)`, which
    /// must fill `buf` from byte `offset` of file `file` (an index into the caller's list).
    /// `buf` is scratch space, reused between calls. Pad bytes are zeros and not read.
    ///
    /// # Panics
    /// If `piece >= num_pieces()`.
    pub fn hash_piece<E>(
        &self,
        piece: u32,
        buf: &mut Vec<u8>,
        mut read: impl FnMut(usize, u64, &mut [u8]) -> Result<(), E>,
    ) -> Result<PieceHashes, E> {
        assert!(piece < self.num_pieces, "piece {piece} out of range");
        let pl = u64::from(self.piece_length);
        let start = u64::from(piece) * pl;
        let end = (start + pl).min(self.piece_space);
        buf.clear();
        buf.resize((end - start) as usize, 0);
        let first = self.files.partition_point(|f| f.end() <= start);
        for (f, src) in self.files[first..].iter().zip(&self.sources[first..]).take_while(|(f, _)| f.offset < end) {
            let Some(src) = src else { continue };
            let (a, b) = (f.offset.max(start), f.end().min(end));
            if a < b {
                read(*src, a - f.offset, &mut buf[(a - start) as usize..(b - start) as usize])?;
            }
        }
        let v1 = (self.opts.version != TorrentVersion::V2).then(|| Sha1::digest(&buf[..]).into());
        let v2 = (self.opts.version != TorrentVersion::V1).then(|| {
            // Files are piece-aligned here: the piece lies in one file, from its start.
            let f = &self.files[first];
            let data = &buf[..(f.end().min(end) - start) as usize];
            let blocks: Vec<[u8; 32]> = data.chunks(BLOCK_SIZE as usize).map(merkle::block_hash).collect();
            merkle::piece_root(&blocks, self.piece_length, f.length)
        });
        Ok(PieceHashes { v1, v2 })
    }

    /// Records the hashes of `piece` (from [`hash_piece`](Self::hash_piece), possibly on
    /// another thread).
    /// The hashes must have the parts the format needs (`v1` for v1 and hybrid, `v2` for
    /// v2 and hybrid).
    pub fn set_piece_hashes(&mut self, piece: u32, hashes: PieceHashes) -> Result<(), CreateError> {
        let needs_v1 = self.opts.version != TorrentVersion::V2;
        let needs_v2 = self.opts.version != TorrentVersion::V1;
        if (needs_v1 && hashes.v1.is_none()) || (needs_v2 && hashes.v2.is_none()) {
            return Err(CreateError::IncompleteHashes(piece));
        }
        let slot = self.hashes.get_mut(piece as usize).ok_or(CreateError::PieceOutOfRange(piece))?;
        *slot = Some(hashes);
        Ok(())
    }

    /// Hashes every piece in order with one buffer: each file is read front to back.
    pub fn hash_all<E>(&mut self, mut read: impl FnMut(usize, u64, &mut [u8]) -> Result<(), E>) -> Result<(), E> {
        let mut buf = Vec::with_capacity(self.piece_length as usize);
        for piece in 0..self.num_pieces {
            let h = self.hash_piece(piece, &mut buf, &mut read)?;
            self.hashes[piece as usize] = Some(h);
        }
        Ok(())
    }

    /// The .torrent file, once every piece is hashed.
    pub fn finish(&self) -> Result<Vec<u8>, CreateError> {
        let hashes: Vec<PieceHashes> = self
            .hashes
            .iter()
            .enumerate()
            .map(|(i, h)| h.ok_or(CreateError::MissingPiece(i as u32)))
            .collect::<Result<_, _>>()?;
        let v2 = self.opts.version != TorrentVersion::V1;
        let trees: Vec<Option<FileTree>> =
            self.files.iter().map(|f| if v2 { self.file_tree(f, &hashes) } else { None }).collect();
        let info = self.encode_info(&hashes, &trees);
        let layers: Vec<([u8; 32], &[[u8; 32]])> =
            trees.iter().flatten().filter(|t| t.layer.len() > 1).map(|t| (t.root, t.layer.as_slice())).collect();
        let o = &self.opts;
        let urls: usize = o.trackers.iter().map(Vec::len).sum();
        let header = Header {
            announce: o.trackers.iter().flatten().next().map(String::as_str),
            announce_list: if urls > 1 { &o.trackers } else { &[] },
            comment: o.comment.as_deref(),
            created_by: o.created_by.as_deref(),
            creation_date: o.creation_date,
            web_seeds: &o.web_seeds,
        };
        let mut out = Vec::with_capacity(info.len() + 1024);
        write_torrent(&mut out, &header, &info, layers);
        Ok(out)
    }

    /// The root and piece layer of a non-empty, non-pad file.
    fn file_tree(&self, f: &FileEntry, hashes: &[PieceHashes]) -> Option<FileTree> {
        if f.attr.pad || f.length == 0 {
            return None;
        }
        let pl = u64::from(self.piece_length);
        let first = (f.offset / pl) as usize;
        let count = f.length.div_ceil(pl) as usize;
        let layer: Vec<[u8; 32]> = hashes[first..first + count]
            .iter()
            .map(|h| h.v2.expect("v2 hashes are computed for v2 torrents"))
            .collect();
        let root = if count == 1 {
            layer[0]
        } else {
            let pad = merkle::pad_hash(merkle::piece_height(self.piece_length));
            merkle::root_from_layer(&layer, pad, (count as u64).next_power_of_two())
        };
        Some(FileTree { root, layer })
    }

    fn encode_info(&self, hashes: &[PieceHashes], trees: &[Option<FileTree>]) -> Vec<u8> {
        let (v1, v2) = (self.opts.version != TorrentVersion::V2, self.opts.version != TorrentVersion::V1);
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out);
        e.begin_dict();
        if self.single && v1 && !self.files[0].attr.is_empty() {
            e.key(b"attr").bytes(self.files[0].attr.to_string().as_bytes());
        }
        if v2 {
            e.key(b"file tree");
            let entries: Vec<(&[String], &FileEntry, [u8; 32])> = self
                .files
                .iter()
                .zip(trees)
                .filter(|(f, _)| !f.attr.pad)
                .map(|(f, t)| (self.tree_path(f), f, t.as_ref().map_or([0; 32], |t| t.root)))
                .collect();
            write_tree(&mut e, &entries, 0);
        }
        if v1 && !self.single {
            e.key(b"files").begin_list();
            for f in &self.files {
                e.begin_dict();
                if !f.attr.is_empty() {
                    e.key(b"attr").bytes(f.attr.to_string().as_bytes());
                }
                e.key(b"length").int(f.length as i64).key(b"path").begin_list();
                f.path[1..].iter().for_each(|c| {
                    e.bytes(c.as_bytes());
                });
                e.end().end();
            }
            e.end();
        }
        if v1 && self.single {
            e.key(b"length").int(self.files[0].length as i64);
        }
        if v2 {
            e.key(b"meta version").int(2);
        }
        e.key(b"name").bytes(self.name.as_bytes());
        e.key(b"piece length").int(i64::from(self.piece_length));
        if v1 {
            e.key(b"pieces").bytes_with(hashes.len() * 20, |o| {
                hashes.iter().for_each(|h| o.extend_from_slice(&h.v1.expect("v1 hashes are computed for v1 torrents")))
            });
        }
        if self.opts.private {
            e.key(b"private").int(1);
        }
        e.end();
        e.finish();
        out
    }

    /// A file's path inside the v2 `file tree`: below the root directory, or the name
    /// itself for a single file.
    fn tree_path<'a>(&self, f: &'a FileEntry) -> &'a [String] {
        if self.single {
            &f.path
        } else {
            &f.path[1..]
        }
    }
}

struct FileTree {
    root: [u8; 32],
    layer: Vec<[u8; 32]>,
}

fn check(c: &str) -> Result<(), CreateError> {
    check_component(c.as_bytes()).map_err(|reason| CreateError::UnsafePath { component: c.to_string(), reason })
}

/// Lays out `specs` in `order`, inserting pad files when `pad`. Returns the entries, their
/// source indices and the size of the piece space.
#[allow(clippy::type_complexity)]
fn layout(
    name: &str,
    specs: &[FileSpec],
    order: &[usize],
    pl: u64,
    pad: bool,
    single: bool,
) -> Result<(Vec<FileEntry>, Vec<Option<usize>>, u64), CreateError> {
    let (mut files, mut sources) = (Vec::new(), Vec::new());
    let mut pos = 0u64;
    for &i in order {
        let s = &specs[i];
        if i64::try_from(s.length).is_err() {
            return Err(CreateError::SizeOverflow);
        }
        let mut path = if single { Vec::new() } else { vec![name.to_string()] };
        path.extend(s.path.iter().cloned());
        let attr = FileAttr { executable: s.executable, hidden: s.hidden, ..FileAttr::default() };
        files.push(FileEntry { path, length: s.length, offset: pos, attr, pieces_root: None, symlink_target: None });
        sources.push(Some(i));
        pos = pos.checked_add(s.length).ok_or(CreateError::SizeOverflow)?;
        let gap = (pl - pos % pl) % pl;
        if pad && s.length > 0 && gap > 0 {
            let path = vec![name.to_string(), ".pad".to_string(), gap.to_string()];
            let attr = FileAttr { pad: true, ..FileAttr::default() };
            files.push(FileEntry { path, length: gap, offset: pos, attr, pieces_root: None, symlink_target: None });
            sources.push(None);
            pos = pos.checked_add(gap).ok_or(CreateError::SizeOverflow)?;
        }
    }
    Ok((files, sources, pos))
}

/// Writes the v2 `file tree` for `entries` (sorted, conflict-free, relative paths), at
/// nesting `depth`.
fn write_tree(e: &mut Encoder<'_>, entries: &[(&[String], &FileEntry, [u8; 32])], depth: usize) {
    e.begin_dict();
    let mut i = 0;
    while i < entries.len() {
        let key = &entries[i].0[depth];
        let group = entries[i..].iter().take_while(|x| &x.0[depth] == key).count();
        e.key(key.as_bytes());
        let (path, f, root) = entries[i];
        if path.len() == depth + 1 {
            e.begin_dict().key(b"").begin_dict();
            if !f.attr.is_empty() {
                e.key(b"attr").bytes(f.attr.to_string().as_bytes());
            }
            e.key(b"length").int(f.length as i64);
            if f.length > 0 {
                e.key(b"pieces root").bytes(&root);
            }
            e.end().end();
        } else {
            write_tree(e, &entries[i..i + group], depth + 1);
        }
        i += group;
    }
    e.end();
}

#[cfg(test)]
mod tests;
