//! [`FaultyStorage`]: a backend wrapper that fails or lies, for crash, disk-full and ban tests.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Storage, StorageError};

/// What a [`FaultyStorage`] does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Every write after the first `n` operations (reads, writes and syncs counted) fails,
    /// as on a full disk; reads keep working.
    FailWritesAfter(u64),
    /// Every operation after the first `n` fails, as on a dead drive.
    FailAllAfter(u64),
    /// Reads return the data with one byte flipped per call: a peer serving corrupt blocks.
    CorruptReads,
}

/// Wraps a [`Storage`] and injects faults (see [`FaultMode`]).
pub struct FaultyStorage<S> {
    inner: S,
    mode: FaultMode,
    ops: AtomicU64,
}

impl<S: Storage> FaultyStorage<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, mode: FaultMode) -> Self {
        FaultyStorage { inner, mode, ops: AtomicU64::new(0) }
    }

    /// Operations seen so far.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    fn check(&self, is_write: bool) -> Result<(), StorageError> {
        let n = self.ops.fetch_add(1, Ordering::Relaxed);
        match self.mode {
            FaultMode::FailWritesAfter(limit) if is_write && n >= limit => Err(StorageError::Injected(limit)),
            FaultMode::FailAllAfter(limit) if n >= limit => Err(StorageError::Injected(limit)),
            _ => Ok(()),
        }
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        self.check(false)?;
        self.inner.read(offset, buf)?;
        if self.mode == FaultMode::CorruptReads {
            if let Some(b) = buf.first_mut() {
                *b ^= 0xff;
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.check(true)?;
        self.inner.write(offset, data)
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.check(true)?;
        self.inner.sync()
    }

    fn dirty_bytes(&self) -> u64 {
        self.inner.dirty_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileMap, FileStorage, Segment};

    #[test]
    fn fails_after_n_and_corrupts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let map = FileMap::from_segments(vec![Segment { path: "f".into(), offset: 0, length: 8, pad: false }], 8)
            .expect("map");
        let s = FaultyStorage::new(FileStorage::new(dir.path(), map.clone()), FaultMode::FailWritesAfter(2));
        s.write(0, b"ab").expect("first");
        s.write(2, b"cd").expect("second");
        assert!(matches!(s.write(4, b"ef"), Err(StorageError::Injected(2))));
        let mut buf = [0u8; 4];
        s.read(0, &mut buf).expect("reads still work");
        assert_eq!(&buf, b"abcd");
        let c = FaultyStorage::new(FileStorage::new(dir.path(), map), FaultMode::CorruptReads);
        c.read(0, &mut buf).expect("read");
        assert_eq!(buf[0], b'a' ^ 0xff);
    }
}
