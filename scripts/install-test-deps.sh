#!/usr/bin/env bash
# Installs what the interop tests and benchmarks need on top of Rust: the Python packages
# libtorrent (the reference DHT peer), pynacl (ed25519 for BEP 44) and pytest.
# Idempotent: when every package already imports at the pinned version it returns at once.
# PYTHON picks the interpreter (default python3).
set -euo pipefail

PYTHON=${PYTHON:-python3}
# Pins. libtorrent is exact: the interop tests rely on the 2.1.1 bindings' alert shapes.
LIBTORRENT=2.1.1
PYNACL=1.6.2
PYTEST=9.2.0
REQUIREMENTS=("libtorrent==$LIBTORRENT" "pynacl==$PYNACL" "pytest==$PYTEST")

fail() {
    echo "install-test-deps: $*" >&2
    exit 1
}

command -v "$PYTHON" >/dev/null 2>&1 || fail "$PYTHON not found; install Python 3.11 (apt-get install python3 python3-pip)"

# Exit 0 iff each package imports and has the pinned distribution version.
check() {
    "$PYTHON" - "$LIBTORRENT" "$PYNACL" "$PYTEST" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import libtorrent, nacl.signing, pytest
want = dict(zip(("libtorrent", "pynacl", "pytest"), sys.argv[1:]))
have = {name: version(name) for name in want}
sys.exit(0 if have == want else 1)
PY
}

if check; then
    echo "install-test-deps: libtorrent $LIBTORRENT, pynacl $PYNACL, pytest $PYTEST already installed"
    exit 0
fi

if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    echo "install-test-deps: pip missing, trying ensurepip" >&2
    "$PYTHON" -m ensurepip --upgrade >/dev/null 2>&1 ||
        fail "$PYTHON has no pip and ensurepip failed; install python3-pip"
fi

echo "install-test-deps: pip install ${REQUIREMENTS[*]}"
# PIP_BREAK_SYSTEM_PACKAGES: a Debian-managed interpreter refuses plain installs (PEP 668);
# CI machines are throwaway, so install into it anyway. Older pips ignore the variable.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$PYTHON" -m pip install --quiet "${REQUIREMENTS[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    fail "pip install ${REQUIREMENTS[*]} failed (see above)"
fi

check || fail "installed, but the pinned versions still do not import; run: $PYTHON -c 'import libtorrent, nacl, pytest'"
echo "install-test-deps: ok"
