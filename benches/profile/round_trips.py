"""S5 on one peer: N line echoes through cat.

usage: round_trips.py PEER N CPU   (CPU -1: unpinned; PEER: ferroproc, twisted, subprocess)
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import impl_subprocess
import impl_twisted


def main() -> None:
    peer, n, cpu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    p = {"n": n, "pin": cpu}
    if peer == "subprocess":
        res = impl_subprocess.round_trips(p)
    else:
        res = impl_twisted.round_trips(impl_twisted.load(peer), p)
    print(f"{peer}: {res['us']:.1f} us per round trip")


if __name__ == "__main__":
    main()
