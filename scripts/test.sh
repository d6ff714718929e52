#!/usr/bin/env bash
# The project's test command: Rust unit and integration tests, then the interop suite that
# drives libtorrent against the mycel binary. Exits non-zero if any step fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
export PYTHON
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$PWD/$TARGET_DIR ;; esac

section() {
    printf '\n==== %s ====\n' "$*"
}

section "install test dependencies"
./scripts/install-test-deps.sh

section "cargo build --release --workspace --bins"
cargo build --release --workspace --bins

# Release: the 100-node integration tests are much quicker optimised.
section "cargo test --workspace --release"
cargo test --workspace --release

section "interop tests: libtorrent <-> mycel (pytest tests/interop)"
export MYCEL_BIN=${MYCEL_BIN:-$TARGET_DIR/release/mycel}
set +e
"$PYTHON" -m pytest -q -p no:cacheprovider tests/interop
status=$?
set -e
case $status in
    0) ;;
    5) echo "test.sh: pytest collected no tests in tests/interop: that is a failure" >&2 ;;
    *) echo "test.sh: interop tests failed (pytest exit $status)" >&2 ;;
esac
if [ "$status" -ne 0 ]; then
    exit "$status"
fi

section "all tests passed"
