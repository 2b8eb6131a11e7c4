"""The debug log: spawns, exits and the signals ferroproc sends, at DEBUG on
the ``ferroproc`` logger, for every host; nothing made while that logger is
not enabled for DEBUG; a level changed while the program runs takes effect.

Each record carries ``ferroproc_event`` (``spawn``, ``exit``, ``signal``),
``pid`` and ``argv``; these tests filter on them, as an operator would.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
from engine_support import Recorder
from helpers import run_reactor

import ferroproc.asyncio as fa
from ferroproc import _asynciotransport, _core, reactor, utils
from ferroproc.defer import Deferred
from ferroproc.error import ProcessExitedAlready, ResourceUsage
from ferroproc.failure import Failure
from ferroproc.pipeline import getPipelineOutput, spawnPipeline

LOGGER = "ferroproc"
# Ignores SIGTERM (exec: no shell left to orphan it); says "ready" once it does.
IGNORES_TERM = ["sh", "-c", "trap '' TERM; echo ready; exec sleep 30"]


async def _spawnOnce() -> None:
    await (await fa.create_subprocess_exec("true")).wait()


def settle_engines() -> None:
    """This thread's asyncio engine lives as long as the thread: have it
    before and after each test (no_leaks calls this), as test_asyncio_host does."""
    driver = _asynciotransport._thread.driver
    if driver is None or getattr(driver, "retired", False):
        gc.collect()
        asyncio.run(_spawnOnce())


@pytest.fixture
def debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The debug log on (the ``ferroproc`` logger at DEBUG), captured."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


@pytest.fixture
def logging_state() -> Iterator[None]:
    """Put back what a test changes of logging's configuration."""
    ours, root = logging.getLogger(LOGGER), logging.getLogger()
    levels = (ours.level, root.level)
    handlers = list(root.handlers)
    yield
    ours.setLevel(levels[0])
    root.setLevel(levels[1])
    root.handlers[:] = handlers
    logging.disable(logging.NOTSET)


def events(caplog: pytest.LogCaptureFixture, pid: int | None = None, kind: str | None = None) -> list[Any]:
    """The debug log's records (about ``pid``, of ``kind``), in order."""
    return [
        r
        for r in caplog.records
        if getattr(r, "ferroproc_event", None) is not None
        and (pid is None or r.pid == pid)
        and (kind is None or r.ferroproc_event == kind)
    ]


def command_of(message: str) -> list[str]:
    """The command a line ends with, as a shell reads it back."""
    return shlex.split(message.rsplit("): ", 1)[-1] if "): " in message else message.split(": ", 1)[1])


def spawn(argv: list[str], **kw: Any) -> tuple[Recorder, Any]:
    proto = Recorder()
    transport = reactor.spawnProcess(proto, argv[0] if argv[0].startswith("/") else f"/bin/{argv[0]}", argv, **kw)
    return proto, transport


def ended(proto: Recorder, timeout: float = 15.0) -> Recorder:
    return run_reactor(proto.ended, timeout)  # type: ignore[no-any-return]


def outcome(d: Deferred[Any], timeout: float = 30.0) -> Any:
    """The Deferred's result, or its Failure (not raised)."""
    box: list[Any] = []
    d.addBoth(box.append)
    run_reactor(lambda: bool(box), timeout)
    return box[0]


# -- the reactor ---------------------------------------------------------------


def test_a_spawn_and_its_exit_are_logged_before_the_protocol_hears_of_the_exit(
    debug: pytest.LogCaptureFixture,
) -> None:
    argv = ["sh", "-c", "echo 'a b' >/dev/null; exit 3"]
    said = logging.getLogger("test.debuglog")

    class Says(Recorder):
        def processExited(self, reason: Failure) -> None:
            said.warning("the protocol saw its exit")
            super().processExited(reason)

    proto = Says()
    transport = reactor.spawnProcess(proto, "/bin/sh", argv)
    pid = transport.pid
    ended(proto)
    spawned, exited = events(debug, pid)
    assert (spawned.ferroproc_event, exited.ferroproc_event) == ("spawn", "exit")
    assert (spawned.levelno, spawned.name) == (logging.DEBUG, LOGGER)
    assert spawned.getMessage().startswith(f"spawned pid {pid}: ")
    assert command_of(spawned.getMessage()) == argv
    assert (spawned.argv, spawned.executable, spawned.pgid) == (argv, "/bin/sh", None)

    message = exited.getMessage()
    assert message.startswith(f"pid {pid} exited with code 3 after "), message
    assert command_of(message) == argv
    assert (exited.exit_code, exited.signal, exited.timed_out, exited.killed) == (3, None, None, False)
    assert exited.duration > 0
    assert isinstance(exited.resource_usage, ResourceUsage)
    assert exited.argv == argv
    saw = next(i for i, r in enumerate(debug.records) if r.getMessage() == "the protocol saw its exit")
    assert debug.records.index(exited) < saw, "the exit was logged after processExited ran"


def test_a_time_limit_logs_its_sigterm_its_sigkill_and_how_the_child_ended(debug: pytest.LogCaptureFixture) -> None:
    # The idle clock starts again at "ready": the trap is set by then.
    proto, transport = spawn(IGNORES_TERM, processGroup=True, idleTimeout=0.3, killGrace=0.2)
    pid = transport.pid
    ended(proto)
    term, kill = events(debug, pid, "signal")
    assert (term.signal, term.target, term.reason, term.error) == ("SIGTERM", "group", "idle-timeout", None)
    assert term.getMessage() == (
        f"sent SIGTERM to group {pid} (idle-timeout: no output for its idle limit of 0.3s): {shlex.join(IGNORES_TERM)}"
    )
    assert (kill.signal, kill.target, kill.reason) == ("SIGKILL", "group", "kill-grace")
    assert "still running 0.2s after the SIGTERM of its idle limit" in kill.getMessage()
    (exited,) = events(debug, pid, "exit")
    assert (exited.signal, exited.exit_code, exited.timed_out, exited.killed) == ("SIGKILL", None, "idle", True)
    assert exited.getMessage().startswith(f"pid {pid} killed by SIGKILL after ")
    assert "(timed out: idle limit of 0.3s, SIGKILL after the grace; user " in exited.getMessage()


def test_a_wall_clock_limit_without_grace_is_one_sigkill(debug: pytest.LogCaptureFixture) -> None:
    proto, transport = spawn(["sleep", "30"], timeout=0.2, killGrace=0)
    pid = transport.pid
    ended(proto)
    (kill,) = events(debug, pid, "signal")
    assert (kill.signal, kill.target, kill.reason) == ("SIGKILL", "pid", "timeout")
    assert kill.getMessage() == f"sent SIGKILL to pid {pid} (timeout: its time limit of 0.2s ran out): sleep 30"
    (exited,) = events(debug, pid, "exit")
    assert (exited.timed_out, exited.killed) == ("wall", True)


def test_the_group_kills_on_exit_and_on_loss_are_logged(debug: pytest.LogCaptureFixture) -> None:
    proto, transport = spawn(
        ["sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 & exit 0"], processGroup=True, killGroupOnExit=True
    )
    pid = transport.pid
    ended(proto)
    (kill,) = events(debug, pid, "signal")
    assert (kill.signal, kill.target, kill.reason) == ("SIGKILL", "group", "kill-group-on-exit")

    proto, transport = spawn(["sleep", "30"], processGroup=True, killGroupOnLost=True)
    pid = transport.pid
    transport.loseConnection()
    ended(proto)
    (kill,) = events(debug, pid, "signal")
    assert (kill.signal, kill.target, kill.reason) == ("SIGKILL", "group", "kill-group-on-lost")
    assert events(debug, pid, "exit")[0].signal == "SIGKILL"


def test_signals_the_program_sends_are_logged_and_nothing_when_none_was_sent(debug: pytest.LogCaptureFixture) -> None:
    proto, transport = spawn(["sleep", "30"], processGroup=True)
    pid = transport.pid
    transport.signalProcess("CONT")
    transport.signalGroup("TERM")
    ended(proto)
    cont, term = events(debug, pid, "signal")
    assert cont.getMessage() == f"sent SIGCONT to pid {pid} (program: signalProcess called by the program): sleep 30"
    assert (term.signal, term.target, term.reason) == ("SIGTERM", "group", "program")
    with pytest.raises(ProcessExitedAlready):
        transport.signalProcess("TERM")
    assert len(events(debug, pid, "signal")) == 2, "a signal that reached nobody was logged"


# -- the utilities and pipelines -----------------------------------------------


def test_the_utilities_stops_say_why(debug: pytest.LogCaptureFixture) -> None:
    result = outcome(utils.getProcessOutput("yes", maxBytes=10))
    assert isinstance(result, Failure)
    (kill,) = events(debug, kind="signal")
    assert (kill.signal, kill.reason) == ("SIGKILL", "max-bytes")
    assert kill.getMessage().endswith("(max-bytes: its output passed maxBytes=10): yes")
    debug.clear()

    result = outcome(utils.getProcessResult(IGNORES_TERM[0], IGNORES_TERM[1:], timeout=0.3, killGrace=0.2))
    term, kill = events(debug, kind="signal")
    assert (term.signal, term.reason) == ("SIGTERM", "timeout")
    assert "(timeout: its timeout of 0.3s ran out)" in term.getMessage()
    assert (kill.signal, kill.reason) == ("SIGKILL", "kill-grace")
    assert "still running 0.2s after the SIGTERM (its timeout of 0.3s ran out)" in kill.getMessage()
    assert result.timedOut


def test_pipeline_stops_say_why(debug: pytest.LogCaptureFixture) -> None:
    # A stage fails: the one still running is stopped.
    outcome(getPipelineOutput([["sleep", "30"], ["sh", "-c", "exit 1"]]))
    (term,) = events(debug, kind="signal")
    assert (term.signal, term.reason, term.argv) == ("SIGTERM", "pipeline", ["sleep", "30"])
    assert "stage 1 of its pipeline failed" in term.getMessage()
    debug.clear()

    # Cancelling: every stage.
    pipeline = spawnPipeline([["sleep", "30"], ["cat"]])
    pipeline.ended.addErrback(lambda f: None)
    pipeline.ended.cancel()
    run_reactor(lambda: not reactor._engine.processCount)
    assert {(r.argv[0], r.reason) for r in events(debug, kind="signal")} == {("sleep", "cancel"), ("cat", "cancel")}


# -- the other hosts -----------------------------------------------------------


def test_the_asyncio_host_logs_spawns_exits_and_its_kills(debug: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[int, int, int]:
        done = await fa.create_subprocess_exec("sh", "-c", "exit 2")
        await done.wait()
        killed = await fa.create_subprocess_exec("sleep", "30")
        killed.kill()
        await killed.wait()
        closed = await fa.create_subprocess_exec("sleep", "30")
        closed._transport.close()  # type: ignore[attr-defined]
        await closed.wait()
        return done.pid, killed.pid, closed.pid

    done, killed, closed = asyncio.run(main())
    assert [r.ferroproc_event for r in events(debug, done)] == ["spawn", "exit"]
    assert events(debug, done, "exit")[0].exit_code == 2
    (kill,) = events(debug, killed, "signal")
    assert (kill.signal, kill.reason) == ("SIGKILL", "program")
    assert "send_signal called by the program" in kill.getMessage()
    assert [r.reason for r in events(debug, closed, "signal")] == ["transport-closed"]
    assert events(debug, closed, "exit")[0].signal == "SIGKILL"


def _twisted_child(argv: list[str]) -> int:
    """Run ``argv`` to its end under a fresh Twisted reactor (ferroproc.twisted
    installed); its pid."""
    from twisted.internet.epollreactor import EPollReactor
    from twisted.internet.protocol import ProcessProtocol as TwistedProtocol

    r = EPollReactor()

    class Stops(TwistedProtocol):
        def processEnded(self, reason: Any) -> None:
            r.stop()

    try:
        pid: int = r.spawnProcess(Stops(), "/bin/sh", argv).pid
        guard = r.callLater(10, r.stop)
        r.run(installSignalHandlers=False)
        if guard.active():
            guard.cancel()
        return pid
    finally:
        # Release its fds and its engine's, as test_twisted_host does.
        vars(r).pop("_ferroprocEngineReader", None)
        for reader in list(r._internalReaders):
            r.removeReader(reader)
            reader.connectionLost(None)
        r._poller.close()


def test_the_twisted_host_logs_spawns_and_exits(debug: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("twisted", reason="Twisted is not installed")
    import ferroproc.twisted

    was = ferroproc.twisted.installed()
    ferroproc.twisted.install()
    try:
        pid = _twisted_child(["sh", "-c", "exit 4"])
    finally:
        if not was:
            ferroproc.twisted.uninstall()
        gc.collect()
    spawned, exited = events(debug, pid)
    assert spawned.argv == ["sh", "-c", "exit 4"]
    assert (exited.exit_code, exited.argv) == (4, ["sh", "-c", "exit 4"])


# -- off, and turned on or off at run time -------------------------------------


def test_nothing_is_made_while_the_logger_is_not_enabled_for_debug(
    caplog: pytest.LogCaptureFixture, logging_state: None
) -> None:
    def everything() -> None:
        proto, transport = spawn(IGNORES_TERM, processGroup=True, idleTimeout=0.2, killGrace=0.1)
        ended(proto)
        proto, transport = spawn(["sleep", "30"], processGroup=True, killGroupOnLost=True)
        transport.signalProcess("CONT")
        transport.loseConnection()
        ended(proto)
        outcome(utils.getProcessOutput("yes", maxBytes=10))

    # The logger's level (INFO), logging.disable, and a DEBUG handler on a
    # root logger left at WARNING (logging's own rule: a handler's level
    # does not enable its logger).
    caplog.set_level(logging.INFO, logger=LOGGER)
    made = _core._debugRecords()
    everything()
    logging.getLogger(LOGGER).setLevel(logging.DEBUG)
    logging.disable(logging.DEBUG)
    everything()
    logging.disable(logging.NOTSET)
    logging.getLogger(LOGGER).setLevel(logging.NOTSET)
    logging.getLogger().setLevel(logging.WARNING)
    handler = logging.StreamHandler()
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    everything()
    assert _core._debugRecords() == made, "debug records were made while the log was off"
    assert not events(caplog)


def test_a_level_set_while_the_program_runs_takes_effect(caplog: pytest.LogCaptureFixture, logging_state: None) -> None:
    ours = logging.getLogger(LOGGER)
    ours.setLevel(logging.INFO)
    caplog.set_level(logging.DEBUG)  # the handler; the logger decides

    class TurnsItOn(Recorder):
        def outReceived(self, data: bytes) -> None:
            # In a callback, in the middle of the child's life.
            ours.setLevel(logging.DEBUG)
            self.transport.closeStdin()

    first = TurnsItOn()
    pid = reactor.spawnProcess(first, "/bin/sh", ["sh", "-c", "echo go; read x; exit 5"]).pid
    ended(first)
    # Started while off: its exit alone, by pid (no argv, no duration).
    (exited,) = events(caplog, pid)
    assert (exited.ferroproc_event, exited.exit_code, exited.argv, exited.duration) == ("exit", 5, None, None)
    assert exited.getMessage().startswith(f"pid {pid} exited with code 5 (user ")

    # Off again (logging.disable), in the middle of the next child's life.
    second = Recorder()
    t2 = reactor.spawnProcess(second, "/bin/sh", ["sh", "-c", "read x; exit 6"])
    pid = t2.pid
    assert [r.ferroproc_event for r in events(caplog, pid)] == ["spawn"]
    logging.disable(logging.DEBUG)
    made = _core._debugRecords()
    t2.closeStdin()
    ended(second)
    assert events(caplog, pid, "exit") == []
    assert _core._debugRecords() == made

    # On through the root logger (as logging.basicConfig(level=DEBUG) does).
    logging.disable(logging.NOTSET)
    ours.setLevel(logging.NOTSET)
    logging.getLogger().setLevel(logging.DEBUG)
    third, t3 = spawn(["true"])
    pid = t3.pid
    ended(third)
    assert [r.ferroproc_event for r in events(caplog, pid)] == ["spawn", "exit"]
