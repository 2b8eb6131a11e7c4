"""usePTY on real processes (SPEC §2.11 and ferroproc's terminal extensions:
``windowSize``, ``setWindowSize``, ``getWindowSize``, ``getEcho``/``setEcho``,
``isRawMode``/``setRawMode``).

Every test runs on both spawn paths: posix_spawn (with a new session) and
the vfork-style clone path. No test ever sees
``childConnectionLost``: a PTY transport never calls it (checked for every
protocol a test makes).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import CHILDREN, PY, RecordingProducer, run_reactor

from ferroproc import reactor
from ferroproc.defer import Deferred
from ferroproc.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from ferroproc.protocol import ProcessProtocol

EOT = b"\x04"  # VEOF: at the start of a line, the reader gets end-of-file

CAT = ["cat"]

_made: list[Recorder] = []


@pytest.fixture(autouse=True, params=["posix_spawn", "clone"])
def spawn_method(request: pytest.FixtureRequest) -> Iterator[str | None]:
    old = reactor._spawnMethod
    reactor._spawnMethod = request.param
    _made.clear()
    try:
        yield request.param
    finally:
        reactor._spawnMethod = old
    for p in _made:
        assert p.lost == [], "childConnectionLost was called on a PTY transport"
        assert set(p.fds) <= {1}, f"PTY output arrived on fds {p.fds}"


class Recorder(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.fds: set[int] = set()
        self.lost: list[int] = []
        self.exited: Any = None
        self.reason: Any = None
        self.ended: Deferred[Recorder] = Deferred()
        _made.append(self)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.fds.add(childFD)
        super().childDataReceived(childFD, data)

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def childConnectionLost(self, childFD: int) -> None:
        self.lost.append(childFD)

    def processExited(self, reason: Any) -> None:
        self.exited = reason

    def processEnded(self, reason: Any) -> None:
        self.reason = reason
        self.ended.callback(self)


def pty(proto: Any, args: list[str], **kw: Any) -> Any:
    kw.setdefault("usePTY", True)
    return reactor.spawnProcess(proto, args[0], args, env=kw.pop("env", None), **kw)


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def lines(out: bytes) -> list[str]:
    return out.decode().split("\r\n")


# -- the terminal the child gets ---------------------------------------------


def test_tty_is_a_dev_pts_path_and_stdio_are_terminals() -> None:
    p = Recorder()
    pty(p, sh("tty; test -t 0 && test -t 1 && test -t 2 && echo all-tty"))
    run_reactor(p.ended)
    got = lines(p.out)
    assert got[0].startswith("/dev/pts/")
    assert got[1:] == ["all-tty", ""]
    assert p.reason.check(ProcessDone)


def test_dev_tty_opens() -> None:
    p = Recorder()
    pty(p, sh("echo via-dev-tty > /dev/tty"))
    run_reactor(p.ended)
    assert p.out == b"via-dev-tty\r\n"
    assert p.reason.check(ProcessDone)


def test_child_is_session_leader_and_foreground_group() -> None:
    p = Recorder()
    t = pty(p, [PY, str(CHILDREN / "pty_session.py")])
    run_reactor(lambda: b"\n" in p.out)
    info = json.loads(p.out.split(b"\r\n")[0])
    pid = t.pid
    assert info["pid"] == pid
    assert info["sid"] == pid, "the child is not a session leader"
    assert info["pgrp"] == pid
    assert info["tcpgrp"] == pid, "the child is not the terminal's foreground group"
    assert info["devtty"] is True
    assert len(set(info["ttys"])) == 1 and info["ttys"][0].startswith("/dev/pts/")
    # Seen from the parent, while it runs.
    assert os.getsid(pid) == pid
    assert os.getsid(pid) != os.getsid(0)
    assert os.tcgetpgrp(t.fileno()) == pid
    t.write(b"\n")
    run_reactor(p.ended)
    assert p.reason.check(ProcessDone)


# -- data through the terminal -----------------------------------------------


def test_interactive_echo_round_trip_through_cat() -> None:
    """Echo and ONLCR are on: the line comes back twice (the terminal's echo
    and cat's copy), each with CR LF. ^D then ends cat."""
    p = Recorder()
    t = pty(p, CAT)
    t.write(b"hello\n")
    run_reactor(lambda: p.out.count(b"hello") >= 2)
    assert p.out == b"hello\r\nhello\r\n"
    t.writeSequence([b"second ", b"line\n"])
    run_reactor(lambda: p.out.count(b"second line") >= 2)
    assert p.out == b"hello\r\nhello\r\nsecond line\r\nsecond line\r\n"
    t.write(EOT)
    run_reactor(p.ended)
    assert p.reason.check(ProcessDone)
    assert p.err == b""


def bulk_text(n: int) -> bytes:
    """What ``pty_bulk.py n text`` writes."""
    out = []
    total = i = 0
    while total < n:
        line = b"%07d abcdefghijklmnopqrstuvwxyz\n" % i
        out.append(line)
        total += len(line)
        i += 1
    return b"".join(out)[:n]


def test_one_mebibyte_of_output_arrives_intact() -> None:
    n = 1 << 20
    p = Recorder()
    pty(p, [PY, str(CHILDREN / "pty_bulk.py"), str(n), "text"])
    run_reactor(p.ended, timeout=30)
    assert p.reason.check(ProcessDone)
    got = p.out.replace(b"\r\n", b"\n")
    assert len(got) == n
    assert got == bulk_text(n)


def test_one_mebibyte_of_binary_output_in_raw_mode() -> None:
    """Raw mode (set from the parent before the child writes): no echo, no
    output processing, so arbitrary bytes arrive byte for byte."""
    n = 1 << 20
    p = Recorder()
    t = pty(p, [PY, str(CHILDREN / "pty_bulk.py"), str(n), "raw"])
    t.setRawMode(True)
    t.write(b"go")
    run_reactor(p.ended, timeout=30)
    assert p.reason.check(ProcessDone)
    want = random.Random(1234).randbytes(n)
    assert len(p.out) == n
    assert hashlib.sha256(p.out).digest() == hashlib.sha256(want).digest()


def test_stderr_is_merged_into_out_received() -> None:
    p = Recorder()
    pty(p, sh("echo out; echo err >&2; echo out2"))
    run_reactor(p.ended)
    assert p.out == b"out\r\nerr\r\nout2\r\n"
    assert p.err == b""


def test_large_input_in_raw_mode() -> None:
    """256 KiB written to the master (more than the terminal buffers: the
    engine queues the rest) reach the child intact."""
    n = 256 * 1024
    data = os.urandom(n)
    script = (
        "import hashlib, os\nh = hashlib.sha256()\nn = 0\n"
        f"while n < {n}:\n    b = os.read(0, 65536)\n    h.update(b)\n    n += len(b)\n"
        "os.write(1, h.hexdigest().encode())\n"
    )
    p = Recorder()
    t = pty(p, [PY, "-c", script])
    t.setRawMode(True)
    t.write(data)
    run_reactor(p.ended, timeout=30)
    assert p.out.decode() == hashlib.sha256(data).hexdigest()
    assert p.reason.check(ProcessDone)


# -- how it ends ---------------------------------------------------------------


def test_child_closing_its_terminal_before_exit_still_exits_normally() -> None:
    """GNU cat closes fds 0, 1 and 2 itself before it exits, so the master
    sees EIO while cat is still running. Closing the master then would hang
    up the terminal and kill cat with SIGHUP (Twisted does; plain
    ``pty.fork`` code that closes on EIO shows it in most runs). ferroproc
    keeps the master open until the child is reaped: always exit 0."""
    for _ in range(10):
        p = Recorder()
        t = pty(p, ["cat"])
        t.write(EOT)
        run_reactor(p.ended)
        assert p.reason.check(ProcessDone), p.reason


def test_exit_code() -> None:
    p = Recorder()
    pty(p, sh("exit 3"))
    run_reactor(p.ended)
    for reason in (p.exited, p.reason):
        assert isinstance(reason.value, ProcessTerminated)
        assert (reason.value.exitCode, reason.value.signal) == (3, None)


def test_death_by_signal_sent_by_the_child() -> None:
    p = Recorder()
    pty(p, sh("kill -TERM $$"))
    run_reactor(p.ended)
    assert isinstance(p.reason.value, ProcessTerminated)
    assert (p.reason.value.exitCode, p.reason.value.signal) == (None, signal.SIGTERM)
    assert os.WTERMSIG(p.reason.value.status) == signal.SIGTERM


def test_signal_process_kill() -> None:
    p = Recorder()
    t = pty(p, sh("echo ready; exec cat"))
    run_reactor(lambda: b"ready" in p.out)
    t.signalProcess("KILL")
    run_reactor(p.ended)
    assert p.reason.value.signal == signal.SIGKILL
    with pytest.raises(ProcessExitedAlready):
        t.signalProcess("HUP")


def test_lose_connection_hangs_up_the_child() -> None:
    """Closing the master makes the kernel send SIGHUP to the session."""
    p = Recorder()
    t = pty(p, sh("echo ready; exec cat"))
    run_reactor(lambda: b"ready" in p.out)
    t.loseConnection()
    run_reactor(p.ended)
    assert isinstance(p.reason.value, ProcessTerminated)
    assert p.reason.value.signal == signal.SIGHUP
    assert p.reason.value.exitCode is None


def test_process_ended_waits_for_a_grandchild_holding_the_terminal() -> None:
    """processExited when the child exits; processEnded only once the
    grandchild that still holds the terminal has gone, after its output."""
    p = Recorder()
    t = pty(p, [PY, str(CHILDREN / "pty_grandchild.py")])
    t.write(b"one\n")
    run_reactor(lambda: p.exited is not None and b"gc-ready" in p.out)
    assert p.reason is None
    assert p.exited.check(ProcessDone)
    t.write(b"two\n")
    run_reactor(p.ended)
    assert p.out.endswith(b"late:two\r\n")
    assert p.reason.check(ProcessDone)


def test_exception_in_out_received_hangs_up_the_terminal() -> None:
    """As for a pipe (SPEC §2.6): a raising data callback loses the channel,
    here the master, so the child gets SIGHUP; processEnded still comes."""
    p = Recorder()

    def out(data: bytes) -> None:
        Recorder.outReceived(p, data)
        raise RuntimeError("boom in outReceived")

    p.outReceived = out  # type: ignore[method-assign]
    pty(p, sh("echo first; exec cat"))
    run_reactor(p.ended)
    assert p.out.startswith(b"first")
    assert p.reason.value.signal == signal.SIGHUP


# -- the tuple form -----------------------------------------------------------


def test_use_pty_tuple_from_openpty() -> None:
    """``usePTY=(master, slave, ttyname)``: the child's terminal is that
    slave; ``fileno()`` is that master; the slave is closed after the spawn
    and the master when the transport ends (the no_leaks fixture checks)."""
    m, s = os.openpty()
    name = os.ttyname(s)
    p = Recorder()
    t = pty(p, sh("tty; echo hi"), usePTY=(m, s, name))
    assert t.fileno() == m
    with pytest.raises(OSError):
        os.ttyname(s)  # closed (or, if reused, no longer that terminal)
    run_reactor(p.ended)
    assert lines(p.out) == [name, "hi", ""]
    assert p.reason.check(ProcessDone)


def test_use_pty_tuple_ttyname_is_ignored() -> None:
    m, s = os.openpty()
    name = os.ttyname(s)
    p = Recorder()
    pty(p, sh("tty"), usePTY=[m, s, "/dev/not-this-one"])
    run_reactor(p.ended)
    assert lines(p.out)[0] == name


def test_use_pty_tuple_with_a_slave_that_is_not_a_terminal() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(OSError, match="slave"):
            pty(Recorder(), ["/bin/true"], usePTY=(r, w, "x"))
    finally:
        for fd in (r, w):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.mark.parametrize("bad", [(1, 2), ("a", "b", "c"), (1, 2, 3, 4)])
def test_use_pty_bad_tuple(bad: Any) -> None:
    with pytest.raises(TypeError, match="usePTY"):
        pty(Recorder(), ["/bin/true"], usePTY=bad)


def test_failed_spawn_leaves_a_callers_pty_pair_open() -> None:
    """As in Twisted (SPEC §1.1: "Caller-supplied ... PTY tuple fds are not
    closed" when the start fails): the caller still owns both fds and may
    close them itself, without closing someone else's fd by number."""
    m, s = os.openpty()
    try:
        with pytest.raises(FileNotFoundError):
            pty(Recorder(), ["/nonexistent/prog"], usePTY=(m, s, os.ttyname(s)))
        os.fstat(m)
        assert os.isatty(s)
    finally:
        for fd in (m, s):
            try:
                os.close(fd)
            except OSError:
                pass


_CALLERS_PAIR_WHEN_CHOWN_FAILS = """
import os
from ferroproc import reactor
from ferroproc.protocol import ProcessProtocol
m, s = os.openpty()
try:
    reactor.spawnProcess(ProcessProtocol(), "/bin/true", ["true"], usePTY=(m, s, os.ttyname(s)), uid=65534, gid=65534)
except OSError as e:
    print("refused:", e)
os.fstat(m)
os.fstat(s)
print("the caller's pair is open")
"""


def test_a_spawn_that_cannot_hand_the_terminal_over_leaves_the_callers_pair_open() -> None:
    """The terminal of a child switched to another user is chowned to it
    before the child starts; when that fails (EPERM: here the process lacks
    CAP_CHOWN), the spawn fails and the caller still owns its master."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (to drop CAP_CHOWN)")
    done = subprocess.run(
        ["setpriv", "--bounding-set=-chown", "--", PY, "-c", _CALLERS_PAIR_WHEN_CHOWN_FAILS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "refused: [Errno 1] usePTY: cannot hand the terminal to the new user: Operation not permitted",
        "the caller's pair is open",
    ]


@pytest.mark.parametrize("usePTY", ["own", "callers"])
def test_use_pty_with_an_existing_process_group_is_refused(usePTY: str) -> None:
    """A PTY child leads a session of its own: it cannot join a group, so
    the combination is refused, as newSession with processGroup is (it
    used to start a new session silently)."""
    m, s = os.openpty()
    try:
        with pytest.raises(ValueError, match=r"usePTY and processGroup=\d+ exclude each other"):
            pty(
                Recorder(),
                ["/bin/true"],
                usePTY=True if usePTY == "own" else (m, s, os.ttyname(s)),
                processGroup=os.getpgrp(),
            )
        os.fstat(m)
    finally:
        os.close(m)
        os.close(s)


def test_use_pty_with_a_group_of_its_own_is_accepted() -> None:
    p = Recorder()
    pty(p, [PY, "-c", "import os; print(os.getpgrp() == os.getpid())"], processGroup=True)
    run_reactor(p.ended)
    assert p.out.strip() == b"True"


def test_failed_spawn_closes_its_own_terminal() -> None:
    with pytest.raises(FileNotFoundError):
        pty(Recorder(), ["/nonexistent/prog"])


# -- window size --------------------------------------------------------------


def test_window_size_at_spawn() -> None:
    p = Recorder()
    t = pty(p, sh("stty size"), windowSize=(33, 101))
    assert t.getWindowSize() == (33, 101)
    run_reactor(p.ended)
    assert p.out == b"33 101\r\n"


def test_window_size_at_spawn_with_a_tuple() -> None:
    m, s = os.openpty()
    p = Recorder()
    pty(p, sh("stty size"), usePTY=(m, s, ""), windowSize=(7, 9))
    run_reactor(p.ended)
    assert p.out == b"7 9\r\n"


def test_set_window_size_reaches_the_child_with_sigwinch() -> None:
    p = Recorder()
    t = pty(p, [PY, str(CHILDREN / "pty_winch.py")], windowSize=(24, 80))
    run_reactor(lambda: b"ready" in p.out)
    t.setWindowSize(40, 120)
    assert t.getWindowSize() == (40, 120)
    run_reactor(p.ended)
    assert lines(p.out) == ["ready", "size 40 120", ""]
    assert p.reason.check(ProcessDone)


@pytest.mark.parametrize("bad", [(1,), (1, 2, 3), (-1, 5), (5, 70000), ("a", 1), [3, 4]])
def test_bad_window_size(bad: Any) -> None:
    with pytest.raises(ValueError, match="windowSize"):
        pty(Recorder(), ["/bin/true"], windowSize=bad)


def test_window_size_needs_use_pty() -> None:
    with pytest.raises(ValueError, match="usePTY"):
        reactor.spawnProcess(Recorder(), "/bin/true", ["true"], windowSize=(3, 4))


# -- transport methods --------------------------------------------------------


def test_pipe_methods_are_no_ops_or_not_implemented() -> None:
    """closeStdin/closeStdout/closeStderr do nothing (the terminal stays
    usable); writeToChild and closeChildFD raise NotImplementedError."""
    p = Recorder()
    t = pty(p, CAT)
    t.closeStdin()
    t.closeStdout()
    t.closeStderr()
    with pytest.raises(NotImplementedError):
        t.writeToChild(0, b"x")
    with pytest.raises(NotImplementedError):
        t.closeChildFD(0)
    t.write(b"still here\n")
    run_reactor(lambda: p.out.count(b"still here") >= 2)
    t.write(EOT)
    run_reactor(p.ended)
    assert p.reason.check(ProcessDone)


def test_fileno_is_the_master() -> None:
    p = Recorder()
    t = pty(p, CAT)
    fd = t.fileno()
    assert os.readlink(f"/proc/self/fd/{fd}") == "/dev/ptmx"
    assert os.isatty(fd)
    assert t.pipes == {}
    assert repr(t).startswith("<PTYProcess pid=")
    t.write(EOT)
    run_reactor(p.ended)


def test_echo_and_raw_mode_controls() -> None:
    p = Recorder()
    t = pty(p, CAT)
    assert t.getEcho() is True
    assert t.isRawMode() is False
    t.setEcho(False)
    assert t.getEcho() is False
    t.write(b"quiet\n")
    run_reactor(lambda: b"quiet" in p.out)
    t.write(b"x\n")
    run_reactor(lambda: b"x\r\n" in p.out)
    assert p.out == b"quiet\r\nx\r\n"  # only cat's copy: no echo
    t.setEcho(True)
    assert t.getEcho() is True
    t.setRawMode(True)
    assert t.isRawMode() is True
    assert t.getEcho() is False
    t.setRawMode(False)
    assert t.isRawMode() is False
    assert t.getEcho() is True  # back to the attributes at spawn
    t.write(b"loud\n")
    run_reactor(lambda: p.out.count(b"loud") >= 2)
    t.write(EOT)
    run_reactor(p.ended)
    assert p.reason.check(ProcessDone)


def test_terminal_methods_on_a_pipe_transport() -> None:
    class Quiet(ProcessProtocol):
        ended: Deferred[None] = Deferred()

        def processEnded(self, reason: Any) -> None:
            self.ended.callback(None)

    q = Quiet()
    q.ended = Deferred()
    t = reactor.spawnProcess(q, "/bin/true", ["true"])
    for call in (t.fileno, t.getWindowSize, t.getEcho, t.isRawMode):
        with pytest.raises(NotImplementedError):
            call()
    with pytest.raises(NotImplementedError):
        t.setWindowSize(1, 2)
    run_reactor(q.ended)


def test_pause_and_resume_producing() -> None:
    """Paused, the master is not read; resumed, everything arrives."""
    p = Recorder()
    t = pty(p, [PY, str(CHILDREN / "pty_bulk.py"), "200000", "text"])
    t.pauseProducing()
    t.resumeProducing()
    run_reactor(p.ended, timeout=30)
    assert p.out.replace(b"\r\n", b"\n") == bulk_text(200000)


def test_signal_after_end_raises_process_exited_already() -> None:
    p = Recorder()
    t = pty(p, sh("echo hello world!"))
    run_reactor(p.ended)
    assert p.out == b"hello world!\r\n"
    assert t.pid is None
    with pytest.raises(ProcessExitedAlready):
        t.signalProcess("HUP")


# -- a caller's tuple, checked (hardening 8, 9) ----------------------------------


def _still_open(*fds: int) -> bool:
    for fd in fds:
        try:
            os.fstat(fd)
        except OSError:
            return False
    return True


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def test_swapped_tuple_is_refused_and_nothing_is_substituted() -> None:
    m, s = os.openpty()
    try:
        with pytest.raises(OSError, match=r"not a PTY master .*swapped"):
            pty(Recorder(), sh("echo lost"), usePTY=(s, m, None))
        assert _still_open(m, s), "the caller's fds stay the caller's"
    finally:
        _close(m, s)


def test_same_fd_twice_or_a_bad_number_is_refused() -> None:
    m, s = os.openpty()
    try:
        with pytest.raises(ValueError, match="same fd"):
            pty(Recorder(), sh("true"), usePTY=(s, s, None))
        with pytest.raises(ValueError, match=r"usePTY masterfd .* not a valid fd"):
            pty(Recorder(), sh("true"), usePTY=(2**40, s, None))
        with pytest.raises(ValueError, match="usePTY slavefd"):
            pty(Recorder(), sh("true"), usePTY=(m, -1, None))
        assert _still_open(m, s)
    finally:
        _close(m, s)


def test_a_slave_of_another_terminal_is_refused() -> None:
    m1, s1 = os.openpty()
    m2, s2 = os.openpty()
    try:
        with pytest.raises(ValueError, match="is not the terminal of master fd"):
            pty(Recorder(), sh("true"), usePTY=(m1, s2, None))
        assert _still_open(m1, s1, m2, s2)
    finally:
        _close(m1, s1, m2, s2)


def test_a_regular_file_as_master_is_refused_and_stays_open(tmp_path: Any) -> None:
    m, s = os.openpty()
    f = os.open(tmp_path / "not-a-terminal", os.O_CREAT | os.O_RDWR)
    try:
        with pytest.raises(OSError, match="not a PTY master"):
            pty(Recorder(), sh("true"), usePTY=(f, s, None))
        assert _still_open(f, m, s)
    finally:
        _close(f, m, s)


# -- flow control on a terminal (hardening 21) ------------------------------------


def test_a_streaming_producer_on_a_terminal_is_paused_and_stopped_with_it() -> None:
    p = Recorder()
    # The child never reads: our writes queue up.
    t = pty(p, [PY, "-c", "import time; time.sleep(30)"])
    producer = RecordingProducer()
    t.registerProducer(producer, True)
    t.write(b"x" * (64 * 1024 + 1))
    assert producer.calls == ["pause"], "over 64 KiB queued on the terminal pauses its producer"
    # More than a terminal holds, so the queue cannot drain while nobody reads.
    t.write(b"y" * (4 << 20))
    t.signalProcess("KILL")
    run_reactor(p.ended)
    assert producer.calls == ["pause", "stop"], "the terminal closed: its producer is stopped"
