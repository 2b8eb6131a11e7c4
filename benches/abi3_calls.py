"""Per-call cost of the engine calling into Python (and back), for the abi3 decision.

Run it with the interpreter of a venv that has one ferroproc wheel installed
(per-version cp311, or abi3); ``scripts/abi3_compare.sh`` builds the wheels,
makes the venvs and runs this in each, interleaved. It prints one JSON line:
the best (lowest) of ``--repeat`` runs of each case, in nanoseconds per call.

Cases:

* ``timer``: ``callLater(0, f)`` ×N, then the loop runs them: one
  Python→Rust call (scheduling, a new ``DelayedCall``) and one Rust→Python
  call (``f()``) each. Reported as ``timer_schedule`` and ``timer_fire``.
* ``thread_fire``: ``callFromThread(f, i)`` ×N queued before ``run``, then
  the loop runs them (only the loop is timed): ``f(i)`` from Rust with an
  argument tuple.
* ``method``: ``engine.fileno()`` ×N from Python: the bare cost of a
  Python→Rust method call (argument parsing, GIL token, return value).
* ``data``: a child writes N small chunks, each acknowledged by the parent
  (so each is its own read): the parent's CPU time per ``childDataReceived``
  (read, ``bytes`` creation, the method call, ``outReceived`` dispatch, the
  ack write). Includes syscalls, so the abi3 share is smaller.

Benchmarks never assert times; this prints figures only.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from ferroproc import reactor
from ferroproc.protocol import ProcessProtocol


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def timer_case(n: int) -> tuple[float, float]:
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1

    t0 = time.perf_counter()
    for _ in range(n):
        reactor.callLater(0, tick)
    t1 = time.perf_counter()
    reactor.callLater(0, reactor.stop)
    reactor.run(installSignalHandlers=False)
    t2 = time.perf_counter()
    assert count == n, count
    return (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9


def thread_fire_case(n: int) -> float:
    """``callFromThread`` ×N queued before ``run``; time only the loop."""
    count = 0

    def call(i: int) -> None:
        nonlocal count
        count += 1

    for i in range(n):
        reactor.callFromThread(call, i)
    reactor.callFromThread(reactor.stop)
    t0 = time.perf_counter()
    reactor.run(installSignalHandlers=False)
    t1 = time.perf_counter()
    assert count == n, count
    return (t1 - t0) / n * 1e9


def method_case(n: int) -> float:
    fileno = reactor._engine.fileno
    t0 = time.perf_counter()
    for _ in range(n):
        fileno()
    t1 = time.perf_counter()
    return (t1 - t0) / n * 1e9


# The child writes a chunk, waits for a one-byte ack, repeats: every chunk is
# a separate read and a separate childDataReceived.
CHILD = r"""
import os, sys
n = int(sys.argv[1])
chunk = b"x" * 32
for _ in range(n):
    os.write(1, chunk)
    os.read(0, 1)
"""


class Acker(ProcessProtocol):
    def __init__(self) -> None:
        self.chunks = 0

    def outReceived(self, data: bytes) -> None:
        self.chunks += 1
        self.transport.write(b"k")

    def processEnded(self, reason: object) -> None:
        reactor.stop()


def data_case(n: int) -> float:
    proto = Acker()
    c0 = cpu()
    reactor.spawnProcess(proto, sys.executable, [sys.executable, "-c", CHILD, str(n)], env=None)
    reactor.run(installSignalHandlers=False)
    c1 = cpu()
    assert proto.chunks == n, proto.chunks
    return (c1 - c0) / n * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--chunks", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = min(best.get(name, value), value)

    for _ in range(args.repeat):
        schedule, fire = timer_case(args.n)
        keep("timer_schedule", schedule)
        keep("timer_fire", fire)
        keep("thread_fire", thread_fire_case(args.n))
        keep("method", method_case(args.n * 5))
        keep("data", data_case(args.chunks))
    import ferroproc._core as core

    print(json.dumps({"so": core.__file__.rsplit("/", 1)[-1], **{k: round(v, 1) for k, v in best.items()}}))


if __name__ == "__main__":
    main()
