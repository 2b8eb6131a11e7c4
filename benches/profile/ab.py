"""Before/after for S1 one at a time: variants alternate, each run in a fresh interpreter.

usage: ab.py ROUNDS N DIR [DIR...]

Each DIR holds a copy of ``python/ferroproc`` (with its ``_core*.so``) and is put first on
``PYTHONPATH``; ``-`` is the installed package. Prints, per variant, the median rate and
the median CPU time of the parent per spawn (the steadier figure on a shared machine).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

BENCHES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = """
import json, resource, sys
sys.path.insert(0, {benches!r})
import impl_twisted
api = impl_twisted.load("ferroproc")
impl_twisted.spawn_rate(api, {{"n": 200, "conc": 1}})
r0 = resource.getrusage(resource.RUSAGE_SELF)
res = impl_twisted.spawn_rate(api, {{"n": {n}, "conc": 1}})
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / {n} * 1e6
print(json.dumps({{"rate": res["rate"], "cpu_us": cpu}}))
"""


def main() -> None:
    rounds, n, dirs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    code = CODE.format(benches=BENCHES, n=n)
    got: dict[str, list[dict[str, float]]] = {d: [] for d in dirs}
    for _ in range(rounds):
        for d in dirs:
            env = dict(os.environ)
            if d != "-":
                env["PYTHONPATH"] = d
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            got[d].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for d, runs in got.items():
        rates, cpus = [r["rate"] for r in runs], [r["cpu_us"] for r in runs]
        print(
            f"{d:28s} {statistics.median(rates):6.0f} spawns/s ({min(rates):.0f}-{max(rates):.0f}), "
            f"parent CPU {statistics.median(cpus):6.1f} us per spawn (min {min(cpus):.1f})"
        )


if __name__ == "__main__":
    main()
