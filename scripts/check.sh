#!/usr/bin/env bash
# Every check that is not a test, in order: Python lint, types, the stub
# against the compiled extension, the API reference (no warnings), Rust format
# and lints, then the release wheel in a clean venv and on every supported
# Python. Stops at the first failure.
#
#   scripts/check.sh             everything (CI runs this)
#   scripts/check.sh --no-wheel  skip the release build and the other Pythons
#                                (quicker, local)
#
# Needs the package installed in development mode first
# (`pip install -e '.[test]'`), so stubtest sees the current extension.
set -euo pipefail
cd "$(dirname "$0")/.."

wheel=1
for arg in "$@"; do
    case "$arg" in
        --no-wheel) wheel=0 ;;
        *) echo "usage: scripts/check.sh [--no-wheel]" >&2; exit 2 ;;
    esac
done

PYTHON=${PYTHON:-python}
start=$SECONDS
step() { printf '\n== %s\n' "$*"; }

step "ruff check"
"$PYTHON" -m ruff check python tests examples benches scripts

step "mypy --strict"
"$PYTHON" -m mypy --strict python/ferroproc tests/typing_usage.py

step "stubtest"
# stubtest compares the stub with the extension that is imported: refuse a
# stale build rather than pass against old code.
so=$("$PYTHON" -c 'import ferroproc._core as c; print(c.__file__)')
if [ -n "$(find src crates Cargo.toml -newer "$so" -print -quit)" ]; then
    echo "the built extension ($so) is older than src/: run 'pip install -e .' first" >&2
    exit 1
fi
"$PYTHON" -m mypy.stubtest ferroproc --mypy-config-file pyproject.toml --allowlist stubtest_allowlist.txt

step "API reference (pdoc, fails on warnings)"
"$PYTHON" scripts/docs.py

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --quiet --workspace --all-targets -- -D warnings

if [ "$wheel" = 1 ]; then
    step "wheel"
    bash scripts/check_wheel.sh
fi

printf '\nall checks passed in %ss\n' "$((SECONDS - start))"
