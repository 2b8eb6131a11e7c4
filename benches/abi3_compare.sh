#!/usr/bin/env bash
# Build the per-version wheel and the abi3 wheels (py311, py310), install each
# alone into its own venv, and run benches/abi3_calls.py in each, interleaved
# (ROUNDS rounds), so the figures in docs/abi3-decision.md can be reproduced:
#
#   bash benches/abi3_compare.sh            # ROUNDS=3 by default
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}
ROUNDS=${ROUNDS:-3}
tmp=${ABI3_TMP:-$(mktemp -d)}
cd "$root"

build() {  # name, maturin options...
    local name=$1; shift
    if ! ls "$tmp/$name"/*.whl >/dev/null 2>&1; then
        maturin build --release --quiet -o "$tmp/$name" "$@"
    fi
    if [ ! -x "$tmp/venv-$name/bin/python" ]; then
        "$PYTHON" -m venv "$tmp/venv-$name"
        "$tmp/venv-$name/bin/python" -m pip install --quiet --no-deps --no-index "$tmp/$name"/*.whl
    fi
    echo "$name: $(basename "$tmp/$name"/*.whl) $(stat -c %s "$tmp/venv-$name"/lib/python3*/site-packages/ferroproc/_core*.so) bytes"
}
build cp311
build abi3-py311 --features abi3
build abi3-py310 --features pyo3/abi3-py310

cd "$tmp"
for round in $(seq "$ROUNDS"); do
    for name in cp311 abi3-py311 abi3-py310; do
        printf '%s round %s: ' "$name" "$round"
        "$tmp/venv-$name/bin/python" -I "$root/benches/abi3_calls.py" "$@"
    done
done
