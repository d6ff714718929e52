//! Small simulated networks (a few hundred nodes) for CI: determinism, one scenario per
//! protocol, and the direction of the effects of NAT, churn and Sybils. Every assertion
//! message carries the seed, so a failure can be replayed with `mycel sim --seed`.

use std::time::Duration;

use mycel_sim::{Attack, Churn, Protocol, Scenario, Sim, Summary, Workload};

fn small(nodes: usize, lookups: usize, seed: u64, protocol: Protocol) -> Scenario {
    let mut sc = Scenario::new(nodes, lookups, seed, protocol);
    sc.join = Duration::from_secs(10);
    sc.settle = Duration::from_secs(30);
    sc.window = Duration::from_secs(30);
    sc
}

fn run(sc: Scenario) -> Summary {
    Sim::new(sc).expect("valid scenario").run(&mut |_| {}).summary
}

#[test]
fn same_seed_same_trace() {
    let mk = |seed| {
        let mut sc = small(200, 100, seed, Protocol::Kademlia);
        sc.churn = Some(churn(120.0));
        sc.net.loss_burst = 4.0;
        run(sc)
    };
    let (a, b, c) = (mk(5), mk(5), mk(6));
    assert_eq!(a.trace_hash, b.trace_hash, "seed 5 replayed differently");
    assert_eq!((a.events, a.datagrams_total, a.success_rate), (b.events, b.datagrams_total, b.success_rate));
    assert_ne!(a.trace_hash, c.trace_hash, "seeds 5 and 6 gave the same trace");
}

fn churn(median_s: f64) -> Churn {
    Churn {
        session: mycel_sim::dist::Weibull::from_median(median_s, 0.5).expect("valid"),
        downtime: mycel_sim::dist::Weibull::from_median(median_s, 0.5).expect("valid"),
    }
}

#[test]
fn kademlia_finds_the_closest() {
    let seed = 11;
    let s = run(small(300, 200, seed, Protocol::Kademlia));
    assert!(s.lookups >= 190, "seed {seed}: {} lookups judged", s.lookups);
    assert!(s.success_rate >= 0.95, "seed {seed}: success {}", s.success_rate);
    assert!(s.closest_k_fraction >= 0.9, "seed {seed}: closest-k {}", s.closest_k_fraction);
    assert!((1.0..=5.0).contains(&s.hops_p50), "seed {seed}: hops p50 {}", s.hops_p50);
    assert!(s.latency_ms_p50 > 50.0 && s.latency_ms_p99 < 20_000.0, "seed {seed}: latency {s:?}");
}

#[test]
fn flooding_finds_items_at_a_high_price() {
    let seed = 12;
    let s = run(small(300, 50, seed, Protocol::Flood));
    assert!(s.success_rate >= 0.9, "seed {seed}: success {}", s.success_rate);
    assert!((1.0..=4.0).contains(&s.hops_p50), "seed {seed}: hops p50 {} with TTL 4", s.hops_p50);
    assert!(s.messages_per_lookup > 300.0, "seed {seed}: a flood reaches most nodes: {} msgs", s.messages_per_lookup);
    let mut sc = small(300, 50, seed, Protocol::Flood);
    sc.flood.ttl = 1;
    let shallow = run(sc);
    assert!(
        shallow.success_rate < s.success_rate,
        "seed {seed}: TTL 1 ({}) vs TTL 4 ({})",
        shallow.success_rate,
        s.success_rate
    );
}

#[test]
fn chord_routes_in_logarithmic_hops() {
    let seed = 13;
    let s = run(small(300, 200, seed, Protocol::Chord));
    assert!(s.success_rate >= 0.95, "seed {seed}: success {}", s.success_rate);
    assert!((2.0..=8.0).contains(&s.hops_p50), "seed {seed}: hops p50 {}", s.hops_p50);
}

#[test]
fn zero_hop_answers_in_one_hop() {
    let seed = 14;
    let s = run(small(300, 200, seed, Protocol::Zerohop));
    assert!(s.success_rate >= 0.97, "seed {seed}: success {}", s.success_rate);
    assert_eq!(s.hops_p50, 1.0, "seed {seed}");
    assert!(s.messages_per_lookup < 2.5, "seed {seed}: {} msgs", s.messages_per_lookup);
}

#[test]
fn unreachable_nodes_cost_timeouts() {
    let seed = 15;
    let mut open = small(300, 150, seed, Protocol::Kademlia);
    open.net.nat = 0.0;
    let mut natted = open.clone();
    natted.net.nat = 0.4;
    let (a, b) = (run(open), run(natted));
    // Unreachable table entries cost unanswered requests: each is resent once after its soft
    // timeout, so messages per lookup grow (hard timeouts mostly fire after the lookup ended).
    assert!(
        b.messages_per_lookup > a.messages_per_lookup + 1.0,
        "seed {seed}: messages {} vs {}",
        a.messages_per_lookup,
        b.messages_per_lookup
    );
    assert!(b.latency_ms_p50 > a.latency_ms_p50, "seed {seed}: p50 {} vs {}", a.latency_ms_p50, b.latency_ms_p50);
}

#[test]
fn churn_hurts_and_rejoining_nodes_recover() {
    let seed = 16;
    let plain = run(small(300, 200, seed, Protocol::Kademlia));
    let mut sc = small(300, 200, seed, Protocol::Kademlia);
    sc.churn = Some(churn(60.0));
    let churned = run(sc);
    assert!(
        churned.health_end.live_fraction < plain.health_end.live_fraction,
        "seed {seed}: live contacts {} vs {}",
        churned.health_end.live_fraction,
        plain.health_end.live_fraction
    );
    assert!(
        churned.timeouts_per_lookup > plain.timeouts_per_lookup,
        "seed {seed}: timeouts {} vs {}",
        churned.timeouts_per_lookup,
        plain.timeouts_per_lookup
    );
    assert!(churned.success_rate >= 0.7, "seed {seed}: success under churn {}", churned.success_rate);
}

#[test]
fn sybils_hurt_lookups() {
    let seed = 17;
    let base = run(small(300, 150, seed, Protocol::Kademlia));
    let attacked = |attack| {
        let mut sc = small(300, 150, seed, Protocol::Kademlia);
        sc.sybil = 0.2;
        sc.attack = attack;
        run(sc)
    };
    let eclipse = attacked(Attack::Eclipse);
    assert_eq!(eclipse.sybils, 60);
    assert!(
        eclipse.success_rate < base.success_rate - 0.2,
        "seed {seed}: eclipse {} vs none {}",
        eclipse.success_rate,
        base.success_rate
    );
    let drop = attacked(Attack::Drop);
    assert!(
        drop.timeouts_per_lookup > base.timeouts_per_lookup,
        "seed {seed}: timeouts with droppers {} vs none {}",
        drop.timeouts_per_lookup,
        base.timeouts_per_lookup
    );
    let mut sc = small(300, 150, seed, Protocol::Kademlia);
    sc.sybil = 0.2;
    sc.attack = Attack::Fake;
    let fake = run(sc);
    assert!(fake.fake_peer_rate > 0.5, "seed {seed}: fake peers reached {} of lookups", fake.fake_peer_rate);
}

#[test]
fn disjoint_paths_resist_an_eclipse() {
    let seed = 18;
    let mk = |d| {
        let mut sc = small(300, 150, seed, Protocol::Kademlia);
        sc.sybil = 0.2;
        sc.attack = Attack::Eclipse;
        sc.disjoint = d;
        run(sc)
    };
    let (one, four) = (mk(1), mk(4));
    // The node reports the k closest of every path, so the honest closest node a clean path
    // found is in the result even though forged ids sort nearer.
    assert!(
        four.success_rate > one.success_rate + 0.2,
        "seed {seed}: success with d=1 {} vs d=4 {}",
        one.success_rate,
        four.success_rate
    );
    assert!(four.success_rate > 0.6, "seed {seed}: success with d=4 {}", four.success_rate);
}

fn items(nodes: usize, items: usize, seed: u64) -> Scenario {
    let mut sc = small(nodes, 1, seed, Protocol::Kademlia);
    sc.workload = Workload::Items;
    sc.items = items;
    sc
}

#[test]
fn items_workload_replays_from_its_seed() {
    let (a, b, c) = (run(items(150, 40, 7)), run(items(150, 40, 7)), run(items(150, 40, 8)));
    assert_eq!(a.trace_hash, b.trace_hash, "seed 7 replayed differently");
    let (ia, ib) = (a.items.expect("items summary"), b.items.expect("items summary"));
    assert_eq!(
        (ia.puts, ia.put_latency_ms_p90, ia.get_latency_ms_p90),
        (ib.puts, ib.put_latency_ms_p90, ib.get_latency_ms_p90)
    );
    assert_ne!(a.trace_hash, c.trace_hash, "seeds 7 and 8 gave the same trace");
}

#[test]
fn items_are_put_to_a_quorum_and_read_back() {
    let seed = 19;
    let s = run(items(300, 100, seed));
    let it = s.items.expect("items summary");
    assert_eq!(it.puts, 150, "seed {seed}: 50 immutable puts and 2 x 50 mutable puts");
    assert_eq!(it.gets, 100, "seed {seed}");
    assert!(it.put_success_rate >= 0.99, "seed {seed}: put success {}", it.put_success_rate);
    assert!(it.get_success_rate >= 0.99, "seed {seed}: get success {}", it.get_success_rate);
    assert!(it.put_closest_k_fraction >= 0.8, "seed {seed}: closest-k {}", it.put_closest_k_fraction);
    // The model's RTTs (100 ms median) bound the latencies from below; from above, the
    // lookup phase pays soft timeouts for unreachable nodes (see docs/SIMULATION.md). The
    // bound leaves room over the 1.8 s measured when this test was written.
    assert!(it.put_latency_ms_p50 > 100.0, "seed {seed}: put p50 {}", it.put_latency_ms_p50);
    assert!(it.put_latency_ms_p90 < 3_000.0, "seed {seed}: put p90 {}", it.put_latency_ms_p90);
    assert!(it.put_quorum_ms_p90 <= it.put_latency_ms_p90, "seed {seed}: {it:?}");
    assert!(it.put_lookup_ms_p50 < it.put_quorum_ms_p50, "seed {seed}: {it:?}");
    assert!(it.get_latency_ms_p90 < 3_000.0, "seed {seed}: get p90 {}", it.get_latency_ms_p90);
    assert!((15.0..100.0).contains(&it.messages_per_put), "seed {seed}: {} msgs/put", it.messages_per_put);
    assert!((2.0..60.0).contains(&it.messages_per_get), "seed {seed}: {} msgs/get", it.messages_per_get);
}
