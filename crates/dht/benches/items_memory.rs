//! Figures for BENCHMARKS.md: heap bytes per BEP 44 item stored for others, measured with a
//! counting global allocator (live heap bytes, not RSS), and what that gives per GiB.
//! Run: `cargo bench -p mycel-dht --bench items_memory`.

#![allow(clippy::disallowed_methods)] // a benchmark: reads the clock once for the origin
#![allow(unsafe_code)] // common/alloc.rs: a counting global allocator needs `unsafe impl GlobalAlloc`
#![allow(missing_docs)]

use std::time::Instant;

use mycel_dht::{Config, Keypair, Node, NodeId};

#[path = "common/alloc.rs"]
mod alloc;
#[path = "common/items.rs"]
mod items;

use items::{max_immutable, max_mutable, small_immutable, small_mutable};

const ITEMS: usize = 100_000;
const GIB: f64 = (1u64 << 30) as f64;

struct Kind {
    name: &'static str,
    make: items::Make,
}

fn main() {
    let now = Instant::now();
    let key = Keypair::from_seed([3; 32]);
    let kinds = [
        Kind { name: "mutable, 100-byte value, 16-byte salt", make: small_mutable },
        Kind { name: "immutable, 100-byte value", make: small_immutable },
        Kind { name: "immutable, 1000-byte value (the maximum)", make: max_immutable },
        Kind { name: "mutable, 1000-byte value, 64-byte salt (the maximum)", make: max_mutable },
    ];
    let defaults = Config::default();
    println!("{ITEMS} items per row, each kind in a fresh node with the caps raised:");
    println!();
    println!("| item | heap bytes per item | accounted (`max_item_bytes`) per item | items per GiB of heap | heap at the default caps |");
    println!("|---|---|---|---|---|");
    for kind in &kinds {
        // The caps are raised so that all items stay; the default caps are discussed below.
        let cfg = Config { max_items: usize::MAX, max_item_bytes: usize::MAX, ..Config::default() };
        let mut node = Node::new(cfg, NodeId([1; 20]), [1; 32], now);
        let before = alloc::live();
        for i in 0..ITEMS {
            node.restore_item(now, (kind.make)(&key, i));
        }
        let heap = alloc::live() - before;
        let s = node.stats();
        assert_eq!(s.stored_items, ITEMS);
        let per_item = heap as f64 / ITEMS as f64;
        let accounted = s.stored_item_bytes as f64 / ITEMS as f64;
        // Which default cap binds first: the count or the accounted bytes.
        let at_defaults = defaults.max_items.min((defaults.max_item_bytes as f64 / accounted) as usize);
        println!(
            "| {} | {per_item:.0} | {accounted:.0} | {:.2} M | {at_defaults} items: {:.1} MiB |",
            kind.name,
            GIB / per_item / 1e6,
            at_defaults as f64 * per_item / (1 << 20) as f64,
        );
        drop(node);
    }
    println!();
    println!(
        "default caps: max_items = {}, max_item_bytes = {} MiB",
        defaults.max_items,
        defaults.max_item_bytes >> 20
    );
}
