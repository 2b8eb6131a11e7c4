"""ferroproc under asyncio: the reactor driven by a running loop, the
module-level ``create_subprocess_*`` on any loop (asyncio's, uvloop), and
ferroproc's own ``EventLoop`` with asyncio's transport contract. Real
children throughout; CPython's own suite runs in test_asyncio_suite.py."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import signal
import sys
import threading
from asyncio.subprocess import DEVNULL, PIPE, STDOUT
from collections.abc import Callable, Coroutine
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from helpers import PY

import ferroproc.asyncio as fa
from ferroproc import _asynciotransport, reactor, task, utils
from ferroproc._asynciotransport import SubprocessTransport
from ferroproc.error import ProcessDone
from ferroproc.protocol import ProcessProtocol

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _nothing() -> None:
    pass


async def _spawnOnce() -> None:
    await (await fa.create_subprocess_exec("true")).wait()


def settle_engines() -> None:
    """The engine of this thread's asyncio loops lives as long as the thread,
    unless a loop closes with children left (it then goes, with them, to the
    reaper): have one before and after each test (no_leaks calls this), so
    that its fds are not counted against a test."""
    driver = _asynciotransport._thread.driver
    if driver is None or getattr(driver, "retired", False):
        gc.collect()  # the transports a let-go engine lives for
        asyncio.run(_spawnOnce())


def _runners() -> list[Any]:
    out = [pytest.param(asyncio.run, id="asyncio"), pytest.param(fa.run, id="ferroproc-loop")]
    if HAVE_UVLOOP:
        import uvloop

        # uvloop keeps a pipe open for the process's life once a loop ran:
        # open it now, so that no_leaks does not count it against a test.
        uvloop.run(_nothing())
        out.append(pytest.param(uvloop.run, id="uvloop"))
    return out


Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=_runners())
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a coroutine to completion on a new loop: asyncio's, ferroproc's
    EventLoop, or uvloop's."""
    return request.param  # type: ignore[no-any-return]


def code(src: str) -> list[str]:
    return [PY, "-c", src]


# -- the reactor and the utilities inside a running loop ------------------------


def test_utilities_are_awaitable_without_running_the_reactor(run: Runner) -> None:
    async def main() -> tuple[bytes, tuple[bytes, bytes, int], int | None]:
        out = await utils.getProcessOutput("echo", ["hello"], env=None)
        both = await utils.getProcessOutputAndValue("sh", ["-c", "echo o; echo e >&2; exit 3"], env=None)
        value = await utils.getProcessValue("sh", ["-c", "kill -TERM $$"], env=None)
        return out, both, value

    assert run(main()) == (b"hello\n", (b"o\n", b"e\n", 3), None)
    assert not reactor.running


def test_spawn_process_timers_and_threads_inside_a_loop(run: Runner) -> None:
    class Collect(ProcessProtocol):
        def __init__(self) -> None:
            self.out = b""
            self.done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def outReceived(self, data: bytes) -> None:
            self.out += data

        def processEnded(self, reason: Any) -> None:
            self.done.set_result(reason.value)

    async def main() -> list[Any]:
        proto = Collect()
        t = reactor.spawnProcess(proto, "cat", ["cat"])
        t.write(b"through the engine")
        t.closeStdin()
        reason = await proto.done
        fired = await task.deferLater(reactor, 0.05, lambda: "timer")
        got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=reactor.callFromThread, args=(lambda: loop.call_soon(got.set_result, "thread"),)
        ).start()
        return [proto.out, type(reason), fired, await got]

    assert run(main()) == [b"through the engine", ProcessDone, "timer", "thread"]


def test_a_time_limit_fires_under_asyncio(run: Runner) -> None:
    async def main() -> Any:
        return await utils.getProcessValue("sleep", ["30"], env=None, timeout=0.2, killGrace=0)

    with pytest.raises(utils.ProcessTimeout):
        run(main())


# -- create_subprocess_* on any loop ----------------------------------------------


def test_exec_communicate_and_returncode(run: Runner) -> None:
    async def main() -> Any:
        p = await fa.create_subprocess_exec(
            PY, "-c", "import sys; d = sys.stdin.read(); print(d.upper()); sys.exit(4)", stdin=PIPE, stdout=PIPE
        )
        out, err = await p.communicate(b"abc")
        return type(p._transport), out, err, p.returncode, await p.wait()

    assert run(main()) == (SubprocessTransport, b"ABC\n", None, 4, 4)


def test_shell_and_signals(run: Runner) -> None:
    async def main() -> Any:
        p = await fa.create_subprocess_shell("echo ready; exec sleep 30", stdout=PIPE)
        assert p.stdout is not None
        assert await p.stdout.readline() == b"ready\n"
        p.terminate()
        code = await p.wait()
        with pytest.raises(ProcessLookupError):
            p.kill()
        return code

    assert run(main()) == -signal.SIGTERM


@pytest.mark.parametrize("how", ["devnull", "stdout", "fd", "file", "inherit"])
def test_stdio_kinds(run: Runner, how: str, tmp_path: Path) -> None:
    target = tmp_path / "out"

    async def main() -> Any:
        src = "import sys; sys.stdout.write('o'); sys.stdout.flush(); sys.stderr.write('e')"
        if how == "devnull":
            p = await fa.create_subprocess_exec(PY, "-c", src, stdout=DEVNULL, stderr=PIPE)
        elif how == "stdout":
            p = await fa.create_subprocess_exec(PY, "-c", src, stdout=PIPE, stderr=STDOUT)
        elif how == "fd":
            fd = os.open(target, os.O_WRONLY | os.O_CREAT)
            try:
                p = await fa.create_subprocess_exec(PY, "-c", src, stdout=fd, stderr=fd)
            finally:
                os.close(fd)
        elif how == "file":
            with open(target, "wb") as f:
                p = await fa.create_subprocess_exec(PY, "-c", src, stdout=f, stderr=PIPE)
        else:
            p = await fa.create_subprocess_exec(
                PY, "-c", "import os; print(os.isatty(0) or os.path.exists('/proc/self/fd/0'))"
            )
        return (p.stdout is None, p.stderr is None), await p.communicate()

    streams, (out, err) = run(main())
    if how == "devnull":
        assert (streams, out, err) == ((True, False), None, b"e")
    elif how == "stdout":
        assert (streams, out, err) == ((False, True), b"oe", None)
    elif how == "fd":
        assert target.read_bytes() == b"oe"
    elif how == "file":
        assert (target.read_bytes(), err) == (b"o", b"e")
    else:
        assert streams == (True, True)


def test_popen_keywords(run: Runner, tmp_path: Path) -> None:
    r, w = os.pipe()
    src = (
        "import os, sys; os.write(int(sys.argv[1]), b'passed');"
        "print(os.getcwd(), os.environ.get('ONLY'), 'PATH' in os.environ, oct(os.umask(0)),"
        " os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())"
    )

    async def main() -> Any:
        p = await fa.create_subprocess_exec(
            PY,
            "-c",
            src,
            str(w),
            cwd=tmp_path,
            env={"ONLY": "this"},
            pass_fds=(w,),
            umask=0o077,
            start_new_session=True,
            stdout=PIPE,
        )
        out, _ = await p.communicate()
        q = await fa.create_subprocess_exec(
            PY, "-c", "import os; print(os.getpgid(0) == os.getpid())", process_group=0, stdout=PIPE
        )
        e = await fa.create_subprocess_exec("renamed", "-c", 'echo "$0"', executable="/bin/sh", stdout=PIPE)
        return out, (await q.communicate())[0], (await e.communicate())[0]

    try:
        out, group, renamed = run(main())
        assert os.read(r, 100) == b"passed"
    finally:
        os.close(r)
        os.close(w)
    assert out.decode().split() == [str(tmp_path), "this", "False", "0o77", "True", "True"]
    assert group == b"True\n"
    assert renamed == b"renamed\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_user_group_extra_groups(run: Runner) -> None:
    async def main() -> bytes:
        p = await fa.create_subprocess_exec(
            "/bin/sh",
            "-c",
            "echo $(id -u) $(id -g) $(id -G); cut -d' ' -f6 /proc/self/stat",
            user=65534,
            group=65534,
            extra_groups=[65533, 65534],
            stdout=PIPE,
        )
        return (await p.communicate())[0]

    ids, session = run(main()).decode().splitlines()
    # Popen's rule: exactly those ids; ferroproc's: a session of its own, so
    # that it cannot reach a privileged parent's terminal (TIOCSTI).
    uid, gid, *groups = ids.split()
    assert (uid, gid, sorted(groups)) == ("65534", "65534", ["65533", "65534"])
    assert int(session) != os.getsid(0)


def test_restore_signals(run: Runner) -> None:
    """Popen's rule: SIGPIPE and SIGXFSZ back to default with
    restore_signals, other ignored signals stay ignored (Python, our parent,
    ignores SIGPIPE)."""
    old = signal.signal(signal.SIGUSR1, signal.SIG_IGN)

    async def main() -> list[int]:
        masks = []
        for restore in (True, False):
            p = await fa.create_subprocess_exec("cat", "/proc/self/status", restore_signals=restore, stdout=PIPE)
            status = (await p.communicate())[0].decode()
            masks.append(int(next(x for x in status.splitlines() if x.startswith("SigIgn:")).split()[1], 16))
        return masks

    try:
        restored, inherited = run(main())
    finally:
        signal.signal(signal.SIGUSR1, old)
    bit = lambda sig: 1 << (sig - 1)  # noqa: E731
    assert restored & bit(signal.SIGUSR1) and not restored & bit(signal.SIGPIPE)
    assert inherited & bit(signal.SIGUSR1) and inherited & bit(signal.SIGPIPE)


def test_preexec_fn_takes_asyncios_own_path(run: Runner) -> None:
    async def main() -> Any:
        p = await fa.create_subprocess_exec("true", preexec_fn=lambda: None)
        return await p.wait(), type(p._transport).__module__

    code, module = run(main())
    assert code == 0 and not module.startswith("ferroproc")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"text": True}, ValueError, "text must be False"),
        ({"universal_newlines": True}, ValueError, "universal_newlines must be False"),
        ({"bufsize": 4096}, ValueError, "bufsize must be 0"),
        ({"encoding": "utf-8"}, ValueError, "encoding must be None"),
        ({"shell": True}, ValueError, "shell must be False"),
        ({"creationflags": 4}, ValueError, "only supported on Windows"),
        ({"colour": "red"}, TypeError, "unexpected keyword argument 'colour'"),
        ({"stdout": STDOUT}, ValueError, "STDOUT can only be used for stderr"),
        ({"user": "no-such-user-here"}, KeyError, "name not found: 'no-such-user-here'"),  # Popen's KeyError
        ({"group": "no-such-group-here"}, KeyError, "name not found: 'no-such-group-here'"),
        ({"pass_fds": [-1]}, ValueError, "pass_fds: -1 is not an fd"),
        ({"timeout": -1}, ValueError, "timeout must be positive"),
    ],
)
def test_bad_arguments_raise_before_any_child(
    run: Runner, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    async def main() -> None:
        await fa.create_subprocess_exec("true", **kwargs)

    with pytest.raises(error, match=message):
        run(main())


def test_what_popen_accepts_is_accepted(run: Runner) -> None:
    """Popen's looser forms work as on asyncio's loop: ``pass_fds`` entries
    taken through ``int()``, and a negative ``process_group`` meaning none
    (the child stays in our group)."""
    r, w = os.pipe()

    async def main() -> bytes:
        p = await fa.create_subprocess_exec(
            PY,
            "-c",
            "import os, sys; os.write(int(sys.argv[1]), b'%d' % os.getpgid(0))",
            str(w),
            pass_fds=[str(w)],
            process_group=-1,
        )
        await p.wait()
        return os.read(r, 100)

    try:
        assert run(main()) == str(os.getpgid(0)).encode()
    finally:
        os.close(r)
        os.close(w)


def test_a_missing_program_is_file_not_found(run: Runner, tmp_path: Path) -> None:
    async def main() -> None:
        await fa.create_subprocess_exec(str(tmp_path / "nope"), stdin=PIPE, stdout=PIPE)

    with pytest.raises(FileNotFoundError):
        run(main())


def test_ferroproc_keywords(run: Runner) -> None:
    async def main() -> Any:
        p = await fa.create_subprocess_exec(
            "sleep", "30", timeout=0.2, kill_grace=0, start_new_session=True, kill_group_on_exit=True
        )
        code = await p.wait()
        transport = p._transport
        return code, transport.get_extra_info("timed_out"), transport.get_extra_info("ferroproc").resourceUsage

    code, timedOut, usage = run(main())
    assert code == -signal.SIGKILL
    assert timedOut == ("wall", 0.2, True)
    assert usage is not None and usage.maxRSS > 0


def test_many_concurrent_children(run: Runner) -> None:
    async def one(i: int) -> bytes:
        p = await fa.create_subprocess_exec("echo", str(i), stdout=PIPE)
        return (await p.communicate())[0]

    async def main() -> list[bytes]:
        return await asyncio.gather(*(one(i) for i in range(50)))

    assert run(main()) == [f"{i}\n".encode() for i in range(50)]


# -- the transport contract (ferroproc's EventLoop and any loop) -----------------


class Recorder(asyncio.SubprocessProtocol):
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.done = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.events.append(("data", fd, data))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.events.append(("lost", fd, type(exc).__name__ if exc else None))

    def process_exited(self) -> None:
        self.events.append(("exited", self.transport.get_returncode()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("connection_lost")
        self.done.set_result(None)


def test_event_order_on_ferroprocs_loop() -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        t, proto = await loop.subprocess_exec(
            Recorder, PY, "-c", "import os; os.write(1, b'out'); os.write(2, b'err')", stdin=None
        )
        assert isinstance(t, SubprocessTransport)
        await proto.done
        t.close()
        return proto.events

    events = fa.run(main())
    assert events[0] == "made" and events[-1] == "connection_lost"
    body = events[1:-1]
    assert ("exited", 0) in body
    for fd, data in ((1, b"out"), (2, b"err")):
        assert body.index(("data", fd, data)) < body.index(("lost", fd, None))


def test_pipe_transports_have_the_classes_of_asyncios(run: Runner) -> None:
    """stdin's pipe transport is an ``asyncio.Transport`` whose reading
    methods raise NotImplementedError, stdout's a ``ReadTransport`` with no
    ``write``: code that probes them (uvloop's tests do) sees what it sees
    on asyncio's loop."""

    async def main() -> None:
        p = await fa.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        t = p._transport  # type: ignore[attr-defined]
        stdin, stdout = t.get_pipe_transport(0), t.get_pipe_transport(1)
        assert isinstance(stdin, asyncio.Transport) and isinstance(stdout, asyncio.ReadTransport)
        with pytest.raises(NotImplementedError):
            stdin.pause_reading()
        assert not hasattr(stdout, "write")
        await p.communicate(b"x")

    run(main())


def test_pause_reading_one_pipe_keeps_the_other_flowing() -> None:
    src = (
        "import os, threading\n"
        "t = threading.Thread(target=lambda: [os.write(1, b'o' * 65536) for _ in range(64)])\n"
        "t.start(); os.write(2, b'e' * 100000); t.join()"
    )

    def total(proto: Recorder, fd: int) -> int:
        return sum(len(e[2]) for e in proto.events if e[:2] == ("data", fd))

    async def main() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        t, proto = await loop.subprocess_exec(Recorder, PY, "-c", src, stdin=None)
        stdout = t.get_pipe_transport(1)
        stdout.pause_reading()
        assert not stdout.is_reading()
        for _ in range(1000):
            if total(proto, 2) == 100000:
                break
            await asyncio.sleep(0.01)
        paused_at = total(proto, 1)
        stdout.resume_reading()
        assert stdout.is_reading()
        await proto.done
        t.close()
        return paused_at, total(proto, 1), total(proto, 2)

    paused_at, out, err = fa.run(main())
    assert err == 100000, "stderr flowed while stdout was paused"
    assert paused_at < 64 * 65536, "stdout was not read while paused"
    assert out == 64 * 65536


def test_write_flow_control_and_drain(run: Runner) -> None:
    async def main() -> Any:
        p = await fa.create_subprocess_exec(
            PY, "-c", "import sys, time; time.sleep(0.3); print(len(sys.stdin.buffer.read()))", stdin=PIPE, stdout=PIPE
        )
        assert p.stdin is not None
        transport = p.stdin.transport
        transport.set_write_buffer_limits(high=1000, low=100)
        assert transport.get_write_buffer_limits() == (100, 1000)
        paused = []
        protocol = p._protocol
        real_pause = protocol.pause_writing
        protocol.pause_writing = lambda: (paused.append(True), real_pause())  # type: ignore[method-assign]
        p.stdin.write(b"x" * 3_000_000)
        assert transport.get_write_buffer_size() > 0
        await p.stdin.drain()
        assert transport.get_write_buffer_size() <= 100
        p.stdin.write_eof()
        out = await p.stdout.read() if p.stdout else b""
        return paused, out, await p.wait()

    paused, out, code = run(main())
    assert paused == [True] and out == b"3000000\n" and code == 0


def test_a_write_from_a_coroutine_is_made_at_once(run: Runner) -> None:
    """asyncio's rule: ``write()`` to an idle pipe writes at once (the loop
    does not have to turn): the child echoes it while the coroutine blocks
    the loop."""
    import select

    async def main() -> bytes:
        r, w = os.pipe()
        try:
            p = await fa.create_subprocess_exec("cat", stdin=PIPE, stdout=w)
            assert p.stdin is not None
            p.stdin.write(b"at once\n")
            ready, _, _ = select.select([r], [], [], 10)  # blocks the loop
            got = os.read(r, 100) if ready else b""
            p.stdin.close()
            await p.wait()
            return got
        finally:
            os.close(r)
            os.close(w)

    assert run(main()) == b"at once\n"


def test_drain_raises_once_the_child_closed_stdin(run: Runner) -> None:
    async def main() -> None:
        p = await fa.create_subprocess_exec(
            PY, "-c", "import os; os.close(0); import time; time.sleep(0.2)", stdin=PIPE
        )
        assert p.stdin is not None
        await asyncio.sleep(0.1)
        p.stdin.write(b"x" * (4 << 20))
        try:
            await p.stdin.drain()
        finally:
            await p.wait()

    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        run(main())


def test_abort_drops_the_buffer_and_close_kills(run: Runner) -> None:
    async def main() -> Any:
        p = await fa.create_subprocess_exec(
            PY, "-c", "import sys; print(len(sys.stdin.buffer.read()))", stdin=PIPE, stdout=PIPE
        )
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(b"y" * (8 << 20))
        p.stdin.transport.abort()
        out = await p.stdout.read()
        q = await fa.create_subprocess_exec("sleep", "30")
        q._transport.close()
        return int(out) < 8 << 20, await p.wait(), await q.wait()

    assert run(main()) == (True, 0, -signal.SIGKILL)


# 3.10: a loop closed with a pipe still open leaves the engine's fds to a
# later collection (known, open); the wake-up itself is checked.
@pytest.mark.parametrize(
    "_",
    [pytest.param(None, marks=[pytest.mark.allow_leaks("3.10: the engine's fds outlive the closed loop")])]
    if sys.version_info < (3, 11)
    else [None],
)
def test_wait_wakes_as_this_pythons_asyncio_does(_: None) -> None:
    # A grandchild keeps stdout open for a while after the child exits.
    src = "import subprocess, sys; subprocess.Popen(['sleep', '0.5'])"

    async def main() -> tuple[bool, int]:
        p = await fa.create_subprocess_exec(PY, "-c", src, stdout=PIPE)
        code = await p.wait()
        assert p.stdout is not None
        return p.stdout.at_eof(), code

    with pytest.warns(ResourceWarning, match="unclosed transport") if sys.version_info < (3, 11) else nullcontext():
        at_eof, code = fa.run(main())
        # On 3.10 the loop closed with stdout still open, as on asyncio's own
        # loop: the transport and its protocol (a cycle) go at the next
        # collection, which closes the pipe.
        gc.collect()
    assert code == 0
    assert at_eof == (sys.version_info >= (3, 11)), "3.10 wakes at the exit, 3.11+ once every pipe is lost"


def test_policy_and_new_event_loop() -> None:
    loop = fa.new_event_loop()
    try:
        assert isinstance(loop, fa.EventLoop)
    finally:
        loop.close()
    policy = fa.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        assert isinstance(loop, fa.EventLoop)
    finally:
        loop.close()


def test_the_asyncio_example_runs() -> None:
    import subprocess

    example = Path(__file__).resolve().parent.parent / "examples" / "asyncio_jobs.py"
    out = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=60, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith("20 jobs, word counts: [1, 2, 3,") and "20]" in lines[0]
    assert lines[1:] == ["kernel: Linux", "terminated sleeper returned -15", "getProcessOutput: from the reactor"]


# -- libraries on top, and the loop never blocked --------------------------------


def test_anyio_runs_processes_through_the_engine(tmp_path: Path) -> None:
    """anyio's run_process and open_process, unchanged, on ferroproc's loop:
    their children are the engine's."""
    anyio = pytest.importorskip("anyio")

    async def main() -> tuple[bytes, str, int | None]:
        done = await anyio.run_process(["pwd"], cwd=tmp_path)
        async with await anyio.open_process(["cat"]) as proc:
            transport = type(proc._process._transport).__module__
            await proc.stdin.send(b"x")
            await proc.stdin.aclose()
            await proc.wait()
        return done.stdout, transport, proc.returncode

    out, transport, code = anyio.run(main, backend_options={"loop_factory": fa.new_event_loop})
    assert out == str(tmp_path).encode() + b"\n"
    assert transport == "ferroproc._asynciotransport" and code == 0


_NO_BLOCKING = r"""
import asyncio, os, sys, tempfile
from asyncio.subprocess import PIPE
from blockbuster import blockbuster_ctx
import ferroproc.asyncio as fa

CHILD = "import os, sys; print(sys.stdin.read()); print(os.getcwd()); os.write(int(sys.argv[1]), b'x\\n')"

async def main(create):
    r, w = os.pipe()
    with tempfile.TemporaryFile() as f:
        f.write(b"in"); f.seek(0)
        with blockbuster_ctx():
            p = await create(sys.executable, "-c", CHILD, str(w), stdin=f, stdout=PIPE, stderr=PIPE,
                             cwd="/tmp", env={}, pass_fds=[w])
            out, err = await p.communicate()
            p = await create("cat", stdin=PIPE, stdout=PIPE, start_new_session=True, umask=0o22)
            out2, _ = await p.communicate(b"more")
    os.close(w)
    assert (out, err, out2) == (b"in\n/tmp\n", b"", b"more"), (out, err, out2)
    assert os.read(r, 10) == b"x\n"

if sys.argv[1] == "any-loop":
    asyncio.run(main(fa.create_subprocess_exec))
else:
    fa.run(main(asyncio.create_subprocess_exec))
"""


@pytest.mark.parametrize("how", ["any-loop", "ferroproc-loop"])
def test_spawning_never_blocks_the_loop(how: str) -> None:
    """No blocking call (a stat, a blocking read or write...) on the loop's
    thread while a child is started and talked to: blockbuster, which
    anyio's and other libraries' test suites run, would flag it."""
    pytest.importorskip("blockbuster")
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _NO_BLOCKING, how], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


_LEFT_WHEN_THE_LOOP_CLOSES = r"""
import asyncio, gc, os, sys, time
import ferroproc.asyncio as fa

def fds():
    return set(os.listdir("/proc/self/fd"))

def children():
    me, out = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == me:
                    out.append(pid)
        except OSError:
            pass
    return out

async def main(create):
    # A communicate() cancelled: its transport is collected (and its child
    # killed) whenever the task goes, the last one after the loop closed.
    for _ in range(5):
        p = await create("sleep", "30", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        task = asyncio.ensure_future(p.communicate())
        await asyncio.sleep(0.01)
        task.cancel()
    # One still running when the loop closes, its Process dropped after.
    global kept
    kept = await create("sleep", "0.2")

before = fds()
if sys.argv[1] == "any-loop":
    asyncio.run(main(fa.create_subprocess_exec))
else:
    fa.run(main(asyncio.create_subprocess_exec))
del kept
gc.collect()
deadline = time.monotonic() + 10
while (children() or fds() - before) and time.monotonic() < deadline:
    time.sleep(0.05)
print(children(), sorted(fds() - before))
"""


@pytest.mark.parametrize("how", ["any-loop", "ferroproc-loop"])
def test_children_left_when_the_loop_closes_are_reaped(how: str) -> None:
    """A loop that closes with children it did not wait for (killed as their
    transports go, or still running) leaves no zombie and no fd: the engine
    it drove hands them to the core's reaper. (Stock asyncio leaves them
    running, their pipes open.)"""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _LEFT_WHEN_THE_LOOP_CLOSES, how],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] []", f"children and fds left: {done.stdout}"


def test_names_ferroproc_adds_shadowed_by_a_program_leave_the_transport_working(run: Runner) -> None:
    """The engine's transport (``get_extra_info("ferroproc")``) takes a
    program's attributes under any name, as Twisted's transports do, ours
    included; the asyncio transport over it goes on working."""
    twisted_process = pytest.importorskip("twisted.internet.process")
    from ferroproc._core import Process as EngineProcess

    theirs = set(dir(twisted_process.Process)) | set(dir(twisted_process.PTYProcess)) | {"pipes"}
    names = [n for n in dir(EngineProcess) if n not in theirs and not (n.startswith("__") and n.endswith("__"))]

    async def main() -> Any:
        p = await fa.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        engine = p._transport.get_extra_info("ferroproc")  # type: ignore[attr-defined]
        for name in names:
            setattr(engine, name, "the program's")
        p.stdout._transport.pause_reading()  # type: ignore[union-attr]
        p.stdout._transport.resume_reading()  # type: ignore[union-attr]
        p.stdin.write(b"x" * 100_000)  # type: ignore[union-attr]
        return await p.communicate(b"y"), p.returncode, [getattr(engine, name) for name in names]

    (out, _), code, seen = run(main())
    assert (len(out), code) == (100_001, 0)
    assert set(seen) == {"the program's"}


# -- children of a loop that has closed ----------------------------------------------

_KEPT_AFTER_THE_LOOP_CLOSES = r"""
import asyncio, os, signal, sys, time
from asyncio.subprocess import PIPE
import ferroproc.asyncio as fa

def fds():
    return set(os.listdir("/proc/self/fd"))

def states(pids):
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                out[pid] = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            pass
    return out

def settle(done, pids, extra_fds):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if done(states(pids)) and len(fds() - before) <= extra_fds:
            return
        time.sleep(0.02)

async def main():
    # Each ends after the loop has closed (as a child not waited for may).
    finished = [await asyncio.create_subprocess_exec("sleep", "0.2", stdout=PIPE, stderr=PIPE) for _ in range(5)]
    running = await asyncio.create_subprocess_exec("sleep", "30", stdin=PIPE, stdout=PIPE)
    return finished, running

async def warm_up():
    await (await asyncio.create_subprocess_exec("true")).wait()

# The thread's engine and the spawn channel exist before the count starts.
fa.run(warm_up())
before = fds()
if sys.argv[1] == "run":
    finished, running = fa.run(main())
else:
    finished, running = asyncio.run(main(), loop_factory=fa.new_event_loop)
# The loop has closed; the program keeps every Process object.
pids = [p.pid for p in finished]
settle(lambda s: not s, pids, 2)
print("finished:", sorted(states(pids).values()), "fds:", len(fds() - before))
# The one still running: its pipes are closed, only its pidfd is held (and
# the reaper's copy); kill() still reaches it through the kept Process.
print("running:", [s != "Z" for s in states([running.pid]).values()])
running.kill()
settle(lambda s: not s, [running.pid], 0)
print("after kill:", sorted(states([running.pid]).values()), "fds:", len(fds() - before))
"""


@pytest.mark.parametrize("how", ["run", "loop_factory"])
def test_children_of_a_finished_run_are_reaped_while_their_processes_are_kept(how: str) -> None:
    """After ``ferroproc.asyncio.run()`` returns (or asyncio.run with
    ferroproc's loop), its children are reaped and their pipes and pidfds
    closed even though the program keeps the Process objects, as asyncio's
    own children are; one still running is reaped once it exits (kill()
    still reaches it). Witnessed in the process table and /proc/self/fd."""
    if how == "loop_factory" and sys.version_info < (3, 12):
        pytest.skip("asyncio.run(loop_factory=...) is Python 3.12+")
    import subprocess

    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _KEPT_AFTER_THE_LOOP_CLOSES, how],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "finished: [] fds: 2",
        "running: [True]",
        "after kill: [] fds: 0",
    ], done.stdout


_CLOSED_FROM_ANOTHER_THREAD = r"""
import asyncio, gc, os, sys, threading, time
from asyncio.subprocess import PIPE
import ferroproc.asyncio as fa

def children():
    me, out = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == me:
                    out.append(pid)
        except OSError:
            pass
    return out

async def start():
    # Each ends after the loop has stopped (as a child not waited for may).
    for _ in range(5):
        await asyncio.create_subprocess_exec("sleep", "0.2", stdout=PIPE)

async def warm_up():
    await (await asyncio.create_subprocess_exec("true")).wait()

fa.run(warm_up())  # the spawn channel exists before the count starts
loop = fa.new_event_loop()
ran, finish = threading.Event(), threading.Event()

def worker():
    # A long-lived thread that runs the loop; another one closes it.
    loop.run_until_complete(start())
    ran.set()
    finish.wait()

before = set(os.listdir("/proc/self/fd"))
t = threading.Thread(target=worker)
t.start()
ran.wait()
gc.collect()  # the transports are gone; the loop has not closed yet
loop.close()
deadline = time.monotonic() + 10
while children() and time.monotonic() < deadline:
    time.sleep(0.02)
while set(os.listdir("/proc/self/fd")) - before and time.monotonic() < deadline:
    gc.collect()  # the engine goes with the last of its transports
    time.sleep(0.02)
print(len(children()), len(set(os.listdir("/proc/self/fd")) - before))
finish.set()
t.join()
"""


def test_a_loop_closed_from_another_thread_retires_its_engine() -> None:
    """``EventLoop.close()`` called from a thread other than the loop's
    retires the engine as the loop's own thread would: its children are
    reaped and their fds closed, while the loop's thread lives on."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _CLOSED_FROM_ANOTHER_THREAD],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0"], f"children and fds left: {done.stdout}"


_ENGINE_CANNOT_BE_MADE = r"""
import asyncio, os, resource
from asyncio.subprocess import DEVNULL
import ferroproc.asyncio as fa

async def main():
    # Leave exactly one fd free: DEVNULL takes it, so the thread's first
    # engine cannot be made (EMFILE).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(map(int, os.listdir("/proc/self/fd"))) + 2, hard))
    fillers = []
    try:
        while True:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    os.close(fillers.pop())
    try:
        await fa.create_subprocess_exec("true", stdin=DEVNULL, stdout=DEVNULL)
    except OSError as e:
        print("refused:", e.errno == 24)
    try:
        fillers.append(os.open(os.devnull, os.O_RDONLY))  # the fd DEVNULL took is free again
        print("free again")
    except OSError as e:
        print("leaked:", e)
    for fd in fillers:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

asyncio.run(main())
"""


def test_devnull_is_closed_when_the_engine_cannot_be_made() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _ENGINE_CANNOT_BE_MADE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["refused: True", "free again"], done.stdout
