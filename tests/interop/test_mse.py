"""Message Stream Encryption (MSE/PE) interop with libtorrent 2.1.1, on loopback.

- libtorrent with its default settings (`out_enc_policy = enabled`) opens every TCP
  connection with an MSE handshake. `mycel share` must answer it: the first connection
  succeeds and libtorrent's peer flags show an encrypted handshake. Before mycel spoke MSE
  it reset that connection and libtorrent redialed in plaintext a second later, so the
  flags check fails on the old behaviour.
- libtorrent requiring RC4 (`pe_forced` both ways, `allowed_enc_level = pe_rc4`) seeds to
  `mycel fetch --encryption require` (mycel dials, RC4) and downloads from `mycel share`
  (libtorrent dials, RC4); a plaintext `mycel fetch` against it must fail.
"""

from __future__ import annotations

import time

import libtorrent as lt
import pytest

import harness
from test_torrent import Share, assert_recheck_passes, lt_add, lt_transfer_session, make_content, same_tree, wait_seeding

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PIECE = 64 * 1024
ENCRYPTED = lt.peer_info.rc4_encrypted | lt.peer_info.plaintext_encrypted

RC4_FORCED = {
    "out_enc_policy": int(lt.enc_policy.pe_forced),
    "in_enc_policy": int(lt.enc_policy.pe_forced),
    "allowed_enc_level": int(lt.enc_level.pe_rc4),
}


def mycel_torrent(content, tmp_path):
    torrent = tmp_path / "v1.torrent"
    r = harness.run_mycel(["create", str(content), "--v1", "--piece-size", str(PIECE), "-o", str(torrent)])
    assert r.returncode == 0, r.describe()
    return torrent


def lt_session(extra: dict | None = None) -> tuple[lt.session, int]:
    ses, port = lt_transfer_session(harness.fresh_ip())
    if extra:
        ses.apply_settings(extra)
    return ses, port


def first_peer(h: lt.torrent_handle, timeout: float) -> tuple[lt.peer_info, float]:
    """The first peer libtorrent has a finished BitTorrent handshake with, and when."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        peers = [p for p in h.get_peer_info() if p.pid != lt.sha1_hash()]
        if peers:
            return peers[0], time.monotonic() - t0
        time.sleep(0.005)
    raise AssertionError(f"libtorrent has no handshaken peer after {timeout}s")


def test_libtorrent_default_settings_first_connection_is_encrypted(tmp_path):
    content = make_content(tmp_path / "src")
    torrent = mycel_torrent(content, tmp_path)
    ip = harness.fresh_ip()
    share = Share(["--dir", str(content.parent), "--listen", f"{ip}:0", str(torrent)], tmp_path)
    try:
        addr = harness.parse_addr(share.line["addr"])
        ses, _ = lt_session()  # encryption settings left at libtorrent's defaults
        out = tmp_path / "lt-out"
        h = lt_add(ses, torrent, out, peer=addr)
        peer, after = first_peer(h, 5)
        assert peer.flags & ENCRYPTED, f"libtorrent's connection to mycel is not MSE (flags {peer.flags:#x})"
        # The plaintext fallback of the old behaviour came a full second after the reset.
        assert after < 0.9, f"first handshake after {after:.2f}s: the MSE attempt failed and was retried?"
        wait_seeding(h, 40, peer=addr)
        assert_recheck_passes(h, content, out)
        ses.pause()
    finally:
        share.stop()


@pytest.mark.parametrize("share_mode", ["off", "require"])
def test_libtorrent_requiring_rc4_fetches_from_mycel_share(share_mode, tmp_path):
    content = make_content(tmp_path / "src")
    torrent = mycel_torrent(content, tmp_path)
    ip = harness.fresh_ip()
    args = ["--dir", str(content.parent), "--listen", f"{ip}:0", "--encryption", share_mode, str(torrent)]
    share = Share(args, tmp_path)
    try:
        addr = harness.parse_addr(share.line["addr"])
        ses, _ = lt_session(RC4_FORCED)
        out = tmp_path / "lt-out"
        h = lt_add(ses, torrent, out, peer=addr)
        peer, _ = first_peer(h, 5)
        assert peer.flags & lt.peer_info.rc4_encrypted, f"not RC4 (flags {peer.flags:#x})"
        wait_seeding(h, 40, peer=addr)
        assert_recheck_passes(h, content, out)
        ses.pause()
    finally:
        share.stop()


def test_mycel_require_fetches_from_libtorrent_requiring_rc4(tmp_path):
    content = make_content(tmp_path / "src")
    torrent = mycel_torrent(content, tmp_path)
    ses, port = lt_session(RC4_FORCED)
    lt_ip = lt_transfer_ip(ses)
    h = lt_add(ses, torrent, content.parent)
    wait_seeding(h, 15)

    # Control: plaintext dials are refused by this libtorrent, so the test can fail.
    plain = harness.run_mycel(
        ["fetch", str(torrent), "--out", str(tmp_path / "plain"), "--peer", f"{lt_ip}:{port}", "--json",
         "--timeout", "4", "--listen", f"{harness.fresh_ip(harness.BLOCK_ONE_SHOT)}:0"],
        timeout=20,
    )
    assert plain.returncode != 0, "a plaintext mycel fetched from a libtorrent that forces RC4"

    out = tmp_path / "out"
    r = harness.run_mycel(
        ["fetch", str(torrent), "--out", str(out), "--peer", f"{lt_ip}:{port}", "--json", "--timeout", "40",
         "--encryption", "require", "--listen", f"{harness.fresh_ip(harness.BLOCK_ONE_SHOT)}:0"],
        timeout=50,
    )
    summary = r.json()
    assert summary["bad_pieces"] == 0, summary
    assert summary["mse"]["rc4"] >= 1 and summary["mse"]["plaintext"] == 0, summary
    assert same_tree(content, out / "content"), "mycel's copy differs from the source"
    deadline = time.monotonic() + 5
    while h.status().total_payload_upload == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert h.status().total_payload_upload > 0, "libtorrent uploaded nothing: who sent the data?"
    ses.pause()


def lt_transfer_ip(ses: lt.session) -> str:
    return ses.get_settings()["listen_interfaces"].rsplit(":", 1)[0]


@pytest.mark.parametrize("fetch_mode,ok", [("require", True), ("prefer", True), ("off", False)])
def test_mycel_fetch_from_mycel_share_requiring_rc4(fetch_mode, ok, tmp_path):
    """mycel on both ends: `--encryption require` on the seeder refuses plain dials; `prefer`
    and `require` dials are RC4-encrypted and get the data."""
    content = make_content(tmp_path / "src")
    torrent = mycel_torrent(content, tmp_path)
    ip = harness.fresh_ip()
    share = Share(["--dir", str(content.parent), "--listen", f"{ip}:0", "--encryption", "require", str(torrent)],
                  tmp_path)
    try:
        out = tmp_path / "out"
        r = harness.run_mycel(
            ["fetch", str(torrent), "--out", str(out), "--peer", share.line["addr"], "--json",
             "--timeout", "20" if ok else "4", "--encryption", fetch_mode,
             "--listen", f"{harness.fresh_ip(harness.BLOCK_ONE_SHOT)}:0"],
            timeout=30,
        )
        if ok:
            summary = r.json()
            assert summary["bad_pieces"] == 0
            assert summary["mse"]["rc4"] >= 1, summary
            assert same_tree(content, out / "content"), "mycel's copy differs from the source"
        else:
            assert r.returncode != 0, "a plaintext fetch got data from a seeder that requires RC4"
    finally:
        share.stop()
