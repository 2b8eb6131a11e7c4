"""Run one measurement of one peer in this (fresh) process and print it as one JSON line.

usage: python benches/runner.py PEER SCENARIO PARAMS_JSON

Called by run.py, once per run, so that no memory, threads, signal handlers or reactor
state carry over from one peer or run to the next. Common parameters handled here:
``pin`` (CPU to pin to, -1 for none; children inherit it), ``nofile`` (raise
RLIMIT_NOFILE to the hard limit), ``mem_mib`` (hold that much touched memory while
measuring, allocated after the peer's imports), ``held`` with ``fds_at`` (S8's other
two curves: hold ``held`` open fds, opened before the peer is imported with
``"import"``, or after it, measuring in a forked child of this process with ``"fork"``,
as a pre-fork server's worker would).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import NotApplicable, fill_fds, hold_memory, pin_to_one_cpu, raise_nofile


def in_forked_child(measure: Any) -> dict[str, Any]:
    """``measure()`` in a forked child of this process; its result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.write(w, json.dumps(measure()).encode())
        except BaseException:  # noqa: BLE001 - reported through the exit code
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        raise RuntimeError(f"the forked child failed (wait status {status})")
    return json.loads(data)  # type: ignore[no-any-return]


MODULES = {
    "ferroproc": "impl_twisted",
    "ferroproc-posix": "impl_twisted",
    "twisted": "impl_twisted",
    "asyncio": "impl_asyncio",
    "asyncio-ferroproc": "impl_asyncio",
    "ferroproc.asyncio": "impl_asyncio",
    "uvloop": "impl_asyncio",
    "uvloop-ferroproc": "impl_asyncio",
    "subprocess": "impl_subprocess",
    "ferroproc-dask": "impl_dask",
}
#: Scenarios some peers run from a module of their own (many jobs: impl_jobs; on Dask: impl_dask).
SCENARIO_MODULES = {"S10": "impl_jobs", "S11": "impl_jobs", "S12": "impl_dask"}


def main() -> int:
    peer, scenario, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if params.get("pin", -1) >= 0:
        pin_to_one_cpu(params["pin"])
    if params.get("nofile"):
        raise_nofile()
    try:
        impl = __import__(SCENARIO_MODULES.get(scenario, MODULES[peer]))
        if scenario not in impl.SCENARIOS:
            raise NotApplicable(f"{peer} has no {scenario}")
        fds_at = params.get("fds_at")
        fds = fill_fds(params["held"]) if fds_at == "import" else []
        ctx = impl.load(peer)
        held = hold_memory(params["mem_mib"]) if params.get("mem_mib") else None
        if fds_at == "fork":
            fds = fill_fds(params["held"])
            result = in_forked_child(lambda: impl.run(ctx, scenario, params))
        else:
            result = impl.run(ctx, scenario, params)
        del held, fds
    except NotApplicable as exc:
        result = {"na": str(exc)}
    except Exception:  # noqa: BLE001 - the harness shows the error and goes on
        traceback.print_exc()
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
