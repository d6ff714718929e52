#!/usr/bin/env python3
"""libtorrent seeder or leecher for bench/transfer.sh, over TCP on loopback.

  lt_transfer.py seed TORRENT SAVE_DIR IP    # prints "ready IP:PORT" once seeding; runs until stdin closes
  lt_transfer.py leech TORRENT OUT_DIR IP PEER_IP:PORT
                                             # prints {"seconds":..,"cpu":..,"mb_per_s":..}

Settings per tests/interop and the loopback notes: no uTP, no LSD/UPnP/DHT, tick 100 ms.
The leech timer starts when the torrent is added (like `mycel fetch`) and stops when every
piece is verified; CPU is this process's user+system time over the same span.
"""
import json
import resource
import socket
import sys
import time

import libtorrent as lt


def settings(ip: str, port: int) -> dict:
    return {
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_dht": False,
        "dht_bootstrap_nodes": "",
        "listen_interfaces": f"{ip}:{port}",
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "tick_interval": 100,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": 0,
    }


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def add(ses, torrent, save):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save
    return ses.add_torrent(atp)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    mode = sys.argv[1]
    if mode == "seed":
        torrent, save, ip = sys.argv[2:5]
        port = free_port(ip)
        ses = lt.session(settings(ip, port))
        h = add(ses, torrent, save)
        while not h.status().is_seeding:
            time.sleep(0.05)
        print(f"ready {ip}:{port}", flush=True)
        sys.stdin.read()
    else:
        torrent, out, ip, peer = sys.argv[2:6]
        pip, pport = peer.rsplit(":", 1)
        ses = lt.session(settings(ip, free_port(ip)))
        t0, c0 = time.monotonic(), cpu()
        h = add(ses, torrent, out)
        h.connect_peer((pip, int(pport)))
        deadline = t0 + 600
        while not h.status().is_seeding and time.monotonic() < deadline:
            time.sleep(0.01)
        secs, used = time.monotonic() - t0, cpu() - c0
        size = h.status().total_wanted
        print(json.dumps({"seconds": round(secs, 3), "cpu": round(used, 2), "mb_per_s": round(size / 1e6 / secs, 1),
                          "ok": h.status().is_seeding}))


if __name__ == "__main__":
    main()
