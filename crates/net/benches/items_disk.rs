//! Figures for BENCHMARKS.md: bytes on disk per BEP 44 item in the node's redb state file
//! (table `dht_items`), written the way the driver writes them, and what that gives per GiB.
//! Run: `cargo bench -p mycel-net --bench items_disk`.

#![allow(missing_docs)]
// A storage benchmark: real files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, clippy::disallowed_types)]

use std::time::Instant;

use items::{max_immutable, max_mutable, small_mutable, Make};
use mycel_dht::{Keypair, StoredItem};
use mycel_net::bench_support::write_items;

#[path = "../../dht/benches/common/items.rs"]
mod items;

const GIB: f64 = (1u64 << 30) as f64;
const UNIX_NOW: u64 = 1_800_000_000;

fn main() {
    let key = Keypair::from_seed([3; 32]);
    let kinds: [(&str, Make); 3] = [
        ("mutable, 100-byte value, 16-byte salt", small_mutable),
        ("immutable, 1000-byte value (the maximum)", max_immutable),
        ("mutable, 1000-byte value, 64-byte salt (the maximum)", max_mutable),
    ];
    // (items, items per transaction): bulk writes, and small batches as puts arrive one by one.
    let runs = [(100_000usize, 1000usize), (10_000, 10)];
    println!("| item | items | per transaction | file bytes | bytes per item | items per GiB of disk | write time |");
    println!("|---|---|---|---|---|---|---|");
    for (name, make) in kinds {
        for (n, batch) in runs {
            let items: Vec<StoredItem> = (0..n).map(|i| make(&key, i)).collect();
            let dir = tempfile::tempdir().unwrap();
            let started = Instant::now();
            let (bytes, read_back) = write_items(dir.path(), &items, batch, UNIX_NOW).unwrap();
            let took = started.elapsed();
            assert_eq!(read_back, n);
            let per_item = bytes as f64 / n as f64;
            println!(
                "| {name} | {n} | {batch} | {bytes} | {per_item:.0} | {:.2} M | {:.1} s |",
                GIB / per_item / 1e6,
                took.as_secs_f64()
            );
        }
    }
}
