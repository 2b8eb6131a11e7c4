#!/usr/bin/env bash
# The one abi3 wheel on every CPython it claims: install WHEEL into a fresh
# venv of each Python in PYTHONS, with the test requirements (pytest,
# hypothesis, uvloop, anyio, blockbuster and Dask distributed, at the test
# extra's ranges; not Twisted), and run PY_TESTS there.
# The tests run from a temporary directory, so the installed wheel is what
# they import (checked: a plugin fails the run if ferroproc comes from
# anywhere but that venv, and prints where it came from).
#
#   scripts/test_pythons.sh WHEEL
#
# scripts/check_wheel.sh runs this with the wheel it has just built, so
# `make test` (and CI) builds the wheel once. Settings (environment):
#   PYTHONS   versions to test (default "3.10 3.12 3.13"; the development
#             Python, 3.11, runs everything in `make test` itself)
#   PY_TESTS  test files or directories, relative to the repository (default
#             "tests": the whole suite, about 50 s a version). Tests that need
#             Twisted skip themselves: it is not installed here, as in a plain
#             `pip install ferroproc`.
#   PYTHONS_REQUIRED=1  a missing version fails instead of being skipped
#
# Each version is found as pythonX.Y on PATH, else under pyenv
# ($PYENV_ROOT/versions/X.Y.*/bin/python, PYENV_ROOT defaulting to ~/.pyenv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}
PYTHONS=${PYTHONS:-3.10 3.12 3.13}
PY_TESTS=${PY_TESTS:-tests}

if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "usage: scripts/test_pythons.sh WHEEL" >&2
    exit 2
fi
wheel=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")

# The test requirements, with the ranges the test extra pins.
mapfile -t reqs < <("$PYTHON" - "$root/pyproject.toml" <<'PY'
import re, sys, tomllib
extra = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["test"]
for req in extra:
    if re.match(r"(pytest|hypothesis|uvloop|anyio|blockbuster|dask)\b", req):
        print(req)
PY
)
if [ "${#reqs[@]}" -ne 6 ]; then
    echo "could not read pytest, hypothesis, uvloop, anyio, blockbuster and dask from the test extra in pyproject.toml (with $PYTHON, 3.11+)" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A pytest plugin, loaded into each run with -p from the run's directory:
# proves which ferroproc the tests imported.
read -r -d '' origin_plugin <<'PY' || true
import sys

import pytest

import ferroproc


def pytest_configure(config: pytest.Config) -> None:
    if not ferroproc.__file__.startswith(sys.prefix + "/"):
        raise pytest.UsageError(f"ferroproc imported from {ferroproc.__file__}, not from the wheel in {sys.prefix}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(f"ferroproc {ferroproc.__version__} from {ferroproc.__file__}")
PY

# A candidate counts only if it runs and is that version (a pyenv shim for a
# version that is not selected is on PATH but fails).
find_python() {
    local v=$1 p
    for p in "$(command -v "python$v" || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python; do
        if [ -x "$p" ] && [ "$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$v" ]; then
            echo "$p"
            return
        fi
    done
}

targets=()
for t in $PY_TESTS; do
    [ -e "$root/$t" ] || { echo "PY_TESTS: $t not found in $root" >&2; exit 2; }
    targets+=("$root/$t")
done

summary=()
failed=0
for v in $PYTHONS; do
    printf '\n== Python %s: the wheel and %s\n' "$v" "$PY_TESTS"
    py=$(find_python "$v" || true)
    if [ -z "$py" ]; then
        msg="Python $v: SKIPPED, not installed (no python$v on PATH, nothing under ${PYENV_ROOT:-$HOME/.pyenv}/versions/$v.*)"
        echo "$msg"
        summary+=("$msg")
        if [ "${PYTHONS_REQUIRED:-0}" = 1 ]; then failed=1; fi
        continue
    fi
    venv="$tmp/venv-$v"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" "${reqs[@]}"
    full=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
    work="$tmp/run-$v"
    mkdir "$work"
    printf '%s\n' "$origin_plugin" >"$work/wheel_origin.py"
    start=$SECONDS
    # Not -I: it would drop the run directory, which holds the plugin, from
    # sys.path. Unset instead what could put the source tree there.
    set +e
    out=$(cd "$work" && env -u PYTHONPATH -u PYTHONHOME PYTHONDONTWRITEBYTECODE=1 \
        "$venv/bin/python" -m pytest -q -p no:cacheprovider -p wheel_origin \
        --rootdir "$root" "${targets[@]}" 2>&1)
    rc=$?
    set -e
    # All of it when something failed; the origin and the closing line otherwise.
    if [ "$rc" -ne 0 ]; then echo "$out"; else echo "$out" | tail -n 2; fi
    # pytest's closing line: "848 passed, 61 skipped in 31.02s".
    last=$(grep -E ' in [0-9.]+s( \([0-9:]+\))?$' <<<"$out" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//')
    line="Python $full: ${last:-no result line} ($((SECONDS - start)) s)"
    if [ "$rc" -ne 0 ]; then
        line="$line FAILED (pytest exit $rc)"
        failed=1
    fi
    summary+=("$line")
done

printf '\n== the wheel on each Python\n'
printf '%s\n' "${summary[@]}"
exit "$failed"
