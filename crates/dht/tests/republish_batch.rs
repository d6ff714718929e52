//! Batched republishing (issue 5) on an in-memory network of real nodes: after one round, each
//! published item is held by its true k closest nodes, for fewer messages than a put per item.
//! Figures: `cargo test --release -p mycel-dht --test republish_batch -- --nocapture`.

mod common;

use std::time::Duration;

use common::republish::{items, round, ITEMS, K};
use common::Net;
use mycel_dht::Config;

#[test]
fn a_round_puts_every_item_on_its_closest_nodes_for_less_than_a_lookup_each() {
    let (per_item, single, coverage, worst) = round(300, 51, 0.0);
    assert!(coverage >= 0.97, "coverage {coverage}");
    assert!(worst >= 6, "an item is held by only {worst} of its {K} closest");
    // The floor is 2k (a token `get` and a `put` per closest node); a single put adds the search.
    assert!(per_item < 2.0 * K as f64 + 3.0, "{per_item} messages per item");
    assert!(per_item < single * 0.95, "{per_item} messages per item, {single} for a single put");
}

#[test]
fn a_round_survives_loss() {
    let (per_item, _, coverage, worst) = round(300, 52, 0.02);
    assert!(coverage >= 0.9, "coverage {coverage}");
    assert!(worst >= 4, "an item is held by only {worst} of its {K} closest");
    assert!(per_item < 2.0 * K as f64 + 6.0, "{per_item} messages per item");
}

/// A node that knows no one: every lookup of the round ends as it starts, and the round with it
/// (no deep recursion, no entry left behind).
#[test]
fn a_round_with_no_one_to_ask_ends_at_once() {
    let mut net = Net::new(1, 54, 0.0, Config::default());
    for item in items() {
        net.nodes[0].publish(net.now, item);
    }
    net.flush(0);
    net.run_for(Duration::from_secs(3600 + 60));
    let s = net.nodes[0].stats();
    assert_eq!(s.active_lookups, 0);
    assert_eq!(s.queries_out.get + s.queries_out.put, 0);
    assert_eq!(net.nodes[0].published().len(), ITEMS);
}
