"""BEP 44 items and BEP 51 samples between mycel and libtorrent 2.1.1 on loopback.

libtorrent puts an immutable item and mutable items (with and without salt) that `mycel dht
get` reads and checks; mycel puts items (`mycel dht put`) that libtorrent's
dht_get_immutable_item / dht_get_mutable_item read back.

libtorrent's bindings take the 64-byte expanded ed25519 secret key of its own ed25519
library (SHA-512 of the seed, clamped, then the hash's second half) and have no key
generation, so the key pair is made here from a seed with hashlib and PyNaCl.
`dht_put_mutable_item` stores `data` as a bencoded string and signs seq = (highest found) + 1.
"""

from __future__ import annotations

import hashlib
import os
import time

import libtorrent as lt
import nacl.signing

from harness import fmt_addr, krpc_ping, run_mycel, sha1, wait_for_alert
from test_dht import wait_in_table


def lt_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """(public key, 64-byte expanded secret key as libtorrent's ed25519 wants it)."""
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    public = nacl.signing.SigningKey(seed).verify_key.encode()
    return public, bytes(h)


def item_bytes(item) -> bytes:
    """The value of an item alert: libtorrent 2.1.1 gives the entry itself, 2.0.x wraps it in a
    dict with 'key' and 'value'."""
    if isinstance(item, dict) and "value" in item:
        item = item["value"]
    if isinstance(item, str):
        return item.encode()
    return bytes(item)


def joined_network(mycel_node, lt_session, count: int = 2):
    """A mycel node and `count` libtorrent sessions that hold it in their routing tables."""
    node = mycel_node()
    sessions = [lt_session() for _ in range(count)]
    for s in sessions:
        s.ses.add_dht_node(node.addr)
    for s in sessions:
        lt_id = krpc_ping(s.addr)
        assert lt_id is not None, f"libtorrent {fmt_addr(s.addr)} stopped answering pings"
        wait_in_table(s, lt_id, node.addr, timeout=20)
    return node, sessions


def mycel_get(node, listen: str, *key_args: str) -> dict:
    done = run_mycel(
        ["dht", "get", *key_args, "--bootstrap", fmt_addr(node.addr), "--listen", listen, "--timeout", "10", "--json"],
        timeout=30,
    )
    return done


def wait_put(s, timeout: float = 20):
    alert = wait_for_alert(s, lt.dht_put_alert, timeout=timeout)
    assert alert.num_success >= 1, f"libtorrent put stored nowhere: {alert.message()}"
    return alert


def read_until(node, listen_fn, args, check, timeout: float = 30):
    """Runs `mycel dht get` until `check(reply)` holds (the put may still be spreading)."""
    deadline = time.monotonic() + timeout
    replies = []
    while True:
        done = mycel_get(node, listen_fn(), *args)
        if done.returncode == 0:
            reply = done.json()
            if check(reply):
                return reply
            replies.append(reply)
        else:
            replies.append(done.describe())
        assert time.monotonic() < deadline, f"mycel dht get {args} never saw the value: {replies[-3:]}"
        time.sleep(1.0)


def test_mycel_reads_libtorrent_immutable_item(mycel_node, lt_session, one_shot_listen):
    node, (s, _) = joined_network(mycel_node, lt_session)
    value = f"immutable from libtorrent {os.urandom(4).hex()}"
    target = s.ses.dht_put_immutable_item(value.encode())
    wait_put(s)
    expected_target = hashlib.sha1(f"{len(value)}:{value}".encode()).hexdigest()
    assert str(target) == expected_target
    reply = read_until(node, one_shot_listen, [expected_target], lambda r: r["found"])
    assert reply["kind"] == "chk" and reply["value"] == value, reply


def test_mycel_reads_libtorrent_mutable_items(mycel_node, lt_session, one_shot_listen):
    node, (s, _) = joined_network(mycel_node, lt_session)
    public, secret = lt_keypair(os.urandom(32))
    for salt in (b"", b"profile"):
        value = f"mutable from libtorrent, salt {salt!r}"
        s.ses.dht_put_mutable_item(secret, public, value.encode(), salt)
        wait_put(s)
        key = public.hex() + (f"/{salt.decode()}" if salt else "")
        reply = read_until(node, one_shot_listen, [key], lambda r: r["found"] and r["value"] == value)
        assert reply["kind"] == "ssk" and reply["seq"] == 1 and reply["authenticated"], reply
        assert reply["invalid"] == 0, reply


def test_libtorrent_reads_mycel_items(mycel_node, lt_session, one_shot_listen, tmp_path):
    node, (s, _) = joined_network(mycel_node, lt_session)
    common = ["--bootstrap", fmt_addr(node.addr), "--timeout", "10", "--json"]

    value = f"immutable from mycel {os.urandom(4).hex()}"
    put = run_mycel(["dht", "put", "--immutable", value, "--listen", one_shot_listen(), *common], timeout=30).json()
    assert put["stored"] >= 1, put
    s.ses.dht_get_immutable_item(sha1(put["target"]))
    alert = wait_for_alert(s, lt.dht_immutable_item_alert, lambda a: str(a.target) == put["target"], timeout=20)
    assert item_bytes(alert.item) == value.encode(), alert.message()

    key_file = tmp_path / "ssk.key"
    run_mycel(["keygen", "--out", str(key_file)], timeout=10)
    assert (key_file.stat().st_mode & 0o777) == 0o600
    for name in ("blog", None):
        value = f"signed by mycel under {name!r}"
        args = ["dht", "put", "--key", str(key_file), "--name", name or "", value, "--listen", one_shot_listen()]
        put = run_mycel([*args, *common], timeout=30).json()
        assert put["kind"] == "ssk" and put["stored"] >= 1 and put["seq"] == 1, put
        public = bytes.fromhex(put["key"].split("/")[0])
        salt = (name or "").encode()
        deadline = time.monotonic() + 20
        while True:
            s.ses.dht_get_mutable_item(public, salt)
            alert = wait_for_alert(s, lt.dht_mutable_item_alert, lambda a: bytes(a.key) == public, timeout=10)
            if alert.seq == 1 and item_bytes(alert.item) == value.encode():
                assert bytes(alert.salt) == salt
                break
            assert time.monotonic() < deadline, f"libtorrent read {alert.message()}"
            time.sleep(1.0)


def test_bep51_samples_both_ways(mycel_node, lt_session, one_shot_listen):
    """libtorrent samples what mycel stores, and `mycel dht sample` reads libtorrent's."""
    node, (s,) = joined_network(mycel_node, lt_session, count=1)
    info_hash = os.urandom(20)
    done = run_mycel(
        ["dht", "announce", info_hash.hex(), "--port", "4000", "--bootstrap", fmt_addr(node.addr),
         "--listen", one_shot_listen(), "--timeout", "10", "--json"],
        timeout=30,
    )
    assert done.json()["announced_to"] >= 1, done.describe()

    s.ses.dht_sample_infohashes(node.addr, sha1(os.urandom(20)))
    alert = wait_for_alert(s, lt.dht_sample_infohashes_alert, timeout=10)
    assert alert.num_infohashes >= 1, alert.message()
    samples = {str(h) for h in alert.samples}
    # The one-shot node announced to everyone closest: mycel and libtorrent both hold it.
    assert info_hash.hex() in samples, f"libtorrent's sample of mycel: {samples} ({alert.message()})"

    reply = run_mycel(
        ["dht", "sample", fmt_addr(s.addr), "--listen", one_shot_listen(), "--timeout", "10", "--json"],
        timeout=30,
    ).json()
    assert reply["supported"] and reply["num"] >= 1, reply
    assert info_hash.hex() in reply["samples"], reply
