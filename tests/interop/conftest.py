"""Fixtures for the libtorrent <-> mycel interop tests.

Every node gets its own /24 on loopback (127.70.N.1, see harness.fresh_ip) and a port found
free by binding port 0; nothing ever leaves 127.0.0.0/8. The mycel binary comes from
$MYCEL_BIN (default target/release/mycel).
"""

from __future__ import annotations

import signal

import pytest

import harness

# A backstop only: every wait in the tests has its own, much shorter timeout.
TEST_DEADLINE_S = 100


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _deadline():
    def expired(_signum, _frame):
        raise DeadlineExceeded(f"test still running after {TEST_DEADLINE_S}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_DEADLINE_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def fresh_addr():
    """`fresh_addr(block=70) -> (ip, port)`: a loopback IP in its own /24 and a free port."""

    def make(block: int = harness.BLOCK_NODES) -> tuple[str, int]:
        ip = harness.fresh_ip(block)
        return ip, harness.free_port(ip)

    return make


@pytest.fixture
def one_shot_listen():
    """`one_shot_listen() -> "127.71.N.1:0"`: a --listen value for a one-shot command."""
    return lambda: f"{harness.fresh_ip(harness.BLOCK_ONE_SHOT)}:0"


@pytest.fixture
def lt_session():
    """`lt_session() -> harness.LtNode`: a libtorrent session whose DHT answers pings. All
    sessions of a test are torn down after it."""
    nodes = []

    def make() -> harness.LtNode:
        node = harness.start_lt_session()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.ses.pause()
    nodes.clear()  # the last reference: the session shuts down here


@pytest.fixture
def mycel_node(request, tmp_path):
    """`mycel_node(bootstrap=(), extra=()) -> harness.MycelNode`, started and listening.
    Stopped with SIGINT (then SIGKILL) after the test; on failure its stderr tail is shown."""
    nodes: list[harness.MycelNode] = []

    def make(bootstrap=(), extra=()) -> harness.MycelNode:
        ip = harness.fresh_ip(harness.BLOCK_NODES)
        node = harness.MycelNode((ip, harness.free_port(ip)), tmp_path, bootstrap, extra)
        nodes.append(node)
        return node.wait_listening()

    request.node._mycel_nodes = nodes
    yield make
    for node in nodes:
        node.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for node in getattr(item, "_mycel_nodes", []):
            report.sections.append(
                (f"mycel node {' '.join(node.args)}", node.describe()),
            )
