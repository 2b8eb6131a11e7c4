"""Faults in the child, tried on purpose: death by every kind of signal, a
child that closes its stdout early, never reads its stdin, leaves a
grandchild holding the pipes, exits with lots of output unread, or cannot be
executed at all.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CHILDREN, PY, run_reactor
from reliability_support import Recorder

from ferroproc import reactor
from ferroproc.error import ProcessDone, ProcessExitedAlready, ProcessTerminated


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return stat[stat.rindex(")") + 2]


@pytest.fixture(autouse=True)
def no_core_dumps() -> Iterator[None]:
    # QUIT/ABRT/SEGV would dump core; children inherit this limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


# -- death by signal --------------------------------------------------------

CATCHABLE = [
    "HUP",
    "INT",
    "QUIT",
    "ILL",
    "TRAP",
    "ABRT",
    "BUS",
    "FPE",
    "USR1",
    "SEGV",
    "USR2",
    "PIPE",
    "ALRM",
    "TERM",
    "XCPU",
    "XFSZ",
    "VTALRM",
    "PROF",
    "SYS",
    "RTMIN",
    "RTMIN+1",
    "RTMAX",
]


def _signum(name: str) -> int:
    if name.startswith("RTMIN"):
        return signal.SIGRTMIN + int(name[6:] or 0)
    if name == "RTMAX":
        return signal.SIGRTMAX
    return int(getattr(signal, "SIG" + name))


@pytest.mark.parametrize("name", CATCHABLE + ["KILL"])
def test_death_by_signal(name: str) -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, "/bin/sleep", ["sleep", "30"])
    t.signalProcess(name)
    ended = run_reactor(p.ended, 10)
    num = _signum(name)
    exited = next(e[1] for e in p.events if e[0] == "exited")
    for value in (exited, ended):  # processExited and processEnded: the same reason
        assert isinstance(value, ProcessTerminated)
        assert value.exitCode is None
        assert value.signal == num
        assert value.status & 0x7F == num  # the raw wait status (core bit may be set)
    kinds = [e[0] for e in p.events]
    assert kinds.count("lost") == 3 and kinds.count("exited") == 1 and kinds.count("ended") == 1
    assert kinds.index("exited") < kinds.index("ended") == len(kinds) - 1
    assert t.pid is None
    with pytest.raises(ProcessExitedAlready):
        t.signalProcess("TERM")


@pytest.mark.parametrize("name", ["CHLD", "URG", "WINCH", "CONT"])
def test_signals_ignored_by_default_do_not_end_the_child(name: str) -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, "/bin/cat", ["cat"])
    t.signalProcess(name)
    t.write(b"alive\n")
    run_reactor(lambda: p.out() == b"alive\n", 10)
    assert not p.exited.called
    t.closeStdin()
    assert isinstance(run_reactor(p.ended, 10), ProcessDone)


def test_stop_then_kill() -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, "/bin/sleep", ["sleep", "30"])
    pid = t.pid
    t.signalProcess("STOP")
    # A stopped child is not an exited one: wait until the kernel says 'T'.
    run_reactor(lambda: proc_state(pid) == "T", 10)
    assert not p.exited.called and t.pid == pid
    t.signalProcess("KILL")
    ended = run_reactor(p.ended, 10)
    assert isinstance(ended, ProcessTerminated) and ended.signal == signal.SIGKILL and ended.exitCode is None


def test_stop_then_continue_then_normal_exit() -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, "/bin/cat", ["cat"])
    pid = t.pid
    t.signalProcess("STOP")
    run_reactor(lambda: proc_state(pid) == "T", 10)
    t.write(b"queued while stopped\n")
    t.signalProcess("CONT")
    run_reactor(lambda: p.out() == b"queued while stopped\n", 10)
    t.closeStdin()
    assert isinstance(run_reactor(p.ended, 10), ProcessDone)


def test_child_killing_itself_with_a_signal() -> None:
    p = Recorder()
    reactor.spawnProcess(p, "/bin/sh", ["sh", "-c", "echo bye; kill -USR2 $$"])
    ended = run_reactor(p.ended, 10)
    assert ended.signal == signal.SIGUSR2
    assert p.out() == b"bye\n"


# -- pipes closing early ----------------------------------------------------


def test_child_closes_stdout_early_and_keeps_running() -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, PY, [PY, str(CHILDREN / "rel_close_stdout.py")])
    run_reactor(lambda: ("lost", 1) in p.events, 10)
    # stdout is gone, the process is not: no processExited, pid still set.
    assert not p.exited.called and t.pid is not None
    assert proc_state(t.pid) in "RS"
    t.write(b"x" * 7)
    t.closeStdin()
    ended = run_reactor(p.ended, 10)
    assert isinstance(ended, ProcessTerminated) and ended.exitCode == 7
    assert p.out(2) == b"stdout closed\n"
    names = [e[0] if e[0] != "lost" else e for e in p.events]
    assert names.index(("lost", 1)) < names.index("exited") < names.index("ended")


def test_parent_closes_stdout_of_a_chatty_child() -> None:
    # `yes` writes forever; once the parent closes its end, the next write
    # gets SIGPIPE and the child dies of it. Nothing arrives after the close.
    class Closer(Recorder):
        def childDataReceived(self, childFD: int, data: bytes) -> None:
            super().childDataReceived(childFD, data)
            if len(self.out()) > 100_000:
                self.transport.closeStdout()

    p = Closer()
    reactor.spawnProcess(p, "/usr/bin/yes", ["yes"])
    ended = run_reactor(p.ended, 10)
    assert isinstance(ended, ProcessTerminated) and ended.signal == signal.SIGPIPE
    n = len(p.out())
    assert n > 100_000 and n < 100_000 + (8 << 20), "data kept arriving after closeStdout"
    assert p.events.count(("lost", 1)) == 1


# -- a child that never reads stdin: flow control ---------------------------


class FloodProducer:
    """A streaming producer that writes 64 KiB blocks as fast as it is allowed,
    up to ``limit`` bytes, and records the pause/resume/stop calls."""

    BLOCK = b"z" * 65536

    def __init__(self, transport: Any, limit: int) -> None:
        self.transport = transport
        self.limit = limit
        self.written = 0
        self.paused = False
        self.calls: list[str] = []
        self.written_at_first_pause: int | None = None

    def pauseProducing(self) -> None:
        self.calls.append("pause")
        self.paused = True
        if self.written_at_first_pause is None:
            self.written_at_first_pause = self.written

    def resumeProducing(self) -> None:
        self.calls.append("resume")
        self.paused = False
        while not self.paused and self.written < self.limit:
            self.written += len(self.BLOCK)
            self.transport.write(self.BLOCK)

    def stopProducing(self) -> None:
        self.calls.append("stop")


def settled(check: Any, turns: int = 10) -> Any:
    """A predicate true once ``check()`` has returned the same value for
    ``turns`` polls in a row: how we wait for 'nothing more happens'."""
    state: dict[str, Any] = {"last": object(), "same": 0}

    def pred() -> bool:
        now = check()
        if now == state["last"]:
            state["same"] += 1
        else:
            state["last"], state["same"] = now, 0
        return bool(state["same"] >= turns)

    return pred


def test_streaming_producer_paused_when_child_never_reads_stdin() -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, "/bin/sleep", ["sleep", "30"])
    prod = FloodProducer(t, 100 << 20)
    t.registerProducer(prod, True)
    prod.resumeProducing()
    # Paused long before the 100 MiB: what was written before the pause is
    # what the pipe took plus one queue's worth.
    assert prod.calls == ["resume", "pause"]
    assert prod.written_at_first_pause is not None and prod.written_at_first_pause <= 512 << 10
    # Let the loop flush and resume as the pipe allows, until nothing moves.
    still = settled(lambda: (prod.written, len(prod.calls)))
    run_reactor(lambda: still() and prod.paused, 10)
    assert prod.paused
    assert prod.written <= 4 << 20, f"{prod.written} bytes accepted for a child that never reads"
    t.signalProcess("KILL")
    ended = run_reactor(p.ended, 10)
    assert ended.signal == signal.SIGKILL
    assert prod.calls[-1] == "stop", "the producer must be stopped when stdin goes away"
    assert p.events.count(("lost", 0)) == 1


def test_pull_producer_against_a_child_that_never_reads() -> None:
    class Pull:
        def __init__(self, t: Any) -> None:
            self.t, self.asked, self.stopped = t, 0, False

        def resumeProducing(self) -> None:
            self.asked += 1
            self.t.write(b"p" * 65536)

        def pauseProducing(self) -> None:
            pass

        def stopProducing(self) -> None:
            self.stopped = True

    p = Recorder()
    t = reactor.spawnProcess(p, "/bin/sleep", ["sleep", "30"])
    prod = Pull(t)
    t.registerProducer(prod, False)
    run_reactor(settled(lambda: prod.asked), 10)
    # Asked only when the queue drained: bounded by what the pipe holds.
    assert 1 <= prod.asked <= 64
    t.signalProcess("KILL")
    run_reactor(p.ended, 10)
    assert prod.stopped


def test_plain_writes_to_a_child_that_exits_without_reading() -> None:
    # 8 MiB queued for a child that exits at once: the queue is dropped, no
    # hang, no error, one processEnded.
    p = Recorder()
    t = reactor.spawnProcess(p, "/bin/sh", ["sh", "-c", "exit 4"])
    for _ in range(128):
        t.write(b"q" * 65536)
    ended = run_reactor(p.ended, 10)
    assert ended.exitCode == 4
    assert [e for e in p.events if e[0] == "ended"] == [("ended", ended)]


# -- grandchildren ----------------------------------------------------------


def test_grandchild_holding_the_pipes_delays_processEnded_only() -> None:
    p = Recorder()
    t = reactor.spawnProcess(p, PY, [PY, str(CHILDREN / "rel_grandchild.py")])
    gc_pid = None
    try:
        exited = run_reactor(p.exited, 10)
        assert isinstance(exited, ProcessDone)
        run_reactor(lambda: b"\n" in p.out(), 10)
        gc_pid = int(p.out().split(b"\n")[0].split()[1])
        # The child is reaped, its pipes are still held open by the grandchild.
        assert t.pid is None and not p.ended.called
        assert not [e for e in p.events if e[0] == "lost"]
        assert proc_state(gc_pid) in "RS"
        t.write(b"release\n")
        t.closeStdin()
        ended = run_reactor(p.ended, 10)
        gc_pid = None
        assert isinstance(ended, ProcessDone)  # the child's status, not the grandchild's
        assert p.out().endswith(b"grandchild got release\n")
        kinds = [e[0] for e in p.events]
        assert kinds.index("exited") < kinds.index("lost") and kinds[-1] == "ended"
    finally:
        if gc_pid is not None:
            os.kill(gc_pid, signal.SIGKILL)


def test_loseConnection_frees_the_protocol_from_a_grandchild() -> None:
    # The usual way out: once processExited arrives, close our ends.
    class Impatient(Recorder):
        def processExited(self, reason: Any) -> None:
            super().processExited(reason)
            self.transport.loseConnection()

    p = Impatient()
    reactor.spawnProcess(p, PY, [PY, str(CHILDREN / "rel_grandchild.py")])
    assert isinstance(run_reactor(p.ended, 10), ProcessDone)
    kinds = [e[0] for e in p.events]
    assert kinds.count("lost") == 3 and kinds[-1] == "ended"
    # The grandchild reads EOF on its stdin now and goes away on its own.
    gc_pid = int(p.out().split(b"\n")[0].split()[1])

    def gone() -> bool:
        try:
            return proc_state(gc_pid) == "Z"
        except FileNotFoundError:
            return True

    run_reactor(gone, 10)


# -- exit with lots unread --------------------------------------------------


def _pattern(n: int) -> bytes:
    base = bytes(i % 251 for i in range(251 * 64))
    reps = n // len(base) + 1
    return (base * reps)[:n]


def test_exit_with_lots_of_output_unread_delivers_all_of_it() -> None:
    out_n, err_n = 24 << 20, 3 << 20
    p = Recorder()
    reactor.spawnProcess(p, PY, [PY, str(CHILDREN / "rel_flood_exit.py"), str(out_n), str(err_n)])
    ended = run_reactor(p.ended, 30)
    assert ended.exitCode == 3
    assert len(p.out(1)) == out_n and len(p.out(2)) == err_n
    assert p.out(1) == _pattern(out_n) and p.out(2) == _pattern(err_n)
    kinds = [e[0] for e in p.events]
    assert kinds[-1] == "ended" and kinds.count("lost") == 3


def test_child_gone_while_a_full_pipe_is_unread() -> None:
    # Reading paused: the child fills a 1 MiB pipe, exits, and is reaped while
    # every byte is still in the pipe; resuming delivers all of it before
    # processEnded.
    p = Recorder()
    t = reactor.spawnProcess(p, PY, [PY, str(CHILDREN / "rel_flood_exit.py"), "--fill"])
    t.pauseProducing()
    exited = run_reactor(p.exited, 10)
    assert exited.exitCode == 3
    assert not p.out() and not p.ended.called
    t.resumeProducing()
    run_reactor(p.ended, 10)
    out = p.out()
    n = int.from_bytes(out[:8], "big")
    assert n > 60_000 and len(out) == 8 + n
    assert out[8:] == _pattern(n)


# -- cannot execute ---------------------------------------------------------


@pytest.fixture(params=["posix_spawn", "clone"])
def method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both spawn paths: posix_spawn and the vfork-style clone (the default)."""
    monkeypatch.setattr(reactor, "_spawnMethod", request.param)
    return str(request.param)


def _no_child_and_reactor_works() -> None:
    p = Recorder()
    reactor.spawnProcess(p, "/bin/echo", ["echo", "ok"])
    assert isinstance(run_reactor(p.ended, 10), ProcessDone) and p.out() == b"ok\n"


def _exec_error(exe: str | Path, exc: type[OSError], code: int) -> OSError:
    with pytest.raises(exc) as info:
        reactor.spawnProcess(Recorder(), str(exe), ["prog"])
    err = info.value
    assert err.errno == code
    assert err.filename == str(exe)
    assert str(exe) in str(err)
    assert reactor._engine.processCount == 0
    _no_child_and_reactor_works()
    return err


def test_exec_a_directory(method: str, tmp_path: Path) -> None:
    err = _exec_error(tmp_path, PermissionError, errno.EACCES)
    assert "not executable" in str(err)


def test_exec_a_file_without_x_bit(method: str, tmp_path: Path) -> None:
    f = tmp_path / "plain.sh"
    f.write_text("#!/bin/sh\necho hi\n")
    f.chmod(0o644)
    _exec_error(f, PermissionError, errno.EACCES)


def test_exec_a_script_whose_interpreter_is_missing(method: str, tmp_path: Path) -> None:
    f = tmp_path / "orphan.sh"
    f.write_text("#!/nonexistent/interpreter\necho hi\n")
    f.chmod(0o755)
    _exec_error(f, FileNotFoundError, errno.ENOENT)


def test_missing_interpreter_message_names_the_interpreter(tmp_path: Path) -> None:
    f = tmp_path / "orphan.sh"
    f.write_text("#!/nonexistent/interp\necho hi\n")
    f.chmod(0o755)
    with pytest.raises(FileNotFoundError) as info:
        reactor.spawnProcess(Recorder(), str(f), ["orphan"])
    assert "/nonexistent/interp" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x7fELF\x02\x01\x01garbage" + b"\0" * 64, b"echo no shebang\n"])
def test_exec_a_file_the_kernel_cannot_run(method: str, tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "junk"
    f.write_bytes(content)
    f.chmod(0o755)
    err = _exec_error(f, OSError, errno.ENOEXEC)
    assert "kernel" in str(err) or "format" in str(err)


def test_exec_a_dangling_symlink_and_a_loop(method: str, tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    _exec_error(tmp_path / "dangling", FileNotFoundError, errno.ENOENT)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    _exec_error(tmp_path / "a", OSError, errno.ELOOP)


@pytest.fixture(scope="module")
def noexec_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("noexec")
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a noexec tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=4m", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a noexec tmpfs: {r.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)


def test_exec_on_a_noexec_mount(method: str, noexec_dir: Path) -> None:
    exe = noexec_dir / "true"
    shutil.copy("/bin/true", exe)
    exe.chmod(0o755)
    _exec_error(exe, PermissionError, errno.EACCES)
    # A script there is refused as well, even with a good interpreter.
    script = noexec_dir / "s.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    _exec_error(script, PermissionError, errno.EACCES)


# -- both directions full at once --------------------------------------------


def test_child_floods_stderr_before_reading_stdin_while_parent_floods_stdin() -> None:
    # The classic pipe deadlock: the child blocks writing stderr, the parent
    # blocks writing stdin. The engine queues our writes and keeps reading.
    n_in, n_err = 16 << 20, 4 << 20
    p = Recorder()
    t = reactor.spawnProcess(p, "/bin/sh", ["sh", "-c", f"head -c {n_err} /dev/zero >&2; exec cat"])
    data = _pattern(n_in)
    for i in range(0, n_in, 1 << 20):
        t.write(data[i : i + (1 << 20)])
    t.closeStdin()
    assert isinstance(run_reactor(p.ended, 30), ProcessDone)
    assert len(p.out(2)) == n_err
    assert p.out(1) == data


# -- timeouts through ferroproc.utils (when present) -------------------------


def _utils() -> Any:
    utils = pytest.importorskip("ferroproc.utils")
    if not hasattr(utils, "ProcessTimeout"):
        pytest.skip("ferroproc.utils has no timeout extension")
    return utils


def test_utils_timeout_is_not_held_up_by_a_grandchild_holding_the_pipes() -> None:
    # Peers' top complaint: after a kill, waiting hangs on a grandchild's pipe.
    utils = _utils()
    d = utils.getProcessOutput("/bin/sh", ["-c", "sleep 2 & echo started; exec sleep 30"], timeout=0.2, killGrace=1.0)
    got: list[Any] = []
    d.addBoth(got.append)
    run_reactor(lambda: got, 1.5)  # well before the grandchild lets go (2 s)
    assert got[0].check(utils.ProcessTimeout)


def test_utils_timeout_escalates_to_SIGKILL_for_a_child_ignoring_SIGTERM() -> None:
    utils = _utils()
    d = utils.getProcessValue(
        "/bin/sh", ["-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"], timeout=0.2, killGrace=0.3
    )
    got: list[Any] = []
    d.addBoth(got.append)
    run_reactor(lambda: got, 5)
    err = got[0].value
    assert isinstance(err, utils.ProcessTimeout) and "SIGKILL" in str(err)
