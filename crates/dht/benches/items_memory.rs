//! Figures for BENCHMARKS.md: heap bytes per BEP 44 item stored for others, measured with a
//! counting global allocator (live heap bytes, not RSS), and what that gives per GiB.
//! Run: `cargo bench -p mycel-dht --bench items_memory`.

#![allow(clippy::disallowed_methods)] // a benchmark: reads the clock once for the origin
#![allow(unsafe_code)] // a counting global allocator needs `unsafe impl GlobalAlloc`
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mycel_dht::{Config, ImmutableItem, Keypair, MutableItem, Node, NodeId, StoredItem};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
}

#[global_allocator]
static A: Counting = Counting;

const ITEMS: usize = 100_000;
const GIB: f64 = (1u64 << 30) as f64;

/// A bencoded string of exactly `len` bytes (`len` >= 3).
fn value(len: usize, i: usize) -> Vec<u8> {
    let mut body = len - 2;
    while body + body.to_string().len() + 1 > len {
        body -= 1;
    }
    let mut v = format!("{body}:").into_bytes();
    let tag = format!("{i:08}");
    v.extend(tag.bytes().cycle().take(body));
    assert_eq!(v.len(), len);
    v
}

struct Kind {
    name: &'static str,
    make: fn(&Keypair, usize) -> StoredItem,
}

fn small_mutable(key: &Keypair, i: usize) -> StoredItem {
    let salt = format!("salt{i:012}").into_bytes();
    StoredItem::Mutable(MutableItem::sign(key, salt, 1, value(100, i)).expect("valid"))
}

fn small_immutable(_: &Keypair, i: usize) -> StoredItem {
    StoredItem::Immutable(ImmutableItem::new(value(100, i)).expect("valid"))
}

fn max_immutable(_: &Keypair, i: usize) -> StoredItem {
    StoredItem::Immutable(ImmutableItem::new(value(1000, i)).expect("valid"))
}

fn max_mutable(key: &Keypair, i: usize) -> StoredItem {
    let salt = format!("{i:064}").into_bytes();
    StoredItem::Mutable(MutableItem::sign(key, salt, 1, value(1000, i)).expect("valid"))
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
        let before = LIVE.load(Ordering::Relaxed);
        for i in 0..ITEMS {
            node.restore_item(now, (kind.make)(&key, i));
        }
        let heap = LIVE.load(Ordering::Relaxed) - before;
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
