"""Every scenario written once with ``asyncio.create_subprocess_exec`` (streams API).

``asyncio`` runs it on the default event loop; ``uvloop`` runs the same coroutines on a
uvloop loop. On CPython 3.11 the default loop watches children with
``ThreadedChildWatcher`` (one thread per child); uvloop uses libuv's SIGCHLD handler.
``asyncio-ferroproc`` runs it unchanged on ``ferroproc.asyncio.new_event_loop()``;
``uvloop-ferroproc`` on uvloop, spawning with ``ferroproc.asyncio.create_subprocess_exec``;
``ferroproc.asyncio`` on asyncio's own loop, spawning with it (ferroproc's ``Process``).
"""

from __future__ import annotations

import asyncio
import errno
import os
import pty
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import Awaitable, Callable
from typing import Any

from _common import (
    ECHO_LINE,
    ENV,
    HELD_PING,
    NotApplicable,
    close_fds,
    cpu_seconds,
    exe,
    fill_fds,
    held_children,
    now,
    open_fd_count,
    peak_rss_mib,
    rss_baseline,
    thread_count,
)

#: What spawns: asyncio's own function, or ferroproc.asyncio's (set by ``load``).
_create: Callable[..., Awaitable[asyncio.subprocess.Process]] = asyncio.create_subprocess_exec


def load(peer: str) -> Callable[[Callable[[], Awaitable[dict[str, Any]]]], dict[str, Any]]:
    """A function that runs a coroutine function to completion on ``peer``'s loop."""
    global _create
    if peer == "asyncio":
        return lambda main: asyncio.run(main())
    if peer == "ferroproc.asyncio":
        import ferroproc.asyncio

        _create = ferroproc.asyncio.create_subprocess_exec
        return lambda main: asyncio.run(main())
    if peer == "asyncio-ferroproc":
        import ferroproc.asyncio

        return lambda main: ferroproc.asyncio.run(main())  # type: ignore[arg-type]
    if peer in ("uvloop", "uvloop-ferroproc"):
        import uvloop

        if peer == "uvloop-ferroproc":
            import ferroproc.asyncio

            _create = ferroproc.asyncio.create_subprocess_exec

        def run_uv(main: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main())  # type: ignore[arg-type]

        return run_uv
    raise ValueError(peer)


async def _drain_pty(master: int) -> None:
    """Read a PTY master until the slave side is gone (EIO on Linux); asyncio has no PTY API."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    os.set_blocking(master, False)

    def readable() -> None:
        try:
            if os.read(master, 65536):
                return
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
        loop.remove_reader(master)
        done.set_result(None)

    loop.add_reader(master, readable)
    try:
        await done
    finally:
        os.close(master)


# --- S1 / S2 ------------------------------------------------------------------------------


async def _spawn_true(kind: str) -> int:
    true = exe("true")
    if kind == "pty":
        master, slave = pty.openpty()
        try:
            proc = await _create(true, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=ENV)
        finally:
            os.close(slave)
        await asyncio.gather(_drain_pty(master), proc.wait())
        return proc.returncode  # type: ignore[return-value]
    kw: dict[str, Any] = {}
    if kind == "creds":
        kw.update(user=65534, group=65534, extra_groups=[65534])
    try:
        proc = await _create(true, stdin=PIPE, stdout=PIPE, stderr=PIPE, env=ENV, **kw)
    except (TypeError, ValueError) as exc:
        if not kw:
            raise
        # uvloop has no user=/group=
        raise NotApplicable(f"no uid/gid support: {exc}") from None
    await proc.communicate()
    return proc.returncode  # type: ignore[return-value]


async def _hold_fds(total: int) -> tuple[list[asyncio.subprocess.Process], list[int]]:
    """S8: live ``cat`` children with pipes (each has echoed a byte), then dup'd fds up to ``total``."""
    cat = exe("cat")
    procs = [await _create(cat, stdin=PIPE, stdout=PIPE, stderr=PIPE, env=ENV) for _ in range(held_children(total))]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(HELD_PING)
    for proc in procs:
        assert proc.stdout is not None
        await proc.stdout.readexactly(len(HELD_PING))
    return procs, fill_fds(total)


async def _release(procs: list[asyncio.subprocess.Process], fillers: list[int]) -> int:
    close_fds(fillers)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    codes = await asyncio.gather(*(proc.wait() for proc in procs))
    return sum(code != 0 for code in codes)


def spawn_rate(p: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    kind = p.get("kind", "pipes")
    if kind == "creds" and os.geteuid() != 0:
        raise NotApplicable("uid/gid spawns need root")
    if p.get("options"):
        raise NotApplicable("asyncio has no such spawn options")
    n, conc, budget = p["n"], p.get("conc", 1), p.get("budget", 0)

    async def main() -> dict[str, Any]:
        st = {"started": 0, "ended": 0, "bad": 0}
        procs, fillers = await _hold_fds(p.get("fds", 0))
        fds = open_fd_count()
        t0 = now()

        async def worker() -> None:
            while st["started"] < n and not (budget and now() - t0 > budget):
                st["started"] += 1
                code = await _spawn_true(kind)
                st["ended"] += 1
                st["bad"] += code != 0

        await asyncio.gather(*(worker() for _ in range(min(conc, n))))
        dt = now() - t0
        bad = await _release(procs, fillers)
        return {
            "n": st["ended"],
            "seconds": dt,
            "rate": st["ended"] / dt,
            "fds": fds,
            "held_children": len(procs),
            "failures": st["bad"] + bad,
        }

    return main


# --- S3 -----------------------------------------------------------------------------------


def pipe_throughput(p: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    total, chunk = p["bytes"], b"\0" * p["chunk"]

    async def main() -> dict[str, Any]:
        t0 = now()
        proc = await _create(exe("cat"), stdin=PIPE, stdout=PIPE, env=ENV)
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        async def write() -> None:
            sent = 0
            while sent < total:
                stdin.write(chunk)
                sent += len(chunk)
                await stdin.drain()
            stdin.close()

        async def read() -> int:
            got = 0
            while data := await stdout.read(1 << 20):
                got += len(data)
            return got

        _, got = await asyncio.gather(write(), read())
        await proc.wait()
        dt = now() - t0
        return {"bytes": got, "seconds": dt, "mbps": got / dt / 1e6, "ok": got == total and proc.returncode == 0}

    return main


# --- S4 -----------------------------------------------------------------------------------


def capture(p: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    size = p["bytes"]

    async def main() -> dict[str, Any]:
        base = rss_baseline()
        t0 = now()
        proc = await _create(exe("head"), "-c", str(size), "/dev/zero", stdout=PIPE, env=ENV)
        out, _ = await proc.communicate()
        dt = now() - t0
        return {
            "bytes": len(out),
            "seconds": dt,
            "mbps": len(out) / dt / 1e6,
            "rss_mib": peak_rss_mib() - base,
            "ok": len(out) == size,
        }

    return main


# --- S5 -----------------------------------------------------------------------------------


def round_trips(p: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    n, size = p["n"], len(ECHO_LINE)

    async def main() -> dict[str, Any]:
        proc = await _create(exe("cat"), stdin=PIPE, stdout=PIPE, env=ENV)
        assert proc.stdin is not None and proc.stdout is not None
        t0 = now()
        for _ in range(n):
            proc.stdin.write(ECHO_LINE)
            await proc.stdout.readexactly(size)
        dt = now() - t0
        proc.stdin.close()
        await proc.wait()
        return {"n": n, "seconds": dt, "us": dt / n * 1e6, "ok": True}

    return main


# --- S6 -----------------------------------------------------------------------------------


def many_children(p: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    if p.get("kill"):
        raise NotApplicable("S6's curve is not run on asyncio")
    n, argv = p["n"], [exe("sleep"), str(p["sleep"])]
    pipes = p["stdio"] == "pipes"
    io = PIPE if pipes else DEVNULL

    async def main() -> dict[str, Any]:
        base = rss_baseline()
        cpu0, t0 = cpu_seconds(), now()
        procs = [await _create(*argv, stdin=io, stdout=io, stderr=io, env=ENV) for _ in range(n)]
        start_all = now() - t0
        threads = thread_count()
        if pipes:
            await asyncio.gather(*(proc.communicate() for proc in procs))
        else:
            await asyncio.gather(*(proc.wait() for proc in procs))
        cpu = cpu_seconds() - cpu0
        bad = sum(proc.returncode != 0 for proc in procs)
        return {
            "n": n,
            "seconds": now() - t0,
            "start_all": start_all,
            "cpu": cpu,
            "per_event_us": cpu / n * 1e6,
            "threads": threads,
            "rss_mib": peak_rss_mib() - base,
            "failures": bad,
            "completed": n - bad,
        }

    return main


SCENARIOS = {
    "S1": spawn_rate,
    "S2": spawn_rate,
    "S8": spawn_rate,
    "S3": pipe_throughput,
    "S4": capture,
    "S5": round_trips,
    "S6": many_children,
}


def run(runner: Any, scenario: str, params: dict[str, Any]) -> dict[str, Any]:
    """Measure ``scenario`` once on the loop chosen by :func:`load`."""
    return runner(SCENARIOS[scenario](params))
