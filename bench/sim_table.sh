#!/usr/bin/env bash
# Regenerates the simulator's results table and sweep plots (docs/SIMULATION.md, docs/sim/).
#
#   bench/sim_table.sh            # the full table: N = 1k, 10k, 100k (about 20 min on 2 cores)
#   QUICK=1 bench/sim_table.sh    # N = 1k and 10k only (a few minutes)
#
# Every run is reproducible from its seed; each prints one JSON summary line, collected in
# target/sim/results.jsonl, then `mycel-sim --summarize` writes docs/sim/table.md and the
# SVG plots, and the table is spliced into docs/SIMULATION.md between the RESULTS markers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release -p mycel-sim
SIM=${CARGO_TARGET_DIR:-target}/release/mycel-sim
OUT=target/sim
mkdir -p "$OUT" docs/sim
RESULTS=$OUT/results.jsonl
: > "$RESULTS"
: > "$OUT/alpha1.jsonl"

# Every run lets the network settle for 15 minutes of virtual time after the last join before
# the lookups start: a node needs 10 minutes without an unsolicited query to conclude that it
# is behind a NAT and go read-only (BEP 43), so this measures a network in its steady state.
# SETTLE=60 gives the figures of a network whose nodes have all just joined.
SETTLE=${SETTLE:-900}

run() {
    echo "mycel-sim $*" >&2
    "$SIM" --json --seed 1 --settle-secs "$SETTLE" "$@" >> "$RESULTS"
}

SIZES="1000 10000 100000"
[ "${QUICK:-0}" = 1 ] && SIZES="1000 10000"

# The four protocols on the same model (100 ms median RTT, 1 % loss, 30 % behind NAT).
for n in $SIZES; do
    lookups=2000; [ "$n" -le 1000 ] && lookups=1000
    run --nodes "$n" --lookups "$lookups" --protocol kademlia
    run --nodes "$n" --lookups "$lookups" --protocol chord
    run --nodes "$n" --lookups "$lookups" --protocol zerohop
    flood=200; [ "$n" -ge 100000 ] && flood=50
    run --nodes "$n" --lookups "$flood" --protocol flood
done

# Kademlia under churn (Weibull sessions and downtimes, median 30 min, shape 0.5), over a
# longer window so churn has time to act.
run --nodes 10000 --lookups 5000 --protocol kademlia --churn --lookup-window 1800

# Success vs Sybil fraction, eclipse attack, d = 1, 2, 4, 8 disjoint paths.
for f in 0.05 0.1 0.2 0.3; do
    for d in 1 2 4 8; do
        run --nodes 2000 --lookups 500 --sybil "$f" --attack eclipse --disjoint "$d"
    done
done
for d in 1 2 4 8; do
    run --nodes 2000 --lookups 500 --disjoint "$d"
done
run --nodes 2000 --lookups 500 --sybil 0.2 --attack drop
run --nodes 2000 --lookups 500 --sybil 0.2 --attack fake

# Disjoint paths with one request in flight per path (S/Kademlia's independent paths): kept
# apart from the table (which has no α column) in docs/sim/alpha1.jsonl.
for d in 1 4 8; do
    "$SIM" --json --seed 1 --settle-secs "$SETTLE" --nodes 2000 --lookups 500 --sybil 0.2 --attack eclipse \
        --disjoint "$d" --alpha 1 >> "$OUT/alpha1.jsonl"
done

"$SIM" --summarize "$RESULTS" --out docs/sim
cp "$RESULTS" docs/sim/results.jsonl
cp "$OUT/alpha1.jsonl" docs/sim/alpha1.jsonl

python3 - <<'PY'
import re
doc = open("docs/SIMULATION.md").read()
table = open("docs/sim/table.md").read()
new = re.sub(r"(<!-- RESULTS BEGIN -->\n).*?(<!-- RESULTS END -->)", lambda m: m.group(1) + table + m.group(2), doc, flags=re.S)
open("docs/SIMULATION.md", "w").write(new)
PY
echo "updated docs/SIMULATION.md and docs/sim/" >&2
