"""The debug log's cost: before it existed, with it off, with it on; variants alternate,
each run in a fresh interpreter.

usage: debuglog_ab.py ROUNDS BEFORE_DIR [N_SEQ N_C64]

``BEFORE_DIR`` holds a copy of ``python/ferroproc`` (with its ``_core*.so``) built before
the debug log, put first on ``PYTHONPATH``; the other two variants use the installed
package, with the ``ferroproc`` logger at its default (off) or at DEBUG writing every line
to ``/dev/null`` through a ``FileHandler`` (formatted and written, as a real log would be).

Two scenarios: S1 one at a time on ferroproc's reactor (Twisted's API), and S1 64 at once
with asyncio's API on ferroproc's loop (``asyncio-ferroproc``). Prints, per scenario and
variant, the median rate and the median CPU time of the parent per spawn (the steadier
figure on a shared machine), with their ranges.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

BENCHES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = """
import json, logging, os, resource, sys
sys.path.insert(0, {benches!r})
if {on}:
    log = logging.getLogger("ferroproc")
    handler = logging.FileHandler(os.devnull)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
if {scenario!r} == "seq":
    import impl_twisted
    api = impl_twisted.load("ferroproc")
    run = lambda n: impl_twisted.spawn_rate(api, {{"n": n, "conc": 1}})
else:
    import impl_asyncio
    loop = impl_asyncio.load("asyncio-ferroproc")
    run = lambda n: loop(impl_asyncio.spawn_rate({{"n": n, "conc": 64}}))
run(200)
r0 = resource.getrusage(resource.RUSAGE_SELF)
res = run({n})
r1 = resource.getrusage(resource.RUSAGE_SELF)
assert res.get("failures", 0) == 0, res
cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / {n} * 1e6
print(json.dumps({{"rate": res["rate"], "cpu_us": cpu}}))
"""

VARIANTS = ["before", "off", "on"]


def one(scenario: str, variant: str, n: int, before: str) -> dict[str, float]:
    env = dict(os.environ)
    if variant == "before":
        env["PYTHONPATH"] = before
    code = CODE.format(benches=BENCHES, on=variant == "on", scenario=scenario, n=n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    rounds, before = int(sys.argv[1]), sys.argv[2]
    sizes = {
        "seq": int(sys.argv[3]) if len(sys.argv) > 3 else 2000,
        "c64": int(sys.argv[4]) if len(sys.argv) > 4 else 2000,
    }
    got: dict[tuple[str, str], list[dict[str, float]]] = {}
    for r in range(rounds):
        for scenario, n in sizes.items():
            # Rotate the order too, so that no variant always runs first.
            for variant in VARIANTS[r % 3 :] + VARIANTS[: r % 3]:
                got.setdefault((scenario, variant), []).append(one(scenario, variant, n, before))
    for (scenario, variant), runs in got.items():
        rates, cpus = [r["rate"] for r in runs], [r["cpu_us"] for r in runs]
        rate = f"{statistics.median(rates):6.0f} spawns/s ({min(rates):.0f}-{max(rates):.0f})"
        cpu = f"parent CPU {statistics.median(cpus):6.1f} us per spawn ({min(cpus):.1f}-{max(cpus):.1f})"
        print(f"S1/{scenario:4s} {variant:7s} {rate}, {cpu}")


if __name__ == "__main__":
    main()
