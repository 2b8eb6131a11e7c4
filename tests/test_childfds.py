"""childFDs on real processes (SPEC §3.1, §2.4, §2.5, seed "Mapping File
Descriptors"): extra pipes both ways, parent fds swapped, cycled and fanned
out, unlisted fds closed, closing pipes mid-stream, and bad mappings.

Every test runs on both spawn paths: the default (posix_spawn here) and the
vfork-style clone path (``reactor._spawnMethod = "clone"``).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import termios
from pathlib import Path
from typing import Any

import pytest
from helpers import CHILDREN, PY, run_reactor

from ferroproc import reactor
from ferroproc.defer import Deferred
from ferroproc.error import ProcessDone, ProcessTerminated
from ferroproc.protocol import ProcessProtocol

REPORT = str(CHILDREN / "fds_report.py")


# Every test runs on both spawn paths (posix_spawn, and the vfork-style clone).
pytestmark = pytest.mark.usefixtures("spawn_method")


class Recorder(ProcessProtocol):
    """Records every callback in order; ``ended`` fires with itself."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.data: dict[int, bytes] = {}
        self.lost: list[int] = []
        self.exitedReason: Any = None
        self.reason: Any = None
        self.ended: Deferred[Recorder] = Deferred()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.events.append(("data", childFD))
        self.data[childFD] = self.data.get(childFD, b"") + data

    def childConnectionLost(self, childFD: int) -> None:
        self.events.append(("lost", childFD))
        self.lost.append(childFD)

    def processExited(self, reason: Any) -> None:
        self.events.append(("exited",))
        self.exitedReason = reason

    def processEnded(self, reason: Any) -> None:
        self.events.append(("ended",))
        self.reason = reason
        self.ended.callback(self)


def spawn(proto: Any, args: list[str], childFDs: dict[int, Any], **kw: Any) -> Any:
    return reactor.spawnProcess(proto, args[0], args, childFDs=childFDs, **kw)


def report(path: Path) -> dict[int, dict[str, Any]]:
    """What ``fds_report.py`` wrote: child fd → its identity."""
    with open(path) as f:
        return {int(k): v for k, v in json.load(f).items()}


def identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def ident(info: dict[str, Any]) -> tuple[int, int]:
    return (info["dev"], info["ino"])


def files(tmp_path: Path, n: int) -> list[Any]:
    """``n`` distinct open files (unbuffered, read-write) in ``tmp_path``."""
    return [open(tmp_path / f"f{i}", "w+b", buffering=0) for i in range(n)]


# -- pipes -------------------------------------------------------------------


def test_extra_read_and_write_pipes_carry_data_both_ways(tmp_path: Path) -> None:
    """Extra 'w' pipes on 3 and 5 feed the child, extra 'r' pipes on 4 and 6
    carry it back; each closes with exactly one childConnectionLost, after
    its data, and processEnded comes last."""
    big = os.urandom(300_000)  # more than a pipe holds: the rest is queued
    p = Recorder()
    t = spawn(
        p,
        [PY, str(CHILDREN / "fds_copy.py"), "3:4", "5:6", "0:1"],
        {0: "w", 1: "r", 2: "r", 3: "w", 4: "r", 5: "w", 6: "r"},
    )
    t.writeToChild(3, big)
    t.closeChildFD(3)
    t.writeToChild(5, b"five")
    t.closeChildFD(5)
    t.write(b"stdin")
    t.closeStdin()
    run_reactor(p.ended)
    assert p.data.get(4) == big
    assert p.data.get(6) == b"five"
    assert p.data.get(1) == b"stdin"
    assert 2 not in p.data
    assert sorted(p.lost) == [0, 1, 2, 3, 4, 5, 6]
    for fd in (1, 4, 6):
        last_data = max(i for i, e in enumerate(p.events) if e == ("data", fd))
        assert p.events.index(("lost", fd)) > last_data
    assert p.events[-1] == ("ended",)
    assert p.reason.check(ProcessDone)


def test_child_closing_an_extra_output_pipe_is_reported(tmp_path: Path) -> None:
    """The child closes fd 4 (an 'r' pipe) and keeps running until it gets
    EOF on fd 3: childConnectionLost(4) arrives while it still runs."""
    p = Recorder()
    seen: dict[str, Any] = {}

    def lost(fd: int) -> None:
        Recorder.childConnectionLost(p, fd)
        if fd == 4:
            seen["running"] = t.pid is not None
            t.writeToChild(3, b"bye")
            t.closeChildFD(3)

    p.childConnectionLost = lost  # type: ignore[method-assign]
    t = spawn(p, [PY, "-c", "import os; os.close(4); os.read(3, 10)"], {3: "w", 4: "r"})
    run_reactor(p.ended)
    assert seen == {"running": True}
    assert sorted(p.lost) == [3, 4]
    assert p.reason.check(ProcessDone)


def test_read_pipe_on_fd0_and_write_pipe_on_fd1(tmp_path: Path) -> None:
    """Directions are free: 'r' on child fd 0, 'w' on child fd 1."""
    out = tmp_path / "report.json"
    p = Recorder()
    t = spawn(p, [PY, REPORT, str(out), "--exercise"], {0: "r", 1: "w"})
    t.writeToChild(1, b"into one")
    t.closeChildFD(1)
    run_reactor(p.ended)
    fds = report(out)
    assert sorted(fds) == [0, 1]
    assert (fds[0]["pipe"], fds[0]["acc"]) == (True, "w")
    assert (fds[1]["pipe"], fds[1]["acc"]) == (True, "r")
    assert fds[1]["read"] == "into one"
    assert p.data == {0: b"token-0"}
    assert sorted(p.lost) == [0, 1]


# -- parent fds: swaps, cycles, fan-out --------------------------------------


def test_stdout_and_stderr_swapped_onto_two_files(tmp_path: Path) -> None:
    f0, f1 = files(tmp_path, 2)
    with f0, f1:
        p = Recorder()
        spawn(p, ["/bin/sh", "-c", "echo out; echo err >&2"], {1: f1.fileno(), 2: f0.fileno()})
        run_reactor(p.ended)
        assert p.lost == []  # int mappings are never reported
        assert p.reason.check(ProcessDone)
        assert (tmp_path / "f1").read_bytes() == b"out\n"
        assert (tmp_path / "f0").read_bytes() == b"err\n"


def test_swap_of_parent_fds_whose_numbers_are_child_targets(tmp_path: Path) -> None:
    """``{a: b, b: a}``: each source number is also a target number."""
    fa, fb = files(tmp_path, 2)
    with fa, fb:
        a, b = fa.fileno(), fb.fileno()
        out = tmp_path / "report.json"
        p = Recorder()
        spawn(p, [PY, REPORT, str(out)], {a: b, b: a})
        run_reactor(p.ended)
        fds = report(out)
        assert sorted(fds) == sorted([a, b])
        assert ident(fds[a]) == identity(b)
        assert ident(fds[b]) == identity(a)
        # Still the parent's own files afterwards, untouched.
        assert fds[a]["link"] == str(tmp_path / "f1")
        assert os.readlink(f"/proc/self/fd/{a}") == str(tmp_path / "f0")


def test_three_cycle_of_parent_fds(tmp_path: Path) -> None:
    fs = files(tmp_path, 3)
    try:
        a, b, c = (f.fileno() for f in fs)
        out = tmp_path / "report.json"
        p = Recorder()
        spawn(p, [PY, REPORT, str(out)], {a: b, b: c, c: a, 1: "r"})
        run_reactor(p.ended)
        fds = report(out)
        assert sorted(fds) == sorted([1, a, b, c])
        assert (ident(fds[a]), ident(fds[b]), ident(fds[c])) == (identity(b), identity(c), identity(a))
    finally:
        for f in fs:
            f.close()


def test_swap_of_parent_stdio_fds(tmp_path: Path) -> None:
    """``{0: 1, 1: 0, 2: 2}`` on the parent's own stdio: a swap among the
    lowest numbers, where the engine's pipes would otherwise land."""
    out = tmp_path / "report.json"
    p = Recorder()
    spawn(p, [PY, REPORT, str(out)], {0: 1, 1: 0, 2: 2})
    run_reactor(p.ended)
    fds = report(out)
    assert sorted(fds) == [0, 1, 2]
    assert ident(fds[0]) == identity(1)
    assert ident(fds[1]) == identity(0)
    assert ident(fds[2]) == identity(2)


def test_one_parent_fd_fanned_out_to_three_child_fds(tmp_path: Path) -> None:
    """Three child fds share one open file description: one offset, so the
    three writes land one after the other."""
    (f,) = files(tmp_path, 1)
    with f:
        fd = f.fileno()
        p = Recorder()
        spawn(p, ["/bin/sh", "-c", "echo a; echo b >&4; echo c >&9; ls -l /proc/self/fd/ >&9"], {1: fd, 4: fd, 9: fd})
        run_reactor(p.ended)
        assert p.reason.check(ProcessDone)
        lines = (tmp_path / "f0").read_bytes().split(b"\n")
        assert lines[:3] == [b"a", b"b", b"c"]


def test_fanned_out_fd_identity(tmp_path: Path) -> None:
    (f,) = files(tmp_path, 1)
    with f:
        fd = f.fileno()
        out = tmp_path / "report.json"
        p = Recorder()
        spawn(p, [PY, REPORT, str(out)], {0: fd, 5: fd, fd: fd})
        run_reactor(p.ended)
        fds = report(out)
        assert sorted(fds) == sorted({0, 5, fd})
        assert {ident(v) for v in fds.values()} == {identity(fd)}
        assert {v["acc"] for v in fds.values()} == {"rw"}


def test_parent_fds_stay_open_in_the_parent(tmp_path: Path) -> None:
    """An int mapping lends the fd: the parent never closes it."""
    (f,) = files(tmp_path, 1)
    with f:
        p = Recorder()
        spawn(p, ["/bin/sh", "-c", "echo lent"], {1: f.fileno()})
        run_reactor(p.ended)
        os.fstat(f.fileno())
        f.write(b"mine\n")
        assert (tmp_path / "f0").read_bytes() == b"lent\nmine\n"


def test_identity_mapping_runs_the_child_on_the_parents_stdio(capfd: pytest.CaptureFixture[str]) -> None:
    """The seed's ``{0: 0, 1: 1, 2: 2}``."""
    p = Recorder()
    spawn(p, ["/bin/sh", "-c", "echo to-out; echo to-err >&2"], {0: 0, 1: 1, 2: 2})
    run_reactor(p.ended)
    got = capfd.readouterr()
    assert got.out == "to-out\n"
    assert got.err == "to-err\n"
    assert p.data == {} and p.lost == []


# -- what the child has open --------------------------------------------------


def test_write_pipe_on_fd7_with_3_to_6_unmapped(tmp_path: Path) -> None:
    """``{1: 'r', 7: 'w'}``: the child has exactly fds 1 and 7, no gap is
    filled, and an inheritable parent fd does not leak in."""
    out = tmp_path / "report.json"
    leak = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(leak, True)
    try:
        p = Recorder()
        t = spawn(p, [PY, REPORT, str(out), "--exercise"], {1: "r", 7: "w"})
        t.writeToChild(7, b"seven")
        t.closeChildFD(7)
        run_reactor(p.ended)
    finally:
        os.close(leak)
    fds = report(out)
    assert sorted(fds) == [1, 7]
    assert (fds[7]["pipe"], fds[7]["acc"], fds[7]["read"]) == (True, "r", "seven")
    assert (fds[1]["pipe"], fds[1]["acc"]) == (True, "w")
    assert p.data == {1: b"token-1"}
    assert sorted(p.lost) == [1, 7]


def test_unlisted_stdio_is_closed(tmp_path: Path) -> None:
    """``{3: 'r'}``: fds 0, 1 and 2 are closed in the child, not /dev/null."""
    out = tmp_path / "report.json"
    p = Recorder()
    spawn(p, [PY, REPORT, str(out), "--exercise"], {3: "r"})
    run_reactor(p.ended)
    fds = report(out)
    assert sorted(fds) == [3]
    assert p.data == {3: b"token-3"}
    assert p.lost == [3]
    assert p.reason.check(ProcessDone)


def test_empty_mapping_gives_the_child_no_fds(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    p = Recorder()
    spawn(p, [PY, REPORT, str(out)], {})
    run_reactor(p.ended)
    assert report(out) == {}
    assert p.events == [("exited",), ("ended",)]


def test_inherited_fd_of_a_mapped_fd_ignores_cloexec(tmp_path: Path) -> None:
    """A parent fd that is close-on-exec (the Python default) still reaches
    the child, at its own number too (``{fd: fd}``)."""
    (f,) = files(tmp_path, 1)
    with f:
        fd = f.fileno()
        assert not os.get_inheritable(fd)
        out = tmp_path / "report.json"
        p = Recorder()
        spawn(p, [PY, REPORT, str(out)], {fd: fd})
        run_reactor(p.ended)
        assert sorted(report(out)) == [fd]
        assert not os.get_inheritable(fd)  # the parent's flag is unchanged


# -- closing pipes -----------------------------------------------------------


def test_close_write_pipe_mid_stream_delivers_queued_data_then_eof() -> None:
    """closeChildFD on a 'w' pipe with 1 MiB still queued: the child reads
    all of it, then EOF; childConnectionLost(3) follows the flush, and then
    writeToChild(3) is a KeyError."""
    chunks = [os.urandom(64 * 1024) for _ in range(16)]
    blob = b"".join(chunks)
    p = Recorder()
    t = spawn(p, [PY, str(CHILDREN / "fds_drain.py"), "3"], {1: "r", 3: "w"})
    for c in chunks:
        t.writeToChild(3, c)
    t.closeChildFD(3)
    run_reactor(lambda: 3 in p.lost)
    with pytest.raises(KeyError, match="3"):
        t.writeToChild(3, b"more")
    run_reactor(p.ended)
    assert p.data[1] == f"3 {len(blob)} {hashlib.sha256(blob).hexdigest()}\n".encode()
    assert p.lost.count(3) == 1
    assert p.reason.check(ProcessDone)


def test_write_after_close_before_flush_is_still_sent() -> None:
    """As in Twisted (SPEC §2.3): data written after closeChildFD but while
    the queue is still draining goes out before the EOF."""
    blob = os.urandom(512 * 1024)
    p = Recorder()
    t = spawn(p, [PY, str(CHILDREN / "fds_drain.py"), "3"], {1: "r", 3: "w"})
    t.writeToChild(3, blob)
    t.closeChildFD(3)
    t.writeToChild(3, b"tail")
    run_reactor(p.ended)
    sent = blob + b"tail"
    assert p.data[1] == f"3 {len(sent)} {hashlib.sha256(sent).hexdigest()}\n".encode()


def test_close_read_pipe_mid_stream_stops_data() -> None:
    """closeChildFD on an 'r' pipe while the child floods it: no data after
    the call, childConnectionLost follows, and the child's next write fails."""
    p = Recorder()
    closed_at: list[int] = []

    def data(fd: int, chunk: bytes) -> None:
        Recorder.childDataReceived(p, fd, chunk)
        if fd == 3 and not closed_at:
            t.closeChildFD(3)
            closed_at.append(len(p.events))

    p.childDataReceived = data  # type: ignore[method-assign]
    t = spawn(p, [PY, str(CHILDREN / "fds_flood.py"), "3"], {3: "r"})
    run_reactor(p.ended)
    after = p.events[closed_at[0] :]
    assert ("data", 3) not in after
    assert after[0] == ("lost", 3)
    assert p.lost == [3]
    assert isinstance(p.reason.value, ProcessTerminated)
    assert p.reason.value.exitCode == 3  # BrokenPipeError in the child


def test_close_child_fd_is_idempotent() -> None:
    p = Recorder()
    t = spawn(p, [PY, str(CHILDREN / "fds_drain.py"), "3"], {1: "r", 3: "w"})
    t.closeChildFD(3)
    t.closeChildFD(3)
    t.closeChildFD(42)  # never mapped: ignored
    run_reactor(p.ended)
    t.closeChildFD(3)
    t.closeChildFD(1)  # after the end, too
    assert p.lost.count(3) == 1
    assert p.data[1].startswith(b"3 0 ")


def test_write_to_child_on_unmapped_fd_names_the_fd() -> None:
    p = Recorder()
    t = spawn(p, [PY, str(CHILDREN / "fds_drain.py"), "0"], {0: "w", 1: "r"})
    with pytest.raises(KeyError, match="13"):
        t.writeToChild(13, b"x")
    t.writeToChild(1, b"ignored")  # an 'r' pipe: accepted and never sent (Twisted)
    t.closeStdin()
    run_reactor(p.ended)
    with pytest.raises(KeyError, match="0"):
        t.writeToChild(0, b"late")
    t.write(b"dropped")  # write() after stdin closed: silently dropped
    assert p.data[1].startswith(b"0 0 ")


def test_lose_connection_closes_every_pipe() -> None:
    p = Recorder()
    t = spawn(
        p,
        [PY, str(CHILDREN / "fds_drain.py"), "0", "3"],
        {0: "w", 1: "r", 2: "r", 3: "w", 4: "r"},
    )
    t.write(b"abc")
    t.loseConnection()
    run_reactor(p.ended)
    assert sorted(p.lost) == [0, 1, 2, 3, 4]
    assert p.events[-1] == ("ended",)
    assert t.pipes == {}


def test_process_ended_waits_for_a_grandchild_holding_fd3() -> None:
    """The child exits at once; a grandchild keeps the 'r' pipe on fd 3 open
    until the parent closes stdin. processExited comes first; processEnded
    only after fd 3 closes, and the grandchild's late data comes before it."""
    p = Recorder()
    order: list[str] = []

    def exited(reason: Any) -> None:
        Recorder.processExited(p, reason)
        order.append("exited, fd3 open" if 3 not in p.lost else "exited, fd3 lost")
        t.closeStdin()

    p.processExited = exited  # type: ignore[method-assign]
    t = spawn(p, [PY, str(CHILDREN / "fds_grandchild.py")], {0: "w", 3: "r"})
    run_reactor(p.ended)
    assert order == ["exited, fd3 open"]
    assert p.data == {3: b"late"}
    i = p.events.index
    assert i(("exited",)) < i(("data", 3)) < i(("lost", 3)) < i(("ended",))
    assert p.reason.check(ProcessDone)


def test_pipes_maps_child_fds_to_parent_fds() -> None:
    p = Recorder()
    t = spawn(p, [PY, str(CHILDREN / "fds_drain.py"), "3"], {1: "r", 3: "w"})
    pipes = t.pipes
    assert sorted(pipes) == [1, 3]
    for parent in pipes.values():
        os.fstat(parent)
    t.closeChildFD(3)
    run_reactor(p.ended)
    assert t.pipes == {}


def test_high_child_fds(tmp_path: Path) -> None:
    """Child fds far above the parent's: 200 ('r') and 1000 ('w'), with
    every fd below them closed in the child."""
    out = tmp_path / "report.json"
    p = Recorder()
    t = spawn(p, [PY, REPORT, str(out), "--exercise"], {200: "r", 1000: "w"})
    t.writeToChild(1000, b"thousand")
    t.closeChildFD(1000)
    run_reactor(p.ended)
    fds = report(out)
    assert sorted(fds) == [200, 1000]
    assert fds[1000]["read"] == "thousand"
    assert p.data == {200: b"token-200"}


def test_many_pipes(tmp_path: Path) -> None:
    """120 pipes at once, alternating directions over child fds 0-119."""
    mapping: dict[int, Any] = {i: ("r" if i % 2 else "w") for i in range(120)}
    out = tmp_path / "report.json"
    p = Recorder()
    t = spawn(p, [PY, REPORT, str(out), "--exercise"], mapping)
    for fd, kind in mapping.items():
        if kind == "w":
            t.writeToChild(fd, b"for-%d" % fd)
            t.closeChildFD(fd)
    run_reactor(p.ended)
    fds = report(out)
    assert sorted(fds) == list(range(120))
    for fd, kind in mapping.items():
        if kind == "r":
            assert p.data[fd] == b"token-%d" % fd
        else:
            assert fds[fd]["read"] == f"for-{fd}"
    assert sorted(p.lost) == list(range(120))


def test_exception_in_child_data_received_loses_that_pipe_only() -> None:
    """SPEC §2.6: the failing pipe (fd 3) is closed; fd 4 still delivers."""
    p = Recorder()

    def data(fd: int, chunk: bytes) -> None:
        Recorder.childDataReceived(p, fd, chunk)
        if fd == 3:
            raise RuntimeError("boom in childDataReceived")

    p.childDataReceived = data  # type: ignore[method-assign]
    script = (
        "import os, sys\n"
        "os.write(3, b'first')\n"
        "os.read(0, 1)\n"  # wait until the parent has seen fd 3 close
        "try:\n    os.write(3, b'second')\nexcept BrokenPipeError:\n    os.write(4, b'epipe')\n"
    )
    t = spawn(p, [PY, "-c", script], {0: "w", 3: "r", 4: "r"})

    def lost(fd: int) -> None:
        Recorder.childConnectionLost(p, fd)
        if fd == 3:
            t.write(b"x")

    p.childConnectionLost = lost  # type: ignore[method-assign]
    run_reactor(p.ended)
    assert p.data[3] == b"first"
    assert p.data[4] == b"epipe"
    assert p.reason.check(ProcessDone)


def test_pause_producing_stops_reading_extra_pipes() -> None:
    """Paused, the child fills the pipe on fd 3 and blocks; resumed, every
    byte arrives."""
    n = 1 << 20
    p = Recorder()
    t = spawn(p, [PY, "-c", f"import os\nd = b'y' * {n}\nwhile d:\n    d = d[os.write(3, d):]"], {3: "r"})
    t.pauseProducing()
    parent = t.pipes[3]
    capacity = fcntl.fcntl(parent, fcntl.F_GETPIPE_SZ)

    def pending() -> int:
        return int(struct.unpack("i", fcntl.ioctl(parent, termios.FIONREAD, b"\0" * 4))[0])

    run_reactor(lambda: pending() >= capacity)  # the reactor runs; the pipe fills up
    assert 3 not in p.data
    assert t.pid is not None
    t.resumeProducing()
    run_reactor(p.ended)
    assert p.data[3] == b"y" * n


# -- no protocol -------------------------------------------------------------


def test_none_protocol_with_only_parent_fds(tmp_path: Path) -> None:
    (f,) = files(tmp_path, 1)
    with f:
        t = reactor.spawnProcess(None, "/bin/sh", ["sh", "-c", "echo no protocol"], childFDs={1: f.fileno()})
        run_reactor(lambda: t.pid is None)
        assert (tmp_path / "f0").read_bytes() == b"no protocol\n"
    assert os.WIFEXITED(t.status) and os.WEXITSTATUS(t.status) == 0


def test_none_protocol_with_empty_mapping() -> None:
    t = reactor.spawnProcess(None, "/bin/true", ["true"], childFDs={})
    run_reactor(lambda: t.pid is None)
    assert t.status == 0


@pytest.mark.parametrize("childFDs", [None, {0: "w"}, {1: "r"}, {1: 1, 3: "r"}])
def test_none_protocol_with_pipes_is_a_type_error(childFDs: Any) -> None:
    with pytest.raises(TypeError, match="processProtocol"):
        reactor.spawnProcess(None, "/bin/true", ["true"], childFDs=childFDs)


# -- bad mappings: synchronous errors, nothing leaked ------------------------


@pytest.mark.parametrize("value", ["x", b"r", "rw", 1.5, None, True, [3]])
def test_value_not_r_w_or_fd(value: Any) -> None:
    with pytest.raises(ValueError, match=r"childFDs\[3\]"):
        spawn(Recorder(), ["/bin/true"], {0: "w", 1: "r", 3: value})


def test_negative_child_fd() -> None:
    with pytest.raises(ValueError, match="-1"):
        spawn(Recorder(), ["/bin/true"], {0: "w", -1: "r"})


def test_negative_parent_fd() -> None:
    with pytest.raises(ValueError, match=r"childFDs\[4\]"):
        spawn(Recorder(), ["/bin/true"], {0: "w", 4: -2})


@pytest.mark.parametrize("key", ["3", 3.0, None, True, (3,)])
def test_non_int_key(key: Any) -> None:
    with pytest.raises(TypeError, match="key"):
        spawn(Recorder(), ["/bin/true"], {0: "w", key: "r"})


def test_mapping_that_is_not_a_dict() -> None:
    with pytest.raises(TypeError, match="childFDs"):
        spawn(Recorder(), ["/bin/true"], [(0, "w")])  # type: ignore[arg-type]


def closed_fd() -> int:
    """A number that was just open and is closed now; high enough that the
    pipes spawnProcess makes cannot reuse it."""
    low = os.open(os.devnull, os.O_RDONLY)
    fd = fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, 400)
    os.close(low)
    os.close(fd)
    return fd


@pytest.mark.parametrize("bad", [closed_fd, lambda: 999_999])
def test_parent_fd_not_open_is_ebadf_naming_the_entry(bad: Any) -> None:
    """Pipes for the earlier entries were already made: all are closed again
    (the no_leaks fixture checks), and no child exists."""
    fd = bad()
    p = Recorder()
    with pytest.raises(OSError) as info:
        spawn(p, ["/bin/true"], {0: "w", 1: "r", 2: "r", 5: fd, 7: "w"})
    assert info.value.errno == errno.EBADF
    assert "childFDs[5]" in str(info.value)
    assert str(fd) in str(info.value)
    assert p.events == []


@pytest.mark.parametrize("childFDs", [{}, {0: "w", 1: "r", 2: "r"}])
@pytest.mark.parametrize("usePTY", [True, 1])
def test_use_pty_with_child_fds(usePTY: Any, childFDs: dict[int, Any]) -> None:
    with pytest.raises(ValueError, match="childFDs"):
        reactor.spawnProcess(Recorder(), "/bin/true", ["true"], usePTY=usePTY, childFDs=childFDs)


def test_use_pty_tuple_with_child_fds_closes_nothing() -> None:
    """A caller's PTY pair is left alone when the call is refused."""
    m, s = os.openpty()
    try:
        with pytest.raises(ValueError):
            reactor.spawnProcess(Recorder(), "/bin/true", ["true"], usePTY=(m, s, os.ttyname(s)), childFDs={})
        os.fstat(m)
        os.fstat(s)
    finally:
        os.close(m)
        os.close(s)


def test_missing_executable_with_extra_pipes_leaks_nothing() -> None:
    with pytest.raises(FileNotFoundError):
        spawn(Recorder(), ["/nonexistent/prog"], {0: "w", 1: "r", 3: "w", 4: "r"})


PARENT_WITHOUT_STDIO = """
import json, os, sys
from ferroproc import reactor
from ferroproc.protocol import ProcessProtocol
reactor._spawnMethod = None if sys.argv[1] == "None" else sys.argv[1]
out = sys.argv[2]
os.close(0); os.close(1); os.close(2)
class P(ProcessProtocol):
    data = b""
    def connectionMade(self):
        self.pipes = dict(self.transport.pipes)
        self.transport.write(b"ping")
        self.transport.closeStdin()
    def childDataReceived(self, fd, data):
        self.data += b"%d:" % fd + data + b";"
    def processEnded(self, reason):
        self.code = reason.value.exitCode
        reactor.stop()
p = P()
reactor.spawnProcess(p, sys.argv[3], [sys.argv[3], "-c",
    "import sys; d = sys.stdin.read(); print(d.upper()); print('e', file=sys.stderr)"])
reactor.run(installSignalHandlers=False)
with open(out, "w") as f:
    json.dump({"pipes": p.pipes, "data": p.data.decode(), "code": p.code}, f)
"""


def test_parent_with_stdio_closed(tmp_path: Path, spawn_method: str | None) -> None:
    """A parent whose own fds 0, 1 and 2 are closed: the engine's pipe ends
    land on 0, 1 and 2 in the parent, and must still reach the right child
    fds (a shuffle the fd plan has to get right)."""
    out = tmp_path / "result.json"
    subprocess.run([PY, "-c", PARENT_WITHOUT_STDIO, str(spawn_method), str(out), PY], check=True, timeout=30)
    got = json.loads(out.read_text())
    assert sorted(int(k) for k in got["pipes"]) == [0, 1, 2]
    assert any(v in (0, 1, 2) for v in got["pipes"].values())
    assert sorted(got["data"].split(";")) == ["", "1:PING\n", "2:e\n"]
    assert got["code"] == 0


# -- the seed's GPG example ----------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HAVE_GPG = shutil.which("gpg") is not None


def gpg_example() -> Any:
    spec = importlib.util.spec_from_file_location("gpg_example", EXAMPLES / "gpg.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpg_example_round_trip(spawn_method: str | None, capfd: pytest.CaptureFixture[str]) -> None:
    """``childFDs={0: 'w', 1: 'r', 2: 2, 3: 'w', 4: 'r'}``: passphrase on 3,
    status on 4, plaintext on 1, and the child's stderr straight to ours.
    The stand-in always; real gpg (slow: an agent starts) on the clone path
    here, and on the default path through the script test below."""
    gpg = gpg_example()
    commands = [gpg.STAND_IN_GPG]
    if HAVE_GPG and spawn_method == "clone":
        commands.append(gpg.GPG)
    for command in commands:
        with gpg.GnuPGHome() as env:
            good, bad_rc = run_reactor(gpg.round_trip(b"attack at dawn\n", b"sekrit", command, env), timeout=30)
        assert good.plaintext == b"attack at dawn\n"
        status = good.status.decode().splitlines()
        assert "[GNUPG:] DECRYPTION_OKAY" in status
        assert status[-1] == "[GNUPG:] END_DECRYPTION"
        assert bad_rc == 2
        assert "decryption failed" in capfd.readouterr().err  # through the 2: 2 mapping


def test_gpg_example_runs_as_a_script(spawn_method: str | None) -> None:
    """Real gpg when present (once: in the default-path run), else the stand-in."""
    args = [] if HAVE_GPG and spawn_method is None else ["--stand-in"]
    done = subprocess.run([PY, str(EXAMPLES / "gpg.py"), *args], capture_output=True, timeout=60, check=True)
    out = done.stdout.decode().splitlines()
    assert out[0] == ("using: gpg" if args == [] else "using: the stand-in")
    assert "plaintext: attack at dawn" in out
    assert "status: [GNUPG:] DECRYPTION_OKAY" in out
    assert "wrong passphrase: exit code 2" in out


# -- child fds up to the open-file limit (hardening 18) ----------------------------


def test_a_child_fd_just_below_the_open_file_limit() -> None:
    """No room is needed above the highest child fd: temporary copies go to
    the lowest free numbers that no entry targets."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    top = min(soft, 1 << 16) - 1
    got: dict[int, bytes] = {}
    done: Deferred[None] = Deferred()

    class P(ProcessProtocol):
        def childDataReceived(self, fd: int, data: bytes) -> None:
            got[fd] = got.get(fd, b"") + data

        def processEnded(self, reason: Any) -> None:
            got[-1] = str(reason.value.exitCode).encode()
            done.callback(None)

    code = f"import os; os.write({top}, b'top'); os.write(1, b'one')"
    reactor.spawnProcess(P(), PY, [PY, "-c", code], childFDs={0: "w", 1: "r", 2: "r", top: "r"})
    run_reactor(done)
    assert got == {top: b"top", 1: b"one", -1: b"0"}, got
