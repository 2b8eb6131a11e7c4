"""Every scenario written once against Twisted's process API, run by two peers.

``twisted`` runs it on Twisted's epoll reactor; ``ferroproc`` runs the very same code with
the imports swapped (``twisted.internet`` -> ``ferroproc``), which is ferroproc's porting
rule. Nothing below knows which of the two it is running on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace
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
    make_cgroup,
    now,
    open_fd_count,
    peak_rss_mib,
    remove_cgroup,
    rss_baseline,
    s9_options,
    thread_count,
)


def load(peer: str) -> SimpleNamespace:
    """The reactor, ProcessProtocol and utils of ``peer`` ("twisted", "ferroproc" or
    "ferroproc-posix": ferroproc with posix_spawn forced)."""
    if peer == "twisted":
        from twisted.internet import epollreactor

        epollreactor.install()
        from twisted.internet import reactor, utils
        from twisted.internet.protocol import ProcessProtocol
    elif peer in ("ferroproc", "ferroproc-posix"):
        from ferroproc import reactor, utils
        from ferroproc.protocol import ProcessProtocol

        if peer == "ferroproc-posix":
            # The old path, for comparison: posix_spawn copies the fd table (and closes it
            # in the child) where the default clone path shares it.
            reactor._spawnMethod = "posix_spawn"
    else:
        raise ValueError(peer)
    return SimpleNamespace(reactor=reactor, ProcessProtocol=ProcessProtocol, utils=utils, peer=peer)


class Loop:
    """Run the reactor once, until ``done`` or ``fail`` is called.

    A failure inside a callback would otherwise be logged by the reactor and the run would
    hang until the harness's timeout; here it stops the reactor and is re-raised.
    """

    def __init__(self, api: SimpleNamespace) -> None:
        self.api = api
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def done(self, **result: Any) -> None:
        if self.result is None and self.error is None:
            self.result = result
            self.api.reactor.stop()

    def fail(self, exc: BaseException) -> None:
        if self.result is None and self.error is None:
            self.error = exc
            self.api.reactor.stop()

    def guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - reported to the harness
                self.fail(exc)
                return None

        return call

    def run(self, start: Callable[[], None]) -> dict[str, Any]:
        self.api.reactor.callLater(0, self.guard(start))
        self.api.reactor.run()
        if self.error is not None:
            raise self.error
        if self.result is None:
            raise RuntimeError("reactor stopped without a result")
        return self.result


def exit_code(reason: Any) -> Any:
    return getattr(reason.value, "exitCode", None)


# --- S1 / S2 / S8 / S9: spawn rate --------------------------------------------------------


def spawn_rate(api: SimpleNamespace, p: dict[str, Any]) -> dict[str, Any]:
    """Spawn ``/bin/true`` ``n`` times with at most ``conc`` alive (or until ``budget`` s).

    S8 (``fds``): first start ``held_children(fds)`` live ``cat`` children with pipes, wait
    until each has echoed a byte, and dup fds up to ``fds`` open in all; they are ended (stdin
    closed) after the measurement. S9 (``options``): every spawn option in ``s9_options``.
    """
    loop = Loop(api)
    argv = [exe("true")]
    kwargs: dict[str, Any] = {}
    kind = p.get("kind", "pipes")
    if kind == "pty":
        kwargs["usePTY"] = True
    elif kind == "creds":
        if os.geteuid() != 0:
            raise NotApplicable("uid/gid spawns need root")
        kwargs.update(uid=65534, gid=65534)
    cgroup = None
    if p.get("options"):
        if api.peer == "twisted":
            raise NotApplicable("Twisted has no spawn options (process groups, limits...)")
        cgroup = make_cgroup() if p["options"] == "all+cgroup" else None
        kwargs.update(s9_options(cgroup))
    n, conc, budget = p["n"], p.get("conc", 1), p.get("budget", 0)
    n_held = held_children(p.get("fds", 0))
    st = SimpleNamespace(started=0, ended=0, bad=0, stop=False, t0=0.0, ready=0, held_ended=0)
    held: list[Any] = []
    fillers: list[int] = []
    result: dict[str, Any] = {}

    class HeldProtocol(api.ProcessProtocol):  # type: ignore[misc, name-defined]
        """A live ``cat`` holding three pipes: echoes one byte once started, ends at stdin EOF."""

        def connectionMade(self) -> None:
            self.transport.write(HELD_PING)

        def childDataReceived(self, fd: int, data: bytes) -> None:
            st.ready += 1
            if st.ready == n_held:
                measure()

        def processEnded(self, reason: Any) -> None:
            st.held_ended += 1
            if exit_code(reason) != 0:
                st.bad += 1
            if st.held_ended == n_held:
                loop.done(**result, failures=st.bad)

    class TrueProtocol(api.ProcessProtocol):  # type: ignore[misc, name-defined]
        def processEnded(self, reason: Any) -> None:
            st.ended += 1
            if exit_code(reason) != 0:
                st.bad += 1
            if budget and now() - st.t0 > budget:
                st.stop = True
            if not st.stop and st.started < n:
                spawn()
            elif st.ended == st.started:
                dt = now() - st.t0
                result.update(n=st.ended, seconds=dt, rate=st.ended / dt, held_children=n_held)
                close_fds(fillers)
                if not held:
                    loop.done(**result, failures=st.bad)
                for transport in held:
                    transport.closeStdin()

    for cls, names in (
        (HeldProtocol, ("connectionMade", "childDataReceived", "processEnded")),
        (TrueProtocol, ("processEnded",)),
    ):
        for name in names:
            setattr(cls, name, loop.guard(getattr(cls, name)))

    def spawn() -> None:
        st.started += 1
        api.reactor.spawnProcess(TrueProtocol(), argv[0], argv, env=ENV, **kwargs)

    def measure() -> None:
        fillers.extend(fill_fds(p.get("fds", 0)))
        result["fds"] = open_fd_count()
        st.t0 = now()
        for _ in range(min(conc, n)):
            spawn()

    def start() -> None:
        cat = exe("cat")
        for _ in range(n_held):
            held.append(api.reactor.spawnProcess(HeldProtocol(), cat, [cat], env=ENV))
        if not n_held:
            measure()

    try:
        return loop.run(start)
    finally:
        if cgroup is not None:
            remove_cgroup(cgroup)


# --- S3: pipe throughput ------------------------------------------------------------------


def pipe_throughput(api: SimpleNamespace, p: dict[str, Any]) -> dict[str, Any]:
    """Write ``bytes`` into ``cat`` through a streaming producer while reading all it echoes."""
    loop = Loop(api)
    total, chunk = p["bytes"], b"\0" * p["chunk"]
    st = SimpleNamespace(sent=0, got=0, t0=0.0, paused=False, code=None)

    class Feeder:
        """A streaming producer: writes until the transport says pause."""

        def __init__(self, transport: Any) -> None:
            self.transport = transport

        def pauseProducing(self) -> None:
            st.paused = True

        def resumeProducing(self) -> None:
            st.paused = False
            self.pump()

        def stopProducing(self) -> None:
            st.paused = True

        def pump(self) -> None:
            while not st.paused and st.sent < total:
                self.transport.write(chunk)
                st.sent += len(chunk)
            if st.sent >= total and self.transport is not None:
                transport, self.transport = self.transport, None
                transport.unregisterProducer()
                transport.closeStdin()

    class CatProtocol(api.ProcessProtocol):  # type: ignore[misc, name-defined]
        def connectionMade(self) -> None:
            feeder = Feeder(self.transport)
            self.transport.registerProducer(feeder, True)
            feeder.pump()

        def childDataReceived(self, fd: int, data: bytes) -> None:
            st.got += len(data)

        def processEnded(self, reason: Any) -> None:
            dt = now() - st.t0
            loop.done(bytes=st.got, seconds=dt, mbps=st.got / dt / 1e6, ok=st.got == total and exit_code(reason) == 0)

    for name in ("connectionMade", "childDataReceived", "processEnded"):
        setattr(CatProtocol, name, loop.guard(getattr(CatProtocol, name)))

    def start() -> None:
        st.t0 = now()
        api.reactor.spawnProcess(CatProtocol(), exe("cat"), [exe("cat")], env=ENV)

    return loop.run(start)


# --- S4: capture with getProcessOutput ----------------------------------------------------


def capture(api: SimpleNamespace, p: dict[str, Any]) -> dict[str, Any]:
    loop = Loop(api)
    size = p["bytes"]
    base = rss_baseline()
    st = SimpleNamespace(t0=0.0)

    def got(out: bytes) -> None:
        dt = now() - st.t0
        loop.done(bytes=len(out), seconds=dt, mbps=len(out) / dt / 1e6, ok=len(out) == size)

    def start() -> None:
        st.t0 = now()
        d = api.utils.getProcessOutput(exe("head"), ["-c", str(size), "/dev/zero"], env=ENV)
        d.addCallbacks(loop.guard(got), lambda f: loop.fail(RuntimeError(str(f))))

    res = loop.run(start)
    res["rss_mib"] = peak_rss_mib() - base
    return res


# --- S5: round trips ----------------------------------------------------------------------


def round_trips(api: SimpleNamespace, p: dict[str, Any]) -> dict[str, Any]:
    loop = Loop(api)
    n, size = p["n"], len(ECHO_LINE)
    st = SimpleNamespace(count=0, pending=0, t0=0.0, t1=0.0)

    class EchoProtocol(api.ProcessProtocol):  # type: ignore[misc, name-defined]
        def connectionMade(self) -> None:
            st.t0 = now()
            self.transport.write(ECHO_LINE)

        def childDataReceived(self, fd: int, data: bytes) -> None:
            st.pending += len(data)
            if st.pending >= size:
                st.pending -= size
                st.count += 1
                if st.count < n:
                    self.transport.write(ECHO_LINE)
                else:
                    st.t1 = now()
                    self.transport.closeStdin()

        def processEnded(self, reason: Any) -> None:
            dt = st.t1 - st.t0
            loop.done(n=st.count, seconds=dt, us=dt / max(st.count, 1) * 1e6, ok=st.count == n)

    for name in ("connectionMade", "childDataReceived", "processEnded"):
        setattr(EchoProtocol, name, loop.guard(getattr(EchoProtocol, name)))

    def start() -> None:
        api.reactor.spawnProcess(EchoProtocol(), exe("cat"), [exe("cat")], env=ENV)

    return loop.run(start)


# --- S6: many concurrent children ---------------------------------------------------------


def many_children(api: SimpleNamespace, p: dict[str, Any]) -> dict[str, Any]:
    """``n`` children alive at once; with ``kill`` (S6's curve) they run ``sleep 3600`` and
    are SIGKILLed as soon as all have started."""
    loop = Loop(api)
    n, kill = p["n"], p.get("kill", False)
    argv = [exe("sleep"), str(p["sleep"])]
    kwargs: dict[str, Any] = {}
    devnull = -1
    if p["stdio"] == "null":  # no pipes: only the exit is watched (fd budget for 10,000)
        devnull = os.open(os.devnull, os.O_RDWR)
        kwargs["childFDs"] = {0: devnull, 1: devnull, 2: devnull}
    base_rss = rss_baseline()
    st = SimpleNamespace(ended=0, bad=0, t0=0.0, cpu0=0.0, start_all=0.0, threads=0)

    class SleepProtocol(api.ProcessProtocol):  # type: ignore[misc, name-defined]
        def processEnded(self, reason: Any) -> None:
            st.ended += 1
            if (getattr(reason.value, "signal", None) != 9) if kill else (exit_code(reason) != 0):
                st.bad += 1
            if st.ended == n:
                cpu = cpu_seconds() - st.cpu0
                loop.done(
                    n=n,
                    seconds=now() - st.t0,
                    start_all=st.start_all,
                    cpu=cpu,
                    per_event_us=cpu / n * 1e6,
                    threads=st.threads,
                    failures=st.bad,
                    completed=n - st.bad,
                )

    SleepProtocol.processEnded = loop.guard(SleepProtocol.processEnded)  # type: ignore[method-assign]

    def start() -> None:
        st.cpu0, st.t0 = cpu_seconds(), now()
        procs = [api.reactor.spawnProcess(SleepProtocol(), argv[0], argv, env=ENV, **kwargs) for _ in range(n)]
        st.start_all = now() - st.t0
        st.threads = thread_count()
        if kill:
            for proc in procs:
                proc.signalProcess("KILL")

    res = loop.run(start)
    res["rss_mib"] = peak_rss_mib() - base_rss
    if devnull >= 0:
        os.close(devnull)
    return res


# --- S7: three-stage pipeline -------------------------------------------------------------


def pipeline(api: SimpleNamespace, p: dict[str, Any]) -> dict[str, Any]:
    """``head -c BYTES /dev/zero | cat | wc -c``: relayed through callbacks, or wired."""
    loop = Loop(api)
    size = p["bytes"]
    st = SimpleNamespace(ended=0, bad=0, out=b"", t0=0.0)

    class Stage(api.ProcessProtocol):  # type: ignore[misc, name-defined]
        """Relays its stdout into ``downstream``'s stdin (if any); the last stage collects."""

        downstream: Any = None

        def childDataReceived(self, fd: int, data: bytes) -> None:
            if fd != 1:
                return
            if self.downstream is not None:
                self.downstream.transport.write(data)
            else:
                st.out += data

        def childConnectionLost(self, fd: int) -> None:
            if fd == 1 and self.downstream is not None:
                self.downstream.transport.unregisterProducer()
                self.downstream.transport.closeStdin()

        def processEnded(self, reason: Any) -> None:
            st.ended += 1
            if exit_code(reason) != 0:
                st.bad += 1
            if st.ended == 3:
                dt = now() - st.t0
                count = int(st.out.split()[0]) if st.out.strip() else -1
                loop.done(bytes=count, seconds=dt, mbps=count / dt / 1e6, ok=count == size and not st.bad)

    for name in ("childDataReceived", "childConnectionLost", "processEnded"):
        setattr(Stage, name, loop.guard(getattr(Stage, name)))

    head = [exe("head"), "-c", str(size), "/dev/zero"]
    cat, wc = [exe("cat")], [exe("wc"), "-c"]

    def spawn(proto: Any, argv: list[str], **kw: Any) -> Any:
        return api.reactor.spawnProcess(proto, argv[0], argv, env=ENV, **kw)

    def start_relay() -> None:
        st.t0 = now()
        a, b, c = Stage(), Stage(), Stage()
        a.downstream, b.downstream = b, c
        spawn(c, wc)
        spawn(b, cat)
        # The upstream transport is the producer of the downstream stdin: when a stdin
        # buffer fills, the upstream process stops being read (flow control).
        c.transport.registerProducer(b.transport, True)
        spawn(a, head)
        b.transport.registerProducer(a.transport, True)

    def start_wired() -> None:
        st.t0 = now()
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        spawn(Stage(), head, childFDs={1: w1, 2: "r"})
        spawn(Stage(), cat, childFDs={0: r1, 1: w2, 2: "r"})
        spawn(Stage(), wc, childFDs={0: r2, 1: "r", 2: "r"})
        for fd in (r1, w1, r2, w2):
            os.close(fd)

    def start_api() -> None:
        if api.peer == "twisted":
            raise NotApplicable("Twisted has no pipeline call")
        from ferroproc.pipeline import getPipelineOutput

        st.t0 = now()

        def finished(result: Any) -> None:
            dt = now() - st.t0
            count = int(result.out.split()[0]) if result.out.strip() else -1
            loop.done(bytes=count, seconds=dt, mbps=count / dt / 1e6, ok=count == size and result.ok)

        d = getPipelineOutput([head, cat, wc], env=ENV, reactor=api.reactor)
        d.addCallbacks(loop.guard(finished), lambda f: loop.fail(f.value))

    return loop.run({"relay": start_relay, "wired": start_wired, "api": start_api}[p["mode"]])


SCENARIOS = {
    "S1": spawn_rate,
    "S2": spawn_rate,
    "S8": spawn_rate,
    "S9": spawn_rate,
    "S3": pipe_throughput,
    "S4": capture,
    "S5": round_trips,
    "S6": many_children,
    "S7": pipeline,
}


def run(api: SimpleNamespace, scenario: str, params: dict[str, Any]) -> dict[str, Any]:
    """Measure ``scenario`` once with the modules returned by :func:`load`."""
    return SCENARIOS[scenario](api, params)
