"""Bytes per live child, counted rather than sampled: S6's question without its noise.

usage: live_bytes.py PEER N [STDIO] [--python]

PEER is ``ferroproc`` (Twisted's API on ferroproc's reactor), ``twisted``, ``subprocess`` or
``jobs`` (``ferroproc.jobs`` with N slots, so all N jobs are live at once); STDIO is ``null``
(S6's 10,000 case and its curve: every fd on /dev/null, so only the exit is watched) or
``pipes`` (stdin, stdout and stderr pipes; for ``jobs``, its own stdio: stdout and stderr
captured). After 200 warm-up children (started and reaped: one-time allocations, such as
spawn channels, stacks and interned names, are not counted), N children running
``sleep 3600`` are started and counted while all are alive; then they are killed and reaped.

Prints one JSON line, per child:

- ``malloc``: growth of the C heap (glibc's ``mallinfo2``: bytes in use, chunk headers
  included): every allocation of the Rust core and bindings, and Python's blocks over 512
  bytes (the list of children, a dict's table); Python's small objects live in pymalloc's
  arenas and are not in it;
- ``rss``: growth of the resident set (pages, so it moves in steps, and freed memory that
  malloc keeps counts), and its parts ``rss_anon`` (heaps, arenas, stacks) and ``rss_file``
  (code and data paged in from files as first touched);
- with ``--python`` (a separate run: tracemalloc's own tables would count in ``malloc``):
  ``python``, the bytes Python allocated (``tracemalloc``, sizes as requested), and
  ``python_large``, the part of it in blocks over 512 bytes (already in ``malloc``).

So the Rust part is ``malloc`` minus ``python_large``, and the whole is that plus
``python``. The counts are deterministic (the same on an idle and a busy machine).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import ENV, exe

WARMUP = 200
ARGV = [exe("sleep"), "3600"]


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_libc = ctypes.CDLL(None)
_libc.mallinfo2.restype = _Mallinfo2


def malloc_in_use() -> int:
    """Bytes of the C heap in use: the main and thread arenas, and mmapped chunks."""
    m = _libc.mallinfo2()
    return int(m.uordblks + m.hblkhd)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


def rss_parts() -> dict[str, int]:
    """The resident set split as the kernel counts it: anonymous pages (the
    heaps, pymalloc's arenas, stacks) and file pages (code and data of the
    interpreter and the extension, paged in as first touched)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out["rss_" + key[3:].lower()] = int(rest.split()[0]) * 1024
    return out


class Counter:
    """The heap, RSS and (optionally) Python's allocations, before and after."""

    def __init__(self, python: bool) -> None:
        self.python = python
        self.before: dict[str, int] = {}

    def sample(self) -> dict[str, int]:
        out = {"malloc": malloc_in_use(), "rss": rss_bytes(), **rss_parts()}
        if self.python:
            snap = tracemalloc.take_snapshot()
            out["python"] = sum(tr.size for tr in snap.traces)
            out["python_large"] = sum(tr.size for tr in snap.traces if tr.size > 512)
        return out

    def start(self) -> None:
        self.before = self.sample()

    def per_child(self, n: int) -> dict[str, float]:
        after = self.sample()
        return {k: (after[k] - self.before[k]) / n for k in after}


def ferroproc_api(peer: str) -> Any:
    if peer == "twisted":
        from twisted.internet import epollreactor

        epollreactor.install()
        from twisted.internet import protocol, reactor
    else:
        from ferroproc import protocol, reactor
    return protocol, reactor


def run_twisted_api(peer: str, n: int, stdio: str, counter: Counter) -> dict[str, float]:
    """Twisted's API (on Twisted's reactor or ferroproc's): the warm-up and the measured
    batch in one run of the reactor (Twisted's cannot be restarted)."""
    protocol, reactor = ferroproc_api(peer)
    devnull = os.open(os.devnull, os.O_RDWR)
    fds: dict[int, Any] = {0: devnull, 1: devnull, 2: devnull} if stdio == "null" else {0: "w", 1: "r", 2: "r"}
    live = [0]
    phase = ["warm"]
    result: dict[str, float] = {}

    class Sleeper(protocol.ProcessProtocol):  # type: ignore[misc, name-defined]
        def processEnded(self, reason: Any) -> None:
            live[0] -= 1
            if live[0] == 0:
                if phase[0] == "warm":
                    phase[0] = "main"
                    reactor.callLater(0, main)
                else:
                    reactor.stop()

    def batch(count: int, measure: bool) -> None:
        procs = [reactor.spawnProcess(Sleeper(), ARGV[0], ARGV, env=ENV, childFDs=fds) for _ in range(count)]
        live[0] += count
        if measure:
            result.update(counter.per_child(n))
        for p in procs:
            p.signalProcess("KILL")

    def main() -> None:
        counter.start()
        batch(n, True)

    reactor.callWhenRunning(batch, WARMUP, False)
    reactor.run()
    os.close(devnull)
    return result


def run_subprocess(n: int, stdio: str, counter: Counter) -> dict[str, float]:
    io = subprocess.PIPE if stdio == "pipes" else subprocess.DEVNULL

    def batch(count: int, measure: bool) -> dict[str, float]:
        procs = [subprocess.Popen(ARGV, stdin=io, stdout=io, stderr=io, env=ENV) for _ in range(count)]
        out = counter.per_child(n) if measure else {}
        for p in procs:
            p.kill()
        for p in procs:
            p.communicate()
        return out

    batch(WARMUP, False)
    counter.start()
    return batch(n, True)


def run_jobs(n: int, stdio: str, counter: Counter) -> dict[str, float]:
    from ferroproc import jobs, reactor

    devnull = os.open(os.devnull, os.O_RDWR)
    kw: dict[str, Any] = {} if stdio == "pipes" else {"capture": False, "stdout": devnull, "stderr": devnull}
    result: dict[str, float] = {}

    def once(count: int, measure: bool) -> None:
        d = jobs.runJobs((jobs.Job(ARGV, env=ENV) for _ in range(count)), concurrency=count, **kw)
        engine = reactor._engine  # the live children, as the engine counts them

        def poll() -> None:
            if engine.processCount < count:
                reactor.callLater(0.01, poll)
                return
            if measure:
                result.update(counter.per_child(count))
            d.cancel()

        d.addErrback(lambda f: None)
        d.addBoth(lambda _: reactor.stop())
        reactor.callLater(0, poll)
        reactor.run()

    once(WARMUP, False)
    counter.start()
    once(n, True)
    os.close(devnull)
    return result


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    python = "--python" in sys.argv
    peer, n = args[0], int(args[1])
    stdio = args[2] if len(args) > 2 else "null"
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if python:
        tracemalloc.start()
    counter = Counter(python)
    if peer in ("ferroproc", "twisted"):
        got = run_twisted_api(peer, n, stdio, counter)
    elif peer == "subprocess":
        got = run_subprocess(n, stdio, counter)
    elif peer == "jobs":
        got = run_jobs(n, stdio, counter)
    else:
        raise SystemExit(f"unknown peer {peer!r}")
    print(json.dumps({"peer": peer, "n": n, "stdio": stdio, **{k: round(v, 1) for k, v in got.items()}}))


if __name__ == "__main__":
    main()
