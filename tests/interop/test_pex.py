"""Peer exchange (BEP 11, ut_pex) between mycel and libtorrent, on loopback.

- mycel tells libtorrent of a peer: a libtorrent seeder L1 (upload-limited, so the transfer
  lasts) and an empty libtorrent L2 that knows nobody; `mycel fetch --peer L1 --peer L2`
  dials both, and its PEX message to L2 names L1. L2 must then connect to L1. Nothing else
  could tell L2 of L1: no DHT, no tracker, no local discovery.
- libtorrent tells mycel of a peer: L2 is connected to the seeder L1 (which runs without
  libtorrent's plugins, so it neither sends nor takes PEX); `mycel fetch --peer L2` learns L1
  from L2's PEX message, dials it and downloads from it.

Every wait is bounded; each transfer is a few MiB.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import libtorrent as lt
import pytest

import harness
from test_torrent import lt_add, lt_make_torrent

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SIZE = 3 * 1024 * 1024 + 4321


def lt_session(ip: str, upload_limit: int = 0, plugins: bool = True) -> tuple[lt.session, int]:
    port = harness.free_port(ip)
    s = harness.lt_settings(ip, port)
    s.update(
        {
            "enable_dht": False,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "tick_interval": 100,
            "upload_rate_limit": upload_limit,
            "alert_mask": int(lt.alert_category.error | lt.alert_category.status),
        }
    )
    # Without the default plugins libtorrent speaks no ut_pex (nor ut_metadata).
    ses = lt.session(s) if plugins else lt.session(s, 0)
    if upload_limit:
        # Peers on loopback fall in libtorrent's local peer class, which rate limits skip:
        # put every address in the global class only, so the limit applies.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)
    return ses, port


def make_torrent(root: Path) -> tuple[Path, Path]:
    """Random content under `root/content` and a v1 torrent of it made by libtorrent."""
    content = root / "content"
    content.mkdir(parents=True)
    (content / "data.bin").write_bytes(os.urandom(SIZE))
    return content, lt_make_torrent(content, "v1", root / "pex.torrent")


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s")


def wait_active(h: lt.torrent_handle) -> None:
    """Until the torrent accepts connections (libtorrent refuses them while it checks)."""
    wait(lambda: h.status().state == lt.torrent_status.downloading and not h.status().paused, 15, "torrent not active")
    time.sleep(0.5)


def peer_ips(h: lt.torrent_handle) -> set[str]:
    return {p.ip[0] for p in h.get_peer_info()}


class Fetch:
    """`mycel fetch --json` in the background; `summary()` waits for its JSON line."""

    def __init__(self, args: list[str], workdir: Path):
        self.err_path = workdir / "fetch.stderr"
        self._err = open(self.err_path, "wb")
        self.args = args
        self.proc = subprocess.Popen(
            [harness.mycel_bin(), "fetch", "--json", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )

    def summary(self, timeout: float) -> dict:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"mycel fetch still running after {timeout}s: {self.stderr()}")
        assert self.proc.returncode == 0, f"mycel fetch exited {self.proc.returncode}: {self.stderr()}"
        return json.loads(out.decode().strip().splitlines()[-1])

    def stderr(self) -> str:
        return harness.tail(self.err_path.read_text(errors="replace"))

    def stop(self) -> None:
        harness.end_process(self.proc)
        self._err.close()


def test_mycel_pex_introduces_libtorrent_peers(tmp_path):
    content, torrent = make_torrent(tmp_path / "src")
    ip1, ip2 = harness.fresh_ip(), harness.fresh_ip()
    # About 15 s for the whole torrent: L1 is still seeding when L2 hears of it.
    ses1, port1 = lt_session(ip1, upload_limit=250_000)
    h1 = lt_add(ses1, torrent, content.parent)
    wait(lambda: h1.status().is_seeding, 15, "libtorrent L1 not seeding")
    ses2, port2 = lt_session(ip2)
    h2 = lt_add(ses2, torrent, tmp_path / "l2")
    wait_active(h2)
    fetch = Fetch(
        ["--peer", f"{ip1}:{port1}", "--peer", f"{ip2}:{port2}", str(torrent), "--out", str(tmp_path / "mycel"),
         "--timeout", "60", "--listen", f"{harness.fresh_ip()}:0"],
        tmp_path,
    )
    try:
        # L2 knows only mycel (which dialled it); L1's address can only come from mycel's PEX.
        wait(lambda: ip1 in peer_ips(h2), 30, "libtorrent L2 never connected to L1")
        summary = fetch.summary(60)
        assert summary["bad_pieces"] == 0, summary
        assert (tmp_path / "mycel" / "content" / "data.bin").read_bytes() == (content / "data.bin").read_bytes()
    finally:
        fetch.stop()
        ses1.pause()
        ses2.pause()


def test_mycel_learns_peer_from_libtorrent_pex(tmp_path):
    content, torrent = make_torrent(tmp_path / "src")
    ip1, ip2 = harness.fresh_ip(), harness.fresh_ip()
    # Slow enough that mycel cannot finish from L2's copy before L2's PEX arrives. No PEX on
    # L1: otherwise L2 tells L1 of mycel and L1 dials mycel first.
    ses1, port1 = lt_session(ip1, upload_limit=60_000, plugins=False)
    h1 = lt_add(ses1, torrent, content.parent)
    wait(lambda: h1.status().is_seeding, 15, "libtorrent L1 not seeding")
    ses2, port2 = lt_session(ip2)
    h2 = lt_add(ses2, torrent, tmp_path / "l2")
    wait_active(h2)
    h2.connect_peer((ip1, port1))
    wait(lambda: ip1 in peer_ips(h2), 15, "libtorrent L2 never connected to L1")
    fetch = Fetch(
        ["--peer", f"{ip2}:{port2}", str(torrent), "--out", str(tmp_path / "mycel"), "--timeout", "60",
         "--listen", f"{harness.fresh_ip()}:0"],
        tmp_path,
    )
    try:
        # libtorrent sends its first PEX message on its first tick with two peers.
        wait(lambda: any(b"mycel" in p.client for p in h1.get_peer_info()), 30,
             "mycel never connected to L1, which only L2's PEX names")
        ses1.apply_settings({"upload_rate_limit": 0})
        summary = fetch.summary(60)
        assert summary["bad_pieces"] == 0, summary
        assert summary["pex_peers_learnt"] >= 1, summary
        assert f"{ip1}:{port1}" in summary["from"], summary
    finally:
        fetch.stop()
        ses1.pause()
        ses2.pause()
