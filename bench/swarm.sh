#!/usr/bin/env bash
# One seeder, N leechers (default 8), 256 MiB, on loopback: time until every leecher has
# verified everything, and the seeder's share of the bytes the leechers received (lower is
# better: the leechers traded among themselves). The same swarm is run with mycel processes
# and with libtorrent sessions (bench/lt_swarm.py), on the same data and torrent.
#
#   bench/swarm.sh                  # 256 MiB, 8 leechers, v1, mycel then libtorrent
#   SIZE_MIB=64 LEECHERS=4 VERSION=v2 IMPLS=mycel bench/swarm.sh
#
# Every leecher listens on its own fixed 127.x address and is given the seeder and all other
# leechers (mycel: --peer; libtorrent: connect_peer), no DHT, so discovery time is not
# measured. Leechers start together and keep serving after they complete.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SIZE_MIB=${SIZE_MIB:-256}
LEECHERS=${LEECHERS:-8}
VERSION=${VERSION:-v1}
IMPLS=${IMPLS:-mycel lt}
PYTHON=${PYTHON:-python3}
MYCEL=${MYCEL_BIN:-target/release/mycel}
[ -x "$MYCEL" ] || cargo build --release -p mycel
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/mycel-swarm.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/src"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/src/data.bin"
sync  # the new data is written back before any timed run, not during the first one
"$MYCEL" create "$WORK/src/data.bin" "--$VERSION" -o "$WORK/t.torrent" > /dev/null
run_mycel() {
    SEED=127.0.0.90:7090
    "$MYCEL" share "$WORK/t.torrent" --dir "$WORK/src" --listen "$SEED" --json > "$WORK/share.out" 2>/dev/null &
    local seeder=$!
    PIDS+=($seeder)
    for _ in $(seq 600); do [ -s "$WORK/share.out" ] && break; sleep 0.1; done

    addr() { echo "127.0.0.$((91 + $1)):$((7091 + $1))"; }
    start=$(date +%s.%N)
    LPIDS=()
    for i in $(seq 0 $((LEECHERS - 1))); do
        args=(--peer "$SEED")
        for j in $(seq 0 $((LEECHERS - 1))); do [ "$j" != "$i" ] && args+=(--peer "$(addr "$j")"); done
        # --seed keeps a finished leecher serving the others; it is stopped at the end.
        "$MYCEL" fetch "$WORK/t.torrent" --out "$WORK/l$i" --listen "$(addr "$i")" --json --seed --timeout 300 \
            "${args[@]}" > "$WORK/l$i.json" 2>/dev/null &
        LPIDS+=($!)
        PIDS+=($!)
    done
    for i in $(seq 0 $((LEECHERS - 1))); do
        until [ -s "$WORK/l$i.json" ]; do sleep 0.05; done
    done
    end=$(date +%s.%N)
    for i in $(seq 0 $((LEECHERS - 1))); do
        cmp -s "$WORK/src/data.bin" "$WORK/l$i/data.bin" || { echo "leecher $i: data differs" >&2; exit 1; }
    done
    "$PYTHON" - "$WORK" "$LEECHERS" "$SEED" "$start" "$end" "$SIZE_MIB" <<'PY'
import json, sys
work, n, seed, start, end, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
total = from_seed = 0
secs = []
for i in range(n):
    d = json.loads(open(f"{work}/l{i}.json").readline())
    secs.append(d["seconds"])
    total += sum(d["from"].values())
    from_seed += d["from"].get(seed, 0)
print(f"# mycel: 1 seeder -> {n} leechers, {size} MiB, loopback TCP")
print(f"all complete after {end - start:.2f} s (per leecher: min {min(secs):.2f} s, max {max(secs):.2f} s)")
print(f"seeder upload share: {100 * from_seed / max(total, 1):.0f}% of {total / 1e6:.0f} MB received by the leechers")
PY
    # Stop this swarm before the next one runs (the machine has few cores).
    for p in "$seeder" "${LPIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"/l[0-9]*
}

run_lt() {
    echo "# libtorrent $("$PYTHON" -c 'import libtorrent as lt; print(lt.__version__)'): 1 seeder -> $LEECHERS leechers, $SIZE_MIB MiB, loopback TCP"
    "$PYTHON" bench/lt_swarm.py "$WORK/t.torrent" "$WORK/src" "$WORK" "$LEECHERS" | "$PYTHON" -c '
import json, sys
d = json.loads(sys.stdin.readline())
assert d["ok"], d
secs, lo, hi, share, mb = d["seconds"], d["min"], d["max"], 100 * d["seeder_share"], d["received"] / 1e6
print(f"all complete after {secs:.2f} s (per leecher: min {lo:.2f} s, max {hi:.2f} s)")
print(f"seeder upload share: {share:.0f}% of {mb:.0f} MB received by the leechers")'
    for i in $(seq 0 $((LEECHERS - 1))); do
        cmp -s "$WORK/src/data.bin" "$WORK/lt$i/data.bin" || { echo "libtorrent leecher $i: data differs" >&2; exit 1; }
    done
    rm -rf "$WORK"/lt*
}

for impl in $IMPLS; do
    case $impl in
        mycel) run_mycel ;;
        lt) run_lt ;;
        *) echo "unknown IMPLS entry: $impl" >&2; exit 2 ;;
    esac
done
