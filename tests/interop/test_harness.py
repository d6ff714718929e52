"""libtorrent against libtorrent: proves the harness (settings, addresses, alert pump, the
binding shapes it relies on) before any mycel test is blamed. No mycel binary needed."""

import os

import libtorrent as lt

from harness import krpc_ping, live_node_endpoints, reply_peers, sha1, wait_for_alert


def test_two_libtorrent_sessions_find_each_other(lt_session):
    a, b = lt_session(), lt_session()
    a.ses.add_dht_node(b.addr)
    b.ses.add_dht_node(a.addr)

    # The routing table check the mycel tests use, with the id learned by a ping.
    a_id = krpc_ping(a.addr)
    assert a_id is not None
    deadline_tries = 20
    for _ in range(deadline_tries):
        a.ses.dht_live_nodes(sha1(a_id))
        alert = wait_for_alert(a, lt.dht_live_nodes_alert, timeout=5)
        assert str(alert.node_id) == a_id
        if b.addr in live_node_endpoints(alert):
            break
        a.ses.wait_for_alert(500)
    else:
        raise AssertionError(f"{b.addr} never entered {a.addr}'s routing table")

    # An announce by one is found by the other, with the explicit port.
    info_hash, port = os.urandom(20), 17001
    a.ses.dht_announce(sha1(info_hash), port, 0)
    wanted = (a.addr[0], port)
    for _ in range(10):
        b.ses.dht_get_peers(sha1(info_hash))
        try:
            alert = wait_for_alert(
                b,
                lt.dht_get_peers_reply_alert,
                lambda al: str(al.info_hash) == info_hash.hex() and wanted in reply_peers(al),
                timeout=3,
            )
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"{b.addr} never found {wanted} for {info_hash.hex()}")
    assert alert.num_peers() >= 1
