#!/usr/bin/env python3
"""libtorrent swarm for bench/swarm.sh: one seeder and N leechers, each its own session on
its own 127.x address, in this one process, over TCP on loopback.

  lt_swarm.py TORRENT SRC_DIR WORK_DIR LEECHERS
      prints {"seconds":..,"min":..,"max":..,"seeder_share":..,"received":..,"ok":..}

The seeder's session seeds SRC_DIR (checked before the clock starts). Every leecher is
given the seeder and every other leecher with connect_peer (no DHT, no trackers), like the
mycel run's --peer flags, and keeps serving after it completes. The clock starts when the
leechers' torrents are added and stops when every leecher has verified every piece.
Seeder share = bytes the seeder uploaded / bytes the leechers downloaded (payload).
Settings per the loopback notes: no uTP, no LSD/UPnP/NAT-PMP/DHT, tick 100 ms.
"""
import json
import sys
import time

import libtorrent as lt

# The same session settings, port picking and torrent adding as the one-to-one benchmark.
from lt_transfer import add, free_port, settings


def session(ip: str) -> tuple[lt.session, tuple[str, int]]:
    port = free_port(ip)
    return lt.session(settings(ip, port)), (ip, port)


def main() -> None:
    torrent, src, work, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    seed_ses, seed_addr = session("127.0.2.90")
    seeder = add(seed_ses, torrent, src)
    deadline = time.monotonic() + 120
    while not seeder.status().is_seeding and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seeder.status().is_seeding, "libtorrent seeder did not check its data"
    leechers = [session(f"127.0.2.{91 + i}") for i in range(n)]
    t0 = time.monotonic()
    handles = [add(ses, torrent, f"{work}/lt{i}") for i, (ses, _) in enumerate(leechers)]
    for i, h in enumerate(handles):
        h.connect_peer(seed_addr)
        for j, (_, addr) in enumerate(leechers):
            if j != i:
                h.connect_peer(addr)
    done = [None] * n
    deadline = t0 + 600
    while None in done and time.monotonic() < deadline:
        for i, h in enumerate(handles):
            if done[i] is None and h.status().is_seeding:
                done[i] = time.monotonic() - t0
        time.sleep(0.01)
    end = time.monotonic() - t0
    uploaded = seeder.status().total_payload_upload
    received = sum(h.status().total_payload_download for h in handles)
    ok = None not in done
    secs = [d for d in done if d is not None]
    print(json.dumps({
        "seconds": round(end, 2),
        "min": round(min(secs), 2) if secs else None,
        "max": round(max(secs), 2) if secs else None,
        "seeder_share": round(uploaded / max(received, 1), 3),
        "received": received,
        "ok": ok,
    }))
    for ses, _ in leechers:
        ses.pause()
    seed_ses.pause()


if __name__ == "__main__":
    main()
