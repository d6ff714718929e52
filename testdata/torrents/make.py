#!/usr/bin/env python3
"""Makes the golden .torrent files in this directory with libtorrent (2.x) and writes
cases.txt, which crates/metainfo/tests/golden.rs reads.

Usage: python3 testdata/torrents/make.py   (writes next to this script; needs libtorrent)

Every file's content is generated from a seed by content(seed, length) below, which the
Rust test reproduces, so the test can create the same torrents with mycel and compare
info-hashes without libtorrent installed.

cases.txt, one case per line, fields separated by a single space:
    case version piece_length name single files expect v1 v2
  version   v1 | v2 | hybrid
  single    1 for a single-file torrent, 0 for a directory
  files     path=length=seed, joined with ';' (paths below the torrent's root, '/'-separated)
  expect    ok: libtorrent loads it, mycel must parse it with these hashes and create the
                same info-hashes from the same files
            hybrid-mismatch: libtorrent made it but refuses to load it; mycel must reject it
  v1, v2    lowercase hex of the info-hashes libtorrent reports, or '-'
"""

import os
import sys
import tempfile
import warnings

import libtorrent as lt

HERE = os.path.dirname(os.path.abspath(__file__))
CREATION_DATE = 1700000000
TRACKER = "udp://tracker.example:6969/announce"


def content(seed, length):
    """Byte j is (j * (2*seed + 1) + (j >> 9) + seed) mod 256."""
    return bytes(((j * (2 * seed + 1) + (j >> 9) + seed) & 0xFF) for j in range(length))


MULTI = [("a.txt", 100, 1), ("b.bin", 40000, 2), ("empty", 0, 3), ("sub/c.dat", 70000, 4), ("sub/d/e.bin", 16384, 5)]
LARGE = [("big.bin", 300000, 6), ("small.bin", 5000, 7)]
# 'sub.txt' sorts before 'sub/c' as a string but after 'sub' as a path component: the v2
# file tree puts 'sub/c' first. libtorrent 2.1.1 orders the v1 list by string, so its hybrid
# torrent's two file lists disagree and it refuses to load its own output.
ORDER = [("sub.txt", 5, 8), ("sub/c", 7, 9)]

CASES = [
    # case, version, piece length, name, single, files, tracker
    ("v1-single", "v1", 16384, "single.bin", True, [("single.bin", 100000, 11)], True),
    ("v2-single", "v2", 16384, "single.bin", True, [("single.bin", 100000, 11)], False),
    ("hybrid-single", "hybrid", 16384, "single.bin", True, [("single.bin", 100000, 11)], True),
    ("v1-multi", "v1", 16384, "multi", False, MULTI, True),
    ("v2-multi", "v2", 16384, "multi", False, MULTI, False),
    ("hybrid-multi", "hybrid", 16384, "multi", False, MULTI, True),
    ("v2-64k", "v2", 65536, "large", False, LARGE, False),
    ("hybrid-64k", "hybrid", 65536, "large", False, LARGE, False),
    # One file in a directory: libtorrent adds no pad file; a v2-only tree with one file at
    # its top reads back as a single-file torrent (BEP 52 cannot tell them apart).
    ("hybrid-dir1", "hybrid", 16384, "dir1", False, [("only.bin", 20000, 12)], False),
    ("v2-dir1", "v2", 16384, "dir1", False, [("only.bin", 20000, 12)], False),
    # An empty file last: the pad follows the last non-empty file, before the empty one.
    ("hybrid-tail", "hybrid", 16384, "tail", False, [("a", 20000, 13), ("z", 0, 14)], False),
    ("v2-order", "v2", 16384, "order", False, ORDER, False),
    ("hybrid-order", "hybrid", 16384, "order", False, ORDER, False),
]

FLAGS = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}


def make(root, case):
    name, version, piece_length, tname, single, files, tracker = case
    entries = []
    for path, length, seed in sorted(files, key=lambda f: f[0].split("/")):
        rel = path if single else f"{tname}/{path}"
        full = os.path.join(root, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(content(seed, length))
        entries.append(lt.create_file_entry(rel, length))
    ct = lt.create_torrent(entries, piece_length, FLAGS[version])
    ct.set_creation_date(CREATION_DATE)
    ct.set_creator("libtorrent " + lt.__version__)
    if tracker:
        ct.add_tracker(TRACKER)
    lt.set_piece_hashes(ct, root)
    data = lt.bencode(ct.generate())
    with open(os.path.join(HERE, name + ".torrent"), "wb") as f:
        f.write(data)
    try:
        ih = lt.torrent_info(data).info_hashes()
        expect = "ok"
        v1 = str(ih.v1) if ih.has_v1() else "-"
        v2 = str(ih.v2) if ih.has_v2() else "-"
    except RuntimeError as e:
        if "v1 and v2 file metadata does not match" not in str(e):
            raise
        expect, v1, v2 = "hybrid-mismatch", "-", "-"
    spec = ";".join(f"{p}={n}={s}" for p, n, s in files)
    return f"{name} {version} {piece_length} {tname} {int(single)} {spec} {expect} {v1} {v2}"


def main():
    warnings.simplefilter("ignore", DeprecationWarning)
    lines = [f"# made by make.py with libtorrent {lt.__version__}"]
    with tempfile.TemporaryDirectory() as root:
        for case in CASES:
            lines.append(make(os.path.join(root, case[0]), case))
    with open(os.path.join(HERE, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
