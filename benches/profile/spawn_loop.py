"""S1 one at a time on one peer, with the parent's and the children's CPU per spawn.

usage: spawn_loop.py PEER N   (PEER: ferroproc, ferroproc-posix, twisted, subprocess)

200 warm-up spawns, then N measured; the program to run under perf or strace.
"""

from __future__ import annotations

import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import impl_subprocess
import impl_twisted


def main() -> None:
    peer, n = sys.argv[1], int(sys.argv[2])
    if peer == "subprocess":

        def run(count: int) -> dict[str, float]:
            return impl_subprocess.spawn_rate({"n": count, "conc": 1})
    else:
        api = impl_twisted.load(peer)

        def run(count: int) -> dict[str, float]:
            return impl_twisted.spawn_rate(api, {"n": count, "conc": 1})

    run(200)
    s0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    res = run(n)
    s1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)

    def us(a: float, b: float) -> float:
        return (b - a) / n * 1e6

    print(
        f"{peer}: {res['rate']:.0f} spawns/s ({1e6 / res['rate']:.0f} us each); parent CPU "
        f"user {us(s0.ru_utime, s1.ru_utime):.1f} + sys {us(s0.ru_stime, s1.ru_stime):.1f} us; children "
        f"user {us(c0.ru_utime, c1.ru_utime):.1f} + sys {us(c0.ru_stime, c1.ru_stime):.1f} us; "
        f"voluntary switches {(s1.ru_nvcsw - s0.ru_nvcsw) / n:.1f} per spawn"
    )


if __name__ == "__main__":
    main()
