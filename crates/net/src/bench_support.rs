//! What the benches (`benches/`) need of crate-private types. Not an API: hidden, unstable.

use std::path::Path;

use mycel_dht::StoredItem;

use crate::store::Store;
use crate::NetError;

/// Opens (or creates) the state file in `dir` and writes `items` into its item table the way
/// the driver does, `batch` items per durable transaction, as put at `unix_now`. Returns the
/// file's size in bytes and how many items read back.
pub fn write_items(dir: &Path, items: &[StoredItem], batch: usize, unix_now: u64) -> Result<(u64, usize), NetError> {
    let store = Store::open(dir)?;
    for chunk in items.chunks(batch.max(1)) {
        store.write_batch(chunk, &[], unix_now)?;
    }
    let read_back = store.load_items(unix_now, 2 * 3600)?.len();
    let bytes = std::fs::metadata(store.path())
        .map_err(|source| NetError::DataDir { path: store.path().to_owned(), source })?
        .len();
    Ok((bytes, read_back))
}
