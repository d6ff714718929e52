#!/usr/bin/env bash
# DHT query throughput: answered KRPC queries per second, and per CPU-second of the node under
# test, for mycel and for libtorrent under the same load from mycel-loadgen.
#
#   bench/dht_qps.sh                 # ~10 s per target
#   DURATION=20 SOURCES=64 WINDOW=8 MIX=find_node:50,get_peers:50 bench/dht_qps.sh
#   TARGETS=libtorrent bench/dht_qps.sh      # only one of: mycel, libtorrent
#   READ_ONLY=0 bench/dht_qps.sh             # queries without the BEP 43 ro flag
#   MYCEL_NODE_ARGS="..." bench/dht_qps.sh   # extra flags for `mycel dht node`
#
# Sources: each is a thread with a socket on its own 127.200.x.y address, because both nodes
# limit queries per source IP (mycel: 250/s with a burst of 500 by default; libtorrent's
# dht_block_ratelimit, raised in lt_dht_target.py). 256 sources keep mycel's per-IP limiter
# out of the way (256 x 250/s = 64k/s); fewer sources measure the limiter, not the node.
#
# CPU time is the target process's utime+stime from /proc/PID/stat (all its threads), read
# before and after the run: answered / CPU-seconds is the per-core figure. On a small machine
# the load generator competes with the target for cores, so answered/s is a floor; the
# per-CPU-second figure is the one to compare. Everything stays on 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-10}
SOURCES=${SOURCES:-256}
WINDOW=${WINDOW:-1}
MYCEL_NODE_ARGS=${MYCEL_NODE_ARGS:-}
MIX=${MIX:-find_node:50,get_peers:50}
READ_ONLY=${READ_ONLY:-1}  # 1: queries carry the BEP 43 ro flag, so the target's table stays still
TARGETS=${TARGETS:-mycel libtorrent}
PYTHON=${PYTHON:-python3}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
MYCEL=$TARGET_DIR/release/mycel
LOADGEN=$TARGET_DIR/release/mycel-loadgen
CLK_TCK=$(getconf CLK_TCK)
RO_FLAG=$([ "$READ_ONLY" = 1 ] && echo --read-only || true)
WORK=$(mktemp -d)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -INT "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '%s\n' "$*" >&2; }

free_port() {
    "$PYTHON" -c 'import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}

# Waits for a JSON line with "event":"listening" in file $1 written by process $2; prints addr.
wait_listening() {
    local out=$1 pid=$2 name=$3
    for _ in $(seq 300); do
        if grep -q '"listening"' "$out" 2>/dev/null; then
            "$PYTHON" -c 'import json,sys
for line in open(sys.argv[1]):
    ev = json.loads(line)
    if ev.get("event") == "listening": print(ev["addr"]); break' "$out"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            say "$name exited before listening; stderr:"; tail -20 "$WORK/$name.err" >&2; return 1
        fi
        sleep 0.1
    done
    say "$name not listening after 30 s; stderr:"; tail -20 "$WORK/$name.err" >&2
    return 1
}

cpu_ticks() {
    # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
    sed -e 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# Runs the load against $2 (pid $3) and prints one markdown table row for target $1.
measure() {
    local name=$1 addr=$2 pid=$3 command=$4 before after
    say "---- $name at $addr (pid $pid): loadgen ${DURATION}s, $SOURCES sources x window $WINDOW, $MIX"
    before=$(cpu_ticks "$pid")
    "$LOADGEN" --target "$addr" --duration "$DURATION" --sources "$SOURCES" --window "$WINDOW" \
        --mix "$MIX" ${RO_FLAG} --json >"$WORK/$name.json"
    after=$(cpu_ticks "$pid")
    "$PYTHON" - "$WORK/$name.json" "$before" "$after" "$CLK_TCK" "$name" "$command" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
per_cpu = r["answered"] / cpu if cpu > 0 else float("nan")
print(f"| {sys.argv[5]} | {r['answered_per_s']:,.0f} | {cpu:.2f} | {per_cpu:,.0f} | "
      f"{r['sent']:,} | {r['answered']:,} | {r['errors']:,} | {r['timeouts']:,} | `{sys.argv[6]}` |")
PY
}

say "==== build (release)"
cargo build --release -p mycel-loadgen >&2
if [[ " $TARGETS " == *" mycel "* ]]; then
    cargo build --release --bin mycel >&2
fi
if [[ " $TARGETS " == *" libtorrent "* ]]; then
    PYTHON=$PYTHON ./scripts/install-test-deps.sh >&2
fi

rows=()
if [[ " $TARGETS " == *" mycel "* ]]; then
    port=$(free_port 127.0.0.2)
    # shellcheck disable=SC2206 # MYCEL_NODE_ARGS is a space-separated list of flags
    cmd=("$MYCEL" dht node --listen "127.0.0.2:$port" --json --data-dir "$WORK/mycel-data" $MYCEL_NODE_ARGS)
    "${cmd[@]}" >"$WORK/mycel.out" 2>"$WORK/mycel.err" &
    PIDS+=($!)
    addr=$(wait_listening "$WORK/mycel.out" "$!" mycel)
    rows+=("$(measure mycel "$addr" "${PIDS[-1]}" "mycel dht node --listen 127.0.0.2:PORT${MYCEL_NODE_ARGS:+ $MYCEL_NODE_ARGS}")")
fi
if [[ " $TARGETS " == *" libtorrent "* ]]; then
    "$PYTHON" bench/lt_dht_target.py --listen 127.0.0.3:0 >"$WORK/libtorrent.out" 2>"$WORK/libtorrent.err" &
    PIDS+=($!)
    addr=$(wait_listening "$WORK/libtorrent.out" "$!" libtorrent)
    lt_version=$("$PYTHON" -c 'import libtorrent; print(libtorrent.__version__)')
    rows+=("$(measure "libtorrent $lt_version" "$addr" "${PIDS[-1]}" "python3 bench/lt_dht_target.py --listen 127.0.0.3:0")")
fi

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: //')
echo
echo "DHT queries answered: ${DURATION}s of \`mycel-loadgen --sources $SOURCES --window $WINDOW --mix $MIX $RO_FLAG\`"
revision=$(git describe --always --dirty 2>/dev/null || echo unknown)
echo "machine: $(nproc) cores, $cpu_model; mycel $revision; $(date -u +%Y-%m-%d)"
echo
echo "| target | answered/s | target CPU-s | answered per CPU-s | sent | answered | errors | timeouts | command |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
for row in "${rows[@]}"; do echo "$row"; done
