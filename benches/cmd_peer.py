"""S10's command-line peers, ``xargs -P`` and GNU parallel, measured from outside.

usage: python benches/cmd_peer.py xargs|parallel N CONC PROG

Feeds N lines to the tool on its stdin (``seq N``), which runs PROG once per line with CONC at
a time (``xargs -P CONC -n 1 PROG``; ``parallel -j CONC -N0 PROG``, GNU parallel's default
grouped output); prints one JSON line: the rate, and the CPU per job of the tool and every job
together (a tool's own CPU cannot be told apart from its children's). Every job gets
``PATH=/usr/bin:/bin``.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time


def main() -> int:
    tool, n, conc, prog = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    path = shutil.which(tool)
    if path is None:
        print(json.dumps({"na": f"{tool} is not installed" + (" (Debian: parallel)" if tool == "parallel" else "")}))
        return 0
    if tool == "xargs":
        cmd = [path, "-P", str(conc), "-n", "1", prog]
    else:
        cmd = [path, "--will-cite", "-j", str(conc), "-N0", prog]
    data = "".join(f"{i}\n" for i in range(1, n + 1)).encode()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, input=data, capture_output=True, env={"PATH": "/usr/bin:/bin"}, check=False)
    dt = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = {"n": n, "seconds": dt, "rate": n / dt, "cpu_all_us": cpu / n * 1e6, "failures": 0}
    if proc.returncode != 0:
        out["failures"] = proc.returncode
        out["stderr"] = proc.stderr.decode(errors="replace")[-300:]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
