"""Run one measurement of one peer in this (fresh) process and print it as one JSON line.

usage: python benches/runner.py PEER SCENARIO PARAMS_JSON

Called by run.py, once per run, so that no memory, threads, signal handlers or reactor
state carry over from one peer or run to the next. Common parameters handled here:
``pin`` (CPU to pin to, -1 for none; children inherit it), ``nofile`` (raise
RLIMIT_NOFILE to the hard limit), ``mem_mib`` (hold that much touched memory while
measuring, allocated after the peer's imports).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import NotApplicable, hold_memory, pin_to_one_cpu, raise_nofile

MODULES = {
    "ferroproc": "impl_twisted",
    "ferroproc-posix": "impl_twisted",
    "twisted": "impl_twisted",
    "asyncio": "impl_asyncio",
    "asyncio-ferroproc": "impl_asyncio",
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
        ctx = impl.load(peer)
        held = hold_memory(params["mem_mib"]) if params.get("mem_mib") else None
        result = impl.run(ctx, scenario, params)
        del held
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
