//! One round of batched republishing on an in-memory network, measured: shared by the tests
//! in `republish_batch.rs` and the 2,000-node figure in `benches/republish.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use mycel_dht::{Config, Event, ImmutableItem, Keypair, MutableItem, StoredItem};

use super::Net;

pub const ITEMS: usize = 200;
pub const PUBLISHER: usize = 5;
pub const K: usize = 8;

pub fn text(s: &str) -> Vec<u8> {
    format!("{}:{s}", s.len()).into_bytes()
}

/// Half immutable, half mutable with a 16-byte salt.
pub fn items() -> Vec<StoredItem> {
    let key = Keypair::from_seed([7; 32]);
    (0..ITEMS)
        .map(|i| {
            if i % 2 == 0 {
                StoredItem::Immutable(ImmutableItem::new(text(&format!("item {i}"))).expect("valid"))
            } else {
                let salt = format!("salt-{i:011}").into_bytes();
                StoredItem::Mutable(MutableItem::sign(&key, salt, 1, text(&format!("item {i}"))).expect("valid"))
            }
        })
        .collect()
}

/// For each item, how many of its true k closest nodes (the publisher excluded) hold it.
pub fn holders(net: &Net, items: &[StoredItem]) -> Vec<usize> {
    let held: Vec<BTreeSet<[u8; 20]>> =
        net.nodes.iter().map(|n| n.stored_items(net.now).iter().map(|(i, _)| i.target()).collect()).collect();
    let publisher = net.nodes[PUBLISHER].id();
    items
        .iter()
        .map(|item| {
            let t = item.target();
            let mut order: Vec<usize> = (0..net.nodes.len()).filter(|&i| net.nodes[i].id() != publisher).collect();
            order.sort_by_key(|&i| net.nodes[i].id().distance(&t));
            order.iter().take(K).filter(|&&i| held[i].contains(&t)).count()
        })
        .collect()
}

pub fn item_messages(net: &Net) -> (u64, u64) {
    let s = net.nodes[PUBLISHER].stats();
    (s.queries_out.get, s.queries_out.put)
}

/// Runs one round; `REPUBLISH_SEED=n` replaces the test's seed (to replay or explore).
pub fn round(nodes: usize, seed: u64, loss: f64) -> (f64, f64, f64, usize) {
    let seed = std::env::var("REPUBLISH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(seed);
    let interval = Duration::from_secs(600);
    let mut net = Net::new(nodes, seed, loss, Config { republish_interval: interval, ..Config::default() });
    // Published before the node joins: the first puts reach no one, so whatever the network
    // holds afterwards comes from the republish round.
    let items = items();
    for item in &items {
        net.nodes[PUBLISHER].publish(net.now, item.clone());
    }
    net.flush(PUBLISHER);
    net.bootstrap_all();
    assert!(holders(&net, &items).iter().all(|&h| h == 0), "nothing stored before the round");

    let until = net.start + interval - Duration::from_secs(1);
    net.run_for(until - net.now);
    let (get0, put0) = item_messages(&net);
    let datagrams0 = net.datagrams;
    net.run_for(Duration::from_secs(60));
    let (get1, put1) = item_messages(&net);
    let (gets, puts) = (get1 - get0, put1 - put0);
    let round_datagrams = net.datagrams - datagrams0;
    assert_eq!(net.nodes[PUBLISHER].stats().active_lookups, 0, "the round has ended");

    let h = holders(&net, &items);
    let pairs: usize = h.iter().sum();
    let worst = *h.iter().min().expect("items");

    // The same items' cost as single puts: a full lookup each (what a round did before).
    let mut single = Vec::new();
    for i in 0..20 {
        let item = ImmutableItem::new(text(&format!("single {seed} {i}"))).expect("valid");
        let q = net.nodes[PUBLISHER].put_immutable(net.now, item);
        net.flush(PUBLISHER);
        net.run_for(Duration::from_secs(15));
        let put = net
            .events
            .iter()
            .find_map(|(i, e)| match e {
                Event::ItemPutDone { query, result } if *i == PUBLISHER && *query == q => Some(result.clone()),
                _ => None,
            })
            .expect("put finished");
        single.push(put.lookup.messages_sent as f64);
    }
    let single_avg = single.iter().sum::<f64>() / single.len() as f64;
    let per_item = (gets + puts) as f64 / ITEMS as f64;
    let coverage = pairs as f64 / (ITEMS * K) as f64;
    eprintln!(
        "{nodes} nodes, {}% loss, {ITEMS} items, seed {seed}: round sent {gets} get + {puts} put = {:.1} per item \
         ({:.1} get, {:.1} put; {round_datagrams} datagrams network-wide); a single put sends {single_avg:.1}; \
         ratio {:.2}; {pairs} of {} (item, k-closest) pairs held ({:.1} %), worst item on {worst} of {K}",
        loss * 100.0,
        per_item,
        gets as f64 / ITEMS as f64,
        puts as f64 / ITEMS as f64,
        per_item / single_avg,
        ITEMS * K,
        coverage * 100.0,
    );
    (per_item, single_avg, coverage, worst)
}
