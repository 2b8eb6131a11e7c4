"""ferroproc.twisted: the engine hosted by Twisted reactors.

Each test builds a fresh Twisted reactor (never the global one) and runs it
with ``installSignalHandlers=False``: no SIGCHLD handler is needed.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("twisted", reason="Twisted is not installed: pip install 'ferroproc[twisted]'")

from twisted.internet import error as terror
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import ProcessProtocol
from twisted.python import log
from twisted.python.failure import Failure

import ferroproc.error
import ferroproc.twisted
from ferroproc._core import Process as FerroProcess

PY = sys.executable
REACTORS = ["select", "poll", "epoll", "asyncio"]


def _make_reactor(kind: str) -> Any:
    if kind == "select":
        from twisted.internet.selectreactor import SelectReactor

        return SelectReactor()
    if kind == "poll":
        from twisted.internet.pollreactor import PollReactor

        return PollReactor()
    if kind == "epoll":
        from twisted.internet.epollreactor import EPollReactor

        return EPollReactor()
    import asyncio

    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    return AsyncioSelectorReactor(asyncio.new_event_loop())


def _dispose(r: Any) -> None:
    """Release a test reactor's fds, as Twisted's ReactorBuilder does, and
    its engine's (now: pytest still holds the reactor while fixtures end)."""
    vars(r).pop("_ferroprocEngineReader", None)
    for reader in list(getattr(r, "_internalReaders", ())):
        r.removeReader(reader)
        reader.connectionLost(None)
    r.disconnectAll()
    for call in r.getDelayedCalls():
        call.cancel()
    for name in ("_poller", "_selector"):
        closer = getattr(getattr(r, name, None), "close", None)
        if closer is not None:
            closer()
    loop = getattr(r, "_asyncioEventloop", None)
    if loop is not None:
        loop.close()


@pytest.fixture(autouse=True)
def installed() -> Iterator[None]:
    was = ferroproc.twisted.installed()
    ferroproc.twisted.install()
    yield
    if not was:
        ferroproc.twisted.uninstall()


@pytest.fixture(params=REACTORS)
def reactor(request: pytest.FixtureRequest) -> Iterator[Any]:
    r = _make_reactor(request.param)
    yield r
    _dispose(r)
    del r
    gc.collect()  # the engine's fds close with it


def run_until(r: Any, d: Deferred[Any], timeout: float = 10.0) -> Any:
    """Run ``r`` until ``d`` fires; its result (or raise its failure)."""
    out: list[Any] = []

    def done(result: Any) -> None:
        out.append(result)
        r.stop()

    d.addBoth(done)
    guard = r.callLater(timeout, r.stop)
    r.run(installSignalHandlers=False)
    if guard.active():
        guard.cancel()
    if not out:
        pytest.fail(f"reactor timed out after {timeout}s")
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


class Recorder(ProcessProtocol):
    """Records every event; ``ended`` fires on processEnded (``reason``)."""

    def __init__(self, on: dict[str, Callable[..., Any]] | None = None) -> None:
        self.events: list[Any] = []
        self.out = b""
        self.ended: Deferred[Any] = Deferred()
        self.on = on or {}

    def connectionMade(self) -> None:
        self.events.append("made")
        if "made" in self.on:
            self.on["made"](self)

    def childDataReceived(self, fd: int, data: bytes) -> None:
        self.events.append(("data", fd))
        if fd == 1:
            self.out += data
        if "data" in self.on:
            self.on["data"](self, fd, data)

    def childConnectionLost(self, fd: int) -> None:
        self.events.append(("lost", fd))
        if "lost" in self.on:
            self.on["lost"](self, fd)

    def processExited(self, reason: Any) -> None:
        self.events.append("exited")
        self.exitedReason = reason

    def processEnded(self, reason: Any) -> None:
        self.events.append("ended")
        self.reason = reason
        self.ended.callback(None)


def wait_end(r: Any, p: Recorder, timeout: float = 10.0) -> Any:
    """Run ``r`` until ``p`` gets processEnded; the reason."""
    run_until(r, p.ended, timeout)
    return p.reason


def test_install_replaces_and_uninstall_restores_spawnProcess() -> None:
    assert PosixReactorBase.spawnProcess is ferroproc.twisted.spawnProcess
    ferroproc.twisted.install()  # idempotent
    ferroproc.twisted.uninstall()
    try:
        assert not ferroproc.twisted.installed()
        assert PosixReactorBase.spawnProcess is not ferroproc.twisted.spawnProcess
        assert ferroproc.error.ProcessExitedAlready.__module__ == "ferroproc.error"
    finally:
        ferroproc.twisted.install()


def test_twisted_objects_and_order(reactor: Any) -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, PY, [PY, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"], env=None)
    assert isinstance(t, FerroProcess)
    assert IProcessTransport.providedBy(t)
    assert p.transport is t and t.pid
    t.write(b"hello")
    t.closeStdin()
    reason = wait_end(reactor, p)
    assert isinstance(reason, Failure) and reason.check(terror.ProcessDone)
    assert isinstance(p.exitedReason.value, terror.ProcessDone)
    assert p.out == b"HELLO"
    assert p.events[0] == "made" and p.events[-1] == "ended"
    assert {("lost", 0), ("lost", 1), ("lost", 2)} <= set(p.events)
    assert t.pid is None and t.proto is None


def test_exit_code_and_signal_reasons(reactor: Any) -> None:
    p1, p2 = Recorder(), Recorder()
    reactor.spawnProcess(p1, PY, [PY, "-c", "raise SystemExit(7)"])
    t2 = reactor.spawnProcess(p2, PY, [PY, "-c", "import time; time.sleep(30)"])
    t2.signalProcess("KILL")
    run_until(reactor, gatherResults([p1.ended, p2.ended]))
    r1, r2 = p1.reason, p2.reason
    assert r1.check(terror.ProcessTerminated) and r1.value.exitCode == 7 and r1.value.signal is None
    assert r2.check(terror.ProcessTerminated) and r2.value.signal == signal.SIGKILL and r2.value.exitCode is None


def test_reader_registered_only_while_children_live(reactor: Any) -> None:
    def ours() -> list[Any]:
        return [r for r in reactor._internalReaders if type(r).__name__ == "_EngineReader"]

    assert ours() == []
    p = Recorder()
    t = reactor.spawnProcess(p, PY, [PY, "-c", "import sys; sys.stdin.read()"])
    assert len(ours()) == 1
    seen: list[int] = []
    p.ended.addCallback(lambda _: seen.append(len(ours())))
    t.closeStdin()
    wait_end(reactor, p)
    assert ours() == []
    assert seen == [1], "processEnded runs inside the engine's turn; the reader goes right after"
    assert [c for c in reactor.getDelayedCalls() if c.active()] == []
    assert not [r for r in reactor.getReaders() if type(r).__name__ == "_EngineReader"], "internal, never shown"


def _entries(r: Any) -> tuple[list[str], list[str]]:
    """The reactor's entries that are not its own internals, by kind (a
    process transport is "process": Twisted's class is PTYProcess, ours Process)."""

    def kind(x: Any) -> str:
        return "process" if IProcessTransport.providedBy(x) else type(x).__name__

    def names(xs: list[Any]) -> list[str]:
        return sorted(kind(x) for x in xs if x not in r._internalReaders)

    return names(r.getReaders()), names(r.getWriters())


def _spawn_sleepers(r: Any) -> tuple[Recorder, Any, Recorder, Any]:
    sleep = [PY, "-c", "import sys; sys.stdin.read()"]
    p, q = Recorder(), Recorder()
    return p, r.spawnProcess(p, PY, sleep), q, r.spawnProcess(q, PY, sleep, usePTY=True)


def _iterate_until(r: Any, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Turn ``r`` by hand (a Twisted reactor cannot be run twice)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        r.iterate(0.01)


@pytest.mark.parametrize("kind", ["epoll", "poll"])
def test_processes_show_as_twisteds_reactor_entries(kind: str) -> None:
    """getReaders()/getWriters() list a process's pipes (ProcessReader for
    output, ProcessWriter for input) and a PTY process itself, as Twisted's
    own reactor does: measured on Twisted first, then under install()."""
    seen = {}
    for mode in ("twisted", "ferroproc"):
        if mode == "twisted":
            ferroproc.twisted.uninstall()
        else:
            ferroproc.twisted.install()
        r = _make_reactor(kind)
        try:
            p, t, q, u = _spawn_sleepers(r)
            r.iterate(0.05)
            seen[mode] = _entries(r)
            pids = [t.pid, u.pid]
            for tr in (t, u):
                tr.signalProcess("KILL")
            if mode == "twisted":
                for pid in pids:  # no SIGCHLD handler without run()
                    os.waitpid(pid, 0)
            else:
                _iterate_until(r, lambda p=p, q=q: "ended" in p.events and "ended" in q.events)
        finally:
            _dispose(r)
    assert seen["ferroproc"] == seen["twisted"], seen
    assert seen["ferroproc"][0] == ["ProcessReader", "ProcessReader", "ProcessWriter", "process"]


def test_remove_all_returns_processes_and_later_spawns_still_work(reactor: Any) -> None:
    """trial's janitor calls removeAll() after a dirty test and kills the
    PTY processes among the results: the engine must survive it, and
    those processes must be there to kill, as under Twisted."""
    p, t, q, u = _spawn_sleepers(reactor)
    removed = reactor.removeAll()
    names = sorted(type(x).__name__ for x in removed)
    assert names == ["Process", "ProcessReader", "ProcessReader", "ProcessWriter"], names
    killed = [x for x in removed if IProcessTransport.providedBy(x)]
    assert killed == [u]
    for x in killed:
        x.signalProcess("KILL")
    t.signalProcess("KILL")
    assert _entries(reactor) == ([], [])
    # The removed processes get no more callbacks; a new child is delivered.
    fresh = Recorder()
    reactor.spawnProcess(fresh, PY, [PY, "-c", "print('after removeAll')"])
    _iterate_until(reactor, lambda: "ended" in fresh.events)
    assert fresh.out == b"after removeAll\n"
    # The removed ones were reaped all the same, without a callback.
    _iterate_until(reactor, lambda: t.pid is None and u.pid is None)
    assert "exited" not in p.events and "exited" not in q.events


def test_work_queued_inside_a_callback_is_delivered_without_fd_activity(reactor: Any) -> None:
    # closeStdout() inside errReceived queues childConnectionLost(1) while the
    # engine is mid-turn; nothing on the poll fd announces it, so the host
    # must run another turn by itself. The child stays silent meanwhile.
    def on_data(proto: Recorder, fd: int, data: bytes) -> None:
        if fd == 2:
            proto.transport.closeStdout()

    def on_lost(proto: Recorder, fd: int) -> None:
        if fd == 1:
            proto.transport.signalProcess("KILL")

    p = Recorder({"data": on_data, "lost": on_lost})
    reactor.spawnProcess(p, PY, [PY, "-c", "import os, time; os.write(2, b'x'); time.sleep(30)"])
    reason = wait_end(reactor, p, timeout=10)
    assert reason.value.signal == signal.SIGKILL
    assert p.events.index(("lost", 1)) < p.events.index("exited")


def test_processExitedAlready_is_twisteds_and_ferroprocs(reactor: Any) -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, PY, [PY, "-c", ""])
    wait_end(reactor, p)
    with pytest.raises(terror.ProcessExitedAlready):
        t.signalProcess("INT")
    with pytest.raises(ferroproc.error.ProcessExitedAlready):
        t.signalProcess("INT")


def test_callback_errors_go_to_twisted_log(reactor: Any) -> None:
    logged: list[dict[str, Any]] = []
    log.addObserver(logged.append)

    class Boom(Recorder):
        def processExited(self, reason: Any) -> None:
            raise RuntimeError("boom in processExited")

    p = Boom()
    try:
        reactor.spawnProcess(p, PY, [PY, "-c", ""])
        reason = wait_end(reactor, p)
    finally:
        log.removeObserver(logged.append)
    assert reason.check(terror.ProcessDone), "processEnded still follows"
    errors = [e for e in logged if e.get("isError") and e.get("failure") is not None]
    assert len(errors) == 1
    assert errors[0]["failure"].check(RuntimeError)
    assert errors[0]["why"] == "while calling processExited:"


def test_each_reactor_gets_its_own_engine(reactor: Any) -> None:
    other = _make_reactor("select")
    try:
        p1, p2 = Recorder(), Recorder()
        reactor.spawnProcess(p1, PY, [PY, "-c", ""])
        other.spawnProcess(p2, PY, [PY, "-c", ""])
        r1 = vars(reactor)["_ferroprocEngineReader"]
        r2 = vars(other)["_ferroprocEngineReader"]
        assert r1 is not r2 and r1.engine is not r2.engine
        wait_end(reactor, p1)
        wait_end(other, p2)
        assert r2.engine.processCount == 0
    finally:
        _dispose(other)


def test_neverUseSpawn_selects_the_clone_path(reactor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = ferroproc.twisted._EngineReader.spawn

    def spy(self: Any, protocol: Any, args: Any) -> Any:
        calls.append(args)
        return real(self, protocol, args)

    monkeypatch.setattr(ferroproc.twisted._EngineReader, "spawn", spy)
    reactor._neverUseSpawn = True
    p = Recorder()
    reactor.spawnProcess(p, PY, [PY, "-c", ""])
    wait_end(reactor, p)
    assert calls[-1].method == "clone"


def test_validation_errors_are_raised_by_spawnProcess(reactor: Any) -> None:
    p = ProcessProtocol()
    with pytest.raises(FileNotFoundError):
        reactor.spawnProcess(p, "/nonexistent/program", ["program"])
    with pytest.raises(TypeError):
        reactor.spawnProcess(p, PY, "not a list")
    with pytest.raises(ValueError):
        reactor.spawnProcess(p, PY, [PY], usePTY=True, childFDs={})
    with pytest.raises(ValueError):
        reactor.spawnProcess(p, PY, [PY], childFDs={1: "x"})
    assert [type(r).__name__ for r in reactor.getReaders() if r not in reactor._internalReaders] == []


def test_pty(reactor: Any) -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, PY, [PY, "-c", "import os; print(os.isatty(0), os.isatty(1))"], usePTY=True)
    assert IProcessTransport.providedBy(t)
    reason = wait_end(reactor, p)
    assert reason.check(terror.ProcessDone)
    assert p.out.replace(b"\r\n", b"\n") == b"True True\n"


def test_after_uninstall_spawns_are_twisteds_own(reactor: Any) -> None:
    from twisted.internet import process as twprocess

    ferroproc.twisted.uninstall()
    try:
        p = Recorder()
        t = reactor.spawnProcess(p, PY, [PY, "-c", ""])
        assert isinstance(t, twprocess.Process)

        def reap() -> None:  # Twisted's reaper, without its SIGCHLD handler
            twprocess.reapAllProcesses()
            if not p.ended.called:
                reactor.callLater(0.01, reap)

        reactor.callLater(0, reap)
        assert wait_end(reactor, p).check(terror.ProcessDone)
        assert t.pid is None and t.pid not in twprocess.reapProcessHandlers
    finally:
        ferroproc.twisted.install()


def test_process_endpoint_and_utils_spawn_through_ferroproc(reactor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from twisted.internet import protocol, utils
    from twisted.internet.endpoints import ProcessEndpoint

    made: list[Any] = []
    real = ferroproc.twisted._EngineReader.spawn

    def spy(self: Any, protocol: Any, args: Any) -> Any:
        t = real(self, protocol, args)
        made.append(t)
        return t

    monkeypatch.setattr(ferroproc.twisted._EngineReader, "spawn", spy)
    got: Deferred[bytes] = Deferred()

    class Echo(protocol.Protocol):
        def connectionMade(self) -> None:
            self.transport.write(b"ping\n")

        def dataReceived(self, data: bytes) -> None:
            self.data = data
            self.transport.loseConnection()

        def connectionLost(self, reason: Any) -> None:  # after processEnded
            got.callback(self.data)

    ProcessEndpoint(reactor, "/bin/cat", ["cat"]).connect(protocol.Factory.forProtocol(Echo))
    out = utils.getProcessOutputAndValue(PY, ["-c", "print('hi')"], reactor=reactor)
    echoed, (stdout, _, code) = run_until(reactor, gatherResults([got, out]))
    assert echoed == b"ping\n" and stdout == b"hi\n" and code == 0
    assert len(made) == 2 and all(isinstance(t, FerroProcess) for t in made)


def _ours(calls: list[Any]) -> list[Any]:
    return [c for c in calls if getattr(c.func, "__name__", "") == "_onTimer"]


def test_a_time_limit_under_twisted_gives_twisteds_reason(reactor: Any) -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, "sleep", ["sleep", "30"], timeout=0.3, processGroup=True)
    assert t.pgid == t.pid
    assert len(_ours(reactor.getDelayedCalls())) == 1, "the reactor wakes the engine for the deadline"
    reason = wait_end(reactor, p)
    assert reason.check(terror.ProcessTerminated) and reason.check(ferroproc.error.ProcessTimedOut)
    assert isinstance(reason.value, ferroproc.twisted.ProcessTimedOut)
    assert (reason.value.kind, reason.value.signal) == ("wall", signal.SIGTERM)
    assert isinstance(reason.value.resourceUsage, ferroproc.error.ResourceUsage)
    assert _ours(reactor.getDelayedCalls()) == [], "an idle reactor holds no call of ours"


def test_a_child_that_ends_in_time_leaves_no_call_behind(reactor: Any) -> None:
    p = Recorder()
    reactor.spawnProcess(p, "true", ["true"], timeout=60)
    assert wait_end(reactor, p).check(terror.ProcessDone)
    assert _ours(reactor.getDelayedCalls()) == []


def test_spawn_options_are_checked_under_twisted(reactor: Any) -> None:
    with pytest.raises(ValueError, match="killGroupOnExit needs processGroup=True"):
        reactor.spawnProcess(Recorder(), "true", ["true"], killGroupOnExit=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        reactor.spawnProcess(Recorder(), "true", ["true"], colour="red")


def test_writes_from_a_callback_of_the_reactor_leave_together(reactor: Any) -> None:
    """Writes made in a callback of Twisted's own (a callLater here, a network
    event in ampoule's pool), outside the engine's turns, still reach the
    child in one write, as Twisted's buffered process writers send them."""
    child = "import os; os.write(1, b'ready'); data = os.read(0, 1 << 16); os.write(1, repr(data).encode())"

    def burst(p: Recorder) -> None:
        for part in (b"one ", b"two ", b"three"):
            p.transport.write(part)
            time.sleep(0.02)  # the child is blocked in read() meanwhile

    def on_data(p: Recorder, fd: int, data: bytes) -> None:
        if data == b"ready":
            reactor.callLater(0, burst, p)

    p = Recorder(on={"data": on_data})
    reactor.spawnProcess(p, PY, [PY, "-c", child])
    wait_end(reactor, p)
    assert p.out == b"readyb'one two three'"


# -- attributes a program hangs on the transport ----------------------------------


def test_a_ci_workers_pgid_note_on_a_pty_transport(reactor: Any) -> None:
    """A widely used CI worker sets ``self.transport.pgid =
    self.transport.pid`` for its PTY children (Twisted's transport has no
    ``pgid``; it is the program's own note): the child runs and ends as on
    Twisted, nothing is logged, the note reads back."""
    logged: list[dict[str, Any]] = []
    log.addObserver(logged.append)

    def note(proto: Recorder) -> None:
        proto.transport.pgid = proto.transport.pid

    p = Recorder({"made": note})
    try:
        t = reactor.spawnProcess(p, PY, [PY, "-c", "print('ready')"], usePTY=True)
        pid = t.pid
        reason = wait_end(reactor, p)
    finally:
        log.removeObserver(logged.append)
    assert [e for e in logged if e.get("isError")] == []
    assert reason.check(terror.ProcessDone)
    assert p.out.strip() == b"ready"
    assert t.pgid == pid


def test_names_ferroproc_adds_shadowed_by_a_program_leave_the_host_working(reactor: Any) -> None:
    """Every name ferroproc's transport has and Twisted's lacks takes a
    program's value; the host still lists and removes the process."""
    import twisted.internet.process as tp

    theirs = set(dir(tp.Process)) | set(dir(tp.PTYProcess)) | {"pipes"}
    names = [n for n in dir(FerroProcess) if n not in theirs and not (n.startswith("__") and n.endswith("__"))]
    p = Recorder()
    t = reactor.spawnProcess(p, PY, [PY, "-c", "import sys; sys.stdin.read()"])
    for name in names:
        setattr(t, name, "the program's")
    assert all(getattr(t, name) == "the program's" for name in names)
    reactor.iterate(0.01)
    # As Twisted lists them: stdout, stderr, and stdin's writer (watched for its loss).
    assert _entries(reactor) == (["ProcessReader", "ProcessReader", "ProcessWriter"], [])
    removed = reactor.removeAll()
    assert sorted(type(x).__name__ for x in removed) == ["ProcessReader", "ProcessReader", "ProcessWriter"]
    assert _entries(reactor) == ([], [])
    t.signalProcess("KILL")
    _iterate_until(reactor, lambda: t.pid is None)
