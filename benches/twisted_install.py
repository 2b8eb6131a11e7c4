"""A Twisted program with and without ``ferroproc.twisted.install()``.

The same Twisted code (epoll reactor, ``reactor.spawnProcess``,
``ProcessProtocol``) is run twice per repetition, each time in a fresh
interpreter: once on Twisted's own process transports, once after
``ferroproc.twisted.install()``. Printed side by side, with ratios:

- spawn rate: ``/bin/true`` spawned ``--spawns`` times (default 1000), one
  at a time (the next starts from the previous one's ``processEnded``);
- cat throughput: ``--mib`` MiB (default 256) written into ``cat`` through a
  streaming producer while everything it echoes is read back.

    python benches/twisted_install.py [--spawns N] [--mib M] [--reps R]

Figures are the median of ``--reps`` runs (default 3). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

ENV = {"PATH": "/usr/bin:/bin"}


def _exe(name: str) -> str:
    path = shutil.which(name, path=ENV["PATH"])
    if path is None:
        raise SystemExit(f"{name} not found on {ENV['PATH']}")
    return path


def _worker(mode: str, what: str, n: int) -> dict[str, Any]:
    """Runs in a fresh interpreter: one measurement, as a dict."""
    from twisted.internet import epollreactor

    epollreactor.install()
    if mode == "ferroproc":
        import ferroproc.twisted

        ferroproc.twisted.install()
    from twisted.internet import reactor
    from twisted.internet.protocol import ProcessProtocol

    result: dict[str, Any] = {}

    if what == "spawn":
        true = _exe("true")
        state = {"left": n, "bad": 0, "t0": 0.0}

        class TrueProtocol(ProcessProtocol):
            def processEnded(self, reason: Any) -> None:
                if reason.value.exitCode != 0:
                    state["bad"] += 1
                state["left"] -= 1
                if state["left"]:
                    spawn()
                else:
                    dt = time.perf_counter() - state["t0"]
                    result.update(n=n, seconds=dt, rate=n / dt, failures=state["bad"])
                    reactor.stop()

        def spawn() -> None:
            reactor.spawnProcess(TrueProtocol(), true, [true], env=ENV)

        def start() -> None:
            state["t0"] = time.perf_counter()
            spawn()

    elif what == "cat":
        cat = _exe("cat")
        total, chunk = n * 1024 * 1024, b"\0" * 65536
        st = {"sent": 0, "got": 0, "paused": False, "t0": 0.0}

        class Feeder:
            def __init__(self, transport: Any) -> None:
                self.transport: Any = transport

            def pauseProducing(self) -> None:
                st["paused"] = True

            def resumeProducing(self) -> None:
                st["paused"] = False
                self.pump()

            def stopProducing(self) -> None:
                st["paused"] = True

            def pump(self) -> None:
                while not st["paused"] and st["sent"] < total:
                    self.transport.write(chunk)
                    st["sent"] += len(chunk)
                if st["sent"] >= total and self.transport is not None:
                    transport, self.transport = self.transport, None
                    transport.unregisterProducer()
                    transport.closeStdin()

        class CatProtocol(ProcessProtocol):
            def connectionMade(self) -> None:
                feeder = Feeder(self.transport)
                self.transport.registerProducer(feeder, True)
                feeder.pump()

            def childDataReceived(self, fd: int, data: bytes) -> None:
                st["got"] += len(data)

            def processEnded(self, reason: Any) -> None:
                dt = time.perf_counter() - st["t0"]
                ok = st["got"] == total and reason.value.exitCode == 0
                result.update(bytes=st["got"], seconds=dt, mibps=st["got"] / dt / 2**20, ok=ok)
                reactor.stop()

        def start() -> None:
            st["t0"] = time.perf_counter()
            reactor.spawnProcess(CatProtocol(), cat, [cat], env=ENV)

    else:
        raise SystemExit(f"unknown measurement {what!r}")

    reactor.callWhenRunning(start)
    reactor.run()
    return result


def _measure(mode: str, what: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", mode, what, str(n)],
        capture_output=True,
        check=True,
        timeout=600,
    )
    return json.loads(out.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spawns", type=int, default=1000)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--worker", nargs=3, metavar=("MODE", "WHAT", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        mode, what, n = args.worker
        print(json.dumps(_worker(mode, what, int(n))))
        return

    rows = []
    for what, n, key, unit in (("spawn", args.spawns, "rate", "spawns/s"), ("cat", args.mib, "mibps", "MiB/s")):
        figures: dict[str, list[float]] = {"twisted": [], "ferroproc": []}
        for _ in range(args.reps):
            for mode in ("twisted", "ferroproc"):  # interleaved, so drift hits both alike
                r = _measure(mode, what, n)
                if r.get("failures") or r.get("ok") is False:
                    raise SystemExit(f"{mode} {what}: bad run {r}")
                figures[mode].append(r[key])
        tw, fp = statistics.median(figures["twisted"]), statistics.median(figures["ferroproc"])
        label = f"/bin/true x{n}, one at a time" if what == "spawn" else f"cat {n} MiB through stdin/stdout"
        rows.append((label, unit, tw, fp, fp / tw))

    print(f"Twisted {_twisted_version()} epoll reactor, median of {args.reps} runs each")
    print(f"{'workload':36} {'unit':9} {'Twisted':>10} {'+install()':>11} {'ratio':>7}")
    for label, unit, tw, fp, ratio in rows:
        print(f"{label:36} {unit:9} {tw:10.1f} {fp:11.1f} {ratio:6.2f}x")
    print("ratio = with ferroproc.twisted.install() / without (higher is better)")


def _twisted_version() -> str:
    import twisted

    return str(twisted.__version__)


if __name__ == "__main__":
    main()
