"""Spawning from a process that holds many fds (issue 21, item 13): the
paths that keep the cost flat still give each child exactly its fds.

- A program that opened its fds before importing ferroproc: its spawn
  channel sits above them, so its spawns go through a spawner thread with a
  tiny fd table (``ferroproc-spawn``); a forked child of it gets its own.
- A forked child of a parent that imported ferroproc first: its channel
  goes where its parent's was (low numbers), no spawner needed.

Each case runs in a process of its own (the fds, the fork)."""

from __future__ import annotations

import subprocess

import pytest
from helpers import PY

_PROGRAM = r"""
import os, resource, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
late, forked = sys.argv[1] == "late", sys.argv[2] == "fork"

def hold(n):
    null = os.open(os.devnull, os.O_RDONLY)
    fds = [null] + [os.dup(null) for _ in range(n - 1)]
    # Some inheritable ones, as C libraries leave them: no child may get them.
    for fd in fds[::100]:
        os.set_inheritable(fd, True)
    return fds

held = hold(3000) if late else []
from ferroproc import reactor
from ferroproc.protocol import ProcessProtocol
held = held or hold(3000)

class Out(ProcessProtocol):
    def __init__(self):
        self.out, self.ended = b"", None
    def childDataReceived(self, fd, data):
        self.out += data
    def processEnded(self, reason):
        self.ended = reason.value

def run(*spawns):
    protos = []
    for args, kw in spawns:
        p = Out()
        reactor.spawnProcess(p, args[0], args, env={"PATH": "/usr/bin:/bin"}, **kw)
        protos.append(p)
    deadline = time.monotonic() + 15
    while not all(p.ended for p in protos) and time.monotonic() < deadline:
        reactor.iterate(0.01)
    return [(p.out.decode(), getattr(p.ended, "exitCode", None)) for p in protos]

def spawners():
    # How many spawner threads, and the fds in their (own) tables, idle.
    tids = [t for t in os.listdir("/proc/self/task")
            if open(f"/proc/self/task/{t}/comm").read().strip() == "ferroproc-spawn"]
    fds = {int(fd) for t in tids for fd in os.listdir(f"/proc/self/task/{t}/fd")}
    return f"{len(tids)}:{','.join(map(str, sorted(fds)))}"

def check(tag):
    r, w = os.pipe()
    os.write(w, b"extra")
    os.close(w)
    listing = "ls /proc/self/fd | tr '\\n' ' '"
    results = run(
        (["/bin/sh", "-c", listing], {}),
        (["/bin/sh", "-c", listing + "; cat <&7"], {"childFDs": {0: "w", 1: "r", 2: "r", 7: r}}),
        (["/bin/sh", "-c", listing], {"parentDeathSignal": "TERM"}),
        (["/bin/sh", "-c", "tty >/dev/null && echo tty"], {"usePTY": True}),
    )
    os.close(r)
    # Again: nothing is left behind, nothing accumulates.
    fds_before = set(os.listdir("/proc/self/fd"))
    again = run((["/bin/sh", "-c", listing], {}), (["/bin/true"], {"parentDeathSignal": "TERM"}))
    added = len(set(os.listdir("/proc/self/fd")) ^ fds_before)
    print(tag, results + again, spawners(), added)

if forked:
    pid = os.fork()
    if pid == 0:
        check("child")
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
check("parent")
"""

FDS_ONLY = "0 1 2 3 "  # ls's own directory fd is 3
EXPECTED = [
    (FDS_ONLY, 0),
    ("0 1 2 3 7 extra", 0),
    (FDS_ONLY, 0),
    ("tty\r\n", 0),
    (FDS_ONLY, 0),
    ("", 0),
]


@pytest.mark.parametrize(("imported", "fork"), [("late", "no"), ("late", "fork"), ("early", "fork")])
def test_each_child_gets_exactly_its_fds_whatever_the_parent_holds(imported: str, fork: str) -> None:
    out = subprocess.run([PY, "-c", _PROGRAM, imported, fork], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == (2 if fork == "fork" else 1), out.stdout
    for line in lines:
        results, spawners, added = line.split(" ", 1)[1].rsplit(" ", 2)
        assert eval(results) == EXPECTED, line
        # Late: the spawns go through a spawner (the forked child's own);
        # early: the forked child's channel went where its parent's was,
        # low, and no spawner is needed.
        # An idle spawner's table: its socket and the process's stdout and
        # stderr, nothing else.
        assert spawners == ("1:0,1,2" if imported == "late" else "0:"), line
        assert int(added) == 0, line
