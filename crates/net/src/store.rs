//! The state file: node id and routing table in a redb database.
//!
//! Layout: table `meta` maps `"node_id"` to the 20 id bytes; table `dht_nodes` maps a node's
//! compact address (6 bytes for IPv4, 18 for IPv6: address then big-endian port) to its 20-byte
//! id. Every save replaces the whole routing table in one transaction, so a crash leaves either
//! the old or the new table. All methods block: call them from `spawn_blocking`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use mycel_dht::{NodeId, NodeInfo};
use redb::{Database, ReadableTable, TableDefinition};

use crate::NetError;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DHT_NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dht_nodes");
const NODE_ID_KEY: &str = "node_id";

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
}

impl Store {
    /// Creates the directory if needed and opens (or creates) `dir/mycel.redb`.
    pub fn open(dir: &Path) -> Result<Self, NetError> {
        std::fs::create_dir_all(dir).map_err(|source| NetError::DataDir { path: dir.to_owned(), source })?;
        let path = dir.join(crate::STATE_FILE);
        let db =
            Database::create(&path).map_err(|e| NetError::Open { path: path.clone(), source: Box::new(e.into()) })?;
        Ok(Store { db, path })
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

    fn corrupt(&self, reason: &str) -> NetError {
        NetError::Corrupt { path: self.path.clone(), reason: reason.to_owned() }
    }
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
    fn a_foreign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(crate::STATE_FILE), b"definitely not a redb file").expect("write");
        let err = Store::open(dir.path()).err().expect("foreign file must not open");
        assert!(matches!(err, NetError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains(crate::STATE_FILE), "{err}");
    }
}
