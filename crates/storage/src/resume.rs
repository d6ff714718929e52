//! [`ResumeStore`]: which pieces of each torrent are verified on disk, in a redb file.

use std::path::{Path, PathBuf};

use redb::{Database, TableDefinition};

use crate::StorageError;

/// Key: the torrent's 20-byte id (v1 info-hash, or the truncated v2 one). Value: the
/// piece count (u32, big-endian) then the verified-piece bitfield (BEP 3 bit order).
const RESUME: TableDefinition<&[u8], &[u8]> = TableDefinition::new("resume");

/// The file, in the data directory, that holds resume data.
pub const RESUME_FILE: &str = "resume.redb";

/// Resume data for every torrent of a data directory. Writes are transactions that redb
/// makes durable on commit, so what [`load`](Self::load) returns after a crash is the last
/// [`save`](Self::save) that returned.
pub struct ResumeStore {
    db: Database,
    path: PathBuf,
}

impl ResumeStore {
    /// Opens (or creates) `dir/resume.redb`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let path = dir.join(RESUME_FILE);
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Io {
            action: "create directory",
            path: dir.to_path_buf(),
            source: e,
        })?;
        let db =
            Database::create(&path).map_err(|e| StorageError::Resume { path: path.clone(), message: e.to_string() })?;
        Ok(ResumeStore { db, path })
    }

    fn err(&self, e: impl std::fmt::Display) -> StorageError {
        StorageError::Resume { path: self.path.clone(), message: e.to_string() }
    }

    /// The verified pieces saved for `id`, as `(piece count, bitfield bytes)`.
    pub fn load(&self, id: &[u8; 20]) -> Result<Option<(u32, Vec<u8>)>, StorageError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(RESUME) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let Some(v) = table.get(&id[..]).map_err(|e| self.err(e))? else { return Ok(None) };
        let v = v.value();
        if v.len() < 4 {
            return Ok(None);
        }
        let count = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
        Ok(Some((count, v[4..].to_vec())))
    }

    /// Records the verified pieces of `id` (durable when this returns).
    pub fn save(&self, id: &[u8; 20], pieces: u32, bitfield: &[u8]) -> Result<(), StorageError> {
        let mut value = Vec::with_capacity(4 + bitfield.len());
        value.extend_from_slice(&pieces.to_be_bytes());
        value.extend_from_slice(bitfield);
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = tx.open_table(RESUME).map_err(|e| self.err(e))?;
            table.insert(&id[..], &value[..]).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forgets `id`.
    pub fn remove(&self, id: &[u8; 20]) -> Result<(), StorageError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = tx.open_table(RESUME).map_err(|e| self.err(e))?;
            table.remove(&id[..]).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = ResumeStore::open(dir.path()).expect("open");
            assert_eq!(s.load(&[1; 20]).expect("load"), None);
            s.save(&[1; 20], 10, &[0b1010_0000, 0b0100_0000]).expect("save");
        }
        let s = ResumeStore::open(dir.path()).expect("reopen");
        assert_eq!(s.load(&[1; 20]).expect("load"), Some((10, vec![0b1010_0000, 0b0100_0000])));
        s.remove(&[1; 20]).expect("remove");
        assert_eq!(s.load(&[1; 20]).expect("load"), None);
    }
}
