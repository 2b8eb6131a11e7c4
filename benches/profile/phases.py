"""Per-spawn phases from ``perf script`` of clone/execve/exit tracepoints.

usage: phases.py TRACE [SKIP]

TRACE is ``perf script`` output of ``syscalls:sys_enter_clone``, ``syscalls:sys_exit_clone``,
``syscalls:sys_enter_execve`` and ``sched:sched_process_exit`` for a sequential spawn loop;
the first pid seen is the parent. SKIP drops the first spawns (warm-up).
"""

from __future__ import annotations

import itertools
import re
import statistics
import sys

LINE = re.compile(r"\s*(\S+)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)")


def main() -> None:
    rows = []
    with open(sys.argv[1]) as f:
        for line in f:
            m = LINE.match(line)
            if m:
                _comm, pid, cpu, t, ev, _rest = m.groups()
                rows.append((int(pid), int(cpu), float(t) * 1e6, ev))
    parent = rows[0][0]
    spawns: list[dict[str, float]] = []
    cur: dict[str, float] | None = None
    for pid, cpu, t, ev in rows:
        if pid == parent and ev == "syscalls:sys_enter_clone":
            cur = {"clone": t, "pcpu": cpu}
            spawns.append(cur)
        elif cur is None:
            continue
        elif pid != parent and ev == "syscalls:sys_exit_clone":
            cur["child_start"], cur["ccpu"] = t, cpu
        elif pid != parent and ev == "syscalls:sys_enter_execve":
            cur["execve"] = t
        elif pid != parent and ev == "sched:sched_process_exit":
            cur["exit"] = t
        elif pid == parent and ev == "syscalls:sys_exit_clone":
            cur["clone_ret"] = t
    skip = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    sp = [s for s in spawns[skip:] if len(s) >= 7]
    phases = {
        "clone entered -> child runs": [s["child_start"] - s["clone"] for s in sp],
        "child before execve": [s["execve"] - s["child_start"] for s in sp],
        "execve -> child exits": [s["exit"] - s["execve"] for s in sp],
        "execve -> parent back from clone": [s["clone_ret"] - s["execve"] for s in sp],
        "child exits -> next clone": [b["clone"] - a["exit"] for a, b in itertools.pairwise(sp)],
        "period": [b["clone"] - a["clone"] for a, b in itertools.pairwise(sp)],
    }
    same = sum(s["pcpu"] == s["ccpu"] for s in sp)
    print(f"{len(sp)} spawns; the child starts on the parent's CPU in {same}")
    for name, v in phases.items():
        print(f"  {name:34s} median {statistics.median(v):7.1f} us   mean {statistics.mean(v):7.1f}")


if __name__ == "__main__":
    main()
