"""Plumbing for the interop tests: loopback addresses, libtorrent sessions, the alert pump, a raw
KRPC ping, and mycel subprocesses. The fixtures in conftest.py wrap these; tests import the
helpers they call directly.

Facts this relies on are in shared/notes/libtorrent-on-loopback.md; the shapes of the 2.1.1
Python bindings were checked by hand:
- `session.dht_announce(sha1_hash, port=0, flags=0)`; with an explicit port and flags 0 the
  announce_peer carries that port and implied_port 0.
- `dht_live_nodes_alert`: `.node_id` (sha1_hash), `.num_nodes`, `.nodes` a list of dicts
  `{'nid': sha1_hash, 'endpoint': (ip, port)}`.
- `dht_get_peers_reply_alert`: `.info_hash` (sha1_hash, `str()` gives hex) and `.peers()`, a
  *method* returning a list of `(ip, port)` tuples (`.num_peers()` is a method too).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import libtorrent as lt

REPO = Path(__file__).resolve().parents[2]

# Second octets of the address blocks; every address gets its own /24 inside its block.
BLOCK_NODES = 70  # long-running nodes: libtorrent sessions and `mycel dht node`
BLOCK_ONE_SHOT = 71  # temporary nodes of one-shot commands (ping, get-peers, announce)
BLOCK_PROBES = 72  # the harness's own raw KRPC probes

_counters = collections.defaultdict(itertools.count)


def fresh_ip(block: int = BLOCK_NODES) -> str:
    """A loopback IP in a /24 of its own: 127.<block>.N.1, N counting up per block."""
    n = next(_counters[block])
    return f"127.{block}.{n % 254 + 1}.1"


def free_port(ip: str) -> int:
    """A port free for both UDP and TCP on `ip` (libtorrent listens on both), found by binding
    port 0 and releasing it. Racy in principle; on a test machine good enough."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((ip, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((ip, port))
                except OSError:
                    continue
        return port
    raise RuntimeError(f"no port free for both UDP and TCP on {ip}")


def fmt_addr(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"


def parse_addr(text: str) -> tuple[str, int]:
    ip, _, port = text.rpartition(":")
    return ip, int(port)


# --- libtorrent ------------------------------------------------------------------------------

ALERT_MASK = int(
    lt.alert_category.dht
    | lt.alert_category.dht_operation
    | lt.alert_category.status
    | lt.alert_category.error
)


def lt_settings(ip: str, port: int) -> dict:
    """Every setting goes to the constructor: applied later, the defaults (LSD, UPnP, listening
    on 0.0.0.0:6881, a DNS lookup of the bootstrap host) would already have run."""
    return {
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_bootstrap_nodes": "",
        # A literal IP: libtorrent starts no DHT on sockets it flags as local-network.
        "listen_interfaces": f"{ip}:{port}",
        "enable_dht": True,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_block_ratelimit": 100000,
        # 0 would mean "send nothing"; the default 8000 B/s throttles replies in tests.
        "dht_upload_rate_limit": 2000000,
        "alert_mask": ALERT_MASK,
        "allow_multiple_connections_per_ip": True,
    }


@dataclass
class LtNode:
    """A libtorrent session with its DHT on `addr`."""

    ses: lt.session
    addr: tuple[str, int]
    seen: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))


def start_lt_session(ip: str | None = None, ready_timeout: float = 15.0) -> LtNode:
    """Starts a session and returns once its DHT answers a ping."""
    ip = ip or fresh_ip(BLOCK_NODES)
    port = free_port(ip)
    node = LtNode(lt.session(lt_settings(ip, port)), (ip, port))
    if krpc_ping(node.addr, timeout=ready_timeout) is None:
        messages = [a.message() for a in node.ses.pop_alerts()]
        raise AssertionError(
            f"libtorrent DHT on {fmt_addr(node.addr)} did not answer a ping within "
            f"{ready_timeout}s; alerts: {messages}"
        )
    return node


def wait_for_alert(node: LtNode, alert_type, predicate=None, timeout: float = 10.0):
    """Pumps `node`'s alerts until one of `alert_type` satisfies `predicate`; returns it.

    Alerts that do not match are consumed (their messages kept in `node.seen` for the failure
    message). Raises AssertionError after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        for alert in node.ses.pop_alerts():
            if isinstance(alert, alert_type) and (predicate is None or predicate(alert)):
                return alert
            node.seen.append(f"{type(alert).__name__}: {alert.message()}")
        left = deadline - time.monotonic()
        if left <= 0:
            recent = "\n  ".join(node.seen) or "(none)"
            raise AssertionError(
                f"no {alert_type.__name__} matching the predicate within {timeout}s on "
                f"libtorrent {fmt_addr(node.addr)}; recent alerts:\n  {recent}"
            )
        node.ses.wait_for_alert(max(1, min(250, int(left * 1000))))


def live_node_endpoints(alert) -> set[tuple[str, int]]:
    """The (ip, port) of every node in a dht_live_nodes_alert (dicts in 2.1.1, tuples
    tolerated)."""
    out = set()
    for entry in alert.nodes:
        endpoint = entry["endpoint"] if isinstance(entry, dict) else entry[-1]
        out.add((str(endpoint[0]), int(endpoint[1])))
    return out


def reply_peers(alert) -> set[tuple[str, int]]:
    """The peers of a dht_get_peers_reply_alert (`peers` is a method in 2.1.1)."""
    peers = alert.peers() if callable(alert.peers) else alert.peers
    return {(str(ip), int(port)) for ip, port in peers}


def sha1(hex_or_bytes) -> lt.sha1_hash:
    raw = bytes.fromhex(hex_or_bytes) if isinstance(hex_or_bytes, str) else hex_or_bytes
    return lt.sha1_hash(raw)


def krpc_ping(addr: tuple[str, int], timeout: float = 5.0) -> str | None:
    """Pings `addr` with a raw KRPC query from a probe IP; returns the node id as hex, or None.

    The query carries the BEP 43 read-only flag so the probe never enters the target's
    routing table (it would otherwise show up in later routing-table checks)."""
    query = b"d1:ad2:id20:" + os.urandom(20) + b"e1:q4:ping2:roi1e1:t2:hp1:y1:qe"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((fresh_ip(BLOCK_PROBES), 0))
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(query, addr)
            try:
                data, _ = s.recvfrom(4096)
            except (socket.timeout, ConnectionRefusedError):
                continue
            at = data.find(b"2:id20:")
            if b"1:t2:hp" in data and b"1:y1:r" in data and at >= 0:
                return data[at + 7 : at + 27].hex()
    return None


# --- mycel -----------------------------------------------------------------------------------


def mycel_bin() -> str:
    path = Path(os.environ.get("MYCEL_BIN", "target/release/mycel"))
    if not path.is_absolute():
        path = REPO / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise AssertionError(
            f"mycel binary {path} not found or not executable: build it with "
            "`cargo build --release --workspace --bins` or set MYCEL_BIN"
        )
    return str(path)


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class OneShot:
    """The result of a one-shot mycel command."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"`mycel {' '.join(self.args)}` exited {self.returncode}\n"
            f"stdout:\n{tail(self.stdout)}\nstderr (tail):\n{tail(self.stderr)}"
        )

    def json(self) -> dict:
        assert self.returncode == 0, self.describe()
        try:
            return json.loads(self.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            raise AssertionError(f"stdout is not one JSON object ({e}): {self.describe()}")


def end_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, if it still runs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)


def run_mycel(args: list[str], timeout: float = 30.0) -> OneShot:
    """Runs a one-shot command with a hard timeout; never raises on a non-zero exit."""
    try:
        done = subprocess.run(
            [mycel_bin(), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError(
            f"`mycel {' '.join(args)}` still running after {timeout}s\n"
            f"stdout:\n{tail(out)}\nstderr (tail):\n{tail(err)}"
        ) from None
    return OneShot(args, done.returncode, done.stdout, done.stderr)


class MycelNode:
    """A long-running `mycel dht node` subprocess. Its stderr goes to a file so a full pipe can
    never block it and its tail can be shown when a test fails."""

    def __init__(self, listen: tuple[str, int], workdir: Path, bootstrap=(), extra=()):
        binary = mycel_bin()
        self.stderr_path = workdir / f"mycel-{listen[0]}-{listen[1]}.stderr"
        data_dir = workdir / f"data-{listen[0]}-{listen[1]}"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.args = ["dht", "node", "--listen", fmt_addr(listen), "--json"]
        self.args += ["--data-dir", str(data_dir)]
        for b in bootstrap:
            self.args += ["--bootstrap", b if isinstance(b, str) else fmt_addr(b)]
        self.args += list(extra)
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [binary, *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._lines: collections.deque = collections.deque()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.addr: tuple[str, int] | None = None
        self.id: str | None = None
        self.returncode: int | None = None

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self._lines.append(raw.decode(errors="replace").rstrip("\n"))

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            return tail(self.stderr_path.read_text(errors="replace"), lines)
        except OSError as e:
            return f"(stderr unreadable: {e})"

    def describe(self) -> str:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return (
            f"`mycel {' '.join(self.args)}` ({state}); stdout so far: {list(self._lines)}\n"
            f"stderr (tail):\n{self.stderr_tail()}"
        )

    def wait_listening(self, timeout: float = 20.0) -> "MycelNode":
        """Waits for the one `{"event":"listening",...}` line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self._lines:
                line = self._lines.popleft()
                try:
                    event = json.loads(line)
                except ValueError:
                    raise AssertionError(f"non-JSON line {line!r} on stdout: {self.describe()}")
                if event.get("event") == "listening":
                    self.addr = parse_addr(event["addr"])
                    self.id = event["id"]
                    assert len(self.id) == 40, f"bad id in {line!r}"
                    return self
            if self.proc.poll() is not None:
                self._reader.join(timeout=1)
                if self._lines:
                    continue
                raise AssertionError(f"mycel node exited before listening: {self.describe()}")
            time.sleep(0.02)
        raise AssertionError(f"no listening line within {timeout}s: {self.describe()}")

    def stop(self, grace: float = 5.0) -> int:
        """SIGINT, then SIGKILL after `grace` seconds; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=grace)
        self.returncode = self.proc.returncode
        self._stderr.close()
        return self.returncode
