#!/usr/bin/env bash
# get_peers lookups on a loopback network of real nodes (each its own 127.0.x.y address and UDP
# socket, in one process): messages and milliseconds per lookup, alpha = 3 and alpha = 5.
#
#   bench/dht_lookup.sh                 # 500 nodes, seeds 1..5 (24 get_peers lookups each)
#   NODES=200 SEEDS="1 2" bench/dht_lookup.sh
#
# Uses `mycel demo --json`: nodes join one after another, 8 info-hashes are announced, and each
# is looked up from 3 other nodes. Medians are over all lookups of all seeds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NODES=${NODES:-500}
SEEDS=${SEEDS:-1 2 3 4 5}
ALPHAS=${ALPHAS:-3 5}
MYCEL=${CARGO_TARGET_DIR:-target}/release/mycel
cargo build --release -q -p mycel
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for a in $ALPHAS; do
    for s in $SEEDS; do
        "$MYCEL" demo --nodes "$NODES" --alpha "$a" --seed "$s" --json > "$WORK/a$a-s$s.json"
    done
done
python3 - "$WORK" "$NODES" "$ALPHAS" "$SEEDS" <<'PY'
import json, os, statistics, sys
work, nodes, alphas, seeds = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
print(f"get_peers on {nodes} loopback nodes; seeds {' '.join(seeds)}; medians of per-run medians (p90 in brackets)")
print("| alpha | lookups | found | messages | ms | hops |")
print("|---:|---:|---:|---:|---:|---:|")
for a in alphas:
    runs = [json.load(open(os.path.join(work, f"a{a}-s{s}.json"))) for s in seeds]
    gp = [r["dht"]["get_peers"] for r in runs]
    med = lambda key, q: statistics.median(g[key][q] for g in gp)
    print(f"| {a} | {sum(g['lookups'] for g in gp)} | {sum(g['found'] for g in gp)} | "
          f"{med('messages','median'):.0f} ({med('messages','p90'):.0f}) | {med('ms','median'):.1f} ({med('ms','p90'):.1f}) | "
          f"{med('hops','median'):.0f} ({med('hops','p90'):.0f}) |")
PY
