//! [`FileStorage`]: the real backend, positioned I/O on files under an output directory.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{FileMap, Storage, StorageError};

/// Descriptors kept open at once per torrent.
const FD_CACHE: usize = 32;

struct CachedFd {
    segment: usize,
    file: Arc<File>,
    writable: bool,
    last_use: u64,
}

#[derive(Default)]
struct FdCache {
    fds: Vec<CachedFd>,
    clock: u64,
}

/// Files under `root`, read and written with `pread`/`pwrite` through a small cache of
/// open descriptors (files are opened on first use, so a torrent of 100 000 files does
/// not hold 100 000 descriptors). A file is created and preallocated to its full length
/// (`set_len`) the first time it is opened for writing, or by
/// [`create_files`](Self::create_files).
pub struct FileStorage {
    root: PathBuf,
    map: FileMap,
    cache: Mutex<FdCache>,
    /// Segments written since the last sync.
    dirty: Mutex<BTreeSet<usize>>,
    dirty_bytes: AtomicU64,
}

impl FileStorage {
    /// Storage for the files of `map` under `root` (nothing is opened yet).
    pub fn new(root: impl Into<PathBuf>, map: FileMap) -> Self {
        FileStorage {
            root: root.into(),
            map,
            cache: Mutex::new(FdCache::default()),
            dirty: Mutex::new(BTreeSet::new()),
            dirty_bytes: AtomicU64::new(0),
        }
    }

    /// The file map.
    pub fn map(&self) -> &FileMap {
        &self.map
    }

    /// Creates every (non-pad) file with its full length, and the directories above it.
    pub fn create_files(&self) -> Result<(), StorageError> {
        self.create_files_where(|_| true)
    }

    /// [`create_files`](Self::create_files) for the files `keep` accepts (by index in the
    /// map); the others are created only if a write reaches them.
    pub fn create_files_where(&self, keep: impl Fn(usize) -> bool) -> Result<(), StorageError> {
        for i in 0..self.map.segments().len() {
            if !self.map.segments()[i].pad && keep(i) {
                self.open(i, true)?;
            }
        }
        Ok(())
    }

    /// Whether any (non-pad, non-empty) file already exists with some data in it.
    pub fn any_file_exists(&self) -> bool {
        self.map
            .segments()
            .iter()
            .filter(|s| !s.pad && s.length > 0)
            .any(|s| std::fs::metadata(self.root.join(&s.path)).is_ok_and(|m| m.len() > 0))
    }

    /// The full path of segment `i`.
    pub fn path_of(&self, i: usize) -> PathBuf {
        self.root.join(&self.map.segments()[i].path)
    }

    fn lock(&self) -> MutexGuard<'_, FdCache> {
        // A poisoned cache only means another thread panicked mid-lookup; its entries are
        // still valid descriptors.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self, segment: usize, write: bool) -> Result<Arc<File>, StorageError> {
        {
            let mut c = self.lock();
            c.clock += 1;
            let now = c.clock;
            if let Some(fd) = c.fds.iter_mut().find(|f| f.segment == segment && (f.writable || !write)) {
                fd.last_use = now;
                return Ok(fd.file.clone());
            }
        }
        let (file, writable) = self.open_file(segment, write)?;
        let file = Arc::new(file);
        let mut c = self.lock();
        c.fds.retain(|f| f.segment != segment);
        if c.fds.len() >= FD_CACHE {
            if let Some(oldest) = c.fds.iter().enumerate().min_by_key(|(_, f)| f.last_use).map(|(i, _)| i) {
                c.fds.swap_remove(oldest);
            }
        }
        let last_use = c.clock;
        c.fds.push(CachedFd { segment, file: file.clone(), writable, last_use });
        Ok(file)
    }

    fn open_file(&self, segment: usize, write: bool) -> Result<(File, bool), StorageError> {
        let seg = &self.map.segments()[segment];
        let path = self.root.join(&seg.path);
        let io = |action, source| StorageError::Io { action, path: path.clone(), source };
        if !write {
            // Seeding from read-only files works; a file we may later write is opened rw.
            if let Ok(f) = OpenOptions::new().read(true).write(true).open(&path) {
                return Ok((f, true));
            }
            return OpenOptions::new().read(true).open(&path).map(|f| (f, false)).map_err(|e| io("open", e));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::Io {
                action: "create directory",
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("create", e))?;
        let len = f.metadata().map_err(|e| io("stat", e))?.len();
        if len != seg.length {
            f.set_len(seg.length).map_err(|e| io("preallocate", e))?;
        }
        Ok((f, true))
    }

    fn io_err(&self, segment: usize, action: &'static str, source: std::io::Error) -> StorageError {
        StorageError::Io { action, path: self.path_of(segment), source }
    }
}

impl Storage for FileStorage {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        for span in self.map.spans(offset, buf.len())? {
            let part = &mut buf[span.start..span.end];
            match span.segment {
                None => part.fill(0),
                Some(i) => {
                    let f = self.open(i, false)?;
                    f.read_exact_at(part, span.file_offset).map_err(|e| self.io_err(i, "read", e))?;
                }
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        for span in self.map.spans(offset, data.len())? {
            let Some(i) = span.segment else { continue };
            let f = self.open(i, true)?;
            f.write_all_at(&data[span.start..span.end], span.file_offset).map_err(|e| self.io_err(i, "write", e))?;
            self.dirty.lock().unwrap_or_else(|p| p.into_inner()).insert(i);
        }
        self.dirty_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn write_vectored(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StorageError> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        for span in self.map.spans(offset, total)? {
            let Some(i) = span.segment else { continue };
            let f = self.open(i, true)?;
            let mut parts = slices_in(bufs, span.start, span.end);
            let mut at = span.file_offset;
            while !parts.is_empty() {
                let iov: Vec<IoSlice<'_>> = parts.iter().take(IOV_MAX).map(|p| IoSlice::new(p)).collect();
                let off =
                    i64::try_from(at).map_err(|_| StorageError::OutOfRange { offset, len: total as u64, size: 0 })?;
                let n = match nix::sys::uio::pwritev(&*f, &iov, off) {
                    Ok(0) => return Err(self.io_err(i, "write", std::io::ErrorKind::WriteZero.into())),
                    Ok(n) => n,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(self.io_err(i, "write", e.into())),
                };
                at += n as u64;
                advance(&mut parts, n);
            }
            self.dirty.lock().unwrap_or_else(|p| p.into_inner()).insert(i);
        }
        self.dirty_bytes.fetch_add(total as u64, Ordering::Relaxed);
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        let dirty: Vec<usize> =
            std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect();
        let before = self.dirty_bytes.swap(0, Ordering::Relaxed);
        for (n, &i) in dirty.iter().enumerate() {
            let res = self.open(i, true).and_then(|f| f.sync_data().map_err(|e| self.io_err(i, "sync", e)));
            if let Err(e) = res {
                // Not durable: keep them dirty so a later sync retries.
                let mut d = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
                d.extend(&dirty[n..]);
                self.dirty_bytes.fetch_add(before, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    }

    fn dirty_bytes(&self) -> u64 {
        self.dirty_bytes.load(Ordering::Relaxed)
    }
}

/// Most buffers given to one `pwritev` (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// The parts of `bufs` (taken back to back) covering bytes `start..end`.
fn slices_in<'a>(bufs: &[&'a [u8]], start: usize, end: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    for b in bufs {
        let (s, e) = (pos, pos + b.len());
        pos = e;
        let (lo, hi) = (start.max(s), end.min(e));
        if lo < hi {
            out.push(&b[lo - s..hi - s]);
        }
    }
    out
}

/// Drops the first `n` bytes of `parts`.
fn advance(parts: &mut Vec<&[u8]>, mut n: usize) {
    let mut done = 0;
    while done < parts.len() && n >= parts[done].len() {
        n -= parts[done].len();
        done += 1;
    }
    parts.drain(..done);
    if let Some(first) = parts.first_mut() {
        *first = &first[n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Segment;

    /// Files `t/a` (5 bytes) and `t/b` (4 bytes) with a 3-byte pad file between them.
    fn two_files_and_a_pad() -> (tempfile::TempDir, FileStorage) {
        let dir = tempfile::tempdir().expect("tempdir");
        let segs = vec![
            Segment { path: "t/a".into(), offset: 0, length: 5, pad: false },
            Segment { path: "t/.pad/3".into(), offset: 5, length: 3, pad: true },
            Segment { path: "t/b".into(), offset: 8, length: 4, pad: false },
        ];
        let s = FileStorage::new(dir.path(), FileMap::from_segments(segs, 12).expect("map"));
        (dir, s)
    }

    #[test]
    fn writes_land_in_files_and_pads_stay_off_disk() {
        let (dir, s) = two_files_and_a_pad();
        s.write(0, b"hello\0\0\0worl").expect("write");
        assert_eq!(s.dirty_bytes(), 12);
        s.sync().expect("sync");
        assert_eq!(s.dirty_bytes(), 0);
        assert_eq!(std::fs::read(dir.path().join("t/a")).expect("a"), b"hello");
        assert_eq!(std::fs::read(dir.path().join("t/b")).expect("b"), b"worl");
        assert!(!dir.path().join("t/.pad").exists());
        let mut buf = [9u8; 12];
        s.read(0, &mut buf).expect("read");
        assert_eq!(&buf, b"hello\0\0\0worl");
    }

    #[test]
    fn vectored_writes_cross_files_and_pads() {
        let (dir, s) = two_files_and_a_pad();
        s.write_vectored(1, &[b"el", b"lo\0", b"\0\0w", b"or"]).expect("write");
        assert_eq!(s.dirty_bytes(), 10);
        assert_eq!(std::fs::read(dir.path().join("t/a")).expect("a"), b"\0ello");
        assert_eq!(std::fs::read(dir.path().join("t/b")).expect("b"), b"wor\0");
        assert!(!dir.path().join("t/.pad").exists());
    }
}
