#!/usr/bin/env python3
"""Soak: start many short children in waves, push data through each, and
check that the parent ends as it started.

    python benches/soak.py                          # 100,000 children, 200 at a time (a few minutes)
    python benches/soak.py --children 5000 --wave 100

Each child is ``cat`` (a few bytes written to its stdin, read back from its
stdout, exit 0); waves alternate between the posix_spawn and the vfork-style
clone path, and one child in ten runs on a terminal (``echo`` via usePTY).
The reactor is stopped and run again for every wave. At the end it reports
the parent's RSS growth (after a warm-up wave), its fd count and any
children left behind (zombies or running) against the targets:

    RSS growth < 5 MiB, fd count back to the start, no zombies, no failures.

Exit status 0 when every target is met, 1 otherwise. Times are printed,
never judged. ``tests/test_soak.py`` runs a shortened version in the suite
through :func:`soak`.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ferroproc import reactor
from ferroproc.error import ProcessDone
from ferroproc.protocol import ProcessProtocol

__all__ = ["SoakResult", "soak"]

MiB = 1 << 20


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def fd_count() -> int:
    """Open fds of this process (the listing's own fd not counted)."""
    n = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        n += 1
    return n


def children() -> list[tuple[int, str]]:
    """(pid, state) of this process's children, zombies included."""
    out = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except FileNotFoundError:
                continue
            out.append((pid, stat[stat.rindex(")") + 2]))
    return out


class Soaker(ProcessProtocol):
    """One child: send ``payload`` (pipes) and expect exactly ``expect`` back."""

    def __init__(self, run: WaveRun, payload: bytes, expect: bytes, pty: bool) -> None:
        self.run = run
        self.payload = payload
        self.expect = expect
        self.pty = pty
        self.out = bytearray()

    def connectionMade(self) -> None:
        if not self.pty:
            self.transport.write(self.payload)
            self.transport.closeStdin()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.out.extend(data)

    def processExited(self, reason: Any) -> None:
        pass

    def processEnded(self, reason: Any) -> None:
        ok = isinstance(reason.value, ProcessDone) and bytes(self.out) == self.expect
        self.run.finished(ok, self)


class WaveRun:
    """Counts the children of one wave down and stops the reactor at zero."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.failures: list[str] = []

    def finished(self, ok: bool, proto: Soaker) -> None:
        if not ok:
            self.failures.append(f"expected {proto.expect!r}, got {bytes(proto.out)!r}")
        self.left -= 1
        if self.left == 0:
            reactor.stop()


@dataclass
class SoakResult:
    children: int = 0
    waves: int = 0
    seconds: float = 0.0
    rss_start: int = 0
    rss_after_warmup: int = 0
    rss_end: int = 0
    rss_peak: int = 0
    fds_start: int = 0
    fds_end: int = 0
    children_left: list[tuple[int, str]] = field(default_factory=list)
    zombies: int = 0
    failures: list[str] = field(default_factory=list)
    timeouts: int = 0

    @property
    def rss_growth(self) -> int:
        """Growth after the warm-up wave (allocator and caches settled)."""
        return self.rss_end - self.rss_after_warmup

    @property
    def rss_growth_total(self) -> int:
        return self.rss_end - self.rss_start

    def targets(self, rss_limit: int = 5 * MiB) -> dict[str, bool]:
        return {
            f"RSS growth < {rss_limit // MiB} MiB": self.rss_growth < rss_limit,
            "fd count back to start": self.fds_end == self.fds_start,
            "no zombies": self.zombies == 0,
            "no children left": not self.children_left,
            "every child's data and exit ok": not self.failures and not self.timeouts,
        }


def run_wave(index: int, size: int, payload_size: int, pty_every: int, timeout: float) -> WaveRun:
    """Start ``size`` children and run the reactor until all have ended."""
    reactor._neverUseSpawn = index % 2 == 1  # alternate posix_spawn / clone
    run = WaveRun(size)
    for i in range(size):
        tag = b"%d.%d|" % (index, i)
        payload = (tag * (payload_size // len(tag) + 1))[:payload_size]
        if pty_every and i % pty_every == pty_every - 1:
            word = payload.replace(b"|", b"_").replace(b"\n", b"_")
            proto = Soaker(run, b"", word + b"\r\n", pty=True)
            reactor.spawnProcess(proto, "/bin/echo", ["echo", word], usePTY=True)
        else:
            proto = Soaker(run, payload, payload, pty=False)
            reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    guard = reactor.callLater(timeout, reactor.stop)
    reactor.run(installSignalHandlers=False)
    if guard.active():
        guard.cancel()
    return run


def soak(
    total: int = 100_000,
    wave: int = 200,
    payload_size: int = 16,
    pty_every: int = 10,
    timeout: float = 60.0,
    progress: Any = None,
) -> SoakResult:
    """Run ``total`` children in waves of ``wave`` (plus one warm-up wave
    before the RSS baseline) and measure the parent before and after."""
    old_never = reactor._neverUseSpawn
    r = SoakResult()
    gc.collect()
    r.rss_start = rss_bytes()
    r.fds_start = fd_count()
    t0 = time.perf_counter()
    try:
        warm = run_wave(0, wave, payload_size, pty_every, timeout)
        r.failures += warm.failures
        r.timeouts += warm.left > 0
        gc.collect()
        r.rss_after_warmup = rss_bytes()
        r.rss_peak = r.rss_after_warmup
        done = 0
        index = 1
        while done < total:
            n = min(wave, total - done)
            w = run_wave(index, n, payload_size, pty_every, timeout)
            r.failures += w.failures
            if w.left > 0:
                r.timeouts += 1
                break
            done += n
            index += 1
            if index % 50 == 0:
                r.rss_peak = max(r.rss_peak, rss_bytes())
                if progress:
                    progress(done, rss_bytes() - r.rss_after_warmup, time.perf_counter() - t0)
        r.children = done
        r.waves = index - 1
    finally:
        reactor._neverUseSpawn = old_never
    r.seconds = time.perf_counter() - t0
    # Give anything still in flight a last chance, then measure.
    deadline = time.monotonic() + 5
    while reactor._engine.processCount and time.monotonic() < deadline:
        reactor.iterate(0.01)
    gc.collect()
    r.rss_end = rss_bytes()
    r.rss_peak = max(r.rss_peak, r.rss_end)
    r.fds_end = fd_count()
    r.children_left = children()
    r.zombies = sum(1 for _, state in r.children_left if state == "Z")
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--children", type=int, default=100_000)
    ap.add_argument("--wave", type=int, default=200)
    ap.add_argument("--payload", type=int, default=16, help="bytes through each cat")
    ap.add_argument("--pty-every", type=int, default=10, help="one child in N on a terminal (0: none)")
    ap.add_argument("--rss-limit-mib", type=float, default=5.0)
    args = ap.parse_args()

    def progress(done: int, growth: int, secs: float) -> None:
        print(f"  {done:>7} children  {done / secs:7.0f}/s  RSS {growth / MiB:+6.2f} MiB", flush=True)

    print(
        f"soak: {args.children} children in waves of {args.wave}, {args.payload} bytes each, "
        f"1 in {args.pty_every or 'no'} on a PTY, posix_spawn/clone alternating",
        flush=True,
    )
    r = soak(args.children, args.wave, args.payload, args.pty_every, progress=progress)
    rows = [
        ("children", f"{r.children} in {r.waves} waves (+1 warm-up wave)"),
        ("time", f"{r.seconds:.1f} s ({(r.children + args.wave) / r.seconds:.0f} children/s)"),
        (
            "RSS start / after warm-up / end",
            f"{r.rss_start / MiB:.1f} / {r.rss_after_warmup / MiB:.1f} / {r.rss_end / MiB:.1f} MiB",
        ),
        (
            "RSS growth after warm-up",
            f"{r.rss_growth / MiB:+.2f} MiB "
            f"(total {r.rss_growth_total / MiB:+.2f} MiB, peak {r.rss_peak / MiB:.1f} MiB)",
        ),
        ("fds start / end", f"{r.fds_start} / {r.fds_end}"),
        ("children left / zombies", f"{len(r.children_left)} / {r.zombies}"),
        ("failures / timed-out waves", f"{len(r.failures)} / {r.timeouts}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    for f in r.failures[:5]:
        print("  failure:", f)
    targets = r.targets(int(args.rss_limit_mib * MiB))
    for name, ok in targets.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
