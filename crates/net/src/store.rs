//! The state file: node id and routing table in a redb database.
//!
//! Layout: table `meta` maps `"node_id"` to the 20 id bytes; table `dht_nodes` maps a node's
//! compact address (6 bytes for IPv4, 18 for IPv6: address then big-endian port) to its 20-byte
//! id. Every save replaces the whole routing table in one transaction, so a crash leaves either
//! the old or the new table. Table `dht_items` maps a BEP 44 item's target (20 bytes) to the
//! item and the wall-clock second of its last put (layout in [`encode_item`]); items are
//! written before their put is acknowledged (a batch of puts in one transaction, see
//! [`Store::write_batch`]), checked again (hash, signature) when loaded, and dropped from the
//! file once older than the item TTL. All methods block: call them from `spawn_blocking`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mycel_dht::{ImmutableItem, MutableItem, NodeId, NodeInfo, StoredItem};
use redb::{Database, ReadableTable, TableDefinition};

use crate::NetError;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DHT_NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dht_nodes");
const DHT_ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dht_items");
/// Items this node publishes itself (same layout as `dht_items`; the time field is unused).
const OWN_ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("own_items");
const NODE_ID_KEY: &str = "node_id";

/// A stored item with the wall-clock time (Unix seconds) of its last put.
pub(crate) type SavedItem = (StoredItem, u64);

/// What an earlier run left behind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Saved {
    /// The node id, if one was saved.
    pub id: Option<NodeId>,
    /// The saved routing table.
    pub nodes: Vec<NodeInfo>,
}

/// An open state file.
pub(crate) struct Store {
    db: Database,
    path: PathBuf,
    faults: StoreFaults,
}

/// Fault injection for tests: while [`StoreFaults::fail_item_writes`] is on, every write of
/// items (stored for others, or the node's own) fails as a disk error would, before touching
/// the file. Clones share the switch.
#[derive(Debug, Clone, Default)]
pub struct StoreFaults {
    fail_item_writes: Arc<AtomicBool>,
}

impl StoreFaults {
    /// Turns the failure of item writes on or off.
    pub fn fail_item_writes(&self, on: bool) {
        self.fail_item_writes.store(on, Ordering::SeqCst);
    }

    fn check(&self) -> std::io::Result<()> {
        if self.fail_item_writes.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected write failure"));
        }
        Ok(())
    }
}

/// A change to the node's own published items, applied in order within a batch.
#[derive(Debug, Clone)]
pub(crate) enum OwnItemOp {
    /// Add or replace.
    Save(StoredItem),
    /// Remove the item under this target.
    Remove([u8; 20]),
}

impl Store {
    /// Creates the directory if needed and opens (or creates) `dir/mycel.redb`.
    pub fn open(dir: &Path) -> Result<Self, NetError> {
        std::fs::create_dir_all(dir).map_err(|source| NetError::DataDir { path: dir.to_owned(), source })?;
        let path = dir.join(crate::STATE_FILE);
        let db =
            Database::create(&path).map_err(|e| NetError::Open { path: path.clone(), source: Box::new(e.into()) })?;
        Ok(Store { db, path, faults: StoreFaults::default() })
    }

    /// The same store with fault injection (tests).
    pub fn with_faults(mut self, faults: StoreFaults) -> Self {
        self.faults = faults;
        self
    }

    /// Writes a batch in one durable transaction: items stored for others (new or refreshed,
    /// in the order given: the last version of a target wins) and changes to the node's own
    /// items. Either all of it is on disk when this returns `Ok`, or none of it.
    pub fn write_batch(&self, items: &[StoredItem], own: &[OwnItemOp], unix_now: u64) -> Result<(), NetError> {
        let write_err =
            |e: redb::Error| NetError::Storage { action: "write", path: self.path.clone(), source: Box::new(e) };
        self.faults.check().map_err(|e| write_err(redb::Error::Io(e)))?;
        let txn = self.db.begin_write().map_err(|e| write_err(e.into()))?;
        if !items.is_empty() {
            let mut table = txn.open_table(DHT_ITEMS).map_err(|e| write_err(e.into()))?;
            for item in items {
                let value = encode_item(item, unix_now);
                table.insert(item.target().as_slice(), value.as_slice()).map_err(|e| write_err(e.into()))?;
            }
        }
        if !own.is_empty() {
            let mut table = txn.open_table(OWN_ITEMS).map_err(|e| write_err(e.into()))?;
            for op in own {
                match op {
                    OwnItemOp::Save(item) => {
                        let value = encode_item(item, 0);
                        table.insert(item.target().as_slice(), value.as_slice()).map_err(|e| write_err(e.into()))?;
                    }
                    OwnItemOp::Remove(target) => {
                        table.remove(target.as_slice()).map_err(|e| write_err(e.into()))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| write_err(e.into()))
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the saved id and routing table; a fresh file gives an empty [`Saved`].
    pub fn load(&self) -> Result<Saved, NetError> {
        let read_err =
            |e: redb::Error| NetError::Storage { action: "read", path: self.path.clone(), source: Box::new(e) };
        let txn = self.db.begin_read().map_err(|e| read_err(e.into()))?;
        let mut saved = Saved::default();
        match txn.open_table(META) {
            Ok(meta) => {
                if let Some(value) = meta.get(NODE_ID_KEY).map_err(|e| read_err(e.into()))? {
                    let id = NodeId::from_slice(value.value()).map_err(|_| self.corrupt("node_id is not 20 bytes"))?;
                    saved.id = Some(id);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(read_err(e.into())),
        }
        match txn.open_table(DHT_NODES) {
            Ok(table) => {
                for entry in table.iter().map_err(|e| read_err(e.into()))? {
                    let (key, value) = entry.map_err(|e| read_err(e.into()))?;
                    let addr = decode_addr(key.value())
                        .ok_or_else(|| self.corrupt("a dht_nodes key is not a compact address"))?;
                    let id = NodeId::from_slice(value.value())
                        .map_err(|_| self.corrupt("a dht_nodes id is not 20 bytes"))?;
                    saved.nodes.push(NodeInfo { id, addr });
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(read_err(e.into())),
        }
        Ok(saved)
    }

    /// Replaces the saved id and routing table.
    pub fn save(&self, id: NodeId, nodes: &[NodeInfo]) -> Result<(), NetError> {
        let write_err =
            |e: redb::Error| NetError::Storage { action: "write", path: self.path.clone(), source: Box::new(e) };
        let txn = self.db.begin_write().map_err(|e| write_err(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| write_err(e.into()))?;
            meta.insert(NODE_ID_KEY, id.as_bytes().as_slice()).map_err(|e| write_err(e.into()))?;
            // Dropping and recreating the table is the cheapest way to replace all of it.
            txn.delete_table(DHT_NODES).map_err(|e| write_err(e.into()))?;
            let mut table = txn.open_table(DHT_NODES).map_err(|e| write_err(e.into()))?;
            for node in nodes {
                let key = encode_addr(node.addr);
                table.insert(key.as_slice(), node.id.as_bytes().as_slice()).map_err(|e| write_err(e.into()))?;
            }
        }
        txn.commit().map_err(|e| write_err(e.into()))
    }

    /// Writes items (new or refreshed) in one durable transaction.
    #[cfg(test)]
    pub fn save_items(&self, items: &[StoredItem], unix_now: u64) -> Result<(), NetError> {
        self.write_batch(items, &[], unix_now)
    }

    /// Reads the saved items put within the last `ttl_secs`, deleting older ones from the file.
    /// An item that fails its checks (hash, signature, layout) makes the file corrupt.
    pub fn load_items(&self, unix_now: u64, ttl_secs: u64) -> Result<Vec<SavedItem>, NetError> {
        let read_err =
            |e: redb::Error| NetError::Storage { action: "read", path: self.path.clone(), source: Box::new(e) };
        let mut live = Vec::new();
        let mut expired = Vec::new();
        {
            let txn = self.db.begin_read().map_err(|e| read_err(e.into()))?;
            let table = match txn.open_table(DHT_ITEMS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(live),
                Err(e) => return Err(read_err(e.into())),
            };
            for entry in table.iter().map_err(|e| read_err(e.into()))? {
                let (key, value) = entry.map_err(|e| read_err(e.into()))?;
                let (item, at) =
                    decode_item(value.value()).ok_or_else(|| self.corrupt("a dht_items entry is invalid"))?;
                if item.target().as_slice() != key.value() {
                    return Err(self.corrupt("a dht_items entry is stored under the wrong target"));
                }
                if at.saturating_add(ttl_secs) <= unix_now {
                    expired.push(item.target());
                } else {
                    live.push((item, at));
                }
            }
        }
        if !expired.is_empty() {
            let write_err =
                |e: redb::Error| NetError::Storage { action: "write", path: self.path.clone(), source: Box::new(e) };
            let txn = self.db.begin_write().map_err(|e| write_err(e.into()))?;
            {
                let mut table = txn.open_table(DHT_ITEMS).map_err(|e| write_err(e.into()))?;
                for target in &expired {
                    table.remove(target.as_slice()).map_err(|e| write_err(e.into()))?;
                }
            }
            txn.commit().map_err(|e| write_err(e.into()))?;
        }
        Ok(live)
    }

    /// Adds an item to the node's own published items (or replaces it: a newer version of a
    /// mutable item has the same target).
    #[cfg(test)]
    pub fn save_own_item(&self, item: &StoredItem) -> Result<(), NetError> {
        self.write_batch(&[], &[OwnItemOp::Save(item.clone())], 0)
    }

    /// Removes an item from the node's own published items.
    #[cfg(test)]
    pub fn remove_own_item(&self, target: &[u8; 20]) -> Result<(), NetError> {
        self.write_batch(&[], &[OwnItemOp::Remove(*target)], 0)
    }

    /// The node's own published items, checked like stored ones.
    pub fn load_own_items(&self) -> Result<Vec<StoredItem>, NetError> {
        let read_err =
            |e: redb::Error| NetError::Storage { action: "read", path: self.path.clone(), source: Box::new(e) };
        let txn = self.db.begin_read().map_err(|e| read_err(e.into()))?;
        let table = match txn.open_table(OWN_ITEMS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(read_err(e.into())),
        };
        let mut items = Vec::new();
        for entry in table.iter().map_err(|e| read_err(e.into()))? {
            let (_, value) = entry.map_err(|e| read_err(e.into()))?;
            let (item, _) = decode_item(value.value()).ok_or_else(|| self.corrupt("an own_items entry is invalid"))?;
            items.push(item);
        }
        Ok(items)
    }

    fn corrupt(&self, reason: &str) -> NetError {
        NetError::Corrupt { path: self.path.clone(), reason: reason.to_owned() }
    }
}

/// An item on disk: kind (0 immutable, 1 mutable), the Unix second of its last put (8 bytes,
/// big-endian), then for an immutable item its value; for a mutable one the key (32), the
/// signature (64), the seq (8, big-endian), the salt length (1), the salt and the value.
fn encode_item(item: &StoredItem, unix: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1200);
    match item {
        StoredItem::Immutable(i) => {
            out.push(0);
            out.extend_from_slice(&unix.to_be_bytes());
            out.extend_from_slice(i.value());
        }
        StoredItem::Mutable(m) => {
            out.push(1);
            out.extend_from_slice(&unix.to_be_bytes());
            out.extend_from_slice(m.public_key());
            out.extend_from_slice(m.signature());
            out.extend_from_slice(&m.seq().to_be_bytes());
            // A valid salt is at most 64 bytes.
            out.push(m.salt().len() as u8);
            out.extend_from_slice(m.salt());
            out.extend_from_slice(m.value());
        }
    }
    out
}

/// The inverse of [`encode_item`], checking the item again (a flipped bit on disk is caught).
fn decode_item(bytes: &[u8]) -> Option<SavedItem> {
    let (&kind, rest) = bytes.split_first()?;
    let (unix, rest) = rest.split_first_chunk::<8>()?;
    let unix = u64::from_be_bytes(*unix);
    let item = match kind {
        0 => StoredItem::Immutable(ImmutableItem::new(rest.to_vec()).ok()?),
        1 => {
            let (k, rest) = rest.split_first_chunk::<32>()?;
            let (sig, rest) = rest.split_first_chunk::<64>()?;
            let (seq, rest) = rest.split_first_chunk::<8>()?;
            let (&salt_len, rest) = rest.split_first()?;
            let salt = rest.get(..usize::from(salt_len))?;
            let value = rest.get(usize::from(salt_len)..)?;
            let item = MutableItem::verify(*k, salt.to_vec(), i64::from_be_bytes(*seq), value.to_vec(), *sig).ok()?;
            StoredItem::Mutable(item)
        }
        _ => return None,
    };
    Some((item, unix))
}

/// Compact address: IPv4 (4 bytes) or IPv6 (16 bytes) followed by the big-endian port.
fn encode_addr(addr: SocketAddr) -> Vec<u8> {
    let mut out = match addr.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

fn decode_addr(bytes: &[u8]) -> Option<SocketAddr> {
    let (ip, port): (IpAddr, &[u8]) = match bytes.len() {
        6 => {
            let octets: [u8; 4] = bytes[..4].try_into().ok()?;
            (Ipv4Addr::from(octets).into(), &bytes[4..])
        }
        18 => {
            let octets: [u8; 16] = bytes[..16].try_into().ok()?;
            (Ipv6Addr::from(octets).into(), &bytes[16..])
        }
        _ => return None,
    };
    let port = u16::from_be_bytes(port.try_into().ok()?);
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8, addr: &str) -> NodeInfo {
        NodeInfo { id: NodeId([n; 20]), addr: addr.parse().expect("literal address") }
    }

    #[test]
    fn compact_addresses_round_trip() {
        for s in ["127.0.0.1:6881", "[::1]:65535", "10.1.2.3:1"] {
            let addr: SocketAddr = s.parse().expect("literal address");
            assert_eq!(decode_addr(&encode_addr(addr)), Some(addr));
        }
        assert_eq!(decode_addr(&[1, 2, 3]), None);
    }

    #[test]
    fn save_then_load_gives_the_same_state() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("fresh store");
        assert_eq!(store.load().expect("empty load"), Saved::default());
        let nodes = vec![node(1, "127.0.0.1:1000"), node(2, "[::1]:2000")];
        store.save(NodeId([9; 20]), &nodes).expect("save");
        store.save(NodeId([9; 20]), &nodes[..1]).expect("second save replaces the table");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        let saved = store.load().expect("load");
        assert_eq!(saved.id, Some(NodeId([9; 20])));
        assert_eq!(saved.nodes, nodes[..1]);
    }

    #[test]
    fn items_round_trip_expire_and_are_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("fresh store");
        assert!(store.load_items(1000, 7200).expect("no table yet").is_empty());
        let key = mycel_dht::Keypair::from_seed([3; 32]);
        let m = StoredItem::Mutable(MutableItem::sign(&key, b"salt".to_vec(), 9, b"3:abc".to_vec()).expect("valid"));
        let i = StoredItem::Immutable(ImmutableItem::new(b"i42e".to_vec()).expect("valid"));
        store.save_items(std::slice::from_ref(&m), 1000).expect("save");
        store.save_items(std::slice::from_ref(&i), 5000).expect("save");
        let mut loaded = store.load_items(5000, 7200).expect("load");
        loaded.sort_by_key(|(_, at)| *at);
        assert_eq!(loaded, vec![(m.clone(), 1000), (i.clone(), 5000)]);
        // Past the TTL the mutable one is dropped, from the file too.
        assert_eq!(store.load_items(8200, 7200).expect("load"), vec![(i.clone(), 5000)]);
        assert_eq!(store.load_items(5000, 7200).expect("load"), vec![(i.clone(), 5000)]);
        // A flipped bit in a stored value is a corrupt file, not a silently served bad item.
        let mut bad = encode_item(&m, 5000);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(decode_item(&bad), None);
        assert_eq!(decode_item(&encode_item(&m, 7)), Some((m.clone(), 7)));
        // Own items: added, replaced, removed.
        assert!(store.load_own_items().expect("no table yet").is_empty());
        store.save_own_item(&m).expect("save");
        store.save_own_item(&i).expect("save");
        store.save_own_item(&m).expect("same target again");
        assert_eq!(store.load_own_items().expect("load").len(), 2);
        store.remove_own_item(&i.target()).expect("remove");
        assert_eq!(store.load_own_items().expect("load"), vec![m]);
    }

    #[test]
    fn a_foreign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(crate::STATE_FILE), b"definitely not a redb file").expect("write");
        let err = Store::open(dir.path()).err().expect("foreign file must not open");
        assert!(matches!(err, NetError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains(crate::STATE_FILE), "{err}");
    }
}
