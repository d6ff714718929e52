#!/usr/bin/env python3
"""Records what libtorrent sends on a peer connection, for mycel-peer-wire's golden tests.

A libtorrent session seeds a small generated torrent and is told to connect to a plain TCP
socket of this script on 127.0.0.1. The script answers like a minimal peer (handshake,
extended handshake, interested, a ut_metadata request, a block request, and for the v2
capture a hash request) and records every byte libtorrent sent, cut at the last complete
message. Loopback only; nothing else is contacted.

    python3 testdata/peer-wire/capture_libtorrent.py   # rewrites the .bin files here

Outputs (the bytes libtorrent sent, handshake first):
  libtorrent-hybrid-v1.bin  hybrid torrent, connection on the v1 info-hash; we do not set the
                            fast-extension bit, so libtorrent sends a bitfield.
  libtorrent-v2.bin         v2-only torrent (truncated SHA-256 info-hash in the handshake);
                            we set the fast bit (have_all) and ask for piece-layer hashes.
  libtorrent-captures.txt   facts the Rust test checks against (info-hashes, metadata size,
                            the pieces root, the piece size).
"""

import hashlib
import os
import socket
import struct
import tempfile
import time

import libtorrent as lt

HERE = os.path.dirname(os.path.abspath(__file__))
PIECE = 32 * 1024
PIECES = 8


def make_payload():
    # Deterministic content: SHA-256 counter stream.
    out = bytearray()
    i = 0
    while len(out) < PIECE * PIECES:
        out += hashlib.sha256(i.to_bytes(4, "big")).digest()
        i += 1
    return bytes(out[: PIECE * PIECES])


def make_torrent(root, flags):
    path = os.path.join(root, "payload.bin")
    with open(path, "wb") as f:
        f.write(make_payload())
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, PIECE, flags)
    ct.set_creator("mycel capture")
    ct.set_creation_date(0)
    lt.set_piece_hashes(ct, root)
    return lt.torrent_info(ct.generate())


def session():
    return lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "user_agent": "libtorrent capture",
        "alert_mask": 0,
        # Plaintext: without this libtorrent opens with an MSE (encrypted) handshake.
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.disabled),
    })


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("peer closed")
        buf += chunk
    return buf


def frames(buf):
    """Yields (id, payload) for every complete message; returns the bytes used."""
    pos, out = 0, []
    while pos + 4 <= len(buf):
        (n,) = struct.unpack(">I", buf[pos : pos + 4])
        if pos + 4 + n > len(buf):
            break
        out.append((buf[pos + 4] if n else None, buf[pos + 5 : pos + 4 + n]))
        pos += 4 + n
    return out, pos


def msg(mid, payload=b""):
    return struct.pack(">IB", 1 + len(payload), mid) + payload


def capture(ti, fast, v2_hash_request):
    root = None
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "payload.bin"), "wb") as f:
            f.write(make_payload())
        ses = session()
        h = ses.add_torrent({"ti": ti, "save_path": d})
        deadline = time.time() + 20
        while not h.status().is_seeding:
            if time.time() > deadline:
                raise RuntimeError("libtorrent did not start seeding")
            time.sleep(0.05)
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        h.connect_peer(lst.getsockname())
        lst.settimeout(10)
        conn, _ = lst.accept()
        conn.settimeout(10)
        theirs = recv_exact(conn, 68)
        reserved = bytearray(8)
        reserved[5] |= 0x10  # extension protocol
        if fast:
            reserved[7] |= 0x04
        conn.sendall(b"\x13BitTorrent protocol" + bytes(reserved) + theirs[28:48] + b"-PY0001-capture00000")
        received = theirs
        ours_ext = lt.bencode({"m": {"ut_metadata": 3}, "v": "capture.py"})
        conn.sendall(msg(20, b"\x00" + ours_ext) + msg(2))
        sent_meta = sent_block = sent_hashes = False
        deadline = time.time() + 8
        conn.settimeout(0.2)
        while time.time() < deadline:
            try:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
            except socket.timeout:
                pass
            got, _ = frames(received[68:])
            ids = [i for i, _ in got]
            ext = [p for i, p in got if i == 20 and p[:1] == b"\x00"]
            if ext and not sent_meta:
                their_m = lt.bdecode(ext[0][1:])[b"m"]
                meta_id = their_m[b"ut_metadata"]
                req = lt.bencode({"msg_type": 0, "piece": 0})
                conn.sendall(msg(20, bytes([meta_id]) + req))
                sent_meta = True
            if 1 in ids and not sent_block:
                conn.sendall(msg(6, struct.pack(">III", 1, 0, 16384)))
                sent_block = True
            if v2_hash_request and ext and not sent_hashes:
                root = ti.files().root(0).to_bytes()
                # The piece layer of a 32 KiB-piece file: one layer above the 16 KiB blocks.
                conn.sendall(msg(21, root + struct.pack(">IIII", 1, 0, PIECES, 0)))
                sent_hashes = True
            done = 7 in ids and any(i == 20 and p[:1] == b"\x03" for i, p in got)
            if done and (not v2_hash_request or 22 in ids or 23 in ids):
                break
        conn.close()
        lst.close()
        del ses
    _, used = frames(received[68:])
    return received[: 68 + used], root


def main():
    facts = []
    hybrid = make_torrent_in_tmp(0)
    data, _ = capture(hybrid, fast=False, v2_hash_request=False)
    with open(os.path.join(HERE, "libtorrent-hybrid-v1.bin"), "wb") as f:
        f.write(data)
    facts.append("hybrid_v1_info_hash " + hybrid.info_hashes().v1.to_bytes().hex())
    facts.append("hybrid_metadata_size %d" % hybrid.metadata_size())
    facts.append("hybrid_metadata_sha1 " + hashlib.sha1(hybrid.info_section()).hexdigest())

    v2 = make_torrent_in_tmp(lt.create_torrent.v2_only)
    data, root = capture(v2, fast=True, v2_hash_request=True)
    with open(os.path.join(HERE, "libtorrent-v2.bin"), "wb") as f:
        f.write(data)
    facts.append("v2_info_hash " + v2.info_hashes().v2.to_bytes().hex())
    facts.append("v2_metadata_size %d" % v2.metadata_size())
    facts.append("v2_pieces_root " + root.hex())
    facts.append("piece_length %d" % PIECE)
    facts.append("pieces %d" % PIECES)
    facts.append("libtorrent_version " + lt.__version__)
    with open(os.path.join(HERE, "libtorrent-captures.txt"), "w") as f:
        f.write("\n".join(facts) + "\n")
    print("\n".join(facts))


def make_torrent_in_tmp(flags):
    with tempfile.TemporaryDirectory() as d:
        return make_torrent(d, flags)


if __name__ == "__main__":
    main()
