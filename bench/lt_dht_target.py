#!/usr/bin/env python3
"""A libtorrent DHT node to benchmark against: the reference for bench/dht_qps.sh.

Starts one libtorrent session with only the DHT doing work, on a literal loopback IP (libtorrent
starts no DHT on sockets it considers local-network, such as a device name), with every DHT
limiter raised so the figure measures libtorrent's DHT code, not its throttles. When the DHT
answers a ping, prints one JSON line `{"event":"listening","addr":"IP:PORT","id":HEX,"pid":N}` and runs
until SIGINT/SIGTERM.

    python3 bench/lt_dht_target.py --listen 127.0.0.3:0
"""

import argparse
import json
import os
import signal
import socket
import sys
import time

import libtorrent as lt


def free_udp_port(ip):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def settings(ip, port, socket_buffer):
    return {
        # Nothing but the DHT: no discovery, no port mapping, no default bootstrap lookup.
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_bootstrap_nodes": "",
        "listen_interfaces": f"{ip}:{port}",
        "enable_dht": True,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # Limiters. 0 means "send nothing" for dht_upload_rate_limit, so: very high instead.
        "dht_upload_rate_limit": 100_000_000,
        # Packets per second one IP may send before it is blocked for dht_block_timeout.
        "dht_block_ratelimit": 1_000_000,
        "dht_block_timeout": 1,
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "rate_limit_ip_overhead": False,
        # One node per /24 in the table and in lookups: off, the sources share 127.200.0.0/16.
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_max_fail_count": 1000,
        # Socket buffers are the OS default (0) unless asked: mycel does not size its own, and
        # with hundreds of queries in flight the default 208 KiB overflows for both.
        "recv_socket_buffer_size": socket_buffer,
        "send_socket_buffer_size": socket_buffer,
        # No DHT alerts: formatting them costs CPU that a production node would not spend.
        "alert_mask": int(lt.alert_category.error | lt.alert_category.status),
        "allow_multiple_connections_per_ip": True,
    }


def ping(addr, timeout):
    """Sends KRPC pings from another loopback IP until one is answered; returns the node id."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.199.0.1", 0))
        s.settimeout(0.2)
        query = b"d1:ad2:id20:" + os.urandom(20) + b"e1:q4:ping1:t2:pp1:y1:qe"
        while time.monotonic() < deadline:
            s.sendto(query, addr)
            try:
                data, _ = s.recvfrom(2048)
            except socket.timeout:
                continue
            at = data.find(b"2:id20:")
            if at >= 0 and b"1:y1:r" in data:
                return data[at + 7 : at + 27].hex()
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.3:0", help="literal IPv4 loopback IP:PORT")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the DHT")
    parser.add_argument(
        "--socket-buffer", type=int, default=0, help="UDP socket buffer bytes (0: OS default)"
    )
    args = parser.parse_args()
    ip, _, port = args.listen.rpartition(":")
    if not ip.startswith("127."):
        sys.exit(f"lt_dht_target: {args.listen} is not a 127/8 address")
    port = int(port) or free_udp_port(ip)

    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    ses = lt.session(settings(ip, port, args.socket_buffer))
    node_id = ping((ip, port), args.timeout)
    if node_id is None:
        for alert in ses.pop_alerts():
            print(f"lt_dht_target: {alert.message()}", file=sys.stderr)
        sys.exit(f"lt_dht_target: the DHT on {ip}:{port} did not answer a ping")
    line = {"event": "listening", "addr": f"{ip}:{port}", "id": node_id, "pid": os.getpid()}
    print(json.dumps(line), flush=True)
    while not stop:
        # Alerts must be drained or the queue fills; the mask keeps them rare.
        ses.wait_for_alert(500)
        for alert in ses.pop_alerts():
            if alert.category() & lt.alert_category.error:
                print(f"lt_dht_target: {alert.message()}", file=sys.stderr)
    del ses


if __name__ == "__main__":
    main()
