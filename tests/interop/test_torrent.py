"""File transfer interop with libtorrent, on loopback, for v1, v2 and hybrid torrents.

- libtorrent seeds a torrent it made; `mycel fetch FILE.torrent --peer` downloads and both
  sides' data must match the source.
- `mycel share FILE.torrent` seeds a torrent mycel made; libtorrent downloads it.
- By magnet through a DHT of libtorrent and mycel nodes (v1 and hybrid): libtorrent seeds and
  announces, `mycel fetch MAGNET --bootstrap` finds it, gets the metadata and the data; and
  (v1) mycel shares and announces, libtorrent fetches the magnet through the DHT.
- v2 and hybrid magnets with a direct peer, both ways: the downloader gets the piece layers
  (not in the info dictionary) with BEP 52 hash requests; and libtorrent fetches a v2-only
  magnet from a mycel node that itself got the hybrid torrent by magnet (so it fetched the
  layers too).

Every wait is bounded; each transfer is a few MiB.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import libtorrent as lt
import pytest

import harness

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SIZES = {"a.bin": 3 * 1024 * 1024 + 12345, "b.bin": 300 * 1024 + 7}
PIECE = 64 * 1024
FLAGS = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}


def make_content(root: Path) -> Path:
    """A directory `root/content` with two files of random bytes."""
    d = root / "content"
    d.mkdir(parents=True)
    for name, size in SIZES.items():
        (d / name).write_bytes(os.urandom(size))
    return d


def same_tree(a: Path, b: Path) -> bool:
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in SIZES)


def lt_transfer_session(ip: str, dht: bool = False) -> tuple[lt.session, int]:
    port = harness.free_port(ip)
    s = harness.lt_settings(ip, port)
    s.update(
        {
            "enable_dht": dht,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "tick_interval": 100,
            "alert_mask": int(lt.alert_category.error | lt.alert_category.status),
        }
    )
    return lt.session(s), port


def lt_make_torrent(content: Path, kind: str, out: Path) -> Path:
    fs = lt.file_storage()
    lt.add_files(fs, str(content))
    ct = lt.create_torrent(fs, PIECE, FLAGS[kind])
    lt.set_piece_hashes(ct, str(content.parent))
    out.write_bytes(lt.bencode(ct.generate()))
    return out


def lt_add(ses: lt.session, torrent: Path, save: Path, peer=None) -> lt.torrent_handle:
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(str(torrent))
    atp.save_path = str(save)
    h = ses.add_torrent(atp)
    if peer:
        h.connect_peer(peer)
    return h


def wait_seeding(h: lt.torrent_handle, timeout: float, peer=None) -> None:
    deadline = time.monotonic() + timeout
    last_connect = 0.0
    while time.monotonic() < deadline:
        st = h.status()
        if st.is_seeding:
            return
        if peer and time.monotonic() - last_connect > 2:
            h.connect_peer(peer)
            last_connect = time.monotonic()
        time.sleep(0.1)
    st = h.status()
    raise AssertionError(f"libtorrent not seeding after {timeout}s: state={st.state} progress={st.progress:.3f} peers={st.num_peers} error={st.errc.message()}")


class Share:
    """`mycel share` as a background process; its JSON ready line gives the address."""

    def __init__(self, args: list[str], workdir: Path):
        self.err_path = workdir / "share.stderr"
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [harness.mycel_bin(), "share", "--json", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )
        self.line: dict | None = None
        box: list = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout=30)
        if not box or not box[0]:
            self.stop()
            raise AssertionError(f"mycel share printed nothing: {harness.tail(self.err_path.read_text())}")
        self.line = json.loads(box[0])

    def stop(self) -> None:
        harness.end_process(self.proc)
        self._err.close()


def assert_recheck_passes(h, content, out):
    """libtorrent re-verifies its download from disk (for v2 pieces by the piece layers it
    got) and its copy equals the source."""
    h.force_recheck()
    time.sleep(0.2)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not h.status().is_seeding:
        time.sleep(0.1)
    assert h.status().is_seeding, "libtorrent's recheck of the download failed"
    assert same_tree(content, out / "content"), "libtorrent's copy differs from the source"


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_libtorrent_seeds_mycel_fetches(kind, tmp_path):
    content = make_content(tmp_path / "src")
    torrent = lt_make_torrent(content, kind, tmp_path / f"{kind}.torrent")
    ip = harness.fresh_ip()
    ses, port = lt_transfer_session(ip)
    h = lt_add(ses, torrent, content.parent)
    wait_seeding(h, 15)
    out = tmp_path / "out"
    r = harness.run_mycel(
        ["fetch", str(torrent), "--out", str(out), "--peer", f"{ip}:{port}", "--json", "--timeout", "40",
         "--listen", f"{harness.fresh_ip(harness.BLOCK_ONE_SHOT)}:0"],
        timeout=50,
    )
    summary = r.json()
    assert summary["bad_pieces"] == 0, summary
    assert same_tree(content, out / "content"), "mycel's copy differs from the source"
    ses.pause()


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_mycel_seeds_libtorrent_fetches(kind, tmp_path):
    content = make_content(tmp_path / "src")
    torrent = tmp_path / f"{kind}.torrent"
    r = harness.run_mycel(["create", str(content), f"--{kind}", "--piece-size", str(PIECE), "-o", str(torrent)])
    assert r.returncode == 0, r.describe()
    ip = harness.fresh_ip()
    share = Share(["--dir", str(content.parent), "--listen", f"{ip}:0", str(torrent)], tmp_path)
    try:
        addr = harness.parse_addr(share.line["addr"])
        ses, _ = lt_transfer_session(harness.fresh_ip())
        out = tmp_path / "lt-out"
        h = lt_add(ses, torrent, out, peer=addr)
        wait_seeding(h, 40, peer=addr)
        assert_recheck_passes(h, content, out)
        ses.pause()
    finally:
        share.stop()


def test_mycel_fetches_libtorrent_v2_magnet(tmp_path):
    """libtorrent seeds a v2-only torrent; `mycel fetch` gets its btmh-only magnet from it
    (--peer): the metadata (BEP 9), then every file's piece layer with BEP 52 hash requests,
    each checked against the file's pieces root, then the data."""
    content = make_content(tmp_path / "src")
    torrent = lt_make_torrent(content, "v2", tmp_path / "v2.torrent")
    ip = harness.fresh_ip()
    ses, port = lt_transfer_session(ip)
    h = lt_add(ses, torrent, content.parent)
    wait_seeding(h, 15)
    magnet = lt.make_magnet_uri(h)
    assert "btmh" in magnet and "btih" not in magnet, magnet
    out = tmp_path / "out"
    r = harness.run_mycel(
        ["fetch", magnet, "--out", str(out), "--peer", f"{ip}:{port}", "--json", "--timeout", "40",
         "--listen", f"{harness.fresh_ip(harness.BLOCK_ONE_SHOT)}:0"],
        timeout=50,
    )
    summary = r.json()
    assert summary["bad_pieces"] == 0, summary
    assert same_tree(content, out / "content"), "mycel's copy differs from the source"
    ses.pause()


@pytest.mark.parametrize("kind", ["v1", "hybrid"])
def test_magnet_through_mixed_dht(kind, tmp_path, mycel_node):
    content = make_content(tmp_path / "src")
    torrent = lt_make_torrent(content, kind, tmp_path / f"{kind}.torrent")
    router = mycel_node()
    ip = harness.fresh_ip()
    ses, port = lt_transfer_session(ip, dht=True)
    ses.add_dht_node(router.addr)
    h = lt_add(ses, torrent, content.parent)
    wait_seeding(h, 15)
    magnet = lt.make_magnet_uri(h)
    # libtorrent announces once its DHT has nodes; repeat until a mycel lookup finds it.
    ih = str(h.info_hashes().v1) if kind != "v2" else None
    deadline = time.monotonic() + 30
    found = False
    while time.monotonic() < deadline and not found:
        h.force_dht_announce()
        time.sleep(1.0)
        r = harness.run_mycel(
            ["dht", "get-peers", ih, "--bootstrap", harness.fmt_addr(router.addr), "--json", "--timeout", "10",
             "--listen", f"{harness.fresh_ip(harness.BLOCK_ONE_SHOT)}:0"],
            timeout=20,
        )
        found = r.returncode == 0 and f"{ip}:{port}" in r.json().get("peers", [])
    assert found, "libtorrent's announce never reached the mycel DHT"
    out = tmp_path / "out"
    r = harness.run_mycel(
        ["fetch", magnet, "--out", str(out), "--bootstrap", harness.fmt_addr(router.addr), "--json",
         "--timeout", "40", "--listen", f"{harness.fresh_ip(harness.BLOCK_ONE_SHOT)}:0"],
        timeout=50,
    )
    summary = r.json()
    assert summary["bad_pieces"] == 0
    assert same_tree(content, out / "content")
    ses.pause()


@pytest.mark.parametrize("kind", ["v2", "hybrid"])
def test_libtorrent_fetches_mycel_v2_magnet(kind, tmp_path):
    """mycel shares a v2 or hybrid torrent; libtorrent adds its magnet (only the info-hash),
    is told mycel's address, gets the metadata (BEP 9), then the piece layers, which are not
    in the info dictionary, with BEP 52 hash requests (base layer = piece layer, proofs up
    to each file's pieces root), then the data."""
    content = make_content(tmp_path / "src")
    ip = harness.fresh_ip()
    share = Share([str(content), f"--{kind}", "--piece-size", str(PIECE), "--listen", f"{ip}:0"], tmp_path)
    try:
        addr = harness.parse_addr(share.line["addr"])
        magnet = share.line["magnet"].split("&x.pe=")[0]
        assert ("btmh" in magnet) and (("btih" in magnet) == (kind == "hybrid")), magnet
        ses, _ = lt_transfer_session(harness.fresh_ip())
        atp = lt.parse_magnet_uri(magnet)
        out = tmp_path / "lt-out"
        atp.save_path = str(out)
        h = ses.add_torrent(atp)
        h.connect_peer(addr)
        wait_seeding(h, 40, peer=addr)
        # A recheck proves libtorrent holds the real piece layers (it verifies v2 pieces by them).
        assert_recheck_passes(h, content, out)
        ses.pause()
    finally:
        share.stop()


def test_libtorrent_fetches_v2_magnet_from_mycel_that_got_hybrid_by_magnet(tmp_path):
    """mycel A shares a hybrid torrent; mycel B fetches its hybrid magnet (btih + btmh) and
    keeps seeding; B must have fetched the piece layers from A (BEP 52 hash requests), since
    libtorrent then adds the btmh-only magnet, knows only B, and needs those layers from B."""
    content = make_content(tmp_path / "src")
    ip_a = harness.fresh_ip()
    share = Share([str(content), "--hybrid", "--piece-size", str(PIECE), "--listen", f"{ip_a}:0"], tmp_path)
    b_err = open(tmp_path / "b.stderr", "wb")
    b = None
    try:
        addr_a = harness.parse_addr(share.line["addr"])
        magnet = share.line["magnet"].split("&x.pe=")[0]
        assert "btih" in magnet and "btmh" in magnet, magnet
        ip_b = harness.fresh_ip()
        port_b = harness.free_port(ip_b)
        b = subprocess.Popen(
            [harness.mycel_bin(), "fetch", magnet, "--out", str(tmp_path / "b"), "--peer", harness.fmt_addr(addr_a),
             "--listen", f"{ip_b}:{port_b}", "--seed", "--json", "--timeout", "40", "--log", "info"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=b_err,
        )
        box: list = []
        t = threading.Thread(target=lambda: box.append(b.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout=45)
        assert box and box[0], f"mycel fetch B printed nothing: {harness.tail((tmp_path / 'b.stderr').read_text())}"
        summary = json.loads(box[0])
        assert summary["bad_pieces"] == 0, summary
        assert same_tree(content, tmp_path / "b" / "content"), "B's copy differs from the source"
        assert "SHA-1 only" not in (tmp_path / "b.stderr").read_text(), "B fell back to SHA-1"

        v2_only = "magnet:?" + "&".join(p for p in magnet.split("?", 1)[1].split("&") if "btih" not in p)
        assert "btmh" in v2_only and "btih" not in v2_only, v2_only
        ses, _ = lt_transfer_session(harness.fresh_ip())
        atp = lt.parse_magnet_uri(v2_only)
        out = tmp_path / "lt-out"
        atp.save_path = str(out)
        h = ses.add_torrent(atp)
        h.connect_peer((ip_b, port_b))
        wait_seeding(h, 40, peer=(ip_b, port_b))
        assert_recheck_passes(h, content, out)
        ses.pause()
    finally:
        if b is not None and b.poll() is None:
            b.terminate()
            try:
                b.wait(timeout=5)
            except subprocess.TimeoutExpired:
                b.kill()
                b.wait(timeout=5)
        b_err.close()
        share.stop()


# v1 only: the v2 and hybrid magnets are covered above with a direct peer.
@pytest.mark.parametrize("kind", ["v1"])
def test_libtorrent_fetches_mycel_magnet_through_dht(kind, tmp_path, mycel_node):
    """mycel shares and announces; libtorrent finds it through the DHT, gets the metadata
    from mycel (ut_metadata) and the data."""
    content = make_content(tmp_path / "src")
    router = mycel_node()
    ip = harness.fresh_ip()
    share = Share(
        [str(content), f"--{kind}", "--piece-size", str(PIECE), "--listen", f"{ip}:{harness.free_port(ip)}",
         "--bootstrap", harness.fmt_addr(router.addr)],
        tmp_path,
    )
    try:
        # The magnet without x.pe: libtorrent must use the DHT.
        magnet = share.line["magnet"].split("&x.pe=")[0]
        ses, _ = lt_transfer_session(harness.fresh_ip(), dht=True)
        ses.add_dht_node(router.addr)
        atp = lt.parse_magnet_uri(magnet)
        out = tmp_path / "lt-out"
        atp.save_path = str(out)
        h = ses.add_torrent(atp)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not h.status().is_seeding:
            if int(time.monotonic()) % 5 == 0:
                h.force_dht_announce()
            time.sleep(0.2)
        st = h.status()
        assert st.is_seeding, f"libtorrent did not finish: state={st.state} progress={st.progress:.3f} peers={st.num_peers}"
        assert same_tree(content, out / "content")
        ses.pause()
    finally:
        share.stop()
