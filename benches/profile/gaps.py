"""The parent's stretches between reaping a child and cloning the next.

usage: gaps.py TRACE [SKIP]

TRACE is ``perf script -F comm,pid,cpu,time,event,trace`` of ``raw_syscalls:sys_enter`` and
``raw_syscalls:sys_exit`` for a sequential ferroproc spawn loop; the first pid seen is the
parent. Marks: ``waitid`` (247) returns, ``prlimit64`` (302, in ``prepareSpawn``), the first
``pipe2`` (293), ``clone`` (56), and the first ``epoll_wait`` (232) that blocks (> 5 µs).
x86_64 syscall numbers.
"""

from __future__ import annotations

import re
import statistics
import sys

LINE = re.compile(r"\s*(\S+)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)")
WAITID, PRLIMIT, PIPE2, CLONE, EPOLL_WAIT = 247, 302, 293, 56, 232


def main() -> None:
    parent = None
    ev: list[tuple[float, str, int]] = []
    with open(sys.argv[1]) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            _comm, pid, _cpu, t, name, rest = m.groups()
            parent = parent if parent is not None else int(pid)
            nr = re.match(r"NR (\d+)", rest)
            if int(pid) != parent or nr is None:
                continue
            kind = {"raw_syscalls:sys_enter": "enter", "raw_syscalls:sys_exit": "exit"}.get(name)
            if kind:
                ev.append((float(t) * 1e6, kind, int(nr.group(1))))
    out: dict[str, list[float]] = {
        "waitid -> prlimit64 (prepareSpawn)": [],
        "prlimit64 -> first pipe2": [],
        "first pipe2 -> clone": [],
        "clone returns -> blocking epoll_wait": [],
        "waitid -> clone": [],
    }
    st: dict[str, float] = {}
    for i, (t, kind, nr) in enumerate(ev):
        if kind == "exit" and nr == WAITID:
            st = {"reap": t}
        elif "reap" in st and kind == "enter" and nr == PRLIMIT and "prl" not in st:
            st["prl"] = t
        elif "prl" in st and kind == "enter" and nr == PIPE2 and "pipe" not in st:
            st["pipe"] = t
        elif "pipe" in st and kind == "enter" and nr == CLONE and "clone" not in st:
            st["clone"] = t
            out["waitid -> prlimit64 (prepareSpawn)"].append(st["prl"] - st["reap"])
            out["prlimit64 -> first pipe2"].append(st["pipe"] - st["prl"])
            out["first pipe2 -> clone"].append(st["clone"] - st["pipe"])
            out["waitid -> clone"].append(st["clone"] - st["reap"])
        elif "clone" in st and kind == "exit" and nr == CLONE:
            st["cret"] = t
        elif "cret" in st and kind == "enter" and nr == EPOLL_WAIT and "blk" not in st:
            j = i + 1
            while j < len(ev) and not (ev[j][1] == "exit" and ev[j][2] == EPOLL_WAIT):
                j += 1
            if j < len(ev) and ev[j][0] - t > 5:
                st["blk"] = t
                out["clone returns -> blocking epoll_wait"].append(t - st["cret"])
    skip = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    for name, v in out.items():
        v = v[skip:]
        if len(v) > 1:
            q = statistics.quantiles(v, n=10)
            print(f"{name:38s} n={len(v):5d} median {statistics.median(v):6.1f}  p10 {q[0]:6.1f}  p90 {q[-1]:6.1f} us")


if __name__ == "__main__":
    main()
