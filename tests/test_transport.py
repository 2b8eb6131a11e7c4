"""The process transport on real children: pid/status/repr, signalProcess,
writing, closing, pausing and producers (SPEC §1.2, §2.3, §2.4, §2.7, §2.10)."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import signal
import struct
import subprocess
import termios
import threading
import time
from typing import Any

import pytest
from engine_support import Recorder, spawn_and_run
from helpers import CHILDREN, PY, RecordingProducer, run_reactor

from ferroproc import reactor
from ferroproc._core import Process
from ferroproc.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from ferroproc.failure import Failure
from ferroproc.protocol import ProcessProtocol

OUTPUT = str(CHILDREN / "engine_output.py")
READY_WAIT = str(CHILDREN / "engine_ready_wait.py")
MiB = 1024 * 1024


def queued_in_pipe(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD on the parent's read end)."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


# -- pid, status, repr -------------------------------------------------------


def test_pid_status_and_repr_through_the_lifecycle() -> None:
    proto = Recorder(stdin=b"", close_stdin=False)
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    pid = transport.pid
    assert isinstance(pid, int) and pid > 0
    assert transport.status == -1
    assert repr(transport) == f"<Process pid={pid} status=-1>"
    assert transport.proto is proto
    transport.closeStdin()
    run_reactor(proto.ended)
    assert transport.pid is None
    assert transport.status == 0
    assert repr(transport) == "<Process pid=None status=0>"
    assert transport.proto is None


def test_repr_after_exit_code() -> None:
    proto = spawn_and_run(["/bin/sh", "-c", "exit 3"])
    assert repr(proto.transport) == "<Process pid=None status=768>"


# -- signalProcess -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("TERM", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("usr1", signal.SIGUSR1),
        ("SIGKILL", signal.SIGKILL),
        ("INT", signal.SIGINT),
        ("HUP", signal.SIGHUP),
        (int(signal.SIGUSR2), signal.SIGUSR2),
        (signal.SIGTERM, signal.SIGTERM),
    ],
)
def test_signal_process_names_and_ints(name: Any, expected: int) -> None:
    proto = Recorder()
    transport = reactor.spawnProcess(proto, "/bin/sleep", ["sleep", "30"])
    transport.signalProcess(name)
    run_reactor(proto.ended)
    assert proto.ended_reason.check(ProcessTerminated)
    assert proto.ended_reason.value.signal == expected


def test_signal_process_unknown_name_is_value_error() -> None:
    proto = Recorder()
    transport = reactor.spawnProcess(proto, "/bin/sleep", ["sleep", "30"])
    try:
        with pytest.raises(ValueError, match="NOSUCHSIG"):
            transport.signalProcess("NOSUCHSIG")
        assert transport.status == -1, "nothing was sent"
    finally:
        transport.signalProcess("KILL")
        run_reactor(proto.ended)


def test_signal_process_after_exit_raises_process_exited_already() -> None:
    seen: dict[str, Any] = {}

    class P(Recorder):
        def processExited(self, reason: Failure) -> None:
            super().processExited(reason)
            try:
                self.transport.signalProcess("TERM")
            except ProcessExitedAlready:
                seen["exited"] = True

        def processEnded(self, reason: Failure) -> None:
            try:
                self.transport.signalProcess("KILL")
            except ProcessExitedAlready:
                seen["ended"] = True
            super().processEnded(reason)

    proto = P()
    transport = reactor.spawnProcess(proto, "/bin/true", ["true"])
    run_reactor(proto.ended)
    assert seen == {"exited": True, "ended": True}
    for sig in ("TERM", 9, "usr1"):
        with pytest.raises(ProcessExitedAlready):
            transport.signalProcess(sig)


# -- writing -----------------------------------------------------------------


def test_64_mib_of_random_bytes_through_cat() -> None:
    data = os.urandom(64 * MiB)
    proto = Recorder(stdin=data)
    reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    run_reactor(proto.ended, timeout=30)
    out = proto.out[1]
    assert len(out) == len(data)
    assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()
    assert proto.ended_reason.check(ProcessDone)


def test_write_sequence() -> None:
    class P(Recorder):
        def connectionMade(self) -> None:
            super().connectionMade()
            self.transport.writeSequence([b"abc", b"", b"def"])
            self.transport.writeSequence([])
            self.transport.writeSequence(iter([b"g", b"hi"]))
            self.transport.write(b"jkl")
            self.transport.closeStdin()

    proto = P()
    reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    run_reactor(proto.ended)
    assert proto.output() == b"abcdefghijkl"


def test_empty_write_is_harmless() -> None:
    proto = Recorder(stdin=b"", close_stdin=False)
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    transport.write(b"")
    transport.write(b"after")
    transport.write(b"")
    transport.closeStdin()
    run_reactor(proto.ended)
    assert proto.output() == b"after"


def test_empty_write_does_not_hang_when_child_exits() -> None:
    """SPEC §2.12 quirk 1 is not reproduced: after write(b"") a child that
    exits without reading still gets processEnded, stdin left open."""
    proto = Recorder()
    transport = reactor.spawnProcess(proto, "/bin/sh", ["sh", "-c", "exit 0"])
    transport.write(b"")
    run_reactor(proto.ended, timeout=5)
    assert ("lost", 0) in proto.events


def test_rejected_write_does_not_hang_when_child_exits() -> None:
    proto = Recorder()
    transport = reactor.spawnProcess(proto, "/bin/sh", ["sh", "-c", "exit 0"])
    with pytest.raises(TypeError):
        transport.write("text")
    run_reactor(proto.ended, timeout=5)
    assert ("lost", 0) in proto.events


@pytest.mark.parametrize("bad", ["text", 42, None, ["b"]], ids=["str", "int", "None", "list"])
def test_non_bytes_write_is_type_error(bad: Any) -> None:
    proto = Recorder(stdin=b"", close_stdin=False)
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    with pytest.raises(TypeError):
        transport.write(bad)
    with pytest.raises(TypeError):
        transport.writeSequence([b"ok", bad])
    transport.closeStdin()
    run_reactor(proto.ended)
    assert proto.output() in (b"", b"ok"), "nothing after the bad item is written"


def test_write_after_close_stdin_before_flush_is_delivered_large() -> None:
    """Data queued behind a pending closeStdin still goes out (Twisted does this)."""
    big = b"a" * (2 * MiB)
    proto = Recorder(stdin=b"", close_stdin=False)
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    transport.write(big)  # more than a pipe holds: the close must wait for the flush
    transport.closeStdin()
    transport.write(b"def")
    run_reactor(proto.ended)
    assert proto.output() == big + b"def"


def test_write_after_close_stdin_before_flush_is_delivered_small() -> None:
    """SPEC §2.3 probe: write abc, closeStdin, write def → the child reads abcdef."""
    proto = Recorder(stdin=b"", close_stdin=False)
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    transport.write(b"abc")
    transport.closeStdin()
    transport.write(b"def")
    run_reactor(proto.ended)
    assert proto.output() == b"abcdef"


def test_write_after_stdin_closed_is_dropped() -> None:
    proto = Recorder(stdin=b"abc")  # closes stdin in connectionMade
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    run_reactor(lambda: ("lost", 0) in proto.events)
    transport.write(b"dropped")
    transport.writeSequence([b"also", b"dropped"])
    with pytest.raises(KeyError):
        transport.writeToChild(0, b"x")
    run_reactor(proto.ended)
    assert proto.output() == b"abc"


def test_write_to_a_child_that_already_exited() -> None:
    class P(Recorder):
        def processExited(self, reason: Failure) -> None:
            super().processExited(reason)
            # Whether or not the stdin pipe is noticed closed yet: no error.
            self.transport.write(b"x" * MiB)
            self.transport.writeSequence([b"y" * 1000, b"z"])

    proto = P()
    transport = reactor.spawnProcess(proto, "/bin/sh", ["sh", "-c", "exit 0"])
    run_reactor(proto.ended, timeout=5)
    assert proto.ended_reason.check(ProcessDone)
    transport.write(b"after the end")  # dropped, no exception
    assert proto.events.count(("lost", 0)) == 1


def test_buffered_data_discarded_when_child_exits_without_reading() -> None:
    """SPEC §2.3: 4 MiB queued, the child exits → lost 0 and a normal end."""
    proto = Recorder(stdin=b"q" * (4 * MiB), close_stdin=False)
    reactor.spawnProcess(proto, "/bin/sh", ["sh", "-c", "exit 0"])
    run_reactor(proto.ended, timeout=5)
    assert proto.ended_reason.check(ProcessDone)
    assert proto.events.count(("lost", 0)) == 1


# -- closing -----------------------------------------------------------------


def test_lose_connection_closes_all_pipes_then_process_ended() -> None:
    proto = Recorder()
    transport = reactor.spawnProcess(proto, PY, [PY, READY_WAIT])
    run_reactor(lambda: proto.output() == b"ready\n")
    transport.loseConnection()
    run_reactor(proto.ended)
    lost = sorted(e[1] for e in proto.events if isinstance(e, tuple) and e[0] == "lost")
    assert lost == [0, 1, 2]
    assert proto.events[-1] == "ended"
    assert proto.ended_reason.check(ProcessDone), "the child saw EOF on stdin and exited"
    assert transport.pipes == {}


def test_close_stdout_child_dies_of_sigpipe() -> None:
    class P(Recorder):
        def outReceived(self, data: bytes) -> None:
            self.transport.closeStdout()

    proto = P()
    reactor.spawnProcess(proto, "/usr/bin/yes", ["yes"])
    run_reactor(proto.ended)
    assert proto.ended_reason.value.signal == signal.SIGPIPE
    assert proto.events.count(("lost", 1)) == 1


def test_protocol_none_with_no_child_fds() -> None:
    transport = reactor.spawnProcess(None, "/bin/true", ["true"], childFDs={})
    assert transport is not None
    assert transport.pipes == {}
    run_reactor(lambda: transport.pid is None)
    assert transport.status == 0


# -- flow control ------------------------------------------------------------


def test_pause_producing_blocks_child_and_resume_delivers_everything() -> None:
    total = 4 * MiB

    class P(Recorder):
        def connectionMade(self) -> None:
            super().connectionMade()
            self.transport.pauseProducing()

    proto = P()
    transport = reactor.spawnProcess(proto, PY, [PY, OUTPUT, str(total), "0"])
    stdout = transport.pipes[1]
    # Paused: nobody reads, so the pipe fills up and the child blocks writing.
    run_reactor(lambda: queued_in_pipe(stdout) >= 65536)
    assert proto.output() == b""
    assert transport.status == -1, "the child is blocked, not finished"
    transport.resumeProducing()
    run_reactor(proto.ended)
    assert proto.output() == b"o" * total
    assert proto.ended_reason.check(ProcessDone)


def test_streaming_producer_paused_above_64k_and_resumed_when_drained() -> None:
    proto = Recorder(stdin=b"", close_stdin=False)
    transport = reactor.spawnProcess(proto, "/usr/bin/wc", ["wc", "-c"])
    producer = RecordingProducer()
    transport.registerProducer(producer, True)
    transport.write(b"s" * 1000)
    assert producer.calls == [], "a little data does not pause the producer"
    transport.write(b"s" * MiB)
    assert producer.calls == ["pause"], "over 64 KiB queued: paused at once"
    run_reactor(lambda: producer.calls == ["pause", "resume"])
    transport.unregisterProducer()
    transport.closeStdin()
    run_reactor(proto.ended)
    assert int(proto.output()) == MiB + 1000
    assert producer.calls == ["pause", "resume"]


def test_register_producer_without_stdin_pipe_stops_it_at_once() -> None:
    proto = Recorder()
    transport = reactor.spawnProcess(proto, "/bin/echo", ["echo", "hi"], childFDs={1: "r"})
    producer = RecordingProducer()
    transport.registerProducer(producer, True)
    assert producer.calls == ["stop"]
    run_reactor(proto.ended)
    assert proto.output() == b"hi\n"


def test_second_producer_registration_is_runtime_error() -> None:
    proto = Recorder(stdin=b"", close_stdin=False)
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    first, second = RecordingProducer(), RecordingProducer()
    transport.registerProducer(first, True)
    with pytest.raises(RuntimeError):
        transport.registerProducer(second, True)
    transport.unregisterProducer()
    transport.registerProducer(second, True)  # fine once the first is gone
    transport.unregisterProducer()
    transport.closeStdin()
    run_reactor(proto.ended)
    assert second.calls == []


def test_producer_stopped_when_stdin_is_lost() -> None:
    proto = Recorder(stdin=b"", close_stdin=False)
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    producer = RecordingProducer()
    transport.registerProducer(producer, True)
    transport.closeStdin()
    run_reactor(proto.ended)
    assert producer.calls == ["stop"]


def test_get_host_and_peer_are_not_implemented() -> None:
    proto = spawn_and_run(["/bin/true"])
    with pytest.raises(NotImplementedError):
        proto.transport.getHost()
    with pytest.raises(NotImplementedError):
        proto.transport.getPeer()


def test_plain_process_protocol_discards_output() -> None:
    """A bare ProcessProtocol reads and drops output, so a chatty child never blocks."""
    ended: list[Failure] = []

    class P(ProcessProtocol):
        def processEnded(self, reason: Failure) -> None:
            ended.append(reason)

    reactor.spawnProcess(P(), PY, [PY, OUTPUT, str(MiB), str(MiB)])
    run_reactor(lambda: bool(ended))
    assert ended[0].check(ProcessDone)


def test_signal_zero_probes_a_live_child() -> None:
    proto = Recorder()
    transport = reactor.spawnProcess(proto, "/bin/sleep", ["sleep", "30"])
    transport.signalProcess(0)  # exists: no error, nothing delivered
    assert transport.status == -1
    transport.signalProcess("KILL")
    run_reactor(proto.ended)
    with pytest.raises(ProcessExitedAlready):
        transport.signalProcess(0)


@pytest.mark.parametrize("size", [4096, 256 * 1024], ids=["4KiB", "256KiB"])
def test_pull_producer_is_asked_for_more_each_time_it_drains(size: int) -> None:
    """Twisted calls a non-streaming producer's resumeProducing each time the
    write buffer empties, so a producer that writes once per call runs to the end."""
    proto = Recorder(stdin=b"", close_stdin=False)
    transport = reactor.spawnProcess(proto, "/usr/bin/wc", ["wc", "-c"])
    chunk = b"p" * size

    class Pull:
        sent = 0

        def resumeProducing(self) -> None:
            if self.sent == 8:
                transport.unregisterProducer()
                transport.closeStdin()
                return
            self.sent += 1
            transport.write(chunk)

        def stopProducing(self) -> None:
            pass

    producer = Pull()
    transport.registerProducer(producer, False)
    try:
        run_reactor(lambda: proto.ended.called, timeout=2)
    finally:
        if not proto.ended.called:  # stalled: clean up for the leak check
            transport.loseConnection()
            run_reactor(proto.ended)
    assert producer.sent == 8
    assert int(proto.output()) == 8 * len(chunk)


def test_relay_through_producers_ends_every_stage() -> None:
    """``head | cat | wc -c`` relayed through callbacks, each upstream
    transport registered as the streaming producer of the next stage's stdin.
    The upstream is paused while the downstream's queue is full; when its
    stdout ends, the relay unregisters it while it may still be paused. It must
    be resumed then, or its stderr is never read to EOF and it never ends."""
    size = 64 << 20
    ended: list[int | None] = []
    out = bytearray()
    from ferroproc.defer import Deferred

    done: Deferred[None] = Deferred()

    class Stage(ProcessProtocol):
        downstream: Stage | None = None

        def childDataReceived(self, childFD: int, data: bytes) -> None:
            if childFD != 1:
                return
            if self.downstream is not None:
                self.downstream.transport.write(data)
            else:
                out.extend(data)

        def childConnectionLost(self, childFD: int) -> None:
            if childFD == 1 and self.downstream is not None:
                self.downstream.transport.unregisterProducer()
                self.downstream.transport.closeStdin()

        def processEnded(self, reason: Failure) -> None:
            ended.append(reason.value.exitCode)
            if len(ended) == 3:
                done.callback(None)

    for _ in range(3):
        ended.clear()
        out.clear()
        done = Deferred()
        a, b, c = Stage(), Stage(), Stage()
        a.downstream, b.downstream = b, c
        reactor.spawnProcess(c, "wc", ["wc", "-c"])
        reactor.spawnProcess(b, "cat", ["cat"])
        c.transport.registerProducer(b.transport, True)
        reactor.spawnProcess(a, "head", ["head", "-c", str(size), "/dev/zero"])
        b.transport.registerProducer(a.transport, True)
        run_reactor(done, 30)
        assert ended == [0, 0, 0]
        assert int(out) == size


# -- writes of one turn leave together (hardening 23) ---------------------------


def test_writes_made_in_one_callback_reach_the_child_in_one_write() -> None:
    """As Twisted's buffered writers do: everything one turn wrote goes out
    in one writev, so a child already waiting in read() sees it all at once
    (ampoule's process pool relies on it), however long the callback takes
    between its writes."""
    child = "import os, sys; os.write(1, b'ready'); data = os.read(0, 1 << 16); os.write(1, repr(data).encode())"

    class Chatty(Recorder):
        def outReceived(self, data: bytes) -> None:
            super().outReceived(data)
            if data == b"ready":
                for part in (b"one ", b"two ", b"three"):
                    self.transport.write(part)
                    time.sleep(0.02)  # the child is blocked in read() meanwhile
                self.transport.writeSequence([b" four", b" five"])

    p = Chatty(stdin=None)
    reactor.spawnProcess(p, PY, [PY, "-c", child])
    run_reactor(p.ended)
    assert p.output() == b"readyb'one two three four five'"


# -- other threads, other dispositions (hardening 1, 7, 20) ----------------------

_THREAD_POLLER = r"""
import os, sys, threading
from ferroproc import reactor
from ferroproc.protocol import ProcessProtocol

CHUNK = 1 << 16

class Flood(ProcessProtocol):
    got = 0
    def outReceived(self, data):
        Flood.got += len(data)
    def processEnded(self, reason):
        reactor.stop()

t = reactor.spawnProcess(
    Flood(), sys.executable,
    [sys.executable, "-c",
     "import os\nb = b'x' * %d\nfor _ in range(400): os.write(1, b)" % CHUNK], env=None)
stop = False
def poke():
    # Holds the GIL and touches the transport while the loop reads big chunks.
    while not stop:
        t.pid; t.status; repr(t)
        t.write(b"")
        try:
            t.signalProcess(0)
        except Exception:
            pass
th = threading.Thread(target=poke)
th.start()
reactor.run()
stop = True
th.join()
print(Flood.got)
"""


def test_no_deadlock_between_the_loop_and_a_thread_using_the_transport() -> None:
    out = subprocess.run([PY, "-c", _THREAD_POLLER], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 400 * (1 << 16)


_SIGPIPE_RESTORED = r"""
import signal, sys, time
from ferroproc import reactor
from ferroproc.protocol import ProcessProtocol

class Writer(ProcessProtocol):
    def connectionMade(self):
        # The child dies, so nobody reads its stdin any more; before the loop
        # has noticed, the host restores SIGPIPE's default and writes to it.
        self.transport.signalProcess("KILL")
        time.sleep(0.2)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        self.transport.write(b"x" * 100000)
    def childConnectionLost(self, fd):
        if fd == 0:
            print("stdin lost")
    def processEnded(self, reason):
        reactor.stop()

reactor.spawnProcess(Writer(), "/bin/sleep", ["sleep", "30"])
reactor.run()
print("alive")
"""


def test_writing_to_a_closed_pipe_never_kills_a_host_that_restored_sigpipe() -> None:
    out = subprocess.run([PY, "-c", _SIGPIPE_RESTORED], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"exit {out.returncode} (-13 is SIGPIPE): {out.stderr}"
    assert out.stdout.split() == ["stdin", "lost", "alive"]


def test_spawn_from_another_thread_while_the_reactor_runs_is_refused() -> None:
    errors: list[BaseException] = []

    def from_thread() -> None:
        try:
            reactor.spawnProcess(Recorder(), "/bin/true", ["true"])
        except RuntimeError as e:
            errors.append(e)
        reactor.callFromThread(reactor.stop)

    reactor.callWhenRunning(lambda: threading.Thread(target=from_thread).start())
    reactor.run(installSignalHandlers=False)
    assert len(errors) == 1 and "reactor's thread" in str(errors[0]), errors
    # Not running: any thread may spawn (nothing runs protocols meanwhile).
    done: list[Any] = []
    th = threading.Thread(target=lambda: done.append(reactor.spawnProcess(Recorder(), "/bin/true", ["true"])))
    th.start()
    th.join()
    assert done


# -- attributes a program hangs on the transport ---------------------------------
#
# Twisted's transports are plain objects that programs hang attributes of their
# own on. A widely used CI worker records its PTY children's group with
# ``self.transport.pgid = self.transport.pid`` in connectionMade: no name
# ferroproc adds to Twisted's may refuse that, nor act on what was stored.


def names_ferroproc_adds() -> list[str]:
    """The transport's names that Twisted's process transports lack."""
    twisted_process = pytest.importorskip("twisted.internet.process")
    # Plus what Twisted's __init__ sets on each instance.
    theirs = set(dir(twisted_process.Process)) | set(dir(twisted_process.PTYProcess)) | {"pipes"}
    return sorted(n for n in dir(Process) if n not in theirs and not (n.startswith("__") and n.endswith("__")))


class RecordsItsGroup(Recorder):
    """The CI worker's pattern: its own note of the PTY child's group."""

    def connectionMade(self) -> None:
        self.transport.pgid = self.transport.pid
        super().connectionMade()


def test_a_program_that_sets_pgid_on_a_pty_transport_ends_clean(caplog: pytest.LogCaptureFixture) -> None:
    proto = RecordsItsGroup()
    t = reactor.spawnProcess(proto, "/bin/sh", ["sh", "-c", "echo ready"], usePTY=True)
    pid = t.pid
    assert t.pgid == pid
    run_reactor(proto.ended)
    assert isinstance(proto.ended_reason.value, ProcessDone)  # type: ignore[union-attr]
    assert proto.output().strip() == b"ready"
    assert t.pid is None and t.pgid == pid  # the program's value, read back
    # Nothing went wrong on the way (an error in connectionMade is logged).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_what_a_program_stores_as_pgid_is_its_own_and_changes_no_signal() -> None:
    bystander, proto = Recorder(), Recorder()
    b = reactor.spawnProcess(bystander, "sleep", ["sleep", "30"], childFDs={}, processGroup=True)
    t = reactor.spawnProcess(proto, "sleep", ["sleep", "30"], childFDs={}, processGroup=True)
    child = t.pid
    t.pgid = b.pid  # the program's note names another group
    assert t.pgid == b.pid
    t.signalGroup("KILL")  # still the child's own group
    run_reactor(proto.ended)
    assert proto.ended_reason.value.signal == signal.SIGKILL  # type: ignore[union-attr]
    assert b.pid is not None and b.status == -1, "the group the program named was signalled"
    del t.pgid  # forgotten: ferroproc's value again
    assert t.pgid == child
    with pytest.raises(AttributeError, match="pgid"):
        del t.pgid
    t.resourceUsage = "mine"
    assert t.resourceUsage == "mine"
    del t.resourceUsage
    assert t.resourceUsage is not None and t.resourceUsage.userTime >= 0
    b.signalProcess("KILL")
    run_reactor(bystander.ended)


def test_every_name_ferroproc_adds_takes_a_programs_value() -> None:
    names = names_ferroproc_adds()
    assert {"pgid", "resourceUsage", "signalGroup", "setWindowSize", "_selectables"} <= set(names)
    proto = Recorder(stdin=b"through", close_stdin=False)
    t = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    mine = {name: object() for name in names}
    for name, value in mine.items():
        setattr(t, name, value)
    assert {name: getattr(t, name) for name in names} == mine
    # ferroproc itself goes on as before.
    t.write(b" the pipe")
    t.closeStdin()
    run_reactor(proto.ended)
    assert bytes(proto.out[1]) == b"through the pipe"
    assert isinstance(proto.ended_reason.value, ProcessDone)  # type: ignore[union-attr]
