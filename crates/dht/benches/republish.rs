//! Batched republishing on a 2,000-node in-memory network (the tests run 300 nodes): messages
//! per item against a single put, and how many (item, k-closest) pairs hold the item. About 5
//! minutes in release. Run: `cargo bench -p mycel-dht --bench republish`.

#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let (per_item, single, coverage, worst) = common::republish::round(2000, 53, 0.0);
    println!(
        "2000 nodes: {per_item:.1} messages per item, {single:.1} per single put (ratio {:.2}); \
         {:.1} % of (item, k-closest) pairs held, worst item on {worst} of {}",
        per_item / single,
        coverage * 100.0,
        common::republish::K
    );
}
