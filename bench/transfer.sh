#!/usr/bin/env bash
# One seeder to one leecher on loopback over TCP: MB/s and the leecher's CPU seconds for
# mycel->mycel, libtorrent->mycel and libtorrent->libtorrent, for v1 and v2 torrents.
#
#   bench/transfer.sh                     # 1 GiB, v1 and v2
#   SIZE_MIB=256 bench/transfer.sh        # smaller
#   VERSIONS=v1 PAIRS="mycel-mycel lt-lt" bench/transfer.sh
#   BENCH_DIR=/some/disk bench/transfer.sh  # where the data goes (needs 2x SIZE)
#
# The same mycel-made torrent (piece size: mycel's default) is used by every pair. Data is
# in the page cache (just written), as in the libtorrent reference figures of
# /work/shared/notes/libtorrent-on-loopback.md. MB/s = size / seconds from adding the
# torrent until every piece is verified, for both (mycel: the `seconds` of `fetch --json`;
# libtorrent: add_torrent to is_seeding). CPU = leecher user+sys seconds (/usr/bin/time of
# the whole mycel process, getrusage for libtorrent). wall_s = the mycel process's wall
# time, start-up and the final fdatasync of the data and resume record included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SIZE_MIB=${SIZE_MIB:-1024}
VERSIONS=${VERSIONS:-v1 v2}
PAIRS=${PAIRS:-mycel-mycel lt-mycel lt-lt}
PYTHON=${PYTHON:-python3}
MYCEL=${MYCEL_BIN:-target/release/mycel}
[ -x "$MYCEL" ] || cargo build --release -p mycel
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/mycel-transfer.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/src"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/src/data.bin"
sync  # the new data is written back before any timed run, not during the first one
echo "# one seeder -> one leecher, ${SIZE_MIB} MiB, loopback TCP, $(nproc) cores"
printf '%-8s %-18s %10s %10s %10s %10s\n' version pair seconds MB/s cpu_s wall_s

seed_mycel() { # torrent -> sets ADDR
    "$MYCEL" share "$1" --dir "$WORK/src" --listen 127.0.0.51:0 --json > "$WORK/share.out" 2>/dev/null &
    PIDS+=($!)
    for _ in $(seq 600); do [ -s "$WORK/share.out" ] && break; sleep 0.1; done
    ADDR=$("$PYTHON" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["addr"])' "$WORK/share.out")
}

seed_lt() { # torrent -> sets ADDR
    mkfifo "$WORK/lt.in"
    "$PYTHON" bench/lt_transfer.py seed "$1" "$WORK/src" 127.0.0.53 < "$WORK/lt.in" > "$WORK/lt.out" &
    PIDS+=($!)
    exec 7> "$WORK/lt.in"
    for _ in $(seq 600); do grep -q ready "$WORK/lt.out" 2>/dev/null && break; sleep 0.1; done
    ADDR=$(awk '/ready/ {print $2}' "$WORK/lt.out")
}

stop_seeders() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
    exec 7>&- 2>/dev/null || true
    rm -f "$WORK/lt.in" "$WORK/lt.out" "$WORK/share.out"
}

leech_mycel() { # torrent addr -> "seconds cpu"
    rm -rf "$WORK/dst"
    /usr/bin/time -f '%e %U %S' -o "$WORK/time" "$MYCEL" fetch "$1" --out "$WORK/dst" --peer "$2" \
        --listen 127.0.0.52:0 --json --timeout 600 > "$WORK/fetch.json"
    cmp -s "$WORK/src/data.bin" "$WORK/dst/data.bin" || { echo "mycel's copy differs" >&2; exit 1; }
    # Seconds until every piece is verified (the fetch's own figure, as libtorrent's is),
    # CPU, and the process's wall time (start-up and the final fdatasync of the data and
    # resume record included, which libtorrent does not do).
    local verified
    verified=$("$PYTHON" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["seconds"])' "$WORK/fetch.json")
    awk -v v="$verified" '{printf "%s %.2f %s\n", v, $2 + $3, $1}' "$WORK/time"
}

leech_lt() {
    rm -rf "$WORK/dst"
    "$PYTHON" bench/lt_transfer.py leech "$1" "$WORK/dst" 127.0.0.54 "$2" > "$WORK/lt.json"
    cmp -s "$WORK/src/data.bin" "$WORK/dst/data.bin" || { echo "libtorrent's copy differs" >&2; exit 1; }
    "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["seconds"], d["cpu"], "-")' "$WORK/lt.json"
}

for v in $VERSIONS; do
    "$MYCEL" create "$WORK/src/data.bin" "--$v" -o "$WORK/$v.torrent" > /dev/null
    for pair in $PAIRS; do
        case $pair in
            mycel-mycel) seed_mycel "$WORK/$v.torrent"; r=$(leech_mycel "$WORK/$v.torrent" "$ADDR") ;;
            lt-mycel) seed_lt "$WORK/$v.torrent"; r=$(leech_mycel "$WORK/$v.torrent" "$ADDR") ;;
            lt-lt) seed_lt "$WORK/$v.torrent"; r=$(leech_lt "$WORK/$v.torrent" "$ADDR") ;;
            mycel-lt) seed_mycel "$WORK/$v.torrent"; r=$(leech_lt "$WORK/$v.torrent" "$ADDR") ;;
            *) echo "unknown pair $pair" >&2; exit 2 ;;
        esac
        stop_seeders
        read -r secs cpu wall <<< "$r"
        mbps=$(awk -v s="$secs" -v m="$SIZE_MIB" 'BEGIN {printf "%.0f", m * 1048576 / 1e6 / s}')
        printf '%-8s %-18s %10s %10s %10s %10s\n' "$v" "$pair" "$secs" "$mbps" "$cpu" "$wall"
    done
done
