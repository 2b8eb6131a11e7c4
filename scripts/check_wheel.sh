#!/usr/bin/env bash
# The release artefacts work on their own: build the wheel (it must be a
# manylinux wheel carrying the stubs), install it alone into a fresh venv and
# run examples/wc.py there from outside the repository; build the sdist too.
# Then the same wheel on every other supported Python (scripts/test_pythons.sh:
# the test suite in a fresh venv of 3.10, 3.12 and 3.13).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"

# Linking through zig against glibc 2.17 gives a manylinux2014 wheel that
# installs on every current distribution; a plain build on this machine's glibc
# would be tagged manylinux_2_34 (glibc 2.34 symbol versions). ziglang comes
# from the test extra.
maturin build --release --quiet --zig --compatibility manylinux2014 -o "$tmp/dist"
wheels=("$tmp"/dist/*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
    echo "expected one wheel, got: ${wheels[*]}" >&2
    exit 1
fi
wheel=${wheels[0]}
echo "wheel: $(basename "$wheel")"
case "$(basename "$wheel")" in
    *-abi3-manylinux2014_x86_64*) ;;
    *) echo "not an abi3 manylinux2014 wheel" >&2; exit 1 ;;
esac
"$PYTHON" - "$wheel" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = {"ferroproc/py.typed", "ferroproc/_core.pyi", "ferroproc/interfaces.py", "ferroproc/protocol.py"}
missing = sorted(need - names)
if missing:
    sys.exit(f"wheel lacks {missing}")
PY

maturin sdist -o "$tmp/sdist"
echo "sdist: $(basename "$tmp"/sdist/*.tar.gz)"

"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --no-deps --no-index "$wheel"
# From a directory outside the repo, isolated (-I: no PYTHONPATH, user site
# or script directory on sys.path), so only the installed wheel can be found.
cd "$tmp"
"$tmp/venv/bin/python" -I -c '
import sys, ferroproc
assert ferroproc.__file__.startswith(sys.prefix), ferroproc.__file__
print("imported", ferroproc.__file__)'
out=$("$tmp/venv/bin/python" -I "$root/examples/wc.py")
echo "$out"
grep -q "^Words: 6$" <<<"$out" || { echo "examples/wc.py gave unexpected output" >&2; exit 1; }

# The wheel claims every CPython >= 3.10 (abi3): prove it on the others.
bash "$root/scripts/test_pythons.sh" "$wheel"
