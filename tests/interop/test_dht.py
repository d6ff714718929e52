"""mycel's DHT against libtorrent 2.1.1 on loopback (BEP 5 wire compatibility).

Each test runs one long-running `mycel dht node` and libtorrent sessions that join it with
add_dht_node, then drives mycel's one-shot commands against them. The CLI contract these are
written against is in the mycel crate's `dht` subcommands.
"""

from __future__ import annotations

import os
import random
import time

import libtorrent as lt

from harness import (
    fmt_addr,
    krpc_ping,
    live_node_endpoints,
    reply_peers,
    run_mycel,
    sha1,
    wait_for_alert,
)


def ping_id(addr, listen: str) -> str:
    """The node id of `addr`, learned with `mycel dht ping` (libtorrent's bindings cannot read
    a session's own id)."""
    done = run_mycel(["dht", "ping", fmt_addr(addr), "--listen", listen, "--json", "--timeout", "5"])
    reply = done.json()
    assert reply["addr"] == fmt_addr(addr), done.describe()
    assert len(reply["id"]) == 40 and int(reply["id"], 16) >= 0, done.describe()
    assert reply["rtt_ms"] >= 0, done.describe()
    return reply["id"]


def wait_in_table(s, lt_id: str, addr, timeout: float):
    """Waits until `addr` is in libtorrent session `s`'s routing table; returns its entry (a
    dict with 'nid' and 'endpoint')."""
    deadline = time.monotonic() + timeout
    while True:
        s.ses.dht_live_nodes(sha1(lt_id))
        alert = wait_for_alert(s, lt.dht_live_nodes_alert, timeout=5)
        entries = {tuple(n["endpoint"]): n for n in alert.nodes}
        if tuple(addr) in entries:
            return entries[tuple(addr)]
        assert time.monotonic() < deadline, (
            f"{fmt_addr(addr)} not in libtorrent {fmt_addr(s.addr)}'s routing table after "
            f"{timeout}s; table: {sorted(live_node_endpoints(alert))}"
        )
        time.sleep(0.5)


def test_libtorrent_bootstraps_from_mycel(mycel_node, lt_session, one_shot_listen):
    node = mycel_node()
    sessions = [lt_session() for _ in range(3)]
    for s in sessions:
        s.ses.add_dht_node(node.addr)

    ids = [ping_id(s.addr, one_shot_listen()) for s in sessions]
    # The harness's own raw ping must see the same id as `mycel dht ping`.
    assert ids[0] == krpc_ping(sessions[0].addr), "mycel dht ping reported another id"
    deadline = time.monotonic() + 30
    for s, lt_id in zip(sessions, ids):
        entry = wait_in_table(s, lt_id, node.addr, max(1.0, deadline - time.monotonic()))
        # libtorrent keeps the id mycel gave in its replies.
        assert str(entry["nid"]) == node.id, (
            f"libtorrent holds mycel {fmt_addr(node.addr)} under id {entry['nid']}, "
            f"mycel says its id is {node.id}"
        )


def test_mycel_finds_what_libtorrent_announced(mycel_node, lt_session, one_shot_listen):
    node = mycel_node()
    s = lt_session()
    s.ses.add_dht_node(node.addr)
    # Announce only once mycel is in libtorrent's table, and before any one-shot mycel node
    # exists: libtorrent adds the one-shot nodes that query it to its table, and once they
    # have exited its announce lookup waits for their queries to time out (about 15 s).
    lt_id = krpc_ping(s.addr)
    assert lt_id is not None, f"libtorrent {fmt_addr(s.addr)} stopped answering pings"
    wait_in_table(s, lt_id, node.addr, timeout=20)

    info_hash = os.urandom(20)
    port = random.randint(20000, 60000)
    wanted = f"{s.addr[0]}:{port}"
    s.ses.dht_announce(sha1(info_hash), port, 0)
    announced_at = time.monotonic()
    deadline = announced_at + 30
    attempts = []
    while True:
        time.sleep(1.0)
        done = run_mycel(
            [
                "dht", "get-peers", info_hash.hex(),
                "--bootstrap", fmt_addr(node.addr),
                "--listen", one_shot_listen(),
                "--timeout", "5",
                "--json",
            ],
            timeout=20,
        )
        reply = done.json()
        assert reply["info_hash"] == info_hash.hex(), done.describe()
        if wanted in reply["peers"]:
            return
        attempts.append(reply)
        assert time.monotonic() < deadline, (
            f"mycel never found {wanted} announced by libtorrent; replies: {attempts}"
        )
        if time.monotonic() - announced_at > 10:
            s.ses.dht_announce(sha1(info_hash), port, 0)
            announced_at = time.monotonic()


def test_libtorrent_finds_what_mycel_announced(mycel_node, lt_session, one_shot_listen):
    node = mycel_node()
    s = lt_session()
    s.ses.add_dht_node(node.addr)
    info_hash = os.urandom(20)
    port = random.randint(20000, 60000)
    listen = one_shot_listen()
    wanted = (listen.rpartition(":")[0], port)

    deadline = time.monotonic() + 30
    rounds = 0
    while True:
        if rounds % 3 == 0:
            done = run_mycel(
                [
                    "dht", "announce", info_hash.hex(), "--port", str(port),
                    "--bootstrap", fmt_addr(node.addr),
                    "--listen", listen,
                    "--timeout", "5",
                    "--json",
                ],
                timeout=20,
            )
            reply = done.json()
            assert reply["info_hash"] == info_hash.hex(), done.describe()
            assert reply["port"] == port, done.describe()
            assert reply["announced_to"] >= 1, done.describe()
        rounds += 1
        s.ses.dht_get_peers(sha1(info_hash))
        try:
            wait_for_alert(
                s,
                lt.dht_get_peers_reply_alert,
                lambda al: str(al.info_hash) == info_hash.hex() and wanted in reply_peers(al),
                timeout=3,
            )
            return
        except AssertionError:
            assert time.monotonic() < deadline, (
                f"libtorrent never found {wanted} announced by mycel within 30s "
                f"(last announce: {reply})"
            )


def test_cli_bad_input_exit_2():
    for args in (["dht", "get-peers", "nothex"], ["dht", "ping", "not-an-addr"]):
        done = run_mycel(args, timeout=10)
        assert done.returncode == 2, done.describe()
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].strip(), f"want one error line: {done.describe()}"


def test_node_exits_zero_on_sigint(mycel_node):
    node = mycel_node()
    assert node.stop() == 0, node.describe()
