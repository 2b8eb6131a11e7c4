#!/usr/bin/env bash
# Other projects' own subprocess tests on ferroproc's asyncio loop:
#   anyio's tests/test_subprocesses.py and tests/test_to_process.py, with
#   ferroproc.asyncio.new_event_loop added to its conftest's loop factories;
#   uvloop's tests/test_process.py (the asyncio classes), on a base test case
#   whose loop is ferroproc's.
# Not part of `make test`: it downloads both projects' sources from PyPI.
# Needs ferroproc installed in the Python that runs it (pip install -e .).
#
#   bash scripts/foreign_suites.sh
#
# Settings (environment): PYTHON (default python3), ANYIO and UVLOOP (the
# versions whose tests are run; the patch below is made for these).
set -euo pipefail
PYTHON=${PYTHON:-python3}
ANYIO=${ANYIO:-4.16.0}
UVLOOP=${UVLOOP:-0.23.0}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$PYTHON" -m venv --system-site-packages "$tmp/venv"
py="$tmp/venv/bin/python"
"$py" -c 'import ferroproc' || { echo "ferroproc is not installed for $PYTHON" >&2; exit 1; }
"$py" -m pip install -q "anyio==$ANYIO" "uvloop==$UVLOOP" pytest pytest-mock pytest-timeout trustme blockbuster psutil
"$py" -m pip download -q --no-deps --no-binary :all: -d "$tmp/src" "anyio==$ANYIO" "uvloop==$UVLOOP"
tar -xzf "$tmp/src/anyio-$ANYIO.tar.gz" -C "$tmp/src"
tar -xzf "$tmp/src/uvloop-$UVLOOP.tar.gz" -C "$tmp/src"

# anyio: one more loop factory among its asyncio parameters.
anyio="$tmp/src/anyio-$ANYIO"
"$py" - "$anyio/tests/conftest.py" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
anchor = "if sys.version_info >= (3, 12):\n\n    def eager"
if anchor not in text:
    sys.exit(f"{path}: the place for ferroproc's loop factory was not found (another anyio version?)")
extra = (
    "import ferroproc.asyncio as _ferroproc\n\n"
    "asyncio_params.append(\n"
    "    pytest.param((\"asyncio\", {\"debug\": True, \"loop_factory\": _ferroproc.new_event_loop}), id=\"asyncio+ferroproc\")\n"
    ")\n"
)
open(path, "w").write(text.replace(anchor, extra + anchor, 1))
PY
echo "== anyio $ANYIO: subprocess and worker-process tests on ferroproc's loop"
(cd "$anyio" && "$py" -m pytest -q -p no:cacheprovider tests/test_subprocesses.py tests/test_to_process.py -k ferroproc)

# uvloop: its process test classes on a test case whose loop is ferroproc's
# (uvloop's tests import its installed package; only the tests come from the sdist).
uv="$tmp/uvloop-tests"
mkdir -p "$uv"
cp -r "$tmp/src/uvloop-$UVLOOP/tests" "$uv/uvtests"
cat >"$uv/test_ferroproc_process.py" <<'PY'
from uvloop import _testbase as tb
from uvtests import test_process as tp

import ferroproc.asyncio as fa


class FerroprocTestCase(tb.BaseTestCase):
    implementation = "asyncio"

    def new_loop(self):
        return fa.new_event_loop()

    def new_policy(self):
        return fa.EventLoopPolicy()


class Test_Ferroproc_Process(tp._TestProcess, FerroprocTestCase):
    pass


class TestAsyncio_Ferroproc_Process(tp._AsyncioTests, FerroprocTestCase):
    pass
PY
echo "== uvloop $UVLOOP: process tests on ferroproc's loop"
# -s: some tests redirect the process's own fds 1 and 2, which capturing hides.
(cd "$uv" && "$py" -m pytest -q -s -p no:cacheprovider -p no:anyio test_ferroproc_process.py | tail -n 3)
