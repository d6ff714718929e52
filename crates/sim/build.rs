//! Detects whether the DHT node has `Config::disjoint_paths` (S/Kademlia), so the simulator's
//! `--disjoint` code path compiles against both the node with and without it.

fn main() {
    let config = "../dht/src/config.rs";
    println!("cargo::rerun-if-changed={config}");
    println!("cargo::rustc-check-cfg=cfg(dht_disjoint)");
    let has = std::fs::read_to_string(config).map(|s| s.contains("pub disjoint_paths")).unwrap_or(false);
    if has {
        println!("cargo::rustc-cfg=dht_disjoint");
    }
}
